//! Whether the peer of a stream socket has read everything written to it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// True while something written to `fd` still waits unread at the other end
/// (`SIOCOUTQ`; for a Unix stream socket the kernel reports the memory of the
/// data in the peer's receive queue, so the number itself is not a byte
/// count — only whether it is 0).
pub fn peer_has_unread(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer, which
    // points to `n` on our stack; the descriptor is borrowed, hence open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn tells_whether_the_peer_read_everything() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        assert!(!peer_has_unread(a.as_fd()).unwrap());
        a.write_all(&[7u8; 100]).unwrap();
        assert!(peer_has_unread(a.as_fd()).unwrap());
        let mut buf = [0u8; 40];
        b.read_exact(&mut buf).unwrap();
        assert!(peer_has_unread(a.as_fd()).unwrap(), "60 bytes left");
        let mut rest = [0u8; 60];
        b.read_exact(&mut rest).unwrap();
        assert!(!peer_has_unread(a.as_fd()).unwrap());
    }
}
