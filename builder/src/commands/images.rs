//! `ferry images`: what a build would carry, and why — without pulling anything.
//!
//! It reads the Kubefile through the same [`Recipe`] as `ferry build`, so it lists the
//! same images, under the names the build will give them (a local `oci:` or
//! `docker-archive:` image under the name its layout or tarball records, read without
//! hashing layers), with the same origins (`Kubefile:LINE`, `images.txt:LINE`). The apps'
//! images and candidates go through the build's own [`Selection`]: candidates are asked of
//! their registries (one manifest `HEAD` each, no blob is fetched) unless `--candidates`
//! says otherwise, so the list is what the build will carry, each image marked certain,
//! verified candidate or helm hook/test, and the dropped candidates listed with the reason.
//! A `FROM <bundle>` base contributes its images with origin `FROM <base>` (read from its
//! bundle.json: a registry base is not pulled), unless the Kubefile names them anew.

use crate::build::apps;
use crate::cli::{ImagesArgs, OutputFormat};
use crate::discover::select::{Entry, Invalid, Summary};
use crate::discover::verify::Checked;
use crate::discover::{CandidateMode, Found, Selection, Status};
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
    /// Why discovery reported it (`pod template`, `flag --executor-image`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    clue: Option<String>,
    /// The object's `helm.sh/hook` annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    hook: Option<String>,
    candidate: bool,
}

/// One image and what becomes of it.
#[derive(Debug, Serialize)]
struct Listed {
    /// `image` (an IMAGE line), or the selection's status: `certain`, `verified`, …
    status: String,
    /// Why it is not carried, for dropped and failed candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `certain, helm hook test`: what the text listing shows.
    label: String,
    hooks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<Checked>,
    origins: Vec<Origin>,
}

impl Listed {
    /// An image carried because the Kubefile (or its base) names it, with `origins`.
    fn image(origins: Vec<Origin>) -> Listed {
        Listed {
            status: "image".into(),
            reason: None,
            label: String::new(),
            hooks: vec![],
            check: None,
            origins,
        }
    }
}

#[derive(Debug, Serialize)]
struct Listing {
    candidates: CandidateMode,
    /// What the build carries.
    images: BTreeMap<String, Listed>,
    /// Candidates not carried: their registries do not have them, or could not be asked.
    dropped: BTreeMap<String, Listed>,
    /// Candidates not carried because of `--candidates none`.
    not_carried: BTreeMap<String, Listed>,
    /// Strings that are no valid reference.
    invalid: Vec<Invalid>,
    summary: Summary,
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
    let mut planned = Vec::new();
    let mut warnings = Vec::new();
    let pull = args.registry.pull_options();
    let base = match &recipe.base {
        Some((spec, at)) => {
            let m = crate::build::base::manifest(spec, &ctx, &pull)
                .with_context(|| format!("{at}: FROM {spec}"))?;
            Some((spec.clone(), m))
        }
        None => None,
    };
    for a in &recipe.apps {
        let p = apps::discover(a).with_context(|| a.origin.to_string())?;
        warnings.extend(
            p.discovery
                .warnings
                .iter()
                .map(|w| format!("APP {}: {w}", a.name)),
        );
        planned.push(p);
    }
    let mode = args.candidates.mode();
    let selection = apps::select(&recipe, &planned, mode, false, &pull)?;
    let mut l = Listing {
        candidates: mode,
        images: BTreeMap::new(),
        dropped: BTreeMap::new(),
        not_carried: BTreeMap::new(),
        invalid: selection.invalid.clone(),
        summary: selection.summary(),
        warnings,
    };
    for spec in &recipe.images {
        let name = crate::image::image_name(&spec.written, &spec.source, spec.name.as_ref())
            .with_context(|| spec.origin.to_string())?;
        l.images
            .entry(name.to_string())
            .or_insert_with(|| Listed::image(vec![]))
            .origins
            .push(Origin {
                via: spec.via.to_string(),
                written: spec.written.clone(),
                file: spec.origin.to_string(),
                object: None,
                field: None,
                clue: None,
                hook: None,
                candidate: false,
            });
    }
    add_selection(&mut l, &selection);
    if let Some((spec, m)) = &base {
        for img in &m.images {
            // The Kubefile naming it anew replaces the base's.
            l.images.entry(img.name.to_string()).or_insert_with(|| {
                Listed::image(vec![Origin {
                    via: "FROM".into(),
                    written: img.source.clone(),
                    file: spec.clone(),
                    object: None,
                    field: None,
                    clue: None,
                    hook: None,
                    candidate: false,
                }])
            });
        }
    }

