//! A raw HTTP/1.1 client for the tests and the load generator: one [`Conn`] per TCP
//! connection, requests sent one after another on it (keep-alive), bytes sent exactly as
//! written (`send_raw`), so tests can speak HTTP the way a broken or hostile client would. No
//! TLS, no redirects; never in a shipped binary (the CLI's client is
//! `maidian_analytics::client`, on hyper and rustls).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response: {0}")]
    Malformed(String),
}

type Result<T> = std::result::Result<T, ClientError>;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> std::result::Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send; build with [`Request::new`] and the `header`/`body` setters.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Request {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The request as bytes on the wire, with Host and Content-Length.
    pub fn encode(&self, host: &str) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\nhost: {host}\r\n", self.method, self.path);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    pub async fn send(&mut self, req: &Request) -> Result<Response> {
        self.send_raw(&req.encode(&self.host)).await
    }

    /// Sends bytes exactly as given (for malformed requests) and reads one response.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<Response> {
        self.stream.get_mut().write_all(bytes).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> Result<Response> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(ClientError::Malformed(
                "connection closed before a response".into(),
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Malformed(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = find("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| ClientError::Malformed("bad content-length".into()))?;
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await?;
            body
        } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked().await?
        } else {
            let mut body = Vec::new();
            self.stream.read_to_end(&mut body).await?;
            body
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| ClientError::Malformed("bad chunk size".into()))?;
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// One request on a fresh connection.
pub async fn send(addr: SocketAddr, req: &Request) -> Result<Response> {
    Conn::open(addr).await?.send(req).await
}
