//! A file written by a background thread, for the bundle writer's output.
//!
//! Why: the writer reads, hashes and writes on one thread, so every `write` (the kernel's
//! copy into the page cache, slow on some VMs) added straight to the build's wall time
//! ("Where ferry build's time goes" in docs/benchmarks.md). Here `write` only fills a
//! buffer; full buffers go to a thread that writes them in order while the caller goes
//! on hashing. Memory stays flat: at most [`BUFFERS`] buffers of [`BUF_LEN`] bytes exist,
//! and a caller that gets ahead waits for one to come back.
//!
//! Bytes reach the file in the order they were written. [`BackgroundFile::flush`] returns
//! once everything written so far is in the file (so positional writes and `sync_all` may
//! follow); a write error of the thread is returned by the next `write` or `flush`.

use crate::writeback::WritebackWindows;
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes handed over at a time.
pub(crate) const BUF_LEN: usize = 512 << 10;
/// Buffers in flight at most (being filled, queued, being written).
pub(crate) const BUFFERS: usize = 3;

/// What the thread is sent: bytes to write, or a request to report once all before it
/// are written.
enum Msg {
    Data(Vec<u8>),
    Flush,
}

/// What the thread sends back: an emptied buffer, or "flushed".
enum Back {
    Buffer(Vec<u8>),
    Flushed,
}

pub(crate) struct BackgroundFile {
    file: Arc<File>,
    to: Option<SyncSender<Msg>>,
    back: Receiver<Back>,
    thread: Option<JoinHandle<io::Result<()>>>,
    buf: Vec<u8>,
    /// Buffers allocated so far (at most [`BUFFERS`]).
    made: usize,
}

impl BackgroundFile {
    pub fn new(file: File) -> io::Result<BackgroundFile> {
        let file = Arc::new(file);
        let (to, rx) = sync_channel::<Msg>(BUFFERS);
        let (tx_back, back) = channel();
        let f = file.clone();
        let thread = std::thread::Builder::new()
            .name("bundle-write".into())
            .spawn(move || run(&f, rx, tx_back))?;
        Ok(BackgroundFile {
            file,
            to: Some(to),
            back,
            thread: Some(thread),
            buf: Vec::with_capacity(BUF_LEN),
            made: 1,
        })
    }

    /// The file, for positional writes after a [`Self::flush`].
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The thread stopped (it failed, or panicked): its error.
    fn failed(&mut self) -> io::Error {
        self.to = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the bundle's write thread panicked"),
            _ => io::Error::other("the bundle's write thread has stopped"),
        }
    }

    fn send(&mut self, msg: Msg) -> io::Result<()> {
        let sent = match &self.to {
            Some(to) => to.send(msg).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.failed())
        }
    }

    /// Hands the current buffer over and takes an empty one (a new one while fewer than
    /// [`BUFFERS`] exist, else the next the thread gives back).
    fn hand_over(&mut self) -> io::Result<()> {
        let next = if self.made < BUFFERS {
            self.made += 1;
            Vec::with_capacity(BUF_LEN)
        } else {
            match self.back.recv() {
                Ok(Back::Buffer(b)) => b,
                Ok(Back::Flushed) => unreachable!("a flush is waited for where it is asked"),
                Err(_) => return Err(self.failed()),
            }
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Msg::Data(full))
    }
}

impl Write for BackgroundFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == BUF_LEN {
            self.hand_over()?;
        }
        let n = data.len().min(BUF_LEN - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.hand_over()?;
        }
        self.send(Msg::Flush)?;
        // Every buffer handed over comes back before the flush's answer. They are let go
        // (flushes are rare: part ends and the end): only `self.buf` is left.
        let res = loop {
            match self.back.recv() {
                Ok(Back::Buffer(_)) => {}
                Ok(Back::Flushed) => break Ok(()),
                Err(_) => break Err(self.failed()),
            }
        };
        self.made = 1;
        res
    }
}

impl Drop for BackgroundFile {
    fn drop(&mut self) {
        self.to = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(file: &File, rx: Receiver<Msg>, back: Sender<Back>) -> io::Result<()> {
    let mut out = file;
    // The bundle is fsynced when it is finished: its writeback starts as it is written.
    let mut windows = WritebackWindows::new();
    for msg in rx {
        match msg {
            Msg::Data(mut b) => {
                out.write_all(&b)?;
                windows.wrote(file, b.len() as u64);
                b.clear();
                let _ = back.send(Back::Buffer(b));
            }
            Msg::Flush => {
                let _ = back.send(Back::Flushed);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn bytes_arrive_in_order_and_flush_means_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut w = BackgroundFile::new(File::create(&p).unwrap()).unwrap();
        let data: Vec<u8> = (0..(5 * BUF_LEN + 123)).map(|i| (i % 251) as u8).collect();
        // Odd chunk sizes cross buffer boundaries.
        for chunk in data.chunks(77_777) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        // Positional writes after a flush land on written bytes; writing goes on after.
        use std::os::unix::fs::FileExt;
        w.file().write_all_at(b"XY", 10).unwrap();
        w.write_all(b"tail").unwrap();
        w.flush().unwrap();
        drop(w);
        let mut got = Vec::new();
        File::open(&p).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(&got[10..12], b"XY");
        assert_eq!(&got[got.len() - 4..], b"tail");
        assert_eq!(got.len(), data.len() + 4);
    }

    #[test]
    fn a_write_error_of_the_thread_is_returned() {
        // /dev/full fails every write with ENOSPC.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut w = BackgroundFile::new(full).unwrap();
        let mut res = Ok(());
        for _ in 0..(BUFFERS + 2) {
            res = w.write_all(&vec![1u8; BUF_LEN]);
            if res.is_err() {
                break;
            }
        }
        let err = res.and_then(|_| w.flush()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
    }
}
