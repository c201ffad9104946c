//! Reading a chart's metadata and values (directory or `.tgz`, with vendored subcharts)
//! without helm, for the values fallback.
//!
//! Why only these files: the fallback never renders templates, so it needs `Chart.yaml`
//! (name, appVersion, dependencies with their aliases and conditions), `requirements.yaml`
//! (apiVersion v1 charts) and `values.yaml`, for the chart and every subchart under
//! `charts/` (directories or nested archives).

use super::yaml::{parse_stream, Node};
use super::DiscoverError;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One chart (or subchart) as the fallback needs it.
#[derive(Debug, Clone)]
pub(crate) struct ChartFiles {
    /// Where its values file is, for reporting (`dir/values.yaml`, `x.tgz:chart/values.yaml`).
    pub values_label: String,
    pub name: String,
    /// `version` of `Chart.yaml` (for the SBOM).
    pub version: Option<String>,
    pub app_version: Option<String>,
    /// `values.yaml` (an empty map when absent).
    pub values: Node,
    pub dependencies: Vec<Dependency>,
    pub subcharts: Vec<ChartFiles>,
}

/// A `dependencies:` entry of `Chart.yaml` (or `requirements.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dependency {
    pub name: String,
    pub alias: Option<String>,
    pub condition: Option<String>,
}

/// Relative path → contents, for the files we read.
type Files = BTreeMap<String, Vec<u8>>;

/// Archives and files larger than this are not charts.
const MAX_FILE: u64 = 64 << 20;
/// Nested subchart archives deeper than this are not real.
const MAX_NESTING: usize = 8;

fn wanted(rel: &str) -> bool {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    matches!(base, "Chart.yaml" | "values.yaml" | "requirements.yaml")
        || (rel.contains("charts/") && (base.ends_with(".tgz") || base.ends_with(".tar.gz")))
}

/// Loads a chart directory.
pub(crate) fn load_dir(dir: &Path) -> Result<ChartFiles, DiscoverError> {
    let mut files = Files::new();
    read_dir_files(dir, "", 0, &mut files)?;
    from_files(&files, "", &dir.display().to_string(), 0)
}

fn read_dir_files(
    dir: &Path,
    rel: &str,
    depth: usize,
    files: &mut Files,
) -> Result<(), DiscoverError> {
    if depth > 16 {
        return Ok(());
    }
    let io = |e| DiscoverError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().to_string();
        // Templates hold no values; skipping them keeps big charts cheap.
        if name.starts_with('.') || (rel.is_empty() && name == "templates") {
            continue;
        }
        let path = entry.path();
        let child = format!("{rel}{name}");
        let meta = std::fs::metadata(&path).map_err(|e| DiscoverError::Io {
            path: path.clone(),
            source: e,
        })?;
        if meta.is_dir() {
            read_dir_files(&path, &format!("{child}/"), depth + 1, files)?;
        } else if wanted(&child) && meta.len() <= MAX_FILE {
            let bytes = std::fs::read(&path).map_err(|e| DiscoverError::Io {
                path: path.clone(),
                source: e,
            })?;
            files.insert(child, bytes);
        }
    }
    Ok(())
}

