//! Who is calling: the operator token, an API key, or an access token of a signed-in session, all sent as
//! `Authorization: Bearer <credential>`. What the caller may do is decided in [`crate::access`].

pub(crate) mod oidc;
pub(crate) mod password;
pub(crate) mod session;
pub(crate) mod throttle;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use outrigger_store::{OrgId, Principal};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme as Scheme};

use crate::error::ApiError;
use crate::AppState;

/// Tokens are compared as digests, in constant time, so neither length nor content leaks through timing.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) enum Identity {
    /// The installation's operator token: every organization, every route.
    Operator,
    /// A user or service account, by an API key or a session.
    Principal {
        /// Who.
        principal: Principal,
        /// The API key's organization, when the credential is an API key: it works there only.
        api_key_org: Option<OrgId>,
        /// The session, when the credential is an access token.
        session: Option<String>,
    },
}

/// The credential of the `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The caller and the organization its credential belongs to (where it works when the request names none).
pub(crate) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(Identity, OrgId), ApiError> {
    let presented = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    // First, whatever the operator chose as their token looks like (it may well hold dots or start `ork_`).
    if bool::from(digest(presented).ct_eq(state.admin_token_hash.as_ref())) {
        return Ok((Identity::Operator, OrgId::default_org()));
    }
    if presented.starts_with("ork_") {
        let (principal, org) =
            state.store.begin().await?.api_key_owner(presented).await?.ok_or_else(ApiError::unauthorized)?;
        return Ok((Identity::Principal { principal, api_key_org: Some(org.clone()), session: None }, org));
    }
    if presented.matches('.').count() == 2 {
        let claims = state.sessions.verify(&state.store, presented).await?.ok_or_else(ApiError::unauthorized)?;
        let mut tx = state.store.begin().await?;
        let session = tx.live_session(&claims.sid).await?.filter(|session| session.principal == claims.principal());
        let principal = match session {
            Some(_) => tx.principal(&claims.principal()).await?,
            None => None,
        };
        let principal = principal.ok_or_else(ApiError::unauthorized)?;
        return Ok((
            Identity::Principal { principal, api_key_org: None, session: Some(claims.sid.clone()) },
            claims.org(),
        ));
    }
    Err(ApiError::unauthorized())
}

/// Declares the bearer schemes in the OpenAPI document.
pub(crate) struct SecurityScheme;

impl utoipa::Modify for SecurityScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            http
        };
        components.add_security_scheme(
            "operatorToken",
            Scheme::Http(scheme(
                "The installation's operator token (OUTRIGGER_ADMIN_TOKEN): every organization and route",
            )),
        );
        components.add_security_scheme(
            "apiKey",
            Scheme::Http(scheme(
                "An API key (`ork_...`) of a user or service account: its owner's roles, in the key's organization",
            )),
        );
        let mut jwt = scheme("An access token (a JWT) from POST /api/v1/auth/login or /refresh: the user's roles");
        jwt.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("accessToken", Scheme::Http(jwt));
    }
}
