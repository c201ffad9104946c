//! A plan for people: one line per step, file contents indented under their file.
//! (`--output json` prints the [`Plan`] value itself.)

use super::plan::{describe_bytes, Content, Existing, Plan, ServiceManager, Step};
use std::fmt::Write;

pub fn plan_text(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} of bundle {} ({})",
        match plan.kind {
            super::plan::PlanKind::Install => "install",
            super::plan::PlanKind::Join => "join",
        },
        plan.bundle,
        plan.bundle_sha256
    );
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for phase in &plan.phases {
        for step in &phase.steps {
            let p = phase.name;
            match step {
                Step::Stage {
                    dest,
                    size,
                    payload_sha256,
                } => {
                    let _ = writeln!(
                        s,
                        "==> [{p}] verify every byte of this bundle ({size} bytes, payload {payload_sha256}) while copying it to {dest}"
                    );
                }
                Step::WriteFile(f) => {
                    let note = match f.existing {
                        Existing::Nothing => "",
                        Existing::Ours => " (rewrites ferry's earlier file)",
                        Existing::HostFile => {
                            " (REPLACES an existing host file: the original is kept and `reset` restores it)"
                        }
                    };
                    let _ = writeln!(s, "==> [{p}] write {} (mode {:o}){note}", f.path, f.mode);
                    let body = match &f.content {
                        Content::Bytes { bytes } => describe_bytes(bytes),
                        Content::Entry(e) => format!(
                            "(bundle entry {}, {} bytes stored, {}{})",
                            e.entry,
                            e.size,
                            e.sha256,
                            if e.zstd { ", zstd-decompressed" } else { "" }
                        ),
                        Content::Secret { secret } => {
                            format!("(secret: {})", secret.describe())
                        }
                        Content::InstallerStub => {
                            "(this installer without its payload)".to_string()
                        }
                        Content::Private { shown, .. } => shown.clone(),
                    };
                    for l in body.lines() {
                        let _ = writeln!(s, "    | {l}");
                    }
                }
                Step::Link { path, target } => {
                    let _ = writeln!(s, "==> [{p}] link {path} -> {target}");
                }
                Step::Remove { path } => {
                    let _ = writeln!(
                        s,
                        "==> [{p}] remove {path} (ferry's; a host file it replaced goes back)"
                    );
                }
                Step::Service(svc) => match &svc.manager {
                    ServiceManager::Supervisor { argv } => {
                        let _ =
                            writeln!(s, "==> [{p}] service {}: run {}", svc.name, argv.join(" "));
                    }
                    ServiceManager::Systemd { unit } => {
                        let _ = writeln!(
                            s,
                            "==> [{p}] service {}: systemctl enable --now {unit}",
                            svc.name
                        );
                    }
                },
                Step::Run(c) => {
                    let env: String = c.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
                    let _ = writeln!(s, "==> [{p}] run {env}{}", c.argv.join(" "));
                }
                Step::Wait(check) => {
                    let _ = writeln!(s, "==> [{p}] wait for {}", check.what());
                }
                Step::Dpkg(d) => {
                    let mut what = Vec::new();
                    if !d.install.is_empty() {
                        what.push(format!("install {}", d.install.join(" ")));
                    }
                    if !d.upgrade.is_empty() {
                        what.push(format!(
                            "upgrade the host's {} (reset leaves them)",
                            d.upgrade.join(" ")
                        ));
                    }
                    let env: String = d
                        .command
                        .env
                        .iter()
                        .map(|(k, v)| format!("{k}={v} "))
                        .collect();
                    let _ = writeln!(
                        s,
                        "==> [{p}] {}: run {env}{}",
                        what.join("; "),
                        d.command.argv.join(" ")
                    );
                }
                Step::Push(push) => {
                    let _ = writeln!(
                        s,
                        "==> [{p}] push {} to {} ({} blobs, {} bytes, {} manifests; what the site has is skipped)",
                        push.image,
                        push.target,
                        push.blobs.len(),
                        push.bytes(),
                        push.manifests.len()
                    );
                }
            }
        }
    }
    s
}
