//! What one carried image is made of, read from the bundle: its documents (manifests and
//! indexes) and its blobs (configs and layers), in the order a registry accepts them.
//!
//! Pushing an image to a registry (`ferry push`, and the installer's push into a site's
//! registry) means uploading every blob, then `PUT`ting every manifest *after* what it
//! references: Distribution refuses a manifest whose blobs or child manifests it does not
//! have yet (`MANIFEST_BLOB_UNKNOWN`). [`walk`] gives exactly that order.
//!
//! A document is *complete* when everything it references is in the bundle: an image
//! manifest whose config and layers are carried (a foreign layer with `urls` counts as
//! present: registries do not hold those), an index whose every child is a complete
//! manifest. Only complete documents can be pushed as manifests. An index kept as-is
//! with only some of its platforms (`--platform a,b` of a wider image, or a digest pin:
//! see `ferry_builder::pull`) is incomplete; its carried children are complete and are
//! pushed on their own, and callers decide what stands for the index.
//!
//! Documents are read from the bundle (at most [`MAX_MANIFEST_BYTES`] each) and checked
//! against their digest before they are parsed; layers are never read. A delta bundle
//! with its base attached is walked through both ([`Bundle::locate`]); without its base,
//! what only the base holds counts as not carried.

use crate::oci::{self, Descriptor, Manifest, MAX_INDEX_DEPTH, MAX_MANIFEST_BYTES};
use crate::reader::Bundle;
use crate::Sha256Digest;
use std::collections::HashSet;

/// A manifest or index of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Digest, size and media type (the one its parent or bundle.json gives it).
    pub desc: Descriptor,
    /// Everything it references is carried (see the module doc).
    pub complete: bool,
    /// What it references: an index's entries, or a manifest's config and layers (those
    /// the bundle carries).
    pub refs: Vec<Descriptor>,
}

/// An image of the bundle, ready to be pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageGraph {
    /// Every document reachable from the root, each once, children before the
    /// documents that list them (the root is last).
    pub documents: Vec<Document>,
    /// Configs and layers the bundle carries, each once, in the order first met.
    pub blobs: Vec<Descriptor>,
}

impl ImageGraph {
    /// The root document (the last one).
    pub fn root(&self) -> &Document {
        self.documents.last().expect("a walked image has a root")
    }
    /// Every digest this image occupies in the bundle: documents and blobs.
    pub fn digests(&self) -> impl Iterator<Item = Sha256Digest> + '_ {
        self.documents
            .iter()
            .map(|d| d.desc.digest)
            .chain(self.blobs.iter().map(|b| b.digest))
    }
}

/// Why an image of the bundle cannot be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {digest}: {reason}")]
pub struct GraphError {
    pub digest: Sha256Digest,
    pub reason: String,
}

/// Walks the image whose root is `root` (a manifest or index the bundle carries).
pub fn walk(b: &Bundle, root: &Descriptor) -> Result<ImageGraph, GraphError> {
    let mut g = ImageGraph::default();
    let mut seen_blobs = HashSet::new();
    visit(b, root, 0, &mut g, &mut seen_blobs)?;
    Ok(g)
}

/// Walks one of the bundle's images (bundle.json `images[]`).
pub fn walk_image(b: &Bundle, img: &crate::ImageRecord) -> Result<ImageGraph, GraphError> {
    let size = b
        .locate(&crate::paths::blob_entry(&img.digest))
        .map_or(0, |l| l.entry.size);
    walk(
        b,
        &Descriptor::new(img.media_type.clone(), img.digest, size),
    )
}

/// Reads and checks one document of the bundle.
pub fn read_document(b: &Bundle, d: &Descriptor) -> Result<Vec<u8>, GraphError> {
    let fail = |reason: String| GraphError {
        digest: d.digest,
        reason,
    };
    let at = b
        .locate(&crate::paths::blob_entry(&d.digest))
        .ok_or_else(|| fail("not carried by the bundle".into()))?;
    let e = at.entry;
    if e.size > MAX_MANIFEST_BYTES {
        return Err(fail(format!(
            "{} bytes, more than a manifest may have ({MAX_MANIFEST_BYTES})",
            e.size
        )));
    }
    let mut bytes = vec![0u8; e.size as usize];
    at.bundle
        .file
        .read_exact_at(&mut bytes, at.absolute_offset())
        .map_err(|err| {
            fail(format!(
                "reading it from {}: {err}",
                at.bundle.path.display()
            ))
        })?;
    let found = Sha256Digest::of(&bytes);
    if found != d.digest {
        return Err(fail(format!(
            "its bytes hash to {found}: the bundle is damaged (run --check)"
        )));
    }
    Ok(bytes)
}

/// Whether the bundle (or, for a delta with its base attached, the base) holds a blob.
fn carried(b: &Bundle, d: &Sha256Digest) -> bool {
    b.locate(&crate::paths::blob_entry(d)).is_some()
}

