//! The HTTP/1.1 server under the warp filters: hyper with a timer, so that a client that is slow
//! or silent is cut off instead of holding a connection forever.
//!
//! warp 0.4's own server builds hyper without a timer (no header timeout at all) and its graceful
//! shutdown waits for every connection however long it stalls. Here the filter is served as a
//! tower service through `hyper::server::conn::http1` with:
//! - `header_timeout`: a request head must be complete this long after the connection opens or
//!   after the previous response (hyper's own timer), which also bounds an idle keep-alive
//!   connection;
//! - `idle_timeout`: a connection on which nothing was read or written for this long is closed
//!   ([`IdleIo`]), such as a client that stops reading its answer;
//! - `max_connections`: past this many open connections the server stops accepting (new ones
//!   wait in the kernel's backlog) until one closes;
//! - `max_per_client`: past this many open connections from one address (trusted proxies
//!   excepted, they carry many clients) a new one is answered 429 and closed, so one host
//!   cannot hold every slot;
//! - `drain_timeout`: after the shutdown signal, in-flight requests get this long to finish, then
//!   the connections left are closed.
//!
//! The body's own deadline is the ingest filter's (`routes::ingest`), where it can answer 408.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::peer::{Peer, PerClient, TrustedProxies};

/// What bounds connections; from `[limits]`.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_per_client: usize,
    /// Peers whose connections are not counted per client.
    pub trusted: TrustedProxies,
    pub drain_timeout: Duration,
}

/// The body a connection past its address's cap gets before it is closed.
const TOO_MANY_CONNECTIONS: &str = r#"{"error":{"code":"too_many_connections","message":"too many open connections from this client; retry shortly"}}"#;

/// Serves `routes` on `listener` until `shutdown` resolves, then drains within
/// `limits.drain_timeout` and returns once every connection task has ended.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::new(limits.max_per_client);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut full_logged = false;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        while conns.try_join_next().is_some() {}
        if slots.available_permits() == 0 && !full_logged {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; new connections wait"
            );
            full_logged = true;
        }
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        full_logged = false;
        let _ = stream.set_nodelay(true);
        let share = match limits.trusted.trusts(peer.ip()) {
            true => None,
            false => match per_client.take(peer.ip(), 1) {
                Some(share) => Some(share),
                None => {
                    tracing::debug!("per-client connection cap reached; connection refused");
                    conns.spawn(refuse(stream, slot));
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(WithPeer {
            inner: warp::service(routes.clone()),
            peer: Peer(peer),
        });
        let io = IdleIo::new(TokioIo::new(stream), limits.idle_timeout);
        let conn = graceful.watch(http.serve_connection(io, svc));
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((slot, share));
        });
    }
    drop(listener);
    let open = conns.len();
    tracing::info!(open, "draining connections");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = conns.len(),
            "drain timeout reached; closing the connections left"
        );
        conns.abort_all();
    }
    while conns.join_next().await.is_some() {}
}

/// Answers a connection past its address's cap with a 429 and closes it, within a second.
async fn refuse(mut stream: tokio::net::TcpStream, slot: tokio::sync::OwnedSemaphorePermit) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{}",
            TOO_MANY_CONNECTIONS.len(),
            TOO_MANY_CONNECTIONS
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    drop(slot);
}

/// The warp service with the connection's peer address put into every request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: Peer,
}

impl<S, B> tower_service::Service<hyper::Request<B>> for WithPeer<S>
where
    S: tower_service::Service<hyper::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: hyper::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        self.inner.call(req)
    }
}

/// Connection errors surface on accept and mean nothing; anything else (out of file
/// descriptors) is worth a pause before the next try.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A connection's IO that fails with `TimedOut` once neither a read nor a write has made
/// progress for `idle` while one of them waits.
pub struct IdleIo<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, idle: Duration) -> IdleIo<T> {
        IdleIo {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// A read or write's outcome: progress moves the deadline; waiting past it times out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, io: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match io {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, io)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, io)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, io)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
