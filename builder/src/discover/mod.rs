//! Image discovery: which container images an application (Helm chart or plain manifests)
//! will run, so that the bundle carries all of them to a site that cannot pull anything.
//!
//! Why structural: grepping for `image:` both misses images (split `registry`/`repository`/
//! `tag` values composed in templates) and invents them (CRD descriptions, plugin lists).
//! So charts are rendered with the real `helm template`, every YAML document is parsed, and
//! only the `image` fields of the pod templates of workload kinds count as images
//! ([`podspec`]). Strings elsewhere that merely look like images (operator flags such as
//! `--executor-image`, `*_IMAGE` env vars, images inside ConfigMap-embedded YAML, custom
//! resource fields) are returned separately as candidates ([`candidates`]). Nothing is
//! silently dropped or silently added: each candidate is asked of its registry
//! ([`verify`]) and [`select`] decides, in one place for `ferry build` and `ferry images`,
//! what is carried and why, and lists what is dropped with the reason.
//!
//! Images are reported exactly as written; callers normalise with
//! [`ferry_bundle::reference::Reference::parse`].

mod candidates;
mod chart;
mod fallback;
mod grammar;
mod helm;
mod podspec;
pub mod select;
pub mod verify;
mod yaml;

use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use fallback::FALLBACK_WARNING;
pub use grammar::is_bare;
pub use helm::{HelmMode, HELM_ENV};
pub use select::{CandidateMode, Selection, Status};
use yaml::Node;

/// One image (or candidate) and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The reference exactly as written (or as composed, for [`Clue::Composed`]).
    pub image: String,
    /// The manifest file, or for rendered charts the template named by helm's `# Source:`.
    pub file: String,
    /// Index of the YAML document in its stream, from 0.
    pub document: usize,
    /// `kind` of the object (of the item, for `*List` documents).
    pub kind: Option<String>,
    /// `metadata.namespace` as written (absent in many plain manifests).
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName`).
    pub name: Option<String>,
    /// Field path inside the document, e.g. `spec.template.spec.initContainers[0].image`.
    /// Text inside an embedded document is addressed as `<outer>#<inner>`.
    pub field: String,
    /// Name of the container the field belongs to, when it belongs to one.
    pub container: Option<String>,
    /// The object's `helm.sh/hook` annotation: images only a hook or a test uses.
    pub hook: Option<String>,
    /// Why this string was reported.
    pub clue: Clue,
}

/// Why a string was reported: lets `ferry images --why` explain itself and lets a person
/// judge a candidate quickly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "detail", rename_all = "kebab-case")]
pub enum Clue {
    /// `image` of a container in a workload's pod template: a real image.
    PodTemplate,
    /// The value of a command-line flag that names an image (`--executor-image`).
    Flag(String),
    /// The value of an environment variable that names an image (`SIDECAR_IMAGE`).
    Env(String),
    /// The value of a mapping key that names an image (`image`, `helperImage`).
    Key(String),
    /// Composed from sibling fields, e.g. `{repository}/{image}:{version}`.
    Composed(String),
    /// An `image:` line in embedded text that did not parse as YAML.
    EmbeddedLine,
    /// A whole string with the full shape of a reference (`registry.host/path:tag`).
    Grammar,
    /// A word with the full shape of a reference inside a text (a script, a config file).
    Text,
    /// Guessed from chart values because helm was not available (see [`Renderer`]).
    Values(String),
}

impl fmt::Display for Clue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clue::PodTemplate => f.write_str("pod template"),
            Clue::Flag(flag) => write!(f, "flag --{flag}"),
            Clue::Env(name) => write!(f, "env {name}"),
            Clue::Key(key) => write!(f, "key {key}"),
            Clue::Composed(fields) => write!(f, "composed from {fields}"),
            Clue::EmbeddedLine => f.write_str("image: line in text"),
            Clue::Grammar => f.write_str("reference-shaped string"),
            Clue::Text => f.write_str("reference in text"),
            Clue::Values(why) => write!(f, "chart values (no helm): {why}"),
        }
    }
}

/// How the application's objects were obtained: tells callers how far to trust the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Renderer {
    /// Plain manifests, parsed as they are.
    Manifests,
    /// A chart rendered by `helm template`.
    Helm { version: String },
    /// A chart whose templates were NOT rendered: images guessed from values files only.
    ValuesFallback,
}

/// Everything discovery found for one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// Images of pod templates (or, for [`Renderer::ValuesFallback`], guesses from values).
    pub images: Vec<Found>,
    /// Image-like strings anywhere else; never mixed into `images`.
    pub candidates: Vec<Found>,
    /// Things a person should read (fallback used, empty image fields, helm's own warnings).
    pub warnings: Vec<String>,
    pub rendered_with: Renderer,
}

