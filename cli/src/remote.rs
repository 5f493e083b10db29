//! Asking a running collector instead of the store: `--url` + `--read-key`, or by itself when
//! the embedded store is locked by the collector that `maidian.toml` describes. Every reading
//! command maps to the HTTP endpoint that answers the same document.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use maidian_client::{Client, Limits};
use maidian_collector::config::Config;

/// A collector to ask: where, with which key, for which site and bots.
pub struct Remote {
    pub url: String,
    client: Client,
    key: String,
    /// `site=` and `include_bots=` query parameters every request carries.
    common: Vec<(&'static str, String)>,
}

impl Remote {
    /// `url` is `https://host[:port]` or `http://host[:port]` (a path after it is ignored);
    /// `key` a read (or admin) key; `ca_file` the CA certificates (PEM) an `https://`
    /// collector's certificate must chain to, instead of the web PKI's roots.
    pub fn new(url: &str, key: Option<String>, ca_file: Option<&Path>) -> anyhow::Result<Remote> {
        let client =
            Client::new(url, ca_file, Limits::default()).map_err(|e| anyhow!("--url: {e}"))?;
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            anyhow!("asking {url} needs a read key: --read-key or MAIDIAN_READ_KEY")
        })?;
        if !client.endpoint().tls && !is_loopback(&client.endpoint().host) {
            eprintln!(
                "maidian: warning: {url} is plain http: the key crosses the network in clear text; use https://"
            );
        }
        Ok(Remote {
            url: client.endpoint().url(),
            client,
            key,
            common: Vec::new(),
        })
    }

    /// Every request names `site` (when given) and counts bots when asked.
    pub fn scoped(mut self, site: Option<&str>, include_bots: bool) -> Remote {
        if let Some(s) = site {
            self.common.push(("site", s.to_string()));
        }
        if include_bots {
            self.common.push(("include_bots", "true".into()));
        }
        self
    }

    /// `GET path?query` (plus the common parameters); the body of a 2xx answer, else the
    /// collector's error message as one line.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<u8>> {
        self.send("GET", path, query, Vec::new()).await
    }

    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let body = self.get(path, query).await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("{} answered {path} with no JSON", self.url))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = self
            .send("POST", path, &[], serde_json::to_vec(body)?)
            .await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("{} answered {path} with no JSON", self.url))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<Vec<u8>> {
        let mut target = path.to_string();
        let pairs = self
            .common
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(query.iter().map(|(k, v)| (*k, v)));
        for (i, (k, v)) in pairs.enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(k);
            target.push('=');
            target.push_str(&encode(v));
        }
        let mut headers = vec![("x-api-key", self.key.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let resp = self
            .client
            .send(method, &target, &headers, body)
            .await
            .with_context(|| format!("cannot reach the collector at {}", self.url))?;
        if (200..300).contains(&resp.status) {
            return Ok(resp.body.to_vec());
        }
        bail!(
            "the collector at {} answered {}: {}",
            self.url,
            resp.status,
            message(&resp.body)
        )
    }
}

/// Whether `host` is this machine (a key sent there in clear text stays on it).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `error.message` of an API error answer, or its first line.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The running collector `config` describes (the collector's own, as it loads it): its address,
/// on the loopback when it listens on every interface, and the key to ask it with: `read_key`,
/// else its read key, else its admin key.
pub fn of_config(config: &Config, read_key: Option<String>) -> (String, String) {
    let api = &config.tracking_api;
    let listen = match api.listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    };
    let key = read_key
        .or(Some(api.read_key.clone()))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| api.admin_key.clone());
    (format!("http://{listen}"), key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            super::encode("page_view,click@/p q"),
            "page_view%2Cclick%40%2Fp%20q"
        );
        assert_eq!(super::encode("日"), "%E6%97%A5");
    }
}
