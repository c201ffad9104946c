//! A bundle as an OCI artifact: how `ferry push` lays a bundle out in a registry, and how
//! `ferry pull` puts the very same file back together. The page is docs/format.md, "In a
//! registry"; this module is its executable form, used by both directions.
//!
//! The file is cut into *spans* ([`spans`]) that together cover every byte exactly once:
//! the installer stub, each entry's stored bytes, bundle.json, and the *frame* — every
//! other byte (tar headers, padding, the end-of-archive blocks, the footer, and anything a
//! later format version puts between entries) in file order. Each content span is a blob
//! named by the sha256 bundle.json already records for it (the stub's `installer.sha256`,
//! an entry's `sha256`, the footer's `manifest_sha256`); the frame is one more blob. So a
//! puller that writes each blob at its span's offset, checking each digest as it goes,
//! writes the identical file — without knowing the tar format, and whatever entries a
//! bundle carries. Nothing here assumes what the entries are: signatures, SBOMs or split
//! parts added to the bundle travel as entries or as frame bytes like everything else.
//!
//! Why not push the file as one blob: registries keep and deduplicate blobs, and a
//! bundle's blobs are mostly image layers that the registry (or the bundle's base) already
//! has; pushing them one by one is what lets a second bundle on the same base upload only
//! what is new, and lets the registry list the images.

use crate::digest::Sha256Digest;
use crate::error::BundleError;
use crate::manifest::EntryRecord;
use crate::reader::Bundle;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::sync::Arc;

/// `artifactType` of the artifact manifest (and of its descriptor in the index).
pub const ARTIFACT_TYPE: &str = "application/vnd.ferry.bundle.v1+json";
/// Media type of the artifact manifest's config, an [`ArtifactConfig`].
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.ferry.bundle.config.v1+json";
/// Layer: the installer stub (bytes `0 .. payload_offset`).
pub const INSTALLER_MEDIA_TYPE: &str = "application/vnd.ferry.bundle.installer.v1";
/// Layer: bundle.json.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.ferry.bundle.manifest.v1+json";
/// Layer: the frame (every byte outside the stub, the entries and bundle.json).
pub const FRAME_MEDIA_TYPE: &str = "application/vnd.ferry.bundle.frame.v1";
/// Layer: one entry's stored bytes; its path is the layer's [`ANNOTATION_TITLE`].
pub const ENTRY_MEDIA_TYPE: &str = "application/vnd.ferry.bundle.entry.v1";
/// What each layer is: `installer`, `bundle.json`, `frame`, or the entry's path.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// Titles of the three layers that are not entries.
pub const TITLE_INSTALLER: &str = "installer";
pub const TITLE_MANIFEST: &str = crate::MANIFEST_PATH;
pub const TITLE_FRAME: &str = "frame";

/// The artifact manifest's config: where the pieces go in the file. Everything else a
/// puller needs is in bundle.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactConfig {
    /// Bundle format version (the footer's).
    pub format: u32,
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub platform: String,
    /// The bundle's identity (the footer's `payload_sha256`).
    pub payload_sha256: Sha256Digest,
    /// Size of the whole file.
    pub size: u64,
    /// Size of the installer stub, where the payload starts.
    pub payload_offset: u64,
    /// Absolute offset and size of bundle.json.
    pub manifest_offset: u64,
    pub manifest_size: u64,
}

impl ArtifactConfig {
    pub fn of(b: &Bundle) -> ArtifactConfig {
        ArtifactConfig {
            format: b.footer.version,
            name: b.manifest.name.clone(),
            version: b.manifest.version.clone(),
            platform: b.manifest.platform.clone(),
            payload_sha256: b.footer.payload_sha256,
            size: b.file_len,
            payload_offset: b.footer.payload_offset,
            manifest_offset: b.footer.payload_offset + b.footer.manifest_offset,
            manifest_size: b.footer.manifest_len,
        }
    }
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the config serialises")
    }
}

/// What a span of the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Installer,
    /// bundle.json.
    Manifest,
    /// The entry at this index of bundle.json's `entries`.
    Entry(usize),
    /// The next `len` bytes of the frame blob.
    Frame,
}

/// A byte range of the file and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
    pub part: Part,
}

