//! The builder's content cache: an OCI-layout-style blob store (`blobs/sha256/<hex>`).
//!
//! Every blob a pull needs (manifests, indexes, configs, layers) lands here first, named by
//! its digest, so a second build of the same Kubefile fetches nothing and the bundle writer
//! copies blobs straight from this directory.
//!
//! The one invariant: **a file under a digest's name has that digest.** Writers stream into a
//! temp file in the same directory and [`BlobWriter::commit`] renames it into place only after
//! the sha256 and size match what the descriptor promised (ocidir's pattern). A crash, a
//! truncated download or a tampered registry therefore leaves at most a stray temp file, never
//! a wrong blob under a right name. Because that invariant holds on write, a cache hit is
//! checked by size only (re-hashing gigabytes on every build would cost more than the
//! download it saves); [`ContentCache::verify`] re-hashes on demand.

use ferry_bundle::digest::{hash_reader, HashingWriter};
use ferry_bundle::writeback::WritebackFile;
use ferry_bundle::Sha256Digest;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Prefix of in-flight temp files inside `blobs/sha256/`; never a valid hex name.
const TEMP_PREFIX: &str = ".tmp-";

/// Why a blob could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("content cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("content has digest {actual:?}, expected {expected:?}; it was not stored")]
    DigestMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("content is {actual} bytes, expected {expected}; it was not stored")]
    SizeMismatch { expected: u64, actual: u64 },
}

/// A directory of blobs named by digest. Cheap to clone; safe to use from many threads
/// (each writer has its own temp file and renames are atomic, so two threads storing the
/// same blob simply both succeed).
#[derive(Debug, Clone)]
pub struct ContentCache {
    root: PathBuf,
}

