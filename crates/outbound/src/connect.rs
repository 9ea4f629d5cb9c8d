//! HTTP clients that keep to the egress rule ([`Egress`]). Names resolve through the rule; every connection's
//! peer — the address actually reached, whatever resolved or redirected there — is judged against the whole
//! rule (port included) before a request goes over it; redirects are judged hop by hop; and no proxy is used,
//! so the peer judged is the server called.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connection, HttpInfo};

use crate::address::Egress;

/// How long connecting to an app may take: an unreachable app fails fast instead of hanging its caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
            .pool_idle_timeout(Duration::from_secs(90))
            .dns_resolver(Arc::new(RuleResolver(self.clone())))
            .connector_layer(VerifyPeerLayer(self.clone()))
            .build()
            .expect("an HTTP client with rustls and a resolver builds")
    }
}

/// Resolves names with the system resolver and refuses names with an address the rule refuses.
struct RuleResolver(Egress);

impl reqwest::dns::Resolve for RuleResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            egress.check_resolved(&host, &addresses).map_err(|refused| Box::new(refused) as BoxError)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
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
struct VerifyPeer<S> {
    inner: S,
    egress: Egress,
}

impl<S, Target> tower::Service<Target> for VerifyPeer<S>
where
    S: tower::Service<Target, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let connecting = self.inner.call(target);
        let egress = self.egress.clone();
        Box::pin(async move {
            let connection = connecting.await?;
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
