//! Who is on the other end of a request, and what each client may hold at once.
//!
//! The server puts the connection's [`Peer`] address into every request. The client is that
//! address, unless it is one of the configured trusted proxies (`[tracking_api]
//! trusted_proxies`): then the client is the rightmost address of `X-Forwarded-For` (or of
//! `Forwarded: for=`) that is not itself a trusted proxy, since every proxy appends the address
//! it saw and only the trusted ones can be believed. A header from an untrusted peer is
//! ignored, so a client cannot choose its own address.
//!
//! [`PerClient`] counts what one client holds (open connections, body bytes in flight) so that
//! one host cannot take the shares every other client needs. The counts live in memory only
//! and are never logged with the address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use warp::http::HeaderMap;

/// The connection's remote address, put into each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// One CIDR block: `10.0.0.0/8`, `::1/128`, or a bare address (all its bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block (10.0.0.0/8, ::1)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

/// The trusted proxies, from the configuration.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses every entry; the first that is not a CIDR block is the error.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<Cidr>, String>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer's, or when the peer is a trusted proxy, the rightmost
    /// forwarded address that is not (the leftmost forwarded one if all are).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for ip in chain.into_iter().rev() {
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The addresses of `X-Forwarded-For` (every such header, in order), or of `Forwarded`'s
/// `for=` when there is no `X-Forwarded-For`; entries that are no address (`unknown`,
/// obfuscated names) are skipped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let xff: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_forwarded_addr(s.trim()))
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("for")
                .then(|| parse_forwarded_addr(v.trim().trim_matches('"')))
                .flatten()
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// Amounts held now per key (a client address, a read key), each capped; a [`Held`] gives
/// its share back when dropped.
#[derive(Debug)]
pub struct PerKey<K> {
    held: Arc<Mutex<HashMap<K, usize>>>,
    cap: usize,
}

impl<K> Clone for PerKey<K> {
    fn clone(&self) -> Self {
        PerKey {
            held: self.held.clone(),
            cap: self.cap,
        }
    }
}

/// What one client address holds.
pub type PerClient = PerKey<IpAddr>;

impl<K: Hash + Eq + Clone> PerKey<K> {
    pub fn new(cap: usize) -> PerKey<K> {
        PerKey {
            held: Arc::default(),
            cap: cap.max(1),
        }
    }

    /// Takes `n` more for `key`, or `None` when that would pass the cap (nothing is taken).
    pub fn take(&self, key: K, n: usize) -> Option<Held<K>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let now = held.entry(key.clone()).or_insert(0);
        if now.saturating_add(n) > self.cap {
            if *now == 0 {
                held.remove(&key);
            }
            return None;
        }
        *now += n;
        Some(Held {
            owner: self.clone(),
            key,
            n,
        })
    }

    /// An empty share of `key`, to [`Held::grow`] later.
    pub fn share(&self, key: K) -> Held<K> {
        Held {
            owner: self.clone(),
            key,
            n: 0,
        }
    }

    /// What `key` holds now.
    pub fn holding(&self, key: &K) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(key).copied().unwrap_or(0)
    }

    fn give_back(&self, key: &K, n: usize) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(now) = held.get_mut(key) {
            *now = now.saturating_sub(n);
            if *now == 0 {
                held.remove(key);
            }
        }
    }
}

/// A key's share of a [`PerKey`], given back on drop.
#[derive(Debug)]
pub struct Held<K: Hash + Eq + Clone = IpAddr> {
    owner: PerKey<K>,
    key: K,
    n: usize,
}

impl<K: Hash + Eq + Clone> Held<K> {
    /// Takes `n` more into this share, or `false` when that would pass the cap.
    pub fn grow(&mut self, n: usize) -> bool {
        let mut held = self
            .owner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = held.entry(self.key.clone()).or_insert(0);
        if now.saturating_add(n) > self.owner.cap {
            return false;
        }
        *now += n;
        self.n += n;
        true
    }
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        self.owner.give_back(&self.key, self.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                warp::http::HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|_| panic!()),
                warp::http::HeaderValue::from_str(v).unwrap_or_else(|_| panic!()),
            );
        }
        h
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        // An IPv4 peer seen through an IPv6 socket.
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let odd: Cidr = "192.168.1.128/25".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(odd.contains(ip("192.168.1.200")) && !odd.contains(ip("192.168.1.100")));
        let one: Cidr = "::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "1.2.3/8", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap_or_else(|e| panic!("{e}"));
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.5")]);
        // From a trusted proxy: the last address that is not one of ours.
        assert_eq!(proxies.client(ip("10.0.0.1"), &chain), ip("2.2.2.2"));
        // From anyone else the header is ignored.
        assert_eq!(proxies.client(ip("5.5.5.5"), &chain), ip("5.5.5.5"));
        // Several headers are one chain; ports and brackets are dropped.
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "[2001:db8::1]:443"),
        ]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &split), ip("2001:db8::1"));
        // `Forwarded` when there is no X-Forwarded-For.
        let fwd = headers(&[("forwarded", "for=3.3.3.3;proto=https, for=\"10.0.0.7:80\"")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &fwd), ip("3.3.3.3"));
        // Nothing usable forwarded: the proxy itself.
        let junk = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &junk), ip("10.0.0.1"));
        // No proxies configured: always the peer.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &chain), ip("10.0.0.1"));
    }

    #[test]
    fn shares_are_capped_per_key_and_given_back() {
        let per: PerKey<&str> = PerKey::new(10);
        let mut a = per.take("a", 6).unwrap_or_else(|| panic!());
        assert!(per.take("a", 5).is_none());
        assert!(per.take("b", 10).is_some());
        assert!(a.grow(4));
        assert!(!a.grow(1));
        assert_eq!(per.holding(&"a"), 10);
        drop(a);
        assert_eq!(per.holding(&"a"), 0);
        assert!(per.take("a", 10).is_some());
    }
}
