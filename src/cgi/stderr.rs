//! FCGI_STDERR to log lines (reference 5.11: RQ-70, RQ-71).
//!
//! - Lines end at `\r` or `\n`; empty lines are dropped (so `\r\n` is one line end).
//! - A line is collected in a [`STDERR_LINE_MAX`]-byte buffer, as in legacy; a longer line is
//!   handed out in pieces of that size flagged `too_long`, so the caller can log the legacy
//!   `too much stderr received ...` warning (once per request is enough).
//! - A NUL byte: the legacy module logged `sent a null character in the stderr stream!?,
//!   discarding <n> characters of stderr` and dropped the rest of what it had read. Here
//!   the rest of the pushed piece, from the NUL on, is dropped and reported as
//!   [`StderrEvent::NulDiscarded`] with its length; lines before the NUL are kept.
//! - RQ-71 / legacy bug 11 fixed: [`StderrLines::finish`] returns the unterminated tail
//!   exactly, without stale bytes from earlier lines.

use memchr::{memchr, memchr2};

/// Size of the legacy stderr line buffer (`FCGI_SERVER_MAX_STDERR_LINE_LEN`).
pub const STDERR_LINE_MAX: usize = 1023;

/// Output of [`StderrLines::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrEvent<'a> {
    /// One line (or one piece of an over-long line) to log; never empty, no CR/LF.
    Line {
        /// The text.
        text: &'a [u8],
        /// Part of a line longer than [`STDERR_LINE_MAX`] bytes.
        too_long: bool,
    },
    /// A NUL byte was found; this many bytes (the NUL and everything after it in the pushed
    /// piece) were discarded.
    NulDiscarded(usize),
}

/// Line splitter for one request's FCGI_STDERR stream. No allocation: the partial line is
/// kept in a fixed buffer and complete lines are handed out straight from the input when
/// possible.
#[derive(Debug, Clone)]
pub struct StderrLines {
    buf: [u8; STDERR_LINE_MAX],
    len: usize,
    /// The line being collected has already overflowed the buffer at least once.
    long_line: bool,
}

impl Default for StderrLines {
    fn default() -> Self {
        StderrLines::new()
    }
}

impl StderrLines {
    /// An empty splitter.
    pub fn new() -> StderrLines {
        StderrLines {
            buf: [0; STDERR_LINE_MAX],
            len: 0,
            long_line: false,
        }
    }

    /// Splits the next piece of STDERR content, calling `emit` for every complete line,
    /// every full buffer of an over-long line, and a discarded NUL tail.
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(StderrEvent<'_>)) {
        let (text, discarded) = match memchr(0, data) {
            Some(nul) => data.split_at(nul),
            None => (data, &[][..]),
        };
        let mut rest = text;
        while !rest.is_empty() {
            match memchr2(b'\r', b'\n', rest) {
                Some(eol) => {
                    let (line, after) = rest.split_at(eol);
                    self.line_piece(line, true, emit);
                    rest = after.get(1..).unwrap_or_default();
                }
                None => {
                    self.line_piece(rest, false, emit);
                    rest = &[];
                }
            }
        }
        if !discarded.is_empty() {
            emit(StderrEvent::NulDiscarded(discarded.len()));
        }
    }

    /// The unterminated last line, if any, exactly as received (call at the end of the
    /// request). The splitter is empty afterwards.
    pub fn finish(&mut self) -> Option<&[u8]> {
        let len = std::mem::take(&mut self.len);
        self.long_line = false;
        if len == 0 {
            None
        } else {
            self.buf.get(..len)
        }
    }

