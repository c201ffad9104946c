//! `oci:<dir>[:<tag>]` — an OCI image layout directory (skopeo, umoci, buildah, crane).
//!
//! The layout's `index.json` is read with the bundle crate's [`LayoutIndex`], and an
//! image's own name with its [`image_name`] rule (containerd's annotation, else a full
//! reference in `org.opencontainers.image.ref.name`): the same reader and rule the
//! installer's registry uses on an extracted bundle.

use super::walk::collect_blobs;
use super::{Blob, BlobSource, ImageError, ResolvedImage};
use ferry_bundle::oci::{
    image_name, Descriptor, LayoutIndex, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
use ferry_bundle::reference::Reference;
use std::path::Path;

/// A layout's index.json, read.
fn read_index(source_ref: &str, dir: &Path) -> Result<LayoutIndex, ImageError> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|err| ImageError::Io {
        source_ref: source_ref.into(),
        path: index_path.clone(),
        err,
    })?;
    LayoutIndex::parse(&bytes)
        .map_err(|e| ImageError::invalid(source_ref, format!("{}: {e}", index_path.display())))
}

/// The index entry tagged `tag` (its ref name, or its full name or that name's tag), or
/// the only entry.
fn choose<'a>(
    source_ref: &str,
    dir: &Path,
    index: &'a LayoutIndex,
    tag: Option<&str>,
) -> Result<&'a Descriptor, ImageError> {
    let ann = |d: &Descriptor, k: &str| d.annotations.get(k).cloned();
    let candidates: Vec<&Descriptor> = index
        .manifests
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
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => {
            let tags: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| ann(d, ANNOTATION_REF_NAME))
                .collect();
            Err(ImageError::invalid(
                source_ref,
                format!(
                    "no image tagged {:?} in {}; tags there: {}",
                    tag.unwrap_or(""),
                    dir.join("index.json").display(),
                    tags.join(", ")
                ),
            ))
        }
        _ => Err(ImageError::invalid(
            source_ref,
            "the layout holds several images; name one with oci:<dir>:<tag>",
        )),
    }
}

/// The name the chosen entry gets: `name` (the Kubefile's `AS`), or its own.
fn name_of(
    source_ref: &str,
    desc: &Descriptor,
    name: Option<&Reference>,
) -> Result<Reference, ImageError> {
    if let Some(n) = name {
        return Ok(n.clone());
    }
    image_name(desc)
        .map_err(|e| ImageError::invalid(source_ref, e))?
        .ok_or_else(|| {
            ImageError::invalid(
                source_ref,
                "the layout does not record a full image name; add `AS <registry>/<repo>:<tag>` in the Kubefile",
            )
        })
}

pub fn resolve(
    source_ref: &str,
    dir: &Path,
    tag: Option<&str>,
    name: Option<&Reference>,
) -> Result<ResolvedImage, ImageError> {
    let index = read_index(source_ref, dir)?;
    let desc = choose(source_ref, dir, &index, tag)?;
    let name = name_of(source_ref, desc, name)?;
    let lookup = |d: &ferry_bundle::Sha256Digest| {
        let p = dir.join("blobs/sha256").join(d.hex());
        std::fs::metadata(&p)
            .ok()
            .map(|m| BlobSource::whole_file(p, m.len()))
    };
    let root_src = lookup(&desc.digest).ok_or_else(|| {
        ImageError::invalid(
            source_ref,
            format!("manifest blob {} missing from the layout", desc.digest),
        )
    })?;
    let root = Blob {
        digest: desc.digest,
        size: desc.size,
        media_type: desc.media_type.clone(),
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

/// The name [`resolve`] gives the image, reading only `index.json`: what `ferry images`
/// shows.
pub fn name(
    source_ref: &str,
    dir: &Path,
    tag: Option<&str>,
    name: Option<&Reference>,
) -> Result<Reference, ImageError> {
    let index = read_index(source_ref, dir)?;
    let desc = choose(source_ref, dir, &index, tag)?;
    name_of(source_ref, desc, name)
}
