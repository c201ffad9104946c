//! `registry`: serve the bundle's images read-only, in the foreground: plain HTTP on
//! loopback for this node's runtime, and optionally TLS for other nodes together with the
//! join channel.

use crate::cli::RegistryArgs;
use crate::registry::{ImageStore, MissLog, RunningServer, ServeOptions};
use anyhow::{Context, Result};
use ferry_bundle::Bundle;
use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(bundle: Option<&Path>, args: &RegistryArgs) -> Result<ExitCode> {
    let mut b = crate::locate::open(bundle)?;
    // A delta serves its unchanged blobs out of its base, staged beside it.
    b.attach_base_beside()?;
    let mut all = vec![b.clone()];
    for p in &args.serve_also {
        let mut also = Bundle::open(p).with_context(|| format!("--serve-also {}", p.display()))?;
        also.attach_base_beside()?;
        all.push(also);
    }
    let mut store = ImageStore::from_bundles(&all);
    if let Some(file) = &args.misses_file {
        let log = MissLog::persistent(file);
        log.spawn_flusher()
            .context("starting the writer of the record of missing images")?;
        store = store.with_miss_log(log);
    }
    if let (Some(ca), Some(token_file)) = (&args.ca, &args.token_file) {
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading {}", token_file.display()))?;
        let token = crate::join::token::Token::parse(&token)?;
        let js = crate::join::server::JoinServer {
            bundle: b.clone(),
            ca_pem: std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?,
            secret: token.secret,
            advertise: args
                .advertise
                .clone()
                .or_else(|| args.tls_listen.clone())
                .unwrap_or_default(),
            site: match &args.site_registry_config {
                Some(p) => Some(
                    serde_json::from_slice(
                        &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                    )
                    .with_context(|| format!("{}", p.display()))?,
                ),
                None => None,
            },
        };
        store = store.with_extension(js.into_extension());
    }
    let store = Arc::new(store);
    if background_verification() {
        crate::registry::verify_in_background(store.clone())
            .context("starting the background verification of blobs")?;
    }
    let plain =
        TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    if let (None, Some(cert), Some(key)) = (&args.tls_listen, &args.tls_cert, &args.tls_key) {
        // `--listen … --tls-cert … --tls-key …`: that one listener speaks TLS.
        let cfg = crate::join::tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("TLS material {} / {}", cert.display(), key.display()))?;
        tracing::info!(
            "serving {} images of {} over TLS on {}",
            b.manifest.images.len(),
            b.path.display(),
            args.listen
        );
        let _server = RunningServer::start_with(
            store,
            plain,
            serve_options(),
            crate::join::acceptor::TlsAcceptor(cfg),
        )?;
        loop {
            std::thread::park();
        }
    }
    let _tls = match (&args.tls_listen, &args.tls_cert, &args.tls_key) {
        (Some(addr), Some(cert), Some(key)) => {
            let cfg = crate::join::tls::server_config(&std::fs::read(cert)?, &std::fs::read(key)?)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("TLS material {} / {}", cert.display(), key.display()))?;
            let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
            tracing::info!("serving TLS (registry + join channel) on {addr}");
            Some(RunningServer::start_with(
                store.clone(),
                l,
                serve_options(),
                crate::join::acceptor::TlsAcceptor(cfg),
            )?)
        }
        _ => None,
    };
    tracing::info!(
        "serving {} images of {} on {}",
        b.manifest.images.len(),
        b.path.display(),
        args.listen
    );
    crate::registry::serve(store, plain, serve_options())?;
    Ok(ExitCode::SUCCESS)
}

/// Whether blobs are verified in the background at idle priority (the default; see
/// `registry::verify`); `FERRY_REGISTRY_BACKGROUND_VERIFY=0` turns it off, for
/// `scripts/bench-registry.sh` to measure first pulls that verify while they send.
fn background_verification() -> bool {
    std::env::var("FERRY_REGISTRY_BACKGROUND_VERIFY").as_deref() != Ok("0")
}

/// The server's options; `FERRY_REGISTRY_SENDFILE=1` (or `0`) overrides whether plain
/// HTTP sends verified blobs with `sendfile(2)`, for `scripts/bench-registry.sh` to
/// compare the two on the same binary (TLS never can).
fn serve_options() -> ServeOptions {
    let mut opts = ServeOptions::default();
    match std::env::var("FERRY_REGISTRY_SENDFILE").as_deref() {
        Ok("1") => opts.sendfile = true,
        Ok("0") => opts.sendfile = false,
        _ => {}
    }
    opts
}
