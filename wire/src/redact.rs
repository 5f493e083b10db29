//! Sensitive URL parts, redacted before an event is stored: the values of query parameters whose
//! name is on a deny list (tokens, passwords, session ids, e-mail addresses…), any value that
//! looks like an e-mail address, and the same inside a fragment that holds `key=value` pairs
//! (`#access_token=…`, `#/route?token=…`). Everything else, `utm_*`, `ref`, `source` and click
//! ids included, is kept as it was.
//!
//! Plain Rust with no dependencies: the browser SDK and the collector both link this crate, so
//! a URL is redacted the same way on both sides.

use alloc::string::String;
use alloc::vec::Vec;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// The parameter names redacted by default, comma-separated (compared case-insensitively,
/// `-` and `%5F` read as `_`).
pub const DEFAULT_PARAMS: &str = "token,access_token,id_token,refresh_token,auth,authorization,\
code,password,pass,passwd,pwd,secret,client_secret,key,api_key,apikey,session,session_id,sessionid,\
sid,email,e_mail,mail,phone,tel,mobile,ssn,otp,pin,jwt,signature,sig,credential,credentials";

/// Whether `name` (a raw, possibly percent-encoded parameter name) is on `deny` (names
/// separated by commas). Byte by byte and without allocation: none of the string-search code
/// that would weigh on the SDK's size.
fn denied(name: &[u8], deny: &[u8]) -> bool {
    let mut norm = [0u8; 32];
    let (mut n, mut i) = (0, 0);
    while i < name.len() {
        let mut c = name[i].to_ascii_lowercase();
        if c == b'%'
            && name[i + 1..]
                .get(..2)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"5f"))
        {
            i += 2;
            c = b'_';
        } else if c == b'-' {
            c = b'_';
        }
        if n == norm.len() {
            return false;
        }
        norm[n] = c;
        n += 1;
        i += 1;
    }
    deny.split(|c| *c == b',')
        .any(|d| d.eq_ignore_ascii_case(&norm[..n]))
}

/// An e-mail address, plain or with its `@` percent-encoded (`%40`): something before the
/// `@`, then a host that does not start with a dot and holds one.
fn looks_like_email(v: &[u8]) -> bool {
    for i in 1..v.len() {
        let host = match v[i] {
            b'@' => &v[i + 1..],
            b'%' if v[i + 1..].starts_with(b"40") => &v[i + 3..],
            _ => continue,
        };
        return host.first().is_some_and(|c| *c != b'.') && find(host, b'.').is_some();
    }
    false
}

/// The first position of byte `c`: a plain loop, where `str::split` and `find` with a `char`
/// pattern would link core's string searchers (`memchr` and more).
pub fn find(b: &[u8], c: u8) -> Option<usize> {
    b.iter().position(|x| *x == c)
}

/// `url` with sensitive query and fragment values replaced by [`REDACTED`], in one pass. The
/// runs of `k=v&k=v` pairs are the query, and in the fragment what follows its `?`
/// (`#/route?a=b`, hash routing) or the whole fragment when it holds `=` (`#a=b&c=d`). `deny`
/// names the parameters, separated by commas.
pub fn clean<O: Out>(url: &[u8], deny: &[u8], out: &mut O) {
    // In a run of pairs; past the `#`; where the current pair starts in `url` and in `out`.
    let (mut pairs, mut fragment, mut from, mut out_from) = (false, false, 0, 0);
    for i in 0..=url.len() {
        let c = url.get(i).copied();
        let ends_pair = match c {
            None => true,
            Some(b'&') => true,
            Some(b'#') => !fragment,
            _ => false,
        };
        if pairs && ends_pair {
            let pair = &url[from..i];
            if let Some(eq) = find(pair, b'=') {
                let (k, v) = (&pair[..eq], &pair[eq + 1..]);
                if !v.is_empty() && (denied(k, deny) || looks_like_email(v)) {
                    out.cut(out_from + eq + 1);
                    out.put(REDACTED.as_bytes());
                }
            }
        }
        let Some(c) = c else { break };
        out.put(&[c]);
        if c == b'#' && !fragment {
            fragment = true;
            let rest = &url[i + 1..];
            pairs = find(rest, b'?').is_none() && find(rest, b'=').is_some();
        } else if c == b'?' && !pairs {
            pairs = true;
        } else if c != b'&' {
            continue;
        }
        (from, out_from) = (i + 1, out.size());
    }
}

/// Where [`clean`] writes: a growable byte buffer (a `Vec` here, the SDK's own `Buf` in the
/// wasm, which has no `Vec` code).
pub trait Out {
    fn put(&mut self, bytes: &[u8]);
    fn size(&self) -> usize;
    /// Keeps the first `n` bytes.
    fn cut(&mut self, n: usize);
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn size(&self) -> usize {
        self.len()
    }

    fn cut(&mut self, n: usize) {
        self.truncate(n);
    }
}

/// [`clean`] on text: `None` when nothing needed redacting (the collector's form).
pub fn url(url: &str, deny: &str) -> Option<String> {
    let mut out = Vec::with_capacity(url.len() + 16);
    clean(url.as_bytes(), deny.as_bytes(), &mut out);
    (out != url.as_bytes())
        .then(|| String::from_utf8(out).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn r(u: &str) -> String {
        url(u, DEFAULT_PARAMS).unwrap_or_else(|| u.to_string())
    }

    #[test]
    fn redacts_what_the_deny_list_names_and_keeps_the_rest() {
        let cases = [
            ("https://a.example/p", "https://a.example/p"),
            (
                "https://a.example/reset?token=abc&utm_source=mail",
                "https://a.example/reset?token=[redacted]&utm_source=mail",
            ),
            (
                "https://a.example/?Access_Token=x&ref=hn&gclid=123",
                "https://a.example/?Access_Token=[redacted]&ref=hn&gclid=123",
            ),
            (
                "https://a.example/cb#access_token=t&state=s",
                "https://a.example/cb#access_token=[redacted]&state=s",
            ),
            (
                "https://a.example/#/login?password=p&next=%2Fhome",
                "https://a.example/#/login?password=[redacted]&next=%2Fhome",
            ),
            (
                "https://a.example/#section-2",
                "https://a.example/#section-2",
            ),
            (
                "https://a.example/?u=ann%40b.example&api-key=k",
                "https://a.example/?u=[redacted]&api-key=[redacted]",
            ),
            ("https://a.example/?token=", "https://a.example/?token="),
            ("https://a.example/?", "https://a.example/?"),
            ("https://a.example/#", "https://a.example/#"),
            (
                "https://例え.jp/パス?token=秘密&q=検索",
                "https://例え.jp/パス?token=[redacted]&q=検索",
            ),
            (
                "https://a.example/?a=1#b=2&pwd=3",
                "https://a.example/?a=1#b=2&pwd=[redacted]",
            ),
            (
                "https://a.example/?flag&sid=9",
                "https://a.example/?flag&sid=[redacted]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(r(input), want, "{input}");
        }
    }

    #[test]
    fn an_own_list_replaces_the_default() {
        assert_eq!(
            url("https://a.example/?order=1&token=t", "order,ref").as_deref(),
            Some("https://a.example/?order=[redacted]&token=t")
        );
    }
}
