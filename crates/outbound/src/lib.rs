//! How the platform calls out to what its tenants registered — apps (push delivery, invocation, health
//! probes), HTTP endpoints and the hosts their components dial: which addresses it may reach ([`Egress`],
//! with its HTTP client in [`connect`]), how it identifies itself
//! to an app ([`AppChannel`]), whether the app is up ([`health`]), and the tenant's Resiliency policies for
//! each call ([`resiliency`]).

mod address;
mod connect;
pub mod health;
pub mod resiliency;

pub use address::{DialError, Egress, EgressRule, IpNet, PlatformService, PrivateAddresses, Reason, Refused};
pub use connect::refusal_in;

/// How the platform reaches one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppChannel {
    /// Base URL, no trailing slash needed.
    pub endpoint: String,
    /// Sent as `dapr-api-token`, so the app can tell calls come from the platform.
    pub app_token: Option<String>,
}

impl AppChannel {
    /// The URL of `path` (which starts with `/`, and may carry a query) on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.trim_end_matches('/'))
    }

    /// A request to `path` on the app, with the app token.
    pub fn request(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = client.request(method, self.url(path));
        match &self.app_token {
            Some(token) => request.header("dapr-api-token", token),
            None => request,
        }
    }
}