/// Loads a packaged chart (`helm package` output).
pub(crate) fn load_archive(path: &Path) -> Result<ChartFiles, DiscoverError> {
    let bytes = std::fs::read(path).map_err(|e| DiscoverError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    load_archive_bytes(&bytes, &path.display().to_string(), path, 0)
}

fn archive_error(path: &Path, message: impl Into<String>) -> DiscoverError {
    DiscoverError::Archive {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn load_archive_bytes(
    bytes: &[u8],
    label: &str,
    path: &Path,
    nesting: usize,
) -> Result<ChartFiles, DiscoverError> {
    if nesting > MAX_NESTING {
        return Err(archive_error(path, "subchart archives nested too deep"));
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = Files::new();
    let entries = archive
        .entries()
        .map_err(|e| archive_error(path, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(path, e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .map_err(|e| archive_error(path, e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if !wanted(&rel) {
            continue;
        }
        if entry.size() > MAX_FILE {
            return Err(archive_error(
                path,
                format!("{rel}: larger than {MAX_FILE} bytes"),
            ));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| archive_error(path, format!("{rel}: {e}")))?;
        files.insert(rel, data);
    }
    // The chart is the directory holding the shallowest Chart.yaml (`<name>/Chart.yaml`).
    let root = files
        .keys()
        .filter(|k| k.ends_with("Chart.yaml"))
        .min_by_key(|k| k.matches('/').count())
        .map(|k| k.trim_end_matches("Chart.yaml").to_string())
        .ok_or_else(|| archive_error(path, "no Chart.yaml inside"))?;
    from_files(
        &files,
        &root,
        format!("{label}:{root}").trim_end_matches('/'),
        nesting,
    )
    .map_err(|e| match e {
        DiscoverError::Yaml { .. } => e,
        other => archive_error(path, other.to_string()),
    })
}

fn parse_map(bytes: &[u8], label: &str) -> Result<Node, DiscoverError> {
    let text = String::from_utf8_lossy(bytes);
    let docs = parse_stream(&text).map_err(|e| DiscoverError::Yaml {
        file: label.to_string(),
        line: super::Line(e.line),
        message: e.message,
    })?;
    Ok(docs
        .into_iter()
        .find_map(|d| d.node)
        .filter(|n| matches!(n, Node::Map(_)))
        .unwrap_or(Node::Map(Vec::new())))
}

fn dependencies(node: &Node) -> Vec<Dependency> {
    node.get("dependencies")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            Some(Dependency {
                name: d.get("name")?.scalar_text()?,
                alias: d.get("alias").and_then(Node::scalar_text),
                condition: d.get("condition").and_then(Node::scalar_text),
            })
        })
        .collect()
}

/// Builds the chart rooted at `root` ("" or "dir/") from the collected files.
fn from_files(
    files: &Files,
    root: &str,
    label: &str,
    nesting: usize,
) -> Result<ChartFiles, DiscoverError> {
    let file = |name: &str| files.get(&format!("{root}{name}"));
    let sep = if label.ends_with(':') { "" } else { "/" };
    let chart_label = format!("{label}{sep}Chart.yaml");
    let meta = match file("Chart.yaml") {
        Some(b) => parse_map(b, &chart_label)?,
        None => Node::Map(Vec::new()),
    };
    let values_label = format!("{label}{sep}values.yaml");
    let values = match file("values.yaml") {
        Some(b) => parse_map(b, &values_label)?,
        None => Node::Map(Vec::new()),
    };
    let mut deps = dependencies(&meta);
    if let Some(b) = file("requirements.yaml") {
        deps.extend(dependencies(&parse_map(
            b,
            &format!("{label}{sep}requirements.yaml"),
        )?));
    }

    let charts_dir = format!("{root}charts/");
    let mut subcharts = Vec::new();
    let mut sub_roots: Vec<String> = files
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix(&charts_dir)?;
            let (dir, file) = rest.split_once('/')?;
            (file == "Chart.yaml").then(|| format!("{charts_dir}{dir}/"))
        })
        .collect();
    sub_roots.sort();
    for sub in sub_roots {
        let sub_label = format!(
            "{label}{sep}{}",
            sub.strip_prefix(root).unwrap_or(&sub).trim_end_matches('/')
        );
        subcharts.push(from_files(files, &sub, &sub_label, nesting)?);
    }
    for (k, bytes) in files.range(charts_dir.clone()..) {
        let Some(rest) = k.strip_prefix(&charts_dir) else {
            break;
        };
        if !rest.contains('/') && (rest.ends_with(".tgz") || rest.ends_with(".tar.gz")) {
            let sub_label = format!("{label}{sep}charts/{rest}");
            subcharts.push(load_archive_bytes(
                bytes,
                &sub_label,
                Path::new(&sub_label),
                nesting + 1,
            )?);
        }
    }

    Ok(ChartFiles {
        values_label,
        name: meta
            .get("name")
            .and_then(Node::scalar_text)
            .unwrap_or_else(|| {
                root.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string()
            }),
        version: meta.get("version").and_then(Node::scalar_text),
        app_version: meta.get("appVersion").and_then(Node::scalar_text),
        values,
        dependencies: deps,
        subcharts,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Packs `dir` as `helm package` would (`<name>/…` inside a gzip'd tar).
    pub(crate) fn pack(dir: &Path, name: &str, out: &Path) {
        let file = std::fs::File::create(out).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(name, dir).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }

    fn edge() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/edge")
    }

    #[test]
    fn loads_dir_with_subcharts() {
        let c = load_dir(&edge()).unwrap();
        assert_eq!(c.name, "edge");
        assert_eq!(c.app_version.as_deref(), Some("1.2.3"));
        let names: Vec<&str> = c.subcharts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["extra", "worker"]);
        assert!(c
            .dependencies
            .iter()
            .any(|d| d.name == "extra" && d.condition.as_deref() == Some("extra.enabled")));
    }

    #[test]
    fn loads_archive_and_nested_archive() {
        let tmp = tempfile::tempdir().unwrap();
        // A chart whose only subchart is itself an archive.
        let outer = tmp.path().join("outer");
        std::fs::create_dir_all(outer.join("charts")).unwrap();
        std::fs::write(
            outer.join("Chart.yaml"),
            "apiVersion: v2\nname: outer\nversion: 0.1.0\nappVersion: '2.0'\n",
        )
        .unwrap();
        std::fs::write(
            outer.join("values.yaml"),
            "image: {repository: org/outer}\n",
        )
        .unwrap();
        pack(
            &edge().join("charts/worker"),
            "worker",
            &outer.join("charts/worker-0.1.0.tgz"),
        );
        let tgz = tmp.path().join("outer-0.1.0.tgz");
        pack(&outer, "outer", &tgz);
        let c = load_archive(&tgz).unwrap();
        assert_eq!(c.name, "outer");
        assert_eq!(c.app_version.as_deref(), Some("2.0"));
        assert!(
            c.values_label
                .ends_with("outer-0.1.0.tgz:outer/values.yaml"),
            "{}",
            c.values_label
        );
        assert_eq!(c.subcharts.len(), 1);
        assert_eq!(c.subcharts[0].name, "worker");
    }

    #[test]
    fn broken_archive_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.tgz");
        std::fs::write(&bad, b"not gzip").unwrap();
        let e = load_archive(&bad).unwrap_err();
        assert!(e.to_string().contains("bad.tgz"), "{e}");
    }
}
