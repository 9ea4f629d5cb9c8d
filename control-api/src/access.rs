//! Who may call which route, decided in one place for every route.
//!
//! [`RULES`] names, for each route (method and path template), what the caller needs and, for a route that
//! changes something, the action the audit trail records. [`authorize`] runs before every handler: it
//! authenticates the caller, settles the organization the request works in (the `{org}` of the path, else the
//! `Outrigger-Organization` header, else the credential's own), loads the caller's roles there, checks the
//! rule, and hands the handler a [`Caller`] and, on project routes, a [`ProjectScope`]. Anything the caller
//! holds no role on — a project, an organization — is answered 404 exactly as if it did not exist; a role
//! too low for what it sees is 403. A route missing from the table is refused to all but the operator token.
//! A change's event for the organization's audit trail starts here, and is written with the change
//! ([`crate::audit_trail`]).

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use outrigger_store::{AuditEvent, Grants, OrgId, Organization, Principal, PrincipalKind, Project, Role};

pub(crate) use crate::audit_trail::AuditNote;
use crate::auth::{authenticate, Identity};
use crate::error::ApiError;
use crate::names::check_path_param;
use crate::AppState;

/// The header that names the organization a request works in.
pub const ORG_HEADER: &str = "outrigger-organization";

/// What a route asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: the route signs callers in.
    Public,
    /// Any valid credential.
    Signed,
    /// The installation's operator token.
    Installation,
    /// Any role in the organization.
    Member,
    /// This role (or a higher one) on the whole organization.
    Org(Role),
    /// This role (or a higher one) on the project of the path, or on the organization.
    Project(Role),
}

impl Need {
    /// How the OpenAPI document states it.
    pub(crate) fn describe(self) -> String {
        match self {
            Need::Public => "none (this route signs callers in)".to_owned(),
            Need::Signed => "any valid credential".to_owned(),
            Need::Installation => "the installation's operator token".to_owned(),
            Need::Member => "any role in the organization".to_owned(),
            Need::Org(role) => format!("{} on the organization", role.as_str()),
            Need::Project(role) => format!("{} on the project or its organization", role.as_str()),
        }
    }
}

use Need::{Installation, Member, Org, Project as OnProject, Public, Signed};
use Role::{Admin, Developer, Operator, Viewer};