impl Discovery {
    fn new(rendered_with: Renderer) -> Discovery {
        Discovery {
            images: Vec::new(),
            candidates: Vec::new(),
            warnings: Vec::new(),
            rendered_with,
        }
    }

    /// The distinct image strings, sorted (byte order).
    pub fn image_set(&self) -> BTreeSet<&str> {
        self.images.iter().map(|f| f.image.as_str()).collect()
    }

    /// The distinct candidate strings, sorted (byte order).
    pub fn candidate_set(&self) -> BTreeSet<&str> {
        self.candidates.iter().map(|f| f.image.as_str()).collect()
    }

    /// True when the images are a guess from values files: callers must say so loudly.
    pub fn is_fallback(&self) -> bool {
        self.rendered_with == Renderer::ValuesFallback
    }

    fn extend(&mut self, other: Discovery) {
        self.images.extend(other.images);
        self.candidates.extend(other.candidates);
        self.warnings.extend(other.warnings);
    }
}

/// A line number that may be unknown, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line(pub Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, "line {l}"),
            None => f.write_str("unknown line"),
        }
    }
}

/// Why discovery failed. Every variant names the file (or chart) it is about.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{file}: {line}: invalid YAML: {message}")]
    Yaml {
        file: String,
        line: Line,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a Helm chart (no Chart.yaml), a chart archive (.tgz), a manifest file or a directory of manifests", path.display())]
    NotAnApp { path: PathBuf },
    #[error("{}: chart archive: {message}", path.display())]
    Archive { path: PathBuf, message: String },
    #[error("helm template {}: {status}: {stderr}", chart.display())]
    HelmFailed {
        chart: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("helm binary {}: {message}", path.display())]
    HelmBinary { path: PathBuf, message: String },
    #[error("--set {arg:?}: {message}")]
    BadSet { arg: String, message: String },
}

impl DiscoverError {
    fn io(path: &Path, source: std::io::Error) -> DiscoverError {
        DiscoverError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn yaml(file: &str, e: yaml::YamlError) -> DiscoverError {
        DiscoverError::Yaml {
            file: file.to_string(),
            line: Line(e.line),
            message: e.message,
        }
    }
}

/// What to discover, with every knob; [`discover_app`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Chart directory, chart `.tgz`, manifest file, or directory of manifests.
    pub path: PathBuf,
    /// Values files (`-f`), in order; later ones win.
    pub values: Vec<PathBuf>,
    /// `--set key=value` arguments, in order.
    pub set: Vec<String>,
    /// Release name given to `helm template`.
    pub release: String,
    /// `--namespace` given to `helm template`.
    pub namespace: Option<String>,
    /// Which helm to use, if any.
    pub helm: HelmMode,
}

/// The release name used when the caller gives none.
pub const DEFAULT_RELEASE: &str = "ferry";

impl AppOptions {
    pub fn new(path: impl Into<PathBuf>) -> AppOptions {
        AppOptions {
            path: path.into(),
            values: Vec::new(),
            set: Vec::new(),
            release: DEFAULT_RELEASE.to_string(),
            namespace: None,
            helm: HelmMode::Auto,
        }
    }
}

/// The helm binary discovery would use right now (`$FERRY_HELM`, else `helm` on `PATH`), or
/// `None` when charts would fall back to values. Lets callers (and tests) say up front that
/// results will be guesses.
pub fn find_helm() -> Result<Option<PathBuf>, DiscoverError> {
    helm::locate(&HelmMode::Auto)
}

/// What kind of application a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A directory with `Chart.yaml`.
    ChartDir,
    /// A packaged chart (`.tgz` / `.tar.gz`).
    ChartArchive,
    /// A directory of `*.yaml`, `*.yml`, `*.json` manifests (searched recursively).
    ManifestDir,
    /// One manifest file.
    ManifestFile,
}

/// Tells charts, chart archives and manifests apart.
/// A chart's `Chart.yaml` identity: name, version, appVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartMeta {
    pub name: String,
    pub version: Option<String>,
    pub app_version: Option<String>,
}

/// The identity of the chart at `path` (a chart directory or a packaged `.tgz`).
pub fn chart_meta(path: &Path, kind: AppKind) -> Result<ChartMeta, DiscoverError> {
    let c = match kind {
        AppKind::ChartArchive => chart::load_archive(path)?,
        _ => chart::load_dir(path)?,
    };
    Ok(ChartMeta {
        name: c.name,
        version: c.version,
        app_version: c.app_version,
    })
}

