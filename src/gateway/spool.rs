//! Spooling of request bodies whose length is unknown up front (chunked
//! transfer encoding): FastCGI applications expect CONTENT_LENGTH, so the
//! body is collected first — in memory up to [`MEMORY_LIMIT`], then in an
//! anonymous temporary file — and streamed to the application afterwards.
//! Memory stays bounded whatever the body size.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bodies up to this size stay in memory.
pub const MEMORY_LIMIT: usize = 64 * 1024;

/// A request body collected before the exchange.
pub struct Spool {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
    read_pos: usize,
}

fn anonymous_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

impl Spool {
    pub fn new() -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            len: 0,
            read_pos: 0,
        }
    }

    /// Appends body data, moving to a temporary file in `tmpdir` once the
    /// memory limit is passed.
    pub fn write(&mut self, data: &[u8], tmpdir: &Path) -> io::Result<()> {
        self.len += data.len() as u64;
        if self.file.is_none() && self.mem.len() + data.len() <= MEMORY_LIMIT {
            self.mem.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            let mut f = anonymous_file(tmpdir)?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(data),
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

    fn roundtrip(size: usize, piece: usize) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mut s = Spool::new();
        for c in data.chunks(piece.max(1)) {
            s.write(c, &std::env::temp_dir()).unwrap();
        }
        assert_eq!(s.len(), size as u64);
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
        assert_eq!(back, data);
    }

    #[test]
    fn memory_and_file_spools_round_trip() {
        roundtrip(0, 10);
        roundtrip(MEMORY_LIMIT, 1000);
        roundtrip(MEMORY_LIMIT + 1, 4096);
        roundtrip(3 * MEMORY_LIMIT + 17, 65536);
    }
}
