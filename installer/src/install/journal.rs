//! The install journal (`<data>/journal.json`): which phases are done, which files and
//! directories ferry created, which services it started. Written atomically (temp file,
//! fsync, rename) after every phase, so a crash, `kill -9` or power cut leaves either the
//! old or the new journal, and a re-run resumes from it. `reset` reads it to remove
//! exactly what ferry installed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Journal {
    /// Payload sha256 of the bundle being installed: a different bundle is not resumed.
    pub bundle_sha256: String,
    pub bundle_name: String,
    /// `server`, `join`.
    #[serde(default)]
    pub role: String,
    pub phases: Vec<PhaseRecord>,
    /// Host paths of files ferry wrote (outside its own trees too, e.g. COPY targets).
    #[serde(default)]
    pub files: BTreeSet<String>,
    /// Host paths of directories ferry created, for removal on reset.
    #[serde(default)]
    pub dirs: BTreeSet<String>,
    #[serde(default)]
    pub services: BTreeSet<String>,
    #[serde(default)]
    pub node_ip: String,
    #[serde(default)]
    pub registry_port: u16,
    #[serde(default)]
    pub join_command: String,
    /// Registry this node's runtime pulls from (joined nodes: the master's, over TLS).
    #[serde(default)]
    pub registry_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseRecord {
    pub name: String,
    /// `done` or `failed`.
    pub state: String,
    /// Seconds since the epoch.
    pub at: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Journal {
    pub fn load(path: &Path) -> std::io::Result<Option<Journal>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).expect("journal serialises"))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub fn is_done(&self, phase: &str) -> bool {
        self.phases
            .iter()
            .any(|p| p.name == phase && p.state == "done")
    }

    pub fn record(&mut self, phase: &str, result: Result<(), String>) {
        self.phases.retain(|p| p.name != phase);
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (state, error) = match result {
            Ok(()) => ("done", String::new()),
            Err(e) => ("failed", e),
        };
        self.phases.push(PhaseRecord {
            name: phase.into(),
            state: state.into(),
            at,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_reloads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("journal.json");
        assert!(Journal::load(&p).unwrap().is_none());
        let mut j = Journal {
            bundle_sha256: "ab".into(),
            ..Default::default()
        };
        j.record("stage", Ok(()));
        j.record("registry", Err("port busy".into()));
        j.record("registry", Ok(()));
        j.save(&p).unwrap();
        let back = Journal::load(&p).unwrap().unwrap();
        assert!(back.is_done("stage") && back.is_done("registry"));
        assert_eq!(back.phases.len(), 2);
        assert!(!d.path().join("journal.json.tmp").exists());
    }
}
