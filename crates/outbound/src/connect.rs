//! HTTP clients that keep to the egress rule ([`Egress`]). Names resolve through the rule; every connection's
//! peer — the address actually reached, whatever resolved or redirected there — is judged against the whole
//! rule (port included) before a request goes over it; redirects are judged hop by hop; and no proxy is used,
//! so the peer judged is the server called. Two clients share that connector: reqwest's, for the HTTP output
//! binding and the control API's OIDC reads, and hyper's own ([`DirectClient`]) for invocations and, following redirects, for the calls the
//! platform makes to apps ([`crate::AppClient`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connection, HttpConnector, HttpInfo};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::address::Egress;
use crate::pool::{AnswerBody, PlainConnector, Pool, SendError};

/// How long connecting to an app may take: an unreachable app fails fast instead of hanging its caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may wait idle for the next call.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Egress {
    /// An HTTP client that keeps to this rule. `follow_redirects`: whether redirects are followed (each hop
    /// checked) or handed back to the caller as they are.
    pub fn client(&self, follow_redirects: bool) -> reqwest::Client {
        let redirect = if follow_redirects {
            let egress = self.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("stopped after 10 redirects");
                }
                match egress.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        reqwest::Client::builder()
            .redirect(redirect)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .dns_resolver(Arc::new(RuleResolver(self.clone())))
            .connector_layer(VerifyPeerLayer(self.clone()))
            .build()
            .expect("an HTTP client with rustls and a resolver builds")
    }
}

/// hyper's HTTP client over the rule-keeping connector, without reqwest's layers: reqwest wraps every request in
/// its redirect-following layer whatever the policy, and that layer and its response parse the URL again as text;
/// with its body adapters, 29k of a 1 KiB invocation's 113k instructions. Plain HTTP goes over hyper's HTTP/1
/// connections in a pool of ours ([`crate::pool`]); HTTPS, where ALPN may choose HTTP/2, over hyper-util's pooled
/// client. It follows no redirects (an invocation hands them back, as daprd does) and sets no timeout beyond
/// connecting: the caller's Resiliency policy bounds a call. `B` is the request body.
pub struct DirectClient<B> {
    pub(crate) plain: Pool<B>,
    tls: Client<HttpsConnector<PlainConnector>, B>,
}

type HttpsConnector<S> = hyper_rustls::HttpsConnector<S>;

impl<B> Clone for DirectClient<B> {
    fn clone(&self) -> Self {
        DirectClient { plain: self.plain.clone(), tls: self.tls.clone() }
    }
}

impl<B> DirectClient<B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends `request` (its URI absolute, `http` or `https`).
    pub async fn request(&self, request: http::Request<B>) -> Result<http::Response<AnswerBody<B>>, SendError> {
        if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            return self.plain.send(request).await;
        }
        let response = self.tls.request(request).await.map_err(|err| SendError::Exchange(err.into()))?;
        Ok(response.map(AnswerBody::of))
    }
}

impl Egress {
    /// A [`DirectClient`] that keeps to this rule.
    pub fn direct_client<B>(&self) -> DirectClient<B>
    where
        B: http_body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut http = HttpConnector::new_with_resolver(RuleResolver(self.clone()));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let plain = VerifyPeer { inner: http, egress: self.clone() };
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring's provider has safe default protocol versions")
            .https_only()
            .enable_all_versions()
            .wrap_connector(plain.clone());
        DirectClient {
            plain: Pool::new(plain, IDLE_TIMEOUT),
            tls: Client::builder(TokioExecutor::new()).pool_idle_timeout(IDLE_TIMEOUT).build(tls),
        }
    }
}

/// Resolves names with the system resolver and refuses names with an address the rule refuses.
#[derive(Clone)]
pub(crate) struct RuleResolver(Egress);

impl RuleResolver {
    async fn resolve(egress: Egress, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        egress.check_resolved(host, &addresses).map_err(|refused| Box::new(refused) as BoxError)?;
        Ok(addresses)
    }
}

impl reqwest::dns::Resolve for RuleResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            let addresses = RuleResolver::resolve(egress, name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl tower::Service<Name> for RuleResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let egress = self.0.clone();
        Box::pin(async move { Ok(RuleResolver::resolve(egress, name.as_str()).await?.into_iter()) })
    }
}

/// Wraps the client's connector: judges each new connection's peer.
#[derive(Clone)]
struct VerifyPeerLayer(Egress);

impl<S> tower::Layer<S> for VerifyPeerLayer {
    type Service = VerifyPeer<S>;

    fn layer(&self, inner: S) -> VerifyPeer<S> {
        VerifyPeer { inner, egress: self.0.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct VerifyPeer<S> {
    inner: S,
    egress: Egress,
}

impl<S, Target> tower::Service<Target> for VerifyPeer<S>
where
    S: tower::Service<Target>,
    S::Error: Into<BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let connecting = self.inner.call(target);
        let egress = self.egress.clone();
        Box::pin(async move {
            let connection = connecting.await.map_err(Into::into)?;
            let mut extras = http::Extensions::new();
            connection.connected().get_extras(&mut extras);
            // Every TCP connection carries its peer; one without (a Unix socket) is not something tenants
            // may point the platform at.
            let peer =
                extras.get::<HttpInfo>().map(HttpInfo::remote_addr).ok_or("connection without a peer address")?;
            egress.check(peer)?;
            Ok(connection)
        })
    }
}

/// An error with its causes: hyper's "client error (Connect)" alone says nothing (a refused peer says so in its
/// cause).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first refusal in an error's chain: a refused address reads better than "error sending request".
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<crate::Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}
