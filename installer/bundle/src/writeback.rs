//! Writeback started while a file is written, so that the fsync at its end is short.
//!
//! Why: the builder's cache blobs and bundle, and the installer's staged copy, are written
//! front to back (think 20 GB) and must be fsynced before they are named or journaled.
//! Left alone, the kernel starts writing dirty pages back only past its dirty limits
//! (gigabytes on a large machine) or after 30 s, so the disk idled while the file was
//! written and everything then waited for the final fsync. [`WritebackWindows`] starts
//! writeback of each window as soon as it is written (`sync_file_range(
//! SYNC_FILE_RANGE_WRITE)`, which does not wait). It never waits for windows to reach
//! the disk: measured on staging, waiting on earlier windows made the copy run at the
//! disk's pace and cost more than it saved; the kernel's dirty-page limits bound the
//! memory (page cache, not the process's). Measured windows: 4 and 16 MiB were slower
//! than 64 MiB (docs/benchmarks.md, issue #17).
//!
//! Where `sync_file_range` is refused, writeback is left to the kernel: the final fsync
//! still makes the file durable, so this changes when bytes reach the disk, never whether
//! they do.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Bytes per writeback window.
pub const WINDOW: u64 = 64 << 20;

/// Starts the writeback of a file written front to back, one [`WINDOW`] at a time.
#[derive(Debug, Default)]
pub struct WritebackWindows {
    /// Bytes written so far.
    written: u64,
    /// Writeback was started for bytes below this.
    started: u64,
    /// The file system refused `sync_file_range`: stop asking.
    off: bool,
}

impl WritebackWindows {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a file whose first `offset` bytes were written before (a resumed download):
    /// windows count from there.
    pub fn starting_at(offset: u64) -> Self {
        WritebackWindows {
            written: offset,
            started: offset,
            off: false,
        }
    }

    /// `len` more bytes were written to `file`, after those before (from its start).
    pub fn wrote(&mut self, file: &File, len: u64) {
        self.written += len;
        while self.written - self.started >= WINDOW {
            self.start(file, self.started, WINDOW);
            self.started += WINDOW;
        }
    }

    /// Bytes whose writeback was started: whole windows from the start.
    pub fn started(&self) -> u64 {
        self.started
    }

    fn start(&mut self, file: &File, offset: u64, len: u64) {
        if self.off {
            return;
        }
        // SAFETY: a plain system call on a file descriptor the borrow keeps open; it
        // reads no memory of ours.
        let rc = unsafe {
            nix::libc::sync_file_range(
                file.as_raw_fd(),
                offset as nix::libc::off64_t,
                len as nix::libc::off64_t,
                nix::libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc != 0 {
            self.off = true; // the final fsync does the writeback
        }
    }
}

/// A file written front to back that starts its writeback as it goes.
#[derive(Debug)]
pub struct WritebackFile {
    file: File,
    windows: WritebackWindows,
}

impl WritebackFile {
    /// Writes into `file` from its current position, which must be its start.
    pub fn new(file: File) -> Self {
        WritebackFile {
            file,
            windows: WritebackWindows::new(),
        }
    }

    pub fn into_inner(self) -> File {
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.windows.wrote(&self.file, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writeback_starts_window_by_window_and_every_byte_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(WINDOW * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let mut w = WritebackFile::new(File::create(&path).unwrap());
        let mut started = Vec::new();
        for chunk in data.chunks(3 << 20) {
            w.write_all(chunk).unwrap();
            started.push(w.windows.started());
        }
        assert_eq!(w.windows.started(), WINDOW * 2);
        // A window starts once it is complete, not before.
        assert_eq!(started[0], 0);
        assert!(started.windows(2).all(|s| s[0] <= s[1]));
        w.into_inner().sync_all().unwrap();
        assert!(std::fs::read(&path).unwrap() == data, "the file differs");
    }

    #[test]
    fn a_resumed_file_counts_its_windows_from_where_it_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let mut w = WritebackWindows::starting_at(1000);
        w.wrote(&file, WINDOW - 1);
        assert_eq!(w.started(), 1000, "one byte short of a window");
        w.wrote(&file, 1);
        assert_eq!(w.started(), 1000 + WINDOW);
    }
}
