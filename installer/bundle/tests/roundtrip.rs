//! Writer → reader → verify → extract round trips, and every way a bundle can be damaged.

use ferry_bundle::verify::check;
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::{extract::extract, Bundle, BundleManifest, Sha256Digest};
use std::path::{Path, PathBuf};

fn build(dir: &Path) -> PathBuf {
    let out = dir.join("b.run");
    let stub = vec![0x7fu8; 3000];
    let mut w = BundleWriter::create(&out, &stub[..]).unwrap();
    let blob = vec![42u8; 100_000];
    let d = Sha256Digest::of(&blob);
    assert!(w.add_blob(&d, blob.len() as u64, &blob[..]).unwrap());
    assert!(
        !w.add_blob(&d, blob.len() as u64, &blob[..]).unwrap(),
        "shared blob stored twice"
    );
    w.add_entry("files/etc/hello.txt", 5, 0o600, &b"hello"[..])
        .unwrap();
    let long = format!("files/{}/deep.txt", "x".repeat(200));
    w.add_entry(&long, 3, 0o755, &b"abc"[..]).unwrap();
    let m = BundleManifest {
        name: "t".into(),
        ..Default::default()
    };
    w.finish(m).unwrap();
    out
}

#[test]
fn round_trip_check_and_extract() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path());
    let b = Bundle::open(&out).unwrap();
    assert_eq!(b.manifest.entries.len(), 3);
    assert_eq!(b.footer.payload_offset, 3000);
    let blob = Sha256Digest::of(&[42u8; 100_000]);
    let e = b.blob_entry(&blob).expect("blob found through the index");
    assert_eq!(e.sha256, blob);
    assert_eq!(b.blobs().map(|(d, _)| d).collect::<Vec<_>>(), [blob]);
    assert_eq!(b.entry("files/etc/hello.txt").unwrap().size, 5);
    assert!(b.entry("files/etc/nope").is_none());
    check(&b, &|_| {}).unwrap();
    let x = dir.path().join("x");
    let r = extract(&b, &x, &|_| {}).unwrap();
    assert_eq!(r.files, 4);
    assert_eq!(
        std::fs::read(x.join("files/etc/hello.txt")).unwrap(),
        b"hello"
    );
    assert!(x.join("bundle.json").exists());
    // Standard tools read the payload.
    let list = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("tail -c +3001 {} | tar -t", out.display()))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.contains("files/etc/hello.txt") && names.contains("bundle.json"),
        "{names}"
    );
}

#[test]
fn every_flipped_byte_after_the_stub_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path());
    let good = std::fs::read(&out).unwrap();
    // Flip one byte at many positions across payload, headers, padding and footer.
    let step = (good.len() - 3000) / 97;
    let mut positions: Vec<usize> = (3000..good.len()).step_by(step.max(1)).collect();
    positions.extend(good.len() - ferry_bundle::footer::FOOTER_LEN..good.len());
    positions.push(0); // stub too
    for pos in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x20;
        let p = dir.path().join("bad.run");
        std::fs::write(&p, &bad).unwrap();
        let res = Bundle::open(&p).and_then(|b| check(&b, &|_| {}).map(|_| ()));
        assert!(res.is_err(), "flip at {pos} of {} not detected", good.len());
    }
}

#[test]
fn truncation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path());
    let good = std::fs::read(&out).unwrap();
    for cut in [1usize, 100, 161, 5000, good.len() - 10] {
        let p = dir.path().join("cut.run");
        std::fs::write(&p, &good[..good.len() - cut]).unwrap();
        let err = Bundle::open(&p)
            .and_then(|b| check(&b, &|_| {}).map(|_| ()))
            .unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn blob_with_wrong_digest_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.run");
    let mut w = BundleWriter::create(&out, &b"stub"[..]).unwrap();
    let err = w
        .add_blob(&Sha256Digest::of(b"other"), 3, &b"abc"[..])
        .unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    drop(w);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "partial file left behind"
    );
}

