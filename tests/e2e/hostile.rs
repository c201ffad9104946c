//! The registry and the join listener facing a hostile network, as real processes on
//! loopback (`delivery.run registry`): hundreds of idle connections, request heads that
//! trickle in (slowloris) or overflow, TLS handshakes that stall, 1000 concurrent
//! requests, and clients that hang up in the middle of a blob — while everyone else keeps
//! being served quickly, with bounded threads and memory. And a join that refuses a
//! master whose CA changes mid-way. Each test prints its figures (`hostile:` lines;
//! docs/reliability.md records them).

use ferry_installer::join::{client, node, pki, tls, token::Token};
use ferry_tests::bins::{build_kubefile, installer, run_fail};
use ferry_tests::images::ImageBuilder;
use ferry_tests::registry::{free_port, BundleRegistry};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A runtime-less bundle with one image whose layer is 8 MiB of random bytes.
struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    bundle: PathBuf,
    manifest: String,
    layer: String,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new("app")
        .random_layer_mib(8)
        .build(&t.path().join("layout"))
        .unwrap();
    let layer = img.config_and_layers().unwrap().pop().unwrap();
    let bundle = build_kubefile(
        t.path(),
        "FROM scratch\nIMAGE oci:layout:app AS quay.io/acme/app:1\n",
        "r.run",
        &["--no-payload"],
    );
    Fixture {
        dir: t.path().to_path_buf(),
        _t: t,
        bundle,
        manifest: "/v2/acme/app/manifests/1?ns=quay.io".into(),
        layer: format!("/v2/acme/app/blobs/{layer}?ns=quay.io"),
    }
}

