//! Opens a bundle in place: finds the footer at the end of the file, reads and checks
//! `bundle.json`, and hands out byte ranges of entries. Opening costs two small reads
//! however large the bundle is; checking every byte is [`crate::verify`]'s job.
//!
//! Opening also parses bundle.json into its typed form (every image name, digest and
//! destination validated: see [`crate::manifest`]) and builds the entry index once, so
//! [`Bundle::entry`] and [`Bundle::blob_entry`] cost O(1) however many entries there
//! are (extracting 40k entries was quadratic with a linear search per entry).
//!
//! A split bundle is opened from its first part: when that file does not end with a
//! footer, its parts `<name>.002`, `<name>.003`, … are looked up beside it until one ends
//! with the footer, and the part table there is compared with what was found, so a
//! missing or cut-short part is named before anything else happens ([`crate::parts`]).
use crate::error::{BundleError, Result};
use crate::footer::{Footer, FooterProblem, FOOTER_LEN, FORMAT_VERSION};
use crate::manifest::{BundleManifest, EntryRecord};
use crate::parts::{files_named_as_parts, part_path, BundleFile, PartTable, MAX_PARTS};
use crate::paths::check_entry_path;
use crate::signature::PublicKey;
use crate::subfile::SubFile;
use crate::Sha256Digest;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest bundle.json accepted (300 images × thousands of entries fits in a few MiB).
pub const MAX_MANIFEST: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle's (first part's) file as the operator names it.
    pub path: PathBuf,
    /// Its bytes: the file, or every part of a split bundle as one address space.
    pub file: Arc<BundleFile>,
    /// Length of the whole bundle (all parts together).
    pub file_len: u64,
    pub footer: Footer,
    pub manifest: BundleManifest,
    /// The part table of a bundle built with `--split` (kept when the parts are joined).
    pub part_table: Option<PartTable>,
    /// Entry path → index in `manifest.entries`.
    index: HashMap<String, usize>,
    /// A delta bundle's base, once attached ([`Bundle::attach_base`]).
    pub base: Option<Box<Bundle>>,
}

/// Whether a bundle is signed, once its signature has been checked against bundle.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Unsigned,
    /// `bundle.json.sig` verifies with this key, which bundle.json names as its signer.
    Signed(PublicKey),
}

impl Bundle {
    pub fn open(path: &Path) -> Result<Bundle> {
        Bundle::open_named(path, path)
    }

