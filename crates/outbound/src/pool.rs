//! Connections to apps over plain HTTP/1, kept for the next call to the same origin: hyper's own HTTP/1
//! connection (`hyper::client::conn::http1`) under a pool of ours, for [`crate::DirectClient`].
//!
//! hyper-util's pooled client looked its pool up by scheme and authority, hashed with SipHash a byte at a time,
//! three times a call, and spawned a task per call to wait for the connection to come back: with its other
//! bookkeeping ~8k of a 1 KiB invocation's ~78k instructions. Here an origin's idle connections are found with
//! one fast hash of its text, and a connection goes back when its answer's body has ended. A connection idle longer than the idle timeout is closed
//! by a sweep that runs only while some connection is idle, so an idle installation does nothing.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::connect::{BoxError, RuleResolver, VerifyPeer};

/// How the pool opens a connection: the rule-keeping connector over plain TCP.
pub(crate) type PlainConnector = VerifyPeer<HttpConnector<RuleResolver>>;

/// Why a call to an app got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened (a refusal by the egress rule among the causes).
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    /// The connection failed before the answer's head arrived.
    #[error("the exchange failed")]
    Exchange(#[source] BoxError),
    /// The URI names no host.
    #[error("the URI {0} names no host")]
    NoHost(Uri),
}

/// The idle HTTP/1 connections of each origin; cheap to clone.
pub(crate) struct Pool<B> {
    shared: Arc<Shared<B>>,
    connector: PlainConnector,
}

impl<B> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Pool { shared: Arc::clone(&self.shared), connector: self.connector.clone() }
    }
}

struct Shared<B> {
    idle: Mutex<Idle<B>>,
    idle_timeout: Duration,
}

struct Idle<B> {
    /// Each origin's idle connections, the most recently used last. foldhash, seeded per process: an authority
    /// is tenant text, hashed twice a call.
    by_origin: HashMap<Origin, Vec<IdleConnection<B>>, foldhash::fast::RandomState>,
    /// Whether a sweep is running.
    sweeping: bool,
}

/// An origin as written. `Authority` hashes itself a byte at a time, lower-casing each (~700 instructions a look-up
/// here); its text is hashed in one pass. An origin written in two cases is two origins, each with its own
/// connections.
#[derive(Clone, Debug)]
struct Origin(Authority);

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Origin {}

impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

struct IdleConnection<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> Pool<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(connector: PlainConnector, idle_timeout: Duration) -> Pool<B> {
        let idle = Idle { by_origin: HashMap::default(), sweeping: false };
        Pool { shared: Arc::new(Shared { idle: Mutex::new(idle), idle_timeout }), connector }
    }

    /// Sends `request` (its URI absolute, `http`) over an idle connection to its origin, or a new one. A request
    /// that an idle connection closed before taking is sent again over a new one.
    pub(crate) async fn send(&self, mut request: Request<B>) -> Result<Response<AnswerBody<B>>, SendError> {
        let origin =
            Origin(request.uri().authority().cloned().ok_or_else(|| SendError::NoHost(request.uri().clone()))?);
        // HTTP/1 asks for the path alone, and the origin in `Host` (without any userinfo).
        if !request.headers().contains_key(HOST) {
            let host = origin.0.as_str().rsplit('@').next().unwrap_or_default();
            let host = HeaderValue::from_str(host).map_err(|_| SendError::NoHost(request.uri().clone()))?;
            request.headers_mut().insert(HOST, host);
        }
        let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
        if let Some(mut sender) = self.shared.take(&origin) {
            if sender.ready().await.is_ok() {
                match sender.try_send_request(request).await {
                    Ok(response) => return Ok(self.answer(origin, sender, response)),
                    Err(mut failed) => match failed.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(SendError::Exchange(failed.into_error().into())),
                    },
                }
            }
        }
        let mut sender = self.connect(&origin).await?;
        let response = sender.send_request(request).await.map_err(|err| SendError::Exchange(err.into()))?;
        Ok(self.answer(origin, sender, response))
    }

    async fn connect(&self, origin: &Origin) -> Result<SendRequest<B>, SendError> {
        let target = Uri::builder()
            .scheme("http")
            .authority(origin.0.clone())
            .path_and_query("/")
            .build()
            .map_err(|err| SendError::Connect(err.into()))?;
        let io = tower::ServiceExt::oneshot(self.connector.clone(), target).await.map_err(SendError::Connect)?;
        let (sender, connection) =
            http1::Builder::new().handshake(io).await.map_err(|err| SendError::Connect(err.into()))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a connection to an app ended with an error");
            }
        });
        Ok(sender)
    }

    fn answer(&self, origin: Origin, sender: SendRequest<B>, response: Response<Incoming>) -> Response<AnswerBody<B>> {
        let reuse = Reuse { pool: Arc::downgrade(&self.shared), origin, sender };
        response.map(|inner| AnswerBody::reusing(inner, reuse))
    }
}

