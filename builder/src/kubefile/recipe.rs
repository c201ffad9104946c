//! The one interpreter of a Kubefile: instructions in, typed [`Recipe`] out.
//!
//! `ferry build` and `ferry images` used to walk the instructions each on their own and
//! disagreed (how IMAGES files are read, which line an error names, what a local image
//! is called). Now both consume a [`Recipe`], so they cannot: every image spec carries
//! its parsed source, its `AS` name and where it was written (`Kubefile:12`, or
//! `images.txt:3` for a line of an IMAGES file); every file the Kubefile names (IMAGES,
//! VALUES, COPY sources, APP paths) is checked here, and a missing one is reported with
//! the Kubefile line and the path. Relative paths are taken from the context directory.
//! What the recipe does *not* do is touch the network or render charts: resolving images
//! and discovering an app's images are the build's and `ferry images`' next steps.

use super::{Instruction, Kubefile, KubefileError};
use crate::image::ImageSource;
use ferry_bundle::paths::HostPath;
use ferry_bundle::reference::Reference;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a piece of the recipe was written: `Kubefile:12`, `images.txt:3`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Which instruction asked for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVia {
    /// An `IMAGE` line.
    Image,
    /// A line of an `IMAGES` file.
    Images,
    /// Found by discovery in the named `APP`.
    App(String),
    /// An image the `CLUSTER` distribution itself runs (k3s's `k3s-images.txt`).
    Cluster(String),
}

impl fmt::Display for ImageVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageVia::Image => f.write_str("IMAGE"),
            ImageVia::Images => f.write_str("IMAGES"),
            ImageVia::App(name) => write!(f, "APP {name}"),
            ImageVia::Cluster(distribution) => write!(f, "CLUSTER {distribution}"),
        }
    }
}

/// One image to carry, before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// As written.
    pub written: String,
    pub source: ImageSource,
    /// `AS <name>`: the name the cluster will use instead of the source's own.
    pub name: Option<Reference>,
    pub via: ImageVia,
    pub origin: Origin,
}

/// `APP` with its `VALUES` and `SET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    /// Chart directory or `.tgz`, manifest file or directory (in the context).
    pub path: PathBuf,
    pub values: Vec<PathBuf>,
    pub set: Vec<String>,
    pub origin: Origin,
}

/// `COPY <src> <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub src: PathBuf,
    pub dest: HostPath,
    pub origin: Origin,
}

/// `CLUSTER <distribution> <version>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub distribution: String,
    pub version: String,
    pub origin: Origin,
}

/// `RUNTIME containerd [<version>] [runc=<v>] [cni=<v>]`; `None` fields take the defaults
/// of `payloads/containerd/payload.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSpec {
    pub name: String,
    pub version: Option<String>,
    pub runc: Option<String>,
    pub cni: Option<String>,
    pub origin: Origin,
}

/// `RUN <command>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub command: String,
    pub origin: Origin,
}

/// `PACKAGE <kind> <name>…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub kind: String,
    pub names: Vec<String>,
    pub origin: Origin,
}

/// `OS <distribution> <release> <arch>`: the release `PACKAGE deb` resolves for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsSpec {
    pub distribution: String,
    pub release: String,
    pub architecture: String,
    pub origin: Origin,
}

/// `APT <url> <suite> <component>… [KEYRING <file>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSpec {
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// In the context; checked to exist.
    pub keyring: Option<PathBuf>,
    pub origin: Origin,
}

/// Everything a Kubefile asks for, typed, with where each part was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub kubefile: PathBuf,
    pub context: PathBuf,
    /// `FROM <bundle>` (anything but `scratch`), which the build does not support yet.
    pub base: Option<(String, Origin)>,
    pub cluster: Option<ClusterSpec>,
    /// `RUNTIME containerd …` (absent: the default containerd, unless `CLUSTER`).
    pub runtime: Option<RuntimeSpec>,
    /// `IMAGE` lines and `IMAGES` files' lines, in Kubefile order (duplicates kept).
    pub images: Vec<ImageSpec>,
    pub apps: Vec<AppSpec>,
    pub copies: Vec<CopySpec>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub hooks: Vec<HookSpec>,
    pub packages: Vec<PackageSpec>,
    pub os: Option<OsSpec>,
    /// `APT` lines, in Kubefile order.
    pub apt: Vec<AptSpec>,
}

