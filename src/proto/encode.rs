//! Record encoders for the records the web server sends (RQ-10, RQ-11, RQ-13, SG-1, SG-4).
//!
//! All encoders append to a caller-provided `Vec<u8>` so the gateway can keep one buffer
//! per connection and reuse it for every request without allocating.

use super::nv::{check_nv, nv_prefix};
use super::{
    nv_encoded_len, padding_len, ProtoError, RecordHeader, RecordType, Role, FCGI_HEADER_LEN, FCGI_KEEP_CONN,
    FCGI_NULL_REQUEST_ID, MAX_STREAM_RECORD,
};

/// Source of padding bytes for `writev(header, payload, &ZERO_PADDING[..padding])`.
pub static ZERO_PADDING: [u8; 8] = [0; 8];

/// Appends a header for `content_len` bytes and returns the padding the caller must write
/// after the content.
fn push_header(out: &mut Vec<u8>, rtype: RecordType, request_id: u16, content_len: u16) -> usize {
    let header = RecordHeader::new(rtype, request_id, content_len);
    out.extend_from_slice(&header.to_bytes());
    usize::from(header.padding_length)
}

/// Appends `n` zero bytes of padding (`n` < 8, as produced by [`padding_len`]).
fn push_padding(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(ZERO_PADDING.get(..n).unwrap_or(&ZERO_PADDING));
}

/// Length of `content_len` bytes framed as records of at most [`MAX_STREAM_RECORD`] content
/// bytes (headers and padding included, terminating empty record excluded).
fn framed_len(content_len: usize) -> usize {
    let full = content_len / MAX_STREAM_RECORD;
    let rest = content_len % MAX_STREAM_RECORD;
    let mut total = content_len.saturating_add(full.saturating_mul(FCGI_HEADER_LEN));
    if rest > 0 {
        total = total.saturating_add(FCGI_HEADER_LEN + padding_len(rest));
    }
    total
}

/// Appends an `FCGI_BEGIN_REQUEST` record (RQ-10). The legacy module never set
/// `keep_conn`; the gateway may, to reuse connections (SG-1).
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: Role, keep_conn: bool) {
    const BODY_LEN: u16 = 8;
    out.reserve(FCGI_HEADER_LEN + usize::from(BODY_LEN));
    let padding = push_header(out, RecordType::BeginRequest, request_id, BODY_LEN);
    let role = role.as_u16().to_be_bytes();
    let flags = if keep_conn { FCGI_KEEP_CONN } else { 0 };
    out.extend_from_slice(&[role[0], role[1], flags, 0, 0, 0, 0, 0]);
    push_padding(out, padding);
}

/// Appends stream data arriving in pieces as few records as possible (each
/// up to [`MAX_STREAM_RECORD`] bytes), without copying a piece twice: the
/// header of the open record is written when it is closed. (Sending every
/// 8 KiB piece of a request body as its own record is legal, but
/// node-fastcgi 1.3 stalls on a body of 64 KiB or more sent that way.)
pub struct StreamAppender {
    rtype: RecordType,
    request_id: u16,
    /// Where the open record's header goes, and its content so far.
    open: Option<(usize, usize)>,
}

impl StreamAppender {
    pub fn new(rtype: RecordType, request_id: u16) -> StreamAppender {
        StreamAppender {
            rtype,
            request_id,
            open: None,
        }
    }

    /// Appends `data` to `out`.
    pub fn push(&mut self, out: &mut Vec<u8>, mut data: &[u8]) {
        while !data.is_empty() {
            let (start, len) = match self.open {
                Some(o) => o,
                None => {
                    let start = out.len();
                    out.extend_from_slice(&[0u8; FCGI_HEADER_LEN]);
                    (start, 0)
                }
            };
            let n = data.len().min(MAX_STREAM_RECORD - len);
            out.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.open = Some((start, len + n));
            if len + n == MAX_STREAM_RECORD {
                self.close(out);
            }
        }
    }

