//! The event queue: serialized events waiting to be sent, capped in count and bytes (the oldest
//! are dropped first, and counted), split into request bodies under a byte limit.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::json::{escape_into, push_int};
use crate::redact::find;

/// Oldest first, in a plain `Vec` (a `VecDeque` costs more wasm than its front removals save
/// on a queue of at most a thousand short strings).
pub struct Queue {
    items: Vec<String>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
    /// Events dropped because the queue was full, since the last report.
    pub dropped: u32,
}

impl Queue {
    pub fn new(max_items: usize, max_bytes: usize) -> Queue {
        Queue {
            items: Vec::new(),
            bytes: 0,
            max_items,
            max_bytes,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, event: String) {
        self.bytes += event.len();
        self.items.push(event);
        self.enforce_caps();
    }

    /// Drops the oldest events until the caps hold again, counting them.
    fn enforce_caps(&mut self) {
        let mut drop = 0;
        while drop < self.items.len()
            && (self.items.len() - drop > self.max_items || self.bytes > self.max_bytes)
        {
            self.bytes -= self.items[drop].len();
            drop += 1;
        }
        if drop > 0 {
            self.items = self.items.split_off(drop);
            self.dropped += drop as u32;
        }
    }

    /// Takes up to `max_items` events from the front whose bodies fit `max_body` bytes
    /// (always at least one, so an oversize event is still tried once).
    pub fn take(&mut self, max_items: usize, max_body: usize) -> Vec<String> {
        let mut n = 0;
        let mut size = ENVELOPE;
        for next in self.items.iter().take(max_items) {
            if n > 0 && size + next.len() + 1 > max_body {
                break;
            }
            size += next.len() + 1;
            self.bytes -= next.len();
            n += 1;
        }
        let rest = self.items.split_off(n);
        let out = core::mem::replace(&mut self.items, rest);
        // Room for as many again, in one allocation rather than a growth step per event.
        self.items.reserve(out.len());
        out
    }

    /// Puts a batch that could not be sent back in front, oldest first.
    pub fn put_back(&mut self, batch: Vec<String>) {
        self.bytes += batch.iter().map(String::len).sum::<usize>();
        let mut items = batch;
        items.append(&mut self.items);
        self.items = items;
        // New events win over old unsent ones.
        self.enforce_caps();
    }

    /// One line per event, for localStorage (a JSON string never holds a raw newline).
    pub fn to_storage(&self) -> String {
        let mut s = String::with_capacity(self.bytes + self.items.len());
        for (i, e) in self.items.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(e);
        }
        s
    }

    pub fn load_storage(&mut self, s: &str) {
        let mut rest = s;
        while !rest.is_empty() {
            let end = find(rest.as_bytes(), b'\n').unwrap_or(rest.len());
            let line = rest.get(..end).unwrap_or("");
            if line.starts_with('{') {
                self.push(line.to_string());
            }
            rest = rest.get(end + 1..).unwrap_or("");
        }
    }
}

/// Bytes of a batch body besides its events (key, sent_at, brackets), a safe upper bound.
const ENVELOPE: usize = 256;

/// `{"api_key":…,"sent_at":…,"events":[…]}`, with `"webdriver":true` first when the browser
/// is driven by automation (the collector then flags every event as a bot's).
pub fn body(api_key: Option<&str>, sent_at: i64, events: &[String], webdriver: bool) -> String {
    let mut s = String::with_capacity(ENVELOPE + events.iter().map(|e| e.len() + 1).sum::<usize>());
    s.push('{');
    if webdriver {
        s.push_str("\"webdriver\":true,");
    }
    if let Some(k) = api_key.filter(|k| !k.is_empty()) {
        s.push_str("\"api_key\":");
        escape_into(&mut s, k);
        s.push(',');
    }
    s.push_str("\"sent_at\":");
    push_int(&mut s, sent_at);
    s.push_str(",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(e);
    }
    s.push_str("]}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> String {
        format!("{{\"n\":{n}}}")
    }

    #[test]
    fn caps_drop_the_oldest_and_count_them() {
        let mut q = Queue::new(3, 1_000);
        for n in 0..5 {
            q.push(ev(n));
        }
        assert_eq!((q.len(), q.dropped), (3, 2));
        assert_eq!(q.take(10, 10_000), vec![ev(2), ev(3), ev(4)]);

        let mut by_bytes = Queue::new(100, 20);
        for n in 0..4 {
            by_bytes.push(ev(n)); // 7 bytes each
        }
        assert_eq!((by_bytes.len(), by_bytes.dropped), (2, 2));
    }

    #[test]
    fn take_respects_count_and_body_size_and_put_back_keeps_order() {
        let mut q = Queue::new(100, 100_000);
        for n in 0..10 {
            q.push(ev(n));
        }
        let a = q.take(4, 100_000);
        assert_eq!(a.len(), 4);
        let b = q.take(100, ENVELOPE + 3 * 8);
        assert_eq!(b, vec![ev(4), ev(5), ev(6)]);
        q.put_back(b);
        q.put_back(a);
        assert_eq!(q.take(100, 100_000), (0..10).map(ev).collect::<Vec<_>>());
    }

    #[test]
    fn storage_round_trip_and_body() {
        let mut q = Queue::new(10, 10_000);
        q.push(ev(1));
        q.push("{\"t\":\"a\\nb\"}".into());
        let mut back = Queue::new(10, 10_000);
        back.load_storage(&q.to_storage());
        let items = back.take(10, 10_000);
        assert_eq!(items, vec![ev(1), "{\"t\":\"a\\nb\"}".to_string()]);
        assert_eq!(
            body(Some("k"), 5, &items, false),
            "{\"api_key\":\"k\",\"sent_at\":5,\"events\":[{\"n\":1},{\"t\":\"a\\nb\"}]}"
        );
        assert_eq!(body(None, 5, &[], false), "{\"sent_at\":5,\"events\":[]}");
        assert_eq!(
            body(None, 5, &[], true),
            "{\"webdriver\":true,\"sent_at\":5,\"events\":[]}"
        );
    }
}
