#![no_main]
//! The FCGI_STDERR line splitter (`cgi::StderrLines`), fed arbitrary application stderr in
//! fuzzed piece sizes. Checks: never panics; every line is non-empty, at most
//! STDERR_LINE_MAX bytes, without CR/LF; a NUL discards exactly the rest of its piece;
//! and, for NUL-free input, the lines do not depend on how the stream was cut (the same
//! events and tail as one single push), and nothing is lost: the lines plus the tail are
//! the input without its CR/LF bytes.
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::cgi::{StderrEvent, StderrLines, STDERR_LINE_MAX};

#[derive(Debug, PartialEq)]
enum Ev {
    Line(Vec<u8>, bool),
    Nul(usize),
}

fn run(pieces: &[&[u8]]) -> (Vec<Ev>, Option<Vec<u8>>) {
    let mut s = StderrLines::new();
    let mut out = Vec::new();
    for p in pieces {
        let nul_tail = p.iter().position(|&b| b == 0).map(|i| p.len() - i);
        let mut seen_nul = None;
        s.push(p, &mut |ev| match ev {
            StderrEvent::Line { text, too_long } => {
                assert!(!text.is_empty(), "empty line");
                assert!(text.len() <= STDERR_LINE_MAX, "line longer than the buffer");
                assert!(
                    !text.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
                    "CR/LF/NUL in a line"
                );
                assert!(seen_nul.is_none(), "line after the NUL report");
                out.push(Ev::Line(text.to_vec(), too_long));
            }
            StderrEvent::NulDiscarded(n) => {
                seen_nul = Some(n);
                out.push(Ev::Nul(n));
            }
        });
        assert_eq!(seen_nul, nul_tail, "NUL discard count");
    }
    let tail = s.finish().map(<[u8]>::to_vec);
    if let Some(t) = &tail {
        assert!(!t.is_empty() && t.len() <= STDERR_LINE_MAX);
    }
    assert_eq!(s.finish(), None, "finish leaves the splitter empty");
    (out, tail)
}

fuzz_target!(|data: &[u8]| {
    let (cuts, text) = match data.split_first() {
        Some((&c, rest)) => (c, rest),
        None => return,
    };
    // Cut the input in pieces of fuzzed sizes (1..=16, or 1024..=1039 to straddle the
    // line buffer).
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut k = u32::from(cuts);
    while !rest.is_empty() {
        let base = if k & 0x10 != 0 { STDERR_LINE_MAX + 1 } else { 1 };
        let n = (base + (k & 0xf) as usize).min(rest.len());
        let (a, b) = rest.split_at(n);
        pieces.push(a);
        rest = b;
        k = k.wrapping_mul(1103515245).wrapping_add(12345) >> 3;
    }
    let (split_ev, split_tail) = run(&pieces);
    if !text.contains(&0) {
        let (whole_ev, whole_tail) = run(&[text]);
        assert_eq!(split_ev, whole_ev, "lines depend on the piece boundaries");
        assert_eq!(split_tail, whole_tail, "tail depends on the piece boundaries");
        let mut joined: Vec<u8> = Vec::new();
        for e in &whole_ev {
            if let Ev::Line(t, _) = e {
                joined.extend_from_slice(t);
            }
        }
        joined.extend_from_slice(whole_tail.as_deref().unwrap_or_default());
        let expect: Vec<u8> = text.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
        assert_eq!(joined, expect, "stderr bytes lost or invented");
    }
});