    /// Closes the open record (header and padding); call before anything
    /// else is appended to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((start, len)) = self.open.take() {
            // (len ≤ MAX_STREAM_RECORD < 65536.)
            let header = RecordHeader::new(self.rtype, self.request_id, len as u16);
            out[start..start + FCGI_HEADER_LEN].copy_from_slice(&header.to_bytes());
            push_padding(out, usize::from(header.padding_length));
        }
    }
}

/// Appends an `FCGI_ABORT_REQUEST` record for `request_id` (issue 14: the
/// client went away; the application is to end the request early).
pub fn encode_abort_request(out: &mut Vec<u8>, request_id: u16) {
    push_header(out, RecordType::AbortRequest, request_id, 0);
}

/// Appends `data` as stream records (`FCGI_STDIN`, `FCGI_DATA`, ...) of at most
/// [`MAX_STREAM_RECORD`] content bytes each, the last one padded to 8 bytes.
///
/// Empty `data` writes nothing: an empty record would end the stream, which only
/// [`encode_stream_end`] should do.
pub fn encode_stream(out: &mut Vec<u8>, rtype: RecordType, request_id: u16, data: &[u8]) {
    out.reserve(framed_len(data.len()));
    for chunk in data.chunks(MAX_STREAM_RECORD) {
        // A chunk is at most MAX_STREAM_RECORD (65528) bytes, so it fits in u16.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        let padding = push_header(out, rtype, request_id, len);
        out.extend_from_slice(chunk);
        push_padding(out, padding);
    }
}

/// Appends the empty record that ends a stream (RQ-11, RQ-13).
pub fn encode_stream_end(out: &mut Vec<u8>, rtype: RecordType, request_id: u16) {
    push_header(out, rtype, request_id, 0);
}

/// Header for a stream record carrying `len` content bytes, and the padding to send after
/// the content. Lets the I/O layer `writev(header, payload, &ZERO_PADDING[..padding])`
/// without copying the payload.
pub fn stream_record_header(rtype: RecordType, request_id: u16, len: u16) -> ([u8; 8], usize) {
    let header = RecordHeader::new(rtype, request_id, len);
    (header.to_bytes(), usize::from(header.padding_length))
}

/// Appends an `FCGI_GET_VALUES` management record asking for `names` (SG-1). Management
/// records are not streams, so the whole body must fit in one record.
pub fn encode_get_values(out: &mut Vec<u8>, names: &[&[u8]]) -> Result<(), ProtoError> {
    let mut len = 0usize;
    for name in names {
        check_nv(name, b"")?;
        len = len.saturating_add(nv_encoded_len(name, b""));
    }
    let content_len = u16::try_from(len).map_err(|_| ProtoError::ManagementRecordTooLarge { len })?;
    out.reserve(FCGI_HEADER_LEN + len + padding_len(len));
    let padding = push_header(out, RecordType::GetValues, FCGI_NULL_REQUEST_ID, content_len);
    for name in names {
        let (prefix, used) = nv_prefix(name.len(), 0);
        out.extend_from_slice(prefix.get(..used).unwrap_or(&prefix));
        out.extend_from_slice(name);
    }
    push_padding(out, padding);
    Ok(())
}

/// First pass of the two-pass `FCGI_PARAMS` encoding (RQ-11, RQ-12 fixed, SG-4): measures
/// the pairs so that the output buffer is reserved once, then hands out a [`ParamsWriter`]
/// for the second pass over the same pairs in the same order.
///
/// The name-value byte stream is cut into records of [`MAX_STREAM_RECORD`] content bytes
/// regardless of pair boundaries: PARAMS is a stream, so a pair may span records. This is
/// how a pair larger than 65535 bytes is sent (the legacy module corrupted the stream).
#[derive(Debug, Clone)]
pub struct ParamsEncoder {
    request_id: u16,
    nv_len: usize,
}

impl ParamsEncoder {
    /// Starts measuring the PARAMS stream of `request_id`.
    pub fn new(request_id: u16) -> ParamsEncoder {
        ParamsEncoder { request_id, nv_len: 0 }
    }

    /// Counts one pair. Fails, before anything is written, if a name or value is longer
    /// than the length field allows.
    pub fn measure(&mut self, name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
        check_nv(name, value)?;
        self.nv_len = self.nv_len.saturating_add(nv_encoded_len(name, value));
        Ok(())
    }

