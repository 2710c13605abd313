//! Streaming decoder for the records an application sends back (RQ-30..RQ-36, SG-4).
//!
//! Sans-IO: the caller feeds whatever bytes the socket produced and gets back how many were
//! consumed plus at most one [`Event`]. STDOUT/STDERR content is never buffered: it comes
//! back as slices of the caller's input, possibly several per record. Only the small
//! fixed-size or bounded bodies (END_REQUEST, UNKNOWN_TYPE: 8 bytes; GET_VALUES_RESULT: at
//! most 65535 bytes, the largest record content) are collected internally.
//!
//! Deliberate differences from the legacy decoder:
//! - request ids are checked (legacy ignored them, RQ-31 / DV-7): a STDOUT, STDERR or
//!   END_REQUEST record for another non-zero id is [`ProtoError::UnexpectedRequestId`];
//! - a record type above `FCGI_MAXTYPE` (11), or 0, is skipped with its padding and
//!   reported as [`Event::Ignored`] instead of failing with `invalid type: <t> >
//!   FCGI_MAXTYPE(11)` (RQ-30): the header says how much to skip, so a newer record type
//!   need not abort the request.

use super::{
    decode_nv_pairs, ProtoError, ProtocolStatus, RecordHeader, RecordType, FCGI_HEADER_LEN, FCGI_NULL_REQUEST_ID,
    FCGI_VERSION_1,
};

/// Size of `FCGI_EndRequestBody` and `FCGI_UnknownTypeBody`.
const FIXED_BODY_LEN: usize = 8;

/// What the decoder found. Borrowed variants point into the input given to
/// [`Decoder::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A piece of STDOUT content (never empty).
    Stdout(&'a [u8]),
    /// A piece of STDERR content (never empty).
    Stderr(&'a [u8]),
    /// An empty STDOUT record: the application says its output stream is complete. More
    /// STDOUT after it is still decoded (the legacy module tolerated it, RQ-32).
    StdoutEnd,
    /// An empty STDERR record (end of the error stream).
    StderrEnd,
    /// `FCGI_END_REQUEST` for our request, reported once its padding has been read too, so
    /// a kept-alive connection is left exactly at the next record. The decoder is finished
    /// afterwards.
    EndRequest {
        /// The application's exit status (stored, otherwise unused: RQ-34).
        app_status: u32,
        /// Whether the application completed the request.
        protocol_status: ProtocolStatus,
    },
    /// An `FCGI_GET_VALUES_RESULT` management record (request id 0), decoded.
    GetValuesResult(Vec<(Vec<u8>, Vec<u8>)>),
    /// An `FCGI_UNKNOWN_TYPE` management record: the application did not understand a
    /// record of this type that we sent.
    UnknownTypeReply(u8),
    /// A record that is not part of our response and was skipped with its padding:
    /// types 0 and > 11, server-to-application types, management types with a non-zero
    /// id, and STDOUT/STDERR/END_REQUEST with id 0.
    Ignored(RecordType),
}

/// How the body of the current record is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Stdout,
    Stderr,
    StdoutEnd,
    StderrEnd,
    EndRequest,
    UnknownType,
    GetValuesResult,
    Ignore(RecordType),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Collecting the 8 header bytes.
    Header { buf: [u8; FCGI_HEADER_LEN], filled: usize },
    /// Inside a record: content first, then padding.
    Body {
        action: Action,
        content_left: usize,
        padding_left: usize,
    },
    /// END_REQUEST was delivered; nothing more is read.
    Finished,
    /// An error was reported; every further call reports it again.
    Failed(ProtoError),
}

const FRESH_HEADER: State = State::Header {
    buf: [0; FCGI_HEADER_LEN],
    filled: 0,
};

