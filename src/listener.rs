//! How every listener (control API, Dapr HTTP, Dapr gRPC) takes and serves connections: TLS when configured,
//! HTTP/1.1 and HTTP/2 on one port (h2c by its preface, or ALPN under TLS), graceful shutdown, and the limits
//! that keep slow or greedy clients from holding the server: a per-client connection cap, a deadline for each
//! request head, a body-idle timeout, a header size limit, and HTTP/2 keepalive pings.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use outrigger_outbound::deadline::Deadline;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How often an HTTP/2 connection that has been quiet is pinged. gRPC streams (`SubscribeTopicEventsAlpha1`,
/// `GetWorkItems`) are quiet for long stretches by design, so HTTP/2 has no idle timeout; an unanswered ping
/// is what tells a dead or stalled peer from a waiting one.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a keepalive ping may go unanswered before the connection is closed.
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The limits every listener applies, from configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to send a request head (and, first, the TLS handshake and the protocol's first bytes).
    pub header_read_timeout: Duration,
    /// Time a request body may send nothing while it is read.
    pub body_idle_timeout: Duration,
    /// Connections one client address may hold on one listener; 0 = no cap.
    pub max_connections_per_client: u32,
    /// Largest request header section, HTTP/1.1 and HTTP/2.
    pub max_header_bytes: u32,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            body_idle_timeout: Duration::from_millis(config.body_idle_timeout_ms),
            max_connections_per_client: config.max_connections_per_client,
            max_header_bytes: config.max_header_bytes,
        }
    }
}

/// Serves `service` on `listener` until `shutdown`, letting in-flight requests finish.
pub async fn serve<S>(
    mut listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: tower::Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = auto::Builder::new(TokioExecutor::new());
    connections
        .http1()
        // A request head may take up to a sixteenth longer than the limit before it is refused.
        .timer(KeptTimers { late: limits.header_read_timeout / 16 })
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes as usize);
    connections
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_header_list_size(limits.max_header_bytes);
    let clients = Clients::default();
    loop {
        // axum's accept logs and backs off on errors such as running out of file descriptors, rather than ending.
        let (tcp, remote) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = clients.admit(remote.ip(), limits.max_connections_per_client) else {
            tracing::debug!(%remote, "connection closed: the client holds as many as OUTRIGGER_MAX_CONNECTIONS_PER_CLIENT");
            continue;
        };
        if let Err(err) = tcp.set_nodelay(true) {
            // Small answers go out at once rather than waiting on Nagle's algorithm for the client's ACK.
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let deadline = Instant::now() + limits.header_read_timeout;
        let (tls, connections, watcher) = (tls.clone(), connections.clone(), graceful.watcher());
        let idle = limits.body_idle_timeout;
        let service = tower::ServiceExt::map_request(service.clone(), move |mut request: hyper::Request<Incoming>| {
            // Where the call came from, for the API log.
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            // gRPC request streams pause legitimately (a subscriber waiting for events sends nothing).
            let grpc = request
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
            request.map(|body| match grpc {
                true => axum::body::Body::new(body),
                false => axum::body::Body::new(IdleBody { inner: body, idle, waiting: None, armed: false }),
            })
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    let io = TokioIo::new(Undecided::new(tcp, deadline));
                    watcher.watch(connections.serve_connection_with_upgrades(io, service).into_owned()).await
                }
                Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let io = TokioIo::new(Undecided::new(stream, deadline));
                        watcher.watch(connections.serve_connection_with_upgrades(io, service).into_owned()).await
                    }
                    Ok(Err(err)) => return tracing::debug!(%remote, error = %err, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%remote, "TLS handshake not done within the header-read timeout"),
                },
            };
            if let Err(err) = served {
                tracing::debug!(%remote, error = %err, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Open connections per client address on one listener.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One admitted connection; its client's count goes down when it is dropped. Uncounted when there is no cap.
struct Slot(Option<(Clients, IpAddr)>);

impl Clients {
    /// A slot for a connection from `ip`, or `None` when it already holds `cap` (0 = no cap).
    fn admit(&self, ip: IpAddr, cap: u32) -> Option<Slot> {
        if cap == 0 {
            return Some(Slot(None));
        }
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot(Some((self.clone(), ip))))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((clients, ip)) = &self.0 else { return };
        let mut counts = clients.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(ip);
            }
        }
    }
}

/// hyper's timer for HTTP/1's request-head deadline, on kept timers ([`Deadline`]) that may fire up to `late`
/// after it: hyper makes a timer for every request head it waits for and drops it once the head is read
/// (`TokioTimer` put each into the runtime's timer wheel and took it out again, ~600 instructions a request).
#[derive(Clone, Copy, Debug)]
struct KeptTimers {
    late: Duration,
}

/// A [`Deadline`] as hyper's `Sleep`.
struct HeadDeadline(Deadline);

impl Future for HeadDeadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for HeadDeadline {}

impl hyper::rt::Timer for KeptTimers {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadDeadline(Deadline::between(deadline.into(), self.late)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeadDeadline>() {
            Some(kept) => kept.get_mut().0.reset(new_deadline.into(), self.late),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A new connection whose reads fail once `deadline` passes, until it shows which protocol it speaks: a byte off
/// HTTP/2's preface means HTTP/1.1, whose header-read timeout hyper applies from there; the whole preface means
/// HTTP/2, watched by keepalive pings. hyper's own timers start only after that, so without this a client that
/// sends nothing, or part of the preface, would hold its connection for ever.
struct Undecided<IO> {
    io: IO,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes of the preface seen so far.
    matched: usize,
}

impl<IO> Undecided<IO> {
    fn new(io: IO, deadline: Instant) -> Undecided<IO> {
        Undecided { io, deadline: Some(Box::pin(tokio::time::sleep_until(deadline))), matched: 0 }
    }

    fn saw(&mut self, bytes: &[u8]) {
        if self.deadline.is_none() {
            return;
        }
        for &byte in bytes {
            if byte != H2_PREFACE[self.matched] {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == H2_PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Undecided<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if let Poll::Ready(read) = Pin::new(&mut self.io).poll_read(cx, buf) {
            read?;
            self.saw(&buf.filled()[before..]);
            return Poll::Ready(Ok(()));
        }
        if let Some(deadline) = &mut self.deadline {
            ready!(deadline.as_mut().poll(cx));
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the header-read timeout",
            )));
        }
        Poll::Pending
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Undecided<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that fails when the client sends nothing for `idle` while it is being read. The clock runs
/// only while the reader waits on the client, so a handler that reads slowly (an invocation whose callee is
/// slow to take the body) is not held against the client.
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            self.armed = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let (idle, armed) = (self.idle, std::mem::replace(&mut self.armed, true));
        let waiting = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if !armed {
            waiting.as_mut().reset(Instant::now() + idle);
        }
        ready!(waiting.as_mut().poll(cx));
        let message = format!("the client sent no request body data for {} ms", idle.as_millis());
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, message).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
