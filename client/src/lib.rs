//! maidian's small HTTP client (one module: [`Client`], its [`Limits`] and errors), for the
//! CLI asking a running collector: HTTP/1.1 through hyper's client
//! connection (the collector's own HTTP stack, no second one), over TCP or TLS (rustls with the
//! web PKI's roots, or a CA file the operator names; no OpenSSL). One request per connection;
//! connecting, the TLS handshake, the whole exchange are each bounded in time, and the answer
//! in size, so a collector (or anything pretending to be one) cannot hold or flood the CLI.
//!
//! The request carries the real host name (`Host`, and SNI plus certificate check over TLS).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};
use tokio_rustls::TlsConnector;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot read the CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("cannot connect to {authority}: {message}")]
    Connect { authority: String, message: String },
    #[error("TLS with {authority} failed: {message}")]
    Tls { authority: String, message: String },
    #[error("{authority} did not answer within {seconds} s")]
    Timeout { authority: String, seconds: u64 },
    #[error("the answer of {authority} is larger than {limit} bytes")]
    TooLarge { authority: String, limit: usize },
    #[error("HTTP exchange with {authority} failed: {message}")]
    Http { authority: String, message: String },
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TCP connect and TLS handshake.
    pub connect: Duration,
    /// The whole request and answer.
    pub exchange: Duration,
    /// Largest answer body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(10),
            exchange: Duration::from_secs(300),
            max_body: 1 << 30,
        }
    }
}

/// A collector's base URL: `http://host[:port]` or `https://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `url`; a path after the authority is ignored.
    pub fn parse(url: &str) -> Result<Endpoint, ClientError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(ClientError::BadUrl(format!(
                "the URL must start with https:// or http:// (got {url:?})"
            )));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(ClientError::BadUrl(
                "the URL must not carry credentials; pass the key with --read-key".into(),
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| ClientError::BadUrl(format!("bad IPv6 address in {url:?}")))?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p, url)?,
                None if after.is_empty() => default_port,
                None => return Err(ClientError::BadUrl(format!("bad authority in {url:?}"))),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p, url)?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(ClientError::BadUrl(format!("no host in {url:?}")));
        }
        Ok(Endpoint { tls, host, port })
    }

    /// `host:port` as it is dialled (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header: the port only when it is not the scheme's own.
    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The base URL, normalised.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host_header())
    }
}

fn parse_port(p: &str, url: &str) -> Result<u16, ClientError> {
    p.parse()
        .map_err(|_| ClientError::BadUrl(format!("bad port {p:?} in {url:?}")))
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// A client for one collector.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
    limits: Limits,
}

impl Client {
    /// A client for `url`; over TLS the server's certificate must chain to the web PKI's
    /// roots, or to the certificates of `ca_file` (PEM) when one is given.
    pub fn new(url: &str, ca_file: Option<&Path>, limits: Limits) -> Result<Client, ClientError> {
        let endpoint = Endpoint::parse(url)?;
        let tls = match endpoint.tls {
            false => None,
            true => Some(TlsConnector::from(Arc::new(tls_config(ca_file)?))),
        };
        Ok(Client {
            endpoint,
            tls,
            limits,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends `method target` (`/path?query`) with `headers` and `body`; the answer, whatever
    /// its status.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let request = self.request(method, target, headers, body)?;
        let authority = self.endpoint.authority();
        let seconds = self.limits.exchange.as_secs();
        match tokio::time::timeout(self.limits.exchange, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Timeout { authority, seconds }),
        }
    }

    async fn exchange(&self, request: hyper::Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        let authority = self.endpoint.authority();
        let connect_secs = self.limits.connect.as_secs();
        let timed_out = || ClientError::Timeout {
            authority: authority.clone(),
            seconds: connect_secs,
        };
        let tcp = tokio::time::timeout(
            self.limits.connect,
            TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| ClientError::Connect {
            authority: authority.clone(),
            message: e.to_string(),
        })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.over(TokioIo::new(tcp), request).await,
            Some(tls) => {
                let name = ServerName::try_from(self.endpoint.host.clone()).map_err(|e| {
                    ClientError::BadUrl(format!("{:?} is no host name: {e}", self.endpoint.host))
                })?;
                let stream = tokio::time::timeout(self.limits.connect, tls.connect(name, tcp))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| ClientError::Tls {
                        authority: authority.clone(),
                        message: e.to_string(),
                    })?;
                self.over(TokioIo::new(stream), request).await
            }
        }
    }

    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, self.endpoint.host_header());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::BadUrl(format!("bad request {target:?}: {e}")))
    }

    async fn over<T>(
        &self,
        io: TokioIo<T>,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, ClientError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let authority = self.endpoint.authority();
        let http = |e: hyper::Error| ClientError::Http {
            authority: authority.clone(),
            message: e.to_string(),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(http)?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "collector connection ended with an error");
            }
        });
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let limit = self.limits.max_body;
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ClientError::TooLarge {
                        authority: authority.clone(),
                        limit,
                    }
                } else {
                    ClientError::Http {
                        authority: authority.clone(),
                        message: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        driver.abort();
        Ok(Answer { status, body })
    }
}

