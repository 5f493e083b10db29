//! A tiny JSON object writer. The SDK builds every event as a JSON string itself: serde_json
//! and float formatting would cost more bytes of wasm than the whole SDK is allowed. Numbers
//! are integers only; anything richer comes from `JSON.stringify` in the browser.

use alloc::string::String;

pub struct Obj {
    out: String,
    first: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        let mut out = String::with_capacity(256);
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        escape_into(&mut self.out, k);
        self.out.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Obj {
        self.key(k);
        escape_into(&mut self.out, v);
        self
    }

    /// Writes the field only when there is a non-empty value.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Obj {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.str(k, v);
        }
        self
    }

    pub fn int(&mut self, k: &str, v: i64) -> &mut Obj {
        self.key(k);
        push_int(&mut self.out, v);
        self
    }

    /// Writes already-serialized JSON as the value.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Obj {
        self.key(k);
        self.out.push_str(json);
        self
    }

    /// Appends the members of a JSON object given as text (`{"a":1,"b":2}`), as the shim's
    /// `JSON.stringify` of `trackEvent` data; anything that is not an object is ignored.
    pub fn fields(&mut self, object_json: &str) -> &mut Obj {
        // JSON white space is ASCII: no Unicode tables needed.
        let inner = object_json
            .trim_ascii()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .map(str::trim_ascii)
            .unwrap_or("");
        if !inner.is_empty() {
            if !self.first {
                self.out.push(',');
            }
            self.first = false;
            self.out.push_str(inner);
        }
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string literal.
pub fn escape_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let n = c as u32;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((n >> shift) & 0xf) as usize] as char);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A decimal integer (optional `-`, then digits only), without core's generic `parse`.
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

/// Appends a decimal integer without `core::fmt`.
pub fn push_int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    let mut n = v.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut o = Obj::new();
        o.str("a", "q\"uote\\ \n 中文 \u{1}")
            .opt_str("skip", None)
            .opt_str("empty", Some(""))
            .int("n", -1_700_000_000_123)
            .int("z", 0)
            .raw("c", "{\"x\":[1,2]}")
            .fields(" {\"d\":true} ")
            .fields("[1]")
            .fields("{}");
        assert_eq!(
            o.finish(),
            r#"{"a":"q\"uote\\ \n 中文 \u0001","n":-1700000000123,"z":0,"c":{"x":[1,2]},"d":true}"#
        );
    }

    #[test]
    fn parses_what_push_int_writes_and_nothing_else() {
        for n in [0, 7, -42, 1_795_996_800_000, i64::MAX, i64::MIN + 1] {
            let mut s = String::new();
            push_int(&mut s, n);
            assert_eq!(parse_int(&s), Some(n), "{s}");
        }
        for bad in [
            "",
            "-",
            "1.5",
            " 1",
            "1e3",
            "12a",
            "99999999999999999999",
            "+1",
        ] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the strings and numbers, the writer's output parses back to exactly them.
        #[test]
        fn any_fields_round_trip(
            fields in proptest::collection::vec(("\\PC{0,12}|.{0,12}", ".{0,40}", proptest::prelude::any::<i64>()), 0..8),
            extra in proptest::collection::btree_map("[a-z]{1,6}", proptest::prelude::any::<i32>(), 0..4),
        ) {
            let mut o = Obj::new();
            let mut want = serde_json::Map::new();
            for (i, (k, v, n)) in fields.iter().enumerate() {
                // Keys made unique so that the expected map is well defined.
                let sk = format!("s{i}{k}");
                let nk = format!("n{i}{k}");
                o.str(&sk, v).int(&nk, *n);
                want.insert(sk, serde_json::Value::from(v.as_str()));
                want.insert(nk, serde_json::Value::from(*n));
            }
            let extra_json = serde_json::to_string(&extra).unwrap();
            o.fields(&extra_json);
            for (k, v) in &extra {
                want.insert(k.clone(), serde_json::Value::from(*v));
            }
            let text = o.finish();
            let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back, want);
        }
    }
}