pub fn classify(path: &Path) -> Result<AppKind, DiscoverError> {
    let meta = std::fs::metadata(path).map_err(|e| DiscoverError::io(path, e))?;
    if meta.is_dir() {
        return Ok(if path.join("Chart.yaml").is_file() {
            AppKind::ChartDir
        } else {
            AppKind::ManifestDir
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        Ok(AppKind::ChartArchive)
    } else if is_manifest_name(&name) {
        Ok(AppKind::ManifestFile)
    } else {
        Err(DiscoverError::NotAnApp {
            path: path.to_path_buf(),
        })
    }
}

fn is_manifest_name(name: &str) -> bool {
    let name = name.to_lowercase();
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// Discovers the images of an application (chart dir, chart `.tgz`, manifest file or
/// directory of manifests), rendering charts with helm when one is available.
pub fn discover_app(
    path: &Path,
    values: &[PathBuf],
    set: &[String],
) -> Result<Discovery, DiscoverError> {
    let mut opts = AppOptions::new(path);
    opts.values = values.to_vec();
    opts.set = set.to_vec();
    discover_app_with(&opts)
}

/// [`discover_app`] with every option.
pub fn discover_app_with(opts: &AppOptions) -> Result<Discovery, DiscoverError> {
    match classify(&opts.path)? {
        AppKind::ChartDir | AppKind::ChartArchive => discover_chart(opts),
        kind => {
            let mut d = if kind == AppKind::ManifestDir {
                discover_manifest_dir(&opts.path)?
            } else {
                discover_manifest_file(&opts.path)?
            };
            if !opts.values.is_empty() || !opts.set.is_empty() {
                d.warnings.push(format!(
                    "{}: values and --set apply to Helm charts only; ignored for plain manifests",
                    opts.path.display()
                ));
            }
            Ok(d)
        }
    }
}

/// Renders a chart with helm, or falls back to reading its values when there is no helm.
fn discover_chart(opts: &AppOptions) -> Result<Discovery, DiscoverError> {
    match helm::locate(&opts.helm)? {
        Some(bin) => {
            let version = helm::version(&bin)?;
            let rendered = helm::template(&bin, opts)?;
            let mut d = Discovery::new(Renderer::Helm { version });
            let label = opts.path.display().to_string();
            scan_stream(&rendered.stdout, &label, true, &mut d)?;
            d.warnings.extend(
                rendered
                    .stderr
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("helm: {l}")),
            );
            Ok(d)
        }
        None => fallback::discover(opts),
    }
}

/// Parses one manifest file.
pub fn discover_manifest_file(path: &Path) -> Result<Discovery, DiscoverError> {
    let text = std::fs::read_to_string(path).map_err(|e| DiscoverError::io(path, e))?;
    discover_manifests(&text, &path.display().to_string())
}

/// Parses every `*.yaml`, `*.yml` and `*.json` below `dir` (recursively, in sorted path
/// order; hidden entries skipped).
pub fn discover_manifest_dir(dir: &Path) -> Result<Discovery, DiscoverError> {
    let mut files = Vec::new();
    collect_manifests(dir, 0, &mut files)?;
    files.sort();
    let mut d = Discovery::new(Renderer::Manifests);
    if files.is_empty() {
        d.warnings.push(format!(
            "{}: no *.yaml, *.yml or *.json files found",
            dir.display()
        ));
    }
    for f in files {
        d.extend(discover_manifest_file(&f)?);
    }
    Ok(d)
}

fn collect_manifests(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), DiscoverError> {
    // Deep enough for any real layout; stops symlink loops.
    if depth > 32 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DiscoverError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DiscoverError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| DiscoverError::io(&path, e))?;
        if meta.is_dir() {
            collect_manifests(&path, depth + 1, out)?;
        } else if meta.is_file() && is_manifest_name(&name) {
            out.push(path);
        }
    }
    Ok(())
}

/// Discovers images in one YAML stream; `source` names it in results and errors.
pub fn discover_manifests(text: &str, source: &str) -> Result<Discovery, DiscoverError> {
    let mut d = Discovery::new(Renderer::Manifests);
    scan_stream(text, source, false, &mut d)?;
    Ok(d)
}

/// The object a finding belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub file: String,
    pub document: usize,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub hook: Option<String>,
}

impl Origin {
    fn of(node: &Node, file: &str, document: usize) -> Origin {
        let text = |path: &[&str]| node.at(path).and_then(Node::scalar_text);
        Origin {
            file: file.to_string(),
            document,
            kind: text(&["kind"]),
            namespace: text(&["metadata", "namespace"]),
            name: text(&["metadata", "name"]).or_else(|| text(&["metadata", "generateName"])),
            hook: text(&["metadata", "annotations", "helm.sh/hook"]),
        }
    }

