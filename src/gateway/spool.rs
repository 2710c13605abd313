//! Spooling of request bodies whose length is unknown up front (chunked
//! transfer encoding): FastCGI applications expect CONTENT_LENGTH, so the
//! body is collected first — in memory up to [`MEMORY_LIMIT`], then in an
//! anonymous temporary file in `FastCgiSpoolDir` — and streamed to the
//! application afterwards. Memory stays bounded whatever the body size,
//! and so does the disk (or tmpfs) space: one body may not exceed
//! `FastCgiSpoolLimit`, and all bodies being spooled by all httpd children
//! together may not exceed `FastCgiSpoolTotal` ([`Shared`]).

use crate::sys::shm;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bodies up to this size stay in memory.
pub const MEMORY_LIMIT: usize = 64 * 1024;

/// `FastCgiSpoolLimit` default: bodies this large are rare for the
/// applications that accept chunked uploads (PHP's own post_max_size
/// defaults to 8 MiB) while the bound keeps one client from filling the
/// spool file system.
pub const DEFAULT_LIMIT: u64 = 128 * 1024 * 1024;
/// `FastCgiSpoolTotal` default: eight maximal bodies at once.
pub const DEFAULT_TOTAL: u64 = 1024 * 1024 * 1024;

/// Why a body could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// The body is larger than the per-request limit (413).
    TooLarge,
    /// The bodies being spooled by all children would exceed the total (503).
    Full,
    /// The temporary file could not be created or written (500).
    Io(io::Error),
}

/// At most this many bodies are spooled to files at once across all httpd
/// children; one more is refused like a full spool.
pub const SLOTS: usize = 512;

/// The spool accounting shared by httpd's parent and all children: one slot
/// per body being spooled to a file, holding the pid of the child that
/// spools it and its size. A child that dies without releasing its slots
/// (a crash) leaves them behind; they are reclaimed (pid gone) the first
/// time the total would be exceeded, so a crash cannot shrink the cap for
/// good.
#[repr(C)]
pub struct Shared {
    owners: [AtomicU32; SLOTS],
    bytes: [AtomicU64; SLOTS],
}

impl Shared {
    /// Bytes held by all claimed slots.
    fn total(&self) -> u64 {
        (0..SLOTS)
            .filter(|&i| self.owners[i].load(Ordering::Acquire) != 0)
            .map(|i| self.bytes[i].load(Ordering::Acquire))
            .sum()
    }

    /// Frees the slots of processes that no longer exist.
    fn reclaim(&self) {
        for i in 0..SLOTS {
            let pid = self.owners[i].load(Ordering::Acquire);
            if pid != 0 && !shm::process_exists(pid as i32) {
                self.bytes[i].store(0, Ordering::Release);
                let _ = self.owners[i].compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    fn claim(&self, pid: u32) -> Option<usize> {
        for attempt in 0..2 {
            for i in 0..SLOTS {
                if self.owners[i].load(Ordering::Relaxed) == 0 {
                    self.bytes[i].store(0, Ordering::Release);
                    if self.owners[i]
                        .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Some(i);
                    }
                }
            }
            if attempt == 0 {
                self.reclaim();
            }
        }
        None
    }
}

/// A body's share of the [`Shared`] total: the slot it holds, released on
/// drop.
struct Charge {
    shared: &'static Shared,
    slot: usize,
    total: u64,
}

impl Charge {
    /// Accounts `n` more bytes, unless that would take every body together
    /// past `total` (checked, then added: concurrent bodies may overshoot by
    /// at most one write each).
    fn add(&mut self, n: u64) -> Result<(), SpoolError> {
        let over = |s: &Shared| s.total().saturating_add(n) > self.total;
        if over(self.shared) {
            self.shared.reclaim();
            if over(self.shared) {
                return Err(SpoolError::Full);
            }
        }
        self.shared.bytes[self.slot].fetch_add(n, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shared.bytes[self.slot].store(0, Ordering::Release);
        self.shared.owners[self.slot].store(0, Ordering::Release);
    }
}

/// Where and how much may be spooled.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// `FastCgiSpoolDir` in effect.
    pub dir: &'a Path,
    /// `FastCgiSpoolLimit`: bytes per body.
    pub limit: u64,
    /// `FastCgiSpoolTotal` and the table that accounts for it (`None`: not
    /// mapped, e.g. outside httpd; only the per-body limit applies).
    pub total: Option<(&'static Shared, u64)>,
}

/// A request body collected before the exchange.
pub struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
    read_pos: usize,
    charge: Option<Charge>,
}

/// An unnamed temporary file in `dir`: `O_TMPFILE`, or — on file systems
/// without it (EOPNOTSUPP, or EISDIR from kernels that predate it) — a new
/// file with a random name, created exclusively (no symlink followed) and
/// unlinked at once.
pub(crate) fn anonymous_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let r = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
            named_then_unlinked(dir)
        }
        other => other,
    }
}

