//! The distributed form's control plane: `outrigger migrate` and `outrigger control-api` on PostgreSQL.

use crate::harness::{dapr_http, outrigger, random_token, RunExt, Server};

/// A fresh PostgreSQL schema, dropped at the end; its URL selects it through `search_path`.
struct Schema {
    name: String,
    base_url: String,
}

impl Schema {
    fn create() -> Schema {
        let base_url = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("cli_{}", random_token().to_lowercase());
        execute(&base_url, &format!("CREATE SCHEMA {name}"));
        Schema { name, base_url }
    }

    fn url(&self) -> String {
        let separator = if self.base_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.base_url, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        execute(&self.base_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn execute(url: &str, statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("building a runtime");
    runtime.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL must be running (scripts/test starts it)");
        sqlx::query(statement).execute(&pool).await.expect(statement);
        pool.close().await;
    });
}

/// A distributed installation's shared setting: a migrated schema, a bus prefix of its own, a data directory
/// and an operator token; processes of any role start in it.
pub(crate) struct Cluster {
    _schema: Schema,
    url: String,
    prefix: String,
    bus_timeout_ms: &'static str,
    nats_url: String,
    data_dir: tempfile::TempDir,
    token: String,
}

/// The machine's shared NATS server.
const SHARED_NATS: &str = "nats://127.0.0.1:4222";

impl Cluster {
    /// A migrated cluster on the shared NATS whose gateways give up on a call after `bus_timeout_ms` (a
    /// killed worker's calls fail fast instead of after the default 15 s).
    pub(crate) fn new(bus_timeout_ms: &'static str) -> Cluster {
        Cluster::on_nats(bus_timeout_ms, SHARED_NATS)
    }

    /// Like [`Cluster::new`], on the NATS server at `nats_url`.
    fn on_nats(bus_timeout_ms: &'static str, nats_url: &str) -> Cluster {
        let schema = Schema::create();
        let url = schema.url();
        outrigger(["migrate"]).env("OUTRIGGER_DATABASE_URL", &url).succeeds();
        Cluster {
            _schema: schema,
            url,
            prefix: format!("t{}", random_token().to_lowercase()),
            bus_timeout_ms,
            nats_url: nats_url.to_owned(),
            data_dir: tempfile::tempdir().expect("creating a data directory"),
            token: random_token(),
        }
    }
}

impl Drop for Cluster {
    /// Removes the cluster's JetStream stream (the managed pub/sub of the distributed form).
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            // A private server may be gone already, and its stream with it.
            if let Ok(client) = async_nats::connect(&self.nats_url).await {
                let jetstream = async_nats::jetstream::new(client);
                let _ = jetstream.delete_stream(format!("{}_PUBSUB", self.prefix.to_uppercase())).await;
            }
        });
    }
}

impl Cluster {
    /// Starts `outrigger <role>`; the control API gets the operator token.
    pub(crate) fn start(&self, role: &[&str]) -> Server {
        let env = [
            ("OUTRIGGER_DATABASE_URL", self.url.as_str()),
            ("OUTRIGGER_NATS_URL", self.nats_url.as_str()),
            ("OUTRIGGER_BUS_SUBJECT_PREFIX", self.prefix.as_str()),
            ("OUTRIGGER_BUS_TIMEOUT_MS", self.bus_timeout_ms),
            // The tests' apps listen on loopback, which the distributed form refuses to call by default.
            ("OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS", "true"),
        ];
        let token = (role.first() == Some(&"control-api")).then_some(self.token.as_str());
        Server::start_role(role, &env, self.data_dir.path(), token)
    }
}