/// Streaming response decoder for one request.
///
/// Typical loop (the contract: `None` means all input was consumed, or the decoder is
/// finished and the rest of the input is not part of this request):
///
/// ```
/// use mod_fastcgi::proto::{Decoder, Event};
/// # fn handle(_: Event<'_>) {}
/// let mut dec = Decoder::new(1);
/// let mut rest: &[u8] = &[1, 6, 0, 1, 0, 2, 6, 0, b'h', b'i', 0, 0, 0, 0, 0, 0];
/// while !rest.is_empty() {
///     let (used, event) = dec.feed(rest)?;
///     rest = rest.get(used..).unwrap_or_default();
///     match event {
///         Some(ev) => handle(ev),
///         None => break, // need more bytes (or finished)
///     }
/// }
/// # Ok::<(), mod_fastcgi::proto::ProtoError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    request_id: u16,
    /// An earlier request id on the same connection whose late records are
    /// skipped rather than errors (0: none; see [`Decoder::skip_late`]).
    late_id: u16,
    state: State,
    /// END_REQUEST / UNKNOWN_TYPE body.
    fixed: [u8; FIXED_BODY_LEN],
    fixed_len: usize,
    /// GET_VALUES_RESULT content; bounded by the 16-bit content length.
    values: Vec<u8>,
}

/// Splits up to `n` bytes off the front of `rest`; never panics.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (now, later) = rest.split_at(n.min(rest.len()));
    *rest = later;
    now
}

impl Decoder {
    /// A decoder for the response to `request_id` (not 0, which is reserved for
    /// management records).
    pub fn new(request_id: u16) -> Decoder {
        Decoder {
            request_id,
            late_id: 0,
            state: FRESH_HEADER,
            fixed: [0; FIXED_BODY_LEN],
            fixed_len: 0,
            values: Vec::new(),
        }
    }

    /// Starts over for another request on the same connection, keeping allocations.
    pub fn reset(&mut self, request_id: u16) {
        self.request_id = request_id;
        self.late_id = 0;
        self.state = FRESH_HEADER;
        self.fixed_len = 0;
        self.values.clear();
    }

    /// Records for `id`, an earlier request on this connection that was
    /// aborted, are skipped instead of being an unexpected-id error: an
    /// application may go on writing for a request after it answered
    /// `FCGI_ABORT_REQUEST` (Go's net/http/fcgi does).
    pub fn skip_late(&mut self, id: u16) {
        if id != self.request_id {
            self.late_id = id;
        }
    }

    /// The request id this decoder accepts.
    pub fn request_id(&self) -> u16 {
        self.request_id
    }

    /// True once [`Event::EndRequest`] has been returned.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// True when the input so far ends inside a record, i.e. an EOF now would cut a record
    /// short (useful for the log line when the application closes the connection).
    pub fn is_mid_record(&self) -> bool {
        match self.state {
            State::Header { filled, .. } => filled > 0,
            State::Body { .. } => true,
            State::Finished | State::Failed(_) => false,
        }
    }

