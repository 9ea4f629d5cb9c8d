//! Request-body extractors whose rejections are [`ApiError`]s, so every bad body is answered in the API's
//! error format.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

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

/// A JSON body: malformed JSON is 400, JSON of the wrong shape is 422.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes).map(JsonBody).map_err(|err| {
            if err.is_data() {
                ApiError::unprocessable(format!("request body has the wrong shape: {err}"))
            } else {
                ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {err}"))
            }
        })
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