    /// Opens the bundle in the file at `open`, naming it `name` in messages; the parts of
    /// a split bundle are looked up beside `name` (the installer opens `/proc/self/exe`,
    /// the file it was started from, whose real name is where its parts are).
    pub fn open_named(open: &Path, name: &Path) -> Result<Bundle> {
        let first = File::open(open).map_err(|e| BundleError::io(name, e))?;
        let (file, footer) = open_parts(first, name)?;
        let file = Arc::new(file);
        let file_len = file.len();
        let part_table = read_part_table(&file, &footer, name)?;
        if footer.manifest_len > MAX_MANIFEST {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "{} bytes is larger than the {MAX_MANIFEST} allowed",
                    footer.manifest_len
                ),
            });
        }
        let bytes = read_manifest(&file, &footer, name)?;
        let manifest: BundleManifest =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::BadManifest {
                reason: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        if manifest.format != footer.version {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "format {} differs from the footer's {}",
                    manifest.format, footer.version
                ),
            });
        }
        if manifest.installer.size != footer.payload_offset {
            return Err(BundleError::BadManifest {
                reason: format!(
                    "installer size {} differs from the payload offset {} in the footer",
                    manifest.installer.size, footer.payload_offset
                ),
            });
        }
        let mut b = Bundle::from_parts(name.to_path_buf(), file, file_len, footer, manifest)?;
        b.part_table = part_table;
        Ok(b)
    }

    /// A bundle from parts already read and checked elsewhere (the fuzz targets build
    /// one from a forged bundle.json): the entry table is checked as [`Bundle::open`]
    /// checks it.
    pub fn from_parts(
        path: PathBuf,
        file: Arc<BundleFile>,
        file_len: u64,
        footer: Footer,
        manifest: BundleManifest,
    ) -> Result<Bundle> {
        let index = check_layout(
            &manifest.entries,
            footer.manifest_offset,
            footer.payload_len,
        )?;
        if let Some(sbom) = &manifest.sbom {
            let inherited = manifest
                .delta
                .as_ref()
                .is_some_and(|d| d.inherited.iter().any(|e| &e.path == sbom));
            if !index.contains_key(sbom) && !inherited {
                return Err(BundleError::BadManifest {
                    reason: format!("sbom names entry {sbom:?}, which is not in entries[]"),
                });
            }
        }
        Ok(Bundle {
            path,
            file,
            file_len,
            footer,
            manifest,
            part_table: None,
            index,
            base: None,
        })
    }

    /// The payload (tar) as a stream.
    pub fn payload(&self) -> SubFile {
        SubFile::new(
            self.file.clone(),
            self.footer.payload_offset,
            self.footer.payload_len,
        )
    }

    /// Absolute offset (in the whole bundle) of an entry's first byte.
    pub fn absolute_offset(&self, e: &EntryRecord) -> u64 {
        self.footer.payload_offset + e.offset
    }

    /// An entry's stored bytes as a stream (not verified: see [`crate::verify`]).
    pub fn open_entry(&self, e: &EntryRecord) -> SubFile {
        SubFile::new(self.file.clone(), self.absolute_offset(e), e.size)
    }

    /// Where an entry's bytes lie: one range per file (part) they are in.
    pub fn entry_ranges(&self, e: &EntryRecord) -> Vec<crate::parts::FileRange> {
        self.file.ranges(self.absolute_offset(e), e.size)
    }

    /// The entry at `path`, if the bundle has one (O(1)).
    pub fn entry(&self, path: &str) -> Option<&EntryRecord> {
        self.index.get(path).map(|&i| &self.manifest.entries[i])
    }

    /// The entry that holds an OCI blob, if the bundle carries it (O(1)).
    pub fn blob_entry(&self, digest: &Sha256Digest) -> Option<&EntryRecord> {
        self.entry(&crate::paths::blob_entry(digest))
    }

    /// Every OCI blob the bundle carries, with its entry.
    pub fn blobs(&self) -> impl Iterator<Item = (Sha256Digest, &EntryRecord)> {
        self.manifest
            .entries
            .iter()
            .filter_map(|e| crate::paths::blob_digest(&e.path).map(|d| (d, e)))
    }

    /// True for a delta bundle ([`crate::delta`]).
    pub fn is_delta(&self) -> bool {
        self.manifest.delta.is_some()
    }

    /// bundle.json's exact bytes (read again, and checked against the footer again).
    pub fn manifest_bytes(&self) -> Result<Vec<u8>> {
        read_manifest(&self.file, &self.footer, &self.path)
    }

    /// The DER bytes of `bundle.json.sig`, if the bundle carries one (not yet checked).
    pub fn signature_bytes(&self) -> Result<Option<Vec<u8>>> {
        let Some(sig) = self.footer.signature else {
            return Ok(None);
        };
        let mut buf = vec![0u8; sig.len as usize];
        self.file
            .read_exact_at(&mut buf, self.footer.payload_offset + sig.offset)
            .map_err(|e| BundleError::io(&self.path, e))?;
        Ok(Some(buf))
    }

    /// Checks the signature against the signer bundle.json names: `Unsigned` when there
    /// is neither, `Signed(key)` when `bundle.json.sig` verifies with that key, an error
    /// when one is there without the other or the signature does not verify. Which keys
    /// to *trust* is [`crate::trust`]'s question.
    pub fn signature(&self) -> Result<Signature> {
        let sig = self.signature_bytes()?;
        match (&self.manifest.signer, sig) {
            (None, None) => Ok(Signature::Unsigned),
            (Some(s), None) => Err(BundleError::Signature(format!(
                "bundle.json names signer key {} but the bundle carries no {} (it was removed): \
                 the bundle was altered — get it again from its builder",
                s.key.fingerprint(),
                crate::signature::SIGNATURE_PATH
            ))),
            (None, Some(_)) => Err(BundleError::Signature(format!(
                "the bundle carries {} but bundle.json names no signer key: the bundle was altered — \
                 get it again from its builder",
                crate::signature::SIGNATURE_PATH
            ))),
            (Some(s), Some(sig)) => {
                let json = self.manifest_bytes()?;
                if s.key.verifies(&json, &sig) {
                    Ok(Signature::Signed(s.key.clone()))
                } else {
                    Err(BundleError::Signature(format!(
                        "{} does not verify with the signer key bundle.json names ({}): \
                         the bundle was altered or damaged — get it again from its builder",
                        crate::signature::SIGNATURE_PATH,
                        s.key.fingerprint()
                    )))
                }
            }
        }
    }

    /// The files of the bundle: its parts in order, or the one file.
    pub fn part_names(&self) -> Vec<PathBuf> {
        self.file.parts().iter().map(|p| p.path.clone()).collect()
    }
}

