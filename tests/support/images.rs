//! Real container images for tests, built in a fraction of a second from busybox-static.
//!
//! [`ImageBuilder`] makes an OCI image layout with `umoci`: a base layer with
//! `/bin/busybox` and its `sh`/`cat`/`echo`/`ls` links plus the files you add (every image
//! also gets `/etc/ferry-id` with unique content, so no two builds share a digest unless
//! you want them to), optionally a second layer of N bytes of pseudo-random data, and a
//! config with your `cmd` and platform. [`OciImage::push`] copies it to a registry with
//! skopeo, [`OciImage::to_docker_archive`] writes a `docker save`-style tar, and
//! [`make_index`] joins several images of one layout into a multi-platform OCI index.
//!
//! Images that should share layers must come from separate builds of identical inputs;
//! images in the same layout must be built one after another (umoci rewrites
//! `index.json`).

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry::require_tool;

/// Where busybox-static installs its binary on Debian.
const BUSYBOX: &str = "/bin/busybox";

/// An image in an OCI layout, addressed as `oci:<layout>:<tag>`.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub layout: PathBuf,
    pub tag: String,
    /// `sha256:<hex>` of the image manifest (or of the index, for [`make_index`]).
    pub digest: String,
    /// Platform the image declares (`linux/amd64`); empty for an index.
    pub platform: String,
}

/// Builds a busybox-based image; see the module doc.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    tag: String,
    files: Vec<(String, Vec<u8>)>,
    random_bytes: Option<u64>,
    cmd: Vec<String>,
    os: String,
    arch: String,
    variant: Option<String>,
}

impl ImageBuilder {
    /// An image to be tagged `tag` in its layout; `linux/amd64`, `cmd` `sh`.
    pub fn new(tag: &str) -> ImageBuilder {
        ImageBuilder {
            tag: tag.to_string(),
            files: Vec::new(),
            random_bytes: None,
            cmd: vec!["sh".into()],
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }

    /// Adds a file (absolute path in the image) to the base layer.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> ImageBuilder {
        self.files
            .push((path.to_string(), contents.as_ref().to_vec()));
        self
    }

    /// Adds a second layer holding `/data/random.bin` of `mib` MiB of pseudo-random bytes
    /// (incompressible, so the layer really is that big).
    pub fn random_layer_mib(self, mib: u64) -> ImageBuilder {
        self.random_layer_bytes(mib << 20)
    }

    /// Like [`ImageBuilder::random_layer_mib`] with an exact byte count.
    pub fn random_layer_bytes(mut self, bytes: u64) -> ImageBuilder {
        self.random_bytes = Some(bytes);
        self
    }

    /// The config's `Cmd`.
    pub fn cmd(mut self, args: &[&str]) -> ImageBuilder {
        self.cmd = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The platform the config declares, `os/arch[/variant]`. (The busybox binary stays the
    /// host's: these images are for moving around, not for running on that platform.)
    pub fn platform(mut self, platform: &str) -> ImageBuilder {
        let parts: Vec<&str> = platform.split('/').collect();
        self.os = parts[0].to_string();
        self.arch = parts.get(1).copied().unwrap_or("amd64").to_string();
        self.variant = parts.get(2).map(|v| v.to_string());
        self
    }

    /// Builds the image into the OCI layout at `layout` (created if missing).
    pub fn build(self, layout: &Path) -> Result<OciImage> {
        require_tool("umoci", "apt-get install umoci")?;
        if !Path::new(BUSYBOX).is_file() {
            bail!("{BUSYBOX} is missing (apt-get install busybox-static)");
        }
        if !layout.join("index.json").is_file() {
            umoci(&["init", "--layout", path_str(layout)?])?;
        }
        let image = format!("{}:{}", path_str(layout)?, self.tag);
        umoci(&["new", "--image", &image])?;
        let work = tempfile::Builder::new().prefix("ferry-image-").tempdir()?;
        let bundle = work.path().join("bundle");
        let bundle_s = path_str(&bundle)?;
        let mut unpack = vec!["unpack"];
        if fs::metadata("/proc/self")?.uid() != 0 {
            unpack.push("--rootless");
        }
        unpack.extend(["--image", &image, bundle_s]);
        umoci(&unpack)?;

        let rootfs = bundle.join("rootfs");
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin)?;
        fs::copy(BUSYBOX, bin.join("busybox"))?;
        for applet in ["sh", "cat", "echo", "ls"] {
            symlink("busybox", bin.join(applet))?;
        }
        let id = format!("{} {}\n", self.tag, unique());
        let files =
            std::iter::once(("/etc/ferry-id".to_string(), id.into_bytes())).chain(self.files);
        for (path, contents) in files {
            let dest = rootfs.join(path.trim_start_matches('/'));
            fs::create_dir_all(dest.parent().expect("file path has a parent"))?;
            fs::write(dest, contents)?;
        }
        umoci(&["repack", "--refresh-bundle", "--image", &image, bundle_s])?;
        if let Some(n) = self.random_bytes {
            let data = rootfs.join("data");
            fs::create_dir_all(&data)?;
            write_random(&data.join("random.bin"), n)?;
            umoci(&["repack", "--image", &image, bundle_s])?;
        }
        let mut config = vec![
            "config",
            "--image",
            &image,
            "--os",
            &self.os,
            "--architecture",
            &self.arch,
        ];
        for c in &self.cmd {
            config.extend(["--config.cmd", c]);
        }
        umoci(&config)?;
        let mut platform = format!("{}/{}", self.os, self.arch);
        if let Some(v) = &self.variant {
            platform.push('/');
            platform.push_str(v);
        }
        Ok(OciImage {
            digest: tagged_descriptor(layout, &self.tag)?["digest"]
                .as_str()
                .context("descriptor without digest")?
                .to_string(),
            layout: layout.to_path_buf(),
            tag: self.tag,
            platform,
        })
    }
}

impl OciImage {
    /// `oci:<layout>:<tag>`, the skopeo/containers-image transport name.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// Pushes to `docker://<registry_host>/<repo_and_tag>` over plain HTTP, with all
    /// platforms of an index and digests preserved. `creds` as `(user, password)`.
    pub fn push(
        &self,
        registry_host: &str,
        repo_and_tag: &str,
        creds: Option<(&str, &str)>,
    ) -> Result<()> {
        self.push_as(registry_host, repo_and_tag, creds, None)
    }