/// Every route: method, path template, what it needs, and the audited action of a change.
pub(crate) const RULES: &[(Method, &str, Need, Option<&str>)] = &[
    (Method::POST, "/api/v1/auth/login", Public, None),
    (Method::POST, "/api/v1/auth/refresh", Public, None),
    (Method::GET, "/api/v1/auth/methods", Public, None),
    (Method::GET, "/api/v1/auth/oidc/login", Public, None),
    (Method::GET, "/api/v1/auth/oidc/callback", Public, None),
    (Method::POST, "/api/v1/auth/logout", Signed, None),
    (Method::GET, "/api/v1/auth/whoami", Signed, None),
    (Method::GET, "/api/v1/orgs", Signed, None),
    (Method::GET, "/api/v1/component-types", Signed, None),
    (Method::POST, "/api/v1/orgs", Installation, Some("organization.create")),
    (Method::GET, "/api/v1/orgs/{org}", Member, None),
    (Method::DELETE, "/api/v1/orgs/{org}", Installation, Some("organization.delete")),
    (Method::GET, "/api/v1/orgs/{org}/quotas", Member, None),
    (Method::PUT, "/api/v1/orgs/{org}/quotas", Installation, Some("organization.quotas.set")),
    (Method::GET, "/api/v1/orgs/{org}/members", Org(Admin), None),
    (Method::POST, "/api/v1/orgs/{org}/members", Org(Admin), Some("member.add")),
    (Method::DELETE, "/api/v1/orgs/{org}/members/{member}", Org(Admin), Some("member.remove")),
    (Method::GET, "/api/v1/orgs/{org}/apikeys", Member, None),
    (Method::POST, "/api/v1/orgs/{org}/apikeys", Member, Some("apikey.create")),
    (Method::DELETE, "/api/v1/orgs/{org}/apikeys/{key_id}", Member, Some("apikey.revoke")),
    (Method::GET, "/api/v1/orgs/{org}/audit", Org(Admin), None),
    (Method::GET, "/api/v1/projects", Signed, None),
    (Method::POST, "/api/v1/projects", Org(Operator), Some("project.create")),
    (Method::GET, "/api/v1/projects/{project}", OnProject(Viewer), None),
    (Method::DELETE, "/api/v1/projects/{project}", OnProject(Operator), Some("project.delete")),
    (Method::GET, "/api/v1/projects/{project}/quotas", OnProject(Viewer), None),
    (Method::PUT, "/api/v1/projects/{project}/quotas", Installation, Some("project.quotas.set")),
    (Method::GET, "/api/v1/projects/{project}/appids", OnProject(Viewer), None),
    (Method::POST, "/api/v1/projects/{project}/appids", OnProject(Developer), Some("appid.create")),
    (Method::GET, "/api/v1/projects/{project}/appids/{app}", OnProject(Viewer), None),
    (Method::PATCH, "/api/v1/projects/{project}/appids/{app}", OnProject(Developer), Some("appid.update")),
    (Method::DELETE, "/api/v1/projects/{project}/appids/{app}", OnProject(Developer), Some("appid.delete")),
    (Method::GET, "/api/v1/projects/{project}/appids/{app}/tokens", OnProject(Viewer), None),
    (Method::POST, "/api/v1/projects/{project}/appids/{app}/tokens", OnProject(Developer), Some("token.issue")),
    (
        Method::DELETE,
        "/api/v1/projects/{project}/appids/{app}/tokens/{token_id}",
        OnProject(Developer),
        Some("token.revoke"),
    ),
    (Method::GET, "/api/v1/projects/{project}/appids/{app}/jobs", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/appids/{app}/jobs/{job}", OnProject(Viewer), None),
    (Method::DELETE, "/api/v1/projects/{project}/appids/{app}/jobs/{job}", OnProject(Developer), Some("job.delete")),
    (Method::POST, "/api/v1/projects/{project}/apply", OnProject(Developer), Some("project.apply")),
    (Method::GET, "/api/v1/projects/{project}/export", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/configuration-items", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/configuration-items/{key}", OnProject(Viewer), None),
    (
        Method::PUT,
        "/api/v1/projects/{project}/configuration-items/{key}",
        OnProject(Developer),
        Some("configuration-item.set"),
    ),
    (
        Method::DELETE,
        "/api/v1/projects/{project}/configuration-items/{key}",
        OnProject(Developer),
        Some("configuration-item.delete"),
    ),
    (Method::GET, "/api/v1/projects/{project}/logs", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/metrics", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/usage", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/kv", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/kv/{app}/{key}", OnProject(Viewer), None),
    (Method::DELETE, "/api/v1/projects/{project}/kv/{app}/{key}", OnProject(Developer), Some("kv.delete")),
    (Method::GET, "/api/v1/projects/{project}/topics", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/workflows", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/workflows/{instance}", OnProject(Viewer), None),
    (Method::DELETE, "/api/v1/projects/{project}/workflows/{instance}", OnProject(Developer), Some("workflow.purge")),
    (
        Method::POST,
        "/api/v1/projects/{project}/workflows/{instance}/events/{event}",
        OnProject(Developer),
        Some("workflow.raise-event"),
    ),
    (
        Method::POST,
        "/api/v1/projects/{project}/workflows/{instance}/resume",
        OnProject(Developer),
        Some("workflow.resume"),
    ),
    (
        Method::POST,
        "/api/v1/projects/{project}/workflows/{instance}/suspend",
        OnProject(Developer),
        Some("workflow.suspend"),
    ),
    (
        Method::POST,
        "/api/v1/projects/{project}/workflows/{instance}/terminate",
        OnProject(Developer),
        Some("workflow.terminate"),
    ),
    (Method::GET, "/api/v1/projects/{project}/{kind}", OnProject(Viewer), None),
    (Method::GET, "/api/v1/projects/{project}/{kind}/{name}", OnProject(Viewer), None),
    (Method::PUT, "/api/v1/projects/{project}/{kind}/{name}", OnProject(Developer), Some("resource.put")),
    (Method::DELETE, "/api/v1/projects/{project}/{kind}/{name}", OnProject(Developer), Some("resource.delete")),
    (Method::GET, "/metrics", Installation, None),
];

/// The rule of a route: what it needs and its audited action. Unlisted routes need the operator token.
pub(crate) fn rule(method: &Method, template: &str) -> (Need, Option<&'static str>) {
    RULES
        .iter()
        .find(|(m, path, _, _)| m == method && *path == template)
        .map_or((Installation, None), |(_, _, need, action)| (*need, *action))
}

/// The authenticated caller of a request and the organization it works in.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// Who.
    pub(crate) identity: Identity,
    /// The organization the request works in.
    pub(crate) org: Organization,
    /// The caller's roles there (the operator token holds none and needs none).
    pub(crate) grants: Grants,
}