/// `VmRSS` (KiB) and `Threads` of a process.
fn rss_and_threads(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// Samples a process's RSS and threads until dropped; keeps the maxima.
struct Monitor {
    stop: Arc<AtomicBool>,
    max_rss: Arc<AtomicU64>,
    max_threads: Arc<AtomicU64>,
}

impl Monitor {
    fn start(pid: u32) -> Monitor {
        let m = Monitor {
            stop: Arc::new(AtomicBool::new(false)),
            max_rss: Arc::new(AtomicU64::new(0)),
            max_threads: Arc::new(AtomicU64::new(0)),
        };
        let (stop, rss, threads) = (m.stop.clone(), m.max_rss.clone(), m.max_threads.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (r, t) = rss_and_threads(pid);
                rss.fetch_max(r, Ordering::Relaxed);
                threads.fetch_max(t, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        m
    }
    fn maxima(&self) -> (u64, u64) {
        (
            self.max_rss.load(Ordering::Relaxed),
            self.max_threads.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One request on a new connection; the status, the body bytes read, and how long it
/// took. `hang_up_after`: stop reading after that many bytes and close.
fn request(
    host: &str,
    method: &str,
    path: &str,
    hang_up_after: Option<usize>,
) -> (u16, usize, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if hang_up_after.is_some_and(|h| out.len() >= h) {
            break;
        }
    }
    let status = std::str::from_utf8(out.get(9..12).unwrap_or(b"000"))
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    (status, out.len(), t.elapsed())
}

/// p50, p99 and the maximum of the latencies.
fn summary(latencies: &Mutex<Vec<Duration>>) -> (Duration, Duration, Duration) {
    let mut l = latencies.lock().unwrap().clone();
    l.sort();
    let at = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    (at(0.5), at(0.99), l[l.len() - 1])
}

#[test]
fn the_registry_serves_others_while_hundreds_of_clients_idle_trickle_or_overflow() {
    let f = fixture();
    let reg = BundleRegistry::start(Command::new(&f.bundle), &[]).unwrap();
    let host = reg.host().to_string();
    assert_eq!(request(&host, "GET", &f.manifest, None).0, 200);
    let (rss0, threads0) = rss_and_threads(reg.pid());
    let mon = Monitor::start(reg.pid());

    // 400 connections that never send a byte, 200 that trickle a header forever.
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&host).unwrap())
        .collect();
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&host).unwrap();
            s.write_all(b"GET /v2/ HTTP/1.1\r\nX-Slow: a").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let trickling = Arc::new(AtomicBool::new(true));
    let trickler = {
        let run = trickling.clone();
        std::thread::spawn(move || {
            let mut slow = slow;
            while run.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write(b"a");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    // Oversized heads are refused with 431.
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 << 10)
    );
    for _ in 0..20 {
        let mut s = TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(big.as_bytes());
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 431");
    }

    // 1000 requests from 8 clients at once: manifests, HEADs of the layer, and every
    // tenth a layer download that hangs up after 64 KiB.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (host, f_manifest, f_layer, lat) = (
                host.clone(),
                f.manifest.clone(),
                f.layer.clone(),
                latencies.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..125 {
                    let (status, _, took) = match (c * 125 + i) % 10 {
                        0 => request(&host, "GET", &f_layer, Some(64 << 10)),
                        1 | 2 => request(&host, "HEAD", &f_layer, None),
                        _ => request(&host, "GET", &f_manifest, None),
                    };
                    assert_eq!(status, 200);
                    lat.lock().unwrap().push(took);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let wall = started.elapsed();
    // A whole layer still arrives intact after all that.
    let (status, len, full) = request(&host, "GET", &f.layer, None);
    assert_eq!(status, 200);
    assert!(len > 8 << 20, "{len}");
    let (rss, threads) = mon.maxima();
    trickling.store(false, Ordering::Relaxed);
    trickler.join().unwrap();

    let (p50, p99, max) = summary(&latencies);
    eprintln!(
        "hostile: plain registry, {} idle + 200 slowloris connections held, 20 oversized heads refused; \
         1000 requests in {wall:?}: p50 {p50:?}, p99 {p99:?}, max {max:?}; full 8 MiB layer {full:?}; \
         threads {threads0} -> max {threads}; RSS {rss0} KiB -> max {rss} KiB",
        idle.len()
    );
    assert!(max < Duration::from_secs(3), "a request waited {max:?}");
    assert!(threads <= 70, "{threads} threads");
    assert!(rss < rss0 + 128 * 1024, "RSS grew from {rss0} to {rss} KiB");
    // Idle connections are let go, not kept forever (head timeout: 10 s).
    let mut one = idle.into_iter().next().unwrap();
    one.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    assert_eq!(one.read(&mut [0u8; 1]).unwrap_or(0), 0);
    assert_eq!(request(&host, "GET", "/v2/", None).0, 200, "{}", reg.log());
}

/// TLS material for 127.0.0.1 and a token pinning its CA, written under `dir`; returns
/// the `registry` options that serve the join channel with it on `port`.
fn join_listener(dir: &Path, port: u16, secret: &str) -> (Vec<String>, Token, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let p = pki::generate(&["127.0.0.1".to_string()]).unwrap();
    let token = Token::parse(&format!(
        "K10{}::{secret}",
        pki::ca_hash(p.ca_pem.as_bytes())
    ))
    .unwrap();
    for (name, data) in [
        ("ca.pem", &p.ca_pem),
        ("server.pem", &p.server_pem),
        ("server.key", &p.server_key_pem),
    ] {
        std::fs::write(dir.join(name), data).unwrap();
    }
    std::fs::write(dir.join("token"), token.to_string()).unwrap();
    let s = |n: &str| dir.join(n).display().to_string();
    let addr = format!("127.0.0.1:{port}");
    let args = vec![
        "--tls-listen".into(),
        addr.clone(),
        "--tls-cert".into(),
        s("server.pem"),
        "--tls-key".into(),
        s("server.key"),
        "--ca".into(),
        s("ca.pem"),
        "--token-file".into(),
        s("token"),
        "--advertise".into(),
        addr,
    ];
    (args, token, p.ca_pem.into_bytes())
}

fn start_join_listener(bundle: &Path, args: &[String], port: u16) -> BundleRegistry {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reg = BundleRegistry::start(Command::new(bundle), &args).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", reg.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

#[test]
fn the_join_listener_serves_others_while_handshakes_stall() {
    let f = fixture();
    let port = free_port().unwrap();
    let (args, token, ca) = join_listener(&f.dir.join("pki"), port, &"5e".repeat(32));
    let reg = start_join_listener(&f.bundle, &args, port);
    let addr = format!("127.0.0.1:{port}");
    let cfg = tls::pinned_client(&ca).unwrap();
    let (rss0, threads0) = rss_and_threads(reg.pid());
    let mon = Monitor::start(reg.pid());

    // 300 connections that never start a handshake, 100 that stop half-way through a
    // ClientHello, 50 that finish it and never send a request.
    let hello = {
        let mut c =
            rustls::ClientConnection::new(cfg.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    };
    let mut held: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for _ in 0..100 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        held.push(s);
    }
    let mut handshaken = Vec::new();
    for _ in 0..50 {
        let s = TcpStream::connect(&addr).unwrap();
        let c =
            rustls::ClientConnection::new(cfg.clone(), "127.0.0.1".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(c, s);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        handshaken.push(tls);
    }

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (addr, cfg, lat, secret) = (
                addr.clone(),
                cfg.clone(),
                latencies.clone(),
                token.secret.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..25 {
                    let t = Instant::now();
                    let (path, auth) = match (c + i) % 3 {
                        0 => ("/ferry/v1/cacerts", None),
                        1 => ("/ferry/v1/join", Some(secret.as_str())),
                        _ => ("/v2/", None),
                    };
                    let r = client::get(cfg.clone(), &addr, path, auth).unwrap();
                    assert_eq!(r.status, 200, "{path}");
                    r.bytes(1 << 20).unwrap();
                    lat.lock().unwrap().push(t.elapsed());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (rss, threads) = mon.maxima();
    let (p50, p99, max) = summary(&latencies);
    eprintln!(
        "hostile: TLS join listener, {} stalled connections ({} mid-handshake) and {} idle after the handshake held; \
         200 TLS requests: p50 {p50:?}, p99 {p99:?}, max {max:?}; threads {threads0} -> max {threads}; \
         RSS {rss0} KiB -> max {rss} KiB",
        held.len(),
        100,
        handshaken.len()
    );
    assert!(max < Duration::from_secs(3), "a request waited {max:?}");
    assert!(threads <= 75, "{threads} threads");
    assert!(rss < rss0 + 128 * 1024, "RSS grew from {rss0} to {rss} KiB");
}

/// A TCP proxy that sends its first `honest` connections to `master` and every later one
/// to `impostor`: a man in the middle that takes over once the CA was fetched.
fn switching_proxy(master: u16, impostor: u16, honest: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(c) = c else { return };
            let to = if i < honest { master } else { impostor };
            let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut a, mut b) in [(c.try_clone().unwrap(), up.try_clone().unwrap()), (up, c)] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    port
}

#[test]
fn a_join_refuses_a_master_whose_ca_changes_midway() {
    let f = fixture();
    let secret = "c0".repeat(32);
    let (mp, ip) = (free_port().unwrap(), free_port().unwrap());
    let (margs, token, _) = join_listener(&f.dir.join("master"), mp, &secret);
    let (iargs, _, _) = join_listener(&f.dir.join("impostor"), ip, &secret);
    let _master = start_join_listener(&f.bundle, &margs, mp);
    let _impostor = start_join_listener(&f.bundle, &iargs, ip);

    // The real join command: the CA comes from the master, the join info from the
    // impostor. Refused, with nothing written.
    let proxy = switching_proxy(mp, ip, 1);
    let root = f.dir.join("node");
    let msg = run_fail(
        Command::new(installer())
            .arg("--root")
            .arg(&root)
            .args(["--join", &format!("127.0.0.1:{proxy}"), "--token"])
            .arg(token.to_string())
            .args(["--yes", "-q"]),
    );
    assert!(
        msg.contains("did not sign") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert!(!root.exists() || std::fs::read_dir(&root).unwrap().next().is_none());

    // Later in a join: the master is proven, then an entry download meets the impostor.
    let proxy = format!("127.0.0.1:{}", switching_proxy(mp, ip, 2));
    let m = node::contact(&proxy, &token).unwrap();
    let src = node::MasterSource {
        addr: proxy.clone(),
        secret: token.secret.clone(),
        tls: m.tls,
    };
    let e = ferry_installer::engine::EntryRef {
        entry: "files/payloads/containerd/bin/ctr".into(),
        size: 1,
        sha256: ferry_bundle::Sha256Digest::of(b"x"),
        zstd: false,
        unpacked: 1,
    };
    let err = match ferry_installer::engine::EntrySource::open(&src, &e) {
        Ok(_) => panic!("the impostor's bytes were accepted"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("pinned CA did not sign"), "{err}");
}