#[test]
fn migrate_then_control_api_on_postgresql_keeps_state_across_restarts() {
    let schema = Schema::create();
    let url = schema.url();
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let token = random_token();
    let env = [("OUTRIGGER_DATABASE_URL", url.as_str())];

    // Before `migrate`, the control API refuses to start and says what to run.
    let refused = outrigger(["control-api"])
        .env("OUTRIGGER_DATABASE_URL", &url)
        .env("OUTRIGGER_ADMIN_TOKEN", &token)
        .env("OUTRIGGER_CONTROL_API_ADDR", "127.0.0.1:0")
        .fails();
    assert!(refused.contains("outrigger migrate"), "{refused}");

    // The distributed control API has no data directory to keep a token in: it must be configured.
    let no_token = outrigger(["control-api"]).env("OUTRIGGER_DATABASE_URL", &url).fails();
    assert!(no_token.contains("OUTRIGGER_ADMIN_TOKEN"), "{no_token}");

    // `migrate` applies the schema and can run again.
    outrigger(["migrate"]).env("OUTRIGGER_DATABASE_URL", &url).succeeds();
    outrigger(["migrate"]).env("OUTRIGGER_DATABASE_URL", &url).succeeds();

    let server = Server::start_role(&["control-api"], &env, data_dir.path(), Some(&token));
    assert!(server.addresses.dapr_http.is_none(), "control-api alone serves no Dapr API");
    server.outrigger(["project", "create", "shop"]).succeeds();
    let created = server.outrigger(["appid", "create", "orders", "-p", "shop", "-o", "json"]).json();
    assert!(created["apiToken"].as_str().is_some_and(|token| token.starts_with("ort_")), "{created}");
    let (status, output) = server.stop();
    assert!(status.success(), "{status}: {output}");
    assert!(
        std::fs::read_dir(data_dir.path()).expect("listing the data directory").next().is_none(),
        "with PostgreSQL nothing is written to the data directory"
    );

    let server = Server::start_role(&["control-api"], &env, data_dir.path(), Some(&token));
    let listed = server.outrigger(["appid", "list", "-p", "shop", "-o", "json"]).json();
    assert_eq!(listed["items"][0]["name"], "orders", "{listed}");
}