    /// Handles the text of one line up to (not including) its end, or up to the end of the
    /// input when `terminated` is false.
    fn line_piece(&mut self, mut piece: &[u8], terminated: bool, emit: &mut dyn FnMut(StderrEvent<'_>)) {
        if self.len == 0 && terminated {
            // Fast path: the whole line is in the input, hand it out without copying.
            let too_long = self.long_line || piece.len() > STDERR_LINE_MAX;
            for chunk in piece.chunks(STDERR_LINE_MAX) {
                emit(StderrEvent::Line { text: chunk, too_long });
            }
            self.long_line = false;
            return;
        }
        while !piece.is_empty() {
            if self.len == STDERR_LINE_MAX {
                // The buffer is full and the line goes on: it is too long.
                emit(StderrEvent::Line {
                    text: &self.buf,
                    too_long: true,
                });
                self.len = 0;
                self.long_line = true;
            }
            if self.len == 0 && piece.len() > STDERR_LINE_MAX {
                let (chunk, later) = piece.split_at(STDERR_LINE_MAX);
                emit(StderrEvent::Line {
                    text: chunk,
                    too_long: true,
                });
                self.long_line = true;
                piece = later;
                continue;
            }
            let n = (STDERR_LINE_MAX - self.len).min(piece.len());
            let (now, later) = piece.split_at(n);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + n) {
                dst.copy_from_slice(now);
            }
            self.len += n;
            piece = later;
        }
        if terminated {
            if let Some(text) = self.buf.get(..self.len).filter(|t| !t.is_empty()) {
                emit(StderrEvent::Line {
                    text,
                    too_long: self.long_line,
                });
            }
            self.len = 0;
            self.long_line = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Ev {
        Line(Vec<u8>, bool),
        Nul(usize),
    }

    fn run(s: &mut StderrLines, pieces: &[&[u8]]) -> Vec<Ev> {
        let mut out = Vec::new();
        for p in pieces {
            s.push(p, &mut |ev| match ev {
                StderrEvent::Line { text, too_long } => {
                    assert!(!text.is_empty() && text.len() <= STDERR_LINE_MAX);
                    assert!(memchr2(b'\r', b'\n', text).is_none());
                    out.push(Ev::Line(text.to_vec(), too_long));
                }
                StderrEvent::NulDiscarded(n) => out.push(Ev::Nul(n)),
            });
        }
        out
    }

    fn line(s: &str) -> Ev {
        Ev::Line(s.as_bytes().to_vec(), false)
    }

    #[test]
    fn splits_at_cr_and_lf_and_drops_empty_lines() {
        let mut s = StderrLines::new();
        let ev = run(&mut s, &[b"one\ntwo\r\nthree\rfour\n\n\r\r\n\nfive"]);
        assert_eq!(ev, [line("one"), line("two"), line("three"), line("four")]);
        assert_eq!(s.finish(), Some(&b"five"[..]));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn same_lines_for_every_split() {
        let input: &[u8] = b"alpha\r\nbeta\n\ngamma delta\repsilon\n";
        let expect = run(&mut StderrLines::new(), &[input]);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            let mut s = StderrLines::new();
            assert_eq!(run(&mut s, &[a, b]), expect, "split at {i}");
            assert_eq!(s.finish(), None);
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&mut StderrLines::new(), &bytes), expect);
    }

    #[test]
    fn trailing_fragment_has_no_stale_bytes() {
        // RQ-71: legacy logged "partial" as "partiale" after a longer line.
        let mut s = StderrLines::new();
        let ev = run(&mut s, &[b"a much longer line\n", b"part", b"ial"]);
        assert_eq!(ev, [line("a much longer line")]);
        assert_eq!(s.finish(), Some(&b"partial"[..]));
        let mut s = StderrLines::new();
        run(&mut s, &[b"longer buffered li", b"ne\n", b"x"]);
        assert_eq!(s.finish(), Some(&b"x"[..]));
    }

    #[test]
    fn line_of_exactly_max_is_normal() {
        let text = vec![b'a'; STDERR_LINE_MAX];
        let mut with_nl = text.clone();
        with_nl.push(b'\n');
        assert_eq!(
            run(&mut StderrLines::new(), &[&with_nl]),
            [Ev::Line(text.clone(), false)]
        );
        let bytes: Vec<&[u8]> = with_nl.chunks(1).collect();
        assert_eq!(run(&mut StderrLines::new(), &bytes), [Ev::Line(text.clone(), false)]);
        let mut s = StderrLines::new();
        assert!(run(&mut s, &[&text]).is_empty());
        assert_eq!(s.finish(), Some(&text[..]));
    }

    #[test]
    fn long_line_in_pieces_flagged() {
        let text: Vec<u8> = (0..2500).map(|i| b'a' + (i % 26) as u8).collect();
        let mut input = text.clone();
        input.extend_from_slice(b"\nshort\n");
        let expect = vec![
            Ev::Line(text[..1023].to_vec(), true),
            Ev::Line(text[1023..2046].to_vec(), true),
            Ev::Line(text[2046..].to_vec(), true),
            line("short"),
        ];
        assert_eq!(run(&mut StderrLines::new(), &[&input]), expect);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(&mut StderrLines::new(), &[a, b]), expect, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&mut StderrLines::new(), &bytes), expect);
        // Exactly two buffers long: the second piece is still flagged, nothing empty emitted.
        let mut two = vec![b'z'; 2 * STDERR_LINE_MAX];
        two.push(b'\n');
        let ev = run(&mut StderrLines::new(), &[&two[..1500], &two[1500..]]);
        assert_eq!(ev, [Ev::Line(vec![b'z'; 1023], true), Ev::Line(vec![b'z'; 1023], true)]);
        // Unterminated long tail: pieces while streaming, the rest on finish.
        let mut s = StderrLines::new();
        let ev = run(&mut s, &[&text]);
        assert_eq!(ev.len(), 2);
        assert_eq!(s.finish(), Some(&text[2046..]));
    }

    #[test]
    fn nul_discards_rest_of_piece() {
        let mut s = StderrLines::new();
        let ev = run(&mut s, &[b"before\nhalf\0junk\nmore", b"next\n"]);
        assert_eq!(ev, [line("before"), Ev::Nul(10), line("halfnext")]);
        let mut s = StderrLines::new();
        assert_eq!(run(&mut s, &[b"\0"]), [Ev::Nul(1)]);
        assert_eq!(s.finish(), None);
    }
}
