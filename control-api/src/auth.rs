//! Operator authentication: `Authorization: Bearer <operator token>` on every control-API route.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme as Scheme};

use crate::error::ApiError;
use crate::AppState;

/// Tokens are compared as digests, in constant time, so neither length nor content leaks through timing.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Rejects requests without the operator token.
pub(crate) async fn require_operator(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    if !bool::from(digest(presented.trim()).ct_eq(state.admin_token_hash.as_ref())) {
        return Err(ApiError::unauthorized());
    }
    Ok(next.run(req).await)
}

/// Declares the bearer scheme in the OpenAPI document.
pub(crate) struct SecurityScheme;

impl utoipa::Modify for SecurityScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("operatorToken", Scheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}
