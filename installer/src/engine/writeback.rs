//! Writing a large file so that the fsync at its end is short.
//!
//! Why: staging copies the whole bundle (think 20 GB) and must fsync the copy before the
//! phase is journaled. Left alone, the kernel keeps most of the copy dirty in the page
//! cache and writes it out during that last fsync, after the copy: the disk idles while
//! the bundle is read and hashed, then everything waits for the disk. [`Writeback`]
//! starts writeback of each window as soon as it is written
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), so the disk works
//! while the next windows are read and hashed, and it waits for the window `LAG` windows
//! back, which bounds the dirty pages (memory stays flat in bundle size) without making
//! the copy wait for the write it has just started. Where the call is refused (a file
//! system without it), writeback is left to the kernel: the final fsync still makes the
//! file durable, so this changes when bytes reach the disk, never whether they do.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Bytes per writeback window.
const WINDOW: u64 = 16 << 20;
/// Windows in flight before the oldest is waited for.
const LAG: u64 = 8;

/// A [`Write`] into a file that starts its writeback as it goes (see the module docs).
pub struct Writeback<'a> {
    file: &'a mut File,
    /// Bytes written so far.
    written: u64,
    /// Writeback was started for bytes below this.
    started: u64,
    /// Writeback was waited for below this.
    waited: u64,
    /// The file system refused `sync_file_range`: stop asking.
    off: bool,
}

impl<'a> Writeback<'a> {
    /// Writes into `file` from its current position, which must be its start.
    pub fn new(file: &'a mut File) -> Self {
        Writeback {
            file,
            written: 0,
            started: 0,
            waited: 0,
            off: false,
        }
    }

    fn sync_range(&mut self, offset: u64, len: u64, flags: u32) {
        if self.off {
            return;
        }
        // SAFETY: a plain system call on a file descriptor this borrow keeps open; it
        // reads no memory of ours.
        let rc = unsafe {
            nix::libc::sync_file_range(
                self.file.as_raw_fd(),
                offset as nix::libc::off64_t,
                len as nix::libc::off64_t,
                flags,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            tracing::debug!(error = %e, "sync_file_range refused; the final fsync does the writeback");
            self.off = true;
        }
    }

    fn advance(&mut self) {
        use nix::libc::{
            SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE,
        };
        while self.written - self.started >= WINDOW {
            self.sync_range(self.started, WINDOW, SYNC_FILE_RANGE_WRITE);
            self.started += WINDOW;
            if self.started - self.waited > LAG * WINDOW {
                self.sync_range(
                    self.waited,
                    WINDOW,
                    SYNC_FILE_RANGE_WAIT_BEFORE
                        | SYNC_FILE_RANGE_WRITE
                        | SYNC_FILE_RANGE_WAIT_AFTER,
                );
                self.waited += WINDOW;
            }
        }
    }
}

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.advance();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_every_byte_in_order_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let mut f = File::create(&path).unwrap();
        let data: Vec<u8> = (0..(WINDOW * (LAG + 3) + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = Writeback::new(&mut f);
        for chunk in data.chunks(3 << 20) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.started, WINDOW * (LAG + 3));
        assert_eq!(w.waited, WINDOW * 3);
        w.file.sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data, "the copy differs from what was written");
    }
}
