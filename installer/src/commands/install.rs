//! `install` (default), `plan`, `preflight`, `status`, `reset`.

use crate::cli::{InstallArgs, OutputFormat};
use crate::host::Host;
use crate::install::{self, InstallCtx};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn host(i: &InstallArgs) -> Host {
    Host::new(&i.root, i.data_dir.as_deref())
}

fn ctx(bundle: Option<&Path>, i: &InstallArgs, quiet: bool) -> Result<InstallCtx> {
    Ok(InstallCtx {
        host: host(i),
        bundle: crate::locate::open(bundle)?,
        node_ip: i
            .node_ip
            .clone()
            .unwrap_or_else(install::netinfo::default_node_ip),
        registry_port: i.registry_port,
        join_port: i.join_port,
        wait_timeout: Duration::from_secs(i.wait_timeout),
        skip_preflight: i.skip_preflight.clone(),
        quiet,
    })
}

pub fn install(
    bundle: Option<&Path>,
    i: &InstallArgs,
    output: OutputFormat,
    quiet: bool,
) -> Result<ExitCode> {
    let c = ctx(bundle, i, quiet || output == OutputFormat::Json)?;
    if !i.yes && std::io::stdin().is_terminal() {
        eprint!(
            "Install bundle {} under {}? [y/N] ",
            c.bundle.manifest.name,
            c.host.root.display()
        );
        let mut a = String::new();
        std::io::stdin().read_line(&mut a)?;
        if !matches!(a.trim(), "y" | "Y" | "yes") {
            bail!("not confirmed; nothing was changed (use --yes to skip the question)");
        }
    }
    let out = install::install(&c)?;
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"ok": true, "phases": out.journal.phases, "join_command": out.journal.join_command, "preflight": out.checks})
            )?
        ),
        OutputFormat::Text => {
            if !quiet {
                eprintln!(
                    "installed {}. Status: ./delivery.run status --root {}",
                    c.bundle.manifest.name,
                    c.host.root.display()
                );
            }
            println!("To add a node, run on it:\n  {}", out.journal.join_command);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn plan(bundle: Option<&Path>, i: &InstallArgs, output: OutputFormat) -> Result<ExitCode> {
    let c = ctx(bundle, i, true)?;
    let h = &c.host;
    let mut files = vec![json!({
        "phase": "stage",
        "path": h.path(&h.staged_bundle()),
        "mode": 0o755,
        "content": install::actions::Content::Bundle { size: c.bundle.file_len, payload_sha256: c.bundle.footer.payload_sha256.hex() }.describe(),
    })];
    let mut commands = Vec::new();
    for p in install::plan_phases(&c) {
        for f in &p.files {
            files.push(json!({"phase": p.phase, "path": h.path(&f.path), "mode": f.mode, "content": f.content.describe()}));
        }
        for s in &p.services {
            if crate::service::use_systemd(h) {
                let unit = crate::service::systemd::unit(s);
                files.push(json!({"phase": p.phase, "path": crate::service::systemd::unit_path(&s.name), "mode": 0o644, "content": unit}));
            }
            for argv in install::service_commands(&c, s) {
                commands.push(json!({"phase": p.phase, "argv": argv, "service": s.name}));
            }
        }
        for argv in &p.commands {
            commands.push(json!({"phase": p.phase, "argv": argv}));
        }
    }
    let env: serde_json::Map<String, serde_json::Value> = install::hook_env(&c)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    for h in &c.bundle.manifest.hooks {
        commands.push(json!({"phase": "hooks", "argv": ["sh", "-c", h.command], "env": env}));
    }
    print_plan(&files, &commands, output)?;
    Ok(ExitCode::SUCCESS)
}

pub fn preflight(bundle: Option<&Path>, i: &InstallArgs, output: OutputFormat) -> Result<ExitCode> {
    let c = ctx(bundle, i, true)?;
    let checks = install::preflight(&c);
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
        OutputFormat::Text => print!("{}", install::preflight::table(&checks)),
    }
    Ok(if install::preflight::failed(&checks).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub fn status(i: &InstallArgs, output: OutputFormat) -> Result<ExitCode> {
    let s = install::status::status(&host(i))?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        OutputFormat::Text => print!("{}", install::status::text(&s)),
    }
    Ok(if s.installed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub fn reset(i: &InstallArgs, output: OutputFormat, quiet: bool) -> Result<ExitCode> {
    let r = install::reset::reset(&host(i))?;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        OutputFormat::Text if !quiet => println!(
            "reset: stopped {:?}, detached {} mounts, removed {} paths",
            r.services_stopped, r.unmounted, r.removed
        ),
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn join_options(
    master: &str,
    i: &InstallArgs,
    quiet: bool,
) -> Result<crate::join::node::JoinOptions> {
    let token = i
        .token
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--join needs --token (printed by the master's install)"))?;
    let token = crate::join::token::Token::parse(token).map_err(anyhow::Error::msg)?;
    Ok(crate::join::node::JoinOptions {
        master: master.to_string(),
        token,
        node_ip: i.node_ip.clone(),
        control_plane: i.control_plane,
        wait_timeout: Duration::from_secs(i.wait_timeout),
        skip_preflight: i.skip_preflight.clone(),
        quiet,
    })
}

/// `plan --join`: what joining would write and run, from the local bundle's contents and
/// without contacting the master.
pub fn join_plan(
    bundle: Option<&Path>,
    master: &str,
    i: &InstallArgs,
    output: OutputFormat,
) -> Result<ExitCode> {
    let b = crate::locate::open(bundle)
        .context("plan --join needs the bundle (run it from delivery.run)")?;
    let o = join_options(master, i, true)?;
    let h = host(i);
    let info = crate::join::protocol::join_info(&b, &format!("https://{master}"));
    let roles = info.files.iter().map(|f| f.role.clone()).collect();
    let p = crate::join::node::node_plan(&h, &info, &o, roles)?;
    let exe = h.path(&h.installer_copy()).display().to_string();
    let files: Vec<_> = p.files.iter().map(|f| json!({"phase": p.phase, "path": h.path(&f.path), "mode": f.mode, "content": f.content.describe()})).collect();
    let mut commands: Vec<_> = p
        .commands
        .iter()
        .map(|c| json!({"phase": p.phase, "argv": c}))
        .collect();
    for s in &p.services {
        commands.push(json!({"phase": p.phase, "service": s.name, "argv": crate::service::supervise_argv(&h, &exe, s)}));
    }
    print_plan(&files, &commands, output)?;
    Ok(ExitCode::SUCCESS)
}

pub fn join(master: &str, i: &InstallArgs, output: OutputFormat, quiet: bool) -> Result<ExitCode> {
    let o = join_options(master, i, quiet || output == OutputFormat::Json)?;
    let j = crate::join::node::join(&host(i), &o)?;
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"ok": true, "role": j.role, "registry": j.registry_url, "phases": j.phases})
            )?
        ),
        OutputFormat::Text if !quiet => {
            println!("joined {master}: containerd pulls from {}", j.registry_url)
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a plan (install or join): JSON `{files, commands}`, or one line per file with
/// its content indented and one line per command.
fn print_plan(
    files: &[serde_json::Value],
    commands: &[serde_json::Value],
    output: OutputFormat,
) -> Result<()> {
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"files": files, "commands": commands}))?
        ),
        OutputFormat::Text => {
            for f in files {
                println!(
                    "==> [{}] write {} (mode {:o})",
                    f["phase"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or(""),
                    f["mode"].as_u64().unwrap_or(0)
                );
                for l in f["content"].as_str().unwrap_or("").lines() {
                    println!("    | {l}");
                }
            }
            for c in commands {
                let argv: Vec<&str> = c["argv"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                println!(
                    "==> [{}] run {}",
                    c["phase"].as_str().unwrap_or(""),
                    argv.join(" ")
                );
            }
        }
    }
    Ok(())
}
