//! Writes a bundle: stub, then payload tar, then footer, in one sequential pass.
//!
//! Everything streams: entry data is copied from its source while being hashed, and the
//! writer frames the tar itself so that it knows which bytes are entry data and which are
//! gaps (headers, padding, end marker): the former are hashed per entry, the latter into
//! the footer's gaps hash; the payload's identity is derived from those hashes
//! ([`crate::footer::derived_identity`]), so no byte is hashed twice. `bundle.json` is written last
//! so that it can record every other entry's offset. The file is written as
//! `<out>.partial` and renamed into place only by [`BundleWriter::finish`]; dropping a
//! writer early (on any error) removes the partial file.
//!
//! Tar headers are GNU and deterministic (mode from the caller, mtime 0, uid/gid 0, no
//! user names), so the same inputs give the same bytes. Sizes over 8 GiB use base-256;
//! paths over 100 bytes a GNU `L` long-name record.
//!
//! With a signer, [`BundleWriter::finish_with`] signs bundle.json's bytes and writes the
//! signature as the tar entry `bundle.json.sig` after it ([`crate::signature`]). With
//! [`WriterOptions::split`], the same byte stream is cut into parts as it is written
//! (each part hashed on the way) and the part table goes in front of the footer
//! ([`crate::parts`]); nothing is written twice.

use crate::background::BackgroundFile;
use crate::digest::{HashingReader, Sha256Digest};
use crate::error::{BundleError, Result};
use crate::footer::{derived_identity, Footer, SignatureRange, FOOTER_LEN, FORMAT_VERSION};
use crate::manifest::{BundleManifest, EntryRecord, StubRecord};
use crate::parts::{files_named_as_parts, part_path, PartRow, PartTable, MAX_PARTS};
use crate::paths::check_entry_path;
use crate::tarscan::padded;
use crate::MANIFEST_PATH;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Largest installer stub accepted (the real ones are a few MiB).
const MAX_STUB: u64 = 64 << 20;

/// Smallest part `--split` may ask for: the part table and footer must fit in one.
pub const MIN_PART_SIZE: u64 = 1 << 20;

/// How to write the bundle.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// Cut the bundle into parts of at most this many bytes (part 1 is at least the
    /// installer stub, which must be whole to run).
    pub split: Option<u64>,
}

/// How [`BundleWriter::add_blob_checked`] knows a blob's bytes match its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCheck {
    /// Hash the bytes as they are written; a mismatch fails the bundle, naming the blob.
    Hash,
    /// The caller has already checked the bytes against the digest and vouches for them:
    /// a content store that verified each blob when storing it and names it by its digest
    /// (the builder's cache). The writer records the digest as the entry's sha256 without
    /// hashing again. A false vouch makes a bundle whose entry fails `--check` and the
    /// installer's verification, so only a store with that invariant may vouch.
    Vouched,
}

/// Signs bundle.json's exact bytes; returns the DER signature.
pub type Signer<'a> = &'a dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, String>;

/// What [`BundleWriter::finish_with`] wrote.
#[derive(Debug, Clone)]
pub struct Finished {
    pub footer: Footer,
    pub manifest: BundleManifest,
    /// The files written: the bundle, or its parts in order.
    pub parts: Vec<PathBuf>,
    /// Total bytes (all parts).
    pub size: u64,
}

/// The output files: one, or parts cut every `part_size` bytes, each hashed for the part
/// table as it is written — except part 1, hashed from its file once the stub's size
/// marker is filled in (its value, part 1's size, is known only near the end).
struct Sink {
    dest: PathBuf,
    part_size: Option<u64>,
    /// Part 1's size limit: `part_size`, or the stub's size if that is larger.
    first_limit: u64,
    /// Partial files written so far (the last is `cur`).
    partials: Vec<PathBuf>,
    /// Written by a thread of its own, off the hashing thread ([`crate::background`]).
    cur: BackgroundFile,
    cur_len: u64,
    cur_hash: Sha256,
    rows: Vec<PartRow>,
    /// While true (the stub), part 1 is not cut: it must hold the whole program.
    hold: bool,
}

