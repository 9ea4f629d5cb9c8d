//! `/api/v1/auth`: signing in with a password, refreshing and ending a session, and who the caller is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use outrigger_store::{new_secret, now_millis, OrgId, Principal, PrincipalKind, Refreshed};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{absent_as, Caller, SourceAddr};
use crate::auth::{password, Identity};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::AppState;

/// Signing in.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery staple"}))]
pub(crate) struct Login {
    email: String,
    password: String,
    /// The organization to work in (default: the first, by name, the user holds a role in).
    organization: Option<String>,
}

/// Swapping a refresh token for a new session token pair.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Refresh {
    refresh_token: String,
}

/// A session's tokens.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionTokens {
    /// Send as `Authorization: Bearer <accessToken>`; it works for `expiresIn` seconds.
    access_token: String,
    /// Swap for new tokens at `POST /api/v1/auth/refresh`; each works once.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds the access token works.
    expires_in: u64,
    /// The organization the session works in.
    organization: String,
}

/// A role on one project.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectRole {
    project: String,
    role: String,
}

/// The caller.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WhoAmI {
    /// `operator`, `user` or `serviceAccount`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The organization the request worked in.
    organization: String,
    /// The role on the whole organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// Roles on single projects.
    project_roles: Vec<ProjectRole>,
}

/// Starts a session and signs its first access token.
async fn start_session(
    state: &AppState,
    principal: &Principal,
    org: &OrgId,
    org_name: String,
) -> ApiResult<SessionTokens> {
    let refresh_token = new_secret("orr_");
    let refresh_ttl = i64::try_from(state.sessions.options().refresh_ttl.as_millis()).unwrap_or(i64::MAX);
    let mut tx = state.store.begin().await?;
    let session =
        tx.create_session(&principal.id, org, &refresh_token, now_millis().saturating_add(refresh_ttl)).await?;
    tx.commit().await?;
    let (access_token, expires_in) = state.sessions.sign(&state.store, &principal.id, org, &session.id).await?;
    Ok(SessionTokens { access_token, refresh_token, token_type: "Bearer", expires_in, organization: org_name })
}

/// Sign in with an email and a password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login, security(()), responses(
    (status = 200, body = SessionTokens),
    (status = 401, description = "Wrong email or password (which one is not said)", body = ErrorBody),
    (status = 404, description = "The user holds no role in the organization asked for, or in any", body = ErrorBody),
    (status = 429, description = "Too many failed attempts for this email or from this address: wait Retry-After seconds", body = ErrorBody),
))]
pub(crate) async fn login(
    State(state): State<AppState>,
    SourceAddr(addr): SourceAddr,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Json<SessionTokens>> {
    let email = body.email.trim().to_lowercase();
    if let Some(wait) = state.login_attempts.locked_for(&state.store, &email, addr.as_deref()).await? {
        return Err(ApiError::too_many_requests(
            format!("too many failed sign-ins for this email or from this address: try again in {wait} s, or ask an admin to reset the password"),
            wait,
        ));
    }
    let user = state.store.begin().await?.user_by_email(&email).await?;
    let hash = user.as_ref().and_then(|user| user.password_hash.clone());
    let candidate = body.password.clone();
    // Hashing takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || password::verify(&candidate, hash.as_deref()))
        .await
        .map_err(|_| ApiError::internal())?;
    let Some(user) = user.filter(|_| matches) else {
        state.login_attempts.failed(&state.store, &email, addr.as_deref()).await?;
        tracing::info!(email = %email, addr = ?addr, "sign-in refused");
        return Err(ApiError::invalid_credentials());
    };
    state.login_attempts.succeeded(&state.store, &email).await?;
    Ok(Json(sign_in(&state, &user, body.organization.as_deref()).await?))
}

/// Signs a user in to `organization` (default: the first, by name, they hold a role in).
async fn sign_in(state: &AppState, user: &Principal, organization: Option<&str>) -> ApiResult<SessionTokens> {
    let mut tx = state.store.begin().await?;
    let org = match organization {
        Some(name) => {
            let absent = || ApiError::not_found(format!("organization '{name}' not found"));
            let org = tx.org(name).await.map_err(|err| absent_as(err, absent))?;
            if !tx.grants(&org.id, &user.id).await?.any() {
                return Err(absent());
            }
            org
        }
        None => {
            let first =
                tx.page_orgs_of(&user.id, &outrigger_store::PageRequest { limit: 1, continuation: None }).await?;
            first.items.into_iter().next().ok_or_else(|| {
                ApiError::not_found("you hold no role in any organization: ask an organization's admin to add you")
            })?
        }
    };
    drop(tx);
    tracing::info!(user = %user.id.as_str(), org = %org.name, "signed in");
    start_session(state, user, &org.id, org.name).await
}

/// How people can sign in here.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignInMethods {
    /// With an email and password (`POST /api/v1/auth/login`): always.
    password: bool,
    /// Through the installation's OpenID Connect provider (`GET /api/v1/auth/oidc/login`): when the operator
    /// configured one.
    oidc: bool,
}

