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
}

/// A connected, non-blocking application socket.
pub struct AppConn {
    stream: UnixStream,
    /// The request id of the last request on this connection (0: none yet).
    last_id: u16,
}

fn poll_one(fd: &impl AsFd, flags: PollFlags, timeout: Duration) -> io::Result<Option<PollFlags>> {
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
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
    /// Connects to `addr`, waiting at most `timeout`.
    pub fn connect(addr: &AppAddr, timeout: Duration) -> Result<AppConn, ConnectError> {
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
                connect(fd.as_raw_fd(), &ua)
            }
            AppAddr::Tcp(SocketAddr::V4(a)) => connect(fd.as_raw_fd(), &SockaddrIn::from(*a)),
            AppAddr::Tcp(SocketAddr::V6(a)) => connect(fd.as_raw_fd(), &SockaddrIn6::from(*a)),
        };
        match res {
            Ok(()) => {}
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
        if matches!(addr, AppAddr::Tcp(_)) {
            let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
        }
        // A UnixStream is just an owned stream-socket fd with Read/Write;
        // it serves TCP sockets equally well.
        Ok(AppConn {
            stream: UnixStream::from(fd),
            last_id: 0,
        })
    }

    /// Like [`AppConn::connect`], but while the socket is missing, refusing
    /// or its backlog is full, keeps trying (5 ms doubling to 100 ms) until
    /// `timeout` has passed. Used for applications our process manager
    /// runs: their socket appears a moment after the PM starts and is
    /// re-created when the PM itself is restarted.
    pub fn connect_patiently(addr: &AppAddr, timeout: Duration) -> Result<AppConn, ConnectError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match AppConn::connect(addr, left) {
                Err(ConnectError::Failed(e @ (Errno::ENOENT | Errno::ECONNREFUSED | Errno::EAGAIN))) => {
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

    /// Wraps an already connected socket (tests use a socketpair).
    pub fn from_stream(stream: UnixStream) -> io::Result<AppConn> {
        stream.set_nonblocking(true)?;
        Ok(AppConn { stream, last_id: 0 })
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
