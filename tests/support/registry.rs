//! Real OCI registries on loopback for tests: Debian's Distribution (`docker-registry`).
//!
//! [`Registry::start`] runs `docker-registry serve` on `127.0.0.1:<free port>` with its
//! storage in a temp dir and returns once `/v2/` answers; [`Registry::start_with_basic_auth`]
//! adds htpasswd (bcrypt, via `htpasswd -Bbn`) auth. The process is killed on drop. Tests
//! may reach into [`Registry::blob_data_path`] to corrupt what the registry serves.
//!
//! [`Gateway`] is a tiny HTTP front for a registry, for what Distribution cannot do without
//! certificates: a Bearer token flow (`WWW-Authenticate: Bearer realm=…` plus a `/token`
//! endpoint checking Basic credentials) and injected `503`s to exercise client retries.
//!
//! [`BundleRegistry`] runs a bundle's own read-only registry (`delivery.run registry`).
//!
//! Everything here uses only loopback addresses.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running Distribution registry. Killed (and its storage deleted) on drop.
pub struct Registry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
    credentials: Option<(String, String)>,
    tls: bool,
}

/// How a test registry is set up beyond the defaults (anonymous, plain HTTP).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// htpasswd (bcrypt) Basic auth for every request.
    pub basic: Option<(String, String)>,
    /// An `auth:` section of the config (see [`crate::token::TokenServer::registry_config`]).
    pub auth_config: Option<String>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Registry {
    /// Starts an anonymous registry (anyone may push and pull).
    pub fn start() -> Result<Registry> {
        Self::start_with(RegistryOptions::default())
    }

    /// Starts a registry that requires `user`/`password` (HTTP Basic, htpasswd bcrypt) for
    /// every request, pushes and pulls alike.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Result<Registry> {
        Self::start_with(RegistryOptions {
            basic: Some((user.to_string(), password.to_string())),
            ..Default::default()
        })
    }

    /// Starts a registry with Distribution's own token auth, trusting `tokens`.
    pub fn start_with_token_auth(tokens: &crate::token::TokenServer) -> Result<Registry> {
        Self::start_with(RegistryOptions {
            auth_config: Some(tokens.registry_config()),
            ..Default::default()
        })
    }

    pub fn start_with(opts: RegistryOptions) -> Result<Registry> {
        let credentials = opts.basic.clone();
        require_tool("docker-registry", "apt-get install docker-registry")?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-registry-")
            .tempdir()?;
        let auth = match &credentials {
            Some((user, password)) => {
                require_tool("htpasswd", "apt-get install apache2-utils")?;
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .context("running htpasswd")?;
                if !out.status.success() {
                    bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                let path = dir.path().join("htpasswd");
                fs::write(&path, &out.stdout)?;
                format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    path.display()
                )
            }
            None => opts.auth_config.clone().unwrap_or_default(),
        };
        let tls = match &opts.tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        // A free port can be taken by someone else between probing and binding: retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {host}\n{tls}{auth}",
                    dir.path().join("storage").display()
                ),
            )?;
            let log = fs::File::create(dir.path().join("registry.log"))?;
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting docker-registry")?;
            match wait_ready(
                &host,
                &mut child,
                Duration::from_secs(15),
                opts.tls.is_some(),
            ) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        host,
                        dir,
                        credentials,
                        tls: opts.tls.is_some(),
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = format!(
                        "{e}; log: {}",
                        fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
                    );
                }
            }
        }
        bail!("docker-registry did not start: {last_log}")
    }

    /// `127.0.0.1:<port>`: what image references and `insecure_registries` use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:<port>` (`https://` when started with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// The user and password, for a registry started with basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Root of the registry's filesystem storage.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding a blob's bytes in Distribution's storage layout
    /// (`docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`). `digest` may be given as
    /// `sha256:<hex>` or bare hex.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundle's own registry, `delivery.run registry --listen 127.0.0.1:<free port>`, run in
/// the foreground as an operator runs it. Killed on drop.
pub struct BundleRegistry {
    child: Child,
    host: String,
    log: tempfile::NamedTempFile,
}

