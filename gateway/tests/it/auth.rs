use std::time::{Duration, Instant};

use axum::http::StatusCode;
use outrigger_gateway::Options;

use crate::harness::TestGateway;

#[tokio::test]
async fn missing_or_wrong_tokens_get_daprds_401() {
    let gateway = TestGateway::start().await;
    gateway.app("demo", "orders").await;
    for token in [None, Some("ort_not-a-real-token"), Some("")] {
        let answer = gateway.http("GET", "/v1.0/state/kvstore/k", token, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(String::from_utf8_lossy(&answer.body), "invalid api token");
    }
}

#[tokio::test]
async fn a_revoked_token_stops_working_within_the_cache_time() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("demo", "orders").await;
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await.status, StatusCode::NO_CONTENT);

    let mut tx = gateway.store.begin().await.unwrap();
    let project = tx.project(&outrigger_store::OrgId::default_org(), "demo").await.unwrap();
    let tokens = tx.list_tokens(&project.id, "orders").await.unwrap();
    tx.revoke_token(&project.id, "orders", &tokens[0].id).await.unwrap();
    tx.commit().await.unwrap();

    // The harness trusts cached lookups for 100 ms; the refusal must follow within a few cache periods.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "revoked token still accepted: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let gateway = TestGateway::with_options(Options { rate_limit_per_second: 5, ..Options::default() }).await;
    let token = gateway.app("demo", "orders").await;
    let other = gateway.app("demo", "billing").await;
    let mut limited = 0;
    for _ in 0..20 {
        let answer = gateway.http("GET", "/v1.0/state/kvstore/k", Some(&token), None).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(answer.headers["retry-after"], "1");
            assert_eq!(answer.json()["errorCode"], "ERR_TOO_MANY_REQUESTS");
        } else {
            assert_eq!(answer.status, StatusCode::NO_CONTENT);
        }
    }
    assert!(limited >= 10, "20 requests at a limit of 5/s: {limited} limited");
    // The limit is per App ID: another app of the same project is not affected.
    assert_eq!(gateway.http("GET", "/v1.0/state/kvstore/k", Some(&other), None).await.status, StatusCode::NO_CONTENT);
}