impl Recipe {
    /// Reads and interprets `kubefile`; relative paths are taken from `context`.
    pub fn read(kubefile: &Path, context: &Path) -> Result<Recipe, KubefileError> {
        Recipe::interpret(&Kubefile::read(kubefile)?, context)
    }

    /// Turns parsed instructions into a recipe, reading IMAGES files and checking that
    /// every file the Kubefile names exists.
    pub fn interpret(kf: &Kubefile, context: &Path) -> Result<Recipe, KubefileError> {
        let mut r = Recipe {
            kubefile: kf.path.clone(),
            context: context.to_path_buf(),
            base: None,
            cluster: None,
            runtime: None,
            images: Vec::new(),
            apps: Vec::new(),
            copies: Vec::new(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            hooks: Vec::new(),
            packages: Vec::new(),
            os: None,
            apt: Vec::new(),
        };
        for l in kf.iter() {
            let at = Origin {
                file: kf.path.clone(),
                line: l.line,
            };
            match &l.ins {
                Instruction::From(base) if base == "scratch" => {}
                Instruction::From(base) => r.base = Some((base.clone(), at)),
                Instruction::Cluster {
                    distribution,
                    version,
                } => {
                    r.cluster = Some(ClusterSpec {
                        distribution: distribution.clone(),
                        version: version.clone(),
                        origin: at,
                    })
                }
                Instruction::Runtime {
                    name,
                    version,
                    parts,
                } => {
                    let part = |k: &str| parts.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
                    r.runtime = Some(RuntimeSpec {
                        name: name.clone(),
                        version: version.clone(),
                        runc: part("runc"),
                        cni: part("cni"),
                        origin: at,
                    })
                }
                Instruction::Image { sources, name } => {
                    let name = name.as_deref().map(|n| reference(n, &at)).transpose()?;
                    for s in sources {
                        r.images.push(ImageSpec {
                            written: s.clone(),
                            source: source(s, context, &at)?,
                            name: name.clone(),
                            via: ImageVia::Image,
                            origin: at.clone(),
                        });
                    }
                }
                Instruction::Images(file) => {
                    let path = existing(context, file, "IMAGES file", &at)?;
                    let text =
                        std::fs::read_to_string(&path).map_err(|error| KubefileError::Missing {
                            at: at.clone(),
                            what: "IMAGES file",
                            path: path.clone(),
                            error,
                        })?;
                    for (i, line) in strip_bom(&text).lines().enumerate() {
                        let s = line.trim();
                        if s.is_empty() || s.starts_with('#') {
                            continue;
                        }
                        let origin = Origin {
                            file: path.clone(),
                            line: i + 1,
                        };
                        r.images.push(ImageSpec {
                            written: s.to_string(),
                            source: source(s, context, &origin)?,
                            name: None,
                            via: ImageVia::Images,
                            origin,
                        });
                    }
                }
                Instruction::App { name, path } => r.apps.push(AppSpec {
                    name: name.clone(),
                    path: existing(context, path, "APP path", &at)?,
                    values: vec![],
                    set: vec![],
                    origin: at,
                }),
                Instruction::Values { app, file } => {
                    let path = existing(context, file, "VALUES file", &at)?;
                    app_mut(&mut r.apps, app).values.push(path);
                }
                Instruction::Set { app, assignment } => {
                    app_mut(&mut r.apps, app).set.push(assignment.clone())
                }
                Instruction::Copy { src, dest } => {
                    let src = existing(context, src, "COPY source", &at)?;
                    let dest =
                        HostPath::new(dest.as_str()).map_err(|e| KubefileError::Destination {
                            at: at.clone(),
                            dest: dest.clone(),
                            error: e.reason,
                        })?;
                    r.copies.push(CopySpec {
                        src,
                        dest,
                        origin: at,
                    });
                }
                Instruction::Package { kind, names } => r.packages.push(PackageSpec {
                    kind: kind.clone(),
                    names: names.clone(),
                    origin: at,
                }),
                Instruction::Os {
                    distribution,
                    release,
                    architecture,
                } => {
                    r.os = Some(OsSpec {
                        distribution: distribution.clone(),
                        release: release.clone(),
                        architecture: architecture.clone(),
                        origin: at,
                    })
                }
                Instruction::Apt {
                    url,
                    suite,
                    components,
                    keyring,
                } => {
                    let keyring = keyring
                        .as_deref()
                        .map(|k| existing(context, k, "KEYRING file", &at))
                        .transpose()?;
                    r.apt.push(AptSpec {
                        url: url.clone(),
                        suite: suite.clone(),
                        components: components.clone(),
                        keyring,
                        origin: at,
                    })
                }
                Instruction::Env { key, value } => {
                    r.env.insert(key.clone(), value.clone());
                }
                Instruction::Run(command) => r.hooks.push(HookSpec {
                    command: command.clone(),
                    origin: at,
                }),
                Instruction::Label { key, value } => {
                    r.labels.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(r)
    }
}

/// A text file's content without a leading UTF-8 byte order mark (editors on Windows
/// write one; it is not part of the first instruction or image).
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The APP a VALUES/SET names; the parser has checked it is declared above.
fn app_mut<'a>(apps: &'a mut [AppSpec], name: &str) -> &'a mut AppSpec {
    apps.iter_mut()
        .find(|a| a.name == name)
        .expect("the Kubefile parser checks that VALUES/SET name a declared APP")
}

fn reference(s: &str, at: &Origin) -> Result<Reference, KubefileError> {
    Reference::parse(s).map_err(|error| KubefileError::Reference {
        at: at.clone(),
        error,
    })
}

fn source(s: &str, context: &Path, at: &Origin) -> Result<ImageSource, KubefileError> {
    ImageSource::parse(s, context).map_err(|error| KubefileError::Reference {
        at: at.clone(),
        error,
    })
}

/// `context/rel`, which must exist.
fn existing(
    context: &Path,
    rel: &str,
    what: &'static str,
    at: &Origin,
) -> Result<PathBuf, KubefileError> {
    let path = context.join(rel);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(error) => Err(KubefileError::Missing {
            at: at.clone(),
            what,
            path,
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context directory with the files a Kubefile may name.
    fn context() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("images.txt"),
            "\u{feff}# hub images\nnginx:1.27\n\n  quay.io/a/b:2  \n",
        )
        .unwrap();
        std::fs::write(d.path().join("v.yaml"), "replicas: 2\n").unwrap();
        std::fs::write(d.path().join("a.sh"), "echo hi\n").unwrap();
        std::fs::create_dir(d.path().join("chart")).unwrap();
        d
    }

    fn interpret(text: &str, ctx: &Path) -> Result<Recipe, KubefileError> {
        let kf = Kubefile::parse(text, Path::new("Kubefile"))?;
        Recipe::interpret(&kf, ctx)
    }

    #[test]
    fn every_instruction_becomes_typed_data() {
        let ctx = context();
        let r = interpret(
            "\u{feff}FROM scratch\nCLUSTER k3s v1.31.4+k3s1\nIMAGE nginx:1.27 quay.io/a/b:1\n\
             IMAGE oci:./layout:app AS docker.io/library/app:1\nIMAGES images.txt\n\
             APP web ./chart\nVALUES web v.yaml\nSET web image.tag=2\nCOPY a.sh /opt/a.sh\n\
             ENV A=b\nRUN kubectl get pods \\\n  -A\nLABEL owner=ops\nPACKAGE deb curl jq\n",
            ctx.path(),
        )
        .unwrap();
        assert_eq!(r.base, None);
        let c = r.cluster.as_ref().unwrap();
        assert_eq!(
            (c.distribution.as_str(), c.version.as_str()),
            ("k3s", "v1.31.4+k3s1")
        );
        assert_eq!(c.origin.to_string(), "Kubefile:2");
        let shown: Vec<(String, String, String)> = r
            .images
            .iter()
            .map(|i| (i.written.clone(), i.via.to_string(), i.origin.to_string()))
            .collect();
        let images_txt = ctx.path().join("images.txt").display().to_string();
        assert_eq!(
            shown,
            [
                ("nginx:1.27".into(), "IMAGE".into(), "Kubefile:3".into()),
                ("quay.io/a/b:1".into(), "IMAGE".into(), "Kubefile:3".into()),
                (
                    "oci:./layout:app".into(),
                    "IMAGE".into(),
                    "Kubefile:4".into()
                ),
                (
                    "nginx:1.27".into(),
                    "IMAGES".into(),
                    format!("{images_txt}:2")
                ),
                (
                    "quay.io/a/b:2".into(),
                    "IMAGES".into(),
                    format!("{images_txt}:4")
                ),
            ]
        );
        assert_eq!(
            r.images[0].source,
            ImageSource::Registry(Reference::parse("nginx:1.27").unwrap())
        );
        assert_eq!(
            r.images[2].source,
            ImageSource::OciLayout {
                dir: ctx.path().join("./layout"),
                tag: Some("app".into())
            }
        );
        assert_eq!(
            r.images[2].name.as_ref().unwrap().to_string(),
            "docker.io/library/app:1"
        );
        let app = &r.apps[0];
        assert_eq!(app.name, "web");
        assert_eq!(app.path, ctx.path().join("./chart"));
        assert_eq!(app.values, [ctx.path().join("v.yaml")]);
        assert_eq!(app.set, ["image.tag=2"]);
        assert_eq!(app.origin.line, 6);
        assert_eq!(r.copies[0].dest.as_str(), "/opt/a.sh");
        assert_eq!(r.copies[0].src, ctx.path().join("a.sh"));
        assert_eq!(r.env["A"], "b");
        assert_eq!(r.labels["owner"], "ops");
        assert_eq!(r.hooks[0].command, "kubectl get pods -A");
        assert_eq!(r.hooks[0].origin.line, 11);
        assert_eq!(r.packages[0].names, ["curl", "jq"]);
        assert_eq!(r.packages[0].origin.line, 14);
    }

    #[test]
    fn from_a_bundle_is_recorded_with_its_line() {
        let ctx = context();
        let r = interpret("FROM base.run\n", ctx.path()).unwrap();
        let (base, at) = r.base.unwrap();
        assert_eq!(
            (base.as_str(), at.to_string().as_str()),
            ("base.run", "Kubefile:1")
        );
    }

    #[test]
    fn missing_files_name_the_kubefile_line_and_the_path() {
        let ctx = context();
        for (text, line, what, file) in [
            (
                "FROM scratch\nIMAGES nope.txt\n",
                2,
                "IMAGES file",
                "nope.txt",
            ),
            (
                "APP web ./chart\n\nVALUES web nope.yaml\n",
                3,
                "VALUES file",
                "nope.yaml",
            ),
            ("COPY nope.sh /opt/x\n", 1, "COPY source", "nope.sh"),
            ("APP web ./nochart\n", 1, "APP path", "nochart"),
        ] {
            let e = interpret(text, ctx.path()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("Kubefile:{line}: {what} ")) && e.contains(file),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_images_name_the_file_and_line_they_are_on() {
        let ctx = context();
        std::fs::write(ctx.path().join("bad.txt"), "nginx\n\nUPPER/Case\n").unwrap();
        let e = interpret("FROM scratch\nIMAGES bad.txt\n", ctx.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.txt:3:") && e.contains("UPPER/Case"), "{e}");
        let e = interpret("IMAGE a:b:c\n", ctx.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Kubefile:1:"), "{e}");
        let e = interpret("IMAGE nginx AS ../x\n", ctx.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Kubefile:1:"), "{e}");
        let e = interpret("COPY a.sh /opt/../x\n", ctx.path())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Kubefile:1:") && e.contains("'..'"), "{e}");
    }
}
