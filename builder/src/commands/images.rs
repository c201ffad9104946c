//! `ferry images`: what a build would carry, and why — without pulling anything.

use crate::build::apps::{self, AppSpec};
use crate::cli::{ImagesArgs, OutputFormat};
use crate::kubefile::{Instruction, Kubefile};
use anyhow::{Context, Result};
use ferry_bundle::reference::Reference;
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
    let kf = Kubefile::read(&args.kubefile)?;
    let mut l = Listing {
        images: BTreeMap::new(),
        candidates: BTreeMap::new(),
        warnings: vec![],
    };
    let kfname = args.kubefile.display().to_string();
    let mut app_specs: Vec<AppSpec> = Vec::new();
    let add = |map: &mut BTreeMap<String, Vec<Origin>>, key: String, o: Origin| {
        map.entry(key).or_default().push(o)
    };
    for li in kf.iter() {
        let at = format!("{kfname}:{}", li.line);
        match &li.ins {
            Instruction::Image { sources, name } => {
                for s in sources {
                    let key = match name {
                        Some(n) => Reference::parse(n)
                            .map(|r| r.to_string())
                            .unwrap_or_else(|_| n.clone()),
                        None => Reference::parse(s)
                            .map(|r| r.to_string())
                            .unwrap_or_else(|_| s.clone()),
                    };
                    add(
                        &mut l.images,
                        key,
                        Origin {
                            via: "IMAGE".into(),
                            written: s.clone(),
                            file: at.clone(),
                            object: None,
                            field: None,
                            candidate: false,
                        },
                    );
                }
            }
            Instruction::Images(file) => {
                let p = ctx.join(file);
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("{at}: IMAGES {}", p.display()))?;
                for (n, line) in text.lines().enumerate() {
                    let s = line.trim();
                    if s.is_empty() || s.starts_with('#') {
                        continue;
                    }
                    let key = Reference::parse(s)
                        .map_err(|e| anyhow::anyhow!("{}:{}: {e}", p.display(), n + 1))?
                        .to_string();
                    add(
                        &mut l.images,
                        key,
                        Origin {
                            via: "IMAGES".into(),
                            written: s.into(),
                            file: format!("{}:{}", p.display(), n + 1),
                            object: None,
                            field: None,
                            candidate: false,
                        },
                    );
                }
            }
            Instruction::App { name, path } => app_specs.push(AppSpec {
                name: name.clone(),
                path: ctx.join(path),
                values: vec![],
                set: vec![],
                line: li.line,
            }),
            Instruction::Values { app, file } => {
                if let Some(a) = app_specs.iter_mut().find(|a| &a.name == app) {
                    a.values.push(ctx.join(file));
                }
            }
            Instruction::Set { app, assignment } => {
                if let Some(a) = app_specs.iter_mut().find(|a| &a.name == app) {
                    a.set.push(assignment.clone());
                }
            }
            _ => {}
        }
    }
    for a in &app_specs {
        let p = apps::discover(a).with_context(|| format!("{kfname}:{}", a.line))?;
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
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"image": key, "origins": hits}))?
            ),
            OutputFormat::Text => {
                println!("{key}");
                for o in hits {
                    println!("  {}", describe(o));
                }
            }
        }
        return Ok(());
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&l)?),
        OutputFormat::Text => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            for (k, os) in &l.images {
                println!("{k}\t{}", describe(&os[0]));
            }
            if !l.candidates.is_empty() {
                println!("\ncandidates (image-like strings outside pod specs; not carried unless --include-candidates):");
                for (k, os) in &l.candidates {
                    println!("  {k}\t{}", describe(&os[0]));
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
