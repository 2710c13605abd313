//! Connections to FastCGI applications: non-blocking connect with a
//! timeout (legacy bug 8.4: a blocking connect to a full Unix backlog hung
//! a worker forever) and poll-based I/O (no select()/FD_SETSIZE limit,
//! legacy bug 8.21).

use crate::config::AppAddr;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    UnixAddr,
};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The OS refused (`errno` is logged as httpd's `(<n>)<text>:` prefix).
    Failed(Errno),
    TimedOut,
    /// The Unix socket is held by another user than the one expected
    /// ([`PeerCheck`]): someone else bound it (a squatter in a shared
    /// directory, or a socket swapped in behind the module's back). The
    /// connection was closed before a byte was sent. `None`: the
    /// credentials could not be read.
    WrongPeer {
        uid: Option<u32>,
        expected: u32,
    },
    /// A static application whose address our process manager does not
    /// hold: its bind failed (`failed`; for a Unix socket `owner` is the uid
    /// owning the file in the way), or it has not bound it in time. No
    /// connection was attempted.
    NotBound {
        failed: bool,
        owner: Option<u32>,
    },
}

/// Whose socket a Unix-socket connection must reach. On Linux the
/// credentials `SO_PEERCRED` reports to a connecting client are those of
/// the process that called `listen()` on the server socket (not of the
/// process that later accepts): for applications our process manager runs,
/// that is the process manager itself, i.e. httpd's `User`, whatever user
/// a wrapper later runs the application as. TCP connections are not
/// checked here (see the bind status in [`crate::gateway::reuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCheck {
    /// Today's behaviour for external applications without `-peer-user`.
    Any,
    /// The listening socket must belong to this uid.
    Uid(u32),
}

/// The uid the process manager runs as, which is this httpd child's
/// effective uid (both are httpd's `User`; read once per process, after
/// httpd has dropped privileges in the child).
pub fn pm_uid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UID.get_or_init(|| nix::unistd::geteuid().as_raw())
}

/// One `getsockopt(SO_PEERCRED)` on a connected Unix socket.
fn check_peer(fd: &impl AsFd, check: PeerCheck) -> Result<(), ConnectError> {
    let PeerCheck::Uid(expected) = check else { return Ok(()) };
    match getsockopt(fd, sockopt::PeerCredentials) {
        Ok(cred) if cred.uid() == expected => Ok(()),
        Ok(cred) => Err(ConnectError::WrongPeer {
            uid: Some(cred.uid()),
            expected,
        }),
        Err(_) => Err(ConnectError::WrongPeer { uid: None, expected }),
    }
}

/// What the exchange talks through: a connection of its own ([`AppConn`]),
/// or one request's share of a multiplexed connection
/// (`super::mux::MuxStream`).
pub trait Transport {
    /// Non-blocking read; `Ok(None)` when nothing is there yet, `Ok(Some(0))`
    /// at the end.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Non-blocking gathered write; `Ok(None)` when it would block. The
    /// bytes are whole records; a transport may take fewer, but only whole
    /// records.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>>;
    /// Waits until readable/writable (`Ok(None)`: the timeout passed).
    fn wait(&self, want_read: bool, want_write: bool, timeout: Duration) -> io::Result<Option<(bool, bool)>>;
    /// Whether written bytes still wait unread at the other end.
    fn peer_has_unread(&self) -> bool;
    fn is_tcp(&self) -> bool;
    /// The id of an earlier request on this connection that was aborted
    /// (its late records are skipped), 0 if none.
    fn late_id(&self) -> u16 {
        0
    }
    /// The request `id` was aborted and drained to its END_REQUEST.
    fn aborted(&mut self, id: u16) {
        let _ = id;
    }
}

impl Transport for AppConn {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        AppConn::try_read(self, buf)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        AppConn::try_write_vectored(self, bufs)
    }
    fn wait(&self, want_read: bool, want_write: bool, timeout: Duration) -> io::Result<Option<(bool, bool)>> {
        AppConn::wait(self, want_read, want_write, timeout)
    }
    fn peer_has_unread(&self) -> bool {
        AppConn::peer_has_unread(self)
    }
    fn is_tcp(&self) -> bool {
        AppConn::is_tcp(self)
    }
    fn late_id(&self) -> u16 {
        self.aborted_id
    }
    fn aborted(&mut self, id: u16) {
        self.aborted_id = id;
    }
}

