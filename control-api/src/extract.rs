//! Extractors whose rejections are [`ApiError`]s, so every bad request — body, query string or path — is
//! answered in the API's JSON error format (axum's own extractors answer `text/plain`). Handlers use these,
//! never `axum::extract::{Path, Query, Json}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::names::check_path_param;
use crate::AppState;

/// Path parameters. Those that are names must follow their rule ([`crate::names::PATH_RULES`]): a value no
/// project, App ID, resource or token can have is bad input (400 `invalid_path`), and never reaches a query.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = |message: String| ApiError::bad_request("invalid_path", message);
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| invalid(rejection.body_text()))?;
        for (name, value) in &raw {
            check_path_param(name, value).map_err(invalid)?;
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| invalid(rejection.body_text()))
    }
}

/// Query-string parameters: a value of the wrong type or an unknown parameter is 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// Reads the whole body, turning an over-limit body into 413.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.options.max_body_bytes)
        } else {
            ApiError::bad_request("body_unreadable", rejection.body_text())
        }
    })
}

/// Whether the request declares a YAML body.
fn is_yaml(req: &Request) -> bool {
    req.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| value.contains("yaml"))
}

/// A JSON object body (an empty body reads as `{}`): malformed JSON is 400, JSON of the wrong shape is 422.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
            if err.is_data() {
                ApiError::unprocessable(format!("request body has the wrong shape: {err}"))
            } else {
                ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {err}"))
            }
        })?;
        // Checked first because serde also reads a struct from an array, by position: `[null]` would
        // otherwise clear the first field of a PATCH.
        if !value.is_object() {
            return Err(ApiError::unprocessable("request body has the wrong shape: it must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|err| ApiError::unprocessable(format!("request body has the wrong shape: {err}")))
    }
}

/// A body that is either JSON or YAML (`Content-Type: application/yaml`), kept raw for the resource parser.
pub struct DocumentBody {
    /// The bytes as sent.
    pub bytes: Bytes,
    /// Whether they are YAML.
    pub yaml: bool,
}

impl FromRequest<AppState> for DocumentBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let yaml = is_yaml(&req);
        let bytes = read_body(req, state).await?;
        Ok(DocumentBody { bytes, yaml })
    }
}

/// A UTF-8 text body (multi-document YAML for apply).
pub struct TextBody(pub String);

impl FromRequest<AppState> for TextBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        String::from_utf8(bytes.to_vec())
            .map(TextBody)
            .map_err(|_| ApiError::bad_request("body_not_utf8", "request body must be UTF-8 text"))
    }
}
