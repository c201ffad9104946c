//! `APP` / `VALUES` / `SET`: applications, their discovered images, and how they are
//! carried. A chart travels as one `.tgz` (a chart directory is packed here, so the
//! installer can hand it to k3s's Helm controller as `chartContent`); manifests travel as
//! files. Values files travel too: the same values drive discovery now and install later.

use super::files::walk_sorted;
use crate::discover::verify::LiveRegistries;
use crate::discover::{self, AppKind, CandidateMode, Discovery, Selection};
pub use crate::kubefile::AppSpec;
use crate::kubefile::Recipe;
use crate::pull::PullOptions;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// An app after discovery: what to carry and which images it needs.
pub struct PlannedApp {
    pub spec: AppSpec,
    pub kind: AppKind,
    pub discovery: Discovery,
    /// The images carried for it (normalised, sorted): set once the build has decided
    /// ([`select`]); recorded in bundle.json's `apps[].images`.
    pub carried: Vec<String>,
}

pub fn discover(spec: &AppSpec) -> Result<PlannedApp> {
    let kind = discover::classify(&spec.path).with_context(|| format!("APP {}", spec.name))?;
    let discovery = discover::discover_app(&spec.path, &spec.values, &spec.set)
        .with_context(|| format!("APP {}: discovering images", spec.name))?;
    Ok(PlannedApp {
        spec: spec.clone(),
        kind,
        discovery,
        carried: Vec::new(),
    })
}

/// Decides which of the apps' images and candidates to carry ([`Selection`]): the one
/// decision `ferry build` carries out and `ferry images` reports. Candidates that `IMAGE`
/// lines carry anyway are not asked about.
pub fn select(
    recipe: &Recipe,
    apps: &[PlannedApp],
    mode: CandidateMode,
    strict: bool,
    pull: &PullOptions,
) -> Result<Selection> {
    let mut provided = BTreeSet::new();
    for spec in &recipe.images {
        let name = crate::image::image_name(&spec.written, &spec.source, spec.name.as_ref())
            .with_context(|| spec.origin.to_string())?;
        provided.insert(name.to_string());
    }
    let discoveries: Vec<(&str, &Discovery)> = apps
        .iter()
        .map(|a| (a.spec.name.as_str(), &a.discovery))
        .collect();
    Ok(Selection::new(
        &discoveries,
        &provided,
        mode,
        strict,
        &LiveRegistries { pull },
    ))
}

/// Refuses a selection holding a pod-template image that is no valid reference (a value
/// left unrendered, a typo), naming the app, the string and the file.
pub fn check_valid(selection: &Selection) -> Result<()> {
    match selection.invalid.iter().find(|i| !i.origin.candidate) {
        Some(i) => anyhow::bail!("{i}"),
        None => Ok(()),
    }
}

/// Packs a chart directory into `<chart-name>/…` inside a gzip tarball, as `helm package`
/// does, and the same way every time: files in sorted order ([`walk_sorted`]), tar headers
/// in the tar crate's deterministic mode (fixed mtime, uid/gid 0, mode 0644 or 0755), a
/// gzip header without time or name. The same chart therefore packs to the same bytes on
/// any machine, which byte-identical rebuilds need.
pub fn pack_chart(dir: &Path, out: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart".into());
    let f = std::fs::File::create(out)?;
    let gz = flate2::GzBuilder::new().write(f, flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    t.mode(tar::HeaderMode::Deterministic);
    t.follow_symlinks(true);
    for (rel, path) in walk_sorted(dir)? {
        t.append_path_with_name(&path, format!("{name}/{rel}"))
            .with_context(|| format!("packing chart {}: {}", dir.display(), path.display()))?;
    }
    t.into_inner()?.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_packs_to_the_same_bytes_whatever_the_file_times_and_order() {
        let d = tempfile::tempdir().unwrap();
        let pack = |chart: &Path, out: &str| {
            let p = d.path().join(out);
            pack_chart(chart, &p).unwrap();
            std::fs::read(p).unwrap()
        };
        let make = |root: &str, order: &[&str]| {
            let c = d.path().join(root).join("web");
            for f in order {
                let p = c.join(f);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, format!("{f}\n")).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            c
        };
        let a = make(
            "a",
            &[
                "Chart.yaml",
                "templates/x.yaml",
                "values.yaml",
                "templates/a.yaml",
            ],
        );
        let b = make(
            "b",
            &[
                "templates/a.yaml",
                "values.yaml",
                "templates/x.yaml",
                "Chart.yaml",
            ],
        );
        let (pa, pb) = (pack(&a, "a.tgz"), pack(&b, "b.tgz"));
        assert_eq!(pa, pb);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&pa[..]));
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "web/Chart.yaml",
                "web/templates/a.yaml",
                "web/templates/x.yaml",
                "web/values.yaml"
            ]
        );
    }
}
