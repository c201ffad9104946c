//! A whole bundle as it arrives on a USB stick: footer, bundle.json, the tar scan,
//! `--check`, `--extract`, the registry loading its images and answering for them, and
//! the install and join plans made from it.
//!
//! Mutated bundles would nearly all die at the checksums, so the harness re-seals what a
//! forger would: from the mutated bytes and the footer's own offsets it recomputes
//! bundle.json's sha256, the gaps and payload sha256 and the footer's checksum. What is
//! left for the installer to catch is everything a forger controls. Seeds are real
//! bundles from `ferry build` (scripts/fuzz.sh makes them).
//!
//! Oracle: a bundle that passes `--check` extracts without error, only into the target
//! directory; the registry serves every image it names without a 5xx.
#![no_main]

#[path = "common.rs"]
mod common;

use ferry_bundle::footer::{derived_identity, Footer, FOOTER_LEN, FORMAT_VERSION};
use ferry_bundle::{verify, Bundle, BundleManifest, Sha256Digest};
use ferry_installer::registry::fuzzing::{answer, store_from_bundle};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// `data` with its footer re-sealed, when the footer's offsets describe this file.
fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    let len = data.len();
    let f = data.get(len.checked_sub(FOOTER_LEN)?..)?;
    let (po, pl, mo, ml) = (u64_at(f, 16), u64_at(f, 24), u64_at(f, 64), u64_at(f, 72));
    let payload_start = usize::try_from(po).ok()?;
    let payload = data.get(payload_start..payload_start.checked_add(usize::try_from(pl).ok()?)?)?;
    if payload_start + payload.len() != len - FOOTER_LEN {
        return None;
    }
    let (mo, ml) = (usize::try_from(mo).ok()?, usize::try_from(ml).ok()?);
    let json = payload.get(mo..mo.checked_add(ml)?)?;
    // The gaps: every payload byte outside the entries bundle.json lists and itself.
    let mut ranges: Vec<(usize, usize)> = vec![(mo, ml)];
    if let Ok(m) = serde_json::from_slice::<BundleManifest>(json) {
        for e in &m.entries {
            ranges.push((
                usize::try_from(e.offset).ok()?,
                usize::try_from(e.size).ok()?,
            ));
        }
    }
    ranges.sort();
    let mut gaps = Sha256::new();
    let mut at = 0usize;
    for (o, n) in ranges {
        let end = o.checked_add(n)?;
        if o < at || end > payload.len() {
            return None;
        }
        gaps.update(&payload[at..o]);
        at = end;
    }
    gaps.update(&payload[at..]);
    let gaps_sha256 = Sha256Digest(gaps.finalize().into());
    let footer = Footer {
        version: FORMAT_VERSION,
        payload_offset: po,
        payload_len: pl,
        payload_sha256: derived_identity(&Sha256Digest::of(json), &gaps_sha256, b""),
        manifest_offset: mo as u64,
        manifest_len: ml as u64,
        manifest_sha256: Sha256Digest::of(json),
        gaps_sha256,
        signature: None,
        part_count: 0,
    };
    let mut out = data[..len - FOOTER_LEN].to_vec();
    out.extend_from_slice(&footer.encode());
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let bytes = reseal(data).unwrap_or_else(|| data.to_vec());
    let dir = common::scratch();
    let path = dir.join("delivery.run");
    std::fs::write(&path, &bytes).unwrap();
    let Ok(b) = Bundle::open(&path) else {
        return;
    };
    common::plan_everything(&b, data[0] & 1 == 1);
    if verify::check(&b, &|_| {}).is_err() {
        return;
    }
    // Passed --check: extraction must succeed, inside the target only.
    let x = dir.join("x");
    let report =
        ferry_bundle::extract::extract(&b, &x, &|_| {}).expect("a checked bundle extracts");
    assert_eq!(report.files, b.manifest.entries.len() + 1);
    // The registry loads it (skipping any image it cannot serve); what it loads it serves
    // without a 5xx.
    let store = store_from_bundle(&b);
    let mut requests = String::new();
    for i in &b.manifest.images {
        if let Some(tag) = &i.name.tag {
            requests.push_str(&format!(
                "GET /v2/{}/manifests/{tag}?ns={} HTTP/1.1\r\n\r\n",
                i.name.repository, i.name.host
            ));
        }
    }
    for e in &b.manifest.entries {
        if let Some(hex) = e.path.strip_prefix("oci/blobs/sha256/") {
            for i in b.manifest.images.iter().take(1) {
                requests.push_str(&format!(
                    "HEAD /v2/{}/blobs/sha256:{hex}?ns={} HTTP/1.1\r\n\r\n",
                    i.name.repository, i.name.host
                ));
            }
        }
    }
    let out = answer(&store, requests.as_bytes(), 16 << 10);
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("HTTP/1.1 5"), "{text}");
});
