//! `/api/v1/projects/{project}/appids`: App identities and their API tokens.
//!
//! App IDs are validated by the same code as `AppIdentity` documents of apply: a request is turned into
//! that document first.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use outrigger_resources::{Document, Kind, Registry};
use outrigger_store::{AppIdentity, IssuedToken};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::timestamp;
use crate::access::ProjectScope;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::state::{app_document, app_from_document, change_project, Change};
use crate::AppState;

/// How long older tokens stay valid after a rotation unless the request says otherwise: one day.
const DEFAULT_GRACE_SECONDS: u32 = 86_400;

/// A new App ID.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "orders", "appEndpoint": "http://127.0.0.1:5001", "appHealthCheckPath": "/healthz"}))]
pub(crate) struct CreateAppId {
    /// DNS label, unique in the project.
    name: String,
    /// Where the platform calls the app back (absolute http(s) URL).
    app_endpoint: Option<String>,
    /// Sent to the app as `dapr-api-token` on callbacks.
    #[schema(min_length = 1)]
    app_token: Option<String>,
    /// `http` (default) or `grpc`.
    #[schema(pattern = "^(http|grpc)$")]
    app_protocol: Option<String>,
    /// Path probed for app health, starting with `/`.
    #[schema(pattern = "^/")]
    app_health_check_path: Option<String>,
    /// Name of a Configuration of the project.
    config: Option<String>,
}

/// Reads a field that may be absent (leave alone), `null` (clear) or a value (set).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A change to an App ID: absent fields stay, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateAppId {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    app_endpoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1)]
    app_token: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^(http|grpc)$")]
    app_protocol: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^/")]
    app_health_check_path: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    config: Option<Option<String>>,
}

/// An App ID (its tokens are never shown here).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppIdOut {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_endpoint: Option<String>,
    app_protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_health_check_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<String>,
    /// Whether an app token is set (its value is never returned).
    has_app_token: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&AppIdentity> for AppIdOut {
    fn from(app: &AppIdentity) -> AppIdOut {
        AppIdOut {
            name: app.name.clone(),
            app_endpoint: app.app_endpoint.clone(),
            app_protocol: app.app_protocol.clone(),
            app_health_check_path: app.app_health_check_path.clone(),
            config: app.config.clone(),
            has_app_token: app.app_token.is_some(),
            created_at: timestamp(app.created_at),
            updated_at: timestamp(app.updated_at),
        }
    }
}

/// A created App ID with its first API token, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedAppId {
    #[serde(flatten)]
    app: AppIdOut,
    /// What the app sends as `dapr-api-token` (DAPR_API_TOKEN). Not retrievable later.
    api_token: String,
    /// Identifier of the token, for revoking it.
    token_id: String,
}

/// A newly issued token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenOut {
    id: String,
    /// The secret, shown this once.
    api_token: String,
    created_at: DateTime<Utc>,
}

impl From<IssuedToken> for TokenOut {
    fn from(token: IssuedToken) -> TokenOut {
        TokenOut { id: token.id, api_token: token.token, created_at: timestamp(token.created_at) }
    }
}

/// A token's public facts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenInfoOut {
    id: String,
    created_at: DateTime<Utc>,
    /// When the token stops working (set by a rotation); absent = until rotated or revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

/// Options of a token rotation.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssueToken {
    /// How long the App ID's existing tokens stay valid (default 86400).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u64>, maximum = 4294967295_u64)]
    grace_seconds: Option<u32>,
}

/// Reads a whole number written `86400` or `86400.0`: JSON (and JSON Schema's `integer`) does not tell them
/// apart, and clients that hold numbers as doubles send the second.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    match Option::<f64>::deserialize(deserializer)? {
        None => Ok(None),
        Some(number) if number.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&number) => {
            Ok(Some(number as u32))
        }
        Some(number) => Err(serde::de::Error::custom(format!("{number} is not a whole number from 0 to {}", u32::MAX))),
    }
}