    /// Like [`OciImage::push`] but converting to another manifest format on the way:
    /// `Some("v2s2")` for Docker schema2 media types (manifest list for an index),
    /// `Some("oci")` for OCI. Converting changes the manifest digests.
    pub fn push_as(
        &self,
        registry_host: &str,
        repo_and_tag: &str,
        creds: Option<(&str, &str)>,
        format: Option<&str>,
    ) -> Result<()> {
        let dest = format!("docker://{registry_host}/{repo_and_tag}");
        let mut args = vec![
            "--insecure-policy".to_string(),
            "copy".into(),
            "--quiet".into(),
            "--all".into(),
            "--dest-tls-verify=false".into(),
        ];
        if let Some((u, p)) = creds {
            args.push(format!("--dest-creds={u}:{p}"));
        }
        match format {
            Some(f) => args.push(format!("--format={f}")),
            None => args.push("--preserve-digests".into()),
        }
        args.push(self.oci_ref());
        args.push(dest);
        skopeo(&args)
    }

    /// Writes a `docker save`-style archive (`docker-archive:<out>:<name_and_tag>`).
    pub fn to_docker_archive(&self, out: &Path, name_and_tag: &str) -> Result<()> {
        let dest = format!("docker-archive:{}:{name_and_tag}", out.display());
        skopeo(&[
            "--insecure-policy".to_string(),
            "copy".into(),
            "--quiet".into(),
            self.oci_ref(),
            dest,
        ])
    }

    /// The digests (`sha256:<hex>`) of the config and layers of this image manifest, read
    /// from the layout.
    pub fn config_and_layers(&self) -> Result<Vec<String>> {
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(blob_path(&self.layout, &self.digest))?)?;
        let mut out = vec![m["config"]["digest"]
            .as_str()
            .context("no config")?
            .to_string()];
        for l in m["layers"].as_array().context("no layers")? {
            out.push(
                l["digest"]
                    .as_str()
                    .context("layer without digest")?
                    .to_string(),
            );
        }
        Ok(out)
    }
}

/// Adds an OCI index tagged `tag` to `layout`, listing `images` (all already in that layout)
/// with their platforms, and returns it as an image.
pub fn make_index(layout: &Path, tag: &str, images: &[&OciImage]) -> Result<OciImage> {
    let mut manifests = Vec::new();
    for img in images {
        if img.layout != layout {
            bail!("{} is not in layout {}", img.tag, layout.display());
        }
        let size = fs::metadata(blob_path(layout, &img.digest))?.len();
        let p: Vec<&str> = img.platform.split('/').collect();
        let mut platform = serde_json::json!({ "os": p[0], "architecture": p[1] });
        if let Some(v) = p.get(2) {
            platform["variant"] = serde_json::json!(v);
        }
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest,
            "size": size,
            "platform": platform,
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index)?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    fs::write(blob_path(layout, &digest), &bytes)?;

    let index_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&fs::read(&index_path)?)?;
    let list = top["manifests"]
        .as_array_mut()
        .context("layout index.json without manifests")?;
    list.retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != tag);
    list.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": bytes.len(),
        "annotations": { "org.opencontainers.image.ref.name": tag },
    }));
    fs::write(&index_path, serde_json::to_vec(&top)?)?;
    Ok(OciImage {
        layout: layout.to_path_buf(),
        tag: tag.to_string(),
        digest,
        platform: String::new(),
    })
}

/// `<layout>/blobs/sha256/<hex>` for `sha256:<hex>`.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    layout.join("blobs/sha256").join(hex)
}

fn tagged_descriptor(layout: &Path, tag: &str) -> Result<serde_json::Value> {
    let top: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
    top["manifests"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .cloned()
        })
        .with_context(|| format!("tag {tag} not in {}", layout.display()))
}

fn umoci(args: &[&str]) -> Result<()> {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .context("running umoci")?;
    if !out.status.success() {
        bail!(
            "umoci {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn skopeo(args: &[String]) -> Result<()> {
    require_tool("skopeo", "apt-get install skopeo")?;
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// A value unique within this process run and very likely across runs.
fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `n` pseudo-random bytes (xorshift64*, seeded uniquely): fast, incompressible,
/// and needs no extra crate.
fn write_random(path: &Path, n: u64) -> Result<()> {
    let seed = Sha256::digest(unique().as_bytes());
    let mut x = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) | 1;
    let mut f = std::io::BufWriter::new(fs::File::create(path)?);
    let mut left = n;
    let mut chunk = vec![0u8; 1 << 16];
    while left > 0 {
        for w in chunk.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            w.copy_from_slice(&v[..w.len()]);
        }
        let take = left.min(chunk.len() as u64) as usize;
        std::io::Write::write_all(&mut f, &chunk[..take])?;
        left -= take as u64;
    }
    std::io::Write::flush(&mut f)?;
    Ok(())
}
