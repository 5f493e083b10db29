//! Where request bodies are inflated and parsed: a few dedicated threads, off the async
//! workers, so that health and every other request keep answering while bodies decode.
//!
//! A fixed set of threads rather than tokio's blocking pool: the blocking pool starts a new
//! thread whenever none is idle at that instant, and every new thread gets its own malloc
//! arena that keeps what it freed; under a flood of bodies that is tens of megabytes of
//! memory that is never given back. Two threads keep two arenas.
//!
//! Bodies being read or waiting to be decoded are bounded too, over all requests and per
//! client, charged to [`BodyBudget`] as their bytes arrive.

use std::sync::{mpsc, Arc, Mutex};

use std::net::IpAddr;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::peer::{Held, PerClient};

type Job = Box<dyn FnOnce() + Send>;

/// The decoding threads.
pub struct DecodePool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl DecodePool {
    /// Starts `threads` threads (at least one).
    pub fn new(threads: usize) -> DecodePool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a decode thread");
            }
        }
        DecodePool {
            jobs: Mutex::new(tx),
        }
    }

    /// Runs `f` on a decode thread; `None` if the pool is gone (the process is stopping).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

/// Bytes of request bodies being read or waiting to be decoded, in KiB, across all requests,
/// and per client. Both are charged as bytes arrive ([`BodyCharge::add`]), never for bytes a
/// client only announced: a `Content-Length` without a body costs nothing.
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
    per_client: PerClient,
}

/// `bytes` in KiB, rounded up.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl BodyBudget {
    /// `total` bytes over all requests, `per_client` bytes for one client address.
    pub fn new(total: usize, per_client: usize) -> BodyBudget {
        let total_kib = kib(total).max(1);
        BodyBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            per_client: PerClient::new(per_client),
        }
    }

    /// An empty charge for one body from `client`.
    pub fn charge(&self, client: IpAddr) -> BodyCharge {
        BodyCharge {
            kib: self.kib.clone(),
            total_kib: self.total_kib,
            bytes: 0,
            permit: None,
            held: self.per_client.share(client),
        }
    }
}

/// One body's share of the [`BodyBudget`], grown as its bytes arrive and given back on drop
/// (after the body is decoded).
pub struct BodyCharge {
    kib: Arc<Semaphore>,
    total_kib: u32,
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
    /// The client's share.
    held: Held,
}

/// Why a body could not be charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeRefused {
    /// The client holds its whole per-client share already.
    ClientFull,
    /// The budget is closed (the process is stopping).
    Closed,
}

impl BodyCharge {
    /// Charges `n` more bytes: refused at once when the client's share is full, else waits
    /// for the global budget (which bounds memory while many clients send at once).
    pub async fn add(&mut self, n: usize) -> Result<(), ChargeRefused> {
        if n == 0 {
            return Ok(());
        }
        if !self.held.grow(n) {
            return Err(ChargeRefused::ClientFull);
        }
        let before = kib(self.bytes).min(self.total_kib);
        self.bytes = self.bytes.saturating_add(n);
        let wanted = kib(self.bytes).min(self.total_kib) - before;
        if wanted > 0 {
            let more = self
                .kib
                .clone()
                .acquire_many_owned(wanted)
                .await
                .map_err(|_| ChargeRefused::Closed)?;
            match &mut self.permit {
                Some(p) => p.merge(more),
                None => self.permit = Some(more),
            }
        }
        Ok(())
    }
}
