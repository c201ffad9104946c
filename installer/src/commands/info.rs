//! `--info`: what the bundle carries, from bundle.json alone (two small reads, instant
//! on any size of bundle; bundle.json itself is checked against the footer's sha256),
//! whether it is signed and by which key (the signature is checked: one ECDSA
//! verification) and whether this host trusts that key, and the parts of a split bundle.
//! It never refuses a bundle: it is how an operator looks at one that was refused.

use crate::cli::Cli;
use crate::commands::human;
use anyhow::Result;
use ferry_console::{outln, OutputFormat};
use serde_json::json;
use std::process::ExitCode;

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let output = cli.output;
    let b = crate::locate::open(cli.bundle.as_deref())?;
    let m = &b.manifest;
    let admitted = super::trust::admit(cli, &b);
    let signature = super::trust::json(&admitted, &b);
    let parts: Vec<serde_json::Value> = match &b.part_table {
        Some(t) => t
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    "part": i + 1,
                    "file": ferry_bundle::parts::part_path(&b.path, i + 1),
                    "size": r.size,
                    "sha256": r.sha256.hex(),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    match output {
        OutputFormat::Json => {
            let v = json!({
                "name": m.name,
                "version": m.version,
                "builder": m.builder,
                "platform": m.platform,
                "cluster": m.cluster,
                "labels": m.labels,
                "env": m.env,
                "size": b.file_len,
                "installer_size": m.installer.size,
                "payload_size": b.footer.payload_len,
                "payload_sha256": b.footer.payload_sha256.hex(),
                "images": m.images,
                "apps": m.apps,
                "files": m.files,
                "payloads": m.payloads,
                "hooks": m.hooks,
                "os": m.os,
                "packages": m.packages,
                "base": m.base,
                "entries": m.entries.len() + 1,
                "delta": m.delta.as_ref().map(|d| serde_json::json!({
                    "base": d.base,
                    "base_name": d.base_name,
                    "base_version": d.base_version,
                    "inherited_entries": d.inherited.len(),
                    "inherited_bytes": d.inherited.iter().map(|e| e.size).sum::<u64>(),
                })),
                "format": b.footer.version,
                "signature": signature,
                "parts": parts,
                "sbom": m.sbom,
            });
            ferry_console::print_json(&v)?;
        }
        OutputFormat::Text => {
            outln!("name:      {}", m.name)?;
            if !m.version.is_empty() {
                outln!("version:   {}", m.version)?;
            }
            outln!("builder:   {}", m.builder)?;
            outln!("platform:  {}", m.platform)?;
            match &m.cluster {
                Some(c) => outln!("cluster:   {} {}", c.distribution, c.version)?,
                None => outln!("cluster:   none (container runtime only)")?,
            }
            if let Some(base) = &m.base {
                outln!(
                    "base:      FROM {} ({} {}, payload {}); items marked (from base) are inherited",
                    base.source,
                    base.name,
                    base.version,
                    base.digest
                )?;
            }
            for (k, v) in &m.labels {
                outln!("label:     {k}={v}")?;
            }
            match &admitted {
                Ok(a) => outln!("signature: {}", super::trust::describe(a))?,
                Err(e) => outln!("signature: REFUSED: {e:#}")?,
            }
            if !parts.is_empty() {
                outln!(
                    "parts:     {} ({} … {})",
                    parts.len(),
                    b.path.display(),
                    ferry_bundle::parts::part_path(&b.path, parts.len()).display()
                )?;
            }
            outln!(
                "size:      {} (installer {}, payload {}, {} entries)",
                human(b.file_len),
                human(m.installer.size),
                human(b.footer.payload_len),
                m.entries.len() + 1
            )?;
            if let Some(d) = &m.delta {
                outln!(
                    "delta:     of {} {} ({}); takes {} entries ({}) from it at the site",
                    d.base_name,
                    d.base_version,
                    d.base,
                    d.inherited.len(),
                    human(d.inherited.iter().map(|e| e.size).sum())
                )?;
            }
            outln!("images ({}):", m.images.len())?;
            let from_base = |inherited: bool| if inherited { "  (from base)" } else { "" };
            for i in &m.images {
                outln!(
                    "  {}  {}  {}{}",
                    i.name,
                    i.digest,
                    human(i.size),
                    from_base(i.inherited)
                )?;
            }
            for a in &m.apps {
                outln!(
                    "app:       {} ({}, {} images){}",
                    a.name,
                    a.kind,
                    a.images.len(),
                    from_base(a.inherited)
                )?;
            }
            for f in &m.files {
                outln!(
                    "file:      {} -> {}{}",
                    f.entry,
                    f.dest,
                    from_base(f.inherited)
                )?;
            }
            for p in m.payloads.iter().filter(|p| p.inherited) {
                outln!("payload:   {} {}{}", p.name, p.version, from_base(true))?;
            }
            if !m.packages.is_empty() {
                let os = m
                    .os
                    .as_ref()
                    .map(|o| format!(" for {} {} {}", o.distribution, o.release, o.architecture))
                    .unwrap_or_default();
                outln!("packages ({}{os}):", m.packages.len())?;
                for p in &m.packages {
                    outln!(
                        "  {} {} {}  {}  {}",
                        p.name,
                        p.version,
                        p.architecture,
                        p.sha256,
                        human(p.size)
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
