//! Signed and split bundles through the real writer, reader, verify and extract: the
//! signature verifies only with its key and is refused when stripped or altered; parts
//! read as one bundle, join with `cat` into a valid one, and a missing, short or damaged
//! part is named on its own.

use ferry_bundle::extract::extract;
use ferry_bundle::parts::part_path;
use ferry_bundle::reader::Signature;
use ferry_bundle::signature::{PublicKey, SignerRecord};
use ferry_bundle::trust::{Admission, TrustPolicy};
use ferry_bundle::verify::check;
use ferry_bundle::writer::{BundleWriter, WriterOptions};
use ferry_bundle::{Bundle, BundleManifest, Sha256Digest};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use std::path::{Path, PathBuf};

fn key() -> EcdsaKeyPair {
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap()
}

fn public(k: &EcdsaKeyPair) -> PublicKey {
    PublicKey::from_point(k.public_key().as_ref()).unwrap()
}

/// Pseudo-random bytes (incompressible, distinct per seed).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A bundle with a 3000-byte stub (with a size marker), two blobs (1.5 MiB and 2.5 MiB)
/// and a file.
fn build(dir: &Path, split: Option<u64>, signer: Option<&EcdsaKeyPair>) -> PathBuf {
    let out = dir.join("d.run");
    let mut stub = vec![0x7fu8; 3000];
    stub[1000..1000 + ferry_bundle::marker::MARKER_LEN]
        .copy_from_slice(&ferry_bundle::marker::BLANK);
    let mut w = BundleWriter::create_with(&out, &stub[..], WriterOptions { split }).unwrap();
    for (i, n) in [3 << 19, 5 << 19].into_iter().enumerate() {
        let blob = noise(n, i as u64 + 7);
        w.add_blob(&Sha256Digest::of(&blob), n as u64, &blob[..])
            .unwrap();
    }
    w.add_entry("files/etc/hello.txt", 5, 0o600, &b"hello"[..])
        .unwrap();
    let mut m = BundleManifest {
        name: "t".into(),
        ..Default::default()
    };
    let rng = ring::rand::SystemRandom::new();
    match signer {
        Some(k) => {
            m.signer = Some(SignerRecord { key: public(k) });
            let f = |msg: &[u8]| -> Result<Vec<u8>, String> {
                Ok(k.sign(&rng, msg)
                    .map_err(|e| e.to_string())?
                    .as_ref()
                    .to_vec())
            };
            w.finish_with(m, Some(&f)).unwrap();
        }
        None => {
            w.finish(m).unwrap();
        }
    }
    out
}

fn flip(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
}

#[test]
fn signature_verifies_with_its_key_only_and_is_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let out = build(dir.path(), None, Some(&k));
    let b = Bundle::open(&out).unwrap();
    assert_eq!(b.footer.version, ferry_bundle::footer::FORMAT_VERSION);
    let f = std::fs::File::open(&out).unwrap();
    assert_eq!(
        ferry_bundle::marker::expected_size(&f),
        Some(b.file_len),
        "the marker holds the signed bundle's size"
    );
    assert_eq!(b.signature().unwrap(), Signature::Signed(public(&k)));
    check(&b, &|_| {}).unwrap();

    let mut none = TrustPolicy::default();
    assert_eq!(
        none.admit(&b).unwrap(),
        Admission::Unchecked(Signature::Signed(public(&k)))
    );
    let mut mine = TrustPolicy::default();
    mine.add_key(&public(&k), "--trust-key me.pem");
    assert!(matches!(mine.admit(&b).unwrap(), Admission::Trusted { .. }));
    none.add_key(&public(&key()), "--trust-key other.pem");
    let e = none.admit(&b).unwrap_err().to_string();
    assert!(
        e.contains(&public(&k).fingerprint().to_string()) && e.contains("does not trust"),
        "{e}"
    );
    // Unsigned bundles are refused once any key is pinned.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Bundle::open(&build(plain_dir.path(), None, None)).unwrap();
    assert_eq!(plain.signature().unwrap(), Signature::Unsigned);
    let e = mine.admit(&plain).unwrap_err().to_string();
    assert!(e.contains("is not signed"), "{e}");

    let x = dir.path().join("x");
    extract(&b, &x, &|_| {}).unwrap();
    let json = std::fs::read(x.join("bundle.json")).unwrap();
    let sig = std::fs::read(x.join("bundle.json.sig")).unwrap();
    assert!(public(&k).verifies(&json, &sig));
}

#[test]
fn an_altered_signature_fails_check_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), None, Some(&key()));
    let b = Bundle::open(&out).unwrap();
    let sig = b.footer.signature.unwrap();
    flip(&out, b.footer.payload_offset + sig.offset + 10);
    let b = Bundle::open(&out).unwrap();
    let e = check(&b, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("bundle.json.sig does not verify"), "{e}");
    assert!(TrustPolicy::default().admit(&b).is_err());
}

