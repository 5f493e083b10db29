//! Sensitive URL parts, redacted before an event is stored: the values of query parameters whose
//! name is on a deny list (tokens, passwords, session ids, e-mail addresses…), any value that
//! looks like an e-mail address, and the same inside a fragment that holds `key=value` pairs
//! (`#access_token=…`, `#/route?token=…`). Everything else, `utm_*`, `ref`, `source` and click
//! ids included, is kept as it was.
//!
//! Plain Rust with no dependencies: the browser SDK and the collector both compile this one
//! file (the collector through `#[path]`), so a URL is redacted the same way on both sides.

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// The parameter names redacted by default (compared case-insensitively, `-` read as `_`).
pub const DEFAULT_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "authorization",
    "code",
    "password",
    "pass",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "key",
    "api_key",
    "apikey",
    "session",
    "session_id",
    "sessionid",
    "sid",
    "email",
    "e_mail",
    "mail",
    "phone",
    "tel",
    "mobile",
    "ssn",
    "otp",
    "pin",
    "jwt",
    "signature",
    "sig",
    "credential",
    "credentials",
];

/// Whether `name` (a raw, possibly percent-encoded parameter name) is on `deny`: compared
/// byte by byte, ASCII case-insensitively, with `-` and `%5F` read as `_` (no allocation, and
/// none of the string-search code that would weigh on the SDK's size).
fn denied<S: AsRef<str>>(name: &str, deny: &[S]) -> bool {
    let mut norm = [0u8; 32];
    let (mut n, mut i) = (0, 0);
    let b = name.as_bytes();
    while i < b.len() {
        let c = if b[i] == b'%'
            && b.get(i + 1) == Some(&b'5')
            && b.get(i + 2).map(|c| c | 0x20) == Some(b'f')
        {
            i += 2;
            b'_'
        } else if b[i] == b'-' {
            b'_'
        } else {
            b[i].to_ascii_lowercase()
        };
        if n == norm.len() {
            return false;
        }
        norm[n] = c;
        n += 1;
        i += 1;
    }
    deny.iter()
        .any(|d| d.as_ref().as_bytes().eq_ignore_ascii_case(&norm[..n]))
}

/// An e-mail address, plain or with its `@` percent-encoded (`%40`).
fn looks_like_email(value: &str) -> bool {
    let b = value.as_bytes();
    let at = (0..b.len()).find_map(|i| match b[i] {
        b'@' => Some((i, i + 1)),
        b'%' if b.get(i + 1) == Some(&b'4') && b.get(i + 2) == Some(&b'0') => Some((i, i + 3)),
        _ => None,
    });
    match at {
        Some((user_end, host)) => {
            user_end > 0 && b.get(host).is_some_and(|c| *c != b'.') && b[host..].contains(&b'.')
        }
        None => false,
    }
}

/// Redacts the values of `a=1&b=2` pairs; returns whether anything changed.
fn redact_pairs<S: AsRef<str>>(pairs: &str, deny: &[S], out: &mut String) -> bool {
    let mut changed = false;
    for (i, pair) in pairs.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && (denied(k, deny) || looks_like_email(v)) => {
                out.push_str(k);
                out.push('=');
                out.push_str(REDACTED);
                changed = true;
            }
            _ => out.push_str(pair),
        }
    }
    changed
}

/// `url` with sensitive query and fragment values replaced by [`REDACTED`]; `None` when nothing
/// needed redacting (the common case costs no allocation beyond the scan).
pub fn url<S: AsRef<str>>(url: &str, deny: &[S]) -> Option<String> {
    let (before_hash, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len() + 16);
    let mut changed = false;
    match before_hash.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            changed |= redact_pairs(query, deny, &mut out);
        }
        None => out.push_str(before_hash),
    }
    if let Some(f) = fragment {
        out.push('#');
        // `#/route?a=b` (hash routing) or `#a=b&c=d` (OAuth implicit flow).
        match f.split_once('?') {
            Some((route, query)) => {
                out.push_str(route);
                out.push('?');
                changed |= redact_pairs(query, deny, &mut out);
            }
            None if f.contains('=') => changed |= redact_pairs(f, deny, &mut out),
            None => out.push_str(f),
        }
    }
    changed.then_some(out)
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
            url("https://a.example/?order=1&token=t", &["order"]).as_deref(),
            Some("https://a.example/?order=[redacted]&token=t")
        );
    }
}