/// Validates an App ID given as an `AppIdentity` spec.
fn validated_app(types: &Registry, name: &str, spec: Map<String, Value>) -> ApiResult<AppIdentity> {
    let document = Document::new(Kind::AppIdentity, name, Value::Object(spec))
        .normalize(types)
        .map_err(|invalid| ApiError::bad_request("invalid_app_id", format!("App ID '{name}': {invalid}")))?;
    app_from_document(&document)
        .map_err(|invalid| ApiError::bad_request("invalid_app_id", format!("App ID '{name}': {invalid}")))
}

fn app_key(name: &str) -> (Kind, String) {
    (Kind::AppIdentity, name.to_owned())
}

/// Register an App ID; answers its first API token.
#[utoipa::path(post, path = "/api/v1/projects/{project}/appids", tag = "appids", params(("project" = String, Path)),
    request_body = CreateAppId, responses(
    (status = 201, body = CreatedAppId),
    (status = 409, description = "The name is taken", body = ErrorBody),
))]
pub(crate) async fn create_app_id(
    State(state): State<AppState>,
    Path(project): Path<String>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<CreateAppId>,
) -> ApiResult<(StatusCode, Json<CreatedAppId>)> {
    let spec = [
        ("appEndpoint", body.app_endpoint),
        ("appToken", body.app_token),
        ("appProtocol", body.app_protocol),
        ("appHealthCheckPath", body.app_health_check_path),
        ("config", body.config),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.map(|value| (field.to_owned(), Value::String(value))))
    .collect();
    let app = validated_app(state.types(), &body.name, spec)?;
    let (app, mut written) = change_project(&state, &scope, false, |next| {
        if next.apps.contains_key(&app.name) {
            return Err(ApiError::conflict("already_exists", format!("App ID '{}' already exists", app.name)));
        }
        next.apps.insert(app.name.clone(), app.clone());
        Ok(Change { output: app, touched: vec![app_key(&body.name)], status: StatusCode::CREATED })
    })
    .await?;
    let token = written.tokens.remove(&app.name).expect("a created App ID gets a token");
    tracing::info!(project = %project, app_id = %app.name, "App ID created");
    let now = timestamp(token.created_at);
    let out = AppIdOut { created_at: now, updated_at: now, ..AppIdOut::from(&app) };
    Ok((StatusCode::CREATED, Json(CreatedAppId { app: out, api_token: token.token, token_id: token.id })))
}

/// List the project's App IDs, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/appids", tag = "appids", params(("project" = String, Path), PageQuery), responses(
    (status = 200, body = Page<AppIdOut>),
))]
pub(crate) async fn list_app_ids(
    State(state): State<AppState>,
    Path(_project): Path<String>,
    scope: ProjectScope,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<AppIdOut>>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let apps = tx.page_app_ids(&project.id, &page.request()?).await?;
    Ok(Json(Page::of(apps, |app| AppIdOut::from(&app))))
}

/// Get one App ID.
#[utoipa::path(get, path = "/api/v1/projects/{project}/appids/{app}", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path)), responses(
    (status = 200, body = AppIdOut),
))]
pub(crate) async fn get_app_id(
    State(state): State<AppState>,
    Path((_project, app)): Path<(String, String)>,
    scope: ProjectScope,
) -> ApiResult<Json<AppIdOut>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    Ok(Json(AppIdOut::from(&tx.app_id(&project.id, &app).await?)))
}

