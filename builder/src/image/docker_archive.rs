//! `docker-archive:<file.tar>[:<name:tag>]` — a `docker save` tarball, legacy or OCI-style.
//!
//! Nothing is unpacked: the tar is indexed once (headers only), `manifest.json` and the
//! config are read, and each layer becomes a byte range of the tarball. Layers keep their
//! bytes, so their digests are known without hashing them twice: legacy `…/layer.tar`
//! members are uncompressed, and their sha256 is the config's `rootfs.diff_ids[i]`;
//! `blobs/sha256/<hex>` members are named by their digest. The writer verifies both while
//! copying. The image manifest, which `docker save` does not contain, is made here (OCI).
//!
//! [`resolve`] picks one image of the tarball; [`resolve_all`] returns every image under
//! every one of its `RepoTags`, for multi-image tarballs such as k3s's
//! `k3s-airgap-images-<arch>.tar` (one `docker save` of all of k3s's system images). Both
//! index the tarball once and build each image with the same [`Archive::image`].

use super::walk::parse_digest;
use super::{Blob, BlobSource, ImageError, ResolvedImage};
use ferry_bundle::oci::{
    Descriptor, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
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

/// A `docker save` tarball, indexed: where each member's bytes are, and its `manifest.json`.
struct Archive<'a> {
    source_ref: &'a str,
    file: &'a Path,
    members: HashMap<String, (u64, u64)>,
    manifests: Vec<SaveManifest>,
}

impl<'a> Archive<'a> {
    /// Indexes `file` (tar headers only) and reads its `manifest.json`.
    fn open(source_ref: &'a str, file: &'a Path) -> Result<Archive<'a>, ImageError> {
        let members = index_tar(file).map_err(|err| io_error(source_ref, file, err))?;
        let mut ar = Archive {
            source_ref,
            file,
            members,
            manifests: Vec::new(),
        };
        ar.manifests = serde_json::from_slice(&ar.read_member("manifest.json")?)
            .map_err(|e| ImageError::invalid(source_ref, format!("manifest.json: {e}")))?;
        Ok(ar)
    }

    fn io(&self, err: std::io::Error) -> ImageError {
        io_error(self.source_ref, self.file, err)
    }

    fn member(&self, p: &str) -> Result<(u64, u64), ImageError> {
        let p = p.trim_start_matches("./");
        self.members.get(p).copied().ok_or_else(|| {
            ImageError::invalid(
                self.source_ref,
                format!("{p} is listed but not in the tarball"),
            )
        })
    }

    fn read_member(&self, p: &str) -> Result<Vec<u8>, ImageError> {
        let (off, len) = self.member(p)?;
        if len > 64 << 20 {
            return Err(ImageError::invalid(
                self.source_ref,
                format!("{p} is larger than 64 MiB"),
            ));
        }
        let f = std::fs::File::open(self.file).map_err(|e| self.io(e))?;
        ferry_bundle::subfile::read_exact_at(&f, off, len as usize).map_err(|e| self.io(e))
    }

    /// The image of one `manifest.json` entry, named `name`.
    fn image(&self, chosen: &SaveManifest, name: Reference) -> Result<ResolvedImage, ImageError> {
        let source_ref = self.source_ref;
        let file = self.file;
        let config_bytes = self.read_member(&chosen.config)?;
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
        let f = std::fs::File::open(file).map_err(|e| self.io(e))?;
        for (layer, diff_id) in chosen.layers.iter().zip(&config.rootfs.diff_ids) {
            let (off, len) = self.member(layer)?;
            let mut magic = [0u8; 4];
            let n =
                std::os::unix::fs::FileExt::read_at(&f, &mut magic, off).map_err(|e| self.io(e))?;
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
                        Arc::new(f.try_clone().map_err(|e| self.io(e))?),
                        off,
                        len,
                    );
                    ferry_bundle::digest::hash_reader(sub)
                        .map_err(|e| self.io(e))?
                        .0
                }
            };
            layer_descs.push(Descriptor::new(media_type, digest, len));
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
        let config_desc = Descriptor::new(OCI_CONFIG, config_digest, config_bytes.len() as u64);
        let manifest_bytes = Manifest::image(config_desc, layer_descs).to_json();
        // Checked by oci-spec so what we make is a valid OCI manifest.
        oci_spec::image::ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| {
            ImageError::invalid(source_ref, format!("made an invalid manifest: {e}"))
        })?;
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
}

