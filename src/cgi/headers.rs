//! CGI response header scanning (reference 5.6/5.7: RQ-40..RQ-47, SG-4).
//!
//! Legacy rules reproduced:
//! - RQ-40: the block ends at two `\n` with only `\r` in between (`\n\n`, `\r\n\r\n`,
//!   `\n\r\n`); a NUL, vertical tab or form feed anywhere before that is
//!   `malformed header 'Invalid Character'` (reported once the block is complete, as the
//!   legacy module did, so an unterminated block is still "incomplete headers").
//! - RQ-41: every line needs a `:`; the name (trailing whitespace trimmed) must be non-empty
//!   without space or tab; the value has leading and trailing whitespace trimmed; a line
//!   starting with space or tab continues the previous header. The rejected line is quoted
//!   as legacy logged it: with the colon replaced by a space (`X Y: z` → `X Y  z`).
//! - RQ-42: `Status` is parsed like `strtol`; negative is `invalid Status '<v>'`, non-numeric
//!   is code 0 (httpd then answers 500); the status line is the whole value; last wins.
//! - RQ-43/RQ-44: `Content-Type`, `Location`, `Content-Length`: last wins; every other header
//!   is kept in order, duplicates included (`Set-Cookie`). Names compare case-insensitively.
//!
//! Deliberate changes:
//! - SG-4 / legacy bug 20: the block is bounded ([`HeaderError::TooLarge`]).
//! - A folded continuation is joined to the value with one space (the line break and the
//!   continuation's leading whitespace are replaced, as RFC 9112 section 5.2 permits for
//!   obs-fold). Legacy kept the raw fold, which put a line break inside a header value.
//! - A line made only of `\r` can only occur at the very start of the block (elsewhere it
//!   would be the terminator); it is skipped instead of silently ending the headers.
//! - Hop-by-hop headers are dropped (issue 10, finding 5; RFC 3875 section 6.3.4 and RFC
//!   9110 section 7.6.1): `Connection` and every header it names, `Keep-Alive`,
//!   `Proxy-Connection`, `Transfer-Encoding`, `TE`, `Trailer` and `Upgrade` describe the
//!   connection httpd frames, not the application's. An application's
//!   `Transfer-Encoding: chunked` made httpd send the body unframed, so a body that
//!   imitated chunk framing ended the response early and answered the client's next
//!   pipelined request. `Proxy-Authenticate` is end-to-end for an origin server's 407
//!   and cannot change framing, so it is kept.
//! - A `Content-Length` that is not one plain decimal number (`5, 100`, `-1`, `+3`,
//!   empty, larger than `u64`) is dropped, and httpd frames the body itself; a valid
//!   one is passed on and the gateway holds the body to it
//!   ([`ResponseHead::declared_length`]).

use memchr::{memchr, memchr3, memchr_iter};
use std::borrow::Cow;

/// The interesting parts of the CGI header block. Names and values are raw bytes (see
/// the module docs of [`crate::cgi`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// Last `Status` header: the numeric code (strtol-like; 0 when not numeric, saturated at
    /// `u16::MAX`) and the full value, e.g. `404 Not Found`, `999 Weird` or `404`.
    pub status: Option<(u16, Vec<u8>)>,
    /// Last `Content-Type` value.
    pub content_type: Option<Vec<u8>>,
    /// Last `Location` value.
    pub location: Option<Vec<u8>>,
    /// Last `Content-Length` value; only a valid one is kept (see the module docs).
    pub content_length: Option<Vec<u8>>,
    /// Every other header in order, duplicates kept, name as sent (hop-by-hop headers
    /// removed).
    pub other: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Headers that describe one connection (RFC 9110 section 7.6.1, plus the
/// non-standard `Keep-Alive` and `Proxy-Connection` that mod_proxy also strips):
/// never taken from an application's response.
pub const HOP_BY_HOP: &[&[u8]] = &[
    b"Connection",
    b"Keep-Alive",
    b"Proxy-Connection",
    b"Transfer-Encoding",
    b"TE",
    b"Trailer",
    b"Upgrade",
];

/// Whether `name` is one of [`HOP_BY_HOP`].
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// A `Content-Length` value as RFC 9110 section 8.6 allows it: one run of decimal
/// digits (surrounding whitespace already trimmed). Anything else is `None`.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Result of [`HeaderScanner::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan<'a> {
    /// No terminator yet; all of the pushed data was buffered.
    NeedMore,
    /// The header block is complete.
    Done {
        /// The parsed headers.
        headers: ResponseHead,
        /// The part of the pushed data after the blank line: the start of the body.
        body_start: &'a [u8],
    },
}

