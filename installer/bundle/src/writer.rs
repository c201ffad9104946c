//! Writes a bundle: stub, then payload tar, then footer, in one sequential pass.
//!
//! Everything streams: entry data is copied from its source while being hashed, the payload
//! hash and every entry's offset come from a counting, hashing writer around the output, and
//! `bundle.json` is written last so that it can record every other entry's offset. The file
//! is written as `<out>.partial` and renamed into place only by [`BundleWriter::finish`];
//! dropping a writer early (on any error) removes the partial file.
//!
//! Tar headers are deterministic (mode from the caller, mtime 0, uid/gid 0, no user names),
//! so the same inputs give the same bytes. GNU headers carry sizes over 8 GiB in base-256.

use crate::digest::{HashingReader, HashingWriter, Sha256Digest};
use crate::error::{BundleError, Result};
use crate::footer::{Footer, FORMAT_VERSION};
use crate::manifest::{BundleManifest, EntryRecord, StubRecord};
use crate::paths::check_entry_path;
use crate::tarscan::padded;
use crate::MANIFEST_PATH;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const OUT_BUF: usize = 1 << 20;

pub struct BundleWriter {
    tar: Option<tar::Builder<HashingWriter<BufWriter<File>>>>,
    out: PathBuf,
    partial: PathBuf,
    stub: StubRecord,
    entries: Vec<EntryRecord>,
    paths: HashSet<String>,
    finished: bool,
}

impl BundleWriter {
    /// Starts `out` (as `out.partial`) with the installer stub copied from `stub`.
    pub fn create(out: &Path, stub: impl Read) -> Result<Self> {
        let partial = partial_path(out);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| BundleError::io(&partial, e))?;
        let mut w = BufWriter::with_capacity(OUT_BUF, file);
        let mut stub = HashingReader::new(stub);
        let res = io::copy(&mut stub, &mut w);
        let mut me = BundleWriter {
            tar: None,
            out: out.to_path_buf(),
            partial: partial.clone(),
            stub: StubRecord::default(),
            entries: Vec::new(),
            paths: HashSet::new(),
            finished: false,
        };
        res.map_err(|e| BundleError::io(&partial, e))?;
        let (sha, size) = stub.finish();
        me.stub = StubRecord {
            size,
            sha256: sha.hex(),
        };
        let mut tar = tar::Builder::new(HashingWriter::new(w));
        tar.mode(tar::HeaderMode::Deterministic);
        me.tar = Some(tar);
        Ok(me)
    }

    fn tar(&mut self) -> &mut tar::Builder<HashingWriter<BufWriter<File>>> {
        self.tar.as_mut().expect("writer used after finish")
    }

    /// Appends one entry of exactly `size` bytes read from `data`. Returns its record.
    pub fn add_entry(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        data: impl Read,
    ) -> Result<EntryRecord> {
        self.add_entry_as(path, size, mode, None, data)
    }

    /// Like [`Self::add_entry`], recording that the stored bytes are compressed (`zstd`).
    /// Compression itself is the builder's job: the installer must not link an encoder.
    pub fn add_entry_as(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        compression: Option<&str>,
        data: impl Read,
    ) -> Result<EntryRecord> {
        check_entry_path(path).map_err(|e| BundleError::entry(path, e))?;
        if path == MANIFEST_PATH || !self.paths.insert(path.to_string()) {
            return Err(BundleError::entry(path, "entry added twice"));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode & 0o777);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        let mut src = HashingReader::new(data.take(size));
        let partial = self.partial.clone();
        self.tar()
            .append_data(&mut header, path, &mut src)
            .map_err(|e| BundleError::io(&partial, e))?;
        let (sha, n) = src.finish();
        if n != size {
            return Err(BundleError::entry(
                path,
                format!(
                    "source gave {n} bytes, {size} were expected (did it change while being read?)"
                ),
            ));
        }
        let end = self.tar().get_ref().position();
        let rec = EntryRecord {
            path: path.to_string(),
            size,
            sha256: sha.hex(),
            offset: end - padded(size),
            compression: compression.map(str::to_string),
            mode: mode & 0o777,
        };
        self.entries.push(rec.clone());
        Ok(rec)
    }

    /// Appends an OCI blob under `oci/blobs/sha256/<hex>` unless it is already in the
    /// bundle. The bytes must hash to `digest`; otherwise the whole build fails, naming it.
    /// Returns false when the blob was already present (stored once, however many images
    /// share it).
    pub fn add_blob(&mut self, digest: &Sha256Digest, size: u64, data: impl Read) -> Result<bool> {
        let path = blob_path(digest);
        if self.paths.contains(&path) {
            return Ok(false);
        }
        let rec = self.add_entry(&path, size, 0o644, data)?;
        if rec.sha256 != digest.hex() {
            return Err(BundleError::EntryChecksum {
                entry: format!("blob {digest:?}"),
                expected: digest.hex(),
                found: rec.sha256,
            });
        }
        Ok(true)
    }

    pub fn has_entry(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// Bytes of payload written so far.
    pub fn payload_position(&mut self) -> u64 {
        self.tar().get_ref().position()
    }

    /// Writes bundle.json (with `entries` and `installer` filled in), the tar end marker and
    /// the footer, then renames the file into place. Returns the footer and the final manifest.
    pub fn finish(mut self, mut manifest: BundleManifest) -> Result<(Footer, BundleManifest)> {
        manifest.format = FORMAT_VERSION;
        manifest.installer = self.stub.clone();
        manifest.entries = std::mem::take(&mut self.entries);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        let partial = self.partial.clone();
        let io_err = |e| BundleError::io(&partial, e);
        let mut tar = self.tar.take().expect("finish once");
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, MANIFEST_PATH, &json[..])
            .map_err(io_err)?;
        let manifest_offset = tar.get_ref().position() - padded(json.len() as u64);
        let hw = tar.into_inner().map_err(io_err)?;
        let (mut w, payload_sha, payload_len) = hw.finish();
        let footer = Footer {
            version: FORMAT_VERSION,
            payload_offset: self.stub.size,
            payload_len,
            payload_sha256: payload_sha,
            manifest_offset,
            manifest_len: json.len() as u64,
            manifest_sha256: Sha256Digest::of(&json),
        };
        w.write_all(&footer.encode()).map_err(io_err)?;
        let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
        // The bundle is a program: `./delivery.run` must work straight after the build.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
            .map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&self.partial, &self.out).map_err(io_err)?;
        self.finished = true;
        Ok((footer, manifest))
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Entry path of an OCI blob.
pub fn blob_path(d: &Sha256Digest) -> String {
    format!("{}/blobs/sha256/{}", crate::OCI_DIR, d.hex())
}

fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}
