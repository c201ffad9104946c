//! `--check`: proves every byte of a bundle is what the builder wrote.
//!
//! Two stages. The structural stage walks the tar headers (cheap: header blocks only) and
//! requires them to agree exactly with bundle.json — same files, same offsets, same sizes,
//! nothing else — so a bundle.json that lies is named before any data is read. The data
//! stage reads the file once, sequentially, in large chunks. One thread hashes each byte
//! into its entry's hash (or the gaps hash), which names what is damaged; the reading
//! thread only reads (and, when staging, writes the copy). The footer's `payload_sha256`
//! is the bundle's *identity* (install prints it and journals it, a join compares it), so
//! a check must not vouch for one it never saw: in format 3 it is derived from the
//! manifest hash, the gaps hash and the signature ([`crate::footer::derived_identity`]),
//! and is recomputed from the hashes just verified, which costs nothing per byte. For
//! format 1 and 2 bundles the reading thread also hashes the whole payload, a second
//! sha256 stream on the second core (`docs/reliability.md` has what that cost). (Before
//! identities were checked at all, a bundle whose footer carried another bundle's
//! identity passed `--check`.)
//!
//! The signature's bytes (`bundle.json.sig`) are in no hash: they are checked by
//! verifying the signature of bundle.json with the key bundle.json names. A split
//! bundle is read through its parts in the same single pass; when something does not
//! match, the damage is traced to the part that holds it (hashing again only the parts a
//! damaged range spans), so the operator reads "part 3 of 6 is damaged: copy it again"
//! rather than the name of a blob that happens to lie there.

use crate::error::{BundleError, Result};
use crate::reader::Bundle;
use crate::tarscan::{scan, TarEntry, TarKind};
use crate::Sha256Digest;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

const CHUNK: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub entries: usize,
    pub bytes: u64,
}

/// Structural check: tar headers vs bundle.json. Returns the tar's entries.
pub fn check_structure(b: &Bundle) -> Result<Vec<TarEntry>> {
    let entries = scan(&mut b.payload())?;
    let mut listed: HashMap<&str, &crate::EntryRecord> = b
        .manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    let mut saw_manifest = false;
    let mut saw_signature = false;
    for t in &entries {
        if t.kind == TarKind::Dir {
            continue;
        }
        if t.path == crate::signature::SIGNATURE_PATH {
            match b.footer.signature {
                Some(sig) if sig.offset == t.data_offset && sig.len as u64 == t.size => {
                    saw_signature = true;
                    continue;
                }
                _ => {
                    return Err(BundleError::entry(
                        &t.path,
                        format!(
                            "tar places it at {}+{}, the footer at {:?}",
                            t.data_offset, t.size, b.footer.signature
                        ),
                    ))
                }
            }
        }
        if t.path == crate::MANIFEST_PATH {
            if t.data_offset != b.footer.manifest_offset || t.size != b.footer.manifest_len {
                return Err(BundleError::entry(
                    &t.path,
                    format!(
                        "tar places it at {}+{}, the footer at {}+{}",
                        t.data_offset, t.size, b.footer.manifest_offset, b.footer.manifest_len
                    ),
                ));
            }
            saw_manifest = true;
            continue;
        }
        let Some(rec) = listed.remove(t.path.as_str()) else {
            return Err(BundleError::entry(
                &t.path,
                "in the tar but not listed in bundle.json",
            ));
        };
        if rec.offset != t.data_offset || rec.size != t.size {
            return Err(BundleError::entry(
                &t.path,
                format!(
                    "bundle.json says offset {} size {}, the tar header says offset {} size {}",
                    rec.offset, rec.size, t.data_offset, t.size
                ),
            ));
        }
        // The header's mode is what `--extract` restores: bundle.json (signed) pins it.
        if rec.mode != t.mode {
            return Err(BundleError::entry(
                &t.path,
                format!(
                    "bundle.json says mode {:o}, the tar header says {:o}",
                    rec.mode, t.mode
                ),
            ));
        }
    }
    if let Some(missing) = listed.keys().min() {
        return Err(BundleError::entry(
            *missing,
            "listed in bundle.json but not in the tar",
        ));
    }
    if !saw_manifest {
        return Err(BundleError::entry(crate::MANIFEST_PATH, "not in the tar"));
    }
    if b.footer.signature.is_some() && !saw_signature {
        return Err(BundleError::entry(
            crate::signature::SIGNATURE_PATH,
            "the footer names a signature but the tar has none",
        ));
    }
    Ok(entries)
}

