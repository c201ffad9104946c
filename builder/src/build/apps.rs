//! `APP` / `VALUES` / `SET`: applications, their discovered images, and how they are
//! carried. A chart travels as one `.tgz` (a chart directory is packed here, so the
//! installer can hand it to k3s's Helm controller as `chartContent`); manifests travel as
//! files. Values files travel too: the same values drive discovery now and install later.

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

/// Packs a chart directory into `<chart-name>/…` inside a gzip tarball, as `helm package` does.
pub fn pack_chart(dir: &Path, out: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart".into());
    let f = std::fs::File::create(out)?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    t.mode(tar::HeaderMode::Deterministic);
    t.follow_symlinks(true);
    t.append_dir_all(&name, dir)
        .with_context(|| format!("packing chart {}", dir.display()))?;
    t.into_inner()?.finish()?.flush()?;
    Ok(())
}
