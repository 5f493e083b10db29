//! A tiny JSON object writer. The SDK builds every event as a JSON string itself: serde_json
//! and float formatting would cost more bytes of wasm than the whole SDK is allowed. Numbers
//! are integers only; anything richer comes from `JSON.stringify` in the browser.

use crate::buf::Buf;

/// An event being written: `{"event_id":"…"` first, so that every later field starts with a
/// comma and no writer keeps state; [`finish`](Event::finish) closes it.
pub struct Event(pub Buf);

impl Event {
    /// An object whose first field is `event_id` (a UUID, nothing to escape).
    pub fn new(event_id: &[u8]) -> Event {
        let mut o = Buf::new();
        o.put(b"{\"event_id\":\"");
        o.put(event_id);
        o.push(b'"');
        Event(o)
    }

    fn key(&mut self, k: &str) {
        self.0.put(b",\"");
        self.0.put(k.as_bytes());
        self.0.put(b"\":");
    }

    /// A text field; none when `v` is empty (the shim says "not given" with an empty string).
    pub fn str(&mut self, k: &str, v: &[u8]) -> &mut Event {
        if !v.is_empty() {
            self.key(k);
            escape_into(&mut self.0, v);
        }
        self
    }

    pub fn int(&mut self, k: &str, v: i64) -> &mut Event {
        self.key(k);
        push_int(&mut self.0, v);
        self
    }

    /// A field holding JSON as it is (`custom_data`).
    pub fn raw(&mut self, k: &str, json: &[u8]) -> &mut Event {
        self.key(k);
        self.0.put(json);
        self
    }

    /// The fields of a JSON object from `JSON.stringify` in the shim (`{"a":1}`), added at
    /// this level; anything but a non-empty object adds nothing.
    pub fn fields(&mut self, object_json: &[u8]) -> &mut Event {
        if let [b'{', inner @ .., b'}'] = object_json {
            if !inner.is_empty() {
                self.0.push(b',');
                self.0.put(inner);
            }
        }
        self
    }

    pub fn finish(mut self) -> Buf {
        self.0.push(b'}');
        self.0
    }
}

/// Appends `s` (UTF-8) as a JSON string: quotes and backslashes escaped, control bytes as
/// `\u00XX`; every other byte as it is.
pub fn escape_into(out: &mut Buf, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        } else if c < 0x20 {
            out.put(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 15)]);
            continue;
        }
        out.push(c);
    }
    out.push(b'"');
}

/// A non-negative integer written by [`push_int`] (or the shim), or `None` (empty, or
/// anything but digits; beyond `u64` it wraps, which only a tampered store can cause).
pub fn parse_int(s: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
    }
    (!s.is_empty()).then_some(n)
}

pub fn push_int(out: &mut Buf, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_digits(out, v.unsigned_abs());
}

fn push_digits(out: &mut Buf, n: u64) {
    if n >= 10 {
        push_digits(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(o: Event) -> String {
        String::from_utf8(o.finish().to_vec()).unwrap()
    }

    #[test]
    fn writes_valid_json() {
        let mut o = Event::new(b"e");
        o.str("a", "q\"uote\\ \n 中文 \u{1}".as_bytes())
            .str("empty", b"")
            .int("n", -1_700_000_000_123)
            .int("z", 0)
            .raw("c", b"{\"x\":[1,2]}")
            .fields(b"{\"d\":true}")
            .fields(b"[1]")
            .fields(b"{}")
            .fields(b"");
        assert_eq!(
            text(o),
            r#"{"event_id":"e","a":"q\"uote\\ \u000a 中文 \u0001","n":-1700000000123,"z":0,"c":{"x":[1,2]},"d":true}"#
        );
    }

    #[test]
    fn parses_what_push_int_writes_and_nothing_else() {
        for n in [0, 7, 1_795_996_800_000, i64::MAX] {
            let mut s = Buf::new();
            push_int(&mut s, n);
            assert_eq!(parse_int(&s), Some(n as u64));
        }
        for bad in ["", "-", "-1", "1.5", " 1", "1e3", "12a", ":", "+1"] {
            assert_eq!(parse_int(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_fields_round_trip(
            fields in proptest::collection::vec(("[a-z_]{0,12}", "\\PC{1,20}|.{1,40}", proptest::prelude::any::<i64>()), 0..8),
            extra in proptest::collection::btree_map("[a-z]{1,6}", proptest::prelude::any::<i32>(), 0..4),
        ) {
            let mut o = Event::new(b"id");
            let mut want = serde_json::Map::new();
            want.insert("event_id".into(), "id".into());
            for (i, (k, v, n)) in fields.iter().enumerate() {
                let sk = format!("s{i}{k}");
                let nk = format!("n{i}{k}");
                o.str(&sk, v.as_bytes()).int(&nk, *n);
                want.insert(sk, serde_json::Value::from(v.as_str()));
                want.insert(nk, serde_json::Value::from(*n));
            }
            let extra_json = serde_json::to_string(&extra).unwrap();
            o.fields(extra_json.as_bytes());
            for (k, v) in &extra {
                want.insert(k.clone(), serde_json::Value::from(*v));
            }
            let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text(o)).unwrap();
            proptest::prop_assert_eq!(back, want);
        }
    }
}