/// A connected, non-blocking application socket.
pub struct AppConn {
    stream: UnixStream,
    /// The listener's uid as checked at connect time (`None`: not checked).
    peer_uid: Option<u32>,
    /// The request id of the last request on this connection (0: none yet).
    last_id: u16,
    /// A TCP connection (else Unix).
    tcp: bool,
    /// The last request on this connection that was aborted (0: none).
    aborted_id: u16,
}

/// A Unix-socket connect whose listen backlog is full (issue 11, finding 2).
/// A non-blocking connect can only fail with `EAGAIN` then; retrying after a
/// sleep costs a socket and a connect per try and serves requests out of
/// order. A blocking connect instead waits in the kernel's queue of
/// connectors, which admits them in order as the application accepts,
/// bounded here by `SO_SNDTIMEO` (the kernel's connect timeout for Unix
/// sockets). The socket is non-blocking again afterwards. A wait that runs
/// out is [`Errno::EAGAIN`] turned into `ETIMEDOUT`.
fn connect_unix_queued(fd: &OwnedFd, ua: &UnixAddr, timeout: Duration) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::time::TimeVal;
    let start = Instant::now();
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags & !OFlag::O_NONBLOCK))?;
    let res = loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Err(Errno::ETIMEDOUT);
        }
        // (A zero SO_SNDTIMEO would mean "forever": at least 1 ms.)
        let tv = TimeVal::new(
            left.as_secs().min(i64::MAX as u64) as _,
            left.subsec_micros().max(u32::from(left.as_secs() == 0)) as _,
        );
        setsockopt(fd, sockopt::SendTimeout, &tv)?;
        match connect(fd.as_raw_fd(), ua) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => break Err(Errno::ETIMEDOUT),
            other => break other,
        }
    };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    res
}