/// The fallback of [`anonymous_file`].
fn named_then_unlinked(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut last = io::Error::from_raw_os_error(libc::EEXIST);
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            ".fcgi-spool-{}-{}-{nanos:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

impl Spool {
    pub fn new() -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            len: 0,
            read_pos: 0,
            charge: None,
        }
    }

    /// Appends body data, moving to a temporary file in `limits.dir` once
    /// the memory limit is passed; refuses data past `limits.limit` or the
    /// shared total.
    pub fn write(&mut self, data: &[u8], limits: &Limits<'_>) -> Result<(), SpoolError> {
        let n = data.len() as u64;
        if self.len.saturating_add(n) > limits.limit {
            return Err(SpoolError::TooLarge);
        }
        if self.file.is_none() && self.mem.len() + data.len() <= MEMORY_LIMIT {
            self.len += n;
            self.mem.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            if let Some((shared, total)) = limits.total {
                let slot = shared.claim(std::process::id()).ok_or(SpoolError::Full)?;
                let mut charge = Charge { shared, slot, total };
                charge.add(self.mem.len() as u64)?;
                self.charge = Some(charge);
            }
            let mut f = anonymous_file(limits.dir).map_err(SpoolError::Io)?;
            f.write_all(&self.mem).map_err(SpoolError::Io)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        if let Some(c) = self.charge.as_mut() {
            c.add(n)?;
        }
        self.len += n;
        match self.file.as_mut() {
            Some(f) => f.write_all(data).map_err(SpoolError::Io),
            None => Ok(()),
        }
    }

    /// Total body length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Prepares for reading back from the start.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.read_pos = 0;
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
            f.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }

    /// Reads the next piece (at most `buf.len()` bytes); 0 at the end.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = self.file.as_mut() {
            return f.read(buf);
        }
        let rest = &self.mem[self.read_pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.read_pos += n;
        Ok(n)
    }
}

impl Default for Spool {
    fn default() -> Self {
        Spool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(dir: &Path) -> Limits<'_> {
        Limits {
            dir,
            limit: u64::MAX,
            total: None,
        }
    }

    fn read_all(s: &mut Spool) -> Vec<u8> {
        s.rewind().unwrap();
        let mut back = Vec::new();
        let mut buf = vec![0u8; 7919];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        back
    }

    fn roundtrip(size: usize, piece: usize) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut s = Spool::new();
        let tmp = std::env::temp_dir();
        for c in data.chunks(piece.max(1)) {
            s.write(c, &limits(&tmp)).unwrap();
        }
        assert_eq!(s.len(), size as u64);
        assert_eq!(read_all(&mut s), data);
    }

    #[test]
    fn memory_and_file_spools_round_trip() {
        roundtrip(0, 10);
        roundtrip(MEMORY_LIMIT, 1000);
        roundtrip(MEMORY_LIMIT + 1, 4096);
        roundtrip(3 * MEMORY_LIMIT + 17, 65536);
    }

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fcgi-spool-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> usize {
        std::fs::read_dir(d).unwrap().count()
    }

    /// The per-body limit: 413 territory, nothing written past it.
    #[test]
    fn per_body_limit() {
        let d = scratch_dir("limit");
        let l = Limits {
            dir: &d,
            limit: 200_000,
            total: None,
        };
        let mut s = Spool::new();
        s.write(&[1u8; 100_000], &l).unwrap();
        s.write(&[2u8; 100_000], &l).unwrap();
        assert!(matches!(s.write(&[3u8; 1], &l), Err(SpoolError::TooLarge)));
        assert_eq!(s.len(), 200_000);
        drop(s);
        assert_eq!(entries(&d), 0, "nothing left behind");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The shared total: a second body is refused while the first holds the
    /// space, accepted once it is dropped; the slot of a dead process is
    /// reclaimed.
    #[test]
    fn shared_total_and_crash_reclaim() {
        let shared: &'static Shared = shm::map_shared().unwrap();
        let d = scratch_dir("total");
        let l = Limits {
            dir: &d,
            limit: u64::MAX,
            total: Some((shared, 300_000)),
        };
        let mut a = Spool::new();
        a.write(&[1u8; 200_000], &l).unwrap();
        assert_eq!(shared.total(), 200_000);
        let mut b = Spool::new();
        assert!(matches!(b.write(&[2u8; 150_000], &l), Err(SpoolError::Full)));
        drop(b);
        drop(a);
        assert_eq!(shared.total(), 0, "released on drop");
        let mut b = Spool::new();
        b.write(&[2u8; 150_000], &l).unwrap();
        drop(b);
        // A child that died holding 250 000 bytes (pid 2^22 + 1 cannot exist:
        // above pid_max's ceiling).
        let ghost = (1u32 << 22) + 1;
        let slot = shared.claim(ghost).unwrap();
        shared.bytes[slot].store(250_000, Ordering::SeqCst);
        let mut c = Spool::new();
        c.write(&[3u8; 150_000], &l).unwrap();
        assert_eq!(
            shared.owners[slot].load(Ordering::SeqCst),
            0,
            "dead owner's slot reclaimed"
        );
        drop(c);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// The fallback for file systems without O_TMPFILE: an exclusive named
    /// file, unlinked at once, works as the spool and leaves nothing.
    #[test]
    fn named_fallback_leaves_nothing_behind() {
        let d = scratch_dir("fallback");
        let mut f = named_then_unlinked(&d).unwrap();
        assert_eq!(entries(&d), 0);
        f.write_all(b"hello").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut back = String::new();
        f.read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);
        assert_eq!(f.metadata().unwrap().nlink(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