/// The ways to sign in, so that a sign-in page offers only those that work.
#[utoipa::path(get, path = "/api/v1/auth/methods", tag = "auth", security(()), responses((status = 200, body = SignInMethods)))]
pub(crate) async fn methods(State(state): State<AppState>) -> Json<SignInMethods> {
    Json(SignInMethods { password: true, oidc: state.oidc.is_some() })
}

/// Where single sign-on starts.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OidcStart {
    /// The organization to work in (default: the first, by name, the user holds a role in).
    organization: Option<String>,
    /// For a command-line client: the loopback URL (`http://127.0.0.1:<port>/...` or `http://localhost:...`) it
    /// waits at. The callback then sends the browser there with `refreshToken` and `organization` in the query,
    /// and the client swaps the refresh token for its own pair at once (so the copy in the browser's history
    /// is used up). `/` is the web console of this server: the callback sends the browser to
    /// `/#/signin?refreshToken=...&organization=...` (a fragment, which no server receives), and the console
    /// swaps the token the same way.
    return_to: Option<String>,
}

/// The identity provider's answer.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OidcCallback {
    /// The authorization code.
    code: Option<String>,
    /// The login it answers.
    state: Option<String>,
    /// The provider's refusal, if it refused.
    error: Option<String>,
}

fn oidc(state: &AppState) -> ApiResult<&crate::auth::oidc::Oidc> {
    state.oidc.as_deref().ok_or_else(|| {
        ApiError::not_found("single sign-on is not configured: the operator sets OUTRIGGER_OIDC_ISSUER, OUTRIGGER_OIDC_CLIENT_ID, OUTRIGGER_OIDC_CLIENT_SECRET and OUTRIGGER_OIDC_REDIRECT_URL")
    })
}

/// Where the web console of this server signs in: the callback answers it in a fragment.
const CONSOLE: &str = "/";

/// Only this server's console or a loopback address may receive a session's refresh token: it never leaves
/// this server's origin or the user's machine.
fn check_return_to(return_to: &str) -> ApiResult<()> {
    if return_to == CONSOLE {
        return Ok(());
    }
    let parsed = url::Url::parse(return_to).ok();
    let loopback = parsed.as_ref().is_some_and(|url| {
        url.scheme() == "http"
            && url.username().is_empty()
            && url.password().is_none()
            && match url.host() {
                Some(url::Host::Domain(host)) => host == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    });
    if loopback {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid_return_to", "returnTo must be / (this server's web console) or an http:// URL on this machine (127.0.0.1, [::1] or localhost), where a command-line client waits"))
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Sign in with the configured OpenID Connect provider: redirects there (authorization code with PKCE).
#[utoipa::path(get, path = "/api/v1/auth/oidc/login", tag = "auth", params(OidcStart), security(()), responses(
    (status = 303, description = "To the identity provider; it sends the user back to /api/v1/auth/oidc/callback"),
    (status = 400, description = "returnTo is neither / nor a loopback http:// URL", body = ErrorBody),
    (status = 404, description = "Single sign-on is not configured", body = ErrorBody),
    (status = 502, description = "The identity provider could not be reached", body = ErrorBody),
))]
pub(crate) async fn oidc_login(State(state): State<AppState>, Query(query): Query<OidcStart>) -> ApiResult<Redirect> {
    let provider = oidc(&state)?;
    if let Some(return_to) = &query.return_to {
        check_return_to(return_to)?;
    }
    let (location, login) = provider.start(query.organization, query.return_to).await?;
    let mut tx = state.store.begin().await?;
    tx.start_oidc_login(&login, now_millis() - millis(crate::auth::oidc::LOGIN_WINDOW)).await?;
    tx.commit().await?;
    Ok(Redirect::to(&location))
}

/// Where the identity provider sends the user back: checks its answer and starts a session.
#[utoipa::path(get, path = "/api/v1/auth/oidc/callback", tag = "auth", params(OidcCallback), security(()), responses(
    (status = 200, body = SessionTokens),
    (status = 303, description = "To the web console or the command-line client's loopback returnTo, with refreshToken and organization"),
    (status = 400, description = "Not the answer to a login under way (unknown, used or expired state)", body = ErrorBody),
    (status = 401, description = "The provider refused, or its ID token is not acceptable", body = ErrorBody),
    (status = 404, description = "The user holds no role in the organization asked for, or in any", body = ErrorBody),
    (status = 502, description = "The identity provider could not be reached", body = ErrorBody),
))]
pub(crate) async fn oidc_callback(
    State(state): State<AppState>,
    Query(query): Query<OidcCallback>,
) -> ApiResult<Response> {
    let provider = oidc(&state)?;
    let expired = || {
        ApiError::bad_request(
            "invalid_state",
            "this sign-in is unknown, used or older than ten minutes: start again at /api/v1/auth/oidc/login",
        )
    };
    let login_state = query.state.ok_or_else(expired)?;
    let mut tx = state.store.begin().await?;
    let login = tx.take_oidc_login(&login_state, now_millis() - millis(crate::auth::oidc::LOGIN_WINDOW)).await?;
    tx.commit().await?;
    let login = login.ok_or_else(expired)?;
    if let Some(error) = query.error {
        return Err(ApiError::sign_in_refused(format!("the identity provider refused the sign-in ({error})")));
    }
    let code =
        query.code.ok_or_else(|| ApiError::bad_request("invalid_query", "the identity provider sent no code"))?;
    let email = provider.finish(&code, &login).await?;
    let user = state.store.begin().await?.user_by_email(&email).await?.ok_or_else(|| {
        ApiError::not_found("you hold no role in any organization: ask an organization's admin to add you")
    })?;
    let tokens = sign_in(&state, &user, login.organization.as_deref()).await?;
    let Some(return_to) = login.return_to else { return Ok(Json(tokens).into_response()) };
    if return_to == CONSOLE {
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("refreshToken", &tokens.refresh_token)
            .append_pair("organization", &tokens.organization)
            .finish();
        return Ok(Redirect::to(&format!("{CONSOLE}#/signin?{fragment}")).into_response());
    }
    let mut url = url::Url::parse(&return_to).map_err(|_| ApiError::internal())?;
    url.query_pairs_mut()
        .append_pair("refreshToken", &tokens.refresh_token)
        .append_pair("organization", &tokens.organization);
    Ok(Redirect::to(url.as_str()).into_response())
}

