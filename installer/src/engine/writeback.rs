//! Staging's copy of the bundle: filled by the kernel, written back as it goes, so that
//! the fsync at its end is short.
//!
//! Why: staging copies the whole bundle (think 20 GB) while it verifies it, and must
//! fsync the copy before the phase is journaled. Two things made it twice as slow as
//! `cp && sync` on the VMs measured (docs/benchmarks.md §1):
//!
//! - Copying through user space (`write` of the chunk just read for hashing). The chunk
//!   is in the page cache already, so [`Writeback`] has the kernel copy it
//!   (`copy_file_range`, as `cp` does) and writes the bytes itself only where the kernel
//!   cannot (another file system, an old kernel).
//! - Leaving writeback to the final fsync: the disk idled while the bundle was read and
//!   hashed, then everything waited for it. [`Writeback`] starts writeback of each window
//!   as soon as it is copied (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not
//!   wait). It does not wait for windows to reach the disk: measured, waiting on earlier
//!   windows made the copy run at the disk's pace and cost more than it saved; the
//!   kernel's dirty-page limits bound the memory (page cache, not the process's).
//!
//! Where `sync_file_range` is refused, writeback is left to the kernel: the final fsync
//! still makes the file durable, so this changes when bytes reach the disk, never whether
//! they do.

use ferry_bundle::parts::BundleFile;
use ferry_bundle::verify::CopySink;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Bytes per writeback window (measured: 4 and 16 MiB windows were slower).
const WINDOW: u64 = 64 << 20;

/// Staging's [`CopySink`]: a file filled by the kernel that starts its writeback as it
/// goes (see the module docs).
pub struct Writeback<'a> {
    file: &'a mut File,
    /// Bytes written so far.
    written: u64,
    /// Writeback was started for bytes below this.
    started: u64,
    /// The file system refused `sync_file_range`: stop asking.
    off: bool,
    /// The kernel could not copy between these files: write the bytes.
    by_hand: bool,
}

impl<'a> Writeback<'a> {
    /// Writes into `file` from its current position, which must be its start.
    pub fn new(file: &'a mut File) -> Self {
        Writeback {
            file,
            written: 0,
            started: 0,
            off: false,
            by_hand: false,
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
        while self.written - self.started >= WINDOW {
            self.sync_range(self.started, WINDOW, nix::libc::SYNC_FILE_RANGE_WRITE);
            self.started += WINDOW;
        }
    }
}

impl CopySink for Writeback<'_> {
    fn copy(&mut self, source: &BundleFile, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let len = bytes.len() as u64;
        if self.by_hand || !source.copy_to(self.file, offset, len)? {
            if !self.by_hand {
                tracing::debug!("copy_file_range refused; staging writes the bytes itself");
                self.by_hand = true;
            }
            self.file.write_all(bytes)?;
        }
        self.written += len;
        self.advance();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_byte_in_order_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let data: Vec<u8> = (0..(WINDOW * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let source = BundleFile::new(vec![(src.clone(), File::open(&src).unwrap())]).unwrap();
        let path = dir.path().join("copy");
        let mut f = File::create(&path).unwrap();
        let mut w = Writeback::new(&mut f);
        let mut at = 0;
        for chunk in data.chunks(3 << 20) {
            w.copy(&source, at, chunk).unwrap();
            at += chunk.len() as u64;
        }
        assert_eq!(w.started, WINDOW * 2);
        assert!(!w.by_hand, "the kernel copies within one file system");
        w.file.sync_all().unwrap();
        assert!(std::fs::read(&path).unwrap() == data, "the copy differs");
    }
}
