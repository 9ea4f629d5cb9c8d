//! The secrets API over HTTP and gRPC against a real `secretstores.local.file` store, the caller's secret
//! scopes, and components whose metadata comes from `secretKeyRef`s.

use axum::http::StatusCode;
use dapr::dapr::proto::runtime::v1 as pb;
use serde_json::json;

use crate::harness::{identity, with_token, TestGateway};

/// A JSON secrets file in a project's directory.
pub struct SecretsFile;

impl SecretsFile {
    /// `json` as `secrets.json` in the project's own directory, where its components find files.
    pub async fn new(gateway: &TestGateway, project: &str, json: &str) -> SecretsFile {
        std::fs::write(gateway.project_dir(project).await.join("secrets.json"), json).unwrap();
        SecretsFile
    }

    /// A `secretstores.local.file` component over the file.
    pub fn component(&self, name: &str, multi_valued: bool) -> String {
        format!(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{ name: {name} }}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - {{ name: secretsFile, value: secrets.json }}
    - {{ name: multiValued, value: "{multi_valued}" }}
"#
        )
    }
}

const SECRETS: &str = r#"{"db-password": "s3cret", "api": {"key": "k1", "region": "eu"}, "other": "o"}"#;

/// Dapr's secrets quickstart names its file `secrets.json`: without that file in the project's directory, the
/// error says where the file must be and shows no host path.
#[tokio::test]
async fn a_missing_secrets_file_is_named_as_written() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    gateway.component("shop", &SecretsFile.component("vault", false)).await;
    let answer = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&token), None).await;
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(answer.status.is_server_error() || answer.status.is_client_error(), "{}: {body}", answer.status);
    assert!(body.contains("secretsFile 'secrets.json'") && body.contains("project's directory"), "{body}");
    let project_dir = gateway.project_dir("shop").await;
    assert!(!body.contains(project_dir.to_str().unwrap()), "the host path shows: {body}");
}

#[tokio::test]
async fn secrets_are_read_over_http() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let missing = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&token), None).await;
    assert_eq!(
        missing.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_SECRET_STORES_NOT_CONFIGURED"),
        "secret store is not configured"
    );

    let file = SecretsFile::new(&gateway, "shop", SECRETS).await;
    gateway.component("shop", &file.component("vault", false)).await;
    let answer = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&token), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"db-password": "s3cret"}));
    let nested = gateway.http("GET", "/v1.0/secrets/vault/api:region?metadata.version=2", Some(&token), None).await;
    assert_eq!(nested.json(), json!({"api:region": "eu"}));
    let bulk = gateway.http("GET", "/v1.0/secrets/vault/bulk", Some(&token), None).await;
    assert_eq!(
        bulk.json(),
        json!({
            "db-password": {"db-password": "s3cret"},
            "api:key": {"api:key": "k1"},
            "api:region": {"api:region": "eu"},
            "other": {"other": "o"},
        })
    );

    let unknown = gateway.http("GET", "/v1.0/secrets/nostore/db-password", Some(&token), None).await;
    let message = unknown.dapr_error(StatusCode::UNAUTHORIZED, "ERR_SECRET_STORE_NOT_FOUND");
    assert_eq!(message, "failed finding secret store with key nostore");
    let absent = gateway.http("GET", "/v1.0/secrets/vault/nothing", Some(&token), None).await;
    let message = absent.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_SECRET_GET");
    assert_eq!(message, "failed getting secret with key nothing from secret store vault: secret nothing not found");

    gateway.component("shop", &file.component("grouped", true)).await;
    let grouped = gateway.http("GET", "/v1.0/secrets/grouped/api", Some(&token), None).await;
    assert_eq!(grouped.json(), json!({"key": "k1", "region": "eu"}));
    let metadata = gateway.http("GET", "/v1.0/metadata", Some(&token), None).await.json();
    let listed = metadata["components"].as_array().unwrap().iter().find(|c| c["name"] == "grouped").cloned();
    assert_eq!(
        listed,
        Some(json!({"name": "grouped", "type": "secretstores.local.file", "version": "v1",
                    "capabilities": ["MULTIPLE_KEY_VALUES_PER_SECRET"]}))
    );
}

