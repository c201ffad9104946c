//! Requests for what the bundle lacks: which image names, tags and digests the site asked
//! for and did not get, how often, when, and from which clients.
//!
//! Why: at an air-gapped site a missing image is an `ImagePullBackOff` with no internet to
//! fix it, and the runtime's error names neither the registry nor the bundle. The registry
//! is the one place every pull passes through, so it keeps the list, and `status` shows it:
//! the operator sees "quay.io/x/y:1 asked 12 times by 10.0.0.7" and knows what to add to the
//! Kubefile.
//!
//! Bounded: at most [`MAX_ENTRIES`] distinct requests are kept (names are already capped by
//! the router), each with at most [`MAX_CLIENTS`] addresses; once full, further new ones are
//! only counted in `overflowed`, so a client asking for random names cannot grow memory or
//! push out the first (usually the real) misses.
//!
//! Persistent: the registry runs as its own supervised process, and `status` is another.
//! The table is written to a small JSON file (`<data-dir>/registry-misses.json`) by a
//! background thread at most once per [`FLUSH_EVERY`] when it changed, to a temporary file
//! renamed into place, so a reader never sees half a file. A file rather than an endpoint:
//! `status` can read it while the registry is down (often the very moment it matters), it
//! survives registry restarts (the registry loads it at start), and the registry's
//! listeners — one of them reachable by other nodes — serve nothing but the OCI API.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most distinct requests kept.
pub const MAX_ENTRIES: usize = 512;
/// Most client addresses kept per request.
pub const MAX_CLIENTS: usize = 8;
/// How often a changed table is written out.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What kind of object was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Asked {
    Manifest,
    Blob,
    Tags,
}

/// One kind of request the bundle could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    /// What was asked for: `docker.io/library/nginx:1.27`, `quay.io/x/y@sha256:…`; without a
    /// host when the client named none.
    pub image: String,
    /// The upstream registry (from containerd's `?ns=`, or the path's first component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub repository: String,
    /// The tag or digest (absent for a tags list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub asked: Asked,
    /// The error code answered: `NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`.
    pub error: String,
    pub count: u64,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// Client addresses, first come, at most [`MAX_CLIENTS`].
    pub clients: Vec<String>,
}

/// The table as `status` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissReport {
    /// Most recently seen first.
    pub misses: Vec<Miss>,
    /// [`MAX_ENTRIES`].
    pub capacity: usize,
    /// Requests not recorded because the table was full (0 when nothing was lost).
    pub overflowed: u64,
    /// When the table last changed (unix seconds).
    pub updated: u64,
}

/// A request the registry answered with "not in this bundle".
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub asked: Asked,
    pub host: Option<&'a str>,
    pub repository: &'a str,
    pub reference: Option<&'a str>,
    pub error: &'a str,
    pub client: Option<IpAddr>,
}

/// The registry's record of misses; shared by every connection.
#[derive(Debug, Default)]
pub struct MissLog {
    table: Mutex<MissReport>,
    dirty: AtomicBool,
    file: Option<PathBuf>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl MissLog {
    /// A log kept in memory only (tests, `registry` without `--misses-file`).
    pub fn in_memory() -> Arc<MissLog> {
        Arc::new(MissLog::default())
    }

    /// A log written to `file`, starting from what it holds (a registry restart keeps the
    /// history); an unreadable file is started afresh, with a warning.
    pub fn persistent(file: &Path) -> Arc<MissLog> {
        let table = match read(file) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("{e}; starting a new record of missing images");
                MissReport::default()
            }
        };
        Arc::new(MissLog {
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            file: Some(file.to_path_buf()),
        })
    }

    /// Counts one request.
    pub fn record(&self, r: &Request) {
        let name = match r.host {
            Some(h) => format!("{h}/{}", r.repository),
            None => r.repository.to_string(),
        };
        let image = match r.reference {
            None => name,
            Some(d) if d.starts_with("sha256:") => format!("{name}@{d}"),
            Some(t) => format!("{name}:{t}"),
        };
        let t = now();
        let mut table = self.table.lock().expect("miss table");
        table.capacity = MAX_ENTRIES;
        let found = table
            .misses
            .iter()
            .position(|m| m.image == image && m.asked == r.asked);
        match found {
            Some(i) => {
                let m = &mut table.misses[i];
                m.count += 1;
                m.last_seen = t;
                m.error = r.error.to_string();
                if let Some(c) = r.client.map(|c| c.to_string()) {
                    if m.clients.len() < MAX_CLIENTS && !m.clients.contains(&c) {
                        m.clients.push(c);
                    }
                }
            }
            None if table.misses.len() >= MAX_ENTRIES => table.overflowed += 1,
            None => table.misses.push(Miss {
                image,
                host: r.host.map(str::to_string),
                repository: r.repository.to_string(),
                reference: r.reference.map(str::to_string),
                asked: r.asked,
                error: r.error.to_string(),
                count: 1,
                first_seen: t,
                last_seen: t,
                clients: r.client.map(|c| c.to_string()).into_iter().collect(),
            }),
        }
        table.updated = t;
        self.dirty.store(true, Ordering::Release);
    }

    /// The table now, most recently seen first.
    pub fn report(&self) -> MissReport {
        let mut r = self.table.lock().expect("miss table").clone();
        r.capacity = MAX_ENTRIES;
        sort(&mut r);
        r
    }

    /// Writes the table to its file if it changed since the last write.
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.report()).map_err(std::io::Error::other)?;
        let result = write_atomically(file, &bytes);
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// Flushes every [`FLUSH_EVERY`] on a background thread, for the life of the process.
    pub fn spawn_flusher(self: &Arc<Self>) -> std::io::Result<()> {
        let log = self.clone();
        std::thread::Builder::new()
            .name("registry-misses".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                if let Err(e) = log.flush() {
                    tracing::warn!("writing the record of missing images: {e}");
                }
            })
            .map(|_| ())
    }
}