impl Sink {
    fn create(dest: &Path, part_size: Option<u64>) -> io::Result<Sink> {
        let partial = partial_path(dest);
        Ok(Sink {
            dest: dest.to_path_buf(),
            part_size,
            first_limit: u64::MAX,
            cur: BackgroundFile::new(create(&partial)?)?,
            partials: vec![partial],
            cur_len: 0,
            cur_hash: Sha256::new(),
            rows: Vec::new(),
            hold: true,
        })
    }

    /// The stub is written: from here on part 1 may end (at `part_size`, or right
    /// after the stub if that is larger).
    fn release(&mut self) {
        self.hold = false;
        if let Some(s) = self.part_size {
            self.first_limit = s.max(self.cur_len);
        }
    }

    /// Bytes the current part may still take.
    fn room(&self) -> u64 {
        match self.part_size {
            _ if self.hold => u64::MAX,
            Some(_) if self.rows.is_empty() => self.first_limit.saturating_sub(self.cur_len),
            Some(limit) => limit.saturating_sub(self.cur_len),
            None => u64::MAX,
        }
    }

    /// The size part 1 will have (the whole bundle's when it stays one file), with `rest`
    /// more payload bytes to come; [`Sink::finish`] cuts the parts accordingly.
    fn first_part_len(&self, rest: u64) -> u64 {
        if let Some(first) = self.rows.first() {
            return first.size;
        }
        let end = self.cur_len + rest;
        if end + FOOTER_LEN as u64 <= self.first_limit {
            end + FOOTER_LEN as u64
        } else {
            end.min(self.first_limit)
        }
    }

    /// Ends the current part (its size and sha256 go into the table) and starts the next.
    fn next_part(&mut self) -> io::Result<()> {
        self.cur.flush()?;
        self.rows.push(PartRow {
            size: self.cur_len,
            sha256: Sha256Digest(std::mem::take(&mut self.cur_hash).finalize().into()),
        });
        let index = self.partials.len() + 1;
        if index > MAX_PARTS as usize {
            return Err(io::Error::other(format!(
                "the bundle would need more than {MAX_PARTS} parts; choose a larger --split size"
            )));
        }
        let partial = partial_path(&part_path(&self.dest, index));
        self.cur = BackgroundFile::new(create(&partial)?)?;
        self.partials.push(partial);
        self.cur_len = 0;
        Ok(())
    }

    /// Writes the part table (when split) and the footer, which must be in the last
    /// part whole: a part that cannot take them ends here and one more holds them. Fills
    /// in the stub's size marker (`marker`: its offset and bytes) in part 1.
    fn finish(&mut self, mut footer: Footer, marker: Option<(u64, &[u8])>) -> io::Result<Footer> {
        use std::os::unix::fs::FileExt;
        if self.part_size.is_some() {
            let need = match self.rows.len() {
                0 => FOOTER_LEN as u64,
                n => PartTable::encoded_len(n as u32 + 1) + FOOTER_LEN as u64,
            };
            if self.room() < need {
                self.next_part()?;
            }
        }
        if self.rows.is_empty() {
            // Everything fit in one part: an ordinary bundle.
            footer.part_count = 0;
            self.cur.write_all(&footer.encode())?;
            self.cur.flush()?;
            if let Some((at, bytes)) = marker {
                self.cur.file().write_all_at(bytes, at)?;
            }
            return Ok(footer);
        }
        let n = self.rows.len() as u32 + 1;
        let trailer = PartTable::encoded_len(n) + FOOTER_LEN as u64;
        let mut rows = std::mem::take(&mut self.rows);
        rows.push(PartRow {
            size: self.cur_len + trailer,
            sha256: Sha256Digest(std::mem::take(&mut self.cur_hash).finalize().into()),
        });
        let first = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.partials[0])?;
        if let Some((at, bytes)) = marker {
            first.write_all_at(bytes, at)?;
        }
        rows[0].sha256 = crate::digest::hash_reader(&first)?.0;
        footer.part_count = n;
        self.cur.write_all(&PartTable { rows }.encode())?;
        self.cur.write_all(&footer.encode())?;
        self.cur.flush()?;
        Ok(footer)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.room() == 0 {
            self.next_part()?;
        }
        let n = (buf.len() as u64).min(self.room()) as usize;
        let n = self.cur.write(&buf[..n])?;
        // Part 1 is hashed from its file at the end (see the type's doc).
        if !self.rows.is_empty() {
            self.cur_hash.update(&buf[..n]);
        }
        self.cur_len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.cur.flush()
    }
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// The output with the gaps hash (entries are hashed by whoever adds them).
struct Out {
    w: Sink,
    gaps: Sha256,
    pos: u64,
}

