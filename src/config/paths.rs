//! Paths, socket names and permission checks: CFG-07 normalisation, CFG-10 /
//! PM-21 md5 socket names, the legacy mode-bit access check
//! (`fcgi_util_check_access`), and the [`FileProbe`] seam through which all
//! file-system questions are asked (so tests can use a fake file system).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::md5::md5_hex;

/// Longest Unix socket path that fits `sun_path` (108 bytes with the NUL).
pub const MAX_UNIX_SOCKET_PATH: usize = 107;

/// What [`FileProbe::stat`] reports about a file (following symlinks, like
/// `stat(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub is_dir: bool,
    /// Permission bits (`st_mode & 0o7777`; other bits are ignored).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Every file-system and account question config parsing asks. The real
/// implementation is [`OsProbe`]; tests use a fake.
pub trait FileProbe {
    /// `stat(2)`.
    fn stat(&self, p: &Path) -> io::Result<FileInfo>;
    /// Whether `user` is listed as a member of group `gid` (the supplementary
    /// membership list, as `getgrgid()->gr_mem`).
    fn user_in_group(&self, user: &str, gid: u32) -> bool;
    /// `mkdir(p, mode)`, one level only.
    fn create_dir(&self, p: &Path, mode: u32) -> io::Result<()>;
    /// `chown(p, uid, gid)` of a directory this process just created, and
    /// `chmod 0700`: through a descriptor opened without following a
    /// symbolic link, refused unless the directory still belongs to this
    /// process's effective uid (it may have been swapped since the mkdir).
    fn chown(&self, p: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// Whether `p` itself is a symbolic link (`lstat(2)`).
    fn is_symlink(&self, p: &Path) -> bool;
}

/// The real file system, through `std` only.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsProbe;

impl FileProbe for OsProbe {
    fn stat(&self, p: &Path) -> io::Result<FileInfo> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p)?;
        Ok(FileInfo {
            is_dir: m.is_dir(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })
    }

    fn user_in_group(&self, user: &str, gid: u32) -> bool {
        super::system::group_members(gid).iter().any(|m| m == user)
    }

    fn create_dir(&self, p: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(mode).create(p)
    }

    fn chown(&self, p: &Path, uid: u32, gid: u32) -> io::Result<()> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(p)?;
        if dir.metadata()?.uid() != nix::unistd::geteuid().as_raw() {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        dir.set_permissions(std::fs::Permissions::from_mode(0o700))?;
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))
    }

    fn is_symlink(&self, p: &Path) -> bool {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
    }
}

/// Which accesses [`check_access`] must find granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Want {
    pub const EXECUTE: Want = Want {
        read: false,
        write: false,
        execute: true,
    };
    pub const ALL: Want = Want {
        read: true,
        write: true,
        execute: true,
    };
}

/// The legacy mode-bit access check: the owner bits apply when `uid` owns the
/// file, else the group bits when `gid` is the file's group or the user is a
/// member of it (`in_group`), else the "other" bits. Root gets no special
/// treatment (as in legacy). Returns the legacy reason text on refusal.
pub fn check_access(info: &FileInfo, want: Want, uid: u32, gid: u32, in_group: bool) -> Result<(), &'static str> {
    let (r, w, x, refusals) = if uid == info.uid {
        (
            0o400,
            0o200,
            0o100,
            [
                "read not allowed by owner",
                "write not allowed by owner",
                "execute not allowed by owner",
            ],
        )
    } else if gid == info.gid || in_group {
        (
            0o040,
            0o020,
            0o010,
            [
                "read not allowed by group",
                "write not allowed by group",
                "execute not allowed by group",
            ],
        )
    } else {
        (
            0o004,
            0o002,
            0o001,
            ["read not allowed", "write not allowed", "execute not allowed"],
        )
    };
    if want.read && info.mode & r == 0 {
        return Err(refusals[0]);
    }
    if want.write && info.mode & w == 0 {
        return Err(refusals[1]);
    }
    if want.execute && info.mode & x == 0 {
        return Err(refusals[2]);
    }
    Ok(())
}

/// [`check_access`] for execute permission only (application and wrapper
/// checks).
pub fn executable_by(info: &FileInfo, uid: u32, gid: u32, in_group: bool) -> Result<(), &'static str> {
    check_access(info, Want::EXECUTE, uid, gid, in_group)
}

/// `strerror` text of an I/O error (std's Display appends ` (os error N)`).
pub(crate) fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// CFG-07: makes `p` absolute against `server_root` when relative. With
/// `clean` (server paths) `.`/`..` segments and doubled slashes are removed as
/// `apr_filepath_merge` + `ap_getparents` + `ap_no2slash` would (`..` never
/// climbs above `/`), and a trailing slash is dropped.
pub fn normalize_path(server_root: &Path, p: &str, clean: bool) -> PathBuf {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        let root = server_root.to_string_lossy();
        format!("{}/{}", root.trim_end_matches('/'), p)
    };
    if !clean {
        return PathBuf::from(joined);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    PathBuf::from(format!("/{}", segments.join("/")))
}