/// Reads and decodes the footer at the end of `file` (`part_len` bytes, the bundle so far
/// being `total` bytes). `None` when there is no footer magic there.
fn footer_at_end(
    file: &File,
    part_len: u64,
    total: u64,
    name: &Path,
    split: bool,
) -> Result<Option<Footer>> {
    if part_len < FOOTER_LEN as u64 {
        return Ok(None);
    }
    let mut raw = vec![0u8; FOOTER_LEN];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut raw, part_len - FOOTER_LEN as u64)
        .map_err(|e| BundleError::io(name, e))?;
    if let Ok(f) = Footer::decode_fields(&raw) {
        if split && f.part_count > 1 && f.implied_len() != Some(total) {
            // The last part of a split bundle whose parts do not add up: name the part.
            short_part(file, part_len, &f, name)?;
        }
    }
    match Footer::decode(&raw, total) {
        Ok(f) => Ok(Some(f)),
        Err(FooterProblem::Missing(_)) => Ok(None),
        Err(FooterProblem::Damaged(reason)) => Err(BundleError::BadFooter {
            path: name.into(),
            reason,
        }),
        Err(FooterProblem::Version(found)) => Err(BundleError::UnsupportedVersion {
            path: name.into(),
            found,
            supported: FORMAT_VERSION,
        }),
    }
}

/// For a split bundle whose parts do not add up to what its footer says: reads the part
/// table in front of the footer in the last part (`file`, at `name`) and names the first
/// part whose size differs. Returns Ok when it cannot tell (the caller then reports the
/// footer itself).
fn short_part(file: &File, part_len: u64, f: &Footer, name: &Path) -> Result<()> {
    let len = f.trailer_len();
    let Some(at) = part_len.checked_sub(FOOTER_LEN as u64 + len) else {
        return Ok(());
    };
    let mut raw = vec![0u8; len as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut raw, at)
        .map_err(|e| BundleError::io(name, e))?;
    let Ok(table) = PartTable::decode(&raw, f.part_count) else {
        return Ok(());
    };
    let n = table.rows.len();
    let first = part_first(name, n);
    for (i, row) in table.rows.iter().enumerate() {
        let p = part_path(&first, i + 1);
        let actual = if i + 1 == n {
            Some(part_len)
        } else {
            std::fs::metadata(&p).ok().map(|m| m.len())
        };
        match actual {
            Some(a) if a == row.size => {}
            Some(a) => {
                return Err(BundleError::part(
                    i + 1,
                    n,
                    &p,
                    format!(
                        "is {a} bytes, but the bundle's part table says {}: it was cut short or is another \
                         bundle's part — copy it again",
                        row.size
                    ),
                ))
            }
            None => {
                return Err(BundleError::part(i + 1, n, &p, "is missing: copy it beside the first part"))
            }
        }
    }
    Ok(())
}

/// The first part's path, from part `n`'s (`<first>.<n>`).
fn part_first(last: &Path, n: usize) -> PathBuf {
    let s = last.as_os_str().to_string_lossy();
    match s.strip_suffix(&format!(".{n:03}")) {
        Some(first) => PathBuf::from(first),
        None => last.to_path_buf(),
    }
}

/// The bundle's files and footer: `first` alone when it ends with the footer, else
/// `first` and its parts beside `name`, up to the one that ends with the footer.
fn open_parts(first: File, name: &Path) -> Result<(BundleFile, Footer)> {
    let len = first
        .metadata()
        .map_err(|e| BundleError::io(name, e))?
        .len();
    if let Some(f) = footer_at_end(&first, len, len, name, false)? {
        let file = BundleFile::new(vec![(name.to_path_buf(), first)])
            .map_err(|e| BundleError::io(name, e))?;
        return Ok((file, f));
    }
    let mut files = vec![(name.to_path_buf(), first)];
    let mut total = len;
    for k in 2..=MAX_PARTS as usize {
        let p = part_path(name, k);
        let Ok(f) = File::open(&p) else { break };
        let len = f.metadata().map_err(|e| BundleError::io(&p, e))?.len();
        total += len;
        let footer = footer_at_end(&f, len, total, &p, true)?;
        files.push((p.clone(), f));
        if let Some(footer) = footer {
            if footer.part_count as usize != k {
                return Err(BundleError::part(
                    k,
                    0,
                    &p,
                    format!(
                        "ends with the footer of a bundle of {} parts, so it is not part {k} of this one: \
                         the parts are from different builds — copy all of them again",
                        footer.part_count
                    ),
                ));
            }
            let file = BundleFile::new(files).map_err(|e| BundleError::io(name, e))?;
            return Ok((file, footer));
        }
    }
    let found = files.len();
    if found == 1 {
        return Err(BundleError::NoFooter {
            path: name.into(),
            reason: format!(
                "{}; if the bundle was split, its other parts ({}, …) must be beside it",
                if len < FOOTER_LEN as u64 {
                    format!("file is only {len} bytes")
                } else {
                    "magic FERRYBDL not found".to_string()
                },
                part_path(name, 2).display()
            ),
        });
    }
    // A later part exists beyond the gap: the gap is the missing part.
    let later = files_named_as_parts(name)
        .into_iter()
        .map(|(n, _)| n)
        .find(|&n| n > found + 1);
    let missing = part_path(name, found + 1);
    Err(match later {
        Some(n) => BundleError::part(
            found + 1,
            0,
            &missing,
            format!(
                "is missing (part {n} is there): copy it beside {}",
                name.display()
            ),
        ),
        None => BundleError::part(
            found + 1,
            0,
            &missing,
            format!(
                "is missing, or part {found} ({}) was cut short: no part ends with the bundle's footer — \
                 copy the last parts again beside {}",
                part_path(name, found).display(),
                name.display()
            ),
        ),
    })
}

