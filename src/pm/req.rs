//! Messages from the request handlers (httpd children) to the process manager about dynamic
//! applications (PM-60, section 4.7).
//!
//! Each message is one datagram on a `SOCK_DGRAM` Unix socketpair created by the httpd
//! parent before it forks its children, so a message is delivered whole or not at all
//! (legacy relied on `PIPE_BUF` atomicity of a pipe for the same reason) and a datagram is
//! at most [`MAX_DATAGRAM`] bytes.
//!
//! Layout (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version ([`VERSION`]) |
//! | 1 | kind: `S` start, `T` nudge, `R` restart, `C` done |
//! | 2 + n | application path (raw bytes, absolute, no NUL) |
//! | 2 + n | user (UTF-8; `-` without a wrapper) |
//! | 2 + n | group (UTF-8; `-` without a wrapper) |
//! | 8 + 8 | `C` only: queue time and connection time, µs |
//!
//! Deliberate difference from legacy (bug 19): the legacy text format (`S <path> <user>
//! <group>*`) could not carry paths containing spaces or `*`; length prefixes can carry any
//! path. [`decode`] never panics, refuses anything not consumed exactly, and refuses
//! relative paths and paths containing NUL (the PM would exec them).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Largest datagram the encoder produces and the PM accepts.
pub const MAX_DATAGRAM: usize = 4096;
/// Format version written by [`encode`] and the only one [`decode`] accepts.
pub const VERSION: u8 = 1;

const KIND_START: u8 = b'S';
const KIND_NUDGE: u8 = b'T';
const KIND_RESTART: u8 = b'R';
const KIND_DONE: u8 = b'C';

/// Identifies a dynamic application class (PM-21): the application path and, with a
/// wrapper, the identity it runs as; `"-"`, `"-"` without a wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassKey {
    pub path: PathBuf,
    pub user: String,
    pub group: String,
}

/// A request handler's message to the PM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReqMsg {
    /// Legacy `S`: the class's socket does not exist yet.
    Start(ClassKey),
    /// Legacy `T`: a request waited `startDelay` seconds (connect or first byte).
    Nudge(ClassKey),
    /// Legacy `R`: `-autoUpdate` found the application file newer than the socket.
    Restart(ClassKey),
    /// Legacy `C`: a request completed normally; times in microseconds (PM-54).
    Done { key: ClassKey, queue_us: u64, conn_us: u64 },
}

