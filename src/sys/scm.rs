//! Passing a descriptor over a Unix socket (`SCM_RIGHTS`): httpd hands the
//! process manager the error log it re-opened on each configuration pass
//! (issue 12: after log rotation the PM kept writing to the rotated file).

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors accepted in one message; more are closed unread.
const MAX_FDS: usize = 4;

/// Sends `bytes` (at least one byte) with a duplicate of `fd` attached. Returns how many
/// bytes went out (a stream socket may take fewer; the descriptor travels with the
/// first of them, so the caller writes the rest without it).
pub fn send_with_fd(sock: BorrowedFd<'_>, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    if bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(bytes)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads into `buf` from a Unix socket, returning the byte count and the descriptors
/// that came with those bytes (close-on-exec, owned by the caller). A non-blocking
/// socket with nothing to read gives `EAGAIN` as usual.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let n = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel has just installed `fd` in this process's table for
                // this message; nothing else knows it, so it is owned exactly once here.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((n, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_travels_with_the_first_bytes() {
        let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).unwrap();
        let mut file = tempfile_in_tmp();
        nix::unistd::write(&a, b"before").unwrap();
        assert_eq!(send_with_fd(a.as_fd(), b"with", file.as_fd()).unwrap(), 4);
        let mut got = Vec::new();
        let mut fds = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 10 {
            let (n, f) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            fds.extend(f);
        }
        assert_eq!(got, b"beforewith");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the same open file, and close-on-exec.
        let flags = nix::fcntl::fcntl(fds[0].as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let mut dup = std::fs::File::from(fds.pop().unwrap());
        dup.write_all(b"via passed fd").unwrap();
        let mut s = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut s).unwrap();
        assert_eq!(s, "via passed fd");
        assert!(send_with_fd(a.as_fd(), b"", file.as_fd()).is_err());
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("scm-test-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}
