//! Control channel from the httpd parent to the PM (SG-6: a structured channel instead of
//! the legacy `*`-terminated text messages, bug 19).
//!
//! A `SOCK_STREAM` carries frames: magic `FCPM`, a big-endian `u16` format version, a
//! big-endian `u32` payload length, then the payload. The payload is a tag byte followed by
//! fixed-width big-endian integers and length-prefixed byte strings; see [`encode`]. The
//! decoder is sans-IO ([`FrameReader`]): bounded (a frame may not announce more than
//! [`MAX_FRAME_LEN`] bytes), never panics on input, and checks that each payload is
//! consumed exactly.
//!
//! Framing errors (bad magic, unknown version, oversized frame) lose the stream's framing
//! and are fatal ([`MsgError::is_fatal`]); a well-framed payload that does not decode is
//! reported and skipped.

use super::spec::{ClassSpec, DynamicSpec, Listen, PmConfig, WrapperExec};
use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

pub const MAGIC: [u8; 4] = *b"FCPM";
/// Format version written by [`encode`] and the only one [`FrameReader`] accepts: the PM
/// and the module generation talking to it may come from different builds of the DSO.
/// Version 2 added the dynamic application settings ([`DynamicSpec`]).
pub const VERSION: u16 = 2;
/// magic + version + length.
pub const HEADER_LEN: usize = 10;
/// Largest payload accepted (a configuration with thousands of classes is far smaller).
pub const MAX_FRAME_LEN: u32 = 16 << 20;

const TAG_CONFIGURE: u8 = 1;
const TAG_SHUTDOWN: u8 = 2;
const LISTEN_UNIX: u8 = 1;
const LISTEN_TCP4: u8 = 4;
const LISTEN_TCP6: u8 = 6;