/// Full check: structure, installer stub, every entry, bundle.json and the gaps between
/// entries — every byte of the file, each hashed once. `progress` is called with the
/// number of bytes read so far (of `b.file_len`).
pub fn check(b: &Bundle, progress: &dyn Fn(u64)) -> Result<CheckReport> {
    check_and_copy(b, progress, None)
}

/// A payload range with its own expected hash (`None`: the signature, checked by
/// verifying it, and in no hash).
struct Range {
    path: String,
    offset: u64,
    size: u64,
    sha256: Option<Sha256Digest>,
}

/// Where [`check_and_copy`] copies the file: every chunk, in order, with where it was
/// read. A [`Write`] gets the bytes; staging's file sink has the kernel copy them from the
/// source instead (`crate::parts::BundleFile::copy_to`), since the bytes are in the page
/// cache already and a copy through user space measured twice as slow as `cp`.
pub trait CopySink {
    /// `bytes` are the `bytes.len()` bytes at `offset` of `source`, the next of the copy.
    fn copy(
        &mut self,
        source: &crate::parts::BundleFile,
        offset: u64,
        bytes: &[u8],
    ) -> std::io::Result<()>;
}

impl<W: Write> CopySink for W {
    fn copy(&mut self, _: &crate::parts::BundleFile, _: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }
}