/// Swap a refresh token for new tokens (the refresh token is used up).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Refresh, security(()), responses(
    (status = 200, body = SessionTokens),
    (status = 401, description = "The refresh token is unknown, used (which ends its session), expired, or its session ended", body = ErrorBody),
))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Refresh>,
) -> ApiResult<Json<SessionTokens>> {
    let refresh_token = new_secret("orr_");
    let grace = i64::try_from(state.sessions.options().reuse_grace.as_millis()).unwrap_or(i64::MAX);
    let mut tx = state.store.begin().await?;
    let session = match tx.refresh_session(&body.refresh_token, &refresh_token, grace).await? {
        Refreshed::Renewed(session) => session,
        Refreshed::Reused { session } => {
            tx.commit().await?;
            tracing::warn!(session, "a refresh token was presented after it had been used: its session is ended");
            return Err(ApiError::invalid_credentials());
        }
        Refreshed::Unknown => return Err(ApiError::invalid_credentials()),
    };
    let org = tx.org_by_id(&session.org).await?;
    tx.commit().await?;
    let (access_token, expires_in) =
        state.sessions.sign(&state.store, &session.principal, &session.org, &session.id).await?;
    Ok(Json(SessionTokens { access_token, refresh_token, token_type: "Bearer", expires_in, organization: org.name }))
}

/// End the caller's session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "Ended"),
    (status = 400, description = "The credential is not a session's access token", body = ErrorBody),
))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let Identity::Principal { session: Some(session), .. } = &caller.identity else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "only a session ends: this credential is an API key or the operator token (revoke an API key instead)",
        ));
    };
    let mut tx = state.store.begin().await?;
    tx.end_session(session).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is, and its roles in the organization the request works in.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", responses((status = 200, body = WhoAmI)))]
pub(crate) async fn whoami(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<WhoAmI>> {
    let mut project_roles = Vec::new();
    let mut tx = state.store.begin().await?;
    for (project, role) in &caller.grants.projects {
        if let Ok(project) = tx.project_by_id(project).await {
            project_roles.push(ProjectRole { project: project.name, role: role.as_str().to_owned() });
        }
    }
    project_roles.sort_by(|a, b| a.project.cmp(&b.project));
    let (kind, id, email, name) = match caller.principal() {
        None => ("operator", None, None, None),
        Some(principal) => (
            match principal.kind {
                PrincipalKind::User => "user",
                PrincipalKind::ServiceAccount => "serviceAccount",
            },
            Some(principal.id.as_str().to_owned()),
            principal.email.clone(),
            Some(principal.name.clone()),
        ),
    };
    Ok(Json(WhoAmI {
        kind,
        id,
        email,
        name,
        organization: caller.org.name.clone(),
        role: caller.org_role().map(|role| role.as_str().to_owned()),
        project_roles,
    }))
}
