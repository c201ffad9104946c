//! `APP` / `VALUES` / `SET`: applications, their discovered images, and how they are
//! carried. A chart travels as one `.tgz` (a chart directory is packed here, so the
//! installer can hand it to k3s's Helm controller as `chartContent`); manifests travel as
//! files. Values files travel too: the same values drive discovery now and install later.

use super::files::walk_sorted;
use crate::discover::{self, AppKind, Discovery, Found};
pub use crate::kubefile::AppSpec;
use anyhow::{Context, Result};
use ferry_bundle::reference::Reference;
use std::io::Write;
use std::path::Path;

/// An app after discovery: what to carry and which images it needs.
pub struct PlannedApp {
    pub spec: AppSpec,
    pub kind: AppKind,
    pub discovery: Discovery,
}

pub fn discover(spec: &AppSpec) -> Result<PlannedApp> {
    let kind = discover::classify(&spec.path).with_context(|| format!("APP {}", spec.name))?;
    let discovery = discover::discover_app(&spec.path, &spec.values, &spec.set)
        .with_context(|| format!("APP {}: discovering images", spec.name))?;
    Ok(PlannedApp {
        spec: spec.clone(),
        kind,
        discovery,
    })
}

/// The normalised references an app needs (`include_candidates` adds the candidates).
pub fn image_refs(app: &PlannedApp, include_candidates: bool) -> Result<Vec<(Reference, &Found)>> {
    let mut out = Vec::new();
    let found = app.discovery.images.iter().chain(if include_candidates {
        app.discovery.candidates.iter()
    } else {
        [].iter()
    });
    for f in found {
        let r = Reference::parse(&f.image)
            .map_err(|e| anyhow::anyhow!("APP {}: {} ({}): {e}", app.spec.name, f.image, f.file))?;
        out.push((r, f));
    }
    Ok(out)
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
