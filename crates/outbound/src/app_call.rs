//! Calls the platform makes to an app of its own accord — a pub/sub delivery, a job's trigger, an input binding's
//! event, the reads of `/dapr/subscribe` and of a binding's route, health probes, configuration updates — over
//! hyper's client on the rule-keeping connector ([`DirectClient`]), with by hand the little of reqwest they used:
//! redirects followed hop by hop (at most 10, each hop's URL judged by the egress rule before its connection is,
//! as Go's client and so daprd's app channel follow them), one deadline over the whole exchange, and the answer
//! read whole, bounded. reqwest's redirect layer parsed every request's URL again from text whether or not it was
//! redirected, with its adapters ~29k instructions a call (`docs/decisions.md`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION};
use http::header::{PROXY_AUTHORIZATION, TRANSFER_ENCODING, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};

use crate::connect::{error_chain, DirectClient};
use crate::{AppChannel, Egress};

/// Redirects followed, at most, as Go's client follows them.
const MAX_REDIRECTS: usize = 10;

/// The largest answer read from an app (daprd's default `max-body-size`): an app cannot make a worker hold more.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The platform's token for the app: sent to the app's own origin only, like the credentials below.
const DAPR_API_TOKEN: HeaderName = HeaderName::from_static("dapr-api-token");

/// The client of calls to apps; cheap to clone.
#[derive(Clone)]
pub struct AppClient {
    client: DirectClient<Full<Bytes>>,
    egress: Egress,
}

impl Egress {
    /// An [`AppClient`] that keeps to this rule.
    pub fn app_client(&self) -> AppClient {
        AppClient { client: self.direct_client(), egress: self.clone() }
    }
}

/// One call to an app, built by [`AppChannel::call`].
#[derive(Debug)]
pub struct AppCall {
    method: Method,
    /// Text, as [`AppChannel::url`] makes it: parsed when sent, so that a bad one is the call's failure.
    url: String,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
    /// The App ID's token is no header value: the call is refused rather than sent without it.
    unsendable_token: bool,
}

/// What an app answered: its status and its whole body.
#[derive(Debug)]
pub struct AppAnswer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a call to an app got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AppCallError {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("{0} is not a URL an app can be called at")]
    BadUrl(String),
    #[error("redirected to {0}, which is not an http or https URL")]
    BadRedirect(String),
    #[error("stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("redirected to {url}: {refused}")]
    Refused { url: String, refused: crate::Refused },
    #[error("the app's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("the App ID's app token cannot be sent as a header; set another with `outrigger appid update`")]
    UnsendableToken,
    #[error("{0}")]
    Failed(String),
}

impl AppCallError {
    /// Whether the deadline passed before the answer was read.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AppCallError::TimedOut(_))
    }
}

impl AppChannel {
    /// A call of `method` to `path` (with its query) on the app, carrying the app token; no body, and a
    /// deadline of `timeout` over the whole exchange.
    pub fn call(&self, method: Method, path: &str, timeout: Duration) -> AppCall {
        let mut headers = HeaderMap::new();
        let token = self.app_token.as_deref().map(HeaderValue::from_str);
        if let Some(Ok(token)) = &token {
            headers.insert(DAPR_API_TOKEN, token.clone());
        }
        let unsendable_token = matches!(token, Some(Err(_)));
        AppCall { method, url: self.url(path), headers, body: Bytes::new(), timeout, unsendable_token }
    }
}

impl AppCall {
    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> AppCall {
        self.headers.append(name, value);
        self
    }

    /// Sets the body and its `content-type`.
    pub fn body(mut self, content_type: &'static str, body: impl Into<Bytes>) -> AppCall {
        self.headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.body = body.into();
        self
    }

    /// Sets a JSON body (`application/json`).
    pub fn json(self, value: &serde_json::Value) -> AppCall {
        let body = serde_json::to_vec(value).expect("a JSON value serializes");
        self.body("application/json", body)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path called (without its query).
    pub fn path(&self) -> &str {
        // Byte searches: `split_once("://")` sets up a substring searcher, and the three searches cost ~590
        // instructions for every call to an app the API log keeps.
        let url = self.url.as_bytes();
        let find = |from: usize, wanted: fn(&u8) -> bool| url[from..].iter().position(wanted).map(|at| from + at);
        let after_scheme = url.windows(3).position(|window| window == b"://").map_or(0, |at| at + 3);
        let ends_path = |byte: &u8| matches!(byte, b'?' | b'#');
        // The path starts at the first `/` after the host, unless a query or fragment comes first.
        match find(after_scheme, |byte| matches!(byte, b'/' | b'?' | b'#')) {
            Some(start) if url[start] == b'/' => &self.url[start..find(start, ends_path).unwrap_or(url.len())],
            _ => "/",
        }
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl AppClient {
    /// Sends `call`, following redirects, and reads the final answer whole.
    pub async fn send(&self, call: AppCall) -> Result<AppAnswer, AppCallError> {
        let timeout = call.timeout;
        tokio::time::timeout(timeout, self.exchange(call)).await.map_err(|_| AppCallError::TimedOut(timeout))?
    }

    async fn exchange(&self, call: AppCall) -> Result<AppAnswer, AppCallError> {
        if call.unsendable_token {
            return Err(AppCallError::UnsendableToken);
        }
        let AppCall { mut method, url, mut headers, mut body, .. } = call;
        let mut uri = Uri::try_from(url.as_str()).map_err(|_| AppCallError::BadUrl(url.clone()))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = http::Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            let response = self.client.request(request).await.map_err(|err| AppCallError::Failed(error_chain(&err)))?;
            let status = response.status();
            let Some(next) = redirect_target(&uri, status, response.headers())? else {
                let limited = Limited::new(response.into_body(), MAX_ANSWER_BYTES);
                let body = limited.collect().await.map_err(|err| {
                    match err.downcast::<http_body_util::LengthLimitError>() {
                        Ok(_) => AppCallError::TooLarge,
                        Err(err) => AppCallError::Failed(error_chain(&*err)),
                    }
                })?;
                return Ok(AppAnswer { status, body: body.to_bytes() });
            };
            self.egress.check_url(&next).map_err(|refused| AppCallError::Refused { url: next.to_string(), refused })?;
            let next_uri = Uri::try_from(next.as_str()).map_err(|_| AppCallError::BadRedirect(next.to_string()))?;
            if !same_origin(&uri, &next_uri) {
                for credential in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE, DAPR_API_TOKEN] {
                    headers.remove(credential);
                }
            }
            // 301, 302 and 303 go on as a GET without the body, as browsers, Go's client and reqwest do; 307 and
            // 308 repeat the request as it was.
            if matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER) {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = Bytes::new();
                for framing in [CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING, TRANSFER_ENCODING] {
                    headers.remove(framing);
                }
            }
            uri = next_uri;
        }
        Err(AppCallError::TooManyRedirects)
    }
}