/// Why the header block was rejected. Display texts are the legacy ones, appended by the
/// gateway after `FastCGI: comm with server "<p>" aborted: error parsing headers: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A NUL, vertical tab or form feed before the terminator (RQ-40).
    #[error("malformed header 'Invalid Character'")]
    InvalidCharacter,
    /// A line without a colon, or with an empty or blank-containing name (RQ-41). Holds the
    /// line as legacy quoted it.
    #[error("malformed header '{}'", String::from_utf8_lossy(.0))]
    Malformed(Vec<u8>),
    /// A negative `Status` (RQ-42). Holds the value.
    #[error("invalid Status '{}'", String::from_utf8_lossy(.0))]
    InvalidStatus(Vec<u8>),
    /// More than `limit` bytes without a terminator (SG-4).
    #[error("header block too large: {received} bytes received, limit {limit}")]
    TooLarge {
        /// The configured bound.
        limit: usize,
        /// Header bytes received when the bound was exceeded.
        received: usize,
    },
    /// [`HeaderScanner::push`] was called after it returned `Done` or an error.
    #[error("header block already complete")]
    AlreadyComplete,
}

/// Incremental scanner for the header block at the start of FCGI_STDOUT.
///
/// Push STDOUT pieces as they arrive; bytes are copied only while the block is incomplete
/// across pushes (a block that arrives in one piece is parsed in place).
#[derive(Debug, Clone)]
pub struct HeaderScanner {
    limit: usize,
    buf: Vec<u8>,
    received: usize,
    /// Since the last `\n` only `\r` was seen (so the next `\n` ends the block).
    after_newline: bool,
    invalid_char: bool,
    complete: bool,
}

impl HeaderScanner {
    /// A scanner that rejects header blocks longer than `limit` bytes (terminator included).
    pub fn new(limit: usize) -> HeaderScanner {
        HeaderScanner {
            limit,
            buf: Vec::new(),
            received: 0,
            after_newline: false,
            invalid_char: false,
            complete: false,
        }
    }

    /// Header bytes received so far (terminator included once found): the `N` of the
    /// legacy `incomplete headers (N bytes) received from server` line.
    pub fn bytes_received(&self) -> usize {
        self.received
    }

    /// Adds the next piece of STDOUT. After `Done` or an error the scanner is spent and
    /// further calls return [`HeaderError::AlreadyComplete`].
    pub fn push<'a>(&mut self, data: &'a [u8]) -> Result<Scan<'a>, HeaderError> {
        if self.complete {
            return Err(HeaderError::AlreadyComplete);
        }
        let end = self.find_terminator(data);
        let (head_part, body) = data.split_at(end.unwrap_or(data.len()));
        if memchr3(0, 0x0b, 0x0c, head_part).is_some() {
            self.invalid_char = true;
        }
        let received = self.received.saturating_add(head_part.len());
        if received > self.limit {
            self.complete = true;
            self.received = received;
            return Err(HeaderError::TooLarge {
                limit: self.limit,
                received,
            });
        }
        self.received = received;
        if end.is_none() {
            self.buf.extend_from_slice(head_part);
            return Ok(Scan::NeedMore);
        }
        self.complete = true;
        if self.invalid_char {
            return Err(HeaderError::InvalidCharacter);
        }
        let headers = if self.buf.is_empty() {
            parse_block(head_part)?
        } else {
            self.buf.extend_from_slice(head_part);
            parse_block(&self.buf)?
        };
        Ok(Scan::Done {
            headers,
            body_start: body,
        })
    }

    /// Index just past the terminating `\n` in `data`, if the block ends in it. Updates
    /// the carried "only `\r` since the last `\n`" state otherwise.
    fn find_terminator(&mut self, data: &[u8]) -> Option<usize> {
        let only_cr = |s: &[u8]| s.iter().all(|&b| b == b'\r');
        let mut after_newline = self.after_newline;
        let mut line_start = 0;
        for nl in memchr_iter(b'\n', data) {
            let gap = data.get(line_start..nl).unwrap_or_default();
            if after_newline && only_cr(gap) {
                return Some(nl + 1);
            }
            after_newline = true;
            line_start = nl + 1;
        }
        let tail = data.get(line_start..).unwrap_or_default();
        self.after_newline = after_newline && only_cr(tail);
        None
    }
}

