//! Plain-text tables and progress for the terminal.

use std::io::Write;

/// `s` with every control character (ESC, CR, BEL, …) written as a visible escape such as
/// `\u{1b}`, so that a visitor's string can never drive the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Prints rows under a header, each column as wide as its widest cell; numbers right-aligned.
/// Cells are shown through [`printable`].
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                let numeric = i > 0
                    && c.chars()
                        .all(|ch| ch.is_ascii_digit() || ".%-".contains(ch));
                if numeric {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A one-line progress bar on stderr: `[#####.....] 50% 1200/2400 events`. Several tasks
/// may report; the bar only moves forward.
pub struct Progress {
    total: u64,
    what: &'static str,
    shown: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn new(total: u64, what: &'static str) -> Progress {
        Progress {
            total,
            what,
            shown: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn show(&self, done: u64) {
        let before = self
            .shown
            .fetch_max(done, std::sync::atomic::Ordering::Relaxed);
        if done < before {
            return;
        }
        let total = self.total.max(done).max(1);
        let filled = (done * 30 / total) as usize;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {:>3}% {done}/{total} {}",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            done * 100 / total,
            self.what
        );
        let _ = err.flush();
    }

    pub fn finish(&self) {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(super::printable("/a"), "/a");
        assert_eq!(
            super::printable("x\u{1b}[31mred\r\u{7}"),
            "x\\u{1b}[31mred\\r\\u{7}"
        );
    }
}
