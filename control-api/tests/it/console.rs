//! The web console's files: served at `/` and `/console/...` beside the API, revalidated by their tag, with
//! headers that keep tenant-controlled text from ever running as script; nothing outside `web/` served.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};

use crate::harness::{Answer, TestApp};

async fn get(app: &TestApp, path: &str, etag: Option<&str>) -> Answer {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn the_console_is_served_at_the_root_without_a_credential() {
    let app = TestApp::sqlite().await;
    let page = get(&app, "/", None).await.expect(StatusCode::OK);
    assert!(page.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().contains("/console/app.js"), "{}", page.text());
    let script = get(&app, "/console/app.js", None).await.expect(StatusCode::OK);
    assert!(script.headers[header::CONTENT_TYPE].to_str().unwrap().contains("javascript"));
    // Unchanged files are not sent again.
    let etag = script.headers[header::ETAG].to_str().unwrap().to_owned();
    get(&app, "/console/app.js", Some(&etag)).await.expect(StatusCode::NOT_MODIFIED);
    get(&app, "/console/no-such-file.js", None).await.expect(StatusCode::NOT_FOUND);
    // The API's own paths are untouched: still a credential, still JSON.
    get(&app, "/api/v1/projects", None).await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.finish().await;
}

#[tokio::test]
async fn security_console_answers_forbid_inline_script_and_framing_and_serve_nothing_outside_web() {
    let app = TestApp::sqlite().await;
    for path in ["/", "/console/app.js", "/console/missing"] {
        let answer = get(&app, path, None).await;
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    for path in [
        "/console/../Cargo.toml",
        "/console/..%2fCargo.toml",
        "/console/%2e%2e/%2e%2e/Cargo.toml",
        "/console/lib/../../control-api/Cargo.toml",
        "/console//etc/passwd",
        "/console/%2fetc%2fpasswd",
    ] {
        let answer = get(&app, path, None).await;
        let text = answer.text();
        assert!(!text.contains("[package]") && !text.contains("root:"), "{path} answered {}: {text}", answer.status);
    }
    app.finish().await;
}