    /// Name-value bytes measured so far (record framing excluded).
    pub fn nv_len(&self) -> usize {
        self.nv_len
    }

    /// Total bytes the PARAMS stream will occupy: records, padding and the empty record.
    pub fn encoded_len(&self) -> usize {
        framed_len(self.nv_len).saturating_add(FCGI_HEADER_LEN)
    }

    /// Reserves [`encoded_len`](Self::encoded_len) bytes in `out` and starts the second pass.
    pub fn writer<'o>(&self, out: &'o mut Vec<u8>) -> ParamsWriter<'o> {
        // Best effort: if the reservation fails, `out` simply grows as it is written.
        let _ = out.try_reserve(self.encoded_len());
        ParamsWriter {
            start: out.len(),
            out,
            request_id: self.request_id,
            measured: self.nv_len,
            written: 0,
            copied: 0,
            left_in_record: 0,
            padding: 0,
        }
    }
}

/// Second pass of [`ParamsEncoder`]: writes the pairs into records as they come.
///
/// On any error, `out` is truncated back to its length before [`ParamsEncoder::writer`],
/// so a half-written stream is never sent.
#[derive(Debug)]
pub struct ParamsWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    request_id: u16,
    measured: usize,
    /// Name-value bytes of the pairs accepted so far.
    written: usize,
    /// Name-value bytes copied into `out` so far (differs from `written` mid-pair).
    copied: usize,
    left_in_record: usize,
    padding: usize,
}

impl ParamsWriter<'_> {
    /// Writes one pair; it must be one of the pairs measured, in the same order.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
        let len = nv_encoded_len(name, value);
        let written = self.written.saturating_add(len);
        if let Err(e) = check_nv(name, value) {
            return Err(self.fail(e));
        }
        if written > self.measured {
            let e = ProtoError::ParamsMismatch {
                measured: self.measured,
                written,
            };
            return Err(self.fail(e));
        }
        let (prefix, used) = nv_prefix(name.len(), value.len());
        self.write(prefix.get(..used).unwrap_or(&prefix));
        self.write(name);
        self.write(value);
        self.written = written;
        Ok(())
    }

    /// Pads the last record and writes the empty PARAMS record that ends the stream.
    pub fn finish(mut self) -> Result<(), ProtoError> {
        if self.written != self.measured {
            let e = ProtoError::ParamsMismatch {
                measured: self.measured,
                written: self.written,
            };
            return Err(self.fail(e));
        }
        push_padding(self.out, self.padding);
        encode_stream_end(self.out, RecordType::Params, self.request_id);
        Ok(())
    }

    fn fail(&mut self, e: ProtoError) -> ProtoError {
        self.out.truncate(self.start);
        // Poison the writer: a later push or finish reports a mismatch instead of writing.
        self.measured = 0;
        self.written = usize::MAX;
        e
    }

    /// Copies name-value bytes, opening a new record whenever the current one is full.
    /// The caller has checked that the total stays within `measured`, so every record
    /// header announces exactly the bytes that follow it.
    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left_in_record == 0 {
                push_padding(self.out, self.padding);
                let left_total = self.measured.saturating_sub(self.copied);
                let len = left_total.min(MAX_STREAM_RECORD);
                // len <= MAX_STREAM_RECORD, so it fits in u16.
                let len16 = u16::try_from(len).unwrap_or(u16::MAX);
                self.padding = push_header(self.out, RecordType::Params, self.request_id, len16);
                self.left_in_record = len;
            }
            let n = self.left_in_record.min(bytes.len());
            let (now, later) = bytes.split_at(n);
            self.out.extend_from_slice(now);
            self.left_in_record -= n;
            self.copied += n;
            bytes = later;
        }
    }
}