/// Change an App ID's connection settings.
#[utoipa::path(patch, path = "/api/v1/projects/{project}/appids/{app}", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path)), request_body = UpdateAppId, responses(
    (status = 200, body = AppIdOut),
))]
pub(crate) async fn update_app_id(
    State(state): State<AppState>,
    Path((_project, name)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<UpdateAppId>,
) -> ApiResult<Json<AppIdOut>> {
    let (app, _) = change_project(&state, &scope, false, |next| {
        let current = next.apps.get(&name).ok_or_else(|| ApiError::not_found(format!("App ID '{name}' not found")))?;
        let mut spec = match app_document(current).spec {
            Value::Object(spec) => spec,
            _ => unreachable!("app documents have object specs"),
        };
        let edits = [
            ("appEndpoint", body.app_endpoint),
            ("appToken", body.app_token),
            ("appProtocol", body.app_protocol),
            ("appHealthCheckPath", body.app_health_check_path),
            ("config", body.config),
        ];
        for (field, edit) in edits {
            match edit {
                None => {}
                Some(None) => {
                    spec.remove(field);
                }
                Some(Some(value)) => {
                    spec.insert(field.to_owned(), Value::String(value));
                }
            }
        }
        let updated = AppIdentity { created_at: current.created_at, ..validated_app(state.types(), &name, spec)? };
        next.apps.insert(name.clone(), updated.clone());
        Ok(Change { output: updated, touched: vec![app_key(&name)], status: StatusCode::OK })
    })
    .await?;
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let stored = tx.app_id(&project.id, &app.name).await?;
    Ok(Json(AppIdOut::from(&stored)))
}

/// Delete an App ID and its tokens.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/appids/{app}", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path)), responses(
    (status = 204, description = "Deleted"),
    (status = 409, description = "Still named in a resource's scopes", body = ErrorBody),
))]
pub(crate) async fn delete_app_id(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    change_project(&state, &scope, false, |next| {
        next.apps.remove(&name).ok_or_else(|| ApiError::not_found(format!("App ID '{name}' not found")))?;
        Ok(Change { output: (), touched: Vec::new(), status: StatusCode::NO_CONTENT })
    })
    .await?;
    tracing::info!(project = %project, app_id = %name, "App ID deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new API token; the App ID's older tokens stay valid for `graceSeconds`.
#[utoipa::path(post, path = "/api/v1/projects/{project}/appids/{app}/tokens", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path)), request_body = IssueToken, responses(
    (status = 201, body = TokenOut),
))]
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    Path((_project, app)): Path<(String, String)>,
    scope: ProjectScope,
    JsonBody(body): JsonBody<IssueToken>,
) -> ApiResult<(StatusCode, Json<TokenOut>)> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let token = tx.rotate_token(&project.id, &app, body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS)).await?;
    scope.audit.commit(tx, StatusCode::CREATED).await?;
    tracing::info!(project = %project.name, app_id = %app, token_id = %token.id, "API token issued");
    Ok((StatusCode::CREATED, Json(TokenOut::from(token))))
}

/// List the App ID's valid tokens (never their secrets), oldest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/projects/{project}/appids/{app}/tokens", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path), PageQuery), responses(
    (status = 200, body = Page<TokenInfoOut>),
))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Path((_project, app)): Path<(String, String)>,
    scope: ProjectScope,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<TokenInfoOut>>> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    let tokens = tx.page_tokens(&project.id, &app, &page.request()?).await?;
    Ok(Json(Page::of(tokens, |token| TokenInfoOut {
        id: token.id,
        created_at: timestamp(token.created_at),
        expires_at: token.expires_at.map(timestamp),
    })))
}

/// Revoke a token at once.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/appids/{app}/tokens/{token_id}", tag = "appids",
    params(("project" = String, Path), ("app" = String, Path), ("token_id" = String, Path)), responses(
    (status = 204, description = "Revoked"),
))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Path((_project, app, token_id)): Path<(String, String, String)>,
    scope: ProjectScope,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let project = tx.project_by_id(&scope.project.id).await?;
    tx.revoke_token(&project.id, &app, &token_id).await?;
    scope.audit.commit(tx, StatusCode::NO_CONTENT).await?;
    // Announced so that gateways end the streams the token holds now rather than when their cache runs out.
    state.options.changes.changed(project.id.as_str()).await;
    tracing::info!(project = %project.name, app_id = %app, token_id = %token_id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
