//! OS packages (`PACKAGE deb`): the dependency closure of the Kubefile's packages for its
//! target release, resolved from apt repositories and downloaded — verified — into the
//! content cache, for the installer to install offline with dpkg.
//!
//! - [`Target`]: `OS <distribution> <release> <arch>`, the one release every package is
//!   for (the installer's preflight refuses a host of another).
//! - [`repo`]: a repository read as apt reads it — signed `InRelease` ([`gpgv`]), then
//!   `Packages` indexes checked against it; [`sources`]: the builder's own apt sources,
//!   the default repositories.
//! - [`index`] and [`resolve`]: the closure, with why each package is carried.
//! - [`download`]: every `.deb` into the content cache, checked against the SHA256 of
//!   the signed index as it streams; a rebuild downloads nothing it has.
//!
//! `ferry packages` shows the closure; `ferry build` carries it (`files/packages/…`,
//! records in bundle.json). See `docs/kubefile.md` for the instructions.

pub mod gpgv;
pub mod index;
pub mod repo;
pub mod resolve;
pub mod sources;

pub use repo::Repo;
pub use resolve::{Closure, Reason, Request, Resolved};

use crate::kubefile::Recipe;
use crate::pull::ContentCache;
use anyhow::{bail, Context, Result};
use ferry_bundle::packages::{deb_entry, OsRecord, PackageRecord};
use ferry_bundle::writer::BundleWriter;
use ferry_bundle::BundleManifest;
use std::path::{Path, PathBuf};

/// The release the packages are for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// `debian` or `ubuntu`.
    pub distribution: String,
    /// Codename: `bookworm`, `trixie`, `jammy`, `noble`…
    pub release: String,
    /// dpkg architecture: `amd64` or `arm64` (the installer's architectures).
    pub architecture: String,
}

pub const DISTRIBUTIONS: [&str; 2] = ["debian", "ubuntu"];
pub const ARCHITECTURES: [&str; 2] = ["amd64", "arm64"];

impl Target {
    /// Checks `OS <distribution> <release> <arch>`'s words.
    pub fn new(distribution: &str, release: &str, architecture: &str) -> Result<Target, String> {
        if !DISTRIBUTIONS.contains(&distribution) {
            return Err(format!(
                "OS {distribution}: ferry resolves packages for {} (dpkg-based releases)",
                DISTRIBUTIONS.join(" and ")
            ));
        }
        if !ARCHITECTURES.contains(&architecture) {
            return Err(format!(
                "OS … {architecture}: the installer runs on {} only",
                ARCHITECTURES.join(" and ")
            ));
        }
        if release.is_empty()
            || !release
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!(
                "OS {distribution} {release}: name the release by its codename (bookworm, noble…)"
            ));
        }
        Ok(Target {
            distribution: distribution.into(),
            release: release.into(),
            architecture: architecture.into(),
        })
    }
    /// The distribution's archive keyring as its keyring package installs it.
    pub fn keyring(&self) -> PathBuf {
        PathBuf::from(format!(
            "/usr/share/keyrings/{}-archive-keyring.gpg",
            self.distribution
        ))
    }
    /// Components used when none are named: where the usual server packages are.
    pub fn components(&self) -> Vec<String> {
        match self.distribution.as_str() {
            "ubuntu" => vec!["main".into(), "universe".into()],
            _ => vec!["main".into()],
        }
    }
    /// `linux/<arch>`, the bundle platform this release's packages install on.
    pub fn platform(&self) -> String {
        format!("linux/{}", self.architecture)
    }
    pub fn record(&self) -> OsRecord {
        OsRecord {
            distribution: self.distribution.clone(),
            release: self.release.clone(),
            architecture: self.architecture.clone(),
        }
    }
}

/// What a Kubefile asks for: its `OS`, `APT` and `PACKAGE deb` lines.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub target: Option<Target>,
    /// `APT` lines (empty: the defaults).
    pub repos: Vec<Repo>,
    pub requests: Vec<Request>,
    /// Where `OS` was given, for errors.
    pub target_at: String,
}

