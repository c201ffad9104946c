//! bundle.json as the installer reads it, behind a valid footer: the entry table's layout
//! rules, then everything planned from it (install plan and its text, join info, a
//! joining node's plan). Input: the footer's bundle.json offset and payload length
//! (8 bytes each, little-endian), then the JSON.
//!
//! Oracle: an entry table that passes the layout rules is sorted, inside the payload and
//! before bundle.json; every planned file stays under the host root.
#![no_main]

#[path = "common.rs"]
mod common;

use ferry_bundle::footer::{Footer, FORMAT_VERSION};
use ferry_bundle::parts::BundleFile;
use ferry_bundle::reader::check_layout;
use ferry_bundle::{Bundle, BundleManifest, Sha256Digest};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn file() -> &'static (tempfile::NamedTempFile, Arc<BundleFile>) {
    static F: OnceLock<(tempfile::NamedTempFile, Arc<BundleFile>)> = OnceLock::new();
    F.get_or_init(|| {
        let f = tempfile::NamedTempFile::new().unwrap();
        let h = BundleFile::new(vec![(f.path().to_path_buf(), f.reopen().unwrap())]).unwrap();
        (f, Arc::new(h))
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let manifest_offset = u64::from_le_bytes(data[..8].try_into().unwrap());
    let payload_len = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let json = &data[16..];
    let Ok(manifest) = serde_json::from_slice::<BundleManifest>(json) else {
        return;
    };
    if check_layout(&manifest.entries, manifest_offset, payload_len).is_err() {
        return;
    }
    let mut prev = 0u64;
    for e in &manifest.entries {
        assert!(e.offset >= prev);
        prev = e.offset + e.size;
        assert!(prev <= manifest_offset && prev <= payload_len);
    }
    let (f, handle) = file();
    let footer = Footer {
        version: FORMAT_VERSION,
        payload_offset: manifest.installer.size,
        payload_len,
        payload_sha256: Sha256Digest::of(json),
        manifest_offset,
        manifest_len: json.len() as u64,
        manifest_sha256: Sha256Digest::of(json),
        gaps_sha256: Sha256Digest::of(b""),
        signature: None,
        part_count: 0,
    };
    // The entry table passed; bundle.json may still be refused for what it names
    // (an `sbom` entry it does not carry).
    let Ok(b) = Bundle::from_parts(
        f.path().to_path_buf(),
        handle.clone(),
        1 << 20,
        footer,
        manifest,
    ) else {
        return;
    };
    common::plan_everything(&b, data[0] & 1 == 1);
});