/// Where an answer of `status` sends the request next: `None` when it is not a redirect to follow (not a
/// 301/302/303/307/308, or without a readable `Location`; the answer is then the final one, as with reqwest).
fn redirect_target(from: &Uri, status: StatusCode, headers: &HeaderMap) -> Result<Option<url::Url>, AppCallError> {
    let followed = [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ];
    if !followed.contains(&status) {
        return Ok(None);
    }
    let Some(location) = headers.get(LOCATION).and_then(|value| value.to_str().ok()) else { return Ok(None) };
    let Ok(base) = url::Url::parse(&from.to_string()) else { return Ok(None) };
    let Ok(next) = base.join(location) else { return Ok(None) };
    if !matches!(next.scheme(), "http" | "https") {
        return Err(AppCallError::BadRedirect(next.to_string()));
    }
    Ok(Some(next))
}

/// Whether two URIs share scheme, host and port: credentials go no further.
fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |uri: &Uri| uri.port_u16().or(if uri.scheme_str() == Some("https") { Some(443) } else { Some(80) });
    a.scheme_str() == b.scheme_str()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && port(a) == port(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_path_is_read_from_its_url() {
        let channel = AppChannel { endpoint: "http://app:3000/base/".to_owned(), app_token: Some("t".to_owned()) };
        let call = channel.call(Method::POST, "/orders?x=1", Duration::from_secs(1));
        assert_eq!(call.path(), "/base/orders");
        assert_eq!(call.headers().get(DAPR_API_TOKEN).unwrap(), "t");
        let bare = AppChannel { endpoint: "http://app:3000".to_owned(), app_token: None };
        assert_eq!(bare.call(Method::GET, "", Duration::from_secs(1)).path(), "/");
        let url = |url: &str| AppCall { url: url.to_owned(), ..bare.call(Method::GET, "", Duration::from_secs(1)) };
        assert_eq!(url("http://app:3000/a/b#part?not-a-query").path(), "/a/b");
        assert_eq!(url("http://app:3000?x=/y").path(), "/");
        assert_eq!(url("https://app/a:b//c").path(), "/a:b//c");
    }

    #[tokio::test]
    async fn a_token_no_header_can_carry_refuses_the_call() {
        let channel = AppChannel { endpoint: "http://app:3000".to_owned(), app_token: Some("line\nbreak".to_owned()) };
        let call = channel.call(Method::POST, "/orders", Duration::from_secs(1));
        assert!(call.headers().get(DAPR_API_TOKEN).is_none());
        let client = Egress::private(crate::PrivateAddresses::Allowed).app_client();
        assert!(matches!(client.send(call).await, Err(AppCallError::UnsendableToken)));
    }

    #[test]
    fn redirects_resolve_against_the_url_they_answer() {
        let from: Uri = "http://app:3000/a/b?q=1".parse().unwrap();
        let headers = |location: &str| HeaderMap::from_iter([(LOCATION, HeaderValue::from_str(location).unwrap())]);
        let next = redirect_target(&from, StatusCode::TEMPORARY_REDIRECT, &headers("c")).unwrap().unwrap();
        assert_eq!(next.as_str(), "http://app:3000/a/c");
        let next = redirect_target(&from, StatusCode::FOUND, &headers("https://other/x")).unwrap().unwrap();
        assert_eq!(next.as_str(), "https://other/x");
        assert!(redirect_target(&from, StatusCode::OK, &headers("/x")).unwrap().is_none());
        assert!(redirect_target(&from, StatusCode::FOUND, &HeaderMap::new()).unwrap().is_none());
        assert!(matches!(
            redirect_target(&from, StatusCode::FOUND, &headers("file:///etc/passwd")),
            Err(AppCallError::BadRedirect(_))
        ));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert!(same_origin(&uri("http://App:80/a"), &uri("http://app/b")));
        assert!(!same_origin(&uri("http://app/a"), &uri("https://app/a")));
        assert!(!same_origin(&uri("http://app:3000/a"), &uri("http://app:3001/a")));
        assert!(!same_origin(&uri("http://app/a"), &uri("http://evil/a")));
    }
}
