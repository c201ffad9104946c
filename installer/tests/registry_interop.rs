//! The installer's registry against real clients and real images.
//!
//! Images are built with umoci from busybox-static, each printing a different message,
//! and put in one OCI layout under their full names: `docker.io/library/app:1` and
//! `quay.io/library/app:1` (same repository path, different hosts and content) and
//! `ghcr.io/ferry/tool:2`. The registry serves that layout; skopeo, containerd (`ctr`
//! through `hosts.toml` mirrors, which send `?ns=`) and podman (through a
//! `registries.conf` mirror with a host path prefix) pull by the original names, and
//! containerd runs each image to prove every name got its own content. A load test runs
//! 100 concurrent clients against a registry in a child process to measure its RSS.
//!
//! A test whose client is missing says so and passes; run as root for containerd.

use ferry_installer::registry::{ImageStore, RunningServer, ServeOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

const CHILD_ENV: &str = "FERRY_REGISTRY_CHILD_LAYOUT";
const CHILD_PORT_FILE_ENV: &str = "FERRY_REGISTRY_CHILD_PORT_FILE";

struct Image {
    name: &'static str,
    message: &'static str,
    /// Digest of the top manifest.
    digest: String,
}

struct Layout {
    dir: PathBuf,
    images: Vec<Image>,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the layout once per test binary (umoci: init, new, unpack, add busybox and a
/// message, repack, set the entrypoint), then names each image with its full reference.
fn layout() -> Option<&'static Layout> {
    static LAYOUT: OnceLock<Option<Layout>> = OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            if !have("umoci") || !Path::new("/bin/busybox").exists() {
                eprintln!("SKIP: umoci or /bin/busybox (busybox-static) is missing");
                return None;
            }
            let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-interop");
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            let dir = root.join("layout");
            let d = dir.to_str().unwrap();
            run(Command::new("umoci").args(["init", "--layout", d]));
            let specs = [
                ("docker", "docker.io/library/app:1", "hello from docker.io/library/app"),
                ("quay", "quay.io/library/app:1", "hello from quay.io/library/app"),
                ("tool", "ghcr.io/ferry/tool:2", "hello from ghcr.io/ferry/tool"),
            ];
            for (tag, _, message) in specs {
                let image = format!("{d}:{tag}");
                let bundle = root.join(format!("bundle-{tag}"));
                run(Command::new("umoci").args(["new", "--image", &image]));
                run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
                let rootfs = bundle.join("rootfs");
                std::fs::create_dir_all(rootfs.join("bin")).unwrap();
                std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
                std::fs::write(rootfs.join("msg"), format!("{message}\n")).unwrap();
                run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
                run(Command::new("umoci").args([
                    "config",
                    "--image",
                    &image,
                    "--config.entrypoint",
                    "/bin/busybox",
                    "--config.cmd",
                    "cat",
                    "--config.cmd",
                    "/msg",
                ]));
            }
            // Name the images: containerd's annotation for two of them, a full
            // org.opencontainers.image.ref.name for the third (the fallback).
            let index_path = dir.join("index.json");
            let mut index: Value =
                serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
            let mut images = Vec::new();
            for m in index["manifests"].as_array_mut().unwrap() {
                let tag = m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let (_, name, message) = *specs.iter().find(|s| s.0 == tag).unwrap();
                m["annotations"] = if tag == "quay" {
                    json!({"org.opencontainers.image.ref.name": name})
                } else {
                    json!({"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap()})
                };
                images.push(Image {
                    name,
                    message,
                    digest: m["digest"].as_str().unwrap().to_string(),
                });
            }
            std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
            assert_eq!(images.len(), 3, "{index}");
            Some(Layout { dir, images })
        })
        .as_ref()
}

fn image<'a>(l: &'a Layout, name: &str) -> &'a Image {
    l.images.iter().find(|i| i.name == name).unwrap()
}

fn serve(l: &Layout) -> RunningServer {
    let store = ImageStore::from_oci_layout(&l.dir).expect("layout loads");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    RunningServer::start(Arc::new(store), listener, ServeOptions::default()).unwrap()
}