/// A vouched blob is written byte for byte like a hashed one (same bundle), its size is
/// still checked, and a false vouch is caught by `--check`, not silently carried.
#[test]
fn a_vouched_blob_is_the_same_bundle_and_a_false_vouch_fails_check() {
    use ferry_bundle::writer::BlobCheck;
    let dir = tempfile::tempdir().unwrap();
    let blob = vec![7u8; 70_000];
    let d = Sha256Digest::of(&blob);
    let write = |name: &str, check: BlobCheck, digest: &Sha256Digest| {
        let out = dir.path().join(name);
        let mut w = BundleWriter::create(&out, &b"stub"[..]).unwrap();
        assert!(w
            .add_blob_checked(digest, blob.len() as u64, check, &blob[..])
            .unwrap());
        assert!(!w
            .add_blob_checked(digest, blob.len() as u64, check, &blob[..])
            .unwrap());
        w.finish(BundleManifest::default()).unwrap();
        out
    };
    let hashed = write("hashed.run", BlobCheck::Hash, &d);
    let vouched = write("vouched.run", BlobCheck::Vouched, &d);
    assert_eq!(
        std::fs::read(&hashed).unwrap(),
        std::fs::read(&vouched).unwrap()
    );
    let b = Bundle::open(&vouched).unwrap();
    assert_eq!(b.blob_entry(&d).unwrap().sha256, d);
    check(&b, &|_| {}).unwrap();

    let short = BundleWriter::create(&dir.path().join("short.run"), &b"stub"[..])
        .unwrap()
        .add_blob_checked(&d, blob.len() as u64 + 1, BlobCheck::Vouched, &blob[..])
        .unwrap_err();
    assert!(short.to_string().contains("were expected"), "{short}");

    let lie = write("lie.run", BlobCheck::Vouched, &Sha256Digest::of(b"other"));
    let err = check(&Bundle::open(&lie).unwrap(), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
}

/// The footer's payload sha256 is the bundle's identity (install prints and journals it):
/// a footer re-sealed with another bundle's identity must fail `--check`, although every
/// entry, bundle.json and the gaps still match.
#[test]
fn a_footer_with_another_identity_fails_check() {
    use ferry_bundle::footer::{Footer, FOOTER_LEN};
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path());
    let mut bytes = std::fs::read(&out).unwrap();
    let at = bytes.len() - FOOTER_LEN;
    let mut f = Footer::decode(&bytes[at..], bytes.len() as u64).unwrap();
    let real = f.payload_sha256;
    f.payload_sha256 = Sha256Digest::of(b"some other bundle");
    bytes[at..].copy_from_slice(&f.encode());
    let p = dir.path().join("relabelled.run");
    std::fs::write(&p, &bytes).unwrap();
    let b = Bundle::open(&p).expect("the footer itself is consistent");
    let err = check(&b, &|_| {}).unwrap_err().to_string();
    assert!(
        err.contains(&real.hex()) && err.contains("identity"),
        "{err}"
    );
    // Staging verifies the same way.
    let mut sink = Vec::new();
    assert!(ferry_bundle::verify::check_and_copy(&b, &|_| {}, Some(&mut sink)).is_err());
}

/// `b.run` rewritten as format 2 writes it: bundle.json says format 2 and the identity is
/// the sha256 of every payload byte (`identity` replaces it when given).
fn as_format_2(out: &Path, identity: Option<Sha256Digest>) -> Vec<u8> {
    use ferry_bundle::footer::{Footer, FOOTER_LEN};
    let mut bytes = std::fs::read(out).unwrap();
    let at = bytes.len() - FOOTER_LEN;
    let mut f = Footer::decode(&bytes[at..], bytes.len() as u64).unwrap();
    let m = (f.payload_offset + f.manifest_offset) as usize;
    let json = &mut bytes[m..m + f.manifest_len as usize];
    let s = String::from_utf8(json.to_vec()).unwrap();
    let v2 = s.replacen("\"format\": 3", "\"format\": 2", 1);
    assert_ne!(s, v2, "bundle.json names its format");
    json.copy_from_slice(v2.as_bytes());
    f.version = 2;
    f.manifest_sha256 = Sha256Digest::of(v2.as_bytes());
    let payload = &bytes[f.payload_offset as usize..(f.payload_offset + f.payload_len) as usize];
    f.payload_sha256 = identity.unwrap_or_else(|| Sha256Digest::of(payload));
    bytes[at..].copy_from_slice(&f.encode());
    bytes
}

/// Bundles built before format 3 are still checked, with their whole-payload identity.
#[test]
fn a_format_2_bundle_still_checks_by_its_whole_payload_hash() {
    let dir = tempfile::tempdir().unwrap();
    let out = build(dir.path());
    let p = dir.path().join("v2.run");
    std::fs::write(&p, as_format_2(&out, None)).unwrap();
    let b = Bundle::open(&p).unwrap();
    assert_eq!(b.footer.version, 2);
    assert!(!b.footer.identity_is_derived());
    check(&b, &|_| {}).unwrap();
    let mut sink = Vec::new();
    ferry_bundle::verify::check_and_copy(&b, &|_| {}, Some(&mut sink)).unwrap();
    assert_eq!(sink, std::fs::read(&p).unwrap());

    // A v2 footer carrying the derived (v3-style) identity is not its whole-payload hash.
    let v3 = Bundle::open(&out).unwrap().footer.payload_sha256;
    std::fs::write(&p, as_format_2(&out, Some(v3))).unwrap();
    let err = check(&Bundle::open(&p).unwrap(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("identity"), "{err}");
}

/// Format 3's identity is derived from the hashes `--check` verifies, not from every byte
/// again; it is still what the footer must carry.
#[test]
fn the_identity_is_derived_from_the_manifest_and_gaps_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Bundle::open(&build(dir.path())).unwrap();
    assert!(b.footer.identity_is_derived());
    assert_eq!(
        b.footer.payload_sha256,
        ferry_bundle::footer::derived_identity(
            &b.footer.manifest_sha256,
            &b.footer.gaps_sha256,
            b""
        )
    );
}
