//! Asking a running collector instead of the store: `--url` + `--read-key`, or by itself when
//! the embedded store is locked by the collector that `maidian.toml` describes. Every reading
//! command maps to the HTTP endpoint that answers the same document.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use maidian_analytics::client::{self, Request, Response};
use serde::Deserialize;

/// A collector to ask: where, with which key, for which site and bots.
pub struct Remote {
    pub url: String,
    addr: SocketAddr,
    key: String,
    /// `site=` and `include_bots=` query parameters every request carries.
    common: Vec<(&'static str, String)>,
}

impl Remote {
    /// `url` is `http://host:port` (a path after it is ignored); `key` a read (or admin) key.
    pub async fn new(url: &str, key: Option<String>) -> anyhow::Result<Remote> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url must start with http:// (got {url:?})"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("{authority} has no address"))?;
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            anyhow!("asking {url} needs a read key: --read-key or MAIDIAN_READ_KEY")
        })?;
        Ok(Remote {
            url: format!("http://{authority}"),
            addr,
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
        let mut req = Request::new(method, &target)
            .header("x-api-key", &self.key)
            .header("connection", "close");
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = client::send(self.addr, &req)
            .await
            .with_context(|| format!("cannot reach the collector at {}", self.url))?;
        if (200..300).contains(&resp.status) {
            return Ok(resp.body);
        }
        bail!(
            "the collector at {} answered {}: {}",
            self.url,
            resp.status,
            message(&resp)
        )
    }
}

/// The `error.message` of an API error answer, or its first line.
fn message(resp: &Response) -> String {
    resp.json()
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| resp.text().lines().next().unwrap_or("").to_string())
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

/// The running collector a config file describes: its address and read key. `None` when the
/// file does not exist.
pub fn from_config(
    path: &Path,
    read_key: Option<String>,
) -> anyhow::Result<Option<(String, String)>> {
    #[derive(Deserialize, Default)]
    struct File {
        #[serde(default)]
        tracking_api: Api,
    }
    #[derive(Deserialize, Default)]
    struct Api {
        listen: Option<String>,
        read_key: Option<String>,
        admin_key: Option<String>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let file: File =
        toml::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))?;
    let listen = std::env::var("MAIDIAN_LISTEN")
        .ok()
        .or(file.tracking_api.listen)
        .unwrap_or_else(|| "127.0.0.1:5000".into());
    // A collector listening on every interface answers on the loopback too.
    let listen = listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    let key = read_key
        .or(file.tracking_api.read_key)
        .filter(|k| !k.is_empty())
        .or(file.tracking_api.admin_key)
        .unwrap_or_default();
    Ok(Some((format!("http://{listen}"), key)))
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
