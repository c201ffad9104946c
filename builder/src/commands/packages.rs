//! `ferry packages -f Kubefile`: the OS packages a build would carry, and why — the
//! closure resolved from the signed repositories, without downloading a `.deb`.

use crate::cli::{OutputFormat, PackagesArgs};
use crate::kubefile::Recipe;
use crate::packages::{self, AptOptions};
use anyhow::Result;
use ferry_console::outln;
use serde_json::json;

pub fn run(args: &PackagesArgs, output: OutputFormat, _quiet: bool) -> Result<()> {
    let ctx = super::context(&args.kubefile, args.context.as_deref());
    let recipe = Recipe::read(&args.kubefile, &ctx)?;
    let spec = packages::Spec::from_recipe(&recipe)?;
    let cache = packages::open_cache(args.cache_dir.as_deref())?;
    let opts = AptOptions {
        mirrors: args.apt_mirrors.clone(),
        etc_apt: None,
    };
    let Some(res) = packages::resolve_spec(&spec, &opts, &cache)? else {
        match output {
            OutputFormat::Json => ferry_console::print_json(&json!({"packages": []}))?,
            OutputFormat::Text => outln!(
                "{}: no PACKAGE deb lines; nothing to carry",
                args.kubefile.display()
            )?,
        }
        return Ok(());
    };
    let total: u64 = res.closure.packages.iter().map(|p| p.package.size).sum();
    match output {
        OutputFormat::Json => {
            let pkgs: Vec<_> = res
                .closure
                .packages
                .iter()
                .map(|r| {
                    let rec = packages::record(r);
                    json!({
                        "name": rec.name,
                        "version": rec.version,
                        "architecture": rec.architecture,
                        "size": rec.size,
                        "sha256": rec.sha256.hex(),
                        "group": rec.group,
                        "depends": rec.depends,
                        "why": r.why,
                        "url": res.url(r),
                    })
                })
                .collect();
            ferry_console::print_json(&json!({
                "os": res.target,
                "repositories": res.repos,
                "packages": pkgs,
                "size": total,
                "base": res.closure.base,
            }))?;
        }
        OutputFormat::Text => {
            let t = &res.target;
            outln!(
                "{} {} {}: {} packages, {} bytes, resolved from {} packages of:",
                t.distribution,
                t.release,
                t.architecture,
                res.closure.packages.len(),
                total,
                res.indexed
            )?;
            for r in &res.repos {
                outln!("  {} ({})", r.describe(), r.from)?;
            }
            outln!("in install order (dependencies first):")?;
            for r in &res.closure.packages {
                let p = &r.package;
                let more = if r.why.len() > 1 {
                    format!(" (+{} more)", r.why.len() - 1)
                } else {
                    String::new()
                };
                outln!(
                    "  {} {}  {}{more}",
                    p.name,
                    p.version,
                    r.why.first().map(|w| w.to_string()).unwrap_or_default()
                )?;
            }
            if !res.closure.base.is_empty() {
                outln!(
                    "not carried: every {} {} installation has {}",
                    t.distribution,
                    t.release,
                    res.closure
                        .base
                        .iter()
                        .map(|(n, v)| format!("{n} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
        }
    }
    Ok(())
}