fn io_error(source_ref: &str, file: &Path, err: std::io::Error) -> ImageError {
    ImageError::Io {
        source_ref: source_ref.into(),
        path: file.to_path_buf(),
        err,
    }
}

impl Archive<'_> {
    /// The `manifest.json` entry tagged `want`, or the only one.
    fn choose(&self, want: Option<&str>) -> Result<&SaveManifest, ImageError> {
        let source_ref = self.source_ref;
        let manifests = &self.manifests;
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
                    })
            }
            None if manifests.len() == 1 => Ok(&manifests[0]),
            None => Err(ImageError::invalid(
                source_ref,
                "the tarball holds several images; name one with docker-archive:<file>:<name:tag>",
            )),
        }
    }

    /// The name `chosen` gets: `name` (the Kubefile's `AS`), or its first `RepoTags` entry.
    fn name(
        &self,
        chosen: &SaveManifest,
        name: Option<&Reference>,
    ) -> Result<Reference, ImageError> {
        if let Some(n) = name {
            return Ok(n.clone());
        }
        let t = chosen.repo_tags.iter().flatten().next().ok_or_else(|| {
            ImageError::invalid(
                self.source_ref,
                "the image has no RepoTags; add `AS <registry>/<repo>:<tag>` in the Kubefile",
            )
        })?;
        Reference::parse(t).map_err(|e| ImageError::invalid(self.source_ref, e))
    }
}

/// One image of the tarball: the one tagged `want`, or the only one; named `name`, or by
/// its first `RepoTags` entry.
pub fn resolve(
    source_ref: &str,
    file: &Path,
    want: Option<&str>,
    name: Option<&Reference>,
) -> Result<ResolvedImage, ImageError> {
    let ar = Archive::open(source_ref, file)?;
    let chosen = ar.choose(want)?;
    let name = ar.name(chosen, name)?;
    ar.image(chosen, name)
}

/// The name [`resolve`] gives the image, reading only the tarball's headers and its
/// `manifest.json` (no layer is hashed): what `ferry images` shows.
pub fn name(
    source_ref: &str,
    file: &Path,
    want: Option<&str>,
    name: Option<&Reference>,
) -> Result<Reference, ImageError> {
    let ar = Archive::open(source_ref, file)?;
    let chosen = ar.choose(want)?;
    ar.name(chosen, name)
}

