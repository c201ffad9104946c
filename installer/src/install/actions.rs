//! What an install phase does, as data: files to write, services to run, commands.
//!
//! Phases *describe* their work as [`PhasePlan`]s; `plan` prints them and `install`
//! executes them, so what the operator reviews is by construction what runs.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Literal text (configs, units, tokens).
    Text { text: String },
    /// An entry of the staged bundle, decompressed if stored with zstd.
    Entry {
        entry: String,
        compression: Option<String>,
        size: u64,
        sha256: String,
    },
    /// The whole bundle, copied and verified in one pass.
    Bundle { size: u64, payload_sha256: String },
    /// Made at install time (keys, certificates, the join token): `what` names it.
    Generated { what: String },
}

impl Content {
    pub fn text(s: impl Into<String>) -> Content {
        Content::Text { text: s.into() }
    }
    /// What `plan` shows as the file's content.
    pub fn describe(&self) -> String {
        match self {
            Content::Text { text } => text.clone(),
            Content::Entry {
                entry,
                compression,
                size,
                sha256,
            } => format!(
                "(binary: bundle entry {entry}{}, {size} bytes stored, sha256 {sha256})",
                if compression.is_some() {
                    ", zstd-decompressed"
                } else {
                    ""
                }
            ),
            Content::Generated { what } => format!("(generated at install: {what})"),
            Content::Bundle {
                size,
                payload_sha256,
            } => {
                format!("(this bundle, {size} bytes, payload sha256 {payload_sha256}, verified while copied)")
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileAction {
    /// Absolute host path (before `--root`).
    pub path: String,
    pub mode: u32,
    #[serde(skip)]
    pub content: Content,
}

/// A long-running process ferry keeps alive: under systemd a unit, elsewhere a
/// supervised background process with a pid file.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    /// Host-root-mapped argv (real paths).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PhasePlan {
    pub phase: String,
    pub files: Vec<FileAction>,
    pub services: Vec<ServiceSpec>,
    /// One-shot commands run after the files are written.
    pub commands: Vec<Vec<String>>,
}
