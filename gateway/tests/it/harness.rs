use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use dapr::dapr::proto::runtime::v1::dapr_client::DaprClient;
use http_body_util::BodyExt;
use outrigger_bus::InProcessBus;
use outrigger_gateway::{Gateway, Options};
use outrigger_store::{AppIdentity, NewProject, Store};
use outrigger_workers::delivery::{Deliverer, HealthProbe, Scans};
use outrigger_workers::jobs::Scheduler;
use outrigger_workers::secrets::HostSecrets;
use outrigger_workers::{Limits, ManagedStores, Runtime, Worker};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tower::{Service, ServiceBuilder, ServiceExt};

/// How long the harness's worker lets a store operation take.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// A gateway over a fresh control plane.
pub struct TestGateway {
    pub store: Store,
    pub http: Router,
    pub gateway: Gateway,
    worker: Arc<Worker>,
    deliveries_waker: Arc<outrigger_workers::delivery::DeliveryWaker>,
    deliveries_scans: tokio::sync::watch::Receiver<Scans>,
    _dir: tempfile::TempDir,
    _deliveries: tokio_util::sync::DropGuard,
}

/// An answer with its body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a Dapr error answer and returns its message.
    #[track_caller]
    pub fn dapr_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        let body = self.json();
        assert_eq!(body["errorCode"], code, "{body}");
        body["message"].as_str().unwrap().to_owned()
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        let health_probe =
            HealthProbe { interval: Duration::from_millis(100), timeout: Duration::from_millis(300), threshold: 2 };
        let options = Options { token_cache_ttl: Duration::from_millis(100), health_probe, ..Options::default() };
        TestGateway::with_options(options).await
    }

    pub async fn with_options(options: Options) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        let kvstore = outrigger_workers::state::open("state.in-memory", &BTreeMap::new()).await.unwrap();
        let pubsub = outrigger_workers::pubsub::open("pubsub.in-memory", &BTreeMap::new()).await.unwrap();
        let managed = ManagedStores::new(kvstore, pubsub);
        let runtime = Runtime::new(store.clone(), managed, Duration::from_millis(50), dir.path().join("projects"))
            .with_host_secrets(HostSecrets::Allowed);
        let limits = Limits { max_bulk_keys: 50, max_transaction_operations: 50, store_timeout: STORE_TIMEOUT };
        let worker = Arc::new(Worker::new(runtime, limits));
        let probe =
            HealthProbe { interval: Duration::from_millis(100), timeout: Duration::from_millis(300), threshold: 2 };
        let deliverer =
            Deliverer::new(store.clone(), Arc::clone(&worker), None, options.egress.clone()).with_health_probe(probe);
        let (deliveries_waker, deliveries_scans) = (deliverer.waker(), deliverer.scans());
        let deliveries = CancellationToken::new();
        tokio::spawn(deliverer.run(deliveries.clone()));
        tokio::spawn(Scheduler::new(store.clone(), None, &options.egress).run(deliveries.clone()));
        let gateway = Gateway::new(Arc::new(InProcessBus::new(worker.clone())), store.clone(), options);
        let http = outrigger_gateway::http_router(gateway.clone());
        TestGateway {
            store,
            http,
            gateway,
            worker,
            deliveries_waker,
            deliveries_scans,
            _dir: dir,
            _deliveries: deliveries.drop_guard(),
        }
    }

    /// Creates a project (with the managed kvstore) if needed and an App ID in it; answers its token.
    pub async fn app(&self, project: &str, app: &str) -> String {
        self.app_at(project, app, None).await
    }

    /// Like [`TestGateway::app`], with the App ID's app endpoint.
    pub async fn app_at(&self, project: &str, app: &str, endpoint: Option<String>) -> String {
        self.app_with_health(project, app, endpoint, None).await
    }

    /// Like [`TestGateway::app_at`], with a health-check path.
    pub async fn app_with_health(
        &self,
        project: &str,
        app: &str,
        endpoint: Option<String>,
        health: Option<&str>,
    ) -> String {
        let mut identity = identity(app, endpoint);
        identity.app_health_check_path = health.map(str::to_owned);
        self.register(project, &identity).await
    }

    /// Creates a project (with the managed stores) if needed and the App ID in it; answers its token.
    pub async fn register(&self, project: &str, identity: &AppIdentity) -> String {
        let mut tx = self.store.begin().await.unwrap();
        let found = match tx.project(&outrigger_store::OrgId::default_org(), project).await {
            Ok(found) => found,
            Err(_) => tx
                .create_project(&NewProject {
                    org_id: outrigger_store::OrgId::default_org(),
                    name: project.into(),
                    managed_kvstore: true,
                    managed_pubsub: true,
                    pool: outrigger_bus::DEFAULT_POOL.into(),
                })
                .await
                .unwrap(),
        };
        let (_, token) = tx.create_app_id(&found.id, identity).await.unwrap();
        tx.commit().await.unwrap();
        self.changed(project).await;
        token.token
    }

    /// Stores a Dapr document (YAML) in the project, as the control API would.
    pub async fn component(&self, project: &str, yaml: &str) {
        let document = outrigger_resources::parse_document(yaml.as_bytes(), true)
            .unwrap()
            .normalize(outrigger_workers::component_types())
            .unwrap();
        let mut tx = self.store.begin().await.unwrap();
        let found = tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap();
        tx.put_resource(&found.id, &document).await.unwrap();
        tx.commit().await.unwrap();
        self.changed(project).await;
    }

    /// The id of the project named `project`.
    pub async fn project_id(&self, project: &str) -> String {
        let mut tx = self.store.begin().await.unwrap();
        tx.project(&outrigger_store::OrgId::default_org(), project).await.unwrap().id.as_str().to_owned()
    }

    /// The directory a project's component files live in (created when missing).
    pub async fn project_dir(&self, project: &str) -> std::path::PathBuf {
        let dir = self._dir.path().join("projects").join(self.project_id(project).await);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// What the control API's change event does in the product.
    pub async fn changed(&self, project: &str) {
        let project_id = self.project_id(project).await;
        self.worker.runtime().invalidate(&project_id).await;
        self.gateway.invalidate(&project_id).await;
        // Push deliveries follow once a scan that began after this point completed (one under way may have read
        // the project before the change).
        let in_force = self.deliveries_scans.borrow().started + 1;
        self.deliveries_waker.project_changed(&project_id);
        let mut scans = self.deliveries_scans.clone();
        scans.wait_for(|scans| scans.completed >= in_force).await.expect("the deliverer stopped");
    }

    /// Sends an HTTP request through daprd's path hygiene and the router.
    pub async fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        self.http_with(method, path, token, body, &[]).await
    }

    pub async fn http_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        request(&self.http, method, path, token, body, headers).await
    }

    /// The HTTP router of a second gateway process over the same control plane and workers.
    pub fn another_gateway(&self) -> Router {
        let bus = Arc::new(InProcessBus::new(self.worker.clone()));
        outrigger_gateway::http_router(Gateway::new(bus, self.store.clone(), Options::default()))
    }

    /// Publishes `{"seq": seq}` as JSON to `topic` of the managed `pubsub`, expecting it to be accepted.
    pub async fn publish_seq(&self, token: &str, topic: &str, seq: i64) {
        let body = serde_json::json!({ "seq": seq }).to_string();
        let path = format!("/v1.0/publish/pubsub/{topic}");
        let answer =
            self.http_with("POST", &path, Some(token), Some(&body), &[("content-type", "application/json")]).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&answer.body));
    }

    /// Serves the gRPC API on a real port and answers a client for it.
    pub async fn grpc_client(&self) -> DaprClient<Channel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = outrigger_gateway::grpc_router(self.gateway.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
        DaprClient::new(channel)
    }
}

/// Sends an HTTP request through daprd's path hygiene and `router`.
pub async fn request(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("dapr-api-token", token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.map(|b| Body::from(b.to_owned())).unwrap_or_else(Body::empty)).unwrap();
    let mut service = ServiceBuilder::new().map_request(outrigger_gateway::clean_path).service(router.clone());
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes().to_vec() }
}

/// Serves an app on a free local port; answers its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// An App ID reached at `endpoint`, with nothing else set.
pub fn identity(name: &str, endpoint: Option<String>) -> AppIdentity {
    AppIdentity {
        name: name.into(),
        app_endpoint: endpoint,
        app_token: None,
        app_protocol: "http".into(),
        app_health_check_path: None,
        config: None,
        created_at: 0,
        updated_at: 0,
    }
}

/// A gRPC request carrying `token`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("dapr-api-token", token.parse().unwrap());
    request
}
