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
    let mut out = Vec::new();
    if meta.is_dir() {
        let mut stack = vec![(src.to_path_buf(), dest.trim_end_matches('/').to_string())];
        while let Some((dir, d)) = stack.pop() {
            let mut ents: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .collect::<Result<_, _>>()?;
            ents.sort_by_key(|e| e.file_name());
            for e in ents.into_iter().rev() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let m = std::fs::metadata(&p)
                    .with_context(|| format!("COPY source {}", p.display()))?;
                if m.is_dir() {
                    stack.push((p, format!("{d}/{name}")));
                } else {
                    out.push(PlannedFile {
                        dest: host_path(&p, &format!("{d}/{name}"))?,
                        src: p,
                        mode: m.permissions().mode() & 0o777,
                        size: m.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.dest.cmp(&b.dest));
    } else {
        out.push(PlannedFile {
            src: src.to_path_buf(),
            dest: host_path(src, dest)?,
            mode: meta.permissions().mode() & 0o777,
            size: meta.len(),
        });
    }
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
    let mut input =
        std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let mut enc = zstd::stream::Encoder::new(BufWriter::new(tmp.reopen()?), 3)?;
    enc.include_checksum(true)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    enc.multithread(threads)?;
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?.flush()?;
    let csize = tmp.as_file().metadata()?.len();
    Ok(if csize * 10 < size * 9 {
        Some(tmp)
    } else {
        None
    })
}
