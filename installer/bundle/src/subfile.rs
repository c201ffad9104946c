//! A byte range of a file as its own `Read + Seek` stream. Bundles are read in place:
//! entries, blobs and the payload are ranges of `delivery.run`, never copies. The range
//! may be of a plain file or of a split bundle's parts ([`crate::parts::BundleFile`]).

use crate::parts::ReadAt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct SubFile {
    file: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
    pos: u64,
}

impl SubFile {
    pub fn new(file: Arc<dyn ReadAt>, start: u64, len: u64) -> Self {
        SubFile {
            file,
            start,
            len,
            pos: 0,
        }
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for SubFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended inside the range (truncated?)",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for SubFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            )),
        }
    }
}

/// Reads exactly `len` bytes at `offset`, naming `what` in the error.
pub fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
