//! `COPY` sources: files and directories from the build context into `files/rootfs/…`.
//! Each file is zstd-compressed (multi-threaded, checksummed) when that saves at least
//! 10%; already-compressed content is stored as-is rather than burning CPU for nothing.

use anyhow::{Context, Result};
use ferry_bundle::paths::HostPath;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct PlannedFile {
    pub src: PathBuf,
    /// Absolute destination on the host.
    pub dest: HostPath,
    pub mode: u32,
    pub size: u64,
}

/// The destination of one file, checked as the installer will check it: the builder
/// refuses to make a bundle the installer would refuse.
fn host_path(src: &Path, dest: &str) -> Result<HostPath> {
    let p = HostPath::new(dest).with_context(|| format!("COPY {}", src.display()))?;
    if p.is_root() {
        anyhow::bail!(
            "COPY {}: a file cannot be copied to / itself",
            src.display()
        );
    }
    Ok(p)
}

/// Expands a COPY of a file or a directory (recursively, sorted, symlinks followed) to
/// `dest` (for a directory: the directory its files go under; `/` is allowed).
pub fn plan_copy(src: &Path, dest: &str) -> Result<Vec<PlannedFile>> {
    let meta = std::fs::metadata(src).with_context(|| format!("COPY source {}", src.display()))?;
    let files = if meta.is_dir() {
        let d = dest.trim_end_matches('/');
        walk_sorted(src)?
            .into_iter()
            .map(|(rel, p)| (p, format!("{d}/{rel}")))
            .collect()
    } else {
        vec![(src.to_path_buf(), dest.to_string())]
    };
    let mut out = Vec::new();
    for (p, dest) in files {
        let m = std::fs::metadata(&p).with_context(|| format!("COPY source {}", p.display()))?;
        out.push(PlannedFile {
            dest: host_path(&p, &dest)?,
            mode: m.permissions().mode() & 0o777,
            size: m.len(),
            src: p,
        });
    }
    Ok(out)
}

/// Every regular file below `dir` (symlinks followed) as `(relative path with '/',
/// path)`, sorted by relative path: the one order in which the build reads a directory
/// (COPY, chart packing, tree hashes in `ferry.lock`), so that the bundle does not depend
/// on the order the file system lists entries in.
pub fn walk_sorted(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let p = e.path();
            let rel = format!("{prefix}{}", e.file_name().to_string_lossy());
            let m = std::fs::metadata(&p).with_context(|| format!("reading {}", p.display()))?;
            if m.is_dir() {
                stack.push((p, format!("{rel}/")));
            } else if m.is_file() {
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

const NO_GAIN: [&str; 11] = [
    "gz", "tgz", "zst", "xz", "bz2", "zip", "deb", "rpm", "png", "jpg", "7z",
];

/// Compresses `src` into a temporary file in `tmp_dir` when that helps; returns it.
pub fn compress_if_helps(
    src: &Path,
    size: u64,
    tmp_dir: &Path,
) -> Result<Option<tempfile::NamedTempFile>> {
    let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("");
    if size < 512 || NO_GAIN.contains(&ext) {
        return Ok(None);
    }
    let tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
    let input = std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    zstd_frame(input, BufWriter::new(tmp.reopen()?), threads)?;
    let csize = tmp.as_file().metadata()?.len();
    Ok(if csize * 10 < size * 9 {
        Some(tmp)
    } else {
        None
    })
}

/// One zstd frame of `input` (level 3, content checksum) with `workers` compression
/// threads. The parameters are fixed and the frame does not depend on the number of
/// workers (zstd cuts multi-threaded jobs by size, not by thread; a test checks it), so a
/// file compresses to the same bytes on every builder.
fn zstd_frame(mut input: impl std::io::Read, out: impl Write, workers: u32) -> Result<()> {
    let mut enc = zstd::stream::Encoder::new(out, 3)?;
    enc.include_checksum(true)?;
    enc.multithread(workers.max(1))?;
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_does_not_depend_on_the_thread_count() {
        // 24 MiB of compressible but varied text: several multi-threaded jobs.
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..24 << 20)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 7 == 0 {
                    b'a' + (x % 26) as u8
                } else {
                    b' ' + (i % 50) as u8
                }
            })
            .collect();
        let frame = |workers| {
            let mut out = Vec::new();
            zstd_frame(&data[..], &mut out, workers).unwrap();
            out
        };
        let one = frame(1);
        assert!(one.len() < data.len() / 2);
        assert_eq!(one, frame(2));
        assert_eq!(one, frame(5));
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}