/// httpd's `ap_no2slash`: collapses runs of `/` into one.
pub(crate) fn no2slash(p: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // (Per request: no copy for the usual path without "//".)
    if !p.windows(2).any(|w| w == b"//") {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// httpd's `ap_getparents` (RFC 1808 dot-segment removal) applied to the
/// string the legacy module hashes for socket names. Reproduced step by step
/// because the hash input must match legacy byte for byte (PM-21).
pub(crate) fn getparents(name: &[u8]) -> Vec<u8> {
    let mut n = name.to_vec();
    let at = |n: &Vec<u8>, i: usize| n.get(i).copied().unwrap_or(0);

    // a) remove "./" segments
    let first_dot = n.iter().position(|&b| b == b'.').unwrap_or(n.len());
    let (mut l, mut w) = (first_dot, first_dot);
    while l < n.len() {
        if n[l] == b'.' && at(&n, l + 1) == b'/' && (l == 0 || n[l - 1] == b'/') {
            l += 2;
        } else {
            n[w] = n[l];
            w += 1;
            l += 1;
        }
    }
    // b) remove a trailing "." segment
    if (w == 1 && n[0] == b'.') || (w > 1 && n[w - 1] == b'.' && n[w - 2] == b'/') {
        w -= 1;
    }
    n.truncate(w);

    // c) remove "xx/../" segments (including a leading "../" and "/../")
    let mut l = first_dot.min(n.len());
    while l < n.len() {
        if n[l] == b'.' && at(&n, l + 1) == b'.' && at(&n, l + 2) == b'/' && (l == 0 || n[l - 1] == b'/') {
            let m = l + 3;
            let mut k = l as isize - 2;
            if k >= 0 {
                while k >= 0 && n[k as usize] != b'/' {
                    k -= 1;
                }
                k += 1;
            } else {
                k = 0;
            }
            let k = k as usize;
            n.drain(k..m);
            l = k;
        } else {
            l += 1;
        }
    }

    // d) remove a trailing "xx/.." segment
    let len = n.len();
    if len == 2 && n[0] == b'.' && n[1] == b'.' {
        n.clear();
    } else if len > 2 && n[len - 1] == b'.' && n[len - 2] == b'.' && n[len - 3] == b'/' {
        let mut k = len as isize - 4;
        if k >= 0 {
            while k >= 0 && n[k as usize] != b'/' {
                k -= 1;
            }
            k += 1;
        } else {
            k = 0;
        }
        n.truncate(k as usize);
    }
    n
}

/// md5 hex of `getparents(path + user + group)` (legacy
/// `fcgi_util_socket_hash_filename`).
fn hashed_name(app_path: &Path, user: &str, group: &str) -> String {
    let mut buf = app_path.as_os_str().as_bytes().to_vec();
    buf.extend_from_slice(user.as_bytes());
    buf.extend_from_slice(group.as_bytes());
    md5_hex(&getparents(&buf))
}

/// CFG-10: the socket of a static server given neither `-socket` nor `-port`:
/// `<ipc_dir>/<md5 of the path>`, or, with a wrapper, of path + user name +
/// group name.
pub fn default_static_socket(ipc_dir: &Path, app_path: &Path, wrapper_user_group: Option<(&str, &str)>) -> PathBuf {
    let (user, group) = wrapper_user_group.unwrap_or(("", ""));
    ipc_dir.join(hashed_name(app_path, user, group))
}

/// PM-21: the socket of a dynamic application class:
/// `<ipc_dir>/dynamic/<md5 of path + user + group>`, where user and group are
/// `"-"`, `"-"` without a wrapper.
pub fn dynamic_socket(ipc_dir: &Path, app_path: &Path, user: &str, group: &str) -> PathBuf {
    ipc_dir.join("dynamic").join(hashed_name(app_path, user, group))
}

/// The `sun_path` length check (`fcgi_util_socket_make_domain_addr`).
pub(crate) fn check_socket_len(sock: &Path) -> Result<(), String> {
    if sock.as_os_str().len() > MAX_UNIX_SOCKET_PATH {
        return Err(format!("path \"{}\" is too long for a Domain socket", sock.display()));
    }
    Ok(())
}

/// Who besides its owner can replace a socket file in `sock`'s directory
/// (security review, finding 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketDirRisk {
    /// Group/world-writable but sticky (like `/tmp`): others cannot remove
    /// our socket, but can bind the name first while it is absent.
    Sticky { dir: PathBuf, mode: u32 },
    /// Group/world-writable and not sticky: anyone with write access can
    /// replace the socket at any time.
    Open { dir: PathBuf, mode: u32 },
}

impl SocketDirRisk {
    pub fn dir(&self) -> &Path {
        match self {
            SocketDirRisk::Sticky { dir, .. } | SocketDirRisk::Open { dir, .. } => dir,
        }
    }
    pub fn mode(&self) -> u32 {
        match self {
            SocketDirRisk::Sticky { mode, .. } | SocketDirRisk::Open { mode, .. } => *mode,
        }
    }
}

/// The risk of `sock`'s directory, `None` when only its owner can write it
/// (or it cannot be examined: the process manager's bind reports that).
pub fn socket_dir_risk(sock: &Path, fs: &dyn FileProbe) -> Option<SocketDirRisk> {
    let dir = sock.parent().filter(|d| !d.as_os_str().is_empty())?;
    let info = fs.stat(dir).ok()?;
    if info.mode & 0o022 == 0 {
        return None;
    }
    let (dir, mode) = (dir.to_path_buf(), info.mode & 0o7777);
    Some(if info.mode & 0o1000 != 0 {
        SocketDirRisk::Sticky { dir, mode }
    } else {
        SocketDirRisk::Open { dir, mode }
    })
}