impl Spec {
    /// The package part of a Kubefile's recipe: its `OS`, `APT` and `PACKAGE deb` lines.
    pub fn from_recipe(r: &Recipe) -> Result<Spec> {
        let mut s = Spec::default();
        if let Some(os) = &r.os {
            s.target = Some(
                Target::new(&os.distribution, &os.release, &os.architecture)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", os.origin))?,
            );
            s.target_at = os.origin.to_string();
        }
        for a in &r.apt {
            s.repos.push(Repo {
                url: a.url.trim_end_matches('/').to_string(),
                suite: a.suite.clone(),
                components: a.components.clone(),
                // Filled with the target's default below when not given.
                keyring: a.keyring.clone().unwrap_or_default(),
                from: a.origin.to_string(),
            });
        }
        for p in &r.packages {
            let at = p.origin.to_string();
            if p.kind != "deb" {
                bail!("{at}: PACKAGE {}: deb is the one package kind", p.kind);
            }
            for w in &p.names {
                s.requests
                    .push(Request::parse(w, &at).map_err(|e| anyhow::anyhow!("{at}: {e}"))?);
            }
        }
        if let Some(t) = &s.target {
            for r in &mut s.repos {
                if r.keyring.as_os_str().is_empty() {
                    r.keyring = t.keyring();
                }
            }
        } else if let Some(r) = s.requests.first() {
            bail!(
                "{}: PACKAGE deb needs the target release: add `OS <distribution> <release> <arch>` \
                 (e.g. OS debian bookworm amd64) to the Kubefile",
                r.at
            );
        } else if let Some(r) = s.repos.first() {
            bail!(
                "{}: APT without an OS line: name the target release first",
                r.from
            );
        }
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// How repositories are reached.
#[derive(Debug, Clone, Default)]
pub struct AptOptions {
    /// `--apt-mirror`: `<url>` (the default repositories) or `<from-url>=<to-url>`.
    pub mirrors: Vec<String>,
    /// Where the builder's apt configuration is (`/etc/apt`), for the defaults.
    pub etc_apt: Option<PathBuf>,
}

/// The repositories to read: the `APT` lines, else `--apt-mirror <url>`, else this
/// machine's apt sources for the target release; each `from=to` mirror applied.
pub fn repositories(spec: &Spec, target: &Target, opts: &AptOptions) -> Result<Vec<Repo>> {
    let plain: Vec<&String> = opts.mirrors.iter().filter(|m| !m.contains('=')).collect();
    if plain.len() > 1 {
        bail!("--apt-mirror <url> given twice; use <from-url>=<to-url> for more than one");
    }
    let mut repos = if !spec.repos.is_empty() {
        spec.repos.clone()
    } else if let Some(m) = plain.first() {
        vec![Repo {
            url: m.trim_end_matches('/').to_string(),
            suite: target.release.clone(),
            components: target.components(),
            keyring: target.keyring(),
            from: "--apt-mirror".into(),
        }]
    } else {
        let etc = opts
            .etc_apt
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/apt"));
        let suites = [
            target.release.clone(),
            format!("{}-updates", target.release),
            format!("{}-security", target.release),
        ];
        let found: Vec<Repo> = sources::read(&etc)
            .into_iter()
            .filter(|s| suites.contains(&s.suite) && s.url.starts_with("http"))
            .map(|s| Repo {
                url: s.url,
                suite: s.suite,
                components: s.components,
                keyring: s.keyring.unwrap_or_else(|| target.keyring()),
                from: s.file.display().to_string(),
            })
            .collect();
        if found.is_empty() {
            bail!(
                "{} {}: no APT line, no --apt-mirror, and this machine's apt sources ({}) have no {} repository; \
                 add `APT <archive url> {} {}` to the Kubefile (the {} archive or a mirror of it) or pass --apt-mirror <url>",
                target.distribution,
                target.release,
                etc.display(),
                target.release,
                target.release,
                target.components().join(" "),
                target.distribution
            );
        }
        found
    };
    for m in opts.mirrors.iter().filter_map(|m| m.split_once('=')) {
        let from = m.0.trim_end_matches('/');
        for r in repos.iter_mut().filter(|r| r.url == from) {
            r.url = m.1.trim_end_matches('/').to_string();
            r.from = format!("{} (through --apt-mirror)", r.from);
        }
    }
    Ok(repos)
}

/// A resolved closure with where it came from.
#[derive(Debug)]
pub struct Resolution {
    pub target: Target,
    pub repos: Vec<Repo>,
    pub closure: Closure,
    /// Packages in the indexes read (for the report).
    pub indexed: usize,
}

impl Resolution {
    /// The download URL of a resolved package.
    pub fn url(&self, r: &Resolved) -> String {
        format!("{}/{}", self.repos[r.package.repo].url, r.package.filename)
    }
}

/// Reads the repositories (signatures and hashes checked) and resolves the closure.
pub fn resolve_spec(
    spec: &Spec,
    opts: &AptOptions,
    cache: &ContentCache,
) -> Result<Option<Resolution>> {
    if spec.requests.is_empty() {
        return Ok(None);
    }
    let target = spec.target.clone().expect("checked by Spec::from_kubefile");
    let repos = repositories(spec, &target, opts)?;
    let agent = repo::agent();
    let mut ix = index::Index::default();
    for (i, r) in repos.iter().enumerate() {
        let rel = repo::release(&agent, r)
            .with_context(|| format!("APT {} ({})", r.describe(), r.from))?;
        repo::load_indexes(&agent, cache, r, &rel, &target.architecture, i, &mut ix)
            .with_context(|| format!("APT {} ({})", r.describe(), r.from))?;
    }
    let closure = resolve::resolve(&ix, &target.architecture, &spec.requests)?;
    Ok(Some(Resolution {
        target,
        repos,
        closure,
        indexed: ix.len(),
    }))
}

/// A carried package and its `.deb` in the content cache.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub record: PackageRecord,
    pub path: PathBuf,
}

/// Downloads every `.deb` of the closure into the cache (or finds it there), checked
/// against the signed index's SHA256 and size while it streams.
pub fn download(res: &Resolution, cache: &ContentCache, quiet: bool) -> Result<Vec<Fetched>> {
    let total: u64 = res.closure.packages.iter().map(|p| p.package.size).sum();
    let bar = ferry_console::bytes_bar(total, "packages", quiet);
    let agent = repo::agent();
    let mut out = Vec::new();
    for r in &res.closure.packages {
        let p = &r.package;
        let url = res.url(r);
        let path = repo::fetch_to_cache(
            &agent,
            cache,
            std::slice::from_ref(&url),
            &p.sha256,
            p.size,
            &mut |n| bar.inc(n),
        )
        .with_context(|| format!("downloading {} {}", p.name, p.version))?;
        out.push(Fetched {
            record: record(r),
            path,
        });
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The bundle.json record of a resolved package.
pub fn record(r: &Resolved) -> PackageRecord {
    let p = &r.package;
    PackageRecord {
        name: p.name.clone(),
        version: p.version.to_string(),
        architecture: p.architecture.clone(),
        entry: deb_entry(&p.name, p.version.as_str(), &p.architecture),
        size: p.size,
        sha256: ferry_bundle::Sha256Digest::from_hex(&p.sha256)
            .expect("the index parser checked it is 64 hex digits"),
        group: r.group as u32,
        depends: r.depends.clone(),
        why: r.why.iter().map(|w| w.to_string()).collect(),
    }
}

/// The content cache at `dir`, or the default one (`~/.cache/ferry`).
pub fn open_cache(dir: Option<&Path>) -> Result<ContentCache> {
    Ok(match dir {
        Some(d) => ContentCache::open(d)?,
        None => ContentCache::open_default()?,
    })
}

/// What a build carries: the release, and every `.deb` of the closure in the cache.
#[derive(Debug, Clone)]
pub struct Carried {
    pub os: OsRecord,
    pub debs: Vec<Fetched>,
}

/// The packages `ferry build` carries for `recipe`: resolved and downloaded; `None` without
/// `PACKAGE deb` lines. The release's architecture must be the bundle's `platform`.
pub fn for_build(
    recipe: &Recipe,
    platform: &str,
    opts: &AptOptions,
    cache_dir: Option<&Path>,
    quiet: bool,
) -> Result<Option<Carried>> {
    let spec = Spec::from_recipe(recipe)?;
    if spec.is_empty() {
        return Ok(None);
    }
    let target = spec
        .target
        .as_ref()
        .expect("checked by Spec::from_kubefile");
    if target.platform() != platform {
        bail!(
            "{}: OS {} {} {} is for {}, but the bundle is built for --platform {platform}; \
             make them agree (one bundle installs on one architecture)",
            spec.target_at,
            target.distribution,
            target.release,
            target.architecture,
            target.platform()
        );
    }
    let cache = open_cache(cache_dir)?;
    let res = resolve_spec(&spec, opts, &cache)?.expect("requests are not empty");
    let debs = download(&res, &cache, quiet)?;
    Ok(Some(Carried {
        os: res.target.record(),
        debs,
    }))
}

impl Carried {
    /// Bytes the `.deb`s add to the bundle.
    pub fn size(&self) -> u64 {
        self.debs.iter().map(|d| d.record.size).sum()
    }

    /// Adds every `.deb` to the bundle as it came from the archive (already compressed)
    /// and records them, in install order, with the release, in bundle.json.
    pub fn write(&self, w: &mut BundleWriter, manifest: &mut BundleManifest) -> Result<()> {
        for d in &self.debs {
            let r = &d.record;
            let f = std::fs::File::open(&d.path).with_context(|| {
                format!("package {} {}: {}", r.name, r.version, d.path.display())
            })?;
            let e = w.add_entry(&r.entry, r.size, 0o644, f)?;
            if e.sha256 != r.sha256 {
                bail!(
                    "package {} {}: {} changed in the content cache (sha256 {} instead of {}); \
                     delete it and build again",
                    r.name,
                    r.version,
                    d.path.display(),
                    e.sha256.hex(),
                    r.sha256.hex()
                );
            }
            manifest.packages.push(r.clone());
        }
        manifest.os = Some(self.os.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<Spec> {
        let ctx = tempfile::tempdir()?;
        std::fs::write(ctx.path().join("k.asc"), "")?;
        let kf = crate::kubefile::Kubefile::parse(text, Path::new("Kubefile"))?;
        Spec::from_recipe(&Recipe::interpret(&kf, ctx.path())?)
    }

    #[test]
    fn package_lines_need_one_supported_release() {
        let e = spec("PACKAGE deb curl\n").unwrap_err().to_string();
        assert!(
            e.contains("Kubefile:1: PACKAGE deb needs the target release"),
            "{e}"
        );
        let e = spec("OS centos 9 amd64\nPACKAGE deb curl\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Kubefile:1: OS centos") && e.contains("debian and ubuntu"),
            "{e}"
        );
        let e = spec("OS debian bookworm i386\n").unwrap_err().to_string();
        assert!(e.contains("amd64 and arm64"), "{e}");
        let e = spec("OS debian bookworm amd64\nPACKAGE deb Curl\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Kubefile:2:") && e.contains("lower case"), "{e}");
        let s = spec(
            "OS ubuntu noble arm64\nAPT http://m/ubuntu/ noble main KEYRING k.asc\nAPT http://m/ubuntu noble-security main\nPACKAGE deb nfs-common chrony=4.5-1\n",
        )
        .unwrap();
        assert_eq!(s.target.as_ref().unwrap().platform(), "linux/arm64");
        assert_eq!(s.repos[0].url, "http://m/ubuntu");
        assert!(s.repos[0].keyring.ends_with("k.asc"), "{:?}", s.repos[0]);
        assert_eq!(
            s.repos[1].keyring,
            Path::new("/usr/share/keyrings/ubuntu-archive-keyring.gpg")
        );
        assert_eq!(s.requests[1].version.as_deref(), Some("4.5-1"));
        assert_eq!(s.requests[1].at, "Kubefile:4");
    }

    #[test]
    fn repositories_default_to_this_machines_apt_sources_or_the_mirror() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://site/debian\nSuites: bookworm bookworm-updates trixie\nComponents: main\n\n\
             Types: deb\nURIs: http://site/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /k.gpg\n",
        )
        .unwrap();
        let s = spec("OS debian bookworm amd64\nPACKAGE deb curl\n").unwrap();
        let t = s.target.clone().unwrap();
        let opts = |mirrors: &[&str]| AptOptions {
            mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
            etc_apt: Some(d.path().to_path_buf()),
        };
        let r = repositories(&s, &t, &opts(&[])).unwrap();
        let got: Vec<String> = r.iter().map(|r| r.describe()).collect();
        assert_eq!(
            got,
            [
                "http://site/debian bookworm main",
                "http://site/debian bookworm-updates main",
                "http://site/debian-security bookworm-security main"
            ]
        );
        assert_eq!(r[2].keyring, Path::new("/k.gpg"));
        assert_eq!(r[0].keyring, t.keyring());
        let r = repositories(&s, &t, &opts(&["http://mirror/debian/"])).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].describe(), "http://mirror/debian bookworm main");
        let r = repositories(
            &s,
            &t,
            &opts(&["http://site/debian-security=http://mirror/sec"]),
        )
        .unwrap();
        assert_eq!(r[2].url, "http://mirror/sec");
        assert_eq!(r[0].url, "http://site/debian");
        // Nothing for this release here: say what to add.
        let s = spec("OS debian trixie amd64\nPACKAGE deb curl\n").unwrap();
        let e = repositories(
            &s,
            s.target.as_ref().unwrap(),
            &AptOptions {
                etc_apt: Some(d.path().join("nowhere")),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("add `APT <archive url> trixie main`") && e.contains("--apt-mirror"),
            "{e}"
        );
    }
}
