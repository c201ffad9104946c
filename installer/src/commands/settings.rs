//! From the command line to the library's settings: where the host is, how to reach this
//! node, how the operator invoked us (for the commands we print), the run lock and the
//! operator's confirmation.

use crate::cli::{Cli, HostArgs};
use crate::host::Host;
use crate::install::InstallSettings;
use crate::site::SiteConfig;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::time::Duration;

pub fn host(h: &HostArgs) -> Result<Host> {
    Host::new(&h.root, h.data_dir.as_deref()).context("--data-dir")
}

/// How the operator ran this program (`./delivery.run`), for the commands we print.
pub fn invocation() -> String {
    std::env::args()
        .next()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "./delivery.run".into())
}

pub fn node_ip(h: &HostArgs) -> IpAddr {
    h.node_ip
        .unwrap_or_else(crate::install::netinfo::default_node_ip)
}

pub fn install(cli: &Cli) -> Result<InstallSettings> {
    let h = &cli.host;
    let host = host(h)?;
    let host_for_detect = host.clone();
    Ok(InstallSettings {
        systemd: crate::service::use_systemd(&host),
        host,
        node_ip: node_ip(h),
        registry_port: h.registry_port,
        join_port: h.join_port,
        wait_timeout: Duration::from_secs(h.wait_timeout),
        skip_preflight: h.skip_preflight.clone(),
        quiet: cli.quiet || cli.output == ferry_console::OutputFormat::Json,
        invocation: invocation(),
        host_containerd: crate::install::runtime::detect_host_containerd(&host_for_detect),
        serve_also: None,
        site: site(cli, &host_for_detect)?,
    })
}

/// `--site-registry` and its options as the site's config (CA read, password read from
/// stdin). Without `--site-registry`, a host installed with one keeps it (its
/// `site.json`), so an upgrade or a resumed install goes on pulling from the site.
pub fn site(cli: &Cli, host: &Host) -> Result<Option<SiteConfig>> {
    let a = &cli.site;
    let Some(spec) = &a.site_registry else {
        if a.site_registry_ca.is_some()
            || a.site_registry_user.is_some()
            || a.site_registry_password_stdin
            || a.site_registry_insecure
        {
            bail!("the --site-registry-* options need --site-registry <host[:port]/path>");
        }
        let p = host.path(&crate::site::config_path());
        return match std::fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("{}", p.display()))?,
            )),
            Err(_) => Ok(None),
        };
    };
    let mut site = SiteConfig::parse(spec)?;
    site.plain_http = a.site_registry_insecure;
    if let Some(ca) = &a.site_registry_ca {
        if site.plain_http {
            bail!("--site-registry-ca and --site-registry-insecure contradict each other: a plain-HTTP registry has no certificate");
        }
        let pem = std::fs::read_to_string(ca)
            .with_context(|| format!("--site-registry-ca {}", ca.display()))?;
        crate::join::tls::pinned_client(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("--site-registry-ca {}: {e}", ca.display()))?;
        site.ca_pem = Some(pem);
    }
    match (&a.site_registry_user, a.site_registry_password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the site registry password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                bail!("--site-registry-password-stdin: stdin gave an empty password");
            }
            site.login = Some(crate::site::Login {
                username: user.clone(),
                password,
            });
        }
        (Some(_), false) => bail!(
            "--site-registry-user needs --site-registry-password-stdin (the password is read from stdin, never from the command line)"
        ),
        (None, true) => bail!("--site-registry-password-stdin needs --site-registry-user"),
        (None, false) => {}
    }
    Ok(Some(site))
}

/// Asks `question` on a terminal; `--yes` answers for the operator. Without a terminal
/// and without `--yes`, a destructive command refuses rather than guess.
pub fn confirm(question: &str, yes: bool, destructive: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        if destructive {
            bail!("{question} — refusing without a terminal to ask on; pass --yes to confirm");
        }
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let mut a = String::new();
    std::io::stdin().lock().read_line(&mut a)?;
    if !matches!(a.trim(), "y" | "Y" | "yes" | "YES") {
        bail!("not confirmed; nothing was changed (pass --yes to skip the question)");
    }
    Ok(())
}

/// The run lock: one install, join or reset at a time on a host. Held until dropped, or
/// until the process ends however it ends.
pub struct RunLock {
    _lock: crate::process_lock::ProcessLock,
    path: std::path::PathBuf,
}

impl RunLock {
    pub fn take(host: &Host) -> Result<RunLock> {
        use crate::process_lock::{LockError, ProcessLock};
        let path = host.path(&host.lock_file());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        match ProcessLock::try_take(&path) {
            Ok(l) => Ok(RunLock { _lock: l, path }),
            Err(held @ LockError::Held { .. }) => bail!(
                "another ferry install, join or reset is running on this host ({held}; lock {}); wait for it to finish",
                path.display()
            ),
            Err(e) => bail!("locking {}: {e}", path.display()),
        }
    }
    /// Removes the lock file (reset: nothing of ferry's may be left).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
