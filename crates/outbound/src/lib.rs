//! How the platform calls out to what its tenants registered — apps (push delivery, invocation, health
//! probes), HTTP endpoints and the hosts their components dial: which addresses it may reach ([`Egress`],
//! with its HTTP clients in [`connect`], and the client of the calls it makes to apps, [`AppClient`]), how it
//! identifies itself to an app ([`AppChannel`]), whether the app is up ([`health`]), and the tenant's
//! Resiliency policies for each call ([`resiliency`]).

mod address;
mod app_call;
mod connect;
pub mod health;
pub mod resiliency;

pub use address::{DialError, Egress, EgressRule, IpNet, PlatformService, PrivateAddresses, Reason, Refused};
pub use app_call::{AppAnswer, AppCall, AppCallError, AppClient};
pub use connect::{error_chain, refusal_in, DirectClient};

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

    /// [`AppChannel::url`] for an endpoint parsed already: the base's path, then `path`, then `path`'s query.
    /// Parsing the joined text again would check the host a second time (IDNA included), a tenth of an
    /// invocation's instructions.
    pub fn join(base: &reqwest::Url, path: &str) -> reqwest::Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query(query);
        url
    }

    /// `text` as one segment of a URL path: percent-encoded where a path segment needs it (`/`, spaces, ...), as
    /// the names the platform puts in paths (`/job/{name}`, `/configuration/{store}/{key}`) may hold anything.
    pub fn path_segment(text: &str) -> String {
        let mut url = reqwest::Url::parse("http://segment/").expect("a constant URL");
        url.path_segments_mut().expect("an http URL has a path").clear().push(text);
        url.path().trim_start_matches('/').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_names_whole() {
        assert_eq!(AppChannel::path_segment("nightly"), "nightly");
        assert_eq!(AppChannel::path_segment("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(AppChannel::path_segment("ördér"), "%C3%B6rd%C3%A9r");
    }
}
