//! `/api/v1/orgs/{org}/members`: who holds which role in an organization — users (found or created by email)
//! and the organization's service accounts — granted on the organization or on one of its projects.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use outrigger_store::{Member, PrincipalId, PrincipalKind, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::{AuditNote, Caller};
use crate::auth::password;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::paging::{Page, PageQuery};
use crate::AppState;

/// A role to grant: to a user by email (made when new, with `password` or for single sign-on without one), or
/// to a service account of the organization by name (made when new).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery staple", "role": "developer"}))]
pub(crate) struct AddMember {
    email: Option<String>,
    /// Only for a user who does not exist yet; at least 12 characters.
    password: Option<String>,
    service_account: Option<String>,
    /// `admin`, `operator`, `developer` or `viewer`.
    role: String,
    /// Grant the role on this project only (default: on the whole organization).
    project: Option<String>,
}

/// One role of a member.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrantOut {
    role: String,
    /// The project, for a role on one project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
}

/// A member and its roles in the organization.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberOut {
    /// Names the member in `DELETE .../members/{member}`.
    id: String,
    /// `user` or `serviceAccount`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    name: String,
    roles: Vec<GrantOut>,
}

impl From<Member> for MemberOut {
    fn from(member: Member) -> MemberOut {
        let org = member.org_role.map(|role| GrantOut { role: role.as_str().to_owned(), project: None });
        let projects = member
            .project_roles
            .into_iter()
            .map(|(project, role)| GrantOut { role: role.as_str().to_owned(), project: Some(project) });
        MemberOut {
            id: member.principal.id.as_str().to_owned(),
            kind: match member.principal.kind {
                PrincipalKind::User => "user",
                PrincipalKind::ServiceAccount => "serviceAccount",
            },
            email: member.principal.email,
            name: member.principal.name,
            roles: org.into_iter().chain(projects).collect(),
        }
    }
}

/// Which grant to remove.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RemoveQuery {
    /// Remove only the role on this project (default: every role in the organization, with the member's API keys
    /// and sessions there).
    project: Option<String>,
}

fn parse_role(name: &str) -> ApiResult<Role> {
    Role::parse(name).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_role",
            format!("unknown role '{name}': use admin, operator, developer or viewer"),
        )
    })
}

fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
}

/// List the organization's members.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "orgs", params(("org" = String, Path), PageQuery),
    responses((status = 200, body = Page<MemberOut>)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Page<MemberOut>>> {
    let members = state.store.begin().await?.page_members(&caller.org.id, &page.request()?).await?;
    Ok(Json(Page::of(members, MemberOut::from)))
}

/// Grant a role in the organization (replacing the member's role at the same place).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/members", tag = "orgs", params(("org" = String, Path)), request_body = AddMember,
    responses(
        (status = 201, body = MemberOut),
        (status = 400, description = "Invalid email, role, name or password", body = ErrorBody),
        (status = 404, description = "No such project in the organization", body = ErrorBody)))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    caller: Caller,
    audit: AuditNote,
    JsonBody(body): JsonBody<AddMember>,
) -> ApiResult<(StatusCode, Json<MemberOut>)> {
    let role = parse_role(&body.role)?;
    // Hashed before the transaction: it takes tens of milliseconds.
    let new_password = match (&body.email, &body.password) {
        (Some(email), Some(password)) => {
            password::check_rules(password, email)?;
            let password = password.clone();
            Some(
                tokio::task::spawn_blocking(move || password::hash(&password))
                    .await
                    .map_err(|_| ApiError::internal())?,
            )
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request("invalid_member", "a password is only for a user (give an email)"))
        }
        _ => None,
    };
    let mut tx = state.store.begin().await?;
    let project = match &body.project {
        Some(name) => Some(tx.project(&caller.org.id, name).await?),
        None => None,
    };
    let principal = match (&body.email, &body.service_account) {
        (Some(email), None) => {
            let email = email.trim().to_lowercase();
            if !looks_like_email(&email) {
                return Err(ApiError::bad_request("invalid_email", format!("'{email}' is not an email address")));
            }
            // An existing user keeps their password; whether one existed is not told, so that no organization
            // learns who uses another.
            match tx.user_by_email(&email).await? {
                Some(user) => user,
                None => tx.create_user(&email, new_password.as_deref()).await?,
            }
        }
        (None, Some(name)) => {
            outrigger_resources::validate_dns_label(name)
                .map_err(|invalid| ApiError::bad_request("invalid_name", format!("service account name: {invalid}")))?;
            match tx.service_account(&caller.org.id, name).await? {
                Some(account) => account,
                None => tx.create_service_account(&caller.org.id, name).await?,
            }
        }
        _ => return Err(ApiError::bad_request("invalid_member", "give exactly one of email and serviceAccount")),
    };
    tx.grant(&caller.org.id, &principal.id, project.as_ref().map(|project| &project.id), role).await?;
    let member = member_of(&mut tx, &caller, &principal.id).await?;
    let out = MemberOut::from(member);
    audit.changed(None, serde_json::to_value(&out).ok());
    audit.commit(tx, StatusCode::CREATED).await?;
    tracing::info!(org = %caller.org.name, member = %principal.id.as_str(), role = role.as_str(), project = ?body.project, "role granted");
    Ok((StatusCode::CREATED, Json(out)))
}

/// The member as listed.
async fn member_of(tx: &mut outrigger_store::Tx, caller: &Caller, id: &PrincipalId) -> ApiResult<Member> {
    tx.member(&caller.org.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("member '{}' not found", id.as_str())))
}

/// Remove a member's roles (all of them, or the one on a project).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{member}", tag = "orgs",
    params(("org" = String, Path), ("member" = String, Path), RemoveQuery),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such member or grant", body = ErrorBody)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Path((_org, member)): Path<(String, String)>,
    caller: Caller,
    audit: AuditNote,
    Query(query): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let id = PrincipalId::received(member.clone());
    let mut tx = state.store.begin().await?;
    let before = member_of(&mut tx, &caller, &id).await?;
    let project = match &query.project {
        Some(name) => Some(tx.project(&caller.org.id, name).await?),
        None => None,
    };
    if !tx.revoke_membership(&caller.org.id, &id, project.as_ref().map(|project| &project.id)).await? {
        return Err(ApiError::not_found(format!(
            "member '{member}' holds no role on project '{}'",
            query.project.unwrap_or_default()
        )));
    }
    audit.changed(serde_json::to_value(MemberOut::from(before)).ok(), None);
    audit.commit(tx, StatusCode::NO_CONTENT).await?;
    tracing::info!(org = %caller.org.name, member = %member, project = ?query.project, "role removed");
    Ok(StatusCode::NO_CONTENT)
}