/// The part table (if the footer names one), with each part's size compared to it.
fn read_part_table(file: &BundleFile, footer: &Footer, name: &Path) -> Result<Option<PartTable>> {
    if footer.part_count == 0 {
        return Ok(None);
    }
    let len = footer.trailer_len();
    let mut raw = vec![0u8; len as usize];
    let at = file.len() - FOOTER_LEN as u64 - len;
    file.read_exact_at(&mut raw, at)
        .map_err(|e| BundleError::io(name, e))?;
    let last = file
        .parts()
        .last()
        .map(|p| p.path.clone())
        .unwrap_or_default();
    let table =
        PartTable::decode(&raw, footer.part_count).map_err(|reason| BundleError::BadFooter {
            path: last.clone(),
            reason: format!("{reason} (the part table in front of the footer)"),
        })?;
    let count = table.rows.len();
    let parts = file.parts();
    if parts.len() == 1 {
        // The parts joined into one file (`cat`, or a staged copy): only the sum matters.
        let sum: u64 = table.rows.iter().map(|r| r.size).sum();
        if sum != file.len() {
            return Err(BundleError::BadFooter {
                path: name.into(),
                reason: format!(
                    "the part table adds up to {sum} bytes but the file is {} bytes; it was truncated or extended",
                    file.len()
                ),
            });
        }
    } else {
        for (i, (p, row)) in parts.iter().zip(&table.rows).enumerate() {
            if p.len != row.size {
                return Err(BundleError::part(
                    i + 1,
                    count,
                    &p.path,
                    format!(
                        "is {} bytes, but the bundle's part table says {}: it was cut short or is another \
                         bundle's part — copy it again",
                        p.len, row.size
                    ),
                ));
            }
        }
    }
    Ok(Some(table))
}

/// bundle.json's bytes, checked against the footer's sha256.
fn read_manifest(file: &BundleFile, footer: &Footer, name: &Path) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; footer.manifest_len as usize];
    file.read_exact_at(&mut bytes, footer.payload_offset + footer.manifest_offset)
        .map_err(|e| BundleError::io(name, e))?;
    let found = Sha256Digest::of(&bytes);
    if found != footer.manifest_sha256 {
        return Err(BundleError::EntryChecksum {
            entry: crate::MANIFEST_PATH.into(),
            expected: Box::new(footer.manifest_sha256),
            found: Box::new(found),
        });
    }
    Ok(bytes)
}

/// Cheap sanity checks of the entry table: valid unique paths, data inside the payload,
/// sorted and non-overlapping, and none overlapping bundle.json. A bundle.json that lies
/// in a way these cannot see is caught by comparing with the tar headers in `verify`.
/// Returns the index of entries by path.
pub fn check_layout(
    entries: &[EntryRecord],
    manifest_offset: u64,
    payload_len: u64,
) -> Result<HashMap<String, usize>> {
    let mut seen = HashMap::with_capacity(entries.len());
    let mut prev_end = 0u64;
    for (i, e) in entries.iter().enumerate() {
        check_entry_path(&e.path).map_err(|r| BundleError::entry(&e.path, r))?;
        if seen.insert(e.path.clone(), i).is_some() || e.path == crate::MANIFEST_PATH {
            return Err(BundleError::entry(&e.path, "listed twice in bundle.json"));
        }
        let end = e.offset.checked_add(e.size).filter(|&x| x <= payload_len).ok_or_else(|| {
            BundleError::entry(
                &e.path,
                format!("bundle.json says offset {} size {}, which lies outside the payload ({payload_len} bytes)", e.offset, e.size),
            )
        })?;
        if e.offset < prev_end + 512 {
            return Err(BundleError::entry(
                &e.path,
                format!(
                    "bundle.json says offset {}, which overlaps the previous entry or its header",
                    e.offset
                ),
            ));
        }
        if end > manifest_offset {
            return Err(BundleError::entry(
                &e.path,
                "bundle.json places it over or after bundle.json itself",
            ));
        }
        prev_end = end;
    }
    Ok(seen)
}