/// Every image of a multi-image `docker save` tarball (such as k3s's
/// `k3s-airgap-images-<arch>.tar`), once per `RepoTags` entry: an image with two tags comes
/// back twice, with the same blobs under two names. Tags are normalised like any reference
/// (`rancher/pause:3.6` → `docker.io/rancher/pause:3.6`).
///
/// An image without `RepoTags` is an error (there is no name to serve it under), and so is
/// one name given to two different images; a name listed twice for the same image is kept
/// once. Images come back in `manifest.json` order, tags in `RepoTags` order.
pub fn resolve_all(source_ref: &str, file: &Path) -> Result<Vec<ResolvedImage>, ImageError> {
    let ar = Archive::open(source_ref, file)?;
    let mut out: Vec<ResolvedImage> = Vec::new();
    for m in &ar.manifests {
        let mut names = Vec::new();
        for t in m.repo_tags.iter().flatten() {
            names.push(Reference::parse(t).map_err(|e| ImageError::invalid(source_ref, e))?);
        }
        let Some(first) = names.first() else {
            return Err(ImageError::invalid(
                source_ref,
                format!(
                    "image {} has no RepoTags, so it has no name to be served under",
                    m.config
                ),
            ));
        };
        let image = ar.image(m, first.clone())?;
        for name in names {
            if let Some(prev) = out.iter().find(|i| i.name == name) {
                if prev.root.digest != image.root.digest {
                    return Err(ImageError::invalid(
                        source_ref,
                        format!("{name} names two different images in the tarball"),
                    ));
                }
                continue;
            }
            out.push(ResolvedImage {
                name,
                ..image.clone()
            });
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    //! Real `docker save`-format tarballs, made with umoci (image) and skopeo
    //! (docker-archive), as DESIGN §4 asks: no hand-written fixtures.
    use super::*;
    use std::collections::HashSet;
    use std::io::Read;
    use std::path::PathBuf;
    use std::process::Command;

    fn run(program: &str, args: &[&str]) {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install umoci skopeo)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An image with one layer holding `/etc/id` = `id`, tagged `tag` in the OCI layout.
    fn build_image(layout: &Path, tag: &str, id: &str) {
        let l = layout.to_str().unwrap();
        if !layout.join("index.json").exists() {
            run("umoci", &["init", "--layout", l]);
        }
        let image = format!("{l}:{tag}");
        run("umoci", &["new", "--image", &image]);
        let work = tempfile::tempdir().unwrap();
        let bundle = work.path().join("bundle");
        let b = bundle.to_str().unwrap();
        let rootless = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) != 0)
            .unwrap_or(true);
        let mut unpack = vec!["unpack"];
        if rootless {
            unpack.push("--rootless");
        }
        unpack.extend(["--image", &image, b]);
        run("umoci", &unpack);
        std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
        std::fs::write(bundle.join("rootfs/etc/id"), id).unwrap();
        run("umoci", &["repack", "--image", &image, b]);
        run(
            "umoci",
            &[
                "config",
                "--image",
                &image,
                "--os",
                "linux",
                "--architecture",
                "amd64",
            ],
        );
    }

    /// `skopeo copy oci:<layout>:<tag> docker-archive:<out>:<tags[0]>` plus the other tags.
    fn save(layout: &Path, tag: &str, out: &Path, tags: &[&str]) {
        let src = format!("oci:{}:{tag}", layout.display());
        let dest = format!("docker-archive:{}:{}", out.display(), tags[0]);
        let mut args = vec!["--insecure-policy", "copy", "--quiet"];
        for t in &tags[1..] {
            args.extend(["--additional-tag", t]);
        }
        args.extend([src.as_str(), dest.as_str()]);
        run("skopeo", &args);
    }

    /// Joins single-image `docker save` tarballs into one, as `docker save a b` writes it:
    /// every member once, one `manifest.json` listing all images. `edit` may change that
    /// list before it is written.
    fn merge(parts: &[PathBuf], out: &Path, edit: impl FnOnce(&mut Vec<serde_json::Value>)) {
        let mut manifests: Vec<serde_json::Value> = Vec::new();
        let mut seen = HashSet::new();
        let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
        for part in parts {
            let mut ar = tar::Archive::new(std::fs::File::open(part).unwrap());
            for e in ar.entries().unwrap() {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().to_string();
                if path == "manifest.json" {
                    let mut s = String::new();
                    e.read_to_string(&mut s).unwrap();
                    let list: Vec<serde_json::Value> = serde_json::from_str(&s).unwrap();
                    manifests.extend(list);
                } else if path != "repositories"
                    && e.header().entry_type().is_file()
                    && seen.insert(path.clone())
                {
                    let mut h = e.header().clone();
                    builder.append_data(&mut h, &path, &mut e).unwrap();
                }
            }
        }
        edit(&mut manifests);
        let json = serde_json::to_vec(&manifests).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, "manifest.json", &json[..])
            .unwrap();
        builder.finish().unwrap();
    }

    /// Two images, `a` (tags `example.org/a:1` and `:2`) and `b` (`rancher/b:1`, a short
    /// Docker Hub name as `docker save` writes k3s's images), in one tarball.
    fn two_image_archive(dir: &Path, edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> PathBuf {
        let layout = dir.join("layout");
        build_image(&layout, "a", "image a");
        build_image(&layout, "b", "image b");
        let a = dir.join("a.tar");
        let b = dir.join("b.tar");
        save(&layout, "a", &a, &["example.org/a:1", "example.org/a:2"]);
        save(&layout, "b", &b, &["rancher/b:1"]);
        let both = dir.join("both.tar");
        merge(&[a, b], &both, edit);
        both
    }

    #[test]
    fn name_is_the_one_the_build_gives_without_hashing_layers() {
        use crate::image::{image_name, resolve_local, ImageSource};
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        build_image(&layout, "b", "image b");
        let tar = dir.path().join("b.tar");
        save(&layout, "b", &tar, &["example.org/demo/b:1"]);
        let written = format!("docker-archive:{}", tar.display());
        let src = ImageSource::parse(&written, dir.path()).unwrap();
        let named = image_name(&written, &src, None).unwrap();
        assert_eq!(named.to_string(), "example.org/demo/b:1");
        assert_eq!(resolve_local(&written, &src, None).unwrap().name, named);
        let alias = Reference::parse("quay.io/x/y:2").unwrap();
        assert_eq!(image_name(&written, &src, Some(&alias)).unwrap(), alias);
        // An OCI layout with only a tag records no full name: the build would refuse it,
        // and so does the name lookup, with the same hint.
        let oci = ImageSource::parse(&format!("oci:{}:b", layout.display()), dir.path()).unwrap();
        let e = image_name("oci:layout:b", &oci, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("AS <registry>/<repo>:<tag>"), "{e}");
    }

    #[test]
    fn resolve_all_returns_every_image_under_every_tag() {
        let dir = tempfile::tempdir().unwrap();
        let tar = two_image_archive(dir.path(), |_| {});
        let src = format!("docker-archive:{}", tar.display());
        let images = resolve_all(&src, &tar).unwrap();
        let names: Vec<String> = images.iter().map(|i| i.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "example.org/a:1",
                "example.org/a:2",
                "docker.io/rancher/b:1"
            ]
        );
        // Two tags of one image: same manifest, same blobs.
        assert_eq!(images[0].root.digest, images[1].root.digest);
        assert_ne!(images[0].root.digest, images[2].root.digest);
        for img in &images {
            assert_eq!(img.source, src);
            assert_eq!(img.platforms, ["linux/amd64"]);
            // manifest, config, one layer; every blob's bytes hash to its digest.
            assert_eq!(img.blobs.len(), 3, "{}", img.name);
            for blob in &img.blobs {
                let mut bytes = Vec::new();
                blob.source.open().unwrap().read_to_end(&mut bytes).unwrap();
                assert_eq!(bytes.len() as u64, blob.size);
                assert_eq!(Sha256Digest::of(&bytes), blob.digest, "{}", img.name);
            }
        }
        // The single-image path sees the same images.
        for (want, img) in [("example.org/a:2", &images[1]), ("rancher/b:1", &images[2])] {
            let one = resolve(&src, &tar, Some(want), None).unwrap();
            assert_eq!(one.root.digest, img.root.digest, "{want}");
        }
        assert!(
            resolve(&src, &tar, None, None).is_err(),
            "several images, none named"
        );
    }

    #[test]
    fn resolve_all_refuses_untagged_images_and_ambiguous_names() {
        let dir = tempfile::tempdir().unwrap();
        let untagged = two_image_archive(&dir.path().join("u"), |m| {
            m[1]["RepoTags"] = serde_json::Value::Null;
        });
        let err = resolve_all("u", &untagged).unwrap_err().to_string();
        assert!(err.contains("no RepoTags"), "{err}");

        let clash = two_image_archive(&dir.path().join("c"), |m| {
            m[1]["RepoTags"] = serde_json::json!(["example.org/a:1"]);
        });
        let err = resolve_all("c", &clash).unwrap_err().to_string();
        assert!(err.contains("two different images"), "{err}");
    }
}
