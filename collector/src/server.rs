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

/// What bounds connections; from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
}

/// Serves `routes` on `listener` until `shutdown` resolves, then drains within
/// `limits.drain_timeout` and returns once every connection task has ended.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        full_logged = false;
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(warp::service(routes.clone()));
        let io = IdleIo::new(TokioIo::new(stream), limits.idle_timeout);
        let conn = graceful.watch(http.serve_connection(io, svc));
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
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
