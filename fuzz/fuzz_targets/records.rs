#![no_main]
//! Differential round trip of the record codec: a structure-aware sequence of response
//! records (STDOUT/STDERR streams of any size, stream ends, GET_VALUES_RESULT,
//! UNKNOWN_TYPE, records the decoder must skip with arbitrary padding, END_REQUEST) is
//! written with the crate's encoder, fed to the [`Decoder`] in fuzzed piece sizes, and the
//! decoded events must equal the ones written, in order; bytes after END_REQUEST are left
//! unconsumed. The same target checks the PARAMS encoders: `encode_params` and the
//! two-pass `ParamsEncoder` produce the same bytes, and de-framing them and decoding the
//! name-value stream gives back the pairs.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::proto::{
    decode_nv_pairs, encode_nv, encode_params, encode_stream, encode_stream_end, padding_len, Decoder, Event,
    ParamsEncoder, RecordHeader, RecordType, FCGI_HEADER_LEN, FCGI_MAX_CONTENT_LEN,
};

#[derive(Arbitrary, Debug)]
enum Op {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// A stream spanning several records.
    BigStdout {
        byte: u8,
        len: u16,
    },
    StdoutEnd,
    StderrEnd,
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    UnknownType(u8),
    /// A record the decoder must skip: `rtype` is mapped onto the skipped types.
    Skipped {
        rtype: u8,
        null_id: bool,
        content: Vec<u8>,
        padding: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    request_id: u16,
    ops: Vec<Op>,
    app_status: u32,
    protocol_status: u8,
    trailing: Vec<u8>,
    pieces: Vec<u8>,
    params: Vec<(Vec<u8>, Vec<u8>)>,
    big_param: Option<(u8, u16)>,
}

#[derive(Debug, PartialEq)]
enum Ev {
    Out(Vec<u8>),
    Err(Vec<u8>),
    OutEnd,
    ErrEnd,
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    Unknown(u8),
    Ignored(u8),
    End(u32, u8),
}

/// Appends an event, merging stream pieces (the decoder may cut a record's content).
fn push(evs: &mut Vec<Ev>, ev: Ev) {
    match (evs.last_mut(), ev) {
        (Some(Ev::Out(a)), Ev::Out(b)) => a.extend_from_slice(&b),
        (Some(Ev::Err(a)), Ev::Err(b)) => a.extend_from_slice(&b),
        (_, Ev::Out(b)) if b.is_empty() => {}
        (_, Ev::Err(b)) if b.is_empty() => {}
        (_, ev) => evs.push(ev),
    }
}

fn record(out: &mut Vec<u8>, rtype: u8, id: u16, content: &[u8], padding: usize) {
    let mut h = RecordHeader::new(RecordType::from_u8(rtype), id, content.len() as u16);
    h.padding_length = padding as u8;
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(content);
    out.extend(std::iter::repeat(0xAA).take(padding));
}

/// Types the decoder skips whatever the id (0, server-to-application types, > 11).
const SKIPPED: [u8; 8] = [0, 1, 2, 4, 5, 8, 9, 12];

fn check_records(inp: &Input) {
    let id = inp.request_id.max(1);
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for op in &inp.ops {
        match op {
            Op::Stdout(d) => {
                encode_stream(&mut wire, RecordType::Stdout, id, d);
                push(&mut want, Ev::Out(d.clone()));
            }
            Op::Stderr(d) => {
                encode_stream(&mut wire, RecordType::Stderr, id, d);
                push(&mut want, Ev::Err(d.clone()));
            }
            Op::BigStdout { byte, len } => {
                let d = vec![*byte; usize::from(*len) * 2];
                encode_stream(&mut wire, RecordType::Stdout, id, &d);
                push(&mut want, Ev::Out(d));
            }
            Op::StdoutEnd => {
                encode_stream_end(&mut wire, RecordType::Stdout, id);
                push(&mut want, Ev::OutEnd);
            }
            Op::StderrEnd => {
                encode_stream_end(&mut wire, RecordType::Stderr, id);
                push(&mut want, Ev::ErrEnd);
            }
            Op::Values(pairs) => {
                let mut content = Vec::new();
                for (n, v) in pairs {
                    encode_nv(&mut content, n, v).expect("small pair");
                }
                if content.len() <= FCGI_MAX_CONTENT_LEN {
                    record(&mut wire, 10, 0, &content, padding_len(content.len()));
                    push(&mut want, Ev::Values(pairs.clone()));
                }
            }
            Op::UnknownType(t) => {
                record(&mut wire, 11, 0, &[*t, 0, 0, 0, 0, 0, 0, 0], 0);
                push(&mut want, Ev::Unknown(*t));
            }
            Op::Skipped {
                rtype,
                null_id,
                content,
                padding,
            } => {
                // With id 0 the response types are skipped too; with our id, management
                // types are.
                let extra: &[u8] = if *null_id { &[3, 6, 7] } else { &[10, 11] };
                let t = if *rtype >= 12 {
                    *rtype
                } else {
                    let i = usize::from(*rtype) % (SKIPPED.len() + extra.len());
                    SKIPPED.get(i).copied().unwrap_or_else(|| extra[i - SKIPPED.len()])
                };
                let content = &content[..content.len().min(FCGI_MAX_CONTENT_LEN)];
                record(
                    &mut wire,
                    t,
                    if *null_id { 0 } else { id },
                    content,
                    usize::from(*padding),
                );
                push(&mut want, Ev::Ignored(t));
            }
        }
    }
    let mut end = [0u8; 8];
    end[..4].copy_from_slice(&inp.app_status.to_be_bytes());
    end[4] = inp.protocol_status;
    record(&mut wire, 3, id, &end, 0);
    push(&mut want, Ev::End(inp.app_status, inp.protocol_status));
    wire.extend_from_slice(&inp.trailing);

    let mut got = Vec::new();
    let mut dec = Decoder::new(id);
    let mut pos = 0;
    let mut sizes = inp.pieces.iter().map(|&b| usize::from(b) + 1).cycle();
    while pos < wire.len() && !dec.is_finished() {
        let n = if inp.pieces.is_empty() {
            wire.len()
        } else {
            sizes.next().unwrap_or(1)
        };
        let piece = &wire[pos..(pos + n).min(wire.len())];
        let mut rest = piece;
        loop {
            let (used, ev) = dec
                .feed(rest)
                .unwrap_or_else(|e| panic!("decoder rejected valid records: {e}"));
            assert!(used <= rest.len());
            rest = &rest[used..];
            match ev {
                Some(Event::Stdout(d)) => push(&mut got, Ev::Out(d.to_vec())),
                Some(Event::Stderr(d)) => push(&mut got, Ev::Err(d.to_vec())),
                Some(Event::StdoutEnd) => push(&mut got, Ev::OutEnd),
                Some(Event::StderrEnd) => push(&mut got, Ev::ErrEnd),
                Some(Event::GetValuesResult(p)) => push(&mut got, Ev::Values(p)),
                Some(Event::UnknownTypeReply(t)) => push(&mut got, Ev::Unknown(t)),
                Some(Event::Ignored(t)) => push(&mut got, Ev::Ignored(t.as_u8())),
                Some(Event::EndRequest {
                    app_status,
                    protocol_status,
                }) => push(&mut got, Ev::End(app_status, protocol_status.as_u8())),
                None => break,
            }
        }
        if dec.is_finished() {
            // Everything after END_REQUEST (and its padding) is left unconsumed.
            let consumed = pos + (piece.len() - rest.len());
            assert_eq!(
                &wire[consumed..],
                &inp.trailing[..],
                "decoder consumed bytes after END_REQUEST"
            );
            break;
        }
        assert!(rest.is_empty(), "decoder stalled mid-input");
        pos += piece.len();
    }
    assert!(dec.is_finished(), "END_REQUEST not reported");
    assert_eq!(got, want);
}

fn check_params(inp: &Input) {
    let id = inp.request_id.max(1);
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = inp.params.clone();
    if let Some((b, n)) = inp.big_param {
        pairs.push((b"BIG".to_vec(), vec![b; usize::from(n) * 3]));
    }
    let mut one = Vec::new();
    encode_params(&mut one, id, pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))).expect("params");
    let mut enc = ParamsEncoder::new(id);
    for (n, v) in &pairs {
        enc.measure(n, v).expect("measure");
    }
    let mut two = Vec::new();
    let mut w = enc.writer(&mut two);
    for (n, v) in &pairs {
        w.push(n, v).expect("push");
    }
    w.finish().expect("finish");
    assert_eq!(one, two, "encode_params and ParamsEncoder disagree");
    assert_eq!(two.len(), enc.encoded_len(), "encoded_len is wrong");
    // De-frame: PARAMS records with our id, ending with an empty one.
    let mut stream = Vec::new();
    let mut rest = &one[..];
    let mut ended = false;
    while !rest.is_empty() {
        assert!(!ended, "bytes after the empty PARAMS record");
        let h = RecordHeader::from_bytes(rest[..FCGI_HEADER_LEN].try_into().unwrap());
        assert_eq!((h.version, h.rtype, h.request_id), (1, RecordType::Params, id));
        assert_eq!((usize::from(h.content_length) + usize::from(h.padding_length)) % 8, 0);
        let body = &rest[FCGI_HEADER_LEN..FCGI_HEADER_LEN + h.body_len()];
        stream.extend_from_slice(&body[..usize::from(h.content_length)]);
        ended = h.content_length == 0;
        rest = &rest[FCGI_HEADER_LEN + h.body_len()..];
    }
    assert!(ended, "PARAMS stream not terminated");
    let back = decode_nv_pairs(&stream).expect("encoded PARAMS decode");
    let back: Vec<(Vec<u8>, Vec<u8>)> = back.into_iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    assert_eq!(back, pairs);
}

fuzz_target!(|inp: Input| {
    check_records(&inp);
    check_params(&inp);
});
