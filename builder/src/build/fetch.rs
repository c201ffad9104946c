//! Downloading a payload on a connected builder: `payloads/<name>/payload.toml` (compiled
//! into `ferry`) lists release assets with pinned sha256; each is downloaded, checked, and
//! arranged into the directory shape `--payload <name>=<dir>` takes, in a cache so a
//! rebuild downloads nothing. A pin that is missing or `TO-BE-FILLED` is refused — an
//! unpinned binary must never reach an air-gapped site.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Payload definitions shipped with this `ferry`.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "containerd" => Some(include_str!("../../../payloads/containerd/payload.toml")),
        "k3s" => Some(include_str!("../../../payloads/k3s/payload.toml")),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub struct Definition {
    pub name: String,
    pub version: String,
    #[serde(default, rename = "archive")]
    pub archives: Vec<Archive>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileSpec>,
}

#[derive(Debug, Deserialize)]
pub struct Archive {
    pub url: String,
    pub sha256: String,
    /// Archive member → payload role.
    pub extract: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct FileSpec {
    pub role: String,
    pub url: String,
    pub sha256: String,
    #[serde(default)]
    pub mode: Option<u32>,
}

impl Definition {
    /// The URL the file of `role` comes from: its own, or its archive's.
    pub fn source_url(&self, role: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.role == role)
            .map(|f| f.url.as_str())
            .or_else(|| {
                self.archives
                    .iter()
                    .find(|a| a.extract.values().any(|r| r == role))
                    .map(|a| a.url.as_str())
            })
    }
}

pub fn parse(text: &str) -> Result<Definition> {
    toml::from_str(text).context("payload definition")
}

/// Where a role goes in the `--payload` directory shape (k3s keeps its release layout).
fn layout_path(payload: &str, role: &str) -> String {
    if payload == "k3s" {
        role.rsplit('/').next().unwrap_or(role).to_string()
    } else {
        role.to_string()
    }
}

fn check_pin(what: &str, sha: &str) -> Result<()> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{what}: sha256 is not pinned ({sha:?}); fill it in payloads/…/payload.toml from the project's published checksums, or pass --payload <name>=<dir> with vetted files");
    }
    Ok(())
}

/// Downloads `url` to `dest`, verifying its sha256 while it streams.
fn download(url: &str, sha: &str, dest: &Path) -> Result<()> {
    if dest.exists() {
        let (got, _) = ferry_bundle::digest::hash_reader(std::fs::File::open(dest)?)?;
        if got.hex() == sha {
            return Ok(());
        }
    }
    let agent = ureq::Agent::config_builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let resp = agent
        .get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    let tmp = dest.with_extension("partial");
    let mut out = std::fs::File::create(&tmp)?;
    let mut body = resp.into_body();
    let mut r = body.as_reader();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        std::io::Write::write_all(&mut out, &buf[..n])?;
    }
    let got = hex::encode(h.finalize());
    if got != sha {
        let _ = std::fs::remove_file(&tmp);
        bail!("{url}: sha256 {got} does not match the pinned {sha}; refusing it");
    }
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Fetches every asset of `def` into `cache` and returns the payload directory.
pub fn fetch(def: &Definition, cache: &Path) -> Result<PathBuf> {
    for a in &def.archives {
        check_pin(&a.url, &a.sha256)?;
    }
    for f in &def.files {
        check_pin(&f.url, &f.sha256)?;
    }
    let downloads = cache.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let dir = cache.join(format!("payload-{}-{}", def.name, def.version));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for f in &def.files {
        let dl = downloads.join(&f.sha256);
        download(&f.url, &f.sha256, &dl)?;
        let dest = dir.join(layout_path(&def.name, &f.role));
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::copy(&dl, &dest)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &dest,
            std::fs::Permissions::from_mode(f.mode.unwrap_or(0o644)),
        )?;
    }
    for a in &def.archives {
        let dl = downloads.join(&a.sha256);
        download(&a.url, &a.sha256, &dl)?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&dl)?));
        let mut found = std::collections::BTreeSet::new();
        for e in ar.entries()? {
            let mut e = e?;
            let member = e.path()?.to_string_lossy().into_owned();
            let key = [member.as_str(), member.trim_start_matches("./")];
            let Some(role) = key.iter().find_map(|k| {
                a.extract
                    .get(*k)
                    .or_else(|| a.extract.get(&format!("./{k}")))
            }) else {
                continue;
            };
            let dest = dir.join(layout_path(&def.name, role));
            std::fs::create_dir_all(dest.parent().unwrap())?;
            let mut out = std::fs::File::create(&dest)?;
            std::io::copy(&mut e, &mut out)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))?;
            found.insert(role.clone());
        }
        let missing: Vec<_> = a.extract.values().filter(|r| !found.contains(*r)).collect();
        if !missing.is_empty() {
            bail!("{}: archive lacks the members for {missing:?}", a.url);
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// Serves `files` (path → bytes) over plain HTTP on loopback, one request per connection.
    fn serve(files: Vec<(String, Vec<u8>)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        );
                        let _ = s.write_all(b);
                    }
                    None => {
                        let _ = write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        format!("http://{addr}")
    }

    fn targz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (p, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o755);
            t.append_data(&mut h, p, *d).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn downloads_verifies_and_arranges_a_payload() {
        let tgz = targz(&[
            ("bin/containerd", b"c"),
            ("bin/ctr", b"t"),
            ("bin/other", b"x"),
        ]);
        let runc = b"runc-binary".to_vec();
        let base = serve(vec![
            ("/c.tgz".into(), tgz.clone()),
            ("/runc".into(), runc.clone()),
        ]);
        let text = format!(
            "name = \"containerd\"\nversion = \"1\"\n[[archive]]\nurl = \"{base}/c.tgz\"\nsha256 = \"{}\"\nextract = {{ \"bin/containerd\" = \"bin/containerd\", \"bin/ctr\" = \"bin/ctr\" }}\n\
             [[file]]\nrole = \"bin/runc\"\nurl = \"{base}/runc\"\nsha256 = \"{}\"\nmode = 0o755\n",
            sha(&tgz),
            sha(&runc)
        );
        let d = tempfile::tempdir().unwrap();
        let dir = fetch(&parse(&text).unwrap(), d.path()).unwrap();
        assert_eq!(std::fs::read(dir.join("bin/containerd")).unwrap(), b"c");
        assert_eq!(std::fs::read(dir.join("bin/runc")).unwrap(), runc);
        assert!(!dir.join("bin/other").exists());

        let bad = text.replace(&sha(&runc), &"0".repeat(64));
        let err = fetch(&parse(&bad).unwrap(), d.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match the pinned"), "{err}");
    }

    #[test]
    fn unpinned_definitions_are_refused() {
        for name in ["containerd", "k3s"] {
            let def = parse(builtin(name).unwrap()).unwrap();
            assert_eq!(def.name, name);
            if def.files.iter().any(|f| f.sha256 == "TO-BE-FILLED")
                || def.archives.iter().any(|a| a.sha256 == "TO-BE-FILLED")
            {
                let err = fetch(&def, tempfile::tempdir().unwrap().path())
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("not pinned"), "{err}");
            }
        }
    }
}
