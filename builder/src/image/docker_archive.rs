//! `docker-archive:<file.tar>[:<name:tag>]` — a `docker save` tarball, legacy or OCI-style.
//!
//! Nothing is unpacked: the tar is indexed once (headers only), `manifest.json` and the
//! config are read, and each layer becomes a byte range of the tarball. Layers keep their
//! bytes, so their digests are known without hashing them twice: legacy `…/layer.tar`
//! members are uncompressed, and their sha256 is the config's `rootfs.diff_ids[i]`;
//! `blobs/sha256/<hex>` members are named by their digest. The writer verifies both while
//! copying. The image manifest, which `docker save` does not contain, is made here (OCI).

use super::walk::parse_digest;
use super::{
    Blob, BlobSource, ImageError, ResolvedImage, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}
#[derive(Deserialize)]
struct ConfigView {
    rootfs: RootFs,
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

pub fn resolve(
    source_ref: &str,
    file: &Path,
    want: Option<&str>,
    name: Option<&Reference>,
) -> Result<ResolvedImage, ImageError> {
    let io = |err| ImageError::Io {
        source_ref: source_ref.into(),
        path: file.to_path_buf(),
        err,
    };
    let members = index_tar(file).map_err(io)?;
    let member = |p: &str| -> Result<(u64, u64), ImageError> {
        let p = p.trim_start_matches("./");
        members.get(p).copied().ok_or_else(|| {
            ImageError::invalid(source_ref, format!("{p} is listed but not in the tarball"))
        })
    };
    let read_member = |p: &str| -> Result<Vec<u8>, ImageError> {
        let (off, len) = member(p)?;
        if len > 64 << 20 {
            return Err(ImageError::invalid(
                source_ref,
                format!("{p} is larger than 64 MiB"),
            ));
        }
        let f = std::fs::File::open(file).map_err(io)?;
        ferry_bundle::subfile::read_exact_at(&f, off, len as usize).map_err(io)
    };
    let manifests: Vec<SaveManifest> = serde_json::from_slice(&read_member("manifest.json")?)
        .map_err(|e| ImageError::invalid(source_ref, format!("manifest.json: {e}")))?;
    let chosen =
        match want {
            Some(w) => {
                let wn = Reference::parse(w).map_err(|e| ImageError::invalid(source_ref, e))?;
                manifests
                    .iter()
                    .find(|m| {
                        m.repo_tags
                            .iter()
                            .flatten()
                            .any(|t| Reference::parse(t).ok().as_ref() == Some(&wn))
                    })
                    .ok_or_else(|| {
                        ImageError::invalid(source_ref, format!("no image {w} in the tarball"))
                    })?
            }
            None if manifests.len() == 1 => &manifests[0],
            None => return Err(ImageError::invalid(
                source_ref,
                "the tarball holds several images; name one with docker-archive:<file>:<name:tag>",
            )),
        };
    let name = match name {
        Some(n) => n.clone(),
        None => {
            let t = chosen.repo_tags.iter().flatten().next().ok_or_else(|| {
                ImageError::invalid(
                    source_ref,
                    "the image has no RepoTags; add `AS <registry>/<repo>:<tag>` in the Kubefile",
                )
            })?;
            Reference::parse(t).map_err(|e| ImageError::invalid(source_ref, e))?
        }
    };
    let config_bytes = read_member(&chosen.config)?;
    let config_digest = Sha256Digest::of(&config_bytes);
    let config: ConfigView = serde_json::from_slice(&config_bytes)
        .map_err(|e| ImageError::invalid(source_ref, format!("{}: {e}", chosen.config)))?;
    if config.rootfs.diff_ids.len() != chosen.layers.len() {
        return Err(ImageError::invalid(
            source_ref,
            "config diff_ids and manifest.json Layers differ in number",
        ));
    }
    let mut blobs = Vec::new();
    let mut layer_descs = Vec::new();
    let f = std::fs::File::open(file).map_err(io)?;
    for (layer, diff_id) in chosen.layers.iter().zip(&config.rootfs.diff_ids) {
        let (off, len) = member(layer)?;
        let mut magic = [0u8; 4];
        let n = std::os::unix::fs::FileExt::read_at(&f, &mut magic, off).map_err(io)?;
        let media_type = match &magic[..n.min(4)] {
            [0x1f, 0x8b, ..] => OCI_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
            _ => OCI_LAYER_TAR,
        };
        let digest = match layer.trim_start_matches("./").strip_prefix("blobs/sha256/") {
            Some(hex) => Sha256Digest::from_hex(hex).ok_or_else(|| {
                ImageError::invalid(source_ref, format!("{layer}: bad blob name"))
            })?,
            None if media_type == OCI_LAYER_TAR => parse_digest(source_ref, diff_id)?,
            None => {
                let sub = ferry_bundle::subfile::SubFile::new(
                    Arc::new(f.try_clone().map_err(io)?),
                    off,
                    len,
                );
                ferry_bundle::digest::hash_reader(sub).map_err(io)?.0
            }
        };
        layer_descs.push(
            serde_json::json!({"mediaType": media_type, "digest": digest.oci(), "size": len}),
        );
        blobs.push(Blob {
            digest,
            size: len,
            media_type: media_type.to_string(),
            source: BlobSource::File {
                path: file.to_path_buf(),
                offset: off,
                len,
            },
        });
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.oci(), "size": config_bytes.len()},
        "layers": layer_descs,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    // Checked by oci-spec so what we make is a valid OCI manifest.
    oci_spec::image::ImageManifest::from_reader(&manifest_bytes[..])
        .map_err(|e| ImageError::invalid(source_ref, format!("made an invalid manifest: {e}")))?;
    let root = Blob {
        digest: Sha256Digest::of(&manifest_bytes),
        size: manifest_bytes.len() as u64,
        media_type: OCI_MANIFEST.into(),
        source: BlobSource::Bytes(Arc::new(manifest_bytes)),
    };
    let config_len = config_bytes.len() as u64;
    let mut all = vec![
        root.clone(),
        Blob {
            digest: config_digest,
            size: config_len,
            media_type: OCI_CONFIG.into(),
            source: BlobSource::Bytes(Arc::new(config_bytes)),
        },
    ];
    all.extend(blobs);
    let platforms = if config.os.is_empty() {
        vec![]
    } else {
        vec![format!("{}/{}", config.os, config.architecture)]
    };
    Ok(ResolvedImage {
        name,
        source: source_ref.to_string(),
        root,
        blobs: all,
        platforms,
    })
}

/// Member path → (data offset, size) for every regular file of the tarball, headers only.
fn index_tar(file: &Path) -> std::io::Result<HashMap<String, (u64, u64)>> {
    let f = std::fs::File::open(file)?;
    let mut ar = tar::Archive::new(f);
    let mut out = HashMap::new();
    for e in ar.entries_with_seek()? {
        let e = e?;
        if e.header().entry_type().is_file() {
            let p = e
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            out.insert(p, (e.raw_file_position(), e.size()));
        }
    }
    Ok(out)
}