/// Header whitespace for trimming (`\n` cannot occur inside a line; VT/FF were rejected).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses a complete block (terminator included) into a [`ResponseHead`].
fn parse_block(block: &[u8]) -> Result<ResponseHead, HeaderError> {
    // The block ends "\n" CR* "\n": the CR-only piece and the empty piece after the
    // final "\n" are not header lines. (Each line is handled once the two pieces after
    // it are known: no list of lines is built, issue 11.)
    let mut pieces = block.split(|&b| b == b'\n');
    let (mut a, mut b) = (pieces.next(), pieces.next());
    let mut head = ResponseHead::default();
    // The header being read (a continuation line extends its value).
    let mut current: Option<(&[u8], Cow<'_, [u8]>)> = None;
    for c in pieces {
        let Some(raw) = std::mem::replace(&mut a, b.replace(c)) else {
            break;
        };
        let line = trim_end(raw);
        if matches!(raw.first(), Some(b' ' | b'\t')) {
            let Some((_, value)) = current.as_mut() else {
                return Err(HeaderError::Malformed(line.to_vec()));
            };
            let more = trim_start(line);
            if !more.is_empty() {
                let value = value.to_mut();
                if !value.is_empty() {
                    value.push(b' ');
                }
                value.extend_from_slice(more);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        // Apply the previous header before looking at this line, so errors come out in
        // line order (an invalid Status before a malformed later line).
        if let Some((name, value)) = current.take() {
            head.apply(name, value)?;
        }
        let (name, value) = split_line(line)?;
        current = Some((name, Cow::Borrowed(value)));
    }
    if let Some((name, value)) = current {
        head.apply(name, value)?;
    }
    head.drop_hop_by_hop();
    Ok(head)
}

/// Splits `Name: value` (line already right-trimmed) per RQ-41.
fn split_line(line: &[u8]) -> Result<(&[u8], &[u8]), HeaderError> {
    let colon = memchr(b':', line).ok_or_else(|| HeaderError::Malformed(line.to_vec()))?;
    let (name, value) = line.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let name = trim_end(name);
    if name.is_empty() || memchr::memchr2(b' ', b'\t', name).is_some() {
        // Legacy logged the line with its colon turned into a space.
        let mut logged = line.to_vec();
        if let Some(c) = logged.get_mut(colon) {
            *c = b' ';
        }
        return Err(HeaderError::Malformed(logged));
    }
    Ok((name, trim_start(value)))
}

impl ResponseHead {
    /// The body length the application declared, when it sent a valid
    /// `Content-Length` (invalid ones are dropped while parsing).
    pub fn declared_length(&self) -> Option<u64> {
        self.content_length.as_deref().and_then(parse_content_length)
    }

    /// Removes the hop-by-hop headers and those named by `Connection`, and an invalid
    /// `Content-Length` (see the module docs).
    fn drop_hop_by_hop(&mut self) {
        let mut named: Vec<Vec<u8>> = Vec::new();
        for (k, v) in &self.other {
            if k.eq_ignore_ascii_case(b"Connection") {
                for token in v.split(|&b| b == b',') {
                    let t = trim_end(trim_start(token));
                    if !t.is_empty() {
                        named.push(t.to_vec());
                    }
                }
            }
        }
        self.other
            .retain(|(k, _)| !is_hop_by_hop(k) && !named.iter().any(|n| n.eq_ignore_ascii_case(k)));
        let named_cl = named.iter().any(|n| n.eq_ignore_ascii_case(b"Content-Length"));
        if named_cl
            || self
                .content_length
                .as_deref()
                .is_some_and(|v| parse_content_length(v).is_none())
        {
            self.content_length = None;
        }
    }

    fn apply(&mut self, name: &[u8], value: Cow<'_, [u8]>) -> Result<(), HeaderError> {
        if name.eq_ignore_ascii_case(b"Status") {
            let code = parse_status(&value).ok_or_else(|| HeaderError::InvalidStatus(value.to_vec()))?;
            self.status = Some((code, value.into_owned()));
        } else if name.eq_ignore_ascii_case(b"Content-Type") {
            self.content_type = Some(value.into_owned());
        } else if name.eq_ignore_ascii_case(b"Location") {
            self.location = Some(value.into_owned());
        } else if name.eq_ignore_ascii_case(b"Content-Length") {
            self.content_length = Some(value.into_owned());
        } else {
            self.other.push((name.to_vec(), value.into_owned()));
        }
        Ok(())
    }
}

/// `strtol(value, NULL, 10)` as far as RQ-42 needs it: optional whitespace and sign, then
/// digits; no digits means 0. `None` for a negative number (`-0` is 0, not negative).
fn parse_status(value: &[u8]) -> Option<u16> {
    let s = trim_start(value);
    let (negative, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    let mut n: u64 = 0;
    for &b in s.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    if negative && n != 0 {
        return None;
    }
    Some(u16::try_from(n).unwrap_or(u16::MAX))
}

/// How many bytes of nph output [`nph_status_line`] needs at most to decide.
pub const NPH_PREFIX: usize = 13;

/// Whether nph output starts like an HTTP/1.x response: `HTTP/1.<d> <ddd>` followed by
/// a space, `\r`, `\n` or the end of the output. `None`: `prefix` (the first bytes of
/// the output, up to [`NPH_PREFIX`]) is too short to tell and more may come; `at_end`
/// says no more will.
pub fn nph_status_line(prefix: &[u8], at_end: bool) -> Option<bool> {
    const PATTERN: &[u8; 12] = b"HTTP/1.d ddd";
    for (i, &want) in PATTERN.iter().enumerate() {
        let Some(&b) = prefix.get(i) else {
            return if at_end { Some(false) } else { None };
        };
        let ok = if want == b'd' { b.is_ascii_digit() } else { b == want };
        if !ok {
            return Some(false);
        }
    }
    match prefix.get(PATTERN.len()) {
        Some(b' ' | b'\r' | b'\n') => Some(true),
        Some(_) => Some(false),
        None if at_end => Some(true),
        None => None,
    }
}

/// What a `Location` response turns into (RQ-46/RQ-47).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect<'h> {
    /// `Location` starting with `/`: httpd re-runs the request internally as a GET.
    Internal(&'h [u8]),
    /// Any other `Location` (absolute or relative URL): httpd sends its own 302 page.
    External(&'h [u8]),
}

/// The redirect a response asks for: only when `Location` is present and the status is
/// 200 (no `Status` header or `Status: 200`). With any other status the application's
/// response is sent as it is (RQ-47), so this returns `None`.
pub fn redirect_kind(head: &ResponseHead) -> Option<Redirect<'_>> {
    let location = head.location.as_deref()?;
    if let Some((code, _)) = &head.status {
        if *code != 200 {
            return None;
        }
    }
    if location.first() == Some(&b'/') {
        Some(Redirect::Internal(location))
    } else {
        Some(Redirect::External(location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn scan_all(data: &[u8]) -> Result<(ResponseHead, Vec<u8>), HeaderError> {
        match HeaderScanner::new(LIMIT).push(data)? {
            Scan::Done { headers, body_start } => Ok((headers, body_start.to_vec())),
            Scan::NeedMore => panic!("incomplete"),
        }
    }

    fn head(data: &[u8]) -> ResponseHead {
        scan_all(data).unwrap().0
    }

    // Issue 11: parsing a small response's headers allocates what the
    // result keeps and nothing else (no list of lines, no copy of a name
    // the result does not keep): it was 9 here before.
    #[test]
    fn parsing_allocates_only_what_it_keeps() {
        let block = b"Status: 200 OK\r\nContent-Type: text/plain\r\nX-Probe: 1\r\n\r\n";
        let (head, n) = crate::test_alloc::count(|| parse_block(block).unwrap());
        assert_eq!(head.other, vec![(b"X-Probe".to_vec(), b"1".to_vec())]);
        // Status value, Content-Type value, the `other` list, its name and value.
        assert!(n <= 5, "{n} allocations");
        // A continuation line extends the value it belongs to (a copy then).
        let (head, _) = crate::test_alloc::count(|| parse_block(b"X-A: 1\n  2\n\n").unwrap());
        assert_eq!(head.other, vec![(b"X-A".to_vec(), b"1 2".to_vec())]);
    }

    fn err(data: &[u8]) -> String {
        scan_all(data).unwrap_err().to_string()
    }

    /// Feeds `pieces` and returns the result plus the concatenated body.
    fn feed(scanner: &mut HeaderScanner, pieces: &[&[u8]]) -> Option<Result<(ResponseHead, Vec<u8>), HeaderError>> {
        let mut result = None;
        let mut body = Vec::new();
        for piece in pieces {
            match &result {
                None => match scanner.push(piece) {
                    Ok(Scan::NeedMore) => {}
                    Ok(Scan::Done { headers, body_start }) => {
                        body.extend_from_slice(body_start);
                        result = Some(Ok(headers));
                    }
                    Err(e) => return Some(Err(e)),
                },
                Some(_) => body.extend_from_slice(piece),
            }
        }
        result.map(|r| r.map(|h| (h, body)))
    }

    #[test]
    fn terminators() {
        for (input, body) in [
            (&b"Content-Type: text/html\n\nBODY"[..], &b"BODY"[..]),
            (b"Content-Type: text/html\r\n\r\nBODY", b"BODY"),
            (b"Content-Type: text/html\n\r\nBODY", b"BODY"),
            (b"Content-Type: text/html\r\n\r\r\r\n\nBODY", b"\nBODY"),
            (b"Content-Type: text/html\n\n", b""),
        ] {
            let (h, b) = scan_all(input).unwrap();
            assert_eq!(h.content_type.as_deref(), Some(&b"text/html"[..]), "{input:?}");
            assert_eq!(b, body, "{input:?}");
        }
        // An empty header block.
        assert_eq!(scan_all(b"\n\nx").unwrap(), (ResponseHead::default(), b"x".to_vec()));
        assert_eq!(
            scan_all(b"\r\n\r\nx").unwrap(),
            (ResponseHead::default(), b"x".to_vec())
        );
        // "\r\r\n" or a space between newlines is not a terminator.
        let mut s = HeaderScanner::new(LIMIT);
        assert_eq!(s.push(b"A: b\n \nC: d\n\r\r"), Ok(Scan::NeedMore));
        assert!(matches!(
            s.push(b"\nrest"),
            Ok(Scan::Done {
                body_start: b"rest",
                ..
            })
        ));
    }

    #[test]
    fn incomplete_counts_bytes() {
        let mut s = HeaderScanner::new(LIMIT);
        assert_eq!(s.bytes_received(), 0);
        assert_eq!(s.push(b"Status: 200\r\n"), Ok(Scan::NeedMore));
        assert_eq!(s.push(b"X-A: 1\r\n"), Ok(Scan::NeedMore));
        assert_eq!(s.bytes_received(), 21);
        assert!(matches!(s.push(b"\r\nbody"), Ok(Scan::Done { .. })));
        assert_eq!(s.bytes_received(), 23, "terminator counted, body not");
        assert_eq!(s.push(b"more"), Err(HeaderError::AlreadyComplete));
    }

    #[test]
    fn split_at_every_byte_and_byte_by_byte() {
        let input: &[u8] = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n\
X-Fold: one\r\n  two\r\nSet-Cookie: b=2\r\nLocation: /x\r\n\r\nbody\r\n\r\nmore";
        let expect = scan_all(input).unwrap();
        assert_eq!(expect.1, b"body\r\n\r\nmore");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            let got = feed(&mut HeaderScanner::new(LIMIT), &[a, b]).unwrap().unwrap();
            assert_eq!(got, expect, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&mut HeaderScanner::new(LIMIT), &bytes).unwrap().unwrap(), expect);
        // Terminator variants split inside the terminator.
        for input in [&b"A: b\n\r\nZ"[..], b"A: b\r\n\r\nZ", b"A: b\n\nZ"] {
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let (h, body) = feed(&mut HeaderScanner::new(LIMIT), &bytes).unwrap().unwrap();
            assert_eq!((h.other.len(), body.as_slice()), (1, &b"Z"[..]));
        }
    }

    #[test]
    fn all_fields_and_order() {
        let h = head(
            b"status: 404 Not Found\nCONTENT-TYPE: text/plain\ncontent-length: 12\n\
LOCATION: http://e/\nSet-Cookie: a=1\nX-Other:  spaced value  \t\nSet-Cookie: b=2\nX-Empty:\n\n",
        );
        assert_eq!(h.status, Some((404, b"404 Not Found".to_vec())));
        assert_eq!(h.content_type.as_deref(), Some(&b"text/plain"[..]));
        assert_eq!(h.content_length.as_deref(), Some(&b"12"[..]));
        assert_eq!(h.location.as_deref(), Some(&b"http://e/"[..]));
        let other: Vec<(&[u8], &[u8])> = h.other.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(
            other,
            [
                (&b"Set-Cookie"[..], &b"a=1"[..]),
                (b"X-Other", b"spaced value"),
                (b"Set-Cookie", b"b=2"),
                (b"X-Empty", b""),
            ]
        );
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let h = head(
            b"Status: 200\nTransfer-Encoding: chunked\nconnection: close, X-Secret\nKeep-Alive: timeout=5\n\
Upgrade: h2c\nTE: trailers\nTrailer: X-T\nProxy-Connection: keep-alive\nX-Secret: 1\n\
Proxy-Authenticate: Basic realm=x\nSet-Cookie: a=1\nContent-Length: 5\n\n",
        );
        assert_eq!(
            h.other,
            [
                (b"Proxy-Authenticate".to_vec(), b"Basic realm=x".to_vec()),
                (b"Set-Cookie".to_vec(), b"a=1".to_vec()),
            ]
        );
        assert_eq!(h.declared_length(), Some(5));
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&name.to_ascii_lowercase()));
        }
        assert!(!is_hop_by_hop(b"Proxy-Authenticate"));
    }

    #[test]
    fn content_length_must_be_one_decimal_number() {
        for (value, want) in [
            (&b"0"[..], Some(0)),
            (b"12", Some(12)),
            (b"007", Some(7)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"5, 100", None),
            (b"5,5", None),
            (b"-1", None),
            (b"+3", None),
            (b"1 2", None),
            (b"0x10", None),
            (b"", None),
        ] {
            assert_eq!(parse_content_length(value), want, "{value:?}");
            let mut block = b"Content-Length: ".to_vec();
            block.extend_from_slice(value);
            block.extend_from_slice(b"\n\n");
            let h = head(&block);
            assert_eq!(h.declared_length(), want, "{value:?}");
            assert_eq!(h.content_length.is_some(), want.is_some(), "{value:?}");
        }
        // A Connection header cannot smuggle Content-Length out either way.
        assert_eq!(
            head(b"Content-Length: 3\nConnection: content-length\n\n").content_length,
            None
        );
    }

    #[test]
    fn nph_status_lines() {
        for good in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.0 404\r\n",
            b"HTTP/1.1 204\n",
            b"HTTP/1.1 500 ",
        ] {
            assert_eq!(nph_status_line(good, false), Some(true), "{good:?}");
            // Byte by byte it stays undecided until it is decided right.
            for n in 0..good.len().min(NPH_PREFIX) {
                let got = nph_status_line(&good[..n], false);
                assert!(got.is_none() || got == Some(true), "{good:?} at {n}");
            }
        }
        assert_eq!(nph_status_line(b"HTTP/1.1 200", true), Some(true));
        for bad in [
            &b"Status: 200 OK\r\n"[..],
            b"HTTP/2 200 OK\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000 OK",
            b"http/1.1 200 OK\r\n",
            b"HTTP/1.x 200 OK\r\n",
            b" HTTP/1.1 200 OK",
        ] {
            assert_eq!(nph_status_line(bad, false), Some(false), "{bad:?}");
        }
        assert_eq!(nph_status_line(b"HTTP/1.1", true), Some(false));
        assert_eq!(nph_status_line(b"", true), Some(false));
        assert_eq!(nph_status_line(b"HTTP/1.1", false), None);
        assert_eq!(nph_status_line(b"X", false), Some(false));
    }

    #[test]
    fn last_wins() {
        let h = head(
            b"Status: 500\nStatus: 201 Made\nContent-Type: a\nContent-Type: b\nLocation: /1\n\
Location: /2\nContent-Length: 1\nContent-Length: 2\n\n",
        );
        assert_eq!(h.status, Some((201, b"201 Made".to_vec())));
        assert_eq!(h.content_type.as_deref(), Some(&b"b"[..]));
        assert_eq!(h.location.as_deref(), Some(&b"/2"[..]));
        assert_eq!(h.content_length.as_deref(), Some(&b"2"[..]));
        assert!(h.other.is_empty());
    }

    #[test]
    fn name_trailing_whitespace_trimmed() {
        let h = head(b"Content-Type \t: text/x\nX-A\t:v\n\n");
        assert_eq!(h.content_type.as_deref(), Some(&b"text/x"[..]));
        assert_eq!(h.other, [(b"X-A".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn status_values() {
        let status = |v: &str| head(format!("Status: {v}\r\n\r\n").as_bytes()).status;
        assert_eq!(status("404"), Some((404, b"404".to_vec())));
        assert_eq!(status("999 Weird"), Some((999, b"999 Weird".to_vec())));
        assert_eq!(status("abc"), Some((0, b"abc".to_vec())));
        assert_eq!(status("99"), Some((99, b"99".to_vec())));
        assert_eq!(status("+302 Found"), Some((302, b"+302 Found".to_vec())));
        assert_eq!(status("-0"), Some((0, b"-0".to_vec())));
        assert_eq!(status("- 5"), Some((0, b"- 5".to_vec())));
        assert_eq!(status("404abc"), Some((404, b"404abc".to_vec())));
        assert_eq!(
            status("99999999999999999999999"),
            Some((u16::MAX, b"99999999999999999999999".to_vec()))
        );
        assert_eq!(status(""), Some((0, b"".to_vec())));
        assert_eq!(err(b"Status: -1\n\n"), "invalid Status '-1'");
        assert_eq!(err(b"Status: -404 Bad\n\n"), "invalid Status '-404 Bad'");
        assert_eq!(
            scan_all(b"Status: -1\n\n").unwrap_err(),
            HeaderError::InvalidStatus(b"-1".to_vec())
        );
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(err(b"NoColonHere\n\n"), "malformed header 'NoColonHere'");
        assert_eq!(err(b"NoColonHere  \r\n\r\n"), "malformed header 'NoColonHere'");
        assert_eq!(err(b"X Y: z\n\n"), "malformed header 'X Y  z'");
        assert_eq!(err(b"X\tY: z\n\n"), "malformed header 'X\tY  z'");
        assert_eq!(err(b": v\n\n"), "malformed header '  v'");
        assert_eq!(
            err(b"  : v\n\n"),
            "malformed header '  : v'",
            "continuation with nothing to continue"
        );
        assert_eq!(err(b"A: 1\nbad line\nStatus: -1\n\n"), "malformed header 'bad line'");
        assert_eq!(
            err(b"Status: -1\nbad line\n\n"),
            "invalid Status '-1'",
            "errors in line order"
        );
    }

    #[test]
    fn invalid_characters() {
        for c in [0u8, 0x0b, 0x0c] {
            let mut input = b"X-A: a".to_vec();
            input.push(c);
            input.extend_from_slice(b"b\r\n\r\nbody\0ok");
            assert_eq!(scan_all(&input).unwrap_err(), HeaderError::InvalidCharacter);
            assert_eq!(err(&input), "malformed header 'Invalid Character'");
            // Also when the bad byte and the terminator arrive in different pieces.
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            let r = feed(&mut HeaderScanner::new(LIMIT), &bytes).unwrap();
            assert_eq!(r.unwrap_err(), HeaderError::InvalidCharacter);
        }
        // Control bytes in the body are fine.
        assert!(scan_all(b"A: b\n\n\0\x0b\x0c").is_ok());
        // Before the terminator but unterminated: still just incomplete.
        assert_eq!(HeaderScanner::new(LIMIT).push(b"A: \0"), Ok(Scan::NeedMore));
    }

    #[test]
    fn folding() {
        let h = head(b"X-Fold: one\r\n two\r\n\t three  \r\nX-B: b\r\n\r\n");
        assert_eq!(h.other[0], (b"X-Fold".to_vec(), b"one two three".to_vec()));
        assert_eq!(h.other[1], (b"X-B".to_vec(), b"b".to_vec()));
        let h = head(b"X-Empty:\n  later\nContent-Type: text/\n plain\n\n");
        assert_eq!(h.other[0], (b"X-Empty".to_vec(), b"later".to_vec()));
        assert_eq!(h.content_type.as_deref(), Some(&b"text/ plain"[..]));
        let h = head(b"Status: 404\n Not Found\n\n");
        assert_eq!(h.status, Some((404, b"404 Not Found".to_vec())));
        let h = head(b"X-A: a\n   \nX-B: b\n\n");
        assert_eq!(h.other[0], (b"X-A".to_vec(), b"a".to_vec()), "blank fold adds nothing");
    }

    #[test]
    fn leading_cr_only_line_is_skipped() {
        let h = head(b"\r\nX-A: 1\n\n");
        assert_eq!(h.other, [(b"X-A".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn non_utf8_kept_losslessly() {
        let h = head(b"Content-Disposition: attachment; filename=\"\xe9t\xe9.txt\"\n\xff-X: \x80\x81\n\n");
        assert_eq!(h.other[0].1, b"attachment; filename=\"\xe9t\xe9.txt\"");
        assert_eq!(h.other[1], (b"\xff-X".to_vec(), b"\x80\x81".to_vec()));
    }

    #[test]
    fn limit_exactly_at_and_over() {
        let block = b"X-Pad: aaaaaaaaaa\r\n\r\n"; // 21 bytes
        let n = block.len();
        let mut s = HeaderScanner::new(n);
        assert!(matches!(s.push(block), Ok(Scan::Done { .. })));
        let mut s = HeaderScanner::new(n - 1);
        assert_eq!(
            s.push(block),
            Err(HeaderError::TooLarge {
                limit: n - 1,
                received: n
            })
        );
        assert_eq!(
            HeaderError::TooLarge {
                limit: 20,
                received: 21
            }
            .to_string(),
            "header block too large: 21 bytes received, limit 20"
        );
        // Byte by byte: exactly at the limit still completes; one over fails on that byte.
        let bytes: Vec<&[u8]> = block.chunks(1).collect();
        assert!(feed(&mut HeaderScanner::new(n), &bytes).unwrap().is_ok());
        let mut s = HeaderScanner::new(n - 1);
        let r = feed(&mut s, &bytes).unwrap();
        assert_eq!(
            r.unwrap_err(),
            HeaderError::TooLarge {
                limit: n - 1,
                received: n
            }
        );
        // Body bytes after the terminator do not count.
        let mut s = HeaderScanner::new(n);
        assert!(matches!(
            s.push(b"X-Pad: aaaaaaaaaa\r\n\r\nlots of body"),
            Ok(Scan::Done { .. })
        ));
        // An endless header stream is cut off.
        let mut s = HeaderScanner::new(1000);
        let mut result = Ok(Scan::NeedMore);
        for _ in 0..100 {
            result = s.push(b"X-Flood: 0123456789\r\n");
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(HeaderError::TooLarge {
                limit: 1000,
                received: 1008
            })
        );
        assert_eq!(s.push(b"\r\n"), Err(HeaderError::AlreadyComplete));
    }

    #[test]
    fn redirects() {
        let kind = |input: &[u8]| {
            let h = head(input);
            redirect_kind(&h).map(|r| match r {
                Redirect::Internal(p) => format!("internal {}", String::from_utf8_lossy(p)),
                Redirect::External(u) => format!("external {}", String::from_utf8_lossy(u)),
            })
        };
        assert_eq!(kind(b"Location: /next?q=1\n\n").as_deref(), Some("internal /next?q=1"));
        assert_eq!(kind(b"Status: 200\nLocation: /n\n\n").as_deref(), Some("internal /n"));
        assert_eq!(
            kind(b"Status: 200 OK\nLocation: /n\n\n").as_deref(),
            Some("internal /n")
        );
        assert_eq!(
            kind(b"Location: http://e/\nContent-Type: text/html\n\n").as_deref(),
            Some("external http://e/")
        );
        assert_eq!(kind(b"Location: foo/bar\n\n").as_deref(), Some("external foo/bar"));
        assert_eq!(kind(b"Status: 302\nLocation: /n\n\n"), None);
        assert_eq!(kind(b"Status: 301 Moved\nLocation: http://e/\n\n"), None);
        assert_eq!(kind(b"Status: abc\nLocation: /n\n\n"), None);
        assert_eq!(kind(b"Content-Type: text/html\n\n"), None);
    }
}
