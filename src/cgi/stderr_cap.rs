//! A per-request cap on the FCGI_STDERR text that reaches the error log.
//!
//! An application that floods stderr (megabytes per request) would otherwise write every
//! line to the error log. [`StderrCap`] lets through the first [`STDERR_LOG_CAP`] bytes of
//! line text of a request; later lines are counted, not logged, and
//! [`StderrCap::suppressed`] gives what to report in one summary line at the end of the
//! request.

/// Bytes of stderr text logged per request before the rest is suppressed.
pub const STDERR_LOG_CAP: usize = 64 * 1024;

/// What to do with one stderr line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrVerdict {
    /// Log it.
    Log,
    /// Over the cap: drop it (it has been counted).
    Suppress,
}

/// The stderr budget of one request.
#[derive(Debug, Clone)]
pub struct StderrCap {
    cap: usize,
    logged: usize,
    suppressed_bytes: u64,
    suppressed_lines: u64,
}

impl Default for StderrCap {
    fn default() -> Self {
        StderrCap::new(STDERR_LOG_CAP)
    }
}

impl StderrCap {
    /// A budget of `cap` bytes of line text.
    pub fn new(cap: usize) -> StderrCap {
        StderrCap {
            cap,
            logged: 0,
            suppressed_bytes: 0,
            suppressed_lines: 0,
        }
    }

    /// Accounts for a line of `len` bytes. A line is logged whole while the bytes logged so
    /// far are under the cap (so one log line may pass it by at most one line piece); once the
    /// cap is reached every further line is suppressed.
    pub fn line(&mut self, len: usize) -> StderrVerdict {
        if self.logged < self.cap && self.suppressed_lines == 0 {
            self.logged = self.logged.saturating_add(len);
            StderrVerdict::Log
        } else {
            self.suppressed_bytes = self.suppressed_bytes.saturating_add(len as u64);
            self.suppressed_lines = self.suppressed_lines.saturating_add(1);
            StderrVerdict::Suppress
        }
    }

    /// Accounts for a message that is not line text (e.g. the NUL warning): logged while
    /// under the cap, counted as one suppressed line (of no bytes) after it.
    pub fn notice(&mut self) -> StderrVerdict {
        if self.logged < self.cap && self.suppressed_lines == 0 {
            StderrVerdict::Log
        } else {
            self.suppressed_lines = self.suppressed_lines.saturating_add(1);
            StderrVerdict::Suppress
        }
    }

    /// `(lines, bytes)` suppressed so far, or `None` when nothing was.
    pub fn suppressed(&self) -> Option<(u64, u64)> {
        (self.suppressed_lines > 0).then_some((self.suppressed_lines, self.suppressed_bytes))
    }

    /// The summary log line for `app`, when something was suppressed.
    pub fn summary(&self, app: &str) -> Option<String> {
        self.suppressed().map(|(lines, bytes)| {
            format!(
                "FastCGI: server \"{app}\" stderr: {bytes} more bytes suppressed ({lines} lines; at most {} bytes of stderr are logged per request)",
                self.cap
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgi::{StderrEvent, StderrLines};

    #[test]
    fn under_the_cap_everything_is_logged() {
        let mut c = StderrCap::new(100);
        for _ in 0..9 {
            assert_eq!(c.line(10), StderrVerdict::Log);
        }
        assert_eq!(c.notice(), StderrVerdict::Log);
        assert_eq!(c.suppressed(), None);
        assert_eq!(c.summary("/x"), None);
    }

    #[test]
    fn lines_past_the_cap_are_counted_not_logged() {
        let mut c = StderrCap::new(100);
        for _ in 0..10 {
            assert_eq!(c.line(10), StderrVerdict::Log);
        }
        assert_eq!(c.line(7), StderrVerdict::Suppress);
        assert_eq!(c.line(1), StderrVerdict::Suppress);
        assert_eq!(c.notice(), StderrVerdict::Suppress);
        assert_eq!(c.suppressed(), Some((3, 8)));
        let s = c.summary("/app").unwrap();
        assert!(
            s.starts_with("FastCGI: server \"/app\" stderr: 8 more bytes suppressed (3 lines;"),
            "{s}"
        );
    }

    #[test]
    fn a_line_crossing_the_cap_is_logged_then_nothing_more() {
        let mut c = StderrCap::new(100);
        assert_eq!(c.line(99), StderrVerdict::Log);
        assert_eq!(c.line(50), StderrVerdict::Log);
        assert_eq!(c.line(0), StderrVerdict::Suppress);
        assert_eq!(c.suppressed(), Some((1, 0)));
    }

    #[test]
    fn a_flood_through_the_splitter_is_bounded() {
        // 4 MiB of 100-byte lines: what is logged stays within the cap plus one line piece.
        let mut lines = StderrLines::new();
        let mut cap = StderrCap::default();
        let mut logged = 0usize;
        let mut logged_lines = 0usize;
        let line = [b'e'; 99];
        let mut chunk = Vec::new();
        for _ in 0..1000 {
            chunk.extend_from_slice(&line);
            chunk.push(b'\n');
        }
        for _ in 0..42 {
            lines.push(&chunk, &mut |ev| {
                if let StderrEvent::Line { text, .. } = ev {
                    if cap.line(text.len()) == StderrVerdict::Log {
                        logged += text.len();
                        logged_lines += 1;
                    }
                }
            });
        }
        assert!((STDERR_LOG_CAP..STDERR_LOG_CAP + 1024).contains(&logged), "{logged}");
        let (sl, sb) = cap.suppressed().unwrap();
        assert_eq!(sl as usize + logged_lines, 42_000);
        assert_eq!(sb as usize + logged, 42_000 * 99);
    }
}
