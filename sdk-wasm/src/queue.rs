//! The event queue: serialized events waiting to be sent, capped in count and bytes (the oldest
//! are dropped first, and counted), split into request bodies under a byte limit. Events are
//! kept one per line in a single buffer, which is also their localStorage form: no list of
//! strings, and nothing to join or split when saving.

use crate::buf::Buf;
use crate::json::push_int;
use crate::redact::find;

/// Serialized events, oldest first, separated by `\n` (an event's JSON never holds a raw
/// newline: the tracker escapes control bytes and the rest comes from `JSON.stringify`).
pub struct Queue {
    lines: Buf,
    len: usize,
    max_items: usize,
    max_bytes: usize,
    /// Events dropped because the queue was full, since the last report.
    pub dropped: u32,
}

impl Queue {
    pub fn new(max_items: usize, max_bytes: usize) -> Queue {
        Queue {
            lines: Buf::new(),
            len: 0,
            max_items,
            max_bytes,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events, one per line: the localStorage form.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    pub fn push(&mut self, event: &[u8]) {
        if self.len > 0 {
            self.lines.push(b'\n');
        }
        self.lines.put(event);
        self.len += 1;
        self.enforce_caps();
    }

    /// Drops the oldest events while over either cap.
    fn enforce_caps(&mut self) {
        while self.len > 0 && (self.len > self.max_items || self.lines.len() > self.max_bytes) {
            self.cut(find(&self.lines, b'\n').map_or(self.lines.len(), |i| i + 1));
            self.len -= 1;
            self.dropped += 1;
        }
    }

    /// Removes the first `n` bytes.
    fn cut(&mut self, n: usize) {
        self.lines.copy_within(n.., 0);
        self.lines.truncate(self.lines.len() - n);
    }

    /// Takes the oldest events for one request: at most `max_items`, and while the body stays
    /// under `max_body` bytes (always at least one event, however large).
    pub fn take(&mut self, max_items: usize, max_body: usize) -> Queue {
        let (mut n, mut end, mut size) = (0, 0, ENVELOPE);
        while n < self.len && n < max_items {
            let from = if n == 0 { 0 } else { end + 1 };
            let next = from + find(&self.lines[from..], b'\n').unwrap_or(self.lines.len() - from);
            size += next - from + 1;
            if n > 0 && size > max_body {
                break;
            }
            (n, end) = (n + 1, next);
        }
        let mut batch = Queue::new(self.max_items, self.max_bytes);
        batch.lines = Buf::of(&self.lines[..end]);
        batch.len = n;
        self.cut((end + 1).min(self.lines.len()));
        self.len -= n;
        batch
    }

    /// Puts a batch back at the front, in its order.
    pub fn put_back(&mut self, mut batch: Queue) {
        if !self.is_empty() {
            batch.lines.push(b'\n');
            batch.lines.put(&self.lines);
        }
        self.lines = batch.lines;
        self.len += batch.len;
        self.enforce_caps();
    }

    /// Adds the events of a localStorage form (or another queue's [`lines`](Queue::lines)),
    /// skipping lines that are not JSON objects.
    pub fn load(&mut self, lines: &[u8]) {
        for line in lines.split(|c| *c == b'\n') {
            if line.first() == Some(&b'{') {
                self.push(line);
            }
        }
    }
}

/// Room counted for the envelope around the events of a body.
const ENVELOPE: usize = 256;

/// The request body for `events` (one per line): `{"sent_at":…,"events":[…]}` (the key rides
/// in the endpoint's query),
/// with `"webdriver":true` when the browser is driven by automation.
pub fn body(sent_at: i64, events: &[u8], webdriver: bool) -> Buf {
    let mut s = Buf::new();
    s.push(b'{');
    if webdriver {
        s.put(b"\"webdriver\":true,");
    }
    s.put(b"\"sent_at\":");
    push_int(&mut s, sent_at);
    s.put(b",\"events\":[");
    let at = s.len();
    s.put(events);
    for c in &mut s[at..] {
        if *c == b'\n' {
            *c = b',';
        }
    }
    s.put(b"]}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> String {
        format!("{{\"n\":{n}}}")
    }

    fn lines(q: &Queue) -> Vec<String> {
        let s = std::str::from_utf8(q.lines()).unwrap();
        if s.is_empty() {
            vec![]
        } else {
            s.split('\n').map(String::from).collect()
        }
    }

    #[test]
    fn caps_drop_the_oldest_and_count_them() {
        let mut q = Queue::new(3, 1_000);
        for n in 0..5 {
            q.push(ev(n).as_bytes());
        }
        assert_eq!((q.len(), q.dropped), (3, 2));
        let all = q.take(10, 10_000);
        assert_eq!(lines(&all), vec![ev(2), ev(3), ev(4)]);
        assert_eq!((all.len(), q.len(), q.lines().len()), (3, 0, 0));

        let mut by_bytes = Queue::new(100, 20);
        for n in 0..4 {
            by_bytes.push(ev(n).as_bytes()); // 7 bytes each, and a newline between
        }
        assert_eq!((by_bytes.len(), by_bytes.dropped), (2, 2));
        assert_eq!(lines(&by_bytes), vec![ev(2), ev(3)]);
    }

    #[test]
    fn take_respects_count_and_body_size_and_put_back_keeps_order() {
        let mut q = Queue::new(100, 100_000);
        for n in 0..10 {
            q.push(ev(n).as_bytes());
        }
        let a = q.take(4, 100_000);
        assert_eq!(a.len(), 4);
        let b = q.take(100, ENVELOPE + 3 * 8);
        assert_eq!(lines(&b), vec![ev(4), ev(5), ev(6)]);
        assert_eq!(q.len(), 3);
        q.put_back(b);
        q.put_back(a);
        let all = q.take(100, 100_000);
        assert_eq!(lines(&all), (0..10).map(ev).collect::<Vec<_>>());
        let mut big = Queue::new(10, 100_000);
        big.push(&[b'{'; 500]);
        big.push(b"{}");
        assert_eq!(big.take(10, 100).len(), 1, "one event, however large");
        assert_eq!(lines(&big), vec!["{}"]);
    }

    #[test]
    fn storage_round_trip_and_body() {
        let mut q = Queue::new(10, 10_000);
        q.push(ev(1).as_bytes());
        q.push(b"{\"t\":\"a\\nb\"}");
        let mut back = Queue::new(10, 10_000);
        back.load(b"junk\n");
        back.load(q.lines());
        assert_eq!(back.len(), 2);
        let items = back.take(10, 10_000);
        assert_eq!(lines(&items), vec![ev(1), "{\"t\":\"a\\nb\"}".to_string()]);
        assert_eq!(
            &*body(5, items.lines(), false),
            b"{\"sent_at\":5,\"events\":[{\"n\":1},{\"t\":\"a\\nb\"}]}"
        );
        assert_eq!(&*body(5, b"", false), b"{\"sent_at\":5,\"events\":[]}");
        assert_eq!(
            &*body(5, b"", true),
            b"{\"webdriver\":true,\"sent_at\":5,\"events\":[]}"
        );
    }
}
