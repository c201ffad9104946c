//! `registry`: serve the bundle's images read-only, in the foreground.

use crate::cli::RegistryArgs;
use crate::registry::{serve, BlobLocation, ImageStore, ServeOptions, StoredImage};
use anyhow::{Context, Result};
use ferry_bundle::reference::Reference;
use ferry_bundle::{Bundle, Sha256Digest};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The registry's view of a bundle: every image name → its root digest, every blob →
/// its byte range in the bundle file. Nothing is read but bundle.json and manifests.
pub fn store_from_bundle(b: &Bundle) -> Result<ImageStore> {
    let mut blobs = HashMap::new();
    let prefix = format!("{}/blobs/sha256/", ferry_bundle::OCI_DIR);
    for e in &b.manifest.entries {
        if let Some(hex) = e.path.strip_prefix(&prefix) {
            if let Some(d) = Sha256Digest::from_hex(hex) {
                blobs.insert(d, BlobLocation { path: b.path.clone(), offset: b.absolute_offset(e), len: e.size });
            }
        }
    }
    let mut images = Vec::new();
    for i in &b.manifest.images {
        let reference = Reference::parse(&i.name).map_err(anyhow::Error::msg).with_context(|| format!("bundle.json image {}", i.name))?;
        let digest = Sha256Digest::from_oci(&i.digest).with_context(|| format!("bundle.json image {}: bad digest {}", i.name, i.digest))?;
        images.push(StoredImage { reference, digest, media_type: i.media_type.clone() });
    }
    Ok(ImageStore::new(images, blobs)?)
}

pub fn run(bundle: Option<&Path>, args: &RegistryArgs) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)?;
    let store = Arc::new(store_from_bundle(&b)?);
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!("serving {} images of {} on {}", b.manifest.images.len(), b.path.display(), args.listen);
    serve(store, listener, ServeOptions::default())?;
    Ok(ExitCode::SUCCESS)
}
