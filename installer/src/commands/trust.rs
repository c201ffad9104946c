//! The trust decision, made once for every command that uses a bundle's content
//! (install, upgrade, plan, `--check`, `--extract`, `registry`), right after the bundle is
//! opened and before anything is staged or written.
//!
//! The host's policy is `--trust-key`, `--trust-fingerprint` and the site trust directory
//! (`/etc/ferry/trust/*.pem` under `--root`); the decision itself is the bundle crate's
//! ([`ferry_bundle::trust`]). Without a policy a signed bundle's key fingerprint is
//! printed, so the operator can compare it with the one the supplier gave. `status`,
//! `reset` and `rollback` run the already admitted staged copy and do not ask again: a
//! changed trust directory must never keep ferry from uninstalling itself.

use super::settings;
use crate::cli::Cli;
use anyhow::{Context, Result};
use ferry_bundle::reader::Signature;
use ferry_bundle::trust::{Admission, TrustPolicy};
use ferry_bundle::Bundle;

/// The host's pinned keys (empty: no policy).
pub fn policy(cli: &Cli) -> Result<TrustPolicy> {
    let mut p = TrustPolicy::default();
    for k in &cli.trust.trust_key {
        p.add_key_file(k, format!("--trust-key {}", k.display()))
            .map_err(anyhow::Error::msg)
            .context("--trust-key")?;
    }
    for fp in &cli.trust.trust_fingerprint {
        p.add_fingerprint(*fp, "--trust-fingerprint");
    }
    let host = settings::host(&cli.host)?;
    p.add_dir(&host.path(&host.trust_dir()))
        .map_err(anyhow::Error::msg)?;
    Ok(p)
}

/// Opens the bundle and admits it under the host's policy, saying what was decided.
pub fn open_admitted(cli: &Cli) -> Result<Bundle> {
    let b = crate::locate::open(cli.bundle.as_deref())?;
    let a = admit(cli, &b)?;
    if !cli.quiet {
        eprintln!("{}", describe(&a));
    }
    Ok(b)
}

/// The decision for an opened bundle; a refusal says nothing was changed and what to do.
pub fn admit(cli: &Cli, b: &Bundle) -> Result<Admission> {
    let p = policy(cli)?;
    Ok(p.admit(b)?)
}

/// One line for the operator.
pub fn describe(a: &Admission) -> String {
    match a {
        Admission::Trusted { key, source } => {
            format!(
                "bundle signed by key {} (trusted: {source})",
                key.fingerprint()
            )
        }
        Admission::Unchecked(Signature::Signed(key)) => format!(
            "bundle signed by key {}; this host pins no signer (--trust-key, --trust-fingerprint, \
             /etc/ferry/trust/*.pem): compare this fingerprint with the one your supplier gave you",
            key.fingerprint()
        ),
        Admission::Unchecked(Signature::Unsigned) => {
            "bundle is not signed (this host pins no signer, so it is accepted)".to_string()
        }
    }
}

/// `--info`'s and `--check`'s JSON view of a decision (or of a refusal).
pub fn json(a: &Result<Admission>, b: &Bundle) -> serde_json::Value {
    let signer = b
        .manifest
        .signer
        .as_ref()
        .map(|s| s.key.fingerprint().to_string());
    match a {
        Ok(Admission::Trusted { key, source }) => serde_json::json!({
            "signed": true, "fingerprint": key.fingerprint().to_string(),
            "verified": true, "trusted": true, "trusted_by": source,
        }),
        Ok(Admission::Unchecked(Signature::Signed(key))) => serde_json::json!({
            "signed": true, "fingerprint": key.fingerprint().to_string(),
            "verified": true, "trusted": null,
        }),
        Ok(Admission::Unchecked(Signature::Unsigned)) => serde_json::json!({
            "signed": false, "trusted": null,
        }),
        Err(e) => serde_json::json!({
            "signed": signer.is_some() || b.footer.signature.is_some(),
            "fingerprint": signer, "trusted": false, "error": format!("{e:#}"),
        }),
    }
}
