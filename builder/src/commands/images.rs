//! `ferry images`: what a build would carry, and why — without pulling anything.
//!
//! It reads the Kubefile through the same [`Recipe`] as `ferry build`, so it lists the
//! same images, under the names the build will give them (a local `oci:` or
//! `docker-archive:` image under the name its layout or tarball records, read without
//! hashing layers), with the same origins (`Kubefile:LINE`, `images.txt:LINE`). A
//! `FROM <bundle>` base contributes its images with origin `FROM <base>` (read from its
//! bundle.json: a registry base is not pulled), unless the Kubefile names them anew.

use crate::build::apps;
use crate::cli::{ImagesArgs, OutputFormat};
use crate::kubefile::Recipe;
use anyhow::{Context, Result};
use ferry_bundle::reference::Reference;
use ferry_console::{outln, print_json};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Serialize, Clone)]
struct Origin {
    /// `IMAGE`, `IMAGES`, `APP <name>`.
    via: String,
    /// As written.
    written: String,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    candidate: bool,
}

#[derive(Debug, Serialize)]
struct Listing {
    images: BTreeMap<String, Vec<Origin>>,
    candidates: BTreeMap<String, Vec<Origin>>,
    warnings: Vec<String>,
}

pub fn run(args: &ImagesArgs, output: OutputFormat) -> Result<()> {
    let ctx = args.context.clone().unwrap_or_else(|| {
        args.kubefile
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let recipe = Recipe::read(&args.kubefile, &ctx)?;
    let mut l = Listing {
        images: BTreeMap::new(),
        candidates: BTreeMap::new(),
        warnings: vec![],
    };
    let kfname = args.kubefile.display().to_string();
    let base = match &recipe.base {
        Some((spec, at)) => {
            let m = crate::build::base::manifest(
                spec,
                &ctx,
                &crate::pull::PullOptions {
                    insecure_registries: args.insecure_registries.clone(),
                    ..Default::default()
                },
            )
            .with_context(|| format!("{at}: FROM {spec}"))?;
            Some((spec.clone(), m))
        }
        None => None,
    };
    let add = |map: &mut BTreeMap<String, Vec<Origin>>, key: String, o: Origin| {
        map.entry(key).or_default().push(o)
    };
    for spec in &recipe.images {
        let name = crate::image::image_name(&spec.written, &spec.source, spec.name.as_ref())
            .with_context(|| spec.origin.to_string())?;
        add(
            &mut l.images,
            name.to_string(),
            Origin {
                via: spec.via.to_string(),
                written: spec.written.clone(),
                file: spec.origin.to_string(),
                object: None,
                field: None,
                candidate: false,
            },
        );
    }
    for a in &recipe.apps {
        let p = apps::discover(a).with_context(|| a.origin.to_string())?;
        l.warnings.extend(
            p.discovery
                .warnings
                .iter()
                .map(|w| format!("APP {}: {w}", a.name)),
        );
        for (f, cand) in p
            .discovery
            .images
            .iter()
            .map(|f| (f, false))
            .chain(p.discovery.candidates.iter().map(|f| (f, true)))
        {
            let key = Reference::parse(&f.image)
                .map(|r| r.to_string())
                .unwrap_or_else(|_| f.image.clone());
            let object = match (&f.kind, &f.name) {
                (Some(k), Some(n)) => Some(format!(
                    "{k} {}{n}",
                    f.namespace
                        .as_ref()
                        .map(|ns| format!("{ns}/"))
                        .unwrap_or_default()
                )),
                _ => None,
            };
            let o = Origin {
                via: format!("APP {}", a.name),
                written: f.image.clone(),
                file: f.file.clone(),
                object,
                field: Some(f.field.clone()),
                candidate: cand,
            };
            if cand && !args.include_candidates {
                add(&mut l.candidates, key, o);
            } else {
                add(&mut l.images, key, o);
            }
        }
    }
    if let Some((spec, m)) = &base {
        for img in &m.images {
            let key = img.name.to_string();
            if l.images.contains_key(&key) {
                continue; // the Kubefile names it anew: it replaces the base's
            }
            add(
                &mut l.images,
                key,
                Origin {
                    via: "FROM".into(),
                    written: img.source.clone(),
                    file: spec.clone(),
                    object: None,
                    field: None,
                    candidate: false,
                },
            );
        }
    }
    if let Some(why) = &args.why {
        let key = Reference::parse(why)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| why.clone());
        let hits: Vec<&Origin> = l
            .images
            .get(&key)
            .into_iter()
            .chain(l.candidates.get(&key))
            .flatten()
            .collect();
        if hits.is_empty() {
            anyhow::bail!("{why} ({key}) is not referenced by {kfname}");
        }
        match output {
            OutputFormat::Json => print_json(&serde_json::json!({"image": key, "origins": hits}))?,
            OutputFormat::Text => {
                outln!("{key}")?;
                for o in hits {
                    outln!("  {}", describe(o))?;
                }
            }
        }
        return Ok(());
    }
    match output {
        OutputFormat::Json => print_json(&l)?,
        OutputFormat::Text => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            for (k, os) in &l.images {
                outln!("{k}\t{}", describe(&os[0]))?;
            }
            if !l.candidates.is_empty() {
                outln!("\ncandidates (image-like strings outside pod specs; not carried unless --include-candidates):")?;
                for (k, os) in &l.candidates {
                    outln!("  {k}\t{}", describe(&os[0]))?;
                }
            }
        }
    }
    Ok(())
}

fn describe(o: &Origin) -> String {
    let mut s = format!("{} {}", o.via, o.file);
    if let Some(obj) = &o.object {
        s.push_str(&format!(" {obj}"));
    }
    if let Some(f) = &o.field {
        s.push_str(&format!(" {f}"));
    }
    if o.written != o.file && !o.via.starts_with("IMAGE") {
        s.push_str(&format!(" = {:?}", o.written));
    }
    s
}
