//! With a certificate configured, every listener serves TLS, and HTTP/2 (gRPC) is negotiated by ALPN.

use crate::harness::{outrigger, random_token, Server};

#[test]
fn every_listener_serves_tls_when_a_certificate_is_configured() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("generating a certificate");
    let dir = tempfile::tempdir().expect("creating a directory");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem()).expect("writing the certificate");
    std::fs::write(&key_file, certified.key_pair.serialize_pem()).expect("writing the key");

    // Half a TLS configuration is refused at start, naming both variables.
    let refused = outrigger::<_, &str>([])
        .env("OUTRIGGER_TLS_CERT_FILE", &cert_file)
        .env("OUTRIGGER_DATA_DIR", dir.path())
        .output()
        .expect("running outrigger");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OUTRIGGER_TLS_KEY_FILE"));

    let token = random_token();
    let cert_path = cert_file.to_string_lossy().into_owned();
    let key_path = key_file.to_string_lossy().into_owned();
    let env = [("OUTRIGGER_TLS_CERT_FILE", cert_path.as_str()), ("OUTRIGGER_TLS_KEY_FILE", key_path.as_str())];
    let server = Server::start_role(&[], &env, &dir.path().join("data"), Some(&token));
    let addresses = server.addresses;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a runtime");
    runtime.block_on(async {
        let root = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("parsing the certificate");
        let client = reqwest::Client::builder().add_root_certificate(root).build().expect("building a client");

        let control = addresses.control_api.expect("control API address");
        let projects = client
            .post(format!("https://{control}/api/v1/projects"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": "secure" }))
            .send()
            .await
            .expect("calling the control API over TLS");
        assert_eq!(projects.status(), reqwest::StatusCode::CREATED);
        let project: serde_json::Value = projects.json().await.expect("a project");
        assert!(project["httpEndpoint"].as_str().unwrap().starts_with("https://"), "{project}");

        let http = addresses.dapr_http.expect("Dapr HTTP address");
        let health = client
            .get(format!("https://{http}/v1.0/healthz"))
            .send()
            .await
            .expect("calling the Dapr HTTP API over TLS");
        assert_eq!(health.status(), reqwest::StatusCode::NO_CONTENT);

        let grpc = addresses.dapr_grpc.expect("Dapr gRPC address");
        let call = client
            .post(format!("https://{grpc}/dapr.proto.runtime.v1.Dapr/GetMetadata"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
            .await
            .expect("calling the Dapr gRPC API over TLS");
        assert_eq!(call.version(), reqwest::Version::HTTP_2, "ALPN negotiates HTTP/2");
        assert_eq!(call.headers()["grpc-status"], "16", "no token: Unauthenticated");

        let plain = reqwest::Client::new().get(format!("http://{http}/v1.0/healthz")).send().await;
        assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP is not served on a TLS port");
    });
}
