//! Sensitive URL parts, redacted before an event is stored: the values of query parameters whose
//! name is on a deny list (tokens, passwords, session ids, e-mail addresses…), any value that
//! looks like an e-mail address, and the same inside a fragment that holds `key=value` pairs
//! (`#access_token=…`, `#/route?token=…`). Everything else, `utm_*`, `ref`, `source` and click
//! ids included, is kept as it was.
//!
//! Plain Rust with no dependencies: the browser SDK and the collector both compile this one
//! file (the collector through `#[path]`), so a URL is redacted the same way on both sides.

use alloc::string::String;

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
fn denied(name: &[u8], deny: &str) -> bool {
    let mut norm = [0u8; 32];
    let (mut n, mut i) = (0, 0);
    while i < name.len() {
        let mut c = name[i].to_ascii_lowercase();
        if c == b'%'
            && name.get(i + 1) == Some(&b'5')
            && name.get(i + 2).map(|c| c | 0x20) == Some(b'f')
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
    deny.as_bytes()
        .split(|c| *c == b',')
        .any(|d| d.eq_ignore_ascii_case(&norm[..n]))
}

/// An e-mail address, plain or with its `@` percent-encoded (`%40`).
fn looks_like_email(v: &[u8]) -> bool {
    let at = (0..v.len()).find_map(|i| match v[i] {
        b'@' => Some((i, i + 1)),
        b'%' if v.get(i + 1) == Some(&b'4') && v.get(i + 2) == Some(&b'0') => Some((i, i + 3)),
        _ => None,
    });
    match at {
        Some((user_end, host)) => {
            let host = v.get(host..).unwrap_or(&[]);
            user_end > 0 && host.first().is_some_and(|c| *c != b'.') && find(host, b'.').is_some()
        }
        None => false,
    }
}

/// The first position of byte `c`: a plain loop, where `str::split` and `find` with a `char`
/// pattern would link core's string searchers (`memchr` and more).
pub fn find(b: &[u8], c: u8) -> Option<usize> {
    b.iter().position(|x| *x == c)
}

/// `url` with sensitive query and fragment values replaced by [`REDACTED`]; `None` when nothing
/// needed redacting. `deny` names the parameters, separated by commas.
pub fn url(url: &str, deny: &str) -> Option<String> {
    let b = url.as_bytes();
    let hash = find(b, b'#').unwrap_or(b.len());
    // The runs of `k=v&k=v` pairs: the query, and in the fragment what follows its `?`
    // (`#/route?a=b`, hash routing) or the whole fragment when it holds `=` (`#a=b&c=d`).
    let query = find(&b[..hash], b'?').map(|q| (q + 1, hash));
    let fragment = b.get(hash + 1..).and_then(|f| match find(f, b'?') {
        Some(q) => Some((hash + 2 + q, b.len())),
        None if find(f, b'=').is_some() => Some((hash + 1, b.len())),
        None => None,
    });
    // `str::get`, not indexing: an indexing panic would bring its formatting into the SDK.
    // Every cut is next to an ASCII byte, so each `get` succeeds.
    let mut out = String::new();
    let mut copied = 0;
    for (start, end) in [query, fragment].into_iter().flatten() {
        let mut i = start;
        while i < end {
            let j = i + find(&b[i..end], b'&').unwrap_or(end - i);
            if let Some(eq) = find(&b[i..j], b'=') {
                let (k, v) = (&b[i..i + eq], &b[i + eq + 1..j]);
                if !v.is_empty() && (denied(k, deny) || looks_like_email(v)) {
                    out.push_str(url.get(copied..i + eq + 1).unwrap_or_default());
                    out.push_str(REDACTED);
                    copied = j;
                }
            }
            i = j + 1;
        }
    }
    if copied == 0 {
        return None;
    }
    out.push_str(url.get(copied..).unwrap_or_default());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