impl Out {
    fn gap(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.gaps.update(b);
        self.pos += b.len() as u64;
        Ok(())
    }
    fn data(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
}

pub struct BundleWriter {
    out: Out,
    dest: PathBuf,
    /// The first part's partial file (named in errors).
    partial: PathBuf,
    stub: StubRecord,
    /// The stub's bytes (a few MiB), kept to write the bundle's size into its marker.
    stub_bytes: Vec<u8>,
    /// Where the size marker is in the stub ([`crate::marker`]), if it has one.
    marker: Option<usize>,
    /// Building a delta: the base, and what is inherited from it ([`crate::delta`]).
    base: Option<crate::reader::Bundle>,
    inherited: Vec<EntryRecord>,
    entries: Vec<EntryRecord>,
    paths: HashSet<String>,
    finished: bool,
    buf: Vec<u8>,
}

impl BundleWriter {
    /// Starts `out` (as `out.partial`) with the installer stub copied from `stub`.
    pub fn create(out: &Path, stub: impl Read) -> Result<Self> {
        Self::create_with(out, stub, WriterOptions::default())
    }

    /// [`Self::create`] with options (split into parts).
    pub fn create_with(out: &Path, stub: impl Read, opts: WriterOptions) -> Result<Self> {
        let partial = partial_path(out);
        if let Some(size) = opts.split {
            if size < MIN_PART_SIZE {
                return Err(BundleError::Other(format!(
                    "parts of {size} bytes are too small: the smallest is {MIN_PART_SIZE} bytes (1M)"
                )));
            }
        }
        let sink = Sink::create(out, opts.split).map_err(|e| BundleError::io(&partial, e))?;
        let mut me = BundleWriter {
            out: Out {
                w: sink,
                gaps: Sha256::new(),
                pos: 0,
            },
            dest: out.to_path_buf(),
            partial: partial.clone(),
            stub: StubRecord::default(),
            stub_bytes: Vec::new(),
            marker: None,
            base: None,
            inherited: Vec::new(),
            entries: Vec::new(),
            paths: HashSet::new(),
            finished: false,
            buf: vec![0u8; 1 << 20],
        };
        let mut stub = HashingReader::new(stub.take(MAX_STUB + 1));
        stub.read_to_end(&mut me.stub_bytes)
            .map_err(|e| BundleError::io(&partial, e))?;
        if me.stub_bytes.len() as u64 > MAX_STUB {
            return Err(BundleError::Other(format!(
                "the installer stub is larger than {MAX_STUB} bytes; is it really a ferry installer?"
            )));
        }
        me.out
            .w
            .write_all(&me.stub_bytes)
            .map_err(|e| BundleError::io(&partial, e))?;
        // Part 1 ends no earlier than the stub: it is the program that runs.
        me.out.w.release();
        let (sha, size) = stub.finish();
        me.stub = StubRecord { size, sha256: sha };
        me.marker = crate::marker::find(&me.stub_bytes);
        Ok(me)
    }

    fn io_err(&self) -> impl Fn(io::Error) -> BundleError + '_ {
        move |e| BundleError::io(&self.partial, e)
    }