impl BundleRegistry {
    /// Starts `bundle` (a command for the bundle file: the file itself, or the file under
    /// [`crate::bins::qemu_aarch64`]) with `registry --listen <host>` and `extra` options, and
    /// returns once the port accepts connections (plain or TLS alike).
    pub fn start(mut bundle: Command, extra: &[&str]) -> Result<BundleRegistry> {
        let host = format!("127.0.0.1:{}", free_port()?);
        let log = tempfile::NamedTempFile::new()?;
        let child = bundle
            .args(["registry", "--listen", &host])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen()?)
            .spawn()
            .with_context(|| format!("starting {bundle:?}"))?;
        let mut r = BundleRegistry { child, host, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&r.host).is_err() {
            if let Some(status) = r.child.try_wait()? {
                bail!("bundle registry exited with {status}: {}", r.log());
            }
            if Instant::now() > deadline {
                bail!("bundle registry did not listen on {}: {}", r.host, r.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The registry process, for measuring it (`/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the registry logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for BundleRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a Docker `config.json` into `dir` (use `dir` as `DOCKER_CONFIG`) holding
/// `user`/`password` for `host` in the `auths.<host>.auth` base64 form `docker login`
/// writes. Returns the file's path.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
    let path = dir.join("config.json");
    fs::write(&path, serde_json::to_vec_pretty(&json)?)?;
    Ok(path)
}

/// Fails with an install hint if `tool` is not on `PATH`.
pub fn require_tool(tool: &str, install: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        bail!("{tool} is not installed; the end-to-end tests need it ({install})")
    }
}

/// A port that is free on every address, and that no other test of this process was
/// given. Ports come from a counter below the kernel's ephemeral range (32768 and up), so
/// a port handed out is not taken meanwhile by some client's outgoing connection, and
/// two tests running in parallel never get the same one.
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 200) as u16 * 60,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2000 {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = 20000 + (p - 20000) % 12000;
        if TcpListener::bind(("0.0.0.0", p)).is_ok() && TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return Ok(p);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The status code of `GET http://<host><path>`, with a short timeout; no body is read.
pub fn http_status(host: &str, path: &str) -> io::Result<u16> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })
}

fn wait_ready(host: &str, child: &mut Child, timeout: Duration, tls: bool) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("docker-registry exited with {status}");
        }
        // 401 means up, with auth on. A TLS registry is up when it accepts connections.
        let up = if tls {
            TcpStream::connect(host).is_ok()
        } else {
            matches!(http_status(host, "/v2/"), Ok(200 | 401))
        };
        if up {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{host}/v2/ did not answer within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a [`Gateway`] does in front of its registry.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Require a Bearer token for `/v2/…`, issued by the gateway's own `/token` endpoint to
    /// clients presenting these Basic credentials.
    pub bearer: Option<(String, String)>,
    /// Answer this many `/v2/…` requests with `503 Service Unavailable` before proxying.
    pub fail_first: usize,
    /// Cut this many blob downloads off halfway (full headers, half the body, then the
    /// connection closes), as a flaky network would.
    pub truncate_first_blobs: usize,
    /// Serve this many blob downloads, then answer every further one with `503` (a
    /// network that goes away in the middle of a pull).
    pub blobs_then_fail: Option<usize>,
}

/// The token the gateway issues; any other Bearer value is refused.
pub const GATEWAY_TOKEN: &str = "ferry-test-token";

/// A small HTTP/1.1 front for a [`Registry`] (one request per connection, GET/HEAD only,
/// which is all a pull needs). Stops on drop.
pub struct Gateway {
    server: LoopbackServer,
    state: Arc<GatewayState>,
}

/// An HTTP server on `127.0.0.1:<free port>` running `handler` on a thread per connection.
/// Stops on drop.
pub(crate) struct LoopbackServer {
    host: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    pub(crate) fn start(
        handler: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Result<LoopbackServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handler = Arc::new(handler);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || handler(conn));
            }
        });
        Ok(LoopbackServer {
            host,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct GatewayState {
    token_requests: AtomicUsize,
    failures_left: AtomicUsize,
    truncations_left: AtomicUsize,
    v2_requests: AtomicUsize,
    last_token_query: Mutex<String>,
    blobs_left: Mutex<Option<usize>>,
}

impl Gateway {
    pub fn start(upstream: &Registry, opts: GatewayOptions) -> Result<Gateway> {
        let state = Arc::new(GatewayState {
            failures_left: AtomicUsize::new(opts.fail_first),
            truncations_left: AtomicUsize::new(opts.truncate_first_blobs),
            blobs_left: Mutex::new(opts.blobs_then_fail),
            ..Default::default()
        });
        let host = Arc::new(Mutex::new(String::new()));
        let cfg = Arc::new(GatewayConfig {
            host: host.clone(),
            upstream: upstream.host().to_string(),
            upstream_auth: upstream.credentials().map(|(u, p)| basic(u, p)),
            bearer: opts.bearer.as_ref().map(|(u, p)| basic(u, p)),
        });
        let state2 = state.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = handle(conn, &cfg, &state2);
        })?;
        *host.lock().unwrap() = server.host().to_string();
        Ok(Gateway { server, state })
    }

    /// `127.0.0.1:<port>` of the gateway.
    pub fn host(&self) -> &str {
        self.server.host()
    }

    /// How many times `/token` was asked (successfully or not).
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// How many `/v2/…` requests arrived (including refused and failed ones).
    pub fn v2_requests(&self) -> usize {
        self.state.v2_requests.load(Ordering::SeqCst)
    }

    /// The query string of the last `/token` request (`service=…&scope=…`).
    pub fn last_token_query(&self) -> String {
        self.state.last_token_query.lock().unwrap().clone()
    }
}

