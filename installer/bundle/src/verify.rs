//! `--check`: proves every byte of a bundle is what the builder wrote.
//!
//! Two stages. The structural stage walks the tar headers (cheap: header blocks only) and
//! requires them to agree exactly with bundle.json — same files, same offsets, same sizes,
//! nothing else — so a bundle.json that lies is named before any data is read. The data
//! stage reads the file once, sequentially, in large chunks; one thread hashes the whole
//! payload while the calling thread hashes each entry's range, so on two cores the check
//! runs at the speed of a single sha256 stream.

use crate::error::{BundleError, Result};
use crate::reader::Bundle;
use crate::tarscan::{scan, TarEntry, TarKind};
use crate::Sha256Digest;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

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
    for t in &entries {
        if t.kind == TarKind::Dir {
            continue;
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
    Ok(entries)
}

/// Full check: structure, installer stub, every entry and the whole payload.
/// `progress` is called with the number of bytes hashed so far (of `b.file_len`).
pub fn check(b: &Bundle, progress: &dyn Fn(u64)) -> Result<CheckReport> {
    check_and_copy(b, progress, None)
}

/// [`check`], also writing every byte of the file, in order, to `sink`: staging copies
/// the bundle in the same single read that verifies it (a USB stick is read once).
/// The caller must discard what `sink` received if this returns an error.
pub fn check_and_copy(b: &Bundle, progress: &dyn Fn(u64), mut sink: Option<&mut dyn std::io::Write>) -> Result<CheckReport> {
    check_structure(b)?;
    let sink_err = |e: std::io::Error| BundleError::Other(format!("writing the copy: {e}"));
    let file = b.file.clone();
    let io = |e| BundleError::io(&b.path, e);

    // Stub: small, hashed first.
    let mut h = Sha256::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while pos < b.footer.payload_offset {
        let n = ((b.footer.payload_offset - pos) as usize).min(CHUNK);
        file.read_exact_at(&mut buf[..n], pos).map_err(io)?;
        h.update(&buf[..n]);
        if let Some(w) = sink.as_mut() {
            w.write_all(&buf[..n]).map_err(sink_err)?;
        }
        pos += n as u64;
        progress(pos);
    }
    let stub = Sha256Digest(h.finalize().into());
    if stub.hex() != b.manifest.installer.sha256 {
        return Err(BundleError::StubChecksum {
            expected: b.manifest.installer.sha256.clone(),
            found: stub.hex(),
        });
    }

    // Payload: a reader feeds chunks to the whole-payload hasher thread and to us.
    let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(4);
    let whole = std::thread::spawn(move || {
        let mut h = Sha256::new();
        for chunk in rx {
            h.update(&chunk[..]);
        }
        Sha256Digest(h.finalize().into())
    });
    let mut entries: Vec<&crate::EntryRecord> = b.manifest.entries.iter().collect();
    entries.sort_by_key(|e| e.offset);
    let mut idx = 0usize;
    let mut cur: Option<Sha256> = None;
    let mut first_bad: Option<BundleError> = None;
    let base = b.footer.payload_offset;
    let len = b.footer.payload_len;
    let mut p = 0u64;
    let result = (|| -> Result<()> {
        while p < len {
            let n = ((len - p) as usize).min(CHUNK);
            let mut chunk = vec![0u8; n];
            file.read_exact_at(&mut chunk, base + p).map_err(io)?;
            let chunk = Arc::new(chunk);
            if tx.send(chunk.clone()).is_err() {
                break;
            }
            if let Some(w) = sink.as_mut() {
                w.write_all(&chunk).map_err(sink_err)?;
            }
            // Hash the parts of this chunk that belong to entries.
            let (cs, ce) = (p, p + n as u64);
            while idx < entries.len() {
                let e = entries[idx];
                let (es, ee) = (e.offset, e.offset + e.size);
                if es >= ce {
                    break;
                }
                let s = es.max(cs);
                let t = ee.min(ce);
                let hh = cur.get_or_insert_with(Sha256::new);
                if t > s {
                    hh.update(&chunk[(s - cs) as usize..(t - cs) as usize]);
                }
                if ee <= ce {
                    let got = Sha256Digest(cur.take().unwrap().finalize().into());
                    if got.hex() != e.sha256 && first_bad.is_none() {
                        first_bad = Some(BundleError::EntryChecksum {
                            entry: e.path.clone(),
                            expected: e.sha256.clone(),
                            found: got.hex(),
                        });
                    }
                    idx += 1;
                } else {
                    break;
                }
            }
            p = ce;
            progress(base + p);
        }
        Ok(())
    })();
    drop(tx);
    let whole = whole.join().expect("hasher thread");
    result?;
    if let Some(e) = first_bad {
        return Err(e);
    }
    if whole != b.footer.payload_sha256 {
        return Err(BundleError::PayloadChecksum {
            expected: b.footer.payload_sha256.hex(),
            found: whole.hex(),
        });
    }
    if let Some(w) = sink.as_mut() {
        let footer = crate::subfile::read_exact_at(&file, base + len, crate::footer::FOOTER_LEN).map_err(io)?;
        w.write_all(&footer).map_err(sink_err)?;
    }
    progress(b.file_len);
    Ok(CheckReport {
        entries: b.manifest.entries.len() + 1,
        bytes: b.file_len,
    })
}