#[test]
fn split_parts_read_as_one_bundle_and_cat_joins_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), Some(1 << 20), None);
    let parts: Vec<PathBuf> = (1..)
        .map(|i| part_path(&out, i))
        .take_while(|p| p.exists())
        .collect();
    assert_eq!(parts.len(), 5, "4 MiB of blobs in 1 MiB parts: {parts:?}");
    for p in &parts[..4] {
        assert_eq!(std::fs::metadata(p).unwrap().len(), 1 << 20);
    }
    let b = Bundle::open(&out).unwrap();
    assert_eq!(b.part_names(), parts);
    // Part 1's marker holds part 1's size, and the part table hashed it with that.
    let f = std::fs::File::open(&out).unwrap();
    assert_eq!(ferry_bundle::marker::expected_size(&f), Some(1 << 20));
    assert_eq!(b.part_table.as_ref().unwrap().rows.len(), 5);
    check(&b, &|_| {}).unwrap();
    extract(&b, &dir.path().join("x"), &|_| {}).unwrap();

    // `cat` of the parts is a valid single-file bundle.
    let whole = dir.path().join("whole.run");
    let mut bytes = Vec::new();
    for p in &parts {
        bytes.extend(std::fs::read(p).unwrap());
    }
    std::fs::write(&whole, &bytes).unwrap();
    let w = Bundle::open(&whole).unwrap();
    assert!(!w.file.is_split());
    check(&w, &|_| {}).unwrap();

    // Staging copies the whole bundle: the copy is that same single file.
    let mut copy = Vec::new();
    ferry_bundle::verify::check_and_copy(&b, &|_| {}, Some(&mut copy)).unwrap();
    assert_eq!(copy, bytes);

    // An unsplit rebuild with the same name removes the stale parts.
    build(dir.path(), None, None);
    assert!(!parts[1].exists());
}

#[test]
fn a_flipped_byte_is_reported_as_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), Some(1 << 20), Some(&key()));
    // Byte 100 of part 2 lies in a blob that spans parts 1–3: parts are hashed to tell.
    flip(&part_path(&out, 2), 100);
    let b = Bundle::open(&out).unwrap();
    let e = check(&b, &|_| {}).unwrap_err().to_string();
    assert!(
        e.contains("part 2 of 5") && e.contains("d.run.002") && e.contains("copy it again"),
        "{e}"
    );
    // The joined file names the byte range of that part.
    let mut bytes = Vec::new();
    for i in 1..=5 {
        bytes.extend(std::fs::read(part_path(&out, i)).unwrap());
    }
    let whole = dir.path().join("whole.run");
    std::fs::write(&whole, &bytes).unwrap();
    let e = check(&Bundle::open(&whole).unwrap(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("part 2 of 5") && e.contains("when split"), "{e}");
}

#[test]
fn missing_and_short_parts_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path(), Some(1 << 20), None);
    let p3 = part_path(&out, 3);
    let p5 = part_path(&out, 5);

    std::fs::rename(&p3, dir.path().join("away")).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(
        e.contains("part 3") && e.contains("d.run.003") && e.contains("is missing"),
        "{e}"
    );
    std::fs::rename(dir.path().join("away"), &p3).unwrap();

    std::fs::rename(&p5, dir.path().join("away")).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("part 5") && e.contains("is missing"), "{e}");
    std::fs::rename(dir.path().join("away"), &p5).unwrap();

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(part_path(&out, 2))
        .unwrap();
    f.set_len((1 << 20) - 1).unwrap();
    let e = Bundle::open(&out).unwrap_err().to_string();
    assert!(e.contains("part 2 of 5") && e.contains("cut short"), "{e}");
}

#[test]
fn parts_are_cut_right_wherever_the_payload_ends() {
    // Bundles ending just before, at and after part 1's end: the footer alone fits, only
    // the payload fits (part 2 holds just the part table and footer), or neither.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.run");
    let mut stub = vec![0x7fu8; 3000];
    stub[10..10 + ferry_bundle::marker::MARKER_LEN].copy_from_slice(&ferry_bundle::marker::BLANK);
    let mut kinds = std::collections::BTreeSet::new();
    for size in (((1 << 20) - 9000)..((1 << 20) - 2000)).step_by(311) {
        let mut w = BundleWriter::create_with(
            &out,
            &stub[..],
            WriterOptions {
                split: Some(1 << 20),
            },
        )
        .unwrap();
        let data = noise(size, size as u64);
        w.add_entry("files/x", size as u64, 0o644, &data[..])
            .unwrap();
        w.finish(BundleManifest::default()).unwrap();
        let b = Bundle::open(&out).unwrap();
        check(&b, &|_| {}).unwrap_or_else(|e| panic!("{size}: {e}"));
        let first = std::fs::metadata(&out).unwrap().len();
        let f = std::fs::File::open(&out).unwrap();
        assert_eq!(
            ferry_bundle::marker::expected_size(&f),
            Some(first),
            "{size}"
        );
        kinds.insert((b.file.parts().len(), first == 1 << 20));
    }
    assert_eq!(
        kinds.len(),
        3,
        "one part; two with part 1 full; two with part 1 short: {kinds:?}"
    );
}