impl Span {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// Cuts a file of `cfg.size` bytes into spans, in file order, covering every byte once:
/// the stub, every entry of `entries` (at `payload_offset + offset`) and bundle.json, with
/// frame spans in the gaps. Empty entries get no span. Content that overlaps or lies
/// outside the file is refused: a bundle.json from a registry is not trusted to say
/// where bytes go until this has checked it.
pub fn spans(cfg: &ArtifactConfig, entries: &[EntryRecord]) -> Result<Vec<Span>, BundleError> {
    let bad = |what: String| BundleError::BadManifest {
        reason: format!("the artifact's layout does not fit: {what}"),
    };
    let mut content = Vec::with_capacity(entries.len() + 2);
    content.push(Span {
        offset: 0,
        len: cfg.payload_offset,
        part: Part::Installer,
    });
    for (i, e) in entries.iter().enumerate() {
        if e.size == 0 {
            continue;
        }
        let offset = cfg
            .payload_offset
            .checked_add(e.offset)
            .ok_or_else(|| bad(format!("entry {} offset overflows", e.path)))?;
        content.push(Span {
            offset,
            len: e.size,
            part: Part::Entry(i),
        });
    }
    content.push(Span {
        offset: cfg.manifest_offset,
        len: cfg.manifest_size,
        part: Part::Manifest,
    });
    content.sort_by_key(|s| s.offset);
    let mut out = Vec::with_capacity(content.len() * 2 + 1);
    let mut pos = 0u64;
    for s in content {
        if s.offset < pos {
            return Err(bad(format!(
                "{:?} at {} overlaps what is before it",
                s.part, s.offset
            )));
        }
        let end = s
            .offset
            .checked_add(s.len)
            .filter(|&e| e <= cfg.size)
            .ok_or_else(|| {
                bad(format!(
                    "{:?} at {} ends after the file's {} bytes",
                    s.part, s.offset, cfg.size
                ))
            })?;
        if s.offset > pos {
            out.push(Span {
                offset: pos,
                len: s.offset - pos,
                part: Part::Frame,
            });
        }
        out.push(s);
        pos = end;
    }
    if pos < cfg.size {
        out.push(Span {
            offset: pos,
            len: cfg.size - pos,
            part: Part::Frame,
        });
    }
    Ok(out)
}

/// Total size of the frame.
pub fn frame_len(spans: &[Span]) -> u64 {
    spans
        .iter()
        .filter(|s| s.part == Part::Frame)
        .map(|s| s.len)
        .sum()
}

/// The frame's bytes, read from the bundle file in place.
pub struct FrameReader {
    file: Arc<crate::parts::BundleFile>,
    ranges: Vec<(u64, u64)>,
    next: usize,
    pos: u64,
}

impl FrameReader {
    pub fn new(b: &Bundle, spans: &[Span]) -> FrameReader {
        FrameReader {
            file: b.file.clone(),
            ranges: spans
                .iter()
                .filter(|s| s.part == Part::Frame)
                .map(|s| (s.offset, s.len))
                .collect(),
            next: 0,
            pos: 0,
        }
    }
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(offset, len)) = self.ranges.get(self.next) {
            if self.pos == len {
                self.next += 1;
                self.pos = 0;
                continue;
            }
            let n = (buf.len() as u64).min(len - self.pos) as usize;
            let got = self.file.read_at(&mut buf[..n], offset + self.pos)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the bundle file ended inside its frame (truncated?)",
                ));
            }
            self.pos += got as u64;
            return Ok(got);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::BundleWriter;
    use crate::BundleManifest;

    #[test]
    fn spans_cover_the_file_once_and_rebuild_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.run");
        let mut w = BundleWriter::create(&path, &b"#!stub"[..]).unwrap();
        w.add_entry("files/a", 3, 0o644, &b"abc"[..]).unwrap();
        w.add_entry("files/empty", 0, 0o644, &b""[..]).unwrap();
        let long = format!("files/{}", "x".repeat(150));
        w.add_entry(&long, 5, 0o755, &b"hello"[..]).unwrap();
        w.finish(BundleManifest {
            name: "t".into(),
            ..Default::default()
        })
        .unwrap();
        let b = Bundle::open(&path).unwrap();
        let cfg = ArtifactConfig::of(&b);
        let sp = spans(&cfg, &b.manifest.entries).unwrap();
        let mut pos = 0;
        for s in &sp {
            assert_eq!(s.offset, pos, "{sp:?}");
            pos = s.end();
        }
        assert_eq!(pos, b.file_len);
        assert_eq!(sp[0].part, Part::Installer);
        assert_eq!(sp.last().unwrap().part, Part::Frame, "the footer is frame");
        // Rebuild from the pieces: the stub, each entry by itself, bundle.json, the frame.
        let file = std::fs::read(&path).unwrap();
        let mut frame = Vec::new();
        FrameReader::new(&b, &sp).read_to_end(&mut frame).unwrap();
        assert_eq!(frame.len() as u64, frame_len(&sp));
        let mut out = Vec::new();
        let mut f = &frame[..];
        for s in &sp {
            let piece = match s.part {
                Part::Installer => file[..6].to_vec(),
                Part::Manifest => {
                    let o = cfg.manifest_offset as usize;
                    file[o..o + cfg.manifest_size as usize].to_vec()
                }
                Part::Entry(i) => {
                    let e = &b.manifest.entries[i];
                    let o = (cfg.payload_offset + e.offset) as usize;
                    let bytes = file[o..o + e.size as usize].to_vec();
                    assert_eq!(Sha256Digest::of(&bytes), e.sha256);
                    bytes
                }
                Part::Frame => {
                    let (a, rest) = f.split_at(s.len as usize);
                    f = rest;
                    a.to_vec()
                }
            };
            out.extend(piece);
        }
        assert_eq!(out, file);
    }

    #[test]
    fn overlapping_or_outside_content_is_refused() {
        let e = |offset, size| EntryRecord {
            path: "files/a".into(),
            size,
            sha256: Sha256Digest::default(),
            offset,
            compression: None,
            mode: 0o644,
        };
        let cfg = ArtifactConfig {
            format: 1,
            name: "t".into(),
            version: String::new(),
            platform: String::new(),
            payload_sha256: Sha256Digest::default(),
            size: 10_000,
            payload_offset: 100,
            manifest_offset: 5_000,
            manifest_size: 100,
        };
        assert!(spans(&cfg, &[e(512, 10)]).is_ok());
        assert!(
            spans(&cfg, &[e(4_950, 10)]).is_err(),
            "overlaps bundle.json"
        );
        assert!(spans(&cfg, &[e(9_950, 100)]).is_err(), "past the end");
        assert!(spans(&cfg, &[e(u64::MAX - 50, 10)]).is_err(), "overflow");
        assert!(spans(&cfg, &[e(512, 10), e(515, 10)]).is_err(), "overlap");
    }
}
