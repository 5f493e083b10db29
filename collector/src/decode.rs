//! Where request bodies are inflated and parsed: a few dedicated threads, off the async
//! workers, so that health and every other request keep answering while bodies decode.
//!
//! A fixed set of threads rather than tokio's blocking pool: the blocking pool starts a new
//! thread whenever none is idle at that instant, and every new thread gets its own malloc
//! arena that keeps what it freed; under a flood of bodies that is tens of megabytes of
//! memory that is never given back. Two threads keep two arenas.
//!
//! Bodies waiting to be read are bounded too: a request reserves its body's size (its
//! `content-length`, else the largest body allowed) from [`BodyBudget`] before reading it.

use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

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

/// Bytes of request bodies being read or waiting to be decoded, in KiB, across all requests.
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

/// `bytes` in KiB, rounded up, at least 1.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1)
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let total_kib = kib(bytes);
        BodyBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` (capped at the whole budget) can be held; the permit frees them.
    pub async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let wanted = kib(bytes).min(self.total_kib);
        self.kib.clone().acquire_many_owned(wanted).await.ok()
    }
}
