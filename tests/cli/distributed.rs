//! The distributed form's control plane: `outrigger migrate` and `outrigger control-api` on PostgreSQL.

use crate::harness::{outrigger, random_token, RunExt, Server};

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
fn gateway_alone_serves_the_dapr_health_probes() {
    let data_dir = tempfile::tempdir().expect("creating a data directory");
    let server = Server::start_role(&["gateway"], &[], data_dir.path(), None);
    assert!(server.addresses.control_api.is_none(), "the gateway alone serves no control API");
    let http = server.addresses.dapr_http.expect("the gateway serves the Dapr HTTP API");
    let mut stream = std::net::TcpStream::connect(http).expect("connecting to the gateway");
    use std::io::{Read, Write};
    stream
        .write_all(b"GET //v1.0/healthz/outbound/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("writing");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reading");
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
}