#[tokio::test]
async fn secret_scopes_of_the_callers_configuration_apply() {
    let gateway = TestGateway::start().await;
    let open = gateway.app("shop", "open").await;
    let file = SecretsFile::new(&gateway, "shop", SECRETS).await;
    let mut scoped = identity("scoped", None);
    scoped.config = Some("limited".into());
    let scoped = gateway.register("shop", &scoped).await;
    gateway.component("shop", &file.component("vault", false)).await;
    gateway
        .component(
            "shop",
            r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: { name: limited }
spec:
  secrets:
    scopes:
      - storeName: vault
        defaultAccess: deny
        allowedSecrets: ["db-password", "api:key"]
"#,
        )
        .await;
    let allowed = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&scoped), None).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = gateway.http("GET", "/v1.0/secrets/vault/other", Some(&scoped), None).await;
    let message = denied.dapr_error(StatusCode::FORBIDDEN, "ERR_PERMISSION_DENIED");
    assert_eq!(message, r#"access denied by policy to get "other" from "vault""#);
    let bulk = gateway.http("GET", "/v1.0/secrets/vault/bulk", Some(&scoped), None).await.json();
    let names: Vec<&String> = bulk.as_object().unwrap().keys().collect();
    assert_eq!(names, ["api:key", "db-password"], "bulk leaves out what the scopes hide");
    let unscoped = gateway.http("GET", "/v1.0/secrets/vault/other", Some(&open), None).await;
    assert_eq!(unscoped.status, StatusCode::OK, "another App ID's Configuration does not apply");
}

#[tokio::test]
async fn secret_stores_are_the_projects_own() {
    let gateway = TestGateway::start().await;
    gateway.app("shop", "orders").await;
    let file = SecretsFile::new(&gateway, "shop", SECRETS).await;
    let stranger = gateway.app("rival", "spy").await;
    gateway.component("shop", &file.component("vault", false)).await;
    let answer = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&stranger), None).await;
    answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_SECRET_STORES_NOT_CONFIGURED");

    // A store scoped to other App IDs of the project is as absent as another project's.
    let outsider = gateway.app("shop", "outsider").await;
    let scoped = format!("{}scopes: [orders]\n", file.component("vault", false));
    gateway.component("shop", &scoped).await;
    let answer = gateway.http("GET", "/v1.0/secrets/vault/db-password", Some(&outsider), None).await;
    answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_SECRET_STORES_NOT_CONFIGURED");
}

#[tokio::test]
async fn secrets_are_read_over_grpc() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let file = SecretsFile::new(&gateway, "shop", SECRETS).await;
    gateway.component("shop", &file.component("vault", true)).await;
    let mut client = gateway.grpc_client().await;
    let request = pb::GetSecretRequest { store_name: "vault".into(), key: "api".into(), ..Default::default() };
    let secret = client.get_secret(with_token(request, &token)).await.unwrap().into_inner();
    assert_eq!(secret.data.len(), 2);
    assert_eq!(secret.data["key"], "k1");
    let bulk = pb::GetBulkSecretRequest { store_name: "vault".into(), ..Default::default() };
    let bulk = client.get_bulk_secret(with_token(bulk, &token)).await.unwrap().into_inner();
    assert_eq!(bulk.data["api"].secrets["region"], "eu");
    assert_eq!(bulk.data["db-password"].secrets["db-password"], "s3cret");

    let request = pb::GetSecretRequest { store_name: "nostore".into(), key: "x".into(), ..Default::default() };
    let err = client.get_secret(with_token(request, &token)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::InvalidArgument, "failed finding secret store with key nostore")
    );
}

#[tokio::test]
async fn component_metadata_reads_secret_refs_from_its_store() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let database = gateway.project_dir("shop").await.join("orders.db");
    let file = SecretsFile::new(&gateway, "shop", &json!({"sqlite": {"path": "orders.db"}}).to_string()).await;
    gateway.component("shop", &file.component("vault", true)).await;
    let store = |reference: &str| {
        format!(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{ name: orders }}
spec:
  type: state.sqlite
  version: v1
  metadata:
    - {{ name: connectionString, secretKeyRef: {reference} }}
auth: {{ secretStore: vault }}
"#
        )
    };
    gateway.component("shop", &store("{ name: sqlite, key: path }")).await;
    let saved = gateway.http("POST", "/v1.0/state/orders", Some(&token), Some(r#"[{"key": "o1", "value": 7}]"#)).await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&saved.body));
    assert!(database.exists(), "the store opened the file its secret names");
    let read = gateway.http("GET", "/v1.0/state/orders/o1", Some(&token), None).await;
    assert_eq!(read.json(), json!(7));

    gateway.component("shop", &store("{ name: sqlite, key: nowhere }")).await;
    let failed = gateway.http("GET", "/v1.0/state/orders/o1", Some(&token), None).await;
    let message = failed.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_GET");
    assert!(message.contains("metadata field 'connectionString'") && message.contains("no key nowhere"), "{message}");
}
