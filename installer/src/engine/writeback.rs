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
//! - Leaving writeback to the final fsync: [`WritebackWindows`] starts it window by
//!   window as the copy goes (why and how: `ferry_bundle::writeback`).

use ferry_bundle::parts::BundleFile;
use ferry_bundle::verify::CopySink;
use ferry_bundle::writeback::WritebackWindows;
use std::fs::File;
use std::io::{self, Write};

/// Staging's [`CopySink`]: a file filled by the kernel that starts its writeback as it
/// goes (see the module docs).
pub struct Writeback<'a> {
    file: &'a mut File,
    windows: WritebackWindows,
    /// The kernel could not copy between these files: write the bytes.
    by_hand: bool,
}

impl<'a> Writeback<'a> {
    /// Writes into `file` from its current position, which must be its start.
    pub fn new(file: &'a mut File) -> Self {
        Writeback {
            file,
            windows: WritebackWindows::new(),
            by_hand: false,
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
        self.windows.wrote(self.file, len);
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
        let window = ferry_bundle::writeback::WINDOW;
        let data: Vec<u8> = (0..(window * 2 + 12345)).map(|i| (i % 251) as u8).collect();
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
        assert_eq!(w.windows.started(), window * 2);
        assert!(!w.by_hand, "the kernel copies within one file system");
        w.file.sync_all().unwrap();
        assert!(std::fs::read(&path).unwrap() == data, "the copy differs");
    }
}