/// A minimal keep-alive HTTP/1.1 client, to see the exact bytes the server sends.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client { addr, conn: None }
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Reply> {
        // One retry: the server may have closed an idle keep-alive connection.
        match self.try_request(method, target, extra) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.try_request(method, target, extra)
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Reply> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().unwrap();
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.get_mut().write_all(head.as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = BTreeMap::new();
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            let prev = headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
            assert!(prev.is_none(), "header {k} sent twice");
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; if method == "HEAD" { 0 } else { len }];
        conn.read_exact(&mut body)?;
        if headers.get("connection").is_some_and(|c| c == "close") {
            self.conn = None;
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn get(&mut self, target: &str) -> Reply {
        self.request("GET", target, &[]).unwrap()
    }
}

// ---------------------------------------------------------------- protocol

#[test]
fn headers_match_the_distribution_spec() {
    let Some(l) = layout() else { return };
    let server = serve(l);
    let mut c = Client::new(server.local_addr());
    let docker = image(l, "docker.io/library/app:1");

    let r = c.get("/v2/");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    // Manifest by tag: stored media type, digest and length; HEAD identical without body.
    let get = c.get("/v2/library/app/manifests/1?ns=docker.io");
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("Content-Type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(
        get.header("Docker-Content-Digest"),
        Some(docker.digest.as_str())
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&get.body)), docker.digest);
    assert_eq!(
        get.header("Content-Length"),
        Some(get.body.len().to_string().as_str())
    );
    let head = c
        .request("HEAD", "/v2/library/app/manifests/1?ns=docker.io", &[])
        .unwrap();
    assert_eq!(head.headers, get.headers);
    let by_digest = c.get(&format!(
        "/v2/library/app/manifests/{}?ns=docker.io",
        docker.digest
    ));
    assert_eq!(by_digest.body, get.body);

    // Blob: whole, HEAD, ranges, unsatisfiable range.
    let manifest = get.json();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let blob_path = format!("/v2/library/app/blobs/{layer}?ns=docker.io");
    let whole = c.get(&blob_path);
    assert_eq!(whole.status, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&whole.body)), layer);
    assert_eq!(
        whole.header("Content-Length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(whole.header("Docker-Content-Digest"), Some(layer));
    assert_eq!(
        whole.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(whole.header("Accept-Ranges"), Some("bytes"));
    let head = c.request("HEAD", &blob_path, &[]).unwrap();
    assert_eq!(
        (head.status, head.header("Content-Length")),
        (200, Some(size.to_string().as_str()))
    );
    let part = c
        .request("GET", &blob_path, &[("Range", "bytes=100-199")])
        .unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("Content-Range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    assert_eq!(part.header("Content-Length"), Some("100"));
    assert_eq!(part.body, &whole.body[100..200]);
    let tail = c
        .request(
            "GET",
            &blob_path,
            &[("Range", &format!("bytes={}-", size - 10))],
        )
        .unwrap();
    assert_eq!(
        (tail.status, tail.body.as_slice()),
        (206, &whole.body[size as usize - 10..])
    );
    let bad = c
        .request("GET", &blob_path, &[("Range", &format!("bytes={size}-"))])
        .unwrap();
    assert_eq!(bad.status, 416);
    assert_eq!(
        bad.header("Content-Range"),
        Some(format!("bytes */{size}").as_str())
    );

    // The quay.io layer is not a docker.io blob.
    let quay = c.get("/v2/library/app/manifests/1?ns=quay.io").json();
    let quay_layer = quay["layers"][0]["digest"].as_str().unwrap();
    assert_ne!(quay_layer, layer);
    let r = c.get(&format!("/v2/library/app/blobs/{quay_layer}?ns=docker.io"));
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (404, Some("BLOB_UNKNOWN"))
    );

    // Tags, catalog, referrers, errors, write methods.
    let r = c.get("/v2/ferry/tool/tags/list?n=1");
    assert_eq!(r.json(), json!({"name": "ferry/tool", "tags": ["2"]}));
    assert_eq!(r.header("Link"), None);
    let r = c.get("/v2/_catalog?n=2");
    assert_eq!(
        r.json()["repositories"],
        json!(["docker.io/library/app", "ghcr.io/ferry/tool"])
    );
    assert_eq!(
        r.header("Link"),
        Some("</v2/_catalog?n=2&last=ghcr.io/ferry/tool>; rel=\"next\"")
    );
    let r = c.get("/v2/_catalog?n=2&last=ghcr.io/ferry/tool");
    assert_eq!(r.json()["repositories"], json!(["quay.io/library/app"]));
    let r = c.get(&format!(
        "/v2/library/app/referrers/{}?ns=docker.io",
        docker.digest
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(
        r.json(),
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})
    );
    let r = c.get("/v2/library/app/manifests/1");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let msg = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("docker.io/library/app, quay.io/library/app"),
        "{msg}"
    );
    for method in ["PUT", "POST", "PATCH", "DELETE"] {
        let r = c
            .request(
                method,
                "/v2/library/app/blobs/uploads/",
                &[("Content-Length", "0")],
            )
            .unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.json()["errors"][0]["code"], "UNSUPPORTED");
    }
    server.stop().unwrap();
}

// ---------------------------------------------------------------- skopeo