/// [`check`], also copying every byte of the file, in order, to `sink`: staging copies
/// the bundle in the same single read that verifies it (a USB stick is read once).
/// The caller must discard what `sink` received if this returns an error.
pub fn check_and_copy(
    b: &Bundle,
    progress: &dyn Fn(u64),
    mut sink: Option<&mut dyn CopySink>,
) -> Result<CheckReport> {
    check_structure(b)?;
    // Cheap (one ECDSA verification of bundle.json), and first: a bundle whose signature
    // was stripped or does not verify is refused before its bytes are read.
    b.signature()?;
    let file = b.file.clone();
    let io = |e| BundleError::io(&b.path, e);
    let sink_err = |e: std::io::Error| BundleError::Other(format!("writing the copy: {e}"));

    // Stub: small, hashed first.
    let mut h = Sha256::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while pos < b.footer.payload_offset {
        let n = ((b.footer.payload_offset - pos) as usize).min(CHUNK);
        file.read_exact_at(&mut buf[..n], pos).map_err(io)?;
        h.update(&buf[..n]);
        if let Some(w) = sink.as_mut() {
            w.copy(&file, pos, &buf[..n]).map_err(sink_err)?;
        }
        pos += n as u64;
        progress(pos);
    }
    let stub = Sha256Digest(h.finalize().into());
    if stub != b.manifest.installer.sha256 {
        let e = BundleError::StubChecksum {
            expected: Box::new(b.manifest.installer.sha256),
            found: Box::new(stub),
        };
        return Err(damaged_part(b, &[(0, b.footer.payload_offset)]).unwrap_or(e));
    }

    // Payload: this thread reads (and copies); one hasher thread hashes each byte once,
    // into its entry's hash or into the gaps hash.
    let mut ranges: Vec<Range> = b
        .manifest
        .entries
        .iter()
        .map(|e| Range {
            path: e.path.clone(),
            offset: e.offset,
            size: e.size,
            sha256: Some(e.sha256),
        })
        .collect();
    ranges.push(Range {
        path: crate::MANIFEST_PATH.into(),
        offset: b.footer.manifest_offset,
        size: b.footer.manifest_len,
        sha256: Some(b.footer.manifest_sha256),
    });
    if let Some(sig) = b.footer.signature {
        ranges.push(Range {
            path: crate::signature::SIGNATURE_PATH.into(),
            offset: sig.offset,
            size: sig.len as u64,
            sha256: None,
        });
    }
    ranges.sort_by_key(|r| r.offset);
    let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(4);
    // Buffers go back to the reader once hashed: no 4 MiB allocation per chunk.
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(8);
    let hasher = std::thread::spawn(move || hash_ranges(rx, back_tx, ranges));
    let base = b.footer.payload_offset;
    let len = b.footer.payload_len;
    let mut p = 0u64;
    // Formats 1 and 2 only: their identity is the hash of every payload byte.
    let mut whole = (!b.footer.identity_is_derived()).then(Sha256::new);
    let read = (|| -> Result<()> {
        while p < len {
            let n = ((len - p) as usize).min(CHUNK);
            let mut chunk = back_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            chunk.truncate(n);
            file.read_exact_at(&mut chunk, base + p).map_err(io)?;
            if let Some(w) = sink.as_mut() {
                w.copy(&file, base + p, &chunk).map_err(sink_err)?;
            }
            if let Some(h) = whole.as_mut() {
                h.update(&chunk);
            }
            if tx.send((p, chunk)).is_err() {
                break;
            }
            p += n as u64;
            progress(base + p);
        }
        Ok(())
    })();
    drop(tx);
    let (first_bad, gaps) = hasher.join().expect("hasher thread");
    read?;
    if let Some((e, offset, size)) = first_bad {
        return Err(damaged_part(b, &[(base + offset, size)]).unwrap_or(e));
    }
    if gaps != b.footer.gaps_sha256 {
        let e = BundleError::Other(format!(
            "payload: the bytes between entries (tar headers, padding, end marker) do not match the footer's gaps sha256 \
             (expected {}, found {}); the bundle is damaged — copy it again",
            b.footer.gaps_sha256.hex(),
            gaps.hex()
        ));
        return Err(damaged_part(b, &[(base, len)]).unwrap_or(e));
    }
    let identity = match whole {
        Some(h) => Sha256Digest(h.finalize().into()),
        None => {
            let mut sig = vec![0u8; b.footer.signature.map_or(0, |s| s.len as usize)];
            if let Some(s) = b.footer.signature {
                file.read_exact_at(&mut sig, base + s.offset).map_err(io)?;
            }
            crate::footer::derived_identity(&b.footer.manifest_sha256, &gaps, &sig)
        }
    };
    if identity != b.footer.payload_sha256 {
        return Err(BundleError::Other(format!(
            "payload: its identity is {}, but the footer gives it as {}; \
             every entry matches bundle.json, so the footer was rewritten (this is not the bundle it claims to be) — \
             get the bundle again from its builder",
            identity.hex(),
            b.footer.payload_sha256.hex()
        )));
    }
    if let Some(w) = sink.as_mut() {
        // The part table (of a split bundle) and the footer.
        let mut tail = vec![0u8; (b.file_len - base - len) as usize];
        file.read_exact_at(&mut tail, base + len).map_err(io)?;
        w.copy(&file, base + len, &tail).map_err(sink_err)?;
    }
    progress(b.file_len);
    Ok(CheckReport {
        entries: b.manifest.entries.len() + 1,
        bytes: b.file_len,
    })
}

/// The first range that did not match: the error, and the range's payload offset and size.
type Mismatch = (BundleError, u64, u64);

