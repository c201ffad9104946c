//! Forges hostile or damaged bundles that the real builder would never write: a payload tar
//! with arbitrary entries (symlinks, `..`, devices), a bundle.json that lies, all behind a
//! *valid* footer, so the installer's own defences — not the footer checksum — must catch
//! them.

use ferry_bundle::footer::{derived_identity, Footer, FORMAT_VERSION};
use ferry_bundle::manifest::{BundleManifest, EntryRecord, StubRecord};
use ferry_bundle::Sha256Digest;

/// One raw tar entry to forge.
pub enum Forged {
    File {
        path: String,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    HardLink {
        path: String,
        target: String,
    },
    CharDevice {
        path: String,
    },
    /// A regular file whose header name is written raw (bypassing the tar crate's checks).
    RawName {
        name: Vec<u8>,
        data: Vec<u8>,
    },
}

/// Builds `stub ++ tar(entries ++ bundle.json) ++ footer`. `lie` may edit the entry table
/// after the true one is computed.
pub fn forge(stub: &[u8], entries: &[Forged], lie: impl FnOnce(&mut Vec<EntryRecord>)) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut records = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match e {
            Forged::File { path, data } => {
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, path, &data[..]).unwrap();
                let end = tar.get_ref().len() as u64;
                records.push(EntryRecord {
                    path: path.clone(),
                    size: data.len() as u64,
                    sha256: Sha256Digest::of(data),
                    offset: end - (data.len() as u64).div_ceil(512) * 512,
                    compression: None,
                    mode: 0o644,
                });
            }
            Forged::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, path, target).unwrap();
            }
            Forged::HardLink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                tar.append_link(&mut h, path, target).unwrap();
            }
            Forged::CharDevice { path } => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                tar.append_data(&mut h, path, &b""[..]).unwrap();
            }
            Forged::RawName { name, data } => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                h.as_old_mut().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                let start = tar.get_ref().len() as u64 + 512;
                tar.append(&h, &data[..]).unwrap();
                records.push(EntryRecord {
                    path: String::from_utf8_lossy(name).into_owned(),
                    size: data.len() as u64,
                    sha256: Sha256Digest::of(data),
                    offset: start,
                    compression: None,
                    mode: 0o644,
                });
            }
        }
    }
    let true_ranges: Vec<(u64, u64)> = records.iter().map(|r| (r.offset, r.size)).collect();
    lie(&mut records);
    let manifest = BundleManifest {
        format: FORMAT_VERSION,
        name: "forged".into(),
        installer: StubRecord {
            size: stub.len() as u64,
            sha256: Sha256Digest::of(stub),
        },
        entries: records,
        ..Default::default()
    };
    let json = serde_json::to_vec(&manifest).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(json.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "bundle.json", &json[..]).unwrap();
    let manifest_offset = tar.get_ref().len() as u64 - (json.len() as u64).div_ceil(512) * 512;
    let payload = tar.into_inner().unwrap();
    // The gaps hash covers every byte outside the (true) entries and bundle.json.
    let mut inside = vec![false; payload.len()];
    for (o, n) in true_ranges
        .iter()
        .chain(std::iter::once(&(manifest_offset, json.len() as u64)))
    {
        for b in &mut inside[*o as usize..(*o + *n) as usize] {
            *b = true;
        }
    }
    let gap_bytes: Vec<u8> = payload
        .iter()
        .zip(&inside)
        .filter(|(_, i)| !**i)
        .map(|(b, _)| *b)
        .collect();
    let footer = Footer {
        version: FORMAT_VERSION,
        payload_offset: stub.len() as u64,
        payload_len: payload.len() as u64,
        payload_sha256: derived_identity(
            &Sha256Digest::of(&json),
            &Sha256Digest::of(&gap_bytes),
            b"",
        ),
        manifest_offset,
        manifest_len: json.len() as u64,
        manifest_sha256: Sha256Digest::of(&json),
        gaps_sha256: Sha256Digest::of(&gap_bytes),
        signature: None,
        part_count: 0,
    };
    let mut out = stub.to_vec();
    out.extend_from_slice(&payload);
    out.extend_from_slice(&footer.encode());
    out
}