    /// Writes the header block(s) for a regular file.
    fn header(&mut self, path: &str, size: u64, mode: u32) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        if path.len() > 100 {
            let mut l = tar::Header::new_gnu();
            l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            l.set_mode(0o644);
            l.set_mtime(0);
            l.set_uid(0);
            l.set_gid(0);
            l.set_size(path.len() as u64 + 1);
            l.set_entry_type(tar::EntryType::GNULongName);
            l.set_cksum();
            self.out.gap(l.as_bytes())?;
            let mut name = path.as_bytes().to_vec();
            name.push(0);
            let pad = padded(name.len() as u64) as usize - name.len();
            name.extend(std::iter::repeat_n(0u8, pad));
            self.out.gap(&name)?;
            h.as_old_mut().name.copy_from_slice(&path.as_bytes()[..100]);
        } else {
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        }
        h.set_mode(mode & 0o777);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.out.gap(h.as_bytes())
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
        let same_place = self
            .base
            .as_ref()
            .and_then(|b| b.entry(path))
            .filter(|e| e.size == size && e.compression.as_deref() == compression)
            .cloned();
        let mut data: Box<dyn Read + '_> = Box::new(data);
        let mut known = None;
        if let Some(be) = same_place {
            // The base has an entry of this size here: spool the bytes aside while hashing
            // them, and inherit the base's entry if they are the same.
            let (spool, sha) = self.spool(path, &mut data, size)?;
            if sha == be.sha256 {
                self.inherited.push(be.clone());
                return Ok(be);
            }
            data = Box::new(spool);
            known = Some(sha);
        }
        self.write_entry(path, size, mode, compression, data, known)
    }

    /// Writes one entry's header, data and padding and records it. Its sha256 is `known`
    /// when given (the bytes were hashed already: spooled here, or [`BlobCheck::Vouched`]),
    /// else hashed as the bytes pass.
    fn write_entry(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        compression: Option<&str>,
        mut data: impl Read,
        known: Option<Sha256Digest>,
    ) -> Result<EntryRecord> {
        self.header(path, size, mode).map_err(self.io_err())?;
        let offset = self.out.pos;
        let mut h = known.is_none().then(Sha256::new);
        let mut left = size;
        let mut buf = std::mem::take(&mut self.buf);
        let res = (|| -> io::Result<()> {
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                let n = data.read(&mut buf[..want])?;
                if n == 0 {
                    break;
                }
                if let Some(h) = &mut h {
                    h.update(&buf[..n]);
                }
                self.out.data(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        })();
        self.buf = buf;
        res.map_err(|e| BundleError::entry(path, format!("reading source: {e}")))?;
        if left > 0 {
            return Err(BundleError::entry(
                path,
                format!(
                    "source gave {} bytes, {size} were expected (did it change while being read?)",
                    size - left
                ),
            ));
        }
        let pad = (padded(size) - size) as usize;
        self.out.gap(&[0u8; 512][..pad]).map_err(self.io_err())?;
        let sha256 = match (known, h) {
            (Some(d), _) => d,
            (None, Some(h)) => Sha256Digest(h.finalize().into()),
            (None, None) => unreachable!("a hasher whenever no digest is known"),
        };
        let rec = EntryRecord {
            path: path.to_string(),
            size,
            sha256,
            offset,
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
        self.add_blob_checked(digest, size, BlobCheck::Hash, data)
    }

    /// [`Self::add_blob`], saying how the bytes are known to match `digest`: hashed here
    /// ([`BlobCheck::Hash`]), or vouched for by the caller ([`BlobCheck::Vouched`]), which
    /// skips a pass over every byte. The size is checked either way.
    pub fn add_blob_checked(
        &mut self,
        digest: &Sha256Digest,
        size: u64,
        check: BlobCheck,
        data: impl Read,
    ) -> Result<bool> {
        let path = crate::paths::blob_entry(digest);
        if self.paths.contains(&path) {
            return Ok(false);
        }
        // A blob is its digest: if the base holds it, the delta inherits it unread.
        if let Some(be) = self.base.as_ref().and_then(|b| b.entry(&path)).cloned() {
            self.paths.insert(path);
            self.inherited.push(be);
            return Ok(false);
        }
        if let BlobCheck::Vouched = check {
            check_entry_path(&path).map_err(|e| BundleError::entry(&path, e))?;
            self.paths.insert(path.clone());
            self.write_entry(&path, size, 0o644, None, data, Some(*digest))?;
            return Ok(true);
        }
        let rec = self.add_entry(&path, size, 0o644, data)?;
        if rec.sha256 != *digest {
            return Err(BundleError::EntryChecksum {
                entry: format!("blob {digest}"),
                expected: Box::new(*digest),
                found: Box::new(rec.sha256),
            });
        }
        Ok(true)
    }

    /// Makes this a delta of `base`: entries the base holds unchanged are not written
    /// but recorded as inherited ([`crate::delta`]).
    pub fn set_base(&mut self, base: crate::reader::Bundle) {
        self.base = Some(base);
    }

    /// Bytes inherited from the base so far (what the delta saves).
    pub fn inherited_bytes(&self) -> u64 {
        self.inherited.iter().map(|e| e.size).sum()
    }

    /// Reads `size` bytes of `data` into a scratch file beside the output while hashing
    /// them; returns the file (rewound) and the digest.
    fn spool(&self, path: &str, data: &mut dyn Read, size: u64) -> Result<(File, Sha256Digest)> {
        let mut p = self.partial.as_os_str().to_owned();
        p.push(".spool");
        let spool_path = PathBuf::from(p);
        let fail = |e: io::Error| BundleError::entry(path, format!("spooling: {e}"));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&spool_path)
            .map_err(fail)?;
        let _ = std::fs::remove_file(&spool_path);
        let mut h = HashingReader::new(data.take(size));
        io::copy(&mut h, &mut f).map_err(fail)?;
        let (sha, n) = h.finish();
        if n != size {
            return Err(BundleError::entry(
                path,
                format!("source gave {n} bytes, {size} were expected"),
            ));
        }
        use std::io::Seek;
        f.rewind().map_err(fail)?;
        Ok((f, sha))
    }

    pub fn has_entry(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// Bytes of payload written so far.
    pub fn payload_position(&self) -> u64 {
        self.out.pos
    }

    /// Writes bundle.json (with `entries` and `installer` filled in), the tar end marker and
    /// the footer, then renames the file into place. Returns the footer and the final manifest.
    pub fn finish(self, manifest: BundleManifest) -> Result<(Footer, BundleManifest)> {
        let f = self.finish_with(manifest, None)?;
        Ok((f.footer, f.manifest))
    }

    /// [`Self::finish`], signing bundle.json with `signer` when given; `manifest.signer`
    /// must then name the signer's public key (the signature is checked against it
    /// before anything is renamed into place).
    pub fn finish_with(
        mut self,
        mut manifest: BundleManifest,
        signer: Option<Signer<'_>>,
    ) -> Result<Finished> {
        manifest.format = FORMAT_VERSION;
        manifest.installer = self.stub.clone();
        manifest.entries = std::mem::take(&mut self.entries);
        if let Some(base) = &self.base {
            manifest.delta = Some(crate::manifest::DeltaRecord {
                base: base.footer.payload_sha256,
                base_name: base.manifest.name.clone(),
                base_version: base.manifest.version.clone(),
                inherited: std::mem::take(&mut self.inherited),
            });
        }
        if manifest.signer.is_some() != signer.is_some() {
            return Err(BundleError::Other(
                "bundle.json names a signer key but no signer was given, or the other way round"
                    .into(),
            ));
        }
        // The size of the file the stub is in (the whole bundle, or part 1 of a split one)
        // goes into the stub's marker, and the stub's sha256 into bundle.json: bundle.json's
        // length does not depend on that sha256 (fixed-width hex), nor the signature's
        // padded length on its bytes, so the sizes are known before bundle.json is made.
        let draft = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        let sig_blocks = if signer.is_some() { 1024 } else { 0 };
        let payload_len = self.out.pos + 512 + padded(draft.len() as u64) + sig_blocks + 1024;
        let first_len = self.out.w.first_part_len(payload_len - self.out.pos);
        if let Some(at) = self.marker {
            self.stub_bytes[at..at + crate::marker::MARKER_LEN]
                .copy_from_slice(&crate::marker::encode(first_len));
            manifest.installer.sha256 = Sha256Digest::of(&self.stub_bytes);
            self.stub.sha256 = manifest.installer.sha256;
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        debug_assert_eq!(json.len(), draft.len());
        let partial = self.partial.clone();
        let io_err = |e| BundleError::io(&partial, e);
        self.header(MANIFEST_PATH, json.len() as u64, 0o644)
            .map_err(io_err)?;
        let manifest_offset = self.out.pos;
        // bundle.json's bytes are covered by the footer's manifest hash, not the gaps hash.
        self.out.data(&json).map_err(io_err)?;
        let pad = (padded(json.len() as u64) - json.len() as u64) as usize;
        self.out.gap(&[0u8; 512][..pad]).map_err(io_err)?;
        let mut signature = None;
        let mut signature_bytes = Vec::new();
        if let (Some(sign), Some(rec)) = (signer, &manifest.signer) {
            let sig = sign(&json)
                .map_err(|e| BundleError::Signature(format!("signing bundle.json: {e}")))?;
            if !rec.key.verifies(&json, &sig) {
                return Err(BundleError::Signature(format!(
                    "the signature made does not verify with the key bundle.json names ({})",
                    rec.key.fingerprint()
                )));
            }
            self.header(crate::signature::SIGNATURE_PATH, sig.len() as u64, 0o644)
                .map_err(io_err)?;
            signature = Some(SignatureRange {
                offset: self.out.pos,
                len: sig.len() as u32,
            });
            // Checked by verifying it; in no hash but the identity's.
            self.out.data(&sig).map_err(io_err)?;
            let pad = (padded(sig.len() as u64) - sig.len() as u64) as usize;
            self.out.gap(&[0u8; 512][..pad]).map_err(io_err)?;
            signature_bytes = sig;
        }
        self.out.gap(&[0u8; 1024]).map_err(io_err)?;
        let payload_len = self.out.pos;
        let manifest_sha256 = Sha256Digest::of(&json);
        let gaps_sha256 = Sha256Digest(std::mem::take(&mut self.out.gaps).finalize().into());
        let footer = Footer {
            version: FORMAT_VERSION,
            payload_offset: self.stub.size,
            payload_len,
            payload_sha256: derived_identity(&manifest_sha256, &gaps_sha256, &signature_bytes),
            manifest_offset,
            manifest_len: json.len() as u64,
            manifest_sha256,
            gaps_sha256,
            signature,
            part_count: 0,
        };
        if payload_len != self.out.pos {
            return Err(BundleError::Other(format!(
                "internal: predicted payload length {payload_len}, wrote {}",
                self.out.pos
            )));
        }
        let marker = self.marker.map(|at| {
            (
                at as u64,
                &self.stub_bytes[at..at + crate::marker::MARKER_LEN],
            )
        });
        let footer = self.out.w.finish(footer, marker).map_err(io_err)?;
        // The bundle is a program: `./delivery.run` must work straight after the build.
        use std::os::unix::fs::PermissionsExt;
        let mut parts = Vec::new();
        let mut size = 0;
        for (i, partial) in self.out.w.partials.iter().enumerate() {
            let f = File::open(partial).map_err(|e| BundleError::io(partial, e))?;
            if i == 0 {
                f.set_permissions(std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| BundleError::io(partial, e))?;
            }
            f.sync_all().map_err(|e| BundleError::io(partial, e))?;
            size += f.metadata().map_err(|e| BundleError::io(partial, e))?.len();
            parts.push(part_path(&self.dest, i + 1));
        }
        for (partial, dest) in self.out.w.partials.iter().zip(&parts) {
            std::fs::rename(partial, dest).map_err(|e| BundleError::io(partial, e))?;
        }
        self.finished = true;
        remove_stale_parts(&self.dest, parts.len());
        Ok(Finished {
            footer,
            manifest,
            parts,
            size,
        })
    }
}

/// Removes `<dest>.NNN` files beyond this build's `count` parts (left by an earlier build
/// with the same name), so every part beside the bundle is this build's.
fn remove_stale_parts(dest: &Path, count: usize) {
    for (n, path) in files_named_as_parts(dest) {
        if n > count {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !self.finished {
            for p in &self.out.w.partials {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Where a bundle being written to `out` is, until it is complete: `<out>.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}
