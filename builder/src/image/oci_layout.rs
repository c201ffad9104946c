//! `oci:<dir>[:<tag>]` — an OCI image layout directory (skopeo, umoci, buildah, crane).

use super::walk::{collect_blobs, parse_digest};
use super::{Blob, BlobSource, ImageError, ResolvedImage};
use ferry_bundle::reference::Reference;
use oci_spec::image::ImageIndex;
use std::path::Path;

/// Annotation containerd and ferry use for an image's full name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's own name annotation: a tag, or sometimes a full reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn resolve(
    source_ref: &str,
    dir: &Path,
    tag: Option<&str>,
    name: Option<&Reference>,
) -> Result<ResolvedImage, ImageError> {
    let index_path = dir.join("index.json");
    let f = std::fs::File::open(&index_path).map_err(|err| ImageError::Io {
        source_ref: source_ref.into(),
        path: index_path.clone(),
        err,
    })?;
    let index = ImageIndex::from_reader(f)
        .map_err(|e| ImageError::invalid(source_ref, format!("{}: {e}", index_path.display())))?;
    let ann = |d: &oci_spec::image::Descriptor, k: &str| {
        d.annotations().as_ref().and_then(|a| a.get(k).cloned())
    };
    let candidates: Vec<_> = index
        .manifests()
        .iter()
        .filter(|d| match tag {
            None => true,
            Some(t) => {
                ann(d, ANNOTATION_REF_NAME).as_deref() == Some(t)
                    || ann(d, ANNOTATION_IMAGE_NAME)
                        .is_some_and(|n| n == t || n.ends_with(&format!(":{t}")))
            }
        })
        .collect();
    let desc = match candidates.as_slice() {
        [one] => *one,
        [] => {
            let tags: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|d| ann(d, ANNOTATION_REF_NAME))
                .collect();
            return Err(ImageError::invalid(
                source_ref,
                format!(
                    "no image tagged {:?} in {}; tags there: {}",
                    tag.unwrap_or(""),
                    index_path.display(),
                    tags.join(", ")
                ),
            ));
        }
        _ => {
            return Err(ImageError::invalid(
                source_ref,
                "the layout holds several images; name one with oci:<dir>:<tag>",
            ))
        }
    };
    let name = match name {
        Some(n) => n.clone(),
        None => {
            let own = ann(desc, ANNOTATION_IMAGE_NAME)
                .or_else(|| ann(desc, ANNOTATION_REF_NAME).filter(|n| n.contains('/')))
                .ok_or_else(|| {
                    ImageError::invalid(
                        source_ref,
                        "the layout does not record a full image name; add `AS <registry>/<repo>:<tag>` in the Kubefile",
                    )
                })?;
            Reference::parse(&own).map_err(|e| ImageError::invalid(source_ref, e))?
        }
    };
    let digest = parse_digest(source_ref, desc.digest().as_ref())?;
    let lookup = |d: &ferry_bundle::Sha256Digest| {
        let p = dir.join("blobs/sha256").join(d.hex());
        std::fs::metadata(&p)
            .ok()
            .map(|m| BlobSource::whole_file(p, m.len()))
    };
    let root_src = lookup(&digest).ok_or_else(|| {
        ImageError::invalid(
            source_ref,
            format!("manifest blob {} missing from the layout", desc.digest()),
        )
    })?;
    let root = Blob {
        digest,
        size: desc.size(),
        media_type: desc.media_type().to_string(),
        source: root_src,
    };
    let (blobs, platforms) = collect_blobs(source_ref, root.clone(), &lookup)?;
    Ok(ResolvedImage {
        name,
        source: source_ref.to_string(),
        root,
        blobs,
        platforms,
    })
}