fn sort(r: &mut MissReport) {
    r.misses
        .sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.image.cmp(&b.image)));
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, file)
}

/// Reads a record written by a registry: `Ok(None)` when there is none (nothing was
/// ever missed, or no registry ran), an error naming the file when it is unreadable.
pub fn read(file: &Path) -> Result<Option<MissReport>, String> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(|mut r: MissReport| {
                sort(&mut r);
                Some(r)
            })
            .map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// `2026-05-01 09:41:18Z` for unix seconds `t` (UTC).
pub fn utc(t: u64) -> String {
    ferry_console::utc(t, ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(repository: &'a str, reference: Option<&'a str>, client: &str) -> Request<'a> {
        Request {
            asked: Asked::Manifest,
            host: Some("quay.io"),
            repository,
            reference,
            error: "MANIFEST_UNKNOWN",
            client: Some(client.parse().unwrap()),
        }
    }

    #[test]
    fn counts_requests_and_their_clients() {
        let log = MissLog::in_memory();
        log.record(&req("x/y", Some("1"), "10.0.0.7"));
        log.record(&req("x/y", Some("1"), "10.0.0.8"));
        log.record(&req("x/y", Some("1"), "10.0.0.7"));
        let d = "sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1";
        log.record(&req("x/y", Some(d), "10.0.0.7"));
        log.record(&Request {
            asked: Asked::Tags,
            host: None,
            repository: "lonely",
            reference: None,
            error: "NAME_UNKNOWN",
            client: None,
        });
        let r = log.report();
        assert_eq!(r.capacity, MAX_ENTRIES);
        assert_eq!(r.overflowed, 0);
        let by = |i: &str| r.misses.iter().find(|m| m.image == i).unwrap();
        let m = by("quay.io/x/y:1");
        assert_eq!(m.count, 3);
        assert_eq!(m.clients, ["10.0.0.7", "10.0.0.8"]);
        assert_eq!(m.reference.as_deref(), Some("1"));
        assert!(m.first_seen <= m.last_seen && m.last_seen > 0);
        assert_eq!(by(&format!("quay.io/x/y@{d}")).count, 1);
        let t = by("lonely");
        assert_eq!((t.asked, t.host.as_deref()), (Asked::Tags, None));
    }

    #[test]
    fn memory_is_bounded_and_overflow_is_counted() {
        let log = MissLog::in_memory();
        for i in 0..MAX_ENTRIES + 10 {
            log.record(&req(&format!("r/{i}"), Some("1"), "10.0.0.1"));
        }
        for i in 0..MAX_CLIENTS + 5 {
            log.record(&req("r/0", Some("1"), &format!("10.0.1.{i}")));
        }
        let r = log.report();
        assert_eq!(r.misses.len(), MAX_ENTRIES);
        assert_eq!(r.overflowed, 10);
        let first = r
            .misses
            .iter()
            .find(|m| m.image == "quay.io/r/0:1")
            .unwrap();
        assert_eq!(first.clients.len(), MAX_CLIENTS);
        assert_eq!(first.count, 1 + MAX_CLIENTS as u64 + 5);
    }

    #[test]
    fn survives_a_restart_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data/registry-misses.json");
        assert_eq!(read(&file), Ok(None));
        let log = MissLog::persistent(&file);
        log.flush().unwrap();
        assert!(!file.exists(), "nothing to write yet");
        log.record(&req("x/y", Some("1"), "10.0.0.7"));
        log.flush().unwrap();
        let back = read(&file).unwrap().unwrap();
        assert_eq!(back.misses.len(), 1);
        assert!(!dir.path().join("data/registry-misses.json.tmp").exists());

        let again = MissLog::persistent(&file);
        again.record(&req("x/y", Some("1"), "10.0.0.9"));
        again.flush().unwrap();
        let m = &read(&file).unwrap().unwrap().misses[0];
        assert_eq!((m.count, m.clients.len()), (2, 2));

        std::fs::write(&file, b"{not json").unwrap();
        let e = read(&file).unwrap_err();
        assert!(e.contains("registry-misses.json"), "{e}");
        assert!(MissLog::persistent(&file).report().misses.is_empty());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_777_628_478), "2026-05-01 09:41:18Z");
    }
}
