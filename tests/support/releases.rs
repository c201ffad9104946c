//! A local HTTP server laid out exactly like GitHub releases, for release downloads.
//!
//! It serves files at `/<owner>/<repo>/releases/download/<tag>/<asset>` with the tag
//! URL-encoded as in GitHub's own asset links (`v1.32.3%2Bk3s1`), so `ferry build
//! --release-mirror https://github.com=<url>` fetches from it what it would fetch from
//! GitHub. Request paths are matched exactly as sent, not decoded: the files of tag
//! `v1.32.3+k3s1` sit in a directory named `v1.32.3%2Bk3s1`, so a client that sent a raw
//! `+` (which some servers read as a space) gets a 404 instead of a lucky match. Every
//! request is recorded. It answers `Range: bytes=<n>-` with 206, and
//! [`ReleaseServer::cut_next`] makes the next download of a file stop early (full headers,
//! part of the body, closed connection), as a flaky proxy would. Files are read from disk
//! on every request: a test may change one between builds. Stops on drop.
//!
//! Why not `python3 -m http.server` on such a tree: it percent-decodes the request path
//! (`%2B` → `+`), so it would need the decoded directory name and could not catch a client
//! that forgets to encode; and it ignores `Range`, so resuming could not be tested.

use crate::registry::{read_head, respond, LoopbackServer};
use anyhow::Result;
use ferry_builder::release::encode;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct ReleaseServer {
    server: LoopbackServer,
    state: Arc<State>,
}

struct State {
    root: tempfile::TempDir,
    /// `(raw request target, Range header)` of every request, in order.
    requests: Mutex<Vec<(String, Option<String>)>>,
    /// Decoded paths whose next GET is cut off after this many body bytes.
    cuts: Mutex<Vec<(String, u64)>>,
}

impl ReleaseServer {
    pub fn start() -> Result<ReleaseServer> {
        let state = Arc::new(State {
            root: tempfile::Builder::new()
                .prefix("ferry-releases-")
                .tempdir()?,
            requests: Mutex::new(Vec::new()),
            cuts: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = serve(conn, &s);
        })?;
        Ok(ReleaseServer { server, state })
    }

    /// `http://127.0.0.1:<port>`: the replacement for `https://github.com`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.host())
    }

    /// The file behind `<repo>/releases/download/<tag>/<asset>` (`tag` as released, e.g.
    /// `v1.32.3+k3s1`; the directory is its encoded form).
    pub fn path(&self, repo: &str, tag: &str, asset: &str) -> PathBuf {
        self.state.root.path().join(url_path(repo, tag, asset))
    }

    /// Publishes `bytes` as `asset` of release `tag` of `repo` (`owner/name`).
    pub fn put(&self, repo: &str, tag: &str, asset: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(repo, tag, asset);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Publishes `files` (`(asset, bytes)`) in release `tag` of `repo` together with the
    /// checksum file `sums` listing them all in `sha256sum` format, the way every project
    /// ferry downloads from does.
    pub fn publish(&self, repo: &str, tag: &str, sums: &str, files: &[(&str, &[u8])]) {
        for (asset, bytes) in files {
            self.put(repo, tag, asset, bytes);
        }
        self.put(repo, tag, sums, sha256sum(files).as_bytes());
    }

    /// Every request so far: raw target and `Range` header.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Cuts the next GET of `repo`'s `tag`/`asset` off after `after` body bytes.
    pub fn cut_next(&self, repo: &str, tag: &str, asset: &str, after: u64) {
        let path = format!("/{}", url_path(repo, tag, asset));
        self.state.cuts.lock().unwrap().push((path, after));
    }
}

/// `<repo>/releases/download/<encoded tag>/<asset>`.
fn url_path(repo: &str, tag: &str, asset: &str) -> String {
    format!("{repo}/releases/download/{}/{asset}", encode(tag))
}

fn serve(mut conn: TcpStream, state: &State) -> io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let (method, target, headers) = read_head(&mut conn)?;
    let range = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.clone());
    state
        .requests
        .lock()
        .unwrap()
        .push((target.clone(), range.clone()));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" || path.split('/').any(|c| c == ".." || c.contains("%2F")) {
        return respond(&mut conn, "400 Bad Request", &[], "bad request");
    }
    let file = state.root.path().join(path.trim_start_matches('/'));
    let Ok(mut f) = std::fs::File::open(&file).and_then(|f| {
        if f.metadata()?.is_file() {
            Ok(f)
        } else {
            Err(io::ErrorKind::NotFound.into())
        }
    }) else {
        return respond(&mut conn, "404 Not Found", &[], "Not Found");
    };
    let len = f.metadata()?.len();
    let from = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok());
    let head = match from {
        Some(n) if n >= len => {
            let cr = format!("bytes */{len}");
            return respond(
                &mut conn,
                "416 Range Not Satisfiable",
                &[("Content-Range", &cr)],
                "",
            );
        }
        Some(n) => {
            f.seek(SeekFrom::Start(n))?;
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {n}-{}/{len}\r\n",
                len - n,
                len - 1
            )
        }
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
    };
    conn.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())?;
    let cut = {
        let mut cuts = state.cuts.lock().unwrap();
        let i = cuts.iter().position(|(p, _)| p == path);
        i.map(|i| cuts.remove(i).1)
    };
    match cut {
        Some(after) => {
            io::copy(&mut Read::by_ref(&mut f).take(after), &mut conn)?;
        }
        None => {
            io::copy(&mut f, &mut conn)?;
        }
    }
    conn.shutdown(Shutdown::Both)
}

/// `sha256sum` output for `files` (`(name, bytes)`).
fn sha256sum(files: &[(&str, &[u8])]) -> String {
    use sha2::{Digest, Sha256};
    files
        .iter()
        .map(|(n, b)| format!("{}  {n}\n", hex::encode(Sha256::digest(b))))
        .collect()
}

/// sha256 of a file, bare hex.
pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}