fn poll_one(fd: &impl AsFd, flags: PollFlags, timeout: Duration) -> io::Result<Option<PollFlags>> {
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    // Rounded up: a wait shorter than a millisecond is not a busy poll.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    loop {
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(fds[0].revents()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl AppConn {
    /// Connects to `addr`, waiting at most `timeout`; a Unix socket's
    /// listener must pass `peer`.
    pub fn connect(addr: &AppAddr, timeout: Duration, peer: PeerCheck) -> Result<AppConn, ConnectError> {
        let family = match addr {
            AppAddr::Unix(_) => AddressFamily::Unix,
            AppAddr::Tcp(SocketAddr::V4(_)) => AddressFamily::Inet,
            AppAddr::Tcp(SocketAddr::V6(_)) => AddressFamily::Inet6,
        };
        let fd: OwnedFd = socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(ConnectError::Failed)?;
        let res = match addr {
            AppAddr::Unix(path) => {
                let ua = UnixAddr::new(path.as_path()).map_err(ConnectError::Failed)?;
                match connect(fd.as_raw_fd(), &ua) {
                    // The listen backlog is full: wait in the kernel's queue.
                    Err(Errno::EAGAIN) => connect_unix_queued(&fd, &ua, timeout),
                    other => other,
                }
            }
            AppAddr::Tcp(SocketAddr::V4(a)) => connect(fd.as_raw_fd(), &SockaddrIn::from(*a)),
            AppAddr::Tcp(SocketAddr::V6(a)) => connect(fd.as_raw_fd(), &SockaddrIn6::from(*a)),
        };
        match res {
            Ok(()) => {}
            Err(Errno::ETIMEDOUT) if matches!(addr, AppAddr::Unix(_)) => return Err(ConnectError::TimedOut),
            Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => {
                match poll_one(&fd, PollFlags::POLLOUT, timeout) {
                    Ok(None) => return Err(ConnectError::TimedOut),
                    Ok(Some(_)) => {}
                    Err(e) => return Err(ConnectError::Failed(Errno::from_raw(e.raw_os_error().unwrap_or(0)))),
                }
                let err = getsockopt(&fd, sockopt::SocketError).map_err(ConnectError::Failed)?;
                if err != 0 {
                    return Err(ConnectError::Failed(Errno::from_raw(err)));
                }
            }
            Err(e) => return Err(ConnectError::Failed(e)),
        }
        let mut peer_uid = None;
        match addr {
            AppAddr::Tcp(_) => {
                let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
            }
            AppAddr::Unix(_) => {
                check_peer(&fd, peer)?;
                if let PeerCheck::Uid(u) = peer {
                    peer_uid = Some(u);
                }
            }
        }
        // A UnixStream is just an owned stream-socket fd with Read/Write;
        // it serves TCP sockets equally well.
        Ok(AppConn {
            stream: UnixStream::from(fd),
            peer_uid,
            last_id: 0,
            tcp: family != AddressFamily::Unix,
            aborted_id: 0,
        })
    }

    /// Like [`AppConn::connect`], but while the socket is missing or
    /// refusing, keeps trying (5 ms doubling to 100 ms) until
    /// `timeout` has passed. Used for applications our process manager
    /// runs: their socket appears a moment after the PM starts and is
    /// re-created when the PM itself is restarted.
    pub fn connect_patiently(addr: &AppAddr, timeout: Duration, peer: PeerCheck) -> Result<AppConn, ConnectError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match AppConn::connect(addr, left, peer) {
                Err(ConnectError::Failed(e @ (Errno::ENOENT | Errno::ECONNREFUSED))) => {
                    if start.elapsed() + pause >= timeout {
                        return Err(ConnectError::Failed(e));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// A second handle on the same connection (a multiplexed connection's
    /// reader thread reads through it while requests write through this one).
    pub fn try_clone(&self) -> io::Result<AppConn> {
        Ok(AppConn {
            stream: self.stream.try_clone()?,
            peer_uid: self.peer_uid,
            last_id: self.last_id,
            tcp: self.tcp,
            aborted_id: self.aborted_id,
        })
    }

    /// Whether this is a TCP connection.
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// Wraps an already connected socket (tests use a socketpair).
    pub fn from_stream(stream: UnixStream) -> io::Result<AppConn> {
        stream.set_nonblocking(true)?;
        Ok(AppConn {
            stream,
            peer_uid: None,
            last_id: 0,
            tcp: false,
            aborted_id: 0,
        })
    }

    /// For a kept connection about to be reused (it may have been opened
    /// for another server definition sharing the address, with another
    /// check or none): whether its listener passes `check`. No system call
    /// when it was checked for the same uid at connect time.
    pub fn peer_passes(&self, check: PeerCheck) -> bool {
        let PeerCheck::Uid(u) = check else { return true };
        self.peer_uid == Some(u) || check_peer(&self.stream, check).is_ok()
    }

    /// Waits until readable and/or writable; `None` on timeout.
    pub fn wait(&self, want_read: bool, want_write: bool, timeout: Duration) -> io::Result<Option<(bool, bool)>> {
        let mut flags = PollFlags::empty();
        if want_read {
            flags |= PollFlags::POLLIN;
        }
        if want_write {
            flags |= PollFlags::POLLOUT;
        }
        Ok(poll_one(&self.stream, flags, timeout)?.map(|r| {
            let hup = r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
            (
                r.contains(PollFlags::POLLIN) || hup,
                r.contains(PollFlags::POLLOUT) || (hup && !want_read),
            )
        }))
    }

    /// Non-blocking read; `Ok(None)` when it would block.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Non-blocking gathered write; `Ok(None)` when it would block.
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        loop {
            match self.stream.write_vectored(bufs) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// For a pooled, idle connection: `false` when the application closed it
    /// (or sent something unasked), so it must not be reused.
    pub fn is_idle_alive(&self) -> bool {
        matches!(poll_one(&self.stream, PollFlags::POLLIN, Duration::ZERO), Ok(None))
    }

    /// The request id for the next request on this connection: 1, 2, 3, …
    /// wrapping within 1..=65535, so that records an application sends late
    /// for an earlier request carry a foreign id and are a protocol error
    /// instead of the next request's response (issue 10, finding 6).
    pub fn next_request_id(&self) -> u16 {
        self.last_id % u16::MAX + 1
    }

    /// Records that a request with `id` was sent on this connection.
    pub fn used_request_id(&mut self, id: u16) {
        self.last_id = id;
    }

    /// Whether the application has left some of what was sent unread
    /// (false if that cannot be told).
    pub fn peer_has_unread(&self) -> bool {
        crate::sys::sockq::peer_has_unread(self.stream.as_fd()).unwrap_or(false)
    }

    /// Half-closes the write side (nothing more will be sent).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// A deadline helper for the idle timeout: any activity restarts it.
pub struct IdleTimer {
    limit: Duration,
    last: Instant,
}

impl IdleTimer {
    pub fn new(limit: Duration) -> IdleTimer {
        IdleTimer {
            limit,
            last: Instant::now(),
        }
    }
    pub fn touch(&mut self) {
        self.last = Instant::now();
    }
    /// Time left before the idle limit is hit (zero when expired).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.last.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Security review, finding 1: the credentials a client sees are those of
    // the process that listened; a socket held by another uid is refused
    // before anything is sent.
    #[test]
    fn peer_check_compares_the_listeners_uid() {
        let dir = std::env::temp_dir().join(format!("mod_fastcgi-peer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let addr = AppAddr::Unix(path.clone());
        let me = nix::unistd::geteuid().as_raw();
        let t = Duration::from_secs(2);
        assert!(AppConn::connect(&addr, t, PeerCheck::Uid(me)).is_ok());
        assert!(AppConn::connect(&addr, t, PeerCheck::Any).is_ok());
        match AppConn::connect(&addr, t, PeerCheck::Uid(me + 1)) {
            Err(ConnectError::WrongPeer { uid, expected }) => {
                assert_eq!(uid, Some(me));
                assert_eq!(expected, me + 1);
            }
            other => panic!("expected WrongPeer, got {:?}", other.err()),
        }
        // connect_patiently does not retry a wrong peer.
        let start = Instant::now();
        assert!(matches!(
            AppConn::connect_patiently(&addr, Duration::from_secs(5), PeerCheck::Uid(me + 1)),
            Err(ConnectError::WrongPeer { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A Unix listener with the smallest backlog (one queued connection).
    fn tiny_backlog_listener(path: &std::path::Path) -> std::os::unix::net::UnixListener {
        use nix::sys::socket::{bind, listen, Backlog};
        let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        bind(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        std::os::unix::net::UnixListener::from(fd)
    }

    // Issue 11, finding 2: with the backlog full, connections wait in the
    // kernel's queue and are admitted in the order they came (a sleep-and-
    // retry loop made 2-3 connects per request and served them out of order;
    // an external application got an immediate failure).
    #[test]
    fn full_backlog_connects_wait_in_order_and_time_out() {
        let dir = std::env::temp_dir().join(format!("mod_fastcgi-backlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let listener = tiny_backlog_listener(&path);
        let addr = AppAddr::Unix(path.clone());
        // Fill the backlog until a non-blocking connect is refused with EAGAIN.
        let mut fillers = Vec::new();
        loop {
            let s = UnixStream::connect(&path);
            match s {
                Ok(s) => {
                    s.set_nonblocking(true).unwrap();
                    fillers.push(s);
                }
                Err(e) => panic!("filler connect: {e}"),
            }
            let probe = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
            if connect(probe.as_raw_fd(), &UnixAddr::new(path.as_path()).unwrap()) == Err(Errno::EAGAIN) {
                break;
            }
            fillers.push(UnixStream::from(probe));
            assert!(fillers.len() < 16, "the backlog never filled");
        }
        // Nobody accepts: the wait is bounded by the timeout.
        let t = Instant::now();
        match AppConn::connect(&addr, Duration::from_millis(200), PeerCheck::Any) {
            Err(ConnectError::TimedOut) => {}
            other => panic!("expected TimedOut, got {:?}", other.map(|_| ())),
        }
        assert!(t.elapsed() >= Duration::from_millis(150), "{:?}", t.elapsed());
        // Three connectors queue one after the other; each writes its number.
        let mut threads = Vec::new();
        for i in 0..3u8 {
            let addr = addr.clone();
            threads.push(std::thread::spawn(move || {
                let mut c = AppConn::connect(&addr, Duration::from_secs(10), PeerCheck::Any).expect("queued connect");
                loop {
                    match c.try_write_vectored(&[IoSlice::new(&[b'a' + i])]) {
                        Ok(Some(1)) => break,
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                c
            }));
            std::thread::sleep(Duration::from_millis(60));
        }
        // Accept everything: the fillers first (they were queued first), then
        // the connectors, in the order they started waiting.
        let mut order = Vec::new();
        let n = fillers.len() + 3;
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let mut b = [0u8; 1];
            if let Ok(1) = s.read(&mut b) {
                order.push(b[0]);
            }
        }
        let conns: Vec<AppConn> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(order, b"abc", "admitted in the order they queued");
        drop(conns);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn request_ids_rotate_within_1_to_65535() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut c = AppConn::from_stream(a).unwrap();
        assert_eq!(c.next_request_id(), 1);
        c.used_request_id(1);
        assert_eq!(c.next_request_id(), 2);
        c.used_request_id(65534);
        assert_eq!(c.next_request_id(), 65535);
        c.used_request_id(65535);
        assert_eq!(c.next_request_id(), 1);
    }
}
