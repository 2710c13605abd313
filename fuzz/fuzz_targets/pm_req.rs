#![no_main]
//! The request-handler -> process-manager datagrams (`pm::req`): they come from httpd
//! children running as User, so the PM must treat them as hostile. Checks: `decode` never
//! panics; whatever it accepts re-encodes to exactly the same datagram (the format has a
//! single encoding); and structure-aware messages round trip encode -> decode.
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mod_fastcgi::pm::req::{decode, encode, MAX_DATAGRAM};
use mod_fastcgi::pm::{ClassKey, ReqMsg};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

fn key(u: &mut Unstructured<'_>) -> arbitrary::Result<ClassKey> {
    let mut p: Vec<u8> = Vec::arbitrary(u)?;
    if bool::arbitrary(u)? {
        p.insert(0, b'/');
    }
    Ok(ClassKey {
        path: PathBuf::from(OsString::from_vec(p)),
        user: String::arbitrary(u)?,
        group: String::arbitrary(u)?,
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        assert!(data.len() <= MAX_DATAGRAM);
        assert_eq!(
            encode(&msg).as_deref(),
            Ok(data),
            "decoded datagram re-encodes differently"
        );
    }
    let mut u = Unstructured::new(data);
    let Ok(k) = key(&mut u) else { return };
    let Ok(kind) = u8::arbitrary(&mut u) else { return };
    let msg = match kind % 4 {
        0 => ReqMsg::Start(k),
        1 => ReqMsg::Nudge(k),
        2 => ReqMsg::Restart(k),
        _ => ReqMsg::Done {
            key: k,
            queue_us: u64::arbitrary(&mut u).unwrap_or(0),
            conn_us: u64::arbitrary(&mut u).unwrap_or(0),
        },
    };
    if let Ok(d) = encode(&msg) {
        assert!(d.len() <= MAX_DATAGRAM);
        assert_eq!(decode(&d), Ok(msg));
    }
});
