//! A control API in process, on a fresh SQLite file or a fresh PostgreSQL schema per test.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use outrigger_store::Store;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Runs one test body against both engines: `both_engines!(name)` expects `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::harness::TestApp::sqlite().await;
                super::$name(app.clone()).await;
                app.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let app = $crate::harness::TestApp::postgres().await;
                super::$name(app.clone()).await;
                app.finish().await;
            }
        }
    )*};
}

/// Where the PostgreSQL tests connect (the test script starts the server when it is down).
fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Records the change events the control API emits.
#[derive(Default)]
pub struct RecordedChanges(std::sync::Mutex<Vec<String>>);

impl RecordedChanges {
    /// Takes the events recorded so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl outrigger_control_api::ProjectChanges for RecordedChanges {
    async fn changed(&self, project_id: &str) {
        self.0.lock().unwrap().push(project_id.to_owned());
    }
}

#[derive(Clone)]
pub struct TestApp {
    router: Router,
    pub store: Store,
    schema: Option<String>,
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// Change events emitted so far.
    pub changes: std::sync::Arc<RecordedChanges>,
}

/// An answer, with the body kept raw.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Answer {
        assert_eq!(self.status, status, "unexpected status; body: {}", String::from_utf8_lossy(&self.body));
        self
    }

    /// Asserts an error answer of the API's shape and returns its message.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode, code: &str) -> String {
        let answer = self.expect(status);
        let body = answer.json();
        assert_eq!(body["code"], code, "error code; body: {body}");
        body["message"].as_str().expect("error message").to_owned()
    }
}

impl TestApp {
    fn build(store: Store, schema: Option<String>, dir: tempfile::TempDir) -> TestApp {
        TestApp::build_with(store, schema, dir, |_| {})
    }

    fn build_with(
        store: Store,
        schema: Option<String>,
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut outrigger_control_api::Options),
    ) -> TestApp {
        let changes = std::sync::Arc::new(RecordedChanges::default());
        // Server-side log lines (e.g. why a request got 500) show up in a failing test's output.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,sqlx=warn").try_init();
        let options = outrigger_control_api::Options {
            http_endpoint: "http://127.0.0.1:3500".into(),
            grpc_endpoint: "http://127.0.0.1:50001".into(),
            admin_token: ADMIN_TOKEN.into(),
            max_body_bytes: MAX_BODY_BYTES,
            changes: changes.clone(),
            component_types: outrigger_workers::component_types(),
            api_log_retention: std::time::Duration::from_secs(72 * 3600),
            serve_metrics: true,
            default_quotas: outrigger_store::Quotas { app_ids: Some(50), ..Default::default() },
            stored_bytes: None,
            managed_kv: None,
            managed_topics: None,
            sessions: Default::default(),
            login_throttle: Default::default(),
            audit_retention: std::time::Duration::from_secs(365 * 24 * 3600),
            oidc: None,
            egress: outrigger_outbound::Egress::private(outrigger_outbound::PrivateAddresses::Allowed),
        };
        let mut options = options;
        configure(&mut options);
        let router = outrigger_control_api::router(store.clone(), options);
        TestApp { router, store, schema, dir: std::sync::Arc::new(dir), changes }
    }

    pub async fn sqlite() -> TestApp {
        TestApp::sqlite_with(|_| {}).await
    }

    /// On SQLite, with some options changed.
    pub async fn sqlite_with(configure: impl FnOnce(&mut outrigger_control_api::Options)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        TestApp::build_with(store, None, dir, configure)
    }

    pub async fn postgres() -> TestApp {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&postgres_url())
            .await
            .expect("PostgreSQL must be running for these tests (scripts/test starts it)");
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
        admin.close().await;
        let separator = if postgres_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-c%20search_path%3D{schema}", postgres_url());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        TestApp::build(store, Some(schema), tempfile::tempdir().unwrap())
    }

    /// Another control-API process over the same database: its own caches and counts in memory, the same
    /// rows. Dropped, not finished: the database is this app's.
    pub fn replica(&self) -> TestApp {
        TestApp::build(self.store.clone(), None, tempfile::tempdir().unwrap())
    }

    /// Drops the test's PostgreSQL schema.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some(schema) = self.schema {
            let admin = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }

    /// Sends a request with the operator token.
    pub async fn call(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Answer {
        let mut request =
            Request::builder().method(method).uri(path).header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// Sends a request with `credential` as the bearer token, working in `org` when given.
    pub async fn call_as(
        &self,
        credential: &str,
        org: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request =
            Request::builder().method(method).uri(path).header("authorization", format!("Bearer {credential}"));
        if let Some(org) = org {
            request = request.header("outrigger-organization", org);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    /// Sends a request with no credential.
    pub async fn call_anonymous(&self, method: Method, path: &str, body: Value) -> Answer {
        let request = Request::builder().method(method).uri(path).header("content-type", "application/json");
        self.send(request.body(Body::from(body.to_string())).unwrap()).await
    }

    /// Sends a request as given.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn put_yaml(&self, path: &str, yaml: &str) -> Answer {
        self.call(Method::PUT, path, Some(("application/yaml", yaml.as_bytes().to_vec()))).await
    }

    pub async fn apply(&self, project: &str, query: &str, yaml: &str) -> Answer {
        let path = format!("/api/v1/projects/{project}/apply{query}");
        self.call(Method::POST, &path, Some(("application/yaml", yaml.as_bytes().to_vec()))).await
    }

    pub async fn export(&self, project: &str) -> String {
        self.get(&format!("/api/v1/projects/{project}/export")).await.expect(StatusCode::OK).text()
    }

    /// Creates a project with the managed components.
    pub async fn project(&self, name: &str) {
        self.post_json("/api/v1/projects", serde_json::json!({ "name": name })).await.expect(StatusCode::CREATED);
    }

    /// Creates an App ID and answers its API token.
    pub async fn app_id(&self, project: &str, name: &str) -> String {
        let answer = self
            .post_json(&format!("/api/v1/projects/{project}/appids"), serde_json::json!({ "name": name }))
            .await
            .expect(StatusCode::CREATED);
        answer.json()["apiToken"].as_str().unwrap().to_owned()
    }
}
