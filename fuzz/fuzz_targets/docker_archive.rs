//! A `docker save` tarball's `manifest.json` (and through it the config and layer
//! references), as `IMAGE docker-archive:<file>` reads it. The harness wraps the input as
//! `manifest.json` in a tarball that also holds a config, a legacy `layer.tar` and an
//! OCI-style `blobs/sha256/<hex>` layer for it to refer to.
//!
//! Oracle: an image resolved from the tarball has blobs whose sizes are the members'
//! sizes, and a manifest that matches its digest.
#![no_main]

use ferry_builder::image::{resolve_all, resolve_local, BlobSource, ImageSource};
use ferry_bundle::Sha256Digest;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The tarball's fixed members: (path, bytes).
fn members() -> &'static Vec<(String, Vec<u8>)> {
    static M: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    M.get_or_init(|| {
        let layer = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o644);
            b.append_data(&mut h, "hello", &b"hello"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let diff_id = Sha256Digest::of(&layer).to_string();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        vec![
            ("config.json".into(), config.clone().into_bytes()),
            (format!("blobs/sha256/{}", Sha256Digest::of(config.as_bytes()).hex()), config.into_bytes()),
            ("layer.tar".into(), layer.clone()),
            (format!("blobs/sha256/{}", Sha256Digest::of(&layer).hex()), layer),
        ]
    })
}

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let file = common::scratch().join("image.tar");
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in members()
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .chain([("manifest.json", data)])
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, bytes).unwrap();
    }
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();

    let check = |img: &ferry_builder::image::ResolvedImage| {
        for blob in &img.blobs {
            if let BlobSource::File { len, .. } = &blob.source {
                assert_eq!(*len, blob.size, "{}", blob.digest);
            }
        }
        let root = img.root.source.read_small().unwrap();
        assert_eq!(Sha256Digest::of(&root), img.root.digest);
        let _ = img.size();
    };
    if let Ok(all) = resolve_all("docker-archive:image.tar", &file) {
        all.iter().for_each(check);
    }
    let src = ImageSource::DockerArchive {
        file: file.clone(),
        image: None,
    };
    let name = ferry_bundle::reference::Reference::parse("docker.io/library/x:1").unwrap();
    if let Ok(img) = resolve_local("docker-archive:image.tar", &src, Some(&name)) {
        check(&img);
    }
});