#[test]
fn skopeo_copies_and_inspects_every_name() {
    let Some(l) = layout() else { return };
    if !have("skopeo") {
        eprintln!("SKIP: skopeo is not installed");
        return;
    }
    let server = serve(l);
    let addr = server.local_addr();
    let out = tempfile::tempdir().unwrap();
    // skopeo cannot send ?ns=: the host goes in the path, or the name must be unambiguous.
    for (source, name) in [
        (
            format!("{addr}/docker.io/library/app:1"),
            "docker.io/library/app:1",
        ),
        (
            format!("{addr}/quay.io/library/app:1"),
            "quay.io/library/app:1",
        ),
        (format!("{addr}/ferry/tool:2"), "ghcr.io/ferry/tool:2"),
    ] {
        let img = image(l, name);
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{source}"),
        ]));
        assert_eq!(
            format!("sha256:{}", sha256_hex(raw.as_bytes())),
            img.digest,
            "{source}"
        );
        let info: Value = serde_json::from_str(&run(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{source}"),
        ])))
        .unwrap();
        assert_eq!(info["Digest"], img.digest.as_str(), "{source}");
        assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
        let dest = out.path().join(name.replace(['/', ':'], "_"));
        run(Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{source}"),
            &format!("oci:{}:x", dest.display()),
        ]));
        // Same manifest bytes, and every blob arrived intact (skopeo checks digests).
        let index: Value =
            serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            img.digest.as_str(),
            "{source}"
        );
    }
    // The ambiguous short name is refused with a message naming both.
    let ambiguous = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{addr}/library/app:1"),
        ])
        .output()
        .unwrap();
    assert!(!ambiguous.status.success());
    let err = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        err.contains("ambiguous") || err.contains("name unknown"),
        "{err}"
    );
    server.stop().unwrap();
}

// ---------------------------------------------------------------- containerd

struct Containerd {
    child: Child,
    address: PathBuf,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Result<Containerd, String> {
        if !have("containerd") || !have("ctr") || !have("runc") {
            return Err("containerd, ctr or runc is not installed".into());
        }
        if !rustix::process::geteuid().is_root() {
            return Err("containerd needs root".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-ctd")
            .tempdir_in("/tmp")
            .unwrap();
        let address = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = dir.path().join("root").display(),
                state = dir.path().join("state").display(),
                sock = address.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("containerd: {e}"))?;
        let mut c = Containerd {
            child,
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if c.ctr(&["version"]).is_ok() {
                return Ok(c);
            }
            if Instant::now() > deadline || c.child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(c._dir.path().join("containerd.log"))
                    .unwrap_or_default();
                return Err(format!("containerd did not start:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ctr {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hosts.toml` for each upstream host, pointing at ferry with pull+resolve, as the
/// installer's runtime phase writes them.
fn hosts_dir(dir: &Path, addr: SocketAddr, hosts: &[(&str, &str)]) {
    for (host, upstream) in hosts {
        let d = dir.join(host);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            format!(
                "server = \"{upstream}\"\n\n[host.\"http://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
    }
}

#[test]
fn containerd_pulls_by_original_name_and_runs_each_image() {
    let Some(l) = layout() else { return };
    let ctd = match Containerd::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIP: containerd cannot run here: {why}");
            return;
        }
    };
    let server = serve(l);
    let hosts = tempfile::tempdir().unwrap();
    hosts_dir(
        hosts.path(),
        server.local_addr(),
        &[
            ("docker.io", "https://registry-1.docker.io"),
            ("quay.io", "https://quay.io"),
            ("ghcr.io", "https://ghcr.io"),
        ],
    );
    let hosts_arg = hosts.path().to_str().unwrap();
    for (i, name) in [
        "docker.io/library/app:1",
        "quay.io/library/app:1",
        "ghcr.io/ferry/tool:2",
    ]
    .into_iter()
    .enumerate()
    {
        let img = image(l, name);
        ctd.ctr(&["images", "pull", "--hosts-dir", hosts_arg, name])
            .unwrap_or_else(|e| panic!("{e}"));
        let listed = ctd.ctr(&["images", "ls"]).unwrap();
        let line = listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(line.contains(&img.digest), "{name} pulled as {line}");
        let id = format!("ferry-test-{}-{i}", std::process::id());
        let out = ctd
            .ctr(&["run", "--rm", name, &id])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.trim(), img.message, "{name}");
    }
    // Without a mirror for the host, containerd goes to the (unreachable) upstream:
    // nothing is silently served under another name.
    let err = ctd
        .ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts_arg,
            "registry.k8s.io/library/app:1",
        ])
        .unwrap_err();
    assert!(!err.is_empty());
    server.stop().unwrap();
}

// ---------------------------------------------------------------- podman

#[test]
fn podman_pulls_through_a_registries_conf_mirror() {
    let Some(l) = layout() else { return };
    if !have("podman") || !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: podman is not installed or not root");
        return;
    }
    let server = serve(l);
    let addr = server.local_addr();
    let dir = tempfile::Builder::new()
        .prefix("ferry-podman")
        .tempdir_in("/tmp")
        .unwrap();
    // A mirror location may carry a path: the host goes in the path, as for skopeo.
    let conf = dir.path().join("registries.conf");
    let mut text = String::from("unqualified-search-registries = []\n");
    for host in ["docker.io", "quay.io"] {
        text.push_str(&format!(
            "[[registry]]\nprefix = \"{host}\"\nlocation = \"{host}\"\n\
             [[registry.mirror]]\nlocation = \"{addr}/{host}\"\ninsecure = true\n"
        ));
    }
    std::fs::write(&conf, text).unwrap();
    let storage = dir.path().join("storage.conf");
    std::fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            dir.path().join("run").display(),
            dir.path().join("graph").display()
        ),
    )
    .unwrap();
    for name in ["docker.io/library/app:1", "quay.io/library/app:1"] {
        let img = image(l, name);
        let out = Command::new("podman")
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .env("CONTAINERS_STORAGE_CONF", &storage)
            .args(["pull", "--quiet", name])
            .output()
            .unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            panic!("podman pull {name}: {err}");
        }
        let digest = Command::new("podman")
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .env("CONTAINERS_STORAGE_CONF", &storage)
            .args(["image", "inspect", "--format", "{{.Digest}}", name])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&digest.stdout).trim(),
            img.digest,
            "{name}"
        );
    }
    let _ = Command::new("podman")
        .env("CONTAINERS_STORAGE_CONF", &storage)
        .args(["system", "reset", "--force"])
        .output();
    server.stop().unwrap();
}

