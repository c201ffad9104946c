//! Parses an image source as written in a Kubefile and dispatches to the right resolver.

use super::{docker_archive, oci_layout, ImageError, ResolvedImage};
use ferry_bundle::reference::{Reference, ReferenceError};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `oci:<dir>[:<tag>]`
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:<file>[:<name:tag>]`
    DockerArchive {
        file: PathBuf,
        image: Option<String>,
    },
    /// Anything else: a registry reference.
    Registry(Reference),
}

impl ImageSource {
    /// Parses `s`; relative paths are taken from `context`.
    pub fn parse(s: &str, context: &Path) -> Result<ImageSource, ReferenceError> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = match rest.split_once(':') {
                Some((d, t)) => (d, Some(t.to_string())),
                None => (rest, None),
            };
            return Ok(ImageSource::OciLayout {
                dir: context.join(dir),
                tag,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, image) = match rest.split_once(':') {
                Some((f, i)) => (f, Some(i.to_string())),
                None => (rest, None),
            };
            return Ok(ImageSource::DockerArchive {
                file: context.join(file),
                image,
            });
        }
        Reference::parse(s).map(ImageSource::Registry)
    }
}

/// Resolves a local source (OCI layout or docker archive). Registry sources go through
/// the puller and its content cache instead.
pub fn resolve_local(
    source_ref: &str,
    src: &ImageSource,
    name: Option<&Reference>,
) -> Result<ResolvedImage, ImageError> {
    match src {
        ImageSource::OciLayout { dir, tag } => {
            oci_layout::resolve(source_ref, dir, tag.as_deref(), name)
        }
        ImageSource::DockerArchive { file, image } => {
            docker_archive::resolve(source_ref, file, image.as_deref(), name)
        }
        ImageSource::Registry(_) => Err(ImageError::invalid(source_ref, "not a local source")),
    }
}

/// The name the build gives an image: `AS <name>` if given, else a registry reference
/// itself, else the name a local source records (read from `index.json` or
/// `manifest.json` only: nothing is pulled or hashed). `ferry images` shows this.
pub fn image_name(
    source_ref: &str,
    src: &ImageSource,
    name: Option<&Reference>,
) -> Result<Reference, ImageError> {
    match (src, name) {
        (_, Some(n)) => Ok(n.clone()),
        (ImageSource::Registry(r), None) => Ok(r.clone()),
        (ImageSource::OciLayout { dir, tag }, None) => {
            oci_layout::name(source_ref, dir, tag.as_deref(), None)
        }
        (ImageSource::DockerArchive { file, image }, None) => {
            docker_archive::name(source_ref, file, image.as_deref(), None)
        }
    }
}
