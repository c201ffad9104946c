//! The OS packages inside an image, read by streaming its layer tars (gzip, zstd or
//! plain, told apart by their first bytes) — nothing is unpacked to disk, and only the
//! package databases and `os-release` are read into memory (each capped).
//!
//! Each layer is scanned once however many images share it (a base layer under 300
//! images is read once), on up to four threads. An image's packages are then its layers'
//! databases applied in order with OCI whiteouts: a later layer's `status` replaces an
//! earlier one, `.wh.<name>` deletes a file of a lower layer, `.wh..wh..opq` empties a
//! directory of the lower layers.

use super::pkgdb::{parse_apk, parse_dpkg, parse_os_release, OsPackage};
use crate::image::Blob;
use ferry_bundle::Sha256Digest;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;

const DPKG_STATUS: &str = "var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
const APK_INSTALLED: &str = "lib/apk/db/installed";
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// Largest package database read (Debian's biggest status files are a few MiB).
const MAX_DB: u64 = 64 << 20;

/// What a file of interest holds.
#[derive(Debug, Clone)]
pub enum Fact {
    Packages(Vec<OsPackage>),
    OsRelease(BTreeMap<String, String>),
}

/// The facts of one layer: files of interest, and its whiteouts.
#[derive(Debug, Clone, Default)]
pub struct LayerFacts {
    pub files: Vec<(String, Fact)>,
    /// Paths deleted from lower layers.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content is hidden.
    pub opaque: Vec<String>,
}

fn interesting(path: &str) -> bool {
    path == DPKG_STATUS
        || path == APK_INSTALLED
        || OS_RELEASE.contains(&path)
        || path
            .strip_prefix(DPKG_STATUS_D)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Decompresses by magic: gzip `1f 8b`, zstd `28 b5 2f fd`, else a plain tar.
fn decompressed<'a>(r: impl Read + Send + 'a) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let mut r = BufReader::with_capacity(256 << 10, r);
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    })
}

/// Streams one layer tar and collects its facts.
pub fn scan_layer(r: impl Read + Send) -> std::io::Result<LayerFacts> {
    let mut facts = LayerFacts::default();
    let mut archive = tar::Archive::new(decompressed(r)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = raw.trim_start_matches("./").trim_start_matches('/');
        let path = path.trim_end_matches('/').to_string();
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (Some(d), b),
            None => (None, path.as_str()),
        };
        if base == ".wh..wh..opq" {
            facts.opaque.push(dir.unwrap_or("").to_string());
            continue;
        }
        if let Some(gone) = base.strip_prefix(".wh.") {
            facts.whiteouts.push(match dir {
                Some(d) => format!("{d}/{gone}"),
                None => gone.to_string(),
            });
            continue;
        }
        if !entry.header().entry_type().is_file() || !interesting(&path) {
            continue;
        }
        if entry.size() > MAX_DB {
            tracing::warn!(
                "{path}: {} bytes, larger than {MAX_DB}; not read",
                entry.size()
            );
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let fact = if OS_RELEASE.contains(&path.as_str()) {
            Fact::OsRelease(parse_os_release(&text))
        } else if path == APK_INSTALLED {
            Fact::Packages(parse_apk(&text))
        } else {
            Fact::Packages(parse_dpkg(&text))
        };
        facts.files.push((path, fact));
    }
    Ok(facts)
}

/// An image's packages and distribution, from its layers' facts in order.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    pub packages: Vec<OsPackage>,
    pub os_release: BTreeMap<String, String>,
    /// Layers that could not be read (digest, reason).
    pub unreadable: Vec<(Sha256Digest, String)>,
}

/// Applies `layers` (bottom first) with their whiteouts.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a LayerFacts>) -> ImageFacts {
    let mut files: BTreeMap<String, &Fact> = BTreeMap::new();
    for l in layers {
        for d in &l.opaque {
            let prefix = if d.is_empty() {
                String::new()
            } else {
                format!("{d}/")
            };
            files.retain(|p, _| !p.starts_with(&prefix));
        }
        for w in &l.whiteouts {
            let under = format!("{w}/");
            files.retain(|p, _| p != w && !p.starts_with(&under));
        }
        for (p, f) in &l.files {
            files.insert(p.clone(), f);
        }
    }
    let mut out = ImageFacts::default();
    for rel in OS_RELEASE {
        if let Some(Fact::OsRelease(m)) = files.get(rel) {
            out.os_release = m.clone();
            break;
        }
    }
    for f in files.values() {
        if let Fact::Packages(p) = f {
            out.packages.extend(p.iter().cloned());
        }
    }
    out.packages.sort();
    out.packages.dedup();
    out
}

/// Scans every distinct layer of `layers` once, on up to four threads. A layer that
/// cannot be read is reported (and the SBOM says so) rather than failing the build.
pub fn scan_all(layers: &[&Blob]) -> HashMap<Sha256Digest, Result<LayerFacts, String>> {
    let mut todo: Vec<&Blob> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for b in layers {
        if seen.insert(b.digest) {
            todo.push(b);
        }
    }
    let queue = Mutex::new(todo.into_iter());
    let out = Mutex::new(HashMap::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(b) = queue.lock().expect("queue").next() else {
                    break;
                };
                let r = b
                    .source
                    .open()
                    .and_then(scan_layer)
                    .map_err(|e| ferry_console::printable(&e.to_string(), 160));
                if let Err(e) = &r {
                    tracing::warn!("SBOM: layer {} could not be read: {e}", b.digest);
                }
                out.lock().expect("results").insert(b.digest, r);
            });
        }
    });
    out.into_inner().expect("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, bytes).unwrap();
        e.finish().unwrap()
    }

    const STATUS: &str =
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n\
        Package: b\nStatus: install ok installed\nVersion: 2\nArchitecture: amd64\n";

    #[test]
    fn layers_in_any_compression_with_whiteouts() {
        let base = layer(&[
            ("./var/lib/dpkg/status", STATUS),
            ("./etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            (
                "var/lib/dpkg/status.d/tzdata",
                "Package: tzdata\nVersion: 2024a\nArchitecture: all\n",
            ),
            ("usr/bin/x", "binary"),
        ]);
        let l1 = scan_layer(&gz(&base)[..]).unwrap();
        assert_eq!(l1.files.len(), 3);
        let zst = zstd::encode_all(&base[..], 1).unwrap();
        assert_eq!(scan_layer(&zst[..]).unwrap().files.len(), 3);
        let img = merge([&l1]);
        assert_eq!(img.packages.len(), 3);
        assert_eq!(img.os_release["ID"], "debian");

        // A later layer upgrades b (its status replaces the old one) and deletes tzdata.
        let upper = layer(&[
            (
                "var/lib/dpkg/status",
                &STATUS.replace("Version: 2", "Version: 3"),
            ),
            ("var/lib/dpkg/status.d/.wh.tzdata", ""),
        ]);
        let l2 = scan_layer(&upper[..]).unwrap();
        let img = merge([&l1, &l2]);
        let v: Vec<_> = img
            .packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        assert_eq!(v, ["a=1", "b=3"]);
        // An opaque dpkg directory hides everything below it.
        let opq = scan_layer(&layer(&[("var/lib/dpkg/.wh..wh..opq", "")])[..]).unwrap();
        assert!(merge([&l1, &opq]).packages.is_empty());
    }
}