// ---------------------------------------------------------------- load

/// Not a test on its own: the registry process of `hundred_concurrent_clients…`, so its
/// peak RSS is the server's alone. Writes its port to a file (libtest may capture
/// stdout) and serves until stdin closes.
#[test]
fn child_registry_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = ImageStore::from_oci_layout(Path::new(&dir)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = RunningServer::start(Arc::new(store), listener, ServeOptions::default()).unwrap();
    let port_file = PathBuf::from(std::env::var(CHILD_PORT_FILE_ENV).unwrap());
    let tmp = port_file.with_extension("tmp");
    std::fs::write(&tmp, server.local_addr().port().to_string()).unwrap();
    std::fs::rename(&tmp, &port_file).unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    server.stop().unwrap();
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hundred_concurrent_clients_pull_every_blob() {
    let Some(l) = layout() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port_file = tmp.path().join("port");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_registry_process", "--test-threads=1"])
        .env(CHILD_ENV, &l.dir)
        .env(CHILD_PORT_FILE_ENV, &port_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the registry child did not start"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the registry child exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = child.id();
    let rss_idle = status_kib(pid, "VmRSS:");

    // Every (repository path, blob digest) pair of every image, via the full-path form.
    let mut c = Client::new(addr);
    let mut work = Vec::new();
    for img in &l.images {
        let (name, _tag) = img.name.rsplit_once(':').unwrap();
        let m = c
            .get(&format!("/v2/{name}/manifests/{}", img.digest))
            .json();
        work.push((
            format!("/v2/{name}/manifests/{}", img.digest),
            img.digest.clone(),
        ));
        for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
            let digest = d["digest"].as_str().unwrap().to_string();
            work.push((format!("/v2/{name}/blobs/{digest}"), digest));
        }
    }
    let work = Arc::new(work);
    let started = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let work = work.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut c = Client::new(addr);
                let mut bytes = 0u64;
                for round in 0..3 {
                    for (target, digest) in work.iter() {
                        let r = c
                            .request("GET", target, &[])
                            .map_err(|e| format!("client {i}: {target}: {e}"))?;
                        if r.status != 200 || format!("sha256:{}", sha256_hex(&r.body)) != *digest {
                            return Err(format!(
                                "client {i} round {round}: {target}: {} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                            ));
                        }
                        bytes += r.body.len() as u64;
                    }
                }
                Ok(bytes)
            })
        })
        .collect();
    let mut errors = Vec::new();
    let mut total = 0;
    for t in clients {
        match t.join().unwrap() {
            Ok(b) => total += b,
            Err(e) => errors.push(e),
        }
    }
    let elapsed = started.elapsed();
    let peak = status_kib(pid, "VmHWM:");
    let threads = status_kib_threads(pid);
    drop(child.stdin.take());
    let _ = child.wait();
    eprintln!(
        "100 clients × 3 rounds × {} objects: {} MiB in {elapsed:?}, {} errors; \
         registry RSS idle {rss_idle} KiB, peak {peak} KiB, {threads} threads at the end",
        work.len(),
        total >> 20,
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {}",
        errors.len(),
        errors[0]
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

fn status_kib_threads(pid: u32) -> u64 {
    status_kib(pid, "Threads:")
}
