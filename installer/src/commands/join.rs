//! `join <master> --token <t>` (also `--join <master>`): prove the master, preflight,
//! then the join plan run by the engine with entries fetched from the master.

use super::settings::{self, RunLock};
use crate::cli::Cli;
use crate::engine::{Engine, JournalFile, NodeRole, RealSystem, Reporter, Resources};
use crate::install::preflight;
use crate::join::node::{self, JoinSecrets, JoinSettings, MasterSource};
use crate::join::token::Token;
use anyhow::{Context, Result};
use ferry_console::{outln, OutputFormat};
use std::process::ExitCode;
use std::time::Duration;

pub fn join_settings(cli: &Cli, master: &str) -> Result<JoinSettings> {
    let token = cli.join_args.token.as_deref().ok_or_else(|| {
        anyhow::anyhow!("join needs --token (printed by the master's install, and by its `status`)")
    })?;
    let token = Token::parse(token).context("--token")?;
    let host = settings::host(&cli.host)?;
    Ok(JoinSettings {
        master: master.to_string(),
        token,
        control_plane: cli.join_args.control_plane,
        node_ip: settings::node_ip(&cli.host),
        wait_timeout: Duration::from_secs(cli.host.wait_timeout),
        systemd: crate::service::use_systemd(&host),
    })
}

pub fn run(cli: &Cli, master: &str) -> Result<ExitCode> {
    let js = join_settings(cli, master)?;
    let host = settings::host(&cli.host)?;
    let quiet = cli.quiet || cli.output == OutputFormat::Json;
    let m = node::contact(&js.master, &js.token)?;
    // The disk check sums what the join plan writes (planning writes nothing).
    let writes = JournalFile::open(host.path(&host.journal()))
        .ok()
        .and_then(|(jf, _)| node::plan(&host, &jf.journal, &m.info, &js).ok())
        .map(|p| p.written(stub_bytes(), false))
        .unwrap_or_default();
    let mut checks = preflight::run(&preflight::Inputs {
        host: &host,
        writes,
        platform: &m.info.platform,
        ports: vec![],
        cluster: m.info.cluster.is_some(),
        bundle_sha256: &m.info.bundle_sha256.to_string(),
        bundle_name: &m.info.bundle_name,
        role: NodeRole::Join,
        invocation: &settings::invocation(),
        skip: &cli.host.skip_preflight,
    });
    let mut pkg =
        crate::install::packages::preflight_of(&host, m.info.os.as_ref(), &m.info.packages);
    preflight::skip(&mut pkg, &cli.host.skip_preflight);
    checks.extend(pkg);
    if !quiet {
        eprint!("{}", preflight::table(&checks));
    }
    let failed = preflight::failed(&checks);
    if !failed.is_empty() {
        let names: Vec<_> = failed
            .iter()
            .map(|c| format!("{} ({}: {})", c.name, c.detail, c.fix))
            .collect();
        eprintln!(
            "error: preflight failed: {}; nothing was changed",
            names.join(", ")
        );
        return Ok(ExitCode::from(super::exit::NOT_INSTALLED_OR_PREFLIGHT));
    }
    let _lock = RunLock::take(&host)?;
    let (mut jf, _) = JournalFile::open(host.path(&host.journal()))?;
    {
        // Who this host is, in the journal's very first save.
        let j = &mut jf.journal;
        j.bundle_sha256 = m.info.bundle_sha256.to_string();
        j.bundle_name = m.info.bundle_name.clone();
        j.role = NodeRole::Join;
        j.node_ip = js.node_ip.to_string();
        j.registry_url = m.info.registry.clone();
        j.site_registry = m
            .info
            .site_registry
            .as_ref()
            .map(|x| x.url())
            .unwrap_or_default();
        j.join_info = serde_json::to_value(&m.info).ok();
    }
    crate::engine::claim_trees(&host, &mut jf)?;
    let report = Reporter::console(quiet).with_log(&host.path(&host.run_log()));
    report.log_only(&format!("join of {} to {}", m.info.bundle_name, js.master));
    let plan = node::plan(&host, &jf.journal, &m.info, &js)?;
    let sys = RealSystem;
    let source = MasterSource {
        addr: js.master.clone(),
        secret: js.token.secret.clone(),
        tls: m.tls.clone(),
    };
    let secrets = JoinSecrets {
        ca: m.ca.clone(),
        secret: js.token.secret.clone(),
    };
    let engine = Engine {
        sys: &sys,
        host: &host,
        res: Resources {
            entries: &source,
            secrets: &secrets,
            stage_from: None,
            self_exe: "/proc/self/exe".into(),
        },
        wait_timeout: js.wait_timeout,
        wait_report_every: Duration::from_secs(5),
        report: &report,
    };
    let log = host.path(&host.run_log());
    engine
        .run(&plan, &mut jf)
        .with_context(|| format!("join to {} (log: {})", js.master, log.display()))?;
    match cli.output {
        OutputFormat::Json => ferry_console::print_json(&serde_json::json!({
            "ok": true,
            "role": jf.journal.role,
            "registry": jf.journal.registry_url,
            "phases": jf.journal.phases,
            "log": log,
        }))?,
        OutputFormat::Text if !cli.quiet => outln!(
            "joined {}: images are pulled from {}",
            js.master,
            jf.journal.registry_url
        )?,
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of this program without a payload: the bare installer a joined node keeps.
fn stub_bytes() -> u64 {
    let Ok(exe) = std::env::current_exe() else {
        return 0;
    };
    ferry_bundle::Bundle::open(&exe)
        .map(|b| b.footer.payload_offset)
        .or_else(|_| std::fs::metadata(&exe).map(|m| m.len()))
        .unwrap_or(0)
}
