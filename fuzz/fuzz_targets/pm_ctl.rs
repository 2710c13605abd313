#![no_main]
//! The httpd -> process-manager control stream (`pm::msg`): length-prefixed frames over a
//! socket that crosses a process (and, with a wrapper, a privilege) boundary. Checks:
//! - raw bytes, pushed into a `FrameReader` in fuzzed pieces: never panics, never buffers
//!   more than one frame past the limit, stops for good after a fatal error; every
//!   message it accepts re-encodes to a frame that decodes to the same message;
//! - structure-aware: an arbitrary `CtlMsg` (classes, listen addresses, environments,
//!   wrappers, dynamic settings) encodes to a frame that decodes back to it (compared as
//!   encoded bytes, so a NaN gain value compares equal), whole and cut in pieces, and
//!   every strict prefix of a frame is "need more", never a message or a panic.
use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::pm::msg::{decode_payload, encode, CtlMsg, FrameReader, HEADER_LEN};
use mod_fastcgi::pm::{ClassSpec, DynamicSpec, Listen, PmConfig, WrapperExec};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

fn path(u: &mut Unstructured<'_>) -> Result<PathBuf> {
    Ok(PathBuf::from(OsString::from_vec(Vec::arbitrary(u)?)))
}

fn env(u: &mut Unstructured<'_>) -> Result<Vec<(String, String)>> {
    Vec::arbitrary(u)
}

fn class(u: &mut Unstructured<'_>) -> Result<ClassSpec> {
    Ok(ClassSpec {
        path: path(u)?,
        listen: if bool::arbitrary(u)? {
            Listen::Unix(path(u)?)
        } else {
            Listen::Tcp(SocketAddr::arbitrary(u)?)
        },
        processes: u.arbitrary()?,
        restart_delay: u.arbitrary()?,
        init_start_delay: u.arbitrary()?,
        min_server_life: u.arbitrary()?,
        priority: u.arbitrary()?,
        listen_queue_depth: u.arbitrary()?,
        initial_env: env(u)?,
        app_mtime: u.arbitrary()?,
        wrapper: if bool::arbitrary(u)? {
            Some(WrapperExec {
                path: path(u)?,
                user: u.arbitrary()?,
                group: u.arbitrary()?,
            })
        } else {
            None
        },
    })
}

fn dynamic(u: &mut Unstructured<'_>) -> Result<DynamicSpec> {
    Ok(DynamicSpec {
        enabled: u.arbitrary()?,
        dynamic_dir: path(u)?,
        max_processes: u.arbitrary()?,
        min_processes: u.arbitrary()?,
        max_class_processes: u.arbitrary()?,
        kill_interval: u.arbitrary()?,
        update_interval: u.arbitrary()?,
        gain_value: f32::from(u8::arbitrary(u)?) / 255.0,
        single_threshold: u.arbitrary()?,
        multi_threshold: u.arbitrary()?,
        listen_queue_depth: u.arbitrary()?,
        min_server_life: u.arbitrary()?,
        restart_delay: u.arbitrary()?,
        init_start_delay: u.arbitrary()?,
        process_slack: u.arbitrary()?,
        priority: u.arbitrary()?,
        restart: u.arbitrary()?,
        auto_update: u.arbitrary()?,
        initial_env: env(u)?,
        wrapper: if bool::arbitrary(u)? { Some(path(u)?) } else { None },
    })
}

fn msg(u: &mut Unstructured<'_>) -> Result<CtlMsg> {
    if u8::arbitrary(u)? % 8 == 0 {
        return Ok(CtlMsg::Shutdown);
    }
    let n = u.int_in_range(0..=4)?;
    let mut classes = Vec::new();
    for _ in 0..n {
        classes.push(class(u)?);
    }
    Ok(CtlMsg::Configure(PmConfig {
        generation: u.arbitrary()?,
        classes,
        hard_restart: u.arbitrary()?,
        old_children: u.arbitrary()?,
        log_level: u.arbitrary()?,
        dynamic: dynamic(u)?,
    }))
}

fn frame(m: &CtlMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &mut out);
    out
}

/// Raw bytes through a small-limit reader, in pieces sized by the first byte.
fn raw(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else { return };
    let limit = 4096;
    let mut r = FrameReader::with_limit(limit);
    let piece = usize::from(k % 64) + 1;
    let mut fatal = false;
    for p in rest.chunks(piece) {
        r.push(p);
        loop {
            match r.next_msg() {
                Ok(Some(m)) => {
                    assert!(!fatal, "message after a fatal error");
                    let f = frame(&m);
                    let again = decode_payload(&f[HEADER_LEN..]).expect("re-encoded message decodes");
                    assert_eq!(frame(&again), f, "message changed in a re-encode round trip");
                }
                Ok(None) => break,
                Err(e) => {
                    if e.is_fatal() {
                        assert!(r.is_dead());
                        fatal = true;
                    }
                }
            }
        }
    }
    // Also the payload decoder alone, on the raw bytes.
    if let Ok(m) = decode_payload(rest) {
        let f = frame(&m);
        assert_eq!(&f[HEADER_LEN..], rest, "payload has two encodings");
    }
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    let mut u = Unstructured::new(data);
    let Ok(m) = msg(&mut u) else { return };
    let f = frame(&m);
    let piece = u.int_in_range(1..=64usize).unwrap_or(1);
    let mut r = FrameReader::new();
    let mut got = Vec::new();
    for (i, p) in f.chunks(piece).enumerate() {
        r.push(p);
        while let Some(m) = r.next_msg().expect("encoded frame decodes") {
            got.push(m);
        }
        if (i + 1) * piece < f.len() {
            assert!(got.is_empty(), "message before the frame was complete");
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!(frame(&got[0]), f, "control message round trip");
    if let CtlMsg::Configure(_) = m {
        assert_eq!(got[0], m);
    }
});
