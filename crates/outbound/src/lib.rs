//! How the platform calls out to what its tenants registered — apps (push delivery, invocation, health
//! probes), HTTP endpoints and the hosts their components dial: which addresses it may reach ([`Egress`],
//! with its HTTP clients in [`connect`], and the client of the calls it makes to apps, [`AppClient`]), how it
//! identifies itself to an app ([`AppChannel`]), whether the app is up ([`health`]), and the tenant's
//! Resiliency policies for each call ([`resiliency`]), and the deadlines calls are held to ([`deadline`]).

mod address;
mod app_call;
mod connect;
pub mod deadline;
pub mod health;
mod pool;
pub mod resiliency;

pub use address::{DialError, Egress, EgressRule, IpNet, PlatformService, PrivateAddresses, Reason, Refused};
pub use app_call::{AppAnswer, AppCall, AppCallError, AppClient};
pub use connect::{error_chain, refusal_in, DirectClient};
pub use pool::{AnswerBody, SendError};

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

    /// The URI of `path` (which starts with `/`, and may carry a query) on the app or endpoint at `base`, parsed
    /// already: the base's path, then `path`, then `path`'s query, as `url` joins them (dot segments resolved,
    /// what a path or query may not hold percent-encoded). Parsing the joined text as a URL would check the host
    /// a second time (IDNA included), a tenth of an invocation's instructions; and most paths are in that form
    /// already, so they go straight into the URI without the join (~1,600 instructions an invocation).
    pub fn uri(base: &reqwest::Url, path: &str) -> Result<http::Uri, http::uri::InvalidUri> {
        let base_path = base.path().trim_end_matches('/');
        if matches!(base.scheme(), "http" | "https") && joins_as_written(path) {
            // Pushed into one string sized once: `format!` cost ~500 instructions an invocation.
            let origin = &base[..url::Position::BeforePath];
            let mut joined = String::with_capacity(origin.len() + base_path.len() + path.len());
            for part in [origin, base_path, path] {
                joined.push_str(part);
            }
            return http::Uri::try_from(joined);
        }
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = base.clone();
        url.set_path(&format!("{base_path}{path}"));
        url.set_query(query);
        http::Uri::try_from(url.as_str())
    }

    /// `text` as one segment of a URL path: percent-encoded where a path segment needs it (`/`, spaces, ...), as
    /// the names the platform puts in paths (`/job/{name}`, `/configuration/{store}/{key}`) may hold anything.
    pub fn path_segment(text: &str) -> String {
        let mut url = reqwest::Url::parse("http://segment/").expect("a constant URL");
        url.path_segments_mut().expect("an http URL has a path").clear().push(text);
        url.path().trim_start_matches('/').to_owned()
    }
}

/// Whether `url` would join `path` (and its query) to an HTTP base as it is written: it starts with `/`, holds
/// no segment starting with `.` or `%` (a dot segment, maybe percent-encoded, which `url` resolves), and only
/// bytes `url` leaves as they are in a path (or a query). Others go through `url`: this errs on the side of it.
fn joins_as_written(path_and_query: &str) -> bool {
    const PATH_PUNCTUATION: &[u8] = b"-._~!$&'()*+,;=:@/%";
    const QUERY_PUNCTUATION: &[u8] = b"-._~!$&()*+,;=:@/?%";
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut previous = 0;
    let path_as_written = path.bytes().all(|byte| {
        let segment_start = previous == b'/';
        previous = byte;
        byte.is_ascii_alphanumeric()
            || (PATH_PUNCTUATION.contains(&byte) && !(segment_start && matches!(byte, b'.' | b'%')))
    });
    path.starts_with('/')
        && path_as_written
        && query.bytes().all(|byte| byte.is_ascii_alphanumeric() || QUERY_PUNCTUATION.contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URI `url`'s join makes (its text parsed again, as invocations did), to hold the direct one to.
    fn joined_by_url(base: &str, path: &str) -> String {
        let base = reqwest::Url::parse(base).unwrap();
        let (path, query) = path.split_once('?').map_or((path, None), |(path, query)| (path, Some(query)));
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query(query);
        http::Uri::try_from(url.as_str()).unwrap().to_string()
    }

    #[test]
    fn a_uri_is_what_urls_join_makes_of_any_path() {
        let as_written = [
            "/method/pay",
            "/a/b.c/d?x=1&y=a.b/c?d",
            "/v1/items/42/",
            "/x;y=1,2/@me:3",
            "/a..b/c.",
            "/a%20b",
            "/it's",
            "/",
        ];
        let through_url = [
            "/a/./b",
            "/a/../../b",
            "/a/%2e%2E/b",
            "/a/.%2e/b",
            "/%20/",
            "/a b?c d",
            "/ä?é",
            "/a\\b",
            "/q?it's",
            "/a#b",
            "/{x}|[y]^`z`",
            "/a?b\"c<d>",
            "no-slash",
        ];
        for base in [
            "http://127.0.0.1:3000",
            "http://app:80/",
            "https://api.example.com/v2/",
            "http://u:p@h:1/base",
            "http://h:1/p?x=1#f",
        ] {
            for path in as_written.iter().chain(&through_url) {
                let uri = AppChannel::uri(&reqwest::Url::parse(base).unwrap(), path).unwrap();
                assert_eq!(uri.to_string(), joined_by_url(base, path), "{base} + {path}");
            }
        }
        assert!(as_written.iter().all(|path| joins_as_written(path)));
        assert!(!through_url.iter().any(|path| joins_as_written(path)));
    }

    #[test]
    fn path_segments_keep_names_whole() {
        assert_eq!(AppChannel::path_segment("nightly"), "nightly");
        assert_eq!(AppChannel::path_segment("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(AppChannel::path_segment("ördér"), "%C3%B6rd%C3%A9r");
    }
}