#[test]
fn state_flows_through_gateway_nats_and_workers_that_come_and_go() {
    // A pool without workers must fail fast, not after the default 15 s.
    let cluster = Cluster::new("2000");
    let first_worker = cluster.start(&["worker"]);
    let second_worker = cluster.start(&["worker", "--pool", "default"]);
    let gateway = cluster.start(&["gateway"]);
    assert!(gateway.addresses.control_api.is_none(), "the gateway alone serves no control API");
    let control = cluster.start(&["control-api"]);

    control.outrigger(["project", "create", "shop"]).succeeds();
    let created = control.outrigger(["appid", "create", "orders", "-p", "shop", "-o", "json"]).json();
    let api_token = created["apiToken"].as_str().expect("an API token").to_owned();
    let dapr = format!("http://{}", gateway.addresses.dapr_http.expect("the gateway serves the Dapr HTTP API"));

    let (status, _) = dapr_http(reqwest::Method::GET, &format!("{dapr}//v1.0/healthz/outbound/"), "", None);
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let (status, _) = dapr_http(reqwest::Method::GET, &format!("{dapr}/v1.0/state/kvstore/k"), "wrong-token", None);
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);

    let save = |index: usize| {
        let body = format!(r#"[{{"key":"k{index}","value":{index}}}]"#);
        dapr_http(reqwest::Method::POST, &format!("{dapr}/v1.0/state/kvstore"), &api_token, Some(&body))
    };
    for index in 0..20 {
        assert_eq!(save(index).0, reqwest::StatusCode::NO_CONTENT, "save {index}");
    }
    // A worker dies without warning: the other one of the pool answers every later call.
    first_worker.kill();
    for index in 20..40 {
        assert_eq!(save(index).0, reqwest::StatusCode::NO_CONTENT, "save {index} after a worker was killed");
    }
    for index in 0..40 {
        let (status, body) =
            dapr_http(reqwest::Method::GET, &format!("{dapr}/v1.0/state/kvstore/k{index}"), &api_token, None);
        assert_eq!((status, body), (reqwest::StatusCode::OK, index.to_string()), "read k{index}");
    }
    // Calls and answers larger than a NATS message (1 MiB by default) travel in chunks.
    let large = "x".repeat(3 * 1024 * 1024);
    let body = format!(r#"[{{"key":"large","value":"{large}"}},{{"key":"large2","value":"{large}"}}]"#);
    let (status, answer) =
        dapr_http(reqwest::Method::POST, &format!("{dapr}/v1.0/state/kvstore"), &api_token, Some(&body[..]));
    assert!(
        body.len() < 8 * 1024 * 1024 && status == reqwest::StatusCode::PAYLOAD_TOO_LARGE,
        "two 3 MiB values exceed the 4 MiB body limit: {status} {answer}"
    );
    let body = format!(r#"[{{"key":"large","value":"{large}"}}]"#);
    let (status, answer) =
        dapr_http(reqwest::Method::POST, &format!("{dapr}/v1.0/state/kvstore"), &api_token, Some(&body));
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{answer}");
    let (status, answer) =
        dapr_http(reqwest::Method::GET, &format!("{dapr}/v1.0/state/kvstore/large"), &api_token, None);
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(answer.len(), large.len() + 2, "the 3 MiB value comes back whole");

    // A component added through the control API reaches the workers by change event, well before their
    // periodic re-read (5 s by default).
    let manifests = tempfile::tempdir().expect("creating a directory");
    let component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nspec:\n  type: state.in-memory\n  version: v1\n";
    std::fs::write(manifests.path().join("cache.yaml"), component).expect("writing a manifest");
    control.outrigger(["apply", "-f"]).arg(manifests.path().join("cache.yaml")).args(["-p", "shop"]).succeeds();
    let applied = std::time::Instant::now();
    loop {
        let (status, body) = dapr_http(
            reqwest::Method::POST,
            &format!("{dapr}/v1.0/state/cache"),
            &api_token,
            Some(r#"[{"key":"c","value":1}]"#),
        );
        if status == reqwest::StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            applied.elapsed() < std::time::Duration::from_secs(2),
            "the new component is not served yet: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // A project on a dedicated pool is served by that pool's workers only.
    control.outrigger(["project", "create", "vip", "--pool", "dedicated"]).succeeds();
    let vip = control.outrigger(["appid", "create", "orders", "-p", "vip", "-o", "json"]).json();
    let vip_token = vip["apiToken"].as_str().expect("an API token").to_owned();
    let vip_save = || {
        dapr_http(
            reqwest::Method::POST,
            &format!("{dapr}/v1.0/state/kvstore"),
            &vip_token,
            Some(r#"[{"key":"v","value":1}]"#),
        )
    };
    let (status, body) = vip_save();
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "no worker serves pool 'dedicated' yet: {body}");
    assert!(body.contains("dedicated"), "{body}");
    let dedicated_worker = cluster.start(&["worker", "--pool", "dedicated"]);
    assert_eq!(vip_save().0, reqwest::StatusCode::NO_CONTENT);
    drop(dedicated_worker);

    let (status, body) = dapr_http(reqwest::Method::GET, &format!("{dapr}/v1.0/metadata"), &api_token, None);
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(body.contains("\"id\":\"orders\"") && body.contains("kvstore"), "{body}");
    drop(second_worker);
}

/// Concurrent callers keep saving while workers and gateways come and go.
#[test]
fn workers_and_gateways_come_and_go_under_load() {
    const CALLERS: usize = 8;
    let cluster = Cluster::new("3000");
    let doomed_worker = cluster.start(&["worker"]);
    let retiring_worker = cluster.start(&["worker"]);
    let first_gateway = cluster.start(&["gateway"]);
    let control = cluster.start(&["control-api"]);
    control.outrigger(["project", "create", "shop"]).succeeds();
    let created = control.outrigger(["appid", "create", "orders", "-p", "shop", "-o", "json"]).json();
    let api_token = created["apiToken"].as_str().expect("an API token").to_owned();

    // The callers spread their calls over every gateway currently listed.
    let gateways = std::sync::Arc::new(std::sync::Mutex::new(vec![format!(
        "http://{}",
        first_gateway.addresses.dapr_http.expect("Dapr HTTP address")
    )]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (gateways, stop, api_token) = (gateways.clone(), stop.clone(), api_token.clone());
            let answered = answered.clone();
            runtime.spawn(async move {
                let client = reqwest::Client::new();
                let (mut succeeded, mut failed) = (0usize, Vec::new());
                let mut call = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let gateway = {
                        let gateways = gateways.lock().expect("gateway list");
                        gateways[call % gateways.len()].clone()
                    };
                    let body = format!(r#"[{{"key":"c{caller}-{call}","value":{call}}}]"#);
                    let answer = client
                        .post(format!("{gateway}/v1.0/state/kvstore"))
                        .header("dapr-api-token", &api_token)
                        .body(body)
                        .send()
                        .await;
                    match answer {
                        Ok(answer) if answer.status() == reqwest::StatusCode::NO_CONTENT => succeeded += 1,
                        Ok(answer) => {
                            failed.push(format!("{}: {}", answer.status(), answer.text().await.unwrap_or_default()))
                        }
                        Err(err) => failed.push(err.to_string()),
                    }
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    call += 1;
                }
                (succeeded, failed)
            })
        })
        .collect();

    // Each step waits until the callers have had another 50 calls answered (succeeded or failed), so every
    // change to the cluster happens under load.
    let wait_for_progress = || {
        let target = answered.load(std::sync::atomic::Ordering::Relaxed) + 50;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while answered.load(std::sync::atomic::Ordering::Relaxed) < target {
            assert!(std::time::Instant::now() < deadline, "the callers stopped getting answers");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait_for_progress();
    doomed_worker.kill();
    wait_for_progress();
    let second_gateway = cluster.start(&["gateway"]);
    gateways
        .lock()
        .expect("gateway list")
        .push(format!("http://{}", second_gateway.addresses.dapr_http.expect("address")));
    let _new_worker = cluster.start(&["worker"]);
    wait_for_progress();
    let (status, output) = retiring_worker.stop();
    assert!(status.success(), "a worker stopped with SIGTERM exits 0: {output}");
    wait_for_progress();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut succeeded = 0;
    let mut failed = Vec::new();
    for caller in callers {
        let (ok, errors) = runtime.block_on(caller).expect("a caller task");
        succeeded += ok;
        failed.extend(errors);
    }
    assert!(succeeded > 100, "the load kept flowing: {succeeded} calls succeeded");
    // Only calls in flight on the killed worker may fail: at most one per caller.
    assert!(failed.len() <= CALLERS, "{} calls failed: {failed:?}", failed.len());
    drop(second_gateway);
}

/// Records the `data.seq` of every event pushed to it.
async fn start_subscriber(seen: std::sync::Arc<std::sync::Mutex<Vec<i64>>>) -> String {
    let app = axum::Router::new().route(
        "/orders",
        axum::routing::post(move |axum::Json(event): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                if let Some(seq) = event["data"]["seq"].as_i64() {
                    seen.lock().expect("seen lock").push(seq);
                }
                axum::Json(serde_json::json!({ "status": "SUCCESS" }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the subscriber");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving the subscriber") });
    url
}

/// A NATS server of this test's own, so it can be stopped and restarted without disturbing anything else.
struct PrivateNats {
    child: std::process::Child,
    port: u16,
    store: tempfile::TempDir,
}

impl PrivateNats {
    fn start() -> PrivateNats {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port();
        let store = tempfile::tempdir().expect("a JetStream store directory");
        let child = PrivateNats::spawn(port, &store);
        PrivateNats { child, port, store }
    }

    fn spawn(port: u16, store: &tempfile::TempDir) -> std::process::Child {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .unwrap_or("nats-server");
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/services installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port and store.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = PrivateNats::spawn(self.port, &self.store);
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// At least once under faults: 10,000 sequenced messages while a worker is killed twice and NATS restarts.
#[test]
fn ten_thousand_messages_survive_killed_workers_and_a_nats_restart() {
    const MESSAGES: i64 = 10_000;
    let mut nats = PrivateNats::start();
    let cluster = Cluster::on_nats("3000", &nats.url());
    let mut workers = vec![Some(cluster.start(&["worker"])), Some(cluster.start(&["worker"]))];
    let gateway = cluster.start(&["gateway"]);
    let control = cluster.start(&["control-api"]);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let subscriber = runtime.block_on(start_subscriber(seen.clone()));

    control.outrigger(["project", "create", "shop"]).succeeds();
    let checkout = control.outrigger(["appid", "create", "checkout", "-p", "shop", "-o", "json"]).json();
    let token = checkout["apiToken"].as_str().expect("a token").to_owned();
    control.outrigger(["appid", "create", "processor", "-p", "shop", "--app-endpoint", &subscriber]).succeeds();
    let manifests = tempfile::tempdir().expect("a directory");
    let subscription = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\nspec:\n  pubsubname: pubsub\n  topic: orders\n  routes:\n    default: /orders\nscopes:\n- processor\n";
    std::fs::write(manifests.path().join("subscription.yaml"), subscription).expect("writing a manifest");
    control.outrigger(["apply", "-f"]).arg(manifests.path()).args(["-p", "shop"]).succeeds();

    let dapr = format!("http://{}", gateway.addresses.dapr_http.expect("Dapr HTTP address"));
    let client = reqwest::Client::new();
    let publish = |seq: i64| {
        let request = client
            .post(format!("{dapr}/v1.0/publish/pubsub/orders"))
            .header("dapr-api-token", &token)
            .header("content-type", "application/json")
            .body(format!(r#"{{"seq":{seq}}}"#));
        runtime.block_on(async {
            request.send().await.map(|answer| answer.status() == reqwest::StatusCode::NO_CONTENT).unwrap_or(false)
        })
    };
    let live_by = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut probe = -1;
    while !seen.lock().expect("seen lock").iter().any(|seq| *seq < 0) {
        publish(probe);
        assert!(std::time::Instant::now() < live_by, "the subscription never went live");
        std::thread::sleep(std::time::Duration::from_millis(200));
        probe -= 1;
    }

    let mut acknowledged = std::collections::BTreeSet::new();
    for seq in 0..MESSAGES {
        match seq {
            2_500 => {
                workers[0].take().expect("the first worker").kill();
                workers.push(Some(cluster.start(&["worker"])));
            }
            5_000 => nats.restart(),
            7_500 => {
                workers[1].take().expect("the second worker").kill();
                workers.push(Some(cluster.start(&["worker"])));
            }
            _ => {}
        }
        if publish(seq) {
            acknowledged.insert(seq);
        }
    }
    assert!(
        acknowledged.len() as i64 > MESSAGES * 9 / 10,
        "only {} of {MESSAGES} publishes acknowledged",
        acknowledged.len()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let received: std::collections::BTreeSet<i64> =
            seen.lock().expect("seen lock").iter().copied().filter(|seq| *seq >= 0).collect();
        let missing: Vec<i64> = acknowledged.difference(&received).copied().collect();
        if missing.is_empty() {
            let deliveries = seen.lock().expect("seen lock").iter().filter(|seq| **seq >= 0).count();
            eprintln!(
                "at-least-once under faults: {} of {MESSAGES} publishes acknowledged, all {} delivered; {} deliveries, {} duplicates",
                acknowledged.len(),
                acknowledged.len(),
                deliveries,
                deliveries - received.len()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} acknowledged messages never delivered: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