/// Encodes a whole PARAMS stream for `request_id` (RQ-11, SG-4): packed records of at most
/// [`MAX_STREAM_RECORD`] content bytes, pairs split across records when needed, then the
/// empty PARAMS record. Iterates `pairs` twice (measure, then write), hence the `Clone`
/// bound; nothing is written if any pair is too long.
pub fn encode_params<'p, I>(out: &mut Vec<u8>, request_id: u16, pairs: I) -> Result<(), ProtoError>
where
    I: IntoIterator<Item = (&'p [u8], &'p [u8])>,
    I::IntoIter: Clone,
{
    let pairs = pairs.into_iter();
    let mut encoder = ParamsEncoder::new(request_id);
    for (name, value) in pairs.clone() {
        encoder.measure(name, value)?;
    }
    let mut writer = encoder.writer(out);
    for (name, value) in pairs {
        writer.push(name, value)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{decode_nv_pairs, encode_nv, FCGI_MAX_CONTENT_LEN};

    /// Parses a sequence of records written by our encoders, checking the framing rules we
    /// promise (version 1, our padding, reserved byte 0), and returns (type, id, content).
    fn parse_records(mut data: &[u8]) -> Vec<(RecordType, u16, Vec<u8>)> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let h = RecordHeader::from_bytes(data[..8].try_into().unwrap());
            assert_eq!(h.version, 1);
            assert_eq!(data[7], 0, "reserved byte");
            let len = usize::from(h.content_length);
            assert!(len <= FCGI_MAX_CONTENT_LEN);
            assert_eq!(usize::from(h.padding_length), padding_len(len));
            assert!(data[8 + len..8 + h.body_len()].iter().all(|b| *b == 0));
            out.push((h.rtype, h.request_id, data[8..8 + len].to_vec()));
            data = &data[8 + h.body_len()..];
        }
        out
    }

    /// Checks a PARAMS stream and returns the concatenated name-value bytes.
    fn params_stream(data: &[u8], id: u16) -> (Vec<usize>, Vec<u8>) {
        let records = parse_records(data);
        let (last, body) = records.split_last().unwrap();
        assert_eq!(last, &(RecordType::Params, id, Vec::new()), "terminating empty record");
        let mut sizes = Vec::new();
        let mut nv = Vec::new();
        for (t, rid, content) in body {
            assert_eq!((*t, *rid), (RecordType::Params, id));
            assert!(!content.is_empty(), "no premature end of stream");
            sizes.push(content.len());
            nv.extend_from_slice(content);
        }
        (sizes, nv)
    }

    fn check_params(pairs: &[(&[u8], &[u8])]) -> Vec<usize> {
        let mut out = b"prefix".to_vec();
        encode_params(&mut out, 1, pairs.iter().copied()).unwrap();
        let mut enc = ParamsEncoder::new(1);
        for (n, v) in pairs {
            enc.measure(n, v).unwrap();
        }
        assert_eq!(out.len() - 6, enc.encoded_len(), "measured length is exact");
        let (sizes, nv) = params_stream(&out[6..], 1);
        let decoded = decode_nv_pairs(&nv).unwrap();
        assert_eq!(decoded, pairs);
        sizes
    }

    #[test]
    fn begin_request_vectors() {
        let mut out = Vec::new();
        encode_begin_request(&mut out, 1, Role::Responder, false);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.clear();
        encode_begin_request(&mut out, 0x0203, Role::Authorizer, true);
        assert_eq!(out, [1, 1, 2, 3, 0, 8, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0]);
        out.clear();
        encode_begin_request(&mut out, 1, Role::Filter, false);
        assert_eq!(out[8..10], [0, 3]);
    }

    #[test]
    fn stream_vectors_and_padding() {
        let mut out = Vec::new();
        encode_stream(&mut out, RecordType::Stdin, 1, b"hello");
        assert_eq!(out, [1, 5, 0, 1, 0, 5, 3, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]);
        out.clear();
        encode_stream(&mut out, RecordType::Stdin, 1, b"");
        assert!(out.is_empty(), "empty data must not end the stream");
        encode_stream_end(&mut out, RecordType::Stdin, 1);
        assert_eq!(out, [1, 5, 0, 1, 0, 0, 0, 0]);
        out.clear();
        encode_stream(&mut out, RecordType::Data, 7, b"12345678");
        assert_eq!(
            out,
            [1, 8, 0, 7, 0, 8, 0, 0, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8']
        );
    }

    #[test]
    fn stream_splits_at_max_stream_record() {
        for len in [
            MAX_STREAM_RECORD - 1,
            MAX_STREAM_RECORD,
            MAX_STREAM_RECORD + 1,
            65535,
            200_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            let mut out = Vec::new();
            encode_stream(&mut out, RecordType::Stdin, 1, &data);
            assert_eq!(out.len(), framed_len(len));
            let records = parse_records(&out);
            let sizes: Vec<usize> = records.iter().map(|r| r.2.len()).collect();
            let mut expect = vec![MAX_STREAM_RECORD; len / MAX_STREAM_RECORD];
            if len % MAX_STREAM_RECORD != 0 {
                expect.push(len % MAX_STREAM_RECORD);
            }
            assert_eq!(sizes, expect, "len {len}");
            let joined: Vec<u8> = records.into_iter().flat_map(|r| r.2).collect();
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn stream_record_header_for_writev() {
        let (h, pad) = stream_record_header(RecordType::Stdin, 1, 8184);
        assert_eq!((h, pad), ([1, 5, 0, 1, 0x1f, 0xf8, 0, 0], 0));
        let (h, pad) = stream_record_header(RecordType::Stdin, 1, 13);
        assert_eq!((h, pad), ([1, 5, 0, 1, 0, 13, 3, 0], 3));
        let (h, pad) = stream_record_header(RecordType::Stdin, 1, 65535);
        assert_eq!((h[4], h[5], h[6], pad), (0xff, 0xff, 1, 1));
        assert!(pad <= ZERO_PADDING.len());
    }

    #[test]
    fn get_values_vector() {
        let mut out = Vec::new();
        encode_get_values(&mut out, &[b"FCGI_MAX_CONNS", b"FCGI_MPXS_CONNS"]).unwrap();
        let mut expect = vec![1, 9, 0, 0, 0, 33, 7, 0, 14, 0];
        expect.extend_from_slice(b"FCGI_MAX_CONNS");
        expect.extend_from_slice(&[15, 0]);
        expect.extend_from_slice(b"FCGI_MPXS_CONNS");
        expect.extend_from_slice(&[0; 7]);
        assert_eq!(out, expect);
        let big = vec![b'n'; 65531];
        let before = out.len();
        assert_eq!(
            encode_get_values(&mut out, &[&big]),
            Err(ProtoError::ManagementRecordTooLarge { len: 65536 })
        );
        assert_eq!(out.len(), before, "nothing written on error");
    }

    #[test]
    fn params_spec_vector_packed() {
        let mut out = Vec::new();
        encode_params(&mut out, 1, [(&b"A"[..], &b"1"[..]), (b"BC", b"d")]).unwrap();
        assert_eq!(
            out,
            [
                1, 4, 0, 1, 0, 9, 7, 0, // header: 9 bytes of pairs, 7 padding
                1, 1, b'A', b'1', 2, 1, b'B', b'C', b'd', // pairs
                0, 0, 0, 0, 0, 0, 0, // padding
                1, 4, 0, 1, 0, 0, 0, 0, // end of stream
            ]
        );
        out.clear();
        encode_params(&mut out, 1, std::iter::empty()).unwrap();
        assert_eq!(out, [1, 4, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn params_split_at_and_around_the_record_limit() {
        // Single pair "N" = value: encoded size 1 + 4 + 1 + v for v >= 128.
        let m = MAX_STREAM_RECORD;
        for (value_len, sizes) in [
            (m - 6 - 1, vec![m - 1]),
            (m - 6, vec![m]),
            (m - 6 + 1, vec![m, 1]),
            (65535 - 6, vec![m, 65535 - m]),
            (65535, vec![m, 65541 - m]),
            (70_000, vec![m, 70_006 - m]),
        ] {
            let value = vec![b'v'; value_len];
            assert_eq!(check_params(&[(b"N", &value)]), sizes, "value_len {value_len}");
        }
        // Many small pairs: the boundary falls inside a pair, which continues in the next record.
        let values: Vec<Vec<u8>> = (0..700).map(|i| vec![b'a' + (i % 26) as u8; 100 + i % 50]).collect();
        let names: Vec<String> = (0..700).map(|i| format!("VAR_{i}")).collect();
        let pairs: Vec<(&[u8], &[u8])> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.as_bytes(), v.as_slice()))
            .collect();
        let sizes = check_params(&pairs);
        assert!(sizes.len() > 1 && sizes[0] == m);
    }

    #[test]
    fn params_one_mib_value_and_nv_lengths() {
        let value: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        let long_name = vec![b'K'; 300];
        let sizes = check_params(&[
            (b"", b""),
            (b"SHORT", &value[..127]),
            (b"EDGE", &value[..128]),
            (&long_name, &value),
            (b"AFTER", b"x"),
        ]);
        assert!(sizes.iter().all(|s| *s <= MAX_STREAM_RECORD));
        assert_eq!(sizes.len(), (1 << 20) / MAX_STREAM_RECORD + 1);
    }

    #[test]
    fn params_two_pass_mismatch_is_caught_and_rolled_back() {
        let mut out = b"keep".to_vec();
        let mut enc = ParamsEncoder::new(1);
        enc.measure(b"A", b"1").unwrap();
        assert_eq!(enc.nv_len(), 4);
        let mut w = enc.writer(&mut out);
        w.push(b"A", b"1").unwrap();
        assert_eq!(
            w.push(b"B", b"2"),
            Err(ProtoError::ParamsMismatch {
                measured: 4,
                written: 8
            })
        );
        assert!(w.finish().is_err());
        assert_eq!(out, b"keep");

        let mut enc = ParamsEncoder::new(1);
        enc.measure(b"A", b"1").unwrap();
        let w = enc.writer(&mut out);
        assert_eq!(
            w.finish(),
            Err(ProtoError::ParamsMismatch {
                measured: 4,
                written: 0
            })
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn encoders_append_without_clobbering() {
        let mut out = Vec::new();
        encode_begin_request(&mut out, 1, Role::Responder, false);
        encode_params(&mut out, 1, [(&b"X"[..], &b"y"[..])]).unwrap();
        encode_stream(&mut out, RecordType::Stdin, 1, b"body");
        encode_stream_end(&mut out, RecordType::Stdin, 1);
        let types: Vec<RecordType> = parse_records(&out).into_iter().map(|r| r.0).collect();
        use RecordType::*;
        assert_eq!(types, [BeginRequest, Params, Params, Stdin, Stdin]);
        let mut nv = Vec::new();
        encode_nv(&mut nv, b"X", b"y").unwrap();
        assert_eq!(parse_records(&out)[1].2, nv);
    }
}

#[cfg(test)]
mod appender_tests {
    use super::*;
    use crate::proto::{Decoder, Event};

    // Pieces of any size come out as records of up to MAX_STREAM_RECORD bytes each, the
    // content intact, 8-aligned, and nothing when nothing was pushed.
    #[test]
    fn pieces_coalesce_into_few_records() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let mut a = StreamAppender::new(RecordType::Stdout, 3);
        for piece in data.chunks(8192) {
            a.push(&mut out, piece);
        }
        a.close(&mut out);
        a.close(&mut out); // (closing twice adds nothing)
        encode_stream_end(&mut out, RecordType::Stdout, 3);
        assert_eq!(out.len() % 8, 0);
        let mut dec = Decoder::new(3);
        let mut got = Vec::new();
        let mut records = 0;
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (used, ev) = dec.feed(rest).unwrap();
            rest = &rest[used..];
            match ev {
                Some(Event::Stdout(d)) => got.extend_from_slice(d),
                Some(Event::StdoutEnd) => break,
                _ => {}
            }
        }
        let mut pos = 0;
        while pos + 8 <= out.len() {
            let h = RecordHeader::from_bytes(out[pos..pos + 8].try_into().unwrap());
            pos += 8 + h.body_len();
            records += 1;
        }
        assert_eq!(got, data);
        assert_eq!(
            records,
            200_000usize.div_ceil(MAX_STREAM_RECORD) + 1,
            "4 data records + the end"
        );
        let mut empty = Vec::new();
        let mut a = StreamAppender::new(RecordType::Stdin, 1);
        a.push(&mut empty, b"");
        a.close(&mut empty);
        assert!(empty.is_empty());
    }
}