impl<B: Send + 'static> Shared<B> {
    /// An idle connection to `origin` that is still open.
    fn take(&self, origin: &Origin) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().expect("connection pool lock");
        let connections = idle.by_origin.get_mut(origin)?;
        // Emptied lists stay until the sweep: removing one would hash the origin again.
        std::iter::from_fn(|| connections.pop()).map(|idle| idle.sender).find(|sender| !sender.is_closed())
    }

    /// Keeps `sender` for the next call to `origin`; starts the sweep if none runs.
    fn put(self: &Arc<Self>, origin: Origin, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("connection pool lock");
        idle.by_origin.entry(origin).or_default().push(IdleConnection { sender, since: Instant::now() });
        if !idle.sweeping {
            idle.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(self), self.idle_timeout));
        }
    }
}

/// Every `idle_timeout`, closes the connections idle that long (and those the app closed); stops once none is
/// idle. A connection may so stay idle up to twice the timeout, as with hyper-util's pool.
async fn sweep<B>(shared: Weak<Shared<B>>, idle_timeout: Duration) {
    loop {
        tokio::time::sleep(idle_timeout).await;
        let Some(shared) = shared.upgrade() else { return };
        let mut idle = shared.idle.lock().expect("connection pool lock");
        idle.by_origin.retain(|_, connections| {
            connections.retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() < idle_timeout);
            !connections.is_empty()
        });
        if idle.by_origin.is_empty() {
            idle.sweeping = false;
            return;
        }
    }
}

/// The connection an answer came over, to go back to the pool once its body has ended.
struct Reuse<B> {
    pool: Weak<Shared<B>>,
    origin: Origin,
    sender: SendRequest<B>,
}

/// An answer's body: hyper's, and the connection it came over, which goes back to the pool at the body's end. A
/// body dropped before its end takes its connection with it (HTTP/1 cannot send another request over it).
pub struct AnswerBody<B> {
    inner: Incoming,
    reuse: Option<Reuse<B>>,
}

impl<B> std::fmt::Debug for AnswerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerBody").field("inner", &self.inner).field("reused", &self.reuse.is_some()).finish()
    }
}

impl<B: Send + 'static> AnswerBody<B> {
    pub(crate) fn of(inner: Incoming) -> AnswerBody<B> {
        AnswerBody { inner, reuse: None }
    }

    fn reusing(inner: Incoming, reuse: Reuse<B>) -> AnswerBody<B> {
        let mut body = AnswerBody { inner, reuse: Some(reuse) };
        body.give_back_at_end();
        body
    }

    /// Gives the connection back if the body has ended (an empty body ends before it is read).
    fn give_back_at_end(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }

    fn give_back(&mut self) {
        if let Some(Reuse { pool, origin, sender }) = self.reuse.take() {
            if let Some(pool) = pool.upgrade() {
                pool.put(origin, sender);
            }
        }
    }
}

impl<B: Send + Unpin + 'static> Body for AnswerBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) => self.give_back_at_end(),
            Poll::Ready(Some(Err(_))) => self.reuse = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