struct GatewayConfig {
    /// The gateway's own `host:port` (known once it listens), for its token realm.
    host: Arc<Mutex<String>>,
    upstream: String,
    upstream_auth: Option<String>,
    bearer: Option<String>,
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn handle(mut conn: TcpStream, cfg: &GatewayConfig, state: &GatewayState) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (method, target, headers) = read_head(&mut conn)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path == "/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        *state.last_token_query.lock().unwrap() = query.to_string();
        if cfg.bearer.is_some() && header("authorization") == cfg.bearer.as_deref() {
            let body = format!(r#"{{"token":"{GATEWAY_TOKEN}","expires_in":300}}"#);
            return respond(
                &mut conn,
                "200 OK",
                &[("Content-Type", "application/json")],
                &body,
            );
        }
        return respond(
            &mut conn,
            "401 Unauthorized",
            &[],
            "{\"details\":\"bad credentials\"}",
        );
    }
    state.v2_requests.fetch_add(1, Ordering::SeqCst);
    let fail = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let is_blob_get = method == "GET" && path.contains("/blobs/");
    let out_of_blobs = is_blob_get
        && match &mut *state.blobs_left.lock().unwrap() {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
    if fail || out_of_blobs {
        return respond(&mut conn, "503 Service Unavailable", &[], "try again");
    }
    if cfg.bearer.is_some() && header("authorization") != Some(&format!("Bearer {GATEWAY_TOKEN}")) {
        let repo = path
            .strip_prefix("/v2/")
            .and_then(|p| {
                ["/manifests/", "/blobs/", "/tags/"]
                    .iter()
                    .find_map(|m| p.find(m).map(|i| &p[..i]))
            })
            .unwrap_or("");
        let mut challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"ferry-test\"",
            cfg.host.lock().unwrap()
        );
        if !repo.is_empty() {
            challenge.push_str(&format!(",scope=\"repository:{repo}:pull\""));
        }
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(
            &mut conn,
            "401 Unauthorized",
            &[("WWW-Authenticate", &challenge)],
            body,
        );
    }
    // Proxy: one request upstream with `Connection: close`, the response copied back as is.
    let mut up = TcpStream::connect(&cfg.upstream)?;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        cfg.upstream
    );
    for name in ["Accept", "Range"] {
        if let Some(v) = header(name) {
            req.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    if let Some(a) = &cfg.upstream_auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    up.write_all(req.as_bytes())?;
    let truncate = method == "GET"
        && path.contains("/blobs/")
        && state
            .truncations_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if truncate {
        let mut all = Vec::new();
        up.read_to_end(&mut all)?;
        let body_at = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(all.len(), |i| i + 4);
        let keep = body_at + (all.len() - body_at) / 2;
        conn.write_all(&all[..keep])?;
    } else {
        io::copy(&mut up, &mut conn)?;
    }
    conn.shutdown(Shutdown::Write)
}

pub(crate) type Head = (String, String, Vec<(String, String)>);

pub(crate) fn read_head(conn: &mut TcpStream) -> io::Result<Head> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 || buf.len() > 16 * 1024 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((method, target, headers))
}

pub(crate) fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    conn.write_all(out.as_bytes())?;
    conn.shutdown(Shutdown::Write)
}