    pub(crate) fn found(
        &self,
        image: String,
        field: String,
        container: Option<String>,
        clue: Clue,
    ) -> Found {
        Found {
            image,
            file: self.file.clone(),
            document: self.document,
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            field,
            container,
            hook: self.hook.clone(),
            clue,
        }
    }
}

/// Field-path building shared by the walkers: `a.b`, `a["x.yaml"]`, `a[0]`.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // `data["x.yaml"]#` starts an embedded document: its fields follow the `#` directly.
    match (prefix.is_empty() || prefix.ends_with('#'), plain) {
        (true, true) => format!("{prefix}{key}"),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{key:?}]"),
    }
}

pub(crate) fn join_index(prefix: &str, i: usize) -> String {
    format!("{prefix}[{i}]")
}

/// Parses a stream and adds what it holds to `d`. With `helm_sources`, each document's file
/// is the template named by its `# Source:` comment.
fn scan_stream(
    text: &str,
    source: &str,
    helm_sources: bool,
    d: &mut Discovery,
) -> Result<(), DiscoverError> {
    let docs = yaml::parse_stream(text).map_err(|e| DiscoverError::yaml(source, e))?;
    for doc in docs {
        let Some(node) = &doc.node else { continue };
        let file = match (&doc.helm_source, helm_sources) {
            (Some(s), true) => s.as_str(),
            _ => source,
        };
        for (prefix, object) in podspec::objects(node) {
            let origin = Origin::of(object, file, doc.index);
            let mut consumed = HashSet::new();
            podspec::pod_images(
                object,
                &origin,
                &prefix,
                &mut d.images,
                &mut consumed,
                &mut d.warnings,
            );
            candidates::scan(object, &origin, &prefix, &consumed, &mut d.candidates);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert_eq!(join_key("", "spec"), "spec");
        assert_eq!(
            join_key("data", "helperPod.yaml"),
            "data[\"helperPod.yaml\"]"
        );
        assert_eq!(join_index("spec.containers", 2), "spec.containers[2]");
    }

    #[test]
    fn yaml_error_names_file_and_line() {
        let err = discover_manifests("kind: Pod\n---\nkind: Pod\nspec: [\n  a: b\n", "x.yaml")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.yaml: line "), "{msg}");
        assert!(
            matches!(err, DiscoverError::Yaml { line: Line(Some(l)), .. } if l >= 4),
            "{msg}"
        );
    }

    #[test]
    fn manifest_dir_is_sorted_and_recursive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let pod = |img: &str| {
            format!("kind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {{name: c, image: {img}}}\n")
        };
        std::fs::write(dir.path().join("b/c/z.yml"), pod("z:1")).unwrap();
        std::fs::write(dir.path().join("a.yaml"), pod("a:1")).unwrap();
        std::fs::write(
            dir.path().join("b/m.json"),
            r#"{"kind":"Pod","spec":{"containers":[{"image":"m:1"}]}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), pod("txt:1")).unwrap();
        std::fs::write(dir.path().join(".git/x.yaml"), pod("git:1")).unwrap();
        let d = discover_app(dir.path(), &[], &[]).unwrap();
        let images: Vec<&str> = d.images.iter().map(|f| f.image.as_str()).collect();
        // Sorted by path, as `find | sort` would: `b/c/z.yml` before `b/m.json`.
        assert_eq!(images, vec!["a:1", "z:1", "m:1"]);
        assert!(d.images[1].file.ends_with("b/c/z.yml"));
        assert_eq!(d.rendered_with, Renderer::Manifests);
    }

    #[test]
    fn classify_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(classify(dir.path()).unwrap(), AppKind::ManifestDir);
        std::fs::write(dir.path().join("Chart.yaml"), "name: x\n").unwrap();
        assert_eq!(classify(dir.path()).unwrap(), AppKind::ChartDir);
        let tgz = dir.path().join("x-1.0.0.tgz");
        std::fs::write(&tgz, b"").unwrap();
        assert_eq!(classify(&tgz).unwrap(), AppKind::ChartArchive);
        let txt = dir.path().join("x.txt");
        std::fs::write(&txt, b"").unwrap();
        assert!(matches!(
            classify(&txt),
            Err(DiscoverError::NotAnApp { .. })
        ));
        assert!(matches!(
            classify(&dir.path().join("missing")),
            Err(DiscoverError::Io { .. })
        ));
    }
}