impl ContentCache {
    /// Opens (creating if needed) a cache rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ContentCache, CacheError> {
        let cache = ContentCache { root: root.into() };
        let dir = cache.blob_dir();
        fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
            path: dir.clone(),
            source,
        })?;
        // Mark the directory as an OCI layout so standard tools can read the blobs.
        let layout = cache.root.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|source| {
                CacheError::Io {
                    path: layout,
                    source,
                }
            })?;
        }
        Ok(cache)
    }

    /// Opens the cache at [`ContentCache::default_dir`].
    pub fn open_default() -> Result<ContentCache, CacheError> {
        let dir = Self::default_dir().ok_or_else(|| CacheError::Io {
            path: PathBuf::from("~/.cache/ferry"),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "neither XDG_CACHE_HOME nor HOME is set; pass a cache directory explicitly",
            ),
        })?;
        Self::open(dir)
    }

    /// `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry` (the XDG default).
    pub fn default_dir() -> Option<PathBuf> {
        let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty());
        let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
        default_dir_from(xdg.map(PathBuf::from), home.map(PathBuf::from))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/blobs/sha256`.
    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where the blob with this digest lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// The blob's path if it is in the cache.
    pub fn path(&self, digest: &Sha256Digest) -> Option<PathBuf> {
        let p = self.blob_path(digest);
        p.is_file().then_some(p)
    }

    /// True if the blob is present with exactly `size` bytes: the cheap hit test used before
    /// every download (see the module doc for why size and not a re-hash).
    pub fn contains(&self, digest: &Sha256Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Reads a whole blob: for manifests and configs, which are small.
    pub fn read(&self, digest: &Sha256Digest) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|source| CacheError::Io { path, source })
    }

    /// Re-hashes a stored blob; true if its content still matches its name.
    pub fn verify(&self, digest: &Sha256Digest) -> Result<bool, CacheError> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        let (actual, _) = hash_reader(file).map_err(|source| CacheError::Io { path, source })?;
        Ok(actual == *digest)
    }

    /// Stores bytes already in memory, checking them against `expected` (and `size` if given).
    pub fn insert(
        &self,
        bytes: &[u8],
        expected: &Sha256Digest,
        size: Option<u64>,
    ) -> Result<PathBuf, CacheError> {
        let mut w = self.writer(*expected, size)?;
        w.write_all(bytes).map_err(|source| CacheError::Io {
            path: self.blob_dir(),
            source,
        })?;
        w.commit()
    }

    /// Starts writing a blob that must end up with digest `expected` and, if given, `size`
    /// bytes. Nothing appears under the digest's name until [`BlobWriter::commit`] succeeds;
    /// dropping the writer deletes the temp file.
    pub fn writer(
        &self,
        expected: Sha256Digest,
        size: Option<u64>,
    ) -> Result<BlobWriter, CacheError> {
        let dir = self.blob_dir();
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|source| CacheError::Io { path: dir, source })?;
        let file = tmp.reopen().map_err(|source| CacheError::Io {
            path: tmp.path().to_path_buf(),
            source,
        })?;
        Ok(BlobWriter {
            dest: self.blob_path(&expected),
            expected,
            size,
            // Committed with an fsync: writeback starts as the blob is written.
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, WritebackFile::new(file))),
            tmp,
        })
    }

    /// Deletes temp files left by crashed writers. Safe while no writer of this cache is
    /// active in another process; the builder calls it nowhere implicitly.
    pub fn remove_stale_temp_files(&self) -> Result<usize, CacheError> {
        let dir = self.blob_dir();
        let entries = fs::read_dir(&dir).map_err(|source| CacheError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn default_dir_from(xdg_cache: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    match (xdg_cache, home) {
        (Some(x), _) if x.is_absolute() => Some(x.join("ferry")),
        (_, Some(h)) => Some(h.join(".cache").join("ferry")),
        _ => None,
    }
}

/// A blob being written: hashes and counts while it writes, and only
/// [`commit`](BlobWriter::commit) gives it its digest name.
pub struct BlobWriter {
    dest: PathBuf,
    expected: Sha256Digest,
    size: Option<u64>,
    inner: HashingWriter<BufWriter<WritebackFile>>,
    tmp: NamedTempFile,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.position()
    }

    /// The size this blob must have, if known.
    pub fn expected_size(&self) -> Option<u64> {
        self.size
    }

    /// Checks digest and size, then atomically renames the temp file into place. On a
    /// mismatch the temp file is deleted and nothing is stored.
    pub fn commit(self) -> Result<PathBuf, CacheError> {
        let BlobWriter {
            dest,
            expected,
            size,
            inner,
            tmp,
        } = self;
        let (buf, actual, count) = inner.finish();
        let io_err = |source| CacheError::Io {
            path: tmp.path().to_path_buf(),
            source,
        };
        let file = buf
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?
            .into_inner();
        if let Some(size) = size {
            if count != size {
                return Err(CacheError::SizeMismatch {
                    expected: size,
                    actual: count,
                });
            }
        }
        if actual != expected {
            return Err(CacheError::DigestMismatch { expected, actual });
        }
        // Data before name: a power loss after the rename must not expose an empty file.
        file.sync_all().map_err(io_err)?;
        drop(file);
        tmp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, ContentCache) {
        let dir = tempfile::tempdir().unwrap();
        let c = ContentCache::open(dir.path().join("c")).unwrap();
        (dir, c)
    }

    fn temp_files(c: &ContentCache) -> usize {
        fs::read_dir(c.blob_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .count()
    }

    #[test]
    fn stores_under_digest_only_when_it_matches() {
        let (_d, c) = cache();
        let data = b"hello blob";
        let dg = Sha256Digest::of(data);
        assert!(c.path(&dg).is_none());
        let p = c.insert(data, &dg, Some(data.len() as u64)).unwrap();
        assert_eq!(p, c.blob_path(&dg));
        assert_eq!(c.path(&dg), Some(p.clone()));
        assert!(c.contains(&dg, data.len() as u64));
        assert!(!c.contains(&dg, 3));
        assert_eq!(c.read(&dg).unwrap(), data);
        assert!(c.verify(&dg).unwrap());
        assert!(c.root().join("oci-layout").is_file());
    }

    #[test]
    fn wrong_digest_or_size_leaves_nothing_behind() {
        let (_d, c) = cache();
        let want = Sha256Digest::of(b"the real thing");
        let err = c.insert(b"an impostor", &want, None).unwrap_err();
        assert!(matches!(err, CacheError::DigestMismatch { .. }), "{err}");
        let data = b"right bytes";
        let dg = Sha256Digest::of(data);
        let err = c.insert(data, &dg, Some(5)).unwrap_err();
        assert!(
            matches!(err, CacheError::SizeMismatch { expected: 5, .. }),
            "{err}"
        );
        assert!(c.path(&want).is_none());
        assert!(c.path(&dg).is_none());
        assert_eq!(temp_files(&c), 0);
    }

    #[test]
    fn abandoned_writer_leaves_no_blob() {
        let (_d, c) = cache();
        let dg = Sha256Digest::of(b"abc");
        let mut w = c.writer(dg, Some(3)).unwrap();
        w.write_all(b"ab").unwrap();
        assert_eq!(w.written(), 2);
        drop(w);
        assert!(c.path(&dg).is_none());
        assert_eq!(temp_files(&c), 0);
    }

    #[test]
    fn default_dir_follows_xdg() {
        assert_eq!(
            default_dir_from(Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/ferry"))
        );
        assert_eq!(
            default_dir_from(Some("rel".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/ferry"))
        );
        assert_eq!(default_dir_from(None, None), None);
    }
}