/// A message from httpd to the PM.
#[derive(Debug, Clone, PartialEq)]
pub enum CtlMsg {
    /// The configuration of a (new) httpd generation: reconcile with it.
    Configure(PmConfig),
    /// httpd stops: stop every application and exit.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("bad frame magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("unsupported control message version {0} (this process manager speaks {VERSION})")]
    UnsupportedVersion(u16),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge(u32),
    #[error("truncated payload while reading {0}")]
    Truncated(&'static str),
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("unknown listen kind {0}")]
    UnknownListenKind(u8),
    #[error("invalid boolean {0} in {1}")]
    BadBool(u8, &'static str),
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    #[error("length of {0} overflows")]
    Overflow(&'static str),
    #[error("invalid value of {0}")]
    BadValue(&'static str),
}

impl MsgError {
    /// The stream's framing is lost: nothing after this error can be trusted.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            MsgError::BadMagic(_) | MsgError::UnsupportedVersion(_) | MsgError::TooLarge(_)
        )
    }
}

/// Appends one complete frame for `msg` to `out`.
pub fn encode(msg: &CtlMsg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // length, patched below
    let body = out.len();
    match msg {
        CtlMsg::Shutdown => out.push(TAG_SHUTDOWN),
        CtlMsg::Configure(cfg) => {
            out.push(TAG_CONFIGURE);
            put_u64(out, cfg.generation);
            out.push(cfg.hard_restart as u8);
            out.push(cfg.log_level);
            put_len(out, cfg.old_children.len());
            for pid in &cfg.old_children {
                out.extend_from_slice(&pid.to_be_bytes());
            }
            put_len(out, cfg.classes.len());
            for c in &cfg.classes {
                encode_class(c, out);
            }
            encode_dynamic(&cfg.dynamic, out);
        }
    }
    let len = put_len_value(out.len() - body);
    out[start + 6..start + 10].copy_from_slice(&len.to_be_bytes());
}

fn encode_class(c: &ClassSpec, out: &mut Vec<u8>) {
    put_bytes(out, c.path.as_os_str().as_bytes());
    match &c.listen {
        Listen::Unix(p) => {
            out.push(LISTEN_UNIX);
            put_bytes(out, p.as_os_str().as_bytes());
        }
        Listen::Tcp(SocketAddr::V4(a)) => {
            out.push(LISTEN_TCP4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Listen::Tcp(SocketAddr::V6(a)) => {
            out.push(LISTEN_TCP6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            put_u32(out, a.flowinfo());
            put_u32(out, a.scope_id());
        }
    }
    for v in [
        c.processes,
        c.restart_delay,
        c.init_start_delay,
        c.min_server_life,
        c.priority,
        c.listen_queue_depth,
    ] {
        put_u32(out, v);
    }
    put_env(out, &c.initial_env);
    out.extend_from_slice(&c.app_mtime.to_be_bytes());
    match &c.wrapper {
        None => out.push(0),
        Some(w) => {
            out.push(1);
            put_bytes(out, w.path.as_os_str().as_bytes());
            put_bytes(out, w.user.as_bytes());
            put_bytes(out, w.group.as_bytes());
        }
    }
}

fn encode_dynamic(d: &DynamicSpec, out: &mut Vec<u8>) {
    out.push(d.enabled as u8);
    put_bytes(out, d.dynamic_dir.as_os_str().as_bytes());
    for v in [
        d.max_processes,
        d.min_processes,
        d.max_class_processes,
        d.kill_interval,
        d.update_interval,
        d.gain_value.to_bits(),
        d.single_threshold,
        d.multi_threshold,
        d.listen_queue_depth,
        d.min_server_life,
        d.restart_delay,
        d.init_start_delay,
        d.process_slack,
        d.priority,
    ] {
        put_u32(out, v);
    }
    out.push(d.restart as u8);
    out.push(d.auto_update as u8);
    put_env(out, &d.initial_env);
    match &d.wrapper {
        None => out.push(0),
        Some(w) => {
            out.push(1);
            put_bytes(out, w.as_os_str().as_bytes());
        }
    }
}

/// Lengths are `u32` on the wire; anything longer cannot come from a real configuration.
fn put_len_value(n: usize) -> u32 {
    u32::try_from(n).expect("control message field longer than 4 GiB")
}

fn put_env(out: &mut Vec<u8>, env: &[(String, String)]) {
    put_len(out, env.len());
    for (k, v) in env {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, put_len_value(n));
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Reads fields from one payload, failing (never panicking) on short input.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// An environment list (count, then name/value pairs); `what` labels
    /// the count, the names and the values in errors.
    fn env(&mut self, what: [&'static str; 3]) -> Result<Vec<(String, String)>, MsgError> {
        let n = self.count(8, what[0])?;
        let mut env = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.string(what[1])?;
            let v = self.string(what[2])?;
            env.push((k, v));
        }
        Ok(env)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MsgError> {
        if self.buf.len() < n {
            return Err(MsgError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MsgError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, MsgError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, MsgError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(MsgError::BadBool(b, what)),
        }
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, MsgError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, MsgError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, MsgError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, MsgError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, MsgError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A count of following items each at least `min_item` bytes long: checked against
    /// the remaining input before anything is allocated for it.
    fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize, MsgError> {
        let n = self.u32(what)? as usize;
        let need = n.checked_mul(min_item).ok_or(MsgError::Overflow(what))?;
        if need > self.buf.len() {
            return Err(MsgError::Truncated(what));
        }
        Ok(n)
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], MsgError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    fn string(&mut self, what: &'static str) -> Result<String, MsgError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| MsgError::BadUtf8(what))
    }

    fn path(&mut self, what: &'static str) -> Result<PathBuf, MsgError> {
        Ok(PathBuf::from(OsString::from_vec(self.bytes(what)?.to_vec())))
    }
}

/// Decodes one payload (everything after the frame header).
pub fn decode_payload(payload: &[u8]) -> Result<CtlMsg, MsgError> {
    let mut c = Cursor { buf: payload };
    let msg = match c.u8("tag")? {
        TAG_SHUTDOWN => CtlMsg::Shutdown,
        TAG_CONFIGURE => {
            let generation = c.u64("generation")?;
            let hard_restart = c.bool("hard_restart")?;
            let log_level = c.u8("log_level")?;
            let n = c.count(4, "old_children")?;
            let mut old_children = Vec::with_capacity(n);
            for _ in 0..n {
                old_children.push(c.i32("old_children")?);
            }
            // path len + listen kind + 6 u32 + env count + mtime
            let n = c.count(4 + 1 + 24 + 4 + 8, "classes")?;
            let mut classes = Vec::with_capacity(n);
            for _ in 0..n {
                classes.push(decode_class(&mut c)?);
            }
            let dynamic = decode_dynamic(&mut c)?;
            CtlMsg::Configure(PmConfig {
                generation,
                classes,
                hard_restart,
                old_children,
                log_level,
                dynamic,
            })
        }
        t => return Err(MsgError::UnknownTag(t)),
    };
    if !c.buf.is_empty() {
        return Err(MsgError::TrailingBytes(c.buf.len()));
    }
    Ok(msg)
}

fn decode_dynamic(c: &mut Cursor<'_>) -> Result<DynamicSpec, MsgError> {
    let enabled = c.bool("dynamic enabled")?;
    let dynamic_dir = c.path("dynamic dir")?;
    let max_processes = c.u32("maxProcesses")?;
    let min_processes = c.u32("minProcesses")?;
    let max_class_processes = c.u32("maxClassProcesses")?;
    let kill_interval = c.u32("killInterval")?;
    let update_interval = c.u32("updateInterval")?;
    let gain_value = f32::from_bits(c.u32("gainValue")?);
    if !(0.0..=1.0).contains(&gain_value) {
        return Err(MsgError::BadValue("gainValue"));
    }
    let single_threshold = c.u32("singleThreshold")?;
    let multi_threshold = c.u32("multiThreshold")?;
    let listen_queue_depth = c.u32("dynamic listen_queue_depth")?;
    let min_server_life = c.u32("dynamic min_server_life")?;
    let restart_delay = c.u32("dynamic restart_delay")?;
    let init_start_delay = c.u32("dynamic init_start_delay")?;
    let process_slack = c.u32("processSlack")?;
    let priority = c.u32("dynamic priority")?;
    let restart = c.bool("restart")?;
    let auto_update = c.bool("autoUpdate")?;
    let initial_env = c.env([
        "dynamic initial_env",
        "dynamic initial_env name",
        "dynamic initial_env value",
    ])?;
    let wrapper = match c.bool("dynamic wrapper flag")? {
        false => None,
        true => Some(c.path("dynamic wrapper path")?),
    };
    Ok(DynamicSpec {
        enabled,
        dynamic_dir,
        max_processes,
        min_processes,
        max_class_processes,
        kill_interval,
        update_interval,
        gain_value,
        single_threshold,
        multi_threshold,
        listen_queue_depth,
        min_server_life,
        restart_delay,
        init_start_delay,
        process_slack,
        priority,
        restart,
        auto_update,
        initial_env,
        wrapper,
    })
}

fn decode_class(c: &mut Cursor<'_>) -> Result<ClassSpec, MsgError> {
    let path = c.path("class path")?;
    let listen = match c.u8("listen kind")? {
        LISTEN_UNIX => Listen::Unix(c.path("socket path")?),
        LISTEN_TCP4 => {
            let ip = Ipv4Addr::from(c.array::<4>("IPv4 address")?);
            Listen::Tcp(SocketAddr::V4(SocketAddrV4::new(ip, c.u16("port")?)))
        }
        LISTEN_TCP6 => {
            let ip = Ipv6Addr::from(c.array::<16>("IPv6 address")?);
            let port = c.u16("port")?;
            let flow = c.u32("flowinfo")?;
            let scope = c.u32("scope id")?;
            Listen::Tcp(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
        }
        k => return Err(MsgError::UnknownListenKind(k)),
    };
    let processes = c.u32("processes")?;
    let restart_delay = c.u32("restart_delay")?;
    let init_start_delay = c.u32("init_start_delay")?;
    let min_server_life = c.u32("min_server_life")?;
    let priority = c.u32("priority")?;
    let listen_queue_depth = c.u32("listen_queue_depth")?;
    let initial_env = c.env(["initial_env", "initial_env name", "initial_env value"])?;
    let app_mtime = c.i64("app_mtime")?;
    // (Strictly 0 or 1, as every flag: any other byte was a second encoding
    // of "wrapped", found by fuzzing pm_ctl.)
    let wrapper = match c.bool("wrapper flag")? {
        false => None,
        true => Some(WrapperExec {
            path: c.path("wrapper path")?,
            user: c.string("wrapper user")?,
            group: c.string("wrapper group")?,
        }),
    };
    Ok(ClassSpec {
        path,
        listen,
        processes,
        restart_delay,
        init_start_delay,
        min_server_life,
        priority,
        listen_queue_depth,
        initial_env,
        app_mtime,
        wrapper,
    })
}

/// Incremental frame decoder: [`push`](FrameReader::push) what the socket produced, then
/// call [`next_msg`](FrameReader::next_msg) until it returns `Ok(None)`.
///
/// The buffer holds at most one partial frame beyond what the caller has not drained yet,
/// i.e. at most [`HEADER_LEN`] + the frame limit when the caller drains after every push.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    limit: u32,
    /// Set after a fatal error: all further input is discarded.
    dead: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::new()
    }
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::with_limit(MAX_FRAME_LEN)
    }

    /// A reader accepting payloads of at most `limit` bytes.
    pub fn with_limit(limit: u32) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            limit,
            dead: false,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if !self.dead {
            self.buf.extend_from_slice(data);
        }
    }

    /// True after a fatal error was returned.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The next complete message, `Ok(None)` if more input is needed. A fatal error is
    /// returned once; afterwards the reader yields `Ok(None)` forever.
    pub fn next_msg(&mut self) -> Result<Option<CtlMsg>, MsgError> {
        if self.dead {
            return Ok(None);
        }
        // Check the magic as soon as it can be seen, so garbage fails fast.
        let seen = self.buf.len().min(4);
        if self.buf[..seen] != MAGIC[..seen] {
            let mut m = [0; 4];
            m[..seen].copy_from_slice(&self.buf[..seen]);
            return Err(self.die(MsgError::BadMagic(m)));
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let version = u16::from_be_bytes([self.buf[4], self.buf[5]]);
        if version != VERSION {
            return Err(self.die(MsgError::UnsupportedVersion(version)));
        }
        let len = u32::from_be_bytes([self.buf[6], self.buf[7], self.buf[8], self.buf[9]]);
        if len > self.limit {
            return Err(self.die(MsgError::TooLarge(len)));
        }
        let end = HEADER_LEN + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let res = decode_payload(&self.buf[HEADER_LEN..end]);
        self.buf.drain(..end);
        res.map(Some)
    }

    fn die(&mut self, e: MsgError) -> MsgError {
        self.dead = true;
        self.buf = Vec::new();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(path: &str, listen: Listen) -> ClassSpec {
        ClassSpec {
            path: path.into(),
            listen,
            processes: 3,
            restart_delay: 5,
            init_start_delay: 1,
            min_server_life: 30,
            priority: u32::MAX - 4,
            listen_queue_depth: 100,
            initial_env: vec![("A".into(), "1".into()), ("EMPTY".into(), String::new())],
            app_mtime: -1_700_000_000,
            wrapper: Some(WrapperExec {
                path: "/usr/lib/apache2/suexec".into(),
                user: "web1".into(),
                group: "#1001".into(),
            }),
        }
    }

    fn sample() -> CtlMsg {
        CtlMsg::Configure(PmConfig {
            generation: u64::MAX - 1,
            classes: vec![
                class("/srv/a.fcgi", Listen::Unix("/run/fcgi/ab cd".into())),
                class("/srv/b.fcgi", Listen::Tcp("0.0.0.0:8080".parse().unwrap())),
                class("/srv/c.fcgi", Listen::Tcp("[::1]:9000".parse().unwrap())),
                class(
                    "/srv/d.fcgi",
                    Listen::Tcp(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 7, 3))),
                ),
            ],
            hard_restart: true,
            old_children: vec![1, 42, i32::MAX],
            log_level: 7,
            dynamic: dynamic(),
        })
    }

    /// Every field differs from the defaults.
    fn dynamic() -> DynamicSpec {
        DynamicSpec {
            enabled: true,
            dynamic_dir: "/run/fcgi ipc/dynamic".into(),
            max_processes: 40,
            min_processes: 2,
            max_class_processes: 7,
            kill_interval: 11,
            update_interval: 13,
            gain_value: 0.25,
            single_threshold: 3,
            multi_threshold: 71,
            listen_queue_depth: 17,
            min_server_life: 19,
            restart_delay: 23,
            init_start_delay: u32::MAX,
            process_slack: 29,
            priority: 31,
            restart: true,
            auto_update: true,
            initial_env: vec![("PATH".into(), "/bin".into()), ("E".into(), String::new())],
            wrapper: Some("/usr/lib/apache2/suexec".into()),
        }
    }

    fn frame(msg: &CtlMsg) -> Vec<u8> {
        let mut v = Vec::new();
        encode(msg, &mut v);
        v
    }

    #[test]
    fn round_trip() {
        let empty = CtlMsg::Configure(PmConfig {
            generation: 0,
            classes: vec![],
            hard_restart: false,
            old_children: vec![],
            log_level: 0,
            dynamic: DynamicSpec::disabled(),
        });
        for msg in [sample(), CtlMsg::Shutdown, empty] {
            let mut r = FrameReader::new();
            r.push(&frame(&msg));
            assert_eq!(r.next_msg(), Ok(Some(msg)));
            assert_eq!(r.next_msg(), Ok(None));
        }
    }

    #[test]
    fn non_utf8_paths_survive() {
        let mut c = class("/srv/x", Listen::Unix("/tmp/s".into()));
        c.path = PathBuf::from(OsString::from_vec(b"/srv/\xff\xfe.fcgi".to_vec()));
        let msg = CtlMsg::Configure(PmConfig {
            generation: 1,
            classes: vec![c],
            hard_restart: false,
            old_children: vec![],
            log_level: 4,
            dynamic: DynamicSpec::disabled(),
        });
        let mut r = FrameReader::new();
        r.push(&frame(&msg));
        assert_eq!(r.next_msg(), Ok(Some(msg)));
    }

    #[test]
    fn split_at_every_byte_and_back_to_back() {
        let mut stream = frame(&sample());
        encode(&CtlMsg::Shutdown, &mut stream);
        for split in 0..=stream.len() {
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                r.push(part);
                while let Some(m) = r.next_msg().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, vec![sample(), CtlMsg::Shutdown], "split at {split}");
        }
        // One byte at a time.
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for b in &stream {
            r.push(std::slice::from_ref(b));
            while let Some(m) = r.next_msg().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn fatal_framing_errors() {
        let good = frame(&CtlMsg::Shutdown);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut bad_version = good.clone();
        bad_version[5] = 1; // the format before dynamic applications
        let mut too_large = good.clone();
        too_large[6..10].copy_from_slice(&(MAX_FRAME_LEN + 1).to_be_bytes());
        let cases: [(&[u8], MsgError); 4] = [
            (&bad_magic, MsgError::BadMagic(*b"XCPM")),
            (b"GET", MsgError::BadMagic(*b"GET\0")),
            (&bad_version, MsgError::UnsupportedVersion(1)),
            (&too_large, MsgError::TooLarge(MAX_FRAME_LEN + 1)),
        ];
        for (input, want) in cases {
            let mut r = FrameReader::new();
            r.push(input);
            let e = r.next_msg().unwrap_err();
            assert_eq!(e, want);
            assert!(e.is_fatal());
            assert!(r.is_dead());
            // Later (even valid) input is discarded.
            r.push(&good);
            assert_eq!(r.next_msg(), Ok(None));
        }
    }

    #[test]
    fn custom_limit() {
        let f = frame(&sample());
        let mut r = FrameReader::with_limit(16);
        r.push(&f[..HEADER_LEN]);
        assert!(matches!(r.next_msg(), Err(MsgError::TooLarge(_))));
    }

    /// Builds a frame around an arbitrary payload.
    fn raw(payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&VERSION.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn malformed_payloads_are_skipped() {
        let full = frame(&sample());
        let payload = &full[HEADER_LEN..];
        let mut with_trailing = payload.to_vec();
        with_trailing.push(0);
        let mut bad_bool = payload.to_vec();
        bad_bool[9] = 2; // hard_restart after tag + generation
        let mut huge_count = vec![TAG_CONFIGURE];
        huge_count.extend_from_slice(&[0; 10]);
        huge_count.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut bad_utf8 = frame(&CtlMsg::Configure(PmConfig {
            generation: 1,
            classes: vec![class("/a", Listen::Unix("/s".into()))],
            hard_restart: false,
            old_children: vec![],
            log_level: 0,
            dynamic: DynamicSpec::disabled(),
        }));
        // The value of A=1: length 1, then "1".
        let pos = bad_utf8.windows(5).position(|w| w == [0, 0, 0, 1, b'1']).unwrap();
        bad_utf8[pos + 4] = 0xff;
        let bad_utf8 = bad_utf8[HEADER_LEN..].to_vec();
        let mut bad_listen = frame(&CtlMsg::Configure(PmConfig {
            generation: 1,
            classes: vec![class("/a", Listen::Unix("/s".into()))],
            hard_restart: false,
            old_children: vec![],
            log_level: 0,
            dynamic: DynamicSpec::disabled(),
        }))[HEADER_LEN..]
            .to_vec();
        // tag 1 + gen 8 + bool 1 + level 1 + n_old 4 + n_classes 4 + path (4 + 2)
        bad_listen[1 + 8 + 1 + 1 + 4 + 4 + 6] = 9;
        // A class's wrapper flag other than 0 or 1 (fuzzing pm_ctl found that
        // any non-zero byte was taken as 1: two encodings of one message).
        let wrapped = |on: bool| {
            let mut c = class("/a", Listen::Unix("/s".into()));
            if !on {
                c.wrapper = None;
            }
            frame(&CtlMsg::Configure(PmConfig {
                generation: 1,
                classes: vec![c],
                hard_restart: false,
                old_children: vec![],
                log_level: 0,
                dynamic: DynamicSpec::disabled(),
            }))[HEADER_LEN..]
                .to_vec()
        };
        let (off, on) = (wrapped(false), wrapped(true));
        let flag = off.iter().zip(&on).position(|(a, b)| a != b).unwrap();
        assert_eq!((off[flag], on[flag]), (0, 1));
        let mut bad_wrapper = on;
        bad_wrapper[flag] = 45;

        let cases: Vec<(Vec<u8>, MsgError)> = vec![
            (vec![], MsgError::Truncated("tag")),
            (vec![77], MsgError::UnknownTag(77)),
            (vec![TAG_SHUTDOWN, 0], MsgError::TrailingBytes(1)),
            (
                payload[..payload.len() - 1].to_vec(),
                MsgError::Truncated("dynamic wrapper path"),
            ),
            (bad_gain(f32::NAN), MsgError::BadValue("gainValue")),
            (bad_gain(1.5), MsgError::BadValue("gainValue")),
            (bad_gain(-0.1), MsgError::BadValue("gainValue")),
            (payload[..20].to_vec(), MsgError::Truncated("old_children")),
            (with_trailing, MsgError::TrailingBytes(1)),
            (bad_bool, MsgError::BadBool(2, "hard_restart")),
            (huge_count, MsgError::Truncated("old_children")),
            (bad_utf8, MsgError::BadUtf8("initial_env value")),
            (bad_listen, MsgError::UnknownListenKind(9)),
            (bad_wrapper, MsgError::BadBool(45, "wrapper flag")),
        ];
        for (p, want) in cases {
            let mut r = FrameReader::new();
            r.push(&raw(&p));
            r.push(&frame(&CtlMsg::Shutdown));
            let e = r.next_msg().unwrap_err();
            assert_eq!(e, want, "payload {p:02x?}");
            assert!(!e.is_fatal());
            // The stream stays usable.
            assert_eq!(r.next_msg(), Ok(Some(CtlMsg::Shutdown)));
        }
    }

    /// A configuration payload whose gain value is `g`.
    fn bad_gain(g: f32) -> Vec<u8> {
        let mut d = dynamic();
        d.gain_value = 0.75;
        let full = frame(&CtlMsg::Configure(PmConfig {
            generation: 1,
            classes: vec![],
            hard_restart: false,
            old_children: vec![],
            log_level: 0,
            dynamic: d,
        }));
        let mut p = full[HEADER_LEN..].to_vec();
        let pos = p.windows(4).position(|w| w == 0.75f32.to_bits().to_be_bytes()).unwrap();
        p[pos..pos + 4].copy_from_slice(&g.to_bits().to_be_bytes());
        p
    }

    #[test]
    fn dynamic_spec_round_trips_field_by_field() {
        // Changing any one field changes the decoded spec accordingly.
        type Change = fn(&mut DynamicSpec);
        let changes: &[Change] = &[
            |d| d.enabled = false,
            |d| d.dynamic_dir = "/x".into(),
            |d| d.max_processes = 1,
            |d| d.min_processes = 0,
            |d| d.max_class_processes = 1,
            |d| d.kill_interval = 1,
            |d| d.update_interval = 1,
            |d| d.gain_value = 1.0,
            |d| d.single_threshold = 0,
            |d| d.multi_threshold = 0,
            |d| d.listen_queue_depth = 1,
            |d| d.min_server_life = 0,
            |d| d.restart_delay = 0,
            |d| d.init_start_delay = 0,
            |d| d.process_slack = 1,
            |d| d.priority = 0,
            |d| d.restart = false,
            |d| d.auto_update = false,
            |d| d.initial_env.clear(),
            |d| d.wrapper = None,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut d = dynamic();
            change(&mut d);
            assert_ne!(d, dynamic(), "change {i} changes something");
            let msg = CtlMsg::Configure(PmConfig {
                generation: 1,
                classes: vec![],
                hard_restart: false,
                old_children: vec![],
                log_level: 0,
                dynamic: d,
            });
            let mut r = FrameReader::new();
            r.push(&frame(&msg));
            assert_eq!(r.next_msg(), Ok(Some(msg)), "change {i}");
        }
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let full = frame(&sample());
        let payload = &full[HEADER_LEN..];
        for n in 0..payload.len() {
            assert!(decode_payload(&payload[..n]).is_err(), "prefix {n}");
        }
    }
}