/// Hashes chunks `(payload offset, bytes)` arriving in order: bytes inside a range go to
/// that range's hash, all others to the gaps hash (the signature's to none). Returns the
/// first mismatching range and the gaps digest.
fn hash_ranges(
    rx: std::sync::mpsc::Receiver<(u64, Vec<u8>)>,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    ranges: Vec<Range>,
) -> (Option<Mismatch>, Sha256Digest) {
    let mut gaps = Sha256::new();
    let mut idx = 0usize;
    let mut cur: Option<Sha256> = None;
    let mut first_bad = None;
    for (start, chunk) in rx {
        let end = start + chunk.len() as u64;
        let mut at = start;
        while at < end {
            let slice = |a: u64, z: u64| &chunk[(a - start) as usize..(z - start) as usize];
            match ranges.get(idx) {
                Some(r) if at >= r.offset => {
                    let stop = (r.offset + r.size).min(end);
                    if r.sha256.is_some() {
                        cur.get_or_insert_with(Sha256::new).update(slice(at, stop));
                    }
                    at = stop;
                    if at == r.offset + r.size {
                        let got = cur.take().map(|h| Sha256Digest(h.finalize().into()));
                        if let (Some(got), Some(want)) = (got, r.sha256) {
                            if got != want && first_bad.is_none() {
                                let e = BundleError::EntryChecksum {
                                    entry: r.path.clone(),
                                    expected: Box::new(want),
                                    found: Box::new(got),
                                };
                                first_bad = Some((e, r.offset, r.size));
                            }
                        }
                        idx += 1;
                    }
                }
                Some(r) => {
                    // Up to the next range (an empty range is then completed by the arm above).
                    let stop = r.offset.min(end);
                    gaps.update(slice(at, stop));
                    at = stop;
                }
                None => {
                    gaps.update(slice(at, end));
                    at = end;
                }
            }
        }
        let _ = back.try_send(chunk);
    }
    (first_bad, Sha256Digest(gaps.finalize().into()))
}

/// The bytes each part's sha256 covers, as (bundle offset, length), from the part table:
/// the whole part, except the last one's part table and footer.
fn part_extents(b: &Bundle) -> Vec<(u64, u64)> {
    let Some(t) = &b.part_table else {
        return Vec::new();
    };
    let mut start = 0u64;
    let n = t.rows.len();
    t.rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut len = r.size;
            if i + 1 == n {
                len = len.saturating_sub(b.footer.trailer_len() + crate::footer::FOOTER_LEN as u64);
            }
            let e = (start, len);
            start += r.size;
            e
        })
        .collect()
}

/// For a bundle built with `--split`: the part(s) holding the damaged `ranges` (bundle
/// offset, length). One candidate is named at once; several are told apart by hashing
/// them again against the part table. `None` when the bundle has no part table (or no
/// part mismatches, which leaves the caller's own error).
fn damaged_part(b: &Bundle, ranges: &[(u64, u64)]) -> Option<BundleError> {
    let t = b.part_table.as_ref()?;
    let extents = part_extents(b);
    let touches = |(s, l): (u64, u64)| {
        ranges
            .iter()
            .any(|&(o, n)| o < s + l.max(1) && s < o + n.max(1))
    };
    let candidates: Vec<usize> = (0..extents.len())
        .filter(|&i| touches(extents[i]))
        .collect();
    let name = |i: usize| -> PathBuf {
        if b.file.is_split() {
            b.file.parts()[i].path.clone()
        } else {
            PathBuf::from(format!(
                "bytes {}..{} of {} when split",
                extents[i].0,
                extents[i].0 + t.rows[i].size,
                b.path.display()
            ))
        }
    };
    let n = t.rows.len();
    let bad: Vec<(usize, Option<Sha256Digest>)> = if candidates.len() == 1 {
        vec![(candidates[0], None)]
    } else {
        candidates
            .into_iter()
            .filter_map(|i| {
                let got = hash_extent(b, extents[i]).ok()?;
                (got != t.rows[i].sha256).then_some((i, Some(got)))
            })
            .collect()
    };
    let (&(first, got), rest) = bad.split_first()?;
    let others = if rest.is_empty() {
        String::new()
    } else {
        format!(
            " (parts {} are damaged too)",
            rest.iter()
                .map(|(i, _)| (i + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let detail = match got {
        Some(got) => format!(
            "its sha256 is {}, the part table says {}",
            got, t.rows[first].sha256
        ),
        None => "a byte in it differs from what the builder wrote".to_string(),
    };
    Some(BundleError::part(
        first + 1,
        n,
        &name(first),
        format!("is damaged ({detail}){others}: copy it again"),
    ))
}

fn hash_extent(b: &Bundle, (start, len): (u64, u64)) -> std::io::Result<Sha256Digest> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = start;
    while at < start + len {
        let n = ((start + len - at) as usize).min(CHUNK);
        b.file.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(Sha256Digest(h.finalize().into()))
}