impl Caller {
    /// The installation's operator token.
    pub(crate) fn is_operator(&self) -> bool {
        matches!(self.identity, Identity::Operator)
    }

    /// The principal behind the call, if not the operator token.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        match &self.identity {
            Identity::Operator => None,
            Identity::Principal { principal, .. } => Some(principal),
        }
    }

    /// The organization of the API key the caller used, if it used one.
    pub(crate) fn api_key_org(&self) -> Option<&OrgId> {
        match &self.identity {
            Identity::Principal { api_key_org, .. } => api_key_org.as_ref(),
            Identity::Operator => None,
        }
    }

    /// The role the caller has on the whole organization.
    pub(crate) fn org_role(&self) -> Option<Role> {
        if self.is_operator() {
            Some(Admin)
        } else {
            self.grants.org
        }
    }

    fn project_role(&self, project: &Project) -> Option<Role> {
        if self.is_operator() {
            Some(Admin)
        } else {
            self.grants.on_project(&project.id)
        }
    }

    /// Who the audit trail names: kind, principal identifier, shown name.
    fn actor(&self) -> (&'static str, Option<String>, String) {
        match &self.identity {
            Identity::Operator => ("operator", None, "operator".to_owned()),
            Identity::Principal { principal, .. } => (
                match principal.kind {
                    PrincipalKind::User => "user",
                    PrincipalKind::ServiceAccount => "serviceAccount",
                },
                Some(principal.id.as_str().to_owned()),
                principal.name.clone(),
            ),
        }
    }
}

/// The project a project route works on, found in the caller's organization and checked against its role.
#[derive(Clone, Debug)]
pub(crate) struct ProjectScope {
    /// The project as it was when the request was authorized.
    pub(crate) project: Project,
    /// Where the handler describes its change.
    pub(crate) audit: AuditNote,
}

