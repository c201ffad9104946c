//! Sending a blob's byte ranges of the bundle file to a client.
//!
//! Two ways to move the bytes:
//!
//! - `sendfile(2)` moves them from the page cache to the socket without copying them
//!   through user space: less server CPU (on 6 GiB over loopback 2.9 s against 4.4 s for
//!   `io::copy`, which std deliberately keeps off sendfile for file→socket).
//! - A `pread`/`write` copy loop through a 64 KiB buffer. Transports that transform
//!   bytes (TLS) can only take this, as can a file system that refuses sendfile, and a
//!   blob being verified while it is sent ([`send_checked`]) needs its bytes in user
//!   space anyway. Over loopback it was also the faster of the two for clients
//!   (`docs/benchmarks.md` §3), which is why `ServeOptions::sendfile` is off by default.

use super::http::OpenRange;
use super::transport::ResponseSink;
use super::verify::Deferred;
use sha2::Digest as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Largest count handed to one sendfile call (the kernel caps it near 2 GiB anyway).
const SENDFILE_CHUNK: u64 = 1 << 30;
const COPY_BUF: usize = 64 << 10;
/// Chunk of a blob verified while it is sent, and how many may wait for the hasher:
/// at most 5 × 64 KiB per first GET in flight, so that a hundred clients pulling at
/// once stay within the registry's memory budget (`registry_interop`, < 64 MiB; with
/// 256 KiB chunks they peaked at 72 MiB).
const CHECKED_CHUNK: usize = 64 << 10;
const CHECKED_BUFFERS: usize = 4;
/// The hasher thread's stack: it only runs sha256 over the chunks it is handed.
const HASHER_STACK: usize = 128 << 10;

/// Sends `len` bytes of `file` starting at `offset`.
pub fn send_file_range<T: ResponseSink>(
    io: &mut T,
    file: &File,
    offset: u64,
    len: u64,
    use_sendfile: bool,
) -> io::Result<()> {
    io.flush()?;
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows u64"))?;
    let mut pos = offset;
    if use_sendfile {
        if let Some(socket) = io.sendfile_socket() {
            while pos < end {
                let count = (end - pos).min(SENDFILE_CHUNK) as usize;
                match rustix::fs::sendfile(socket, file, Some(&mut pos), count) {
                    Ok(0) => return Err(short_file(pos, end)),
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => {}
                    // SO_SNDTIMEO expired on a blocking socket.
                    Err(rustix::io::Errno::AGAIN) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "client stopped reading (write timeout)",
                        ))
                    }
                    // The file system cannot sendfile: copy the rest by hand.
                    Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) if pos == offset => {
                        tracing::debug!("sendfile refused; falling back to read/write");
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if pos == end {
                return Ok(());
            }
        }
    }
    let mut buf = vec![0u8; COPY_BUF.min((end - pos) as usize)];
    read_chunks(file, pos, end - pos, &mut buf, &mut |chunk| {
        io.write_all(chunk)
    })?;
    io.flush()
}

/// Sends the whole blob in `ranges` through the copy loop while `check` verifies it:
/// a second thread hashes every chunk once it has been written, and the last chunk only
/// goes out once the digest of all of them matches. A mismatch is an error before that
/// chunk, so the caller closes the connection on a body one chunk short of its
/// `Content-Length`.
///
/// Why a second thread: hashing inline put one sha256 pass (≈ 0.6 s per GiB) between
/// the reads and the writes, so a first pull waited for it chunk by chunk; on its own
/// thread it overlaps the socket writes and only the last chunk (64 KiB) waits for it.
pub fn send_checked<T: ResponseSink>(
    io: &mut T,
    ranges: &[OpenRange],
    check: &Deferred,
) -> io::Result<()> {
    let total: u64 = ranges.iter().map(|r| r.len).sum();
    let chunk = CHECKED_CHUNK.min(total as usize).max(1);
    let mut hasher = check.hasher();
    let (to_hash, hash_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHECKED_BUFFERS);
    let (back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHECKED_BUFFERS + 1);
    std::thread::scope(|s| {
        let hashing = std::thread::Builder::new()
            .name("blob-hash".into())
            .stack_size(HASHER_STACK)
            .spawn_scoped(s, move || {
                for b in hash_rx {
                    hasher.update(&b);
                    let _ = back.try_send(b);
                }
                hasher
            })?;
        // Every chunk but the last: written, then hashed on the other thread.
        let mut left = total;
        let sent = (|| -> io::Result<Option<Vec<u8>>> {
            for r in ranges {
                let mut pos = r.offset;
                let end = r.offset + r.len;
                while pos < end {
                    let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; chunk]);
                    buf.resize(chunk.min((end - pos) as usize), 0);
                    r.file.read_exact_at(&mut buf, pos).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            short_file(pos, end)
                        } else {
                            e
                        }
                    })?;
                    pos += buf.len() as u64;
                    left -= buf.len() as u64;
                    if left == 0 {
                        return Ok(Some(buf));
                    }
                    io.write_all(&buf)?;
                    if to_hash.send(buf).is_err() {
                        return Err(io::Error::other("blob hasher stopped"));
                    }
                }
            }
            Ok(None)
        })();
        drop(to_hash);
        let mut hasher = hashing.join().expect("blob hasher thread");
        let Some(last) = sent? else {
            return Ok(()); // an empty blob: nothing to send
        };
        hasher.update(&last);
        if check.conclude(&mut hasher).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "blob is corrupt: response cut short before its last chunk",
            ));
        }
        io.write_all(&last)
    })?;
    io.flush()
}

/// Reads `len` bytes of `file` from `offset` through `buf` and hands them to `sink` in
/// order; a file shorter than the range is an error.
pub fn read_chunks(
    file: &File,
    offset: u64,
    len: u64,
    buf: &mut [u8],
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows u64"))?;
    let mut pos = offset;
    while pos < end {
        let want = buf.len().min((end - pos) as usize);
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => return Err(short_file(pos, end)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink(&buf[..n])?;
        pos += n as u64;
    }
    Ok(())
}

fn short_file(pos: u64, end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("blob file ends at byte {pos}, before byte {end}"),
    )
}