impl ReqMsg {
    pub fn key(&self) -> &ClassKey {
        match self {
            ReqMsg::Start(k) | ReqMsg::Nudge(k) | ReqMsg::Restart(k) => k,
            ReqMsg::Done { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReqError {
    #[error(
        "message of {0} bytes exceeds the limit of {MAX_DATAGRAM} (application path too long for a dynamic server)"
    )]
    TooLarge(usize),
    #[error("empty message")]
    Empty,
    #[error("unsupported message version {0} (this process manager speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    #[error("truncated message while reading {0}")]
    Truncated(&'static str),
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("application path must be absolute and contain no NUL byte")]
    BadPath,
    #[error("{0} is empty")]
    EmptyField(&'static str),
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) -> Result<(), ReqError> {
    // A field longer than u16 cannot fit a datagram anyway.
    let n = u16::try_from(b.len()).map_err(|_| ReqError::TooLarge(b.len()))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn check_key(key: &ClassKey) -> Result<(), ReqError> {
    let p = key.path.as_os_str().as_bytes();
    if !p.starts_with(b"/") || p.contains(&0) {
        return Err(ReqError::BadPath);
    }
    if key.user.is_empty() {
        return Err(ReqError::EmptyField("user"));
    }
    if key.group.is_empty() {
        return Err(ReqError::EmptyField("group"));
    }
    Ok(())
}

/// One datagram for `msg`; [`ReqError::TooLarge`] when it would exceed [`MAX_DATAGRAM`]
/// (legacy: `the path "<p>" is too long (>N) for a dynamic server`), [`ReqError::BadPath`]
/// for a relative path.
pub fn encode(msg: &ReqMsg) -> Result<Vec<u8>, ReqError> {
    let key = msg.key();
    check_key(key)?;
    let kind = match msg {
        ReqMsg::Start(_) => KIND_START,
        ReqMsg::Nudge(_) => KIND_NUDGE,
        ReqMsg::Restart(_) => KIND_RESTART,
        ReqMsg::Done { .. } => KIND_DONE,
    };
    let mut out = Vec::with_capacity(64 + key.path.as_os_str().len());
    out.push(VERSION);
    out.push(kind);
    put_field(&mut out, key.path.as_os_str().as_bytes())?;
    put_field(&mut out, key.user.as_bytes())?;
    put_field(&mut out, key.group.as_bytes())?;
    if let ReqMsg::Done { queue_us, conn_us, .. } = msg {
        out.extend_from_slice(&queue_us.to_be_bytes());
        out.extend_from_slice(&conn_us.to_be_bytes());
    }
    if out.len() > MAX_DATAGRAM {
        return Err(ReqError::TooLarge(out.len()));
    }
    Ok(out)
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ReqError> {
        if self.buf.len() < n {
            return Err(ReqError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn field(&mut self, what: &'static str) -> Result<&'a [u8], ReqError> {
        let len = self.take(2, what)?;
        let n = u16::from_be_bytes([len[0], len[1]]);
        self.take(n.into(), what)
    }

    fn string(&mut self, what: &'static str) -> Result<String, ReqError> {
        let b = self.field(what)?;
        if b.is_empty() {
            return Err(ReqError::EmptyField(what));
        }
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ReqError::BadUtf8(what))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ReqError> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<ReqMsg, ReqError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(ReqError::TooLarge(datagram.len()));
    }
    let mut c = Cursor { buf: datagram };
    let version = match c.take(1, "version") {
        Ok(v) => v[0],
        Err(_) => return Err(ReqError::Empty),
    };
    if version != VERSION {
        return Err(ReqError::UnsupportedVersion(version));
    }
    let kind = c.take(1, "kind")?[0];
    if !matches!(kind, KIND_START | KIND_NUDGE | KIND_RESTART | KIND_DONE) {
        return Err(ReqError::UnknownKind(kind));
    }
    let path = c.field("path")?;
    if !path.starts_with(b"/") || path.contains(&0) {
        return Err(ReqError::BadPath);
    }
    let key = ClassKey {
        path: PathBuf::from(OsString::from_vec(path.to_vec())),
        user: c.string("user")?,
        group: c.string("group")?,
    };
    let msg = match kind {
        KIND_START => ReqMsg::Start(key),
        KIND_NUDGE => ReqMsg::Nudge(key),
        KIND_RESTART => ReqMsg::Restart(key),
        _ => ReqMsg::Done {
            key,
            queue_us: c.u64("queue time")?,
            conn_us: c.u64("connection time")?,
        },
    };
    if !c.buf.is_empty() {
        return Err(ReqError::TrailingBytes(c.buf.len()));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> ClassKey {
        ClassKey {
            path: path.into(),
            user: "-".into(),
            group: "-".into(),
        }
    }

    fn samples() -> Vec<ReqMsg> {
        let wrapped = ClassKey {
            path: "/home/u/public_html/x.fcgi".into(),
            user: "1001".into(),
            group: "1001".into(),
        };
        vec![
            ReqMsg::Start(key("/srv/app.fcgi")),
            ReqMsg::Nudge(key("/srv/with space/and*star.fcgi")),
            ReqMsg::Restart(wrapped.clone()),
            ReqMsg::Done {
                key: wrapped,
                queue_us: 0,
                conn_us: u64::MAX,
            },
            ReqMsg::Done {
                key: ClassKey {
                    path: "/~user/a b".into(),
                    user: "~user".into(),
                    group: "-".into(),
                },
                queue_us: 12,
                conn_us: 345_678,
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in samples() {
            let d = encode(&m).unwrap();
            assert!(d.len() <= MAX_DATAGRAM);
            assert_eq!(d[0], VERSION);
            assert_eq!(decode(&d), Ok(m));
        }
    }

    #[test]
    fn non_utf8_paths_survive() {
        let k = ClassKey {
            path: PathBuf::from(OsString::from_vec(b"/srv/\xff\xfe.fcgi".to_vec())),
            user: "-".into(),
            group: "-".into(),
        };
        let m = ReqMsg::Nudge(k);
        assert_eq!(decode(&encode(&m).unwrap()), Ok(m));
    }

    #[test]
    fn exact_layout() {
        let d = encode(&ReqMsg::Done {
            key: key("/a"),
            queue_us: 1,
            conn_us: 2,
        })
        .unwrap();
        let mut want = vec![1, b'C', 0, 2, b'/', b'a', 0, 1, b'-', 0, 1, b'-'];
        want.extend_from_slice(&1u64.to_be_bytes());
        want.extend_from_slice(&2u64.to_be_bytes());
        assert_eq!(d, want);
    }

    #[test]
    fn size_limit() {
        // version + kind + 3 length prefixes + "-" + "-" = 10 bytes of overhead.
        let fits = format!("/{}", "a".repeat(MAX_DATAGRAM - 10 - 1));
        let d = encode(&ReqMsg::Start(key(&fits))).unwrap();
        assert_eq!(d.len(), MAX_DATAGRAM);
        assert!(decode(&d).is_ok());
        let too_long = format!("/{}", "a".repeat(MAX_DATAGRAM - 10));
        assert_eq!(
            encode(&ReqMsg::Start(key(&too_long))),
            Err(ReqError::TooLarge(MAX_DATAGRAM + 1))
        );
        // Done carries 16 more bytes.
        assert_eq!(
            encode(&ReqMsg::Done {
                key: key(&fits),
                queue_us: 0,
                conn_us: 0
            }),
            Err(ReqError::TooLarge(MAX_DATAGRAM + 16))
        );
        let huge = format!("/{}", "a".repeat(70_000));
        assert_eq!(encode(&ReqMsg::Start(key(&huge))), Err(ReqError::TooLarge(70_001)));
        let mut big = d.clone();
        big.push(0);
        assert_eq!(decode(&big), Err(ReqError::TooLarge(MAX_DATAGRAM + 1)));
    }

    #[test]
    fn encoder_refuses_bad_keys() {
        let cases = [
            (key("relative/x"), ReqError::BadPath),
            (key(""), ReqError::BadPath),
            (key("/a\0b"), ReqError::BadPath),
            (
                ClassKey {
                    user: String::new(),
                    ..key("/a")
                },
                ReqError::EmptyField("user"),
            ),
            (
                ClassKey {
                    group: String::new(),
                    ..key("/a")
                },
                ReqError::EmptyField("group"),
            ),
        ];
        for (k, want) in cases {
            assert_eq!(encode(&ReqMsg::Nudge(k)), Err(want));
        }
    }

    #[test]
    fn malformed_datagrams() {
        let good = encode(&ReqMsg::Start(key("/ab"))).unwrap();
        let done = encode(&ReqMsg::Done {
            key: key("/ab"),
            queue_us: 1,
            conn_us: 2,
        })
        .unwrap();
        let with = |i: usize, b: u8| {
            let mut d = good.clone();
            d[i] = b;
            d
        };
        let mut trailing = good.clone();
        trailing.push(b'*');
        let cases: Vec<(Vec<u8>, ReqError)> = vec![
            (vec![], ReqError::Empty),
            (vec![1], ReqError::Truncated("kind")),
            (with(0, 2), ReqError::UnsupportedVersion(2)),
            (with(0, 0), ReqError::UnsupportedVersion(0)),
            (with(1, b'X'), ReqError::UnknownKind(b'X')),
            // Legacy text message: version byte 'S'.
            (b"S /srv/app.fcgi - -*".to_vec(), ReqError::UnsupportedVersion(b'S')),
            (with(4, b'a'), ReqError::BadPath),
            (with(5, 0), ReqError::BadPath),
            (with(3, 0), ReqError::BadPath), // path length 0
            (with(3, 200), ReqError::Truncated("path")),
            (with(8, 0xff), ReqError::Truncated("user")),
            (with(9, 0xff), ReqError::BadUtf8("user")),
            (with(8, 0), ReqError::EmptyField("user")),
            (with(12, 0xc3), ReqError::BadUtf8("group")),
            (trailing, ReqError::TrailingBytes(1)),
            (done[..done.len() - 1].to_vec(), ReqError::Truncated("connection time")),
            (done[..done.len() - 8].to_vec(), ReqError::Truncated("connection time")),
            (done[..done.len() - 9].to_vec(), ReqError::Truncated("queue time")),
        ];
        for (d, want) in cases {
            assert_eq!(decode(&d), Err(want), "datagram {d:02x?}");
        }
    }

    #[test]
    fn every_truncation_and_every_byte_value_is_handled() {
        for m in samples() {
            let d = encode(&m).unwrap();
            for n in 0..d.len() {
                assert!(decode(&d[..n]).is_err(), "prefix {n} of {m:?}");
            }
            // Any single corrupted byte: an error or some message, never a panic.
            for i in 0..d.len() {
                for b in [0u8, 1, 0x2a, 0x7f, 0x80, 0xff] {
                    let mut x = d.clone();
                    x[i] = b;
                    let _ = decode(&x);
                }
            }
        }
        // Pseudo-random garbage.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600 {
            let mut g = Vec::with_capacity(len);
            for _ in 0..len {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                g.push(s as u8);
            }
            if len > 1 {
                g[0] = VERSION;
            }
            let _ = decode(&g);
        }
    }
}