    /// Consumes bytes from `input` until one event is ready or the input is exhausted.
    ///
    /// Returns the number of bytes consumed and the event, if any. `None` means either all
    /// of `input` was consumed (feed more when it arrives) or the decoder is finished
    /// (then `consumed` may be less than `input.len()`: after END_REQUEST it returns
    /// `Ok((0, None))`). After an error the decoder is poisoned and returns that error
    /// again on every call.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Event<'a>>), ProtoError> {
        let mut rest = input;
        let consumed = |rest: &[u8]| input.len().saturating_sub(rest.len());
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Finished => return Ok((consumed(rest), None)),
                State::Header { buf, filled } => {
                    if rest.is_empty() {
                        return Ok((consumed(rest), None));
                    }
                    let want = FCGI_HEADER_LEN.saturating_sub(*filled);
                    let got = take(&mut rest, want);
                    let end = *filled + got.len();
                    if let Some(dst) = buf.get_mut(*filled..end) {
                        dst.copy_from_slice(got);
                    }
                    *filled = end;
                    if *filled < FCGI_HEADER_LEN {
                        return Ok((consumed(rest), None));
                    }
                    let header = RecordHeader::from_bytes(buf);
                    match self.classify(&header) {
                        Ok(action) => {
                            self.fixed_len = 0;
                            self.values.clear();
                            self.state = State::Body {
                                action,
                                content_left: usize::from(header.content_length),
                                padding_left: usize::from(header.padding_length),
                            };
                        }
                        Err(e) => {
                            self.state = State::Failed(e.clone());
                            return Err(e);
                        }
                    }
                }
                State::Body {
                    action,
                    content_left,
                    padding_left,
                } => {
                    let action = *action;
                    if *content_left > 0 {
                        if rest.is_empty() {
                            return Ok((consumed(rest), None));
                        }
                        let piece = take(&mut rest, *content_left);
                        *content_left -= piece.len();
                        match action {
                            Action::Stdout => return Ok((consumed(rest), Some(Event::Stdout(piece)))),
                            Action::Stderr => return Ok((consumed(rest), Some(Event::Stderr(piece)))),
                            Action::EndRequest | Action::UnknownType => {
                                let end = self.fixed_len + piece.len();
                                // classify() guarantees content_length == FIXED_BODY_LEN.
                                if let Some(dst) = self.fixed.get_mut(self.fixed_len..end) {
                                    dst.copy_from_slice(piece);
                                }
                                self.fixed_len = end;
                            }
                            Action::GetValuesResult => self.values.extend_from_slice(piece),
                            Action::StdoutEnd | Action::StderrEnd | Action::Ignore(_) => {}
                        }
                    } else if *padding_left > 0 {
                        if rest.is_empty() {
                            return Ok((consumed(rest), None));
                        }
                        let piece = take(&mut rest, *padding_left);
                        *padding_left -= piece.len();
                    } else {
                        match self.complete(action) {
                            Ok(event) => {
                                self.state = match event {
                                    Some(Event::EndRequest { .. }) => State::Finished,
                                    _ => FRESH_HEADER,
                                };
                                if event.is_some() {
                                    return Ok((consumed(rest), event));
                                }
                            }
                            Err(e) => {
                                self.state = State::Failed(e.clone());
                                return Err(e);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Decides how to treat a record from its header, rejecting what must abort the request.
    fn classify(&self, h: &RecordHeader) -> Result<Action, ProtoError> {
        if h.version != FCGI_VERSION_1 {
            return Err(ProtoError::InvalidVersion(h.version));
        }
        let ours = h.request_id == self.request_id;
        let management = h.request_id == FCGI_NULL_REQUEST_ID;
        let empty = h.content_length == 0;
        let late = self.late_id != 0 && h.request_id == self.late_id;
        let action = match h.rtype {
            RecordType::Stdout | RecordType::Stderr | RecordType::EndRequest if late => Action::Ignore(h.rtype),
            RecordType::Stdout | RecordType::Stderr | RecordType::EndRequest if !ours && !management => {
                return Err(ProtoError::UnexpectedRequestId {
                    got: h.request_id,
                    expected: self.request_id,
                });
            }
            RecordType::Stdout if ours && empty => Action::StdoutEnd,
            RecordType::Stdout if ours => Action::Stdout,
            RecordType::Stderr if ours && empty => Action::StderrEnd,
            RecordType::Stderr if ours => Action::Stderr,
            RecordType::EndRequest if ours => {
                if usize::from(h.content_length) != FIXED_BODY_LEN {
                    return Err(ProtoError::InvalidEndRequestSize(h.content_length));
                }
                Action::EndRequest
            }
            RecordType::GetValuesResult if management => Action::GetValuesResult,
            RecordType::UnknownType if management => {
                if usize::from(h.content_length) != FIXED_BODY_LEN {
                    return Err(ProtoError::InvalidUnknownTypeSize(h.content_length));
                }
                Action::UnknownType
            }
            other => Action::Ignore(other),
        };
        Ok(action)
    }

    /// Builds the event for a record whose content and padding have been read.
    fn complete(&self, action: Action) -> Result<Option<Event<'static>>, ProtoError> {
        let f = &self.fixed;
        let event = match action {
            Action::Stdout | Action::Stderr => None,
            Action::StdoutEnd => Some(Event::StdoutEnd),
            Action::StderrEnd => Some(Event::StderrEnd),
            Action::EndRequest => Some(Event::EndRequest {
                app_status: u32::from_be_bytes([f[0], f[1], f[2], f[3]]),
                protocol_status: ProtocolStatus::from_u8(f[4]),
            }),
            Action::UnknownType => Some(Event::UnknownTypeReply(f[0])),
            Action::GetValuesResult => {
                let pairs = decode_nv_pairs(&self.values).map_err(|_| ProtoError::MalformedGetValuesResult)?;
                let owned = pairs.into_iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                Some(Event::GetValuesResult(owned))
            }
            Action::Ignore(rtype) => Some(Event::Ignored(rtype)),
        };
        Ok(event)
    }
}

/// Fuzzing entry point: runs a decoder over arbitrary bytes, whole and in small pieces.
/// It must never panic; it panics only if the decoder breaks its own contract (consuming
/// more than it was given, or returning `None` without consuming everything while not
/// finished), which is what a fuzzer should flag.
pub fn fuzz_decode(data: &[u8]) {
    let request_id = data.first().map_or(1, |b| u16::from(*b % 4));
    for piece_len in [data.len().max(1), 1, 3, 8, 13] {
        let mut dec = Decoder::new(request_id);
        'pieces: for piece in data.chunks(piece_len) {
            let mut rest = piece;
            loop {
                let (used, event) = match dec.feed(rest) {
                    Ok(r) => r,
                    Err(_) => break 'pieces,
                };
                assert!(used <= rest.len(), "decoder consumed more than it was given");
                rest = rest.get(used..).unwrap_or_default();
                if event.is_none() {
                    assert!(rest.is_empty() || dec.is_finished(), "decoder stalled");
                    if dec.is_finished() {
                        break 'pieces;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::test_rng::Rng;
    use crate::proto::{encode_nv, encode_stream, encode_stream_end, padding_len};

    /// Appends a raw record with explicit padding (the encoders always pad to 8).
    fn raw(out: &mut Vec<u8>, rtype: u8, id: u16, content: &[u8], padding: u8) {
        let len = u16::try_from(content.len()).unwrap();
        let h = RecordHeader {
            version: 1,
            rtype: RecordType::from_u8(rtype),
            request_id: id,
            content_length: len,
            padding_length: padding,
        };
        out.extend_from_slice(&h.to_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(&vec![0xAA; usize::from(padding)]);
    }

    fn end_request(out: &mut Vec<u8>, id: u16, app_status: u32, proto: u8) {
        let s = app_status.to_be_bytes();
        raw(out, 3, id, &[s[0], s[1], s[2], s[3], proto, 0, 0, 0], 0);
    }

    #[derive(Debug, Default, PartialEq)]
    struct Collected {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        /// Non-data events, in order.
        events: Vec<String>,
        error: Option<ProtoError>,
        finished: bool,
    }

    /// Feeds `pieces` in order with the documented caller loop.
    fn run<'a>(id: u16, pieces: impl IntoIterator<Item = &'a [u8]>) -> Collected {
        let mut dec = Decoder::new(id);
        let mut c = Collected::default();
        'outer: for piece in pieces {
            let mut rest = piece;
            loop {
                match dec.feed(rest) {
                    Err(e) => {
                        c.error = Some(e);
                        break 'outer;
                    }
                    Ok((used, ev)) => {
                        assert!(used <= rest.len());
                        rest = &rest[used..];
                        match ev {
                            None => {
                                assert!(rest.is_empty() || dec.is_finished());
                                break;
                            }
                            Some(Event::Stdout(d)) => {
                                assert!(!d.is_empty());
                                c.stdout.extend_from_slice(d)
                            }
                            Some(Event::Stderr(d)) => {
                                assert!(!d.is_empty());
                                c.stderr.extend_from_slice(d)
                            }
                            Some(other) => c.events.push(format!("{other:?}")),
                        }
                    }
                }
            }
        }
        c.finished = dec.is_finished();
        c
    }

    /// A response mixing every kind of record, with odd lengths and paddings.
    fn sample_response() -> Vec<u8> {
        let mut r = Vec::new();
        encode_stream(&mut r, RecordType::Stdout, 1, b"Content-Type: text/plain\r\n\r\n");
        encode_stream(&mut r, RecordType::Stderr, 1, b"warning: x\n");
        raw(&mut r, 12, 1, b"future", 255);
        raw(&mut r, 6, 1, b"", 0); // empty STDOUT in the middle: harmless (RQ-32)
        raw(&mut r, 0, 7, b"zero type", 3);
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        encode_stream(&mut r, RecordType::Stdout, 1, &big);
        let mut nv = Vec::new();
        encode_nv(&mut nv, b"FCGI_MAX_CONNS", b"10").unwrap();
        encode_nv(&mut nv, b"FCGI_MPXS_CONNS", b"0").unwrap();
        raw(&mut r, 10, 0, &nv, 5);
        raw(&mut r, 11, 0, &[200, 0, 0, 0, 0, 0, 0, 0], 0);
        raw(&mut r, 255, 1, &[1, 2, 3], 1);
        raw(&mut r, 7, 1, b"tail", 4);
        encode_stream_end(&mut r, RecordType::Stderr, 1);
        encode_stream_end(&mut r, RecordType::Stdout, 1);
        end_request(&mut r, 1, 7, 0);
        r
    }

    fn expected_sample() -> Collected {
        let mut stdout = b"Content-Type: text/plain\r\n\r\n".to_vec();
        stdout.extend((0..70_000u32).map(|i| (i % 251) as u8));
        Collected {
            stdout,
            stderr: b"warning: x\ntail".to_vec(),
            events: vec![
                "Ignored(Unknown(12))".into(),
                "StdoutEnd".into(),
                "Ignored(Unknown(0))".into(),
                format!(
                    "{:?}",
                    Event::GetValuesResult(vec![
                        (b"FCGI_MAX_CONNS".to_vec(), b"10".to_vec()),
                        (b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec()),
                    ])
                ),
                "UnknownTypeReply(200)".into(),
                "Ignored(Unknown(255))".into(),
                "StderrEnd".into(),
                "StdoutEnd".into(),
                "EndRequest { app_status: 7, protocol_status: RequestComplete }".into(),
            ],
            error: None,
            finished: true,
        }
    }

    #[test]
    fn whole_response_at_once() {
        let r = sample_response();
        assert_eq!(run(1, [&r[..]]), expected_sample());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let r = sample_response();
        let expect = expected_sample();
        for i in 0..=r.len() {
            let (a, b) = r.split_at(i);
            assert_eq!(run(1, [a, b]), expect, "split at {i}");
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let r = sample_response();
        assert_eq!(run(1, r.chunks(1)), expected_sample());
    }

    #[test]
    fn random_chunk_sizes() {
        let r = sample_response();
        let expect = expected_sample();
        let mut rng = Rng::new(42);
        for round in 0..200 {
            let max = [2, 9, 100, 5000, 80_000][round % 5];
            let pieces = rng.chunks(&r, max);
            assert_eq!(run(1, pieces), expect, "round {round}");
        }
    }

    #[test]
    fn stdout_is_zero_copy_pieces_of_the_input() {
        let mut r = Vec::new();
        encode_stream(&mut r, RecordType::Stdout, 1, b"abcdef");
        let mut dec = Decoder::new(1);
        let (used, ev) = dec.feed(&r[..10]).unwrap();
        assert_eq!((used, ev), (10, Some(Event::Stdout(b"ab"))));
        let (used, ev) = dec.feed(&r[10..]).unwrap();
        assert_eq!(ev, Some(Event::Stdout(b"cdef")));
        assert_eq!(used, 4);
        // Padding is consumed silently.
        assert_eq!(dec.feed(&r[14..]).unwrap(), (2, None));
        assert!(!dec.is_mid_record());
    }

    #[test]
    fn truncated_input_is_not_an_error_but_mid_record() {
        let r = sample_response();
        for cut in [1, 7, 8, 9, 20, r.len() - 1] {
            let c = run(1, [&r[..cut]]);
            assert_eq!(c.error, None);
            assert!(!c.finished, "cut {cut}");
            let mut dec = Decoder::new(1);
            let mut rest = &r[..cut];
            while let (used, Some(_)) = dec.feed(rest).unwrap() {
                rest = &rest[used..];
            }
            assert!(dec.is_mid_record(), "cut {cut}");
        }
        let mut dec = Decoder::new(1);
        assert!(!dec.is_mid_record());
        assert_eq!(dec.feed(&[]).unwrap(), (0, None));
    }

    #[test]
    fn bad_version() {
        for v in [0u8, 2, 255] {
            let mut dec = Decoder::new(1);
            let err = dec.feed(&[v, 6, 0, 1, 0, 0, 0, 0]).unwrap_err();
            assert_eq!(err, ProtoError::InvalidVersion(v));
            assert_eq!(err.to_string(), format!("invalid version: {v} != FCGI_VERSION(1)"));
            // Poisoned: the same error again.
            assert_eq!(dec.feed(&[1, 6, 0, 1, 0, 0, 0, 0]), Err(err));
        }
    }

    // Issue 14: late records of an aborted earlier request (Go goes on
    // writing after it answered the abort) are skipped; any other id is
    // still an error.
    #[test]
    fn late_records_of_an_aborted_request_are_skipped() {
        let mut r = Vec::new();
        raw(&mut r, 6, 4, b"late body", 7);
        end_request(&mut r, 4, 0, 0);
        raw(&mut r, 6, 5, b"Content-Type: x\r\n\r\nok", 0);
        end_request(&mut r, 5, 0, 0);
        let mut dec = Decoder::new(5);
        dec.skip_late(4);
        let mut data = &r[..];
        let mut stdout = Vec::new();
        let mut ended = false;
        while !data.is_empty() && !ended {
            let (used, ev) = dec.feed(data).unwrap();
            data = &data[used..];
            match ev {
                Some(Event::Stdout(d)) => stdout.extend_from_slice(d),
                Some(Event::EndRequest { .. }) => ended = true,
                _ => {}
            }
        }
        assert!(ended);
        assert_eq!(stdout, b"Content-Type: x\r\n\r\nok");
        let mut dec = Decoder::new(5);
        dec.skip_late(4);
        let mut other = Vec::new();
        raw(&mut other, 6, 3, b"x", 0);
        assert_eq!(
            dec.feed(&other),
            Err(ProtoError::UnexpectedRequestId { got: 3, expected: 5 })
        );
    }

    #[test]
    fn wrong_request_id() {
        for rtype in [6u8, 7, 3] {
            let mut r = Vec::new();
            raw(&mut r, rtype, 9, &[0; 8], 0);
            let c = run(1, [&r[..]]);
            let e = c.error.unwrap();
            assert_eq!(e, ProtoError::UnexpectedRequestId { got: 9, expected: 1 });
            assert_eq!(e.to_string(), "unexpected request id: 9 != 1");
        }
        // Id 0 on a response record and other ids on foreign types are skipped, not errors.
        let mut r = Vec::new();
        raw(&mut r, 6, 0, b"x", 7);
        raw(&mut r, 5, 9, b"stdin?", 2);
        raw(&mut r, 10, 3, b"", 0);
        end_request(&mut r, 1, 0, 0);
        let c = run(1, [&r[..]]);
        assert_eq!(c.error, None);
        assert_eq!(
            c.events,
            [
                "Ignored(Stdout)",
                "Ignored(Stdin)",
                "Ignored(GetValuesResult)",
                "EndRequest { app_status: 0, protocol_status: RequestComplete }"
            ]
        );
        assert!(c.stdout.is_empty());
    }

    #[test]
    fn end_request_wrong_size() {
        for n in [0usize, 7, 9] {
            let mut r = Vec::new();
            raw(&mut r, 3, 1, &vec![0; n], 0);
            let e = run(1, [&r[..]]).error.unwrap();
            assert_eq!(e, ProtoError::InvalidEndRequestSize(n as u16));
            assert_eq!(
                e.to_string(),
                format!("invalid FCGI_END_REQUEST size: {n} != sizeof(FCGI_EndRequestBody)(8)")
            );
        }
    }

    #[test]
    fn unknown_type_wrong_size() {
        let mut r = Vec::new();
        raw(&mut r, 11, 0, &[1, 2], 0);
        assert_eq!(run(1, [&r[..]]).error, Some(ProtoError::InvalidUnknownTypeSize(2)));
    }

    #[test]
    fn end_request_statuses_and_finish() {
        for (byte, status) in [
            (0, ProtocolStatus::RequestComplete),
            (1, ProtocolStatus::CantMpxConn),
            (2, ProtocolStatus::Overloaded),
            (3, ProtocolStatus::UnknownRole),
            (77, ProtocolStatus::Unknown(77)),
        ] {
            let mut r = Vec::new();
            raw(&mut r, 3, 1, &[0xde, 0xad, 0xbe, 0xef, byte, 9, 9, 9], 6);
            r.extend_from_slice(b"trailing garbage");
            let mut dec = Decoder::new(1);
            let (used, ev) = dec.feed(&r).unwrap();
            assert_eq!(used, 8 + 8 + 6, "padding consumed before the event");
            assert_eq!(
                ev,
                Some(Event::EndRequest {
                    app_status: 0xdead_beef,
                    protocol_status: status
                })
            );
            assert!(dec.is_finished());
            assert_eq!(dec.feed(&r[used..]).unwrap(), (0, None));
        }
        assert_eq!(
            ProtoError::InvalidEndRequestStatus(ProtocolStatus::Overloaded).to_string(),
            "invalid FCGI_END_REQUEST status: 2 != FCGI_REQUEST_COMPLETE(0)"
        );
    }

    #[test]
    fn unknown_types_skipped_with_padding() {
        for t in [0u8, 12, 255] {
            for pad in [0u8, 1, 7, 8, 255] {
                let mut r = Vec::new();
                raw(&mut r, t, 1, &[0x55; 300], pad);
                encode_stream(&mut r, RecordType::Stdout, 1, b"ok");
                end_request(&mut r, 1, 0, 0);
                let c = run(1, r.chunks(5));
                assert_eq!(c.error, None);
                assert_eq!(c.stdout, b"ok");
                assert_eq!(c.events[0], format!("Ignored(Unknown({t}))"));
            }
        }
    }

    #[test]
    fn stdout_padding_up_to_255() {
        for pad in [0u8, 1, 6, 7, 8, 100, 254, 255] {
            let mut r = Vec::new();
            raw(&mut r, 6, 1, b"hello", pad);
            raw(&mut r, 7, 1, b"err", pad);
            end_request(&mut r, 1, 0, 0);
            for pieces in [vec![&r[..]], r.chunks(1).collect()] {
                let c = run(1, pieces);
                assert_eq!(c.error, None, "pad {pad}");
                assert_eq!((c.stdout.as_slice(), c.stderr.as_slice()), (&b"hello"[..], &b"err"[..]));
                assert!(c.finished);
            }
        }
        assert_eq!(padding_len(5), 3);
    }

    #[test]
    fn malformed_get_values_result() {
        let mut r = Vec::new();
        raw(&mut r, 10, 0, &[5, 1, b'a'], 0);
        let e = run(1, [&r[..]]).error.unwrap();
        assert_eq!(e.to_string(), "malformed name-value pair in FCGI_GET_VALUES_RESULT");
    }

    #[test]
    fn reset_reuses_decoder() {
        let mut r = Vec::new();
        end_request(&mut r, 2, 0, 0);
        let mut dec = Decoder::new(1);
        assert!(dec.feed(&r).is_err());
        dec.reset(2);
        assert_eq!(dec.request_id(), 2);
        assert!(matches!(dec.feed(&r), Ok((16, Some(Event::EndRequest { .. })))));
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut rng = Rng::new(0xfeed);
        for i in 0..10_000 {
            let len = rng.range(0, 64);
            let mut data = rng.bytes(len);
            // Make many inputs start with a plausible header so deeper states are reached.
            if i % 2 == 0 && data.len() >= 8 {
                data[0] = 1;
                data[1] = (data[1] % 13) + 1;
                data[2] = 0;
                data[3] %= 2;
                data[4] = 0;
                data[5] %= 24;
            }
            fuzz_decode(&data);
        }
        fuzz_decode(&sample_response());
    }
}
