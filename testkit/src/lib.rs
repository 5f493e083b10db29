//! Helpers for maidian's tests and benchmarks, never for production code.
//!
//! - [`http`]: a raw HTTP/1.1 client (keep-alive, raw bytes) for talking to the collector.
//! - [`Collector`]: the real `maidian-collector` binary as a child process on a free port.
//! - [`mongodb_uri`] and [`fresh_db_name`]: the test database and a database per test.
//! - [`proxy`]: a TCP proxy in front of the database that loses replies or cuts connections.

pub mod http;
pub mod proxy;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The MongoDB-wire server of the test run (FerretDB, started by `tests/run.sh`).
pub fn mongodb_uri() -> anyhow::Result<String> {
    std::env::var("MAIDIAN_TEST_MONGODB_URI").context(
        "MAIDIAN_TEST_MONGODB_URI is not set: run the tests through `bash tests/run.sh`, \
         which starts FerretDB",
    )
}

/// A database name no other test uses.
pub fn fresh_db_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t_{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// A running collector; killed when dropped.
pub struct Collector {
    pub addr: std::net::SocketAddr,
    child: Child,
    stderr: Option<tokio::process::ChildStderr>,
}

impl Collector {
    /// Starts `binary` on 127.0.0.1:0 with `env` (plus a clean `MAIDIAN_*` environment) and
    /// waits for its "listening" line.
    pub async fn start(binary: &Path, env: &HashMap<String, String>) -> anyhow::Result<Collector> {
        let mut cmd = Command::new(binary);
        for (k, _) in std::env::vars() {
            if k.starts_with("MAIDIAN_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .envs(env)
            .env(
                "RUST_LOG",
                env.get("RUST_LOG").map_or("warn", String::as_str),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let mut stderr = child.stderr.take();
        let line = match line {
            Ok(Ok(Some(line))) => line,
            _ => {
                let mut err = String::new();
                if let Some(s) = stderr.as_mut() {
                    use tokio::io::AsyncReadExt;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut err))
                            .await;
                }
                bail!("collector did not start: {err}");
            }
        };
        let addr = line
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .with_context(|| format!("unexpected first line: {line}"))?;
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Collector {
            addr,
            child,
            stderr,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `kill -9`: the process dies at once, with whatever it had in memory.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits (30 s at most) for the process to exit; returns its exit code
    /// and stderr.
    pub async fn terminate(self) -> anyhow::Result<(Option<i32>, String)> {
        self.terminate_within(Duration::from_secs(30)).await
    }

    /// [`Collector::terminate`] with a given patience: a collector drains its queued writes
    /// and rollups before it exits.
    pub async fn terminate_within(
        mut self,
        wait: Duration,
    ) -> anyhow::Result<(Option<i32>, String)> {
        let pid = self.child.id().context("collector already exited")?;
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        let exit = tokio::time::timeout(wait, self.child.wait()).await??;
        let mut err = String::new();
        if let Some(mut s) = self.stderr.take() {
            use tokio::io::AsyncReadExt;
            s.read_to_string(&mut err).await?;
        }
        Ok((exit.code(), err))
    }
}

/// Names of the collections of `db` holding `needle` anywhere in a document: for tests that
/// check that an erasure left no trace.
pub async fn collections_containing(
    db: &mongodb::Database,
    needle: &str,
) -> anyhow::Result<Vec<String>> {
    use futures_util::TryStreamExt;
    let mut out = Vec::new();
    for name in db.list_collection_names().await? {
        let docs: Vec<mongodb::bson::Document> = db
            .collection(&name)
            .find(mongodb::bson::Document::new())
            .await?
            .try_collect()
            .await?;
        if docs.iter().any(|d| d.to_string().contains(needle)) {
            out.push(name);
        }
    }
    Ok(out)
}