fn from_extensions<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<T, ApiError> {
    parts.extensions.get::<T>().cloned().ok_or_else(|| {
        tracing::error!(
            kind = std::any::type_name::<T>(),
            "a handler asked for what its route's rule does not provide"
        );
        ApiError::internal()
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        from_extensions(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ProjectScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        from_extensions(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditNote {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        from_extensions(parts)
    }
}

/// The address a request came from, when the listener recorded it.
pub(crate) struct SourceAddr(pub(crate) Option<String>);

impl SourceAddr {
    fn of(parts: &Parts) -> SourceAddr {
        SourceAddr(parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip().to_string()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddr::of(parts))
    }
}

/// A lookup's failure: `answer` when the thing is absent, the store's failure otherwise (an outage is no 404).
pub(crate) fn absent_as(err: outrigger_store::Error, answer: impl FnOnce() -> ApiError) -> ApiError {
    match err {
        outrigger_store::Error::NotFound { .. } => answer(),
        other => other.into(),
    }
}

/// 404 for an organization the caller may not see, worded as for one that does not exist.
fn no_such_org(name: &str) -> ApiError {
    ApiError::not_found(format!("organization '{name}' not found"))
}

fn too_low(role: Option<Role>, need: Role, what: &str) -> ApiError {
    ApiError::forbidden(format!(
        "your role on {what} is {}; this needs {} or higher: ask an admin of the organization to grant it",
        role.map_or("none", Role::as_str),
        need.as_str()
    ))
}

/// Authenticates, authorizes and audits every request (see the module's opening comment).
pub(crate) async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let template = req.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned()).unwrap_or_default();
    let (need, action) = rule(req.method(), &template);
    if need == Public {
        return Ok(next.run(req).await);
    }
    let (mut parts, body) = req.into_parts();
    let (identity, home) = authenticate(&state, &parts.headers).await?;
    // The handler's `Path` checks these too; here they are checked before anything is looked up by them.
    let invalid = |message: String| ApiError::bad_request("invalid_path", message);
    let params = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .map_err(|rejection| invalid(rejection.body_text()))?;
    for (name, value) in &params {
        check_path_param(name, value).map_err(invalid)?;
    }
    let param = |name: &str| params.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned());
    let named_org = param("org").or_else(|| {
        parts.headers.get(ORG_HEADER).and_then(|value| value.to_str().ok()).map(|value| value.trim().to_owned())
    });
    let mut tx = state.store.begin().await?;
    let org = match &named_org {
        Some(name) => tx.org(name).await.map_err(|err| absent_as(err, || no_such_org(name)))?,
        None => tx.org_by_id(&home).await?,
    };
    let grants = match &identity {
        Identity::Operator => Grants::default(),
        // An API key works in its own organization only.
        Identity::Principal { api_key_org: Some(key_org), .. } if *key_org != org.id => Grants::default(),
        Identity::Principal { principal, .. } => tx.grants(&org.id, &principal.id).await?,
    };
    let caller = Caller { identity, org, grants };
    let org_name = caller.org.name.clone();
    // An organization the caller holds no role in is answered as one that does not exist, whatever the route.
    if !caller.is_operator() && !caller.grants.any() {
        return Err(no_such_org(&org_name));
    }
    let mut scope = None;
    match need {
        Public | Signed | Member => {}
        Installation if caller.is_operator() => {}
        Installation => {
            return Err(ApiError::forbidden(
                "only the installation's operator token may do this: ask the operator of this installation",
            ))
        }
        Org(role) if caller.org_role() >= Some(role) => {}
        Org(role) => return Err(too_low(caller.org_role(), role, &format!("organization '{org_name}'"))),
        OnProject(role) => {
            let name = param("project").unwrap_or_default();
            let not_found = || ApiError::not_found(format!("project '{name}' not found"));
            let project = tx.project(&caller.org.id, &name).await.map_err(|err| absent_as(err, not_found))?;
            match caller.project_role(&project) {
                None => return Err(not_found()),
                Some(held) if held < role => return Err(too_low(Some(held), role, &format!("project '{name}'"))),
                Some(_) => {}
            }
            scope = Some(project);
        }
    }
    drop(tx);
    let note = match action {
        Some(action) => {
            let (actor_kind, actor_id, actor) = caller.actor();
            let event = AuditEvent {
                actor_kind: actor_kind.to_owned(),
                actor_id,
                actor,
                action: action.to_owned(),
                project: param("project"),
                target: parts.uri.path().to_owned(),
                source_addr: SourceAddr::of(&parts).0,
                ..AuditEvent::default()
            };
            AuditNote::started(caller.org.id.clone(), event)
        }
        None => AuditNote::default(),
    };
    parts.extensions.insert(note.clone());
    if let Some(project) = scope {
        parts.extensions.insert(ProjectScope { project, audit: note.clone() });
    }
    parts.extensions.insert(caller);
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status().is_success() {
        note.answered(&state, response.status()).await;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_rule_and_every_rule_a_route() {
        let document = crate::openapi();
        let mut documented = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
                assert!(
                    RULES.iter().any(|(m, p, _, _)| *m == method && p == path),
                    "{method} {path} has no access rule: add it to RULES"
                );
                documented.push((method, path.clone()));
            }
        }
        for (method, path, need, action) in RULES {
            if *path != "/metrics" {
                assert!(
                    documented.iter().any(|(m, p)| m == method && p == path),
                    "RULES names {method} {path}, which is no route"
                );
            }
            // Every change is audited; reads are not.
            let changes = *method != Method::GET && !matches!(need, Need::Public);
            let signs_in_or_out = path.starts_with("/api/v1/auth/");
            assert_eq!(action.is_some(), changes && !signs_in_or_out, "{method} {path}: audited action {action:?}");
        }
    }
}
