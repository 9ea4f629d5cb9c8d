//! Security group: the egress rule on what a tenant points the gateway at. Health probes and invocations of an
//! App ID whose endpoint the rule refuses never connect (a probe that did would make the platform a port
//! scanner of its own network), and the platform's own services are refused even where private addresses are
//! allowed, whatever an app redirects a delivery to.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use outrigger_gateway::Options;
use outrigger_outbound::health::HealthProbe;
use outrigger_outbound::{Egress, EgressRule, PlatformService, PrivateAddresses};
use tokio::net::TcpListener;

use crate::harness::{serve, TestGateway};
use crate::pubsub::{subscription, Arrivals};

/// Long enough for several probes at the test's probe interval to have been made, had any been started.
const SEVERAL_PROBES: Duration = Duration::from_millis(800);

fn fast_probes() -> HealthProbe {
    HealthProbe { interval: Duration::from_millis(50), timeout: Duration::from_millis(200), threshold: 2 }
}

/// A gateway that refuses private addresses, and a loopback listener standing for the platform's network.
async fn refusing_private_addresses() -> (TestGateway, TcpListener) {
    let options = Options {
        egress: Egress::private(PrivateAddresses::Refused),
        health_probe: fast_probes(),
        ..Options::default()
    };
    (TestGateway::with_options(options).await, TcpListener::bind("127.0.0.1:0").await.unwrap())
}

#[tokio::test]
async fn security_health_probes_of_refused_endpoints_never_connect() {
    let (gateway, internal) = refusing_private_addresses().await;
    let endpoint = format!("http://{}", internal.local_addr().unwrap());
    let caller = gateway.app("scanner", "caller").await;
    gateway.app_with_health("scanner", "target", Some(endpoint), Some("/internal-admin/health")).await;

    for _ in 0..2 {
        let answer = gateway.http("POST", "/v1.0/invoke/target/method/x", Some(&caller), None).await;
        let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
        assert!(
            message.contains("private, loopback or link-local"),
            "the answer is the refusal, not the app's health: {message}"
        );
        let connected = tokio::time::timeout(SEVERAL_PROBES, internal.accept()).await;
        assert!(connected.is_err(), "the platform connected to a refused address: {connected:?}");
    }
}

/// A loopback listener standing for one of the platform's own services, and a rule that allows private
/// addresses but refuses that service.
async fn allowing_private_addresses_but_an_own_service() -> (TcpListener, Egress) {
    let own = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rule = EgressRule {
        private: PrivateAddresses::Allowed,
        platform: vec![PlatformService::at(own.local_addr().unwrap())],
        ..EgressRule::default()
    };
    (own, Egress::new(rule))
}

#[tokio::test]
async fn security_the_platforms_own_services_are_refused_where_private_addresses_are_allowed() {
    let (own, egress) = allowing_private_addresses_but_an_own_service().await;
    let own_address = own.local_addr().unwrap();
    let gateway =
        TestGateway::with_options(Options { egress, health_probe: fast_probes(), ..Options::default() }).await;
    let caller = gateway.app("evil", "caller").await;
    let port = own_address.port();
    for (app, endpoint) in [
        ("literal", format!("http://127.0.0.1:{port}")),
        ("other-loopback", format!("http://127.0.0.2:{port}")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}")),
        ("by-name", format!("http://localhost:{port}")),
    ] {
        gateway.app_with_health("evil", app, Some(endpoint.clone()), Some("/healthz")).await;
        let answer = gateway.http("GET", &format!("/v1.0/invoke/{app}/method/admin"), Some(&caller), None).await;
        let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
        assert!(message.contains("own services"), "{endpoint}: {message}");
    }
    // Names are judged on the connected peer, so a name may reach a TCP handshake; no request ever follows.
    assert_no_request_reaches(&own).await;
}

/// Asserts that no request reaches `listener` while several probes could have been made: a connection may be
/// opened (a name is judged on the connected peer), but not a byte is sent over it.
async fn assert_no_request_reaches(listener: &TcpListener) {
    let served = tokio::time::timeout(SEVERAL_PROBES, async {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1];
            if tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await.unwrap_or(0) > 0 {
                return;
            }
        }
    })
    .await;
    assert!(served.is_err(), "a request reached the platform's own service");
}

/// An app cannot turn the platform's push deliveries on the platform's own services by redirecting them: each
/// hop is judged by the egress rule before it is connected, so the delivery fails (and is retried) unsent.
#[tokio::test]
async fn security_a_redirected_delivery_never_reaches_the_platforms_own_services() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (own, egress) = allowing_private_addresses_but_an_own_service().await;
    let own_address = own.local_addr().unwrap();
    let gateway = TestGateway::with_options(Options { egress, ..Options::default() }).await;
    let (redirected, arrivals) = (Arc::new(AtomicUsize::new(0)), Arrivals::new());
    let app = {
        let (redirected, arrivals) = (Arc::clone(&redirected), arrivals.clone());
        let location = format!("http://{own_address}/admin/drop-everything");
        Router::new().route(
            "/orders",
            post(move || {
                let (redirected, arrivals, location) = (Arc::clone(&redirected), arrivals.clone(), location.clone());
                async move {
                    redirected.fetch_add(1, Ordering::SeqCst);
                    arrivals.record();
                    (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, location)])
                }
            }),
        )
    };
    gateway.app_at("evil", "processor", Some(serve(app).await)).await;
    let publisher = gateway.app("evil", "checkout").await;
    gateway.component("evil", &subscription("orders", "orders", "    default: /orders\n", "", &["processor"])).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    while !arrivals.within(Duration::from_millis(300), || redirected.load(Ordering::SeqCst) > 0).await {
        assert!(std::time::Instant::now() < deadline, "the delivery never reached the app");
        gateway.publish_seq(&publisher, "orders", seq).await;
        seq += 1;
    }
    assert_no_request_reaches(&own).await;
}

#[tokio::test]
async fn security_every_encoding_of_a_private_address_is_refused() {
    let (gateway, internal) = refusing_private_addresses().await;
    let port = internal.local_addr().unwrap().port();
    let caller = gateway.app("ssrf", "caller").await;
    let encodings = [
        format!("http://2130706433:{port}"),
        format!("http://0x7f000001:{port}"),
        format!("http://0177.0.0.1:{port}"),
        format!("http://127.1:{port}"),
        format!("http://[::ffff:7f00:1]:{port}"),
        format!("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://0.0.0.0:{port}"),
        format!("http://LOCALHOST:{port}"),
        "http://169.254.169.254".to_owned(),
        "http://[fd00:ec2::254]".to_owned(),
    ];
    for (index, endpoint) in encodings.iter().enumerate() {
        let app = format!("target-{index}");
        gateway.app_at("ssrf", &app, Some(endpoint.clone())).await;
        let answer = gateway.http("GET", &format!("/v1.0/invoke/{app}/method/x"), Some(&caller), None).await;
        let message = answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_DIRECT_INVOKE");
        assert!(message.contains("private, loopback or link-local"), "{endpoint}: {message}");
    }
    let connected = tokio::time::timeout(SEVERAL_PROBES, internal.accept()).await;
    assert!(connected.is_err(), "an encoding reached the address: {connected:?}");
}
