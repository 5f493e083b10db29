//! A TCP proxy in front of the test database that can fail on purpose, for tests of what
//! happens when the network or the database lets the collector down.
//!
//! It reads the MongoDB wire protocol just enough to name each request (`OP_MSG`: the command
//! and its collection). Two faults:
//! - [`MongoProxy::drop_replies`]: the next `n` requests of a command on collections starting
//!   with a prefix reach the server, which executes them, but their reply never comes back:
//!   the connection is cut instead (a committed write whose acknowledgement is lost).
//! - [`MongoProxy::set_down`]: every open connection is cut and new ones are closed at once
//!   (the database is unreachable) until it is set up again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const OP_MSG: i32 = 2013;

#[derive(Default)]
struct Faults {
    /// (command, collection prefix, replies still to drop)
    drop: Vec<(String, String, u32)>,
}

struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    down: AtomicBool,
    /// Bumped on every `set_down(true)`: connections watch it and close.
    cut: watch::Sender<u64>,
    dropped: AtomicU64,
}

/// A running proxy; it stops with the test's runtime.
#[derive(Clone)]
pub struct MongoProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MongoProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<MongoProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(Faults::default()),
            down: AtomicBool::new(false),
            cut: watch::channel(0).0,
            dropped: AtomicU64::new(0),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if s.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(connection(s.clone(), client));
            }
        });
        Ok(MongoProxy { addr, shared })
    }

    /// A `mongodb://` URI through the proxy.
    pub fn uri(&self) -> String {
        format!("mongodb://{}/", self.addr)
    }

    /// Drops the replies of the next `n` `command`s on collections starting with `prefix`.
    pub fn drop_replies(&self, command: &str, prefix: &str, n: u32) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.drop.push((command.to_string(), prefix.to_string(), n));
        }
    }

    /// How many replies were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through again.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.shared.cut.send_modify(|n| *n += 1);
        }
    }
}

/// `(command, collection)` of an `OP_MSG` request, when its body comes first.
fn command_of(msg: &[u8]) -> Option<(String, String)> {
    let op = i32::from_le_bytes(msg.get(12..16)?.try_into().ok()?);
    if op != OP_MSG || *msg.get(20)? != 0 {
        return None;
    }
    // Section 0: a BSON document at 21; its first element (type, name, value) is the command.
    let kind = *msg.get(25)?;
    let name_end = 26 + msg.get(26..)?.iter().position(|b| *b == 0)?;
    let name = String::from_utf8_lossy(msg.get(26..name_end)?).into_owned();
    let collection = if kind == 2 {
        let len = i32::from_le_bytes(msg.get(name_end + 1..name_end + 5)?.try_into().ok()?);
        let start = name_end + 5;
        let end = start + usize::try_from(len).ok()?.saturating_sub(1);
        String::from_utf8_lossy(msg.get(start..end)?).into_owned()
    } else {
        String::new()
    };
    Some((name, collection))
}

async fn read_message(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.ok()?;
    let n = usize::try_from(i32::from_le_bytes(len)).ok()?;
    if !(16..=64 << 20).contains(&n) {
        return None;
    }
    let mut msg = vec![0u8; n];
    msg[..4].copy_from_slice(&len);
    stream.read_exact(&mut msg[4..]).await.ok()?;
    Some(msg)
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let mut cut = shared.cut.subscribe();
    // Request ids whose replies must not come back.
    let doomed: Arc<Mutex<Vec<i32>>> = Arc::default();
    let to_server = {
        let (shared, doomed) = (shared.clone(), doomed.clone());
        async move {
            while let Some(msg) = read_message(&mut client_r).await {
                if let Some((cmd, coll)) = command_of(&msg) {
                    let mut faults = shared.faults.lock().ok()?;
                    let hit = faults
                        .drop
                        .iter_mut()
                        .find(|(c, p, n)| *n > 0 && *c == cmd && coll.starts_with(p.as_str()));
                    if let Some((_, _, n)) = hit {
                        *n -= 1;
                        let id = i32::from_le_bytes(msg[4..8].try_into().ok()?);
                        doomed.lock().ok()?.push(id);
                    }
                }
                server_w.write_all(&msg).await.ok()?;
            }
            Some(())
        }
    };
    let to_client = async move {
        while let Some(msg) = read_message(&mut server_r).await {
            let response_to = i32::from_le_bytes(msg[8..12].try_into().ok()?);
            if doomed.lock().ok()?.contains(&response_to) {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                // The server executed the request; its answer is lost with the connection.
                return Some(());
            }
            client_w.write_all(&msg).await.ok()?;
        }
        Some(())
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
        _ = cut.changed() => {}
    }
}