/// Adds `d` and what it references to `g`; returns whether `d` is complete.
fn visit(
    b: &Bundle,
    d: &Descriptor,
    depth: usize,
    g: &mut ImageGraph,
    seen_blobs: &mut HashSet<Sha256Digest>,
) -> Result<bool, GraphError> {
    if let Some(doc) = g.documents.iter().find(|x| x.desc.digest == d.digest) {
        return Ok(doc.complete);
    }
    if depth > MAX_INDEX_DEPTH {
        return Err(GraphError {
            digest: d.digest,
            reason: format!("indexes nest deeper than {MAX_INDEX_DEPTH}"),
        });
    }
    let bytes = read_document(b, d)?;
    let hint = (!d.media_type.is_empty()).then_some(d.media_type.as_str());
    let (media_type, m): (String, Manifest) =
        oci::parse_manifest(&bytes, hint).map_err(|e| GraphError {
            digest: d.digest,
            reason: e.to_string(),
        })?;
    let mut complete = true;
    let mut refs = Vec::new();
    if m.is_index(&media_type) {
        for c in m.children() {
            if carried(b, &c.digest) && oci::is_document(&c.media_type) {
                complete &= visit(b, c, depth + 1, g, seen_blobs)?;
            } else {
                complete = false;
            }
            refs.push(c.clone());
        }
    } else {
        for blob in m.blob_descriptors() {
            match b
                .locate(&crate::paths::blob_entry(&blob.digest))
                .map(|l| l.entry)
            {
                Some(e) => {
                    let mut blob = blob.clone();
                    blob.size = e.size;
                    if seen_blobs.insert(blob.digest) {
                        g.blobs.push(blob.clone());
                    }
                    refs.push(blob);
                }
                None if !blob.urls.is_empty() => {}
                None => complete = false,
            }
        }
    }
    let mut desc = d.clone();
    desc.media_type = media_type;
    desc.size = bytes.len() as u64;
    g.documents.push(Document {
        desc,
        complete,
        refs,
    });
    Ok(complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{LayoutIndex, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
    use crate::writer::BundleWriter;
    use crate::BundleManifest;

    struct Fixture {
        _dir: tempfile::TempDir,
        bundle: Bundle,
        manifests: Vec<Descriptor>,
        index: Descriptor,
    }

    /// A bundle carrying two platform manifests sharing a layer, an index listing them
    /// and a third, absent one.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.run");
        let mut w = BundleWriter::create(&path, &b"stub"[..]).unwrap();
        let mut add = |bytes: &[u8], mt: &str| {
            let d = Sha256Digest::of(bytes);
            w.add_blob(&d, bytes.len() as u64, bytes).unwrap();
            Descriptor::new(mt, d, bytes.len() as u64)
        };
        let layer = add(b"shared layer", OCI_LAYER_GZIP);
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let cfg = add(
                format!(r#"{{"os":"linux","architecture":"{arch}"}}"#).as_bytes(),
                OCI_CONFIG,
            );
            let m = Manifest::image(cfg, vec![layer.clone()]).to_json();
            manifests.push(add(&m, OCI_MANIFEST));
        }
        let absent = Descriptor::new(OCI_MANIFEST, Sha256Digest::of(b"absent"), 6);
        let mut children = manifests.clone();
        children.push(absent);
        let idx = LayoutIndex::of(children).to_json();
        let index = add(&idx, OCI_INDEX);
        w.finish(BundleManifest {
            name: "g".into(),
            ..Default::default()
        })
        .unwrap();
        Fixture {
            bundle: Bundle::open(&path).unwrap(),
            _dir: dir,
            manifests,
            index,
        }
    }

    #[test]
    fn a_manifest_is_complete_with_its_blobs_listed_once() {
        let f = fixture();
        let g = walk(&f.bundle, &f.manifests[0]).unwrap();
        assert_eq!(g.documents.len(), 1);
        assert!(g.root().complete);
        assert_eq!(g.blobs.len(), 2, "config and layer");
        assert_eq!(g.digests().count(), 3);
    }

    #[test]
    fn a_partial_index_is_incomplete_and_its_children_come_first() {
        let f = fixture();
        let g = walk(&f.bundle, &f.index).unwrap();
        let order: Vec<Sha256Digest> = g.documents.iter().map(|d| d.desc.digest).collect();
        assert_eq!(
            order,
            [f.manifests[0].digest, f.manifests[1].digest, f.index.digest]
        );
        assert!(!g.root().complete, "one child is not carried");
        assert!(g.documents[0].complete && g.documents[1].complete);
        assert_eq!(g.root().refs.len(), 3);
        assert_eq!(g.documents[0].refs.len(), 2, "config and layer");
        assert_eq!(g.blobs.len(), 3, "two configs, one shared layer");
    }

    #[test]
    fn a_missing_or_damaged_document_is_named() {
        let f = fixture();
        let absent = Descriptor::new(OCI_MANIFEST, Sha256Digest::of(b"nope"), 4);
        let e = walk(&f.bundle, &absent).unwrap_err();
        assert_eq!(e.digest, absent.digest);
        assert!(e.to_string().contains("not carried"), "{e}");
    }
}
