//! Helpers for the tests of organizations, members, sessions and API keys: made through the API, as an
//! operator and its organizations' admins would.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{TestApp, ADMIN_TOKEN};

/// A password that follows the rules.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// Creates an organization with the operator token.
    pub async fn org(&self, name: &str) {
        self.post_json("/api/v1/orgs", json!({ "name": name })).await.expect(StatusCode::CREATED);
    }

    /// Grants `role` in `org` (on `project` when given) to the user `email`, made with [`PASSWORD`] when new;
    /// answers the member id.
    pub async fn member(&self, org: &str, email: &str, role: &str, project: Option<&str>) -> String {
        let body = json!({ "email": email, "password": PASSWORD, "role": role, "project": project });
        let answer = self.post_json(&format!("/api/v1/orgs/{org}/members"), body).await.expect(StatusCode::CREATED);
        answer.json()["id"].as_str().unwrap().to_owned()
    }

    /// Signs `email` in (to `org` when given); answers the session's tokens.
    pub async fn login(&self, email: &str, org: Option<&str>) -> Value {
        let body = json!({ "email": email, "password": PASSWORD, "organization": org });
        self.call_anonymous(Method::POST, "/api/v1/auth/login", body).await.expect(StatusCode::OK).json()
    }

    /// Signs `email` in to `org` and answers its access token.
    pub async fn access_token(&self, email: &str, org: &str) -> String {
        self.login(email, Some(org)).await["accessToken"].as_str().unwrap().to_owned()
    }

    /// GET as `credential`.
    pub async fn get_as(&self, credential: &str, path: &str) -> crate::harness::Answer {
        self.call_as(credential, None, Method::GET, path, None).await
    }

    /// POST a JSON body as `credential`.
    pub async fn post_as(&self, credential: &str, path: &str, body: Value) -> crate::harness::Answer {
        self.call_as(credential, None, Method::POST, path, Some(body)).await
    }

    /// The operator token, working in `org`.
    pub async fn operator_in(
        &self,
        org: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> crate::harness::Answer {
        self.call_as(ADMIN_TOKEN, Some(org), method, path, body).await
    }
}