    if let Some(why) = &args.why {
        let key = Reference::parse(why)
            .map(|r| r.to_string())
            .unwrap_or_else(|_| why.clone());
        let Some(hit) = [&l.images, &l.dropped, &l.not_carried]
            .into_iter()
            .find_map(|m| m.get(&key))
        else {
            anyhow::bail!(
                "{why} ({key}) is not referenced by {}",
                args.kubefile.display()
            );
        };
        match output {
            OutputFormat::Json => print_json(&serde_json::json!({
                "image": key,
                "status": hit.status,
                "reason": hit.reason,
                "hooks": hit.hooks,
                "check": hit.check,
                "origins": hit.origins,
            }))?,
            OutputFormat::Text => {
                match hit.label.is_empty() {
                    true => outln!("{key}")?,
                    false => outln!("{key}: {}", hit.label)?,
                }
                if let Some(r) = &hit.reason {
                    outln!("  not carried: {r}")?;
                }
                if let Some(c) = &hit.check {
                    outln!("  registry: {} ({} ms)", c.check.reason(), c.millis)?;
                }
                for o in &hit.origins {
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
            for i in &l.invalid {
                eprintln!("warning: no image reference: {i}");
            }
            for (k, it) in &l.images {
                match it.label.is_empty() {
                    true => outln!("{k}\t{}", describe(&it.origins[0]))?,
                    false => outln!("{k}\t{} [{}]", describe(&it.origins[0]), it.label)?,
                }
            }
            if !l.dropped.is_empty() {
                outln!("\ndropped candidates (not carried: their registries do not have them, or could not be asked):")?;
                for (k, it) in &l.dropped {
                    outln!(
                        "  {k}\t{}: {}",
                        describe(&it.origins[0]),
                        it.reason.as_deref().unwrap_or("")
                    )?;
                }
            }
            if !l.not_carried.is_empty() {
                outln!("\ncandidates not carried (--candidates none; `--candidates verify` asks their registries):")?;
                for (k, it) in &l.not_carried {
                    outln!("  {k}\t{}", describe(&it.origins[0]))?;
                }
            }
        }
    }
    Ok(())
}

/// Adds the apps' entries: carried ones beside the IMAGE lines, the rest apart.
fn add_selection(l: &mut Listing, selection: &Selection) {
    for e in &selection.entries {
        let origins = e
            .origins
            .iter()
            .map(|o| app_origin(&o.app, &o.found, o.candidate));
        let map = match &e.status {
            s if s.carried() => &mut l.images,
            Status::Dropped { .. } => &mut l.dropped,
            _ => &mut l.not_carried,
        };
        let listed = map.entry(e.image.clone()).or_insert_with(|| listed(e));
        // An IMAGE line carries it too: the apps' verdict still tells why they need it.
        if listed.status == "image" {
            let own = self::listed(e);
            listed.status = own.status;
            listed.label = own.label;
            listed.hooks = own.hooks;
            listed.check = own.check;
        }
        listed.origins.extend(origins);
    }
}

fn listed(e: &Entry) -> Listed {
    let (status, reason) = match &e.status {
        Status::Dropped { reason } | Status::Failed { reason } => {
            (status_name(&e.status), Some(reason.clone()))
        }
        s => (status_name(s), None),
    };
    Listed {
        status,
        reason,
        label: e.label(),
        hooks: e.hooks.clone(),
        check: e.check.clone(),
        origins: vec![],
    }
}

/// The status's JSON name (`verified`, `dropped`).
fn status_name(s: &Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn app_origin(app: &str, f: &Found, candidate: bool) -> Origin {
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
    Origin {
        via: format!("APP {app}"),
        written: f.image.clone(),
        file: f.file.clone(),
        object,
        field: Some(f.field.clone()),
        clue: Some(f.clue.to_string()),
        hook: f.hook.clone(),
        candidate,
    }
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
    if let Some(c) = o.clue.as_deref().filter(|c| *c != "pod template") {
        s.push_str(&format!(" ({c})"));
    }
    s
}