/// rustls with the ring provider: the web PKI's roots, or the certificates of `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let failed = |message: String| ClientError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| failed(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed(e.to_string()))?;
            if certs.is_empty() {
                return Err(failed("no certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| failed(e.to_string()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls {
            authority: String::new(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_endpoints() {
        let e = |u: &str| Endpoint::parse(u).unwrap_or_else(|err| panic!("{u}: {err}"));
        assert_eq!(
            e("https://stats.example.com/api"),
            Endpoint {
                tls: true,
                host: "stats.example.com".into(),
                port: 443
            }
        );
        assert_eq!(e("http://127.0.0.1:5000").authority(), "127.0.0.1:5000");
        assert_eq!(e("https://[::1]:8443/").authority(), "[::1]:8443");
        assert_eq!(e("https://a.example:443").host_header(), "a.example");
        assert_eq!(e("http://a.example:8080").host_header(), "a.example:8080");
        assert_eq!(e("https://a.example:8443").url(), "https://a.example:8443");
        for bad in [
            "ftp://a.example",
            "a.example:80",
            "https://",
            "https://a.example:x",
            "https://user:pw@a.example",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// A server on loopback that answers every connection with `answer` (then holds it).
    async fn server(answer: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn quick() -> Limits {
        Limits {
            connect: Duration::from_secs(2),
            exchange: Duration::from_millis(500),
            max_body: 1024,
        }
    }

    #[tokio::test]
    async fn a_silent_huge_or_broken_answer_fails_in_bounded_time_and_memory() {
        let send = |url: String| async move {
            let c = Client::new(&url, None, quick()).unwrap_or_else(|e| panic!("{e}"));
            c.send("GET", "/api/health", &[], Vec::new()).await
        };
        // Says nothing.
        let silent = send(server(b"").await).await;
        assert!(
            matches!(silent, Err(ClientError::Timeout { .. })),
            "{silent:?}"
        );
        // Announces far more than the limit: refused once past it, never allocated.
        let huge = send(
            server(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000000\r\n\r\nxxxxxxxxxxxxxxxx").await,
        )
        .await;
        assert!(
            matches!(
                huge,
                Err(ClientError::TooLarge { .. }) | Err(ClientError::Timeout { .. })
            ),
            "{huge:?}"
        );
        // A chunk size that overflows: an error, not a panic.
        let chunk = send(
            server(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffff\r\nx",
            )
            .await,
        )
        .await;
        assert!(chunk.is_err(), "{chunk:?}");
        // A body over the limit that does arrive.
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 2048\r\n\r\n{}",
                "y".repeat(2048)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let over = send(server(big).await).await;
        assert!(
            matches!(over, Err(ClientError::TooLarge { .. })),
            "{over:?}"
        );
        // And one within it.
        let ok = send(server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ok.status, &ok.body[..]), (200, &b"ok"[..]));
    }
}
