//! `ferry pull <ref> -o <file.run>`: a pushed bundle back into one file, byte for byte.
//!
//! The tag names an index; its entry with `artifactType` [`artifact::ARTIFACT_TYPE`] is the
//! artifact manifest, whose config ([`ArtifactConfig`]) and bundle.json layer say where
//! every piece goes ([`artifact::spans`]). The file is then written from its first byte
//! to its last: the installer stub, each entry and bundle.json fetched by the digest
//! bundle.json records for it (image manifests from `/manifests/`, everything else from
//! `/blobs/`), the frame copied from its own blob. Every piece is hashed as it is written
//! and must match its digest, so the finished file needs no second pass; its footer's
//! payload sha256 must also match the one the artifact announced.
//!
//! **Resumable.** The file grows as `<out>.partial`; after every piece (and every
//! [`CHECKPOINT`] bytes inside a large one) it is synced and `<out>.partial.json` records
//! how far it is durable and for which artifact. A second `pull` of the same artifact
//! cuts the partial file back to that point, re-hashes the part of the current piece that
//! is already there, and asks the registry for the rest with `Range`. A transfer that
//! breaks off is continued the same way within one run. Blobs the content cache already
//! holds (a build pulled those images) are copied from it instead of downloaded.

use crate::pull::client::{header, Client, Method, Request};
use crate::pull::{ContentCache, PullError, PullOptions};
use anyhow::{bail, Context, Result};
use ferry_bundle::artifact::{self, ArtifactConfig, Part, Span};
use ferry_bundle::oci::{self, Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use ferry_bundle::reference::Reference;
use ferry_bundle::{BundleManifest, Sha256Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How much is written between two durable checkpoints, at most.
pub const CHECKPOINT: u64 = 256 << 20;
/// How long a pull goes between two checkpoints, at most.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub registry: PullOptions,
    /// Blobs found here are copied rather than downloaded.
    pub cache: Option<ContentCache>,
    pub quiet: bool,
}

/// A pushed bundle as the registry describes it: enough to list it (bundle.json) or to
/// pull it.
pub struct Remote {
    pub client: Client,
    pub reference: Reference,
    /// Digest of what the reference names (the index).
    pub digest: Sha256Digest,
    /// Digest of the artifact manifest.
    pub artifact_digest: Sha256Digest,
    pub artifact: Manifest,
    pub config: ArtifactConfig,
    pub manifest_bytes: Vec<u8>,
    pub manifest: BundleManifest,
    /// Documents the index names (pushed as manifests, fetched from `/manifests/`).
    manifest_digests: HashSet<Sha256Digest>,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    pub reference: String,
    pub digest: Sha256Digest,
    pub output: PathBuf,
    pub bundle: String,
    pub size: u64,
    pub payload_sha256: Sha256Digest,
    /// Pieces downloaded, and their bytes.
    pub blobs_fetched: u64,
    pub bytes_fetched: u64,
    /// Pieces copied from the content cache.
    pub blobs_from_cache: u64,
    /// Bytes that an earlier, interrupted pull had already written.
    pub bytes_resumed: u64,
    /// sha256 of the whole file, as `sha256sum` prints it (also in `<out>.sha256`, as a
    /// build writes it).
    pub file_sha256: String,
    pub seconds: f64,
}

/// The resume record beside the partial file.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    artifact: Sha256Digest,
    done: u64,
}

/// Reads what `r` names down to bundle.json (a few small requests).
pub fn resolve(r: &Reference, opts: &PullOptions) -> Result<Remote> {
    let mut reg = opts.clone();
    reg.mirrors.clear();
    let client = Client::new(r, &reg)?;
    let want = r.digest.map(|d| d.to_string());
    let reference = want
        .clone()
        .unwrap_or_else(|| r.tag.clone().unwrap_or_else(|| "latest".into()));
    let (top, top_type) = get_document(
        &client,
        &reference,
        r.digest,
        &format!("manifest {reference}"),
    )?;
    let digest = Sha256Digest::of(&top);
    let parsed = Manifest::parse(&top).map_err(|e| malformed(&client, "the tagged manifest", e))?;
    let top_type = parsed.media_type_or(top_type.as_deref());
    let not_a_bundle = || {
        anyhow::anyhow!(
            "{r}: {} names no ferry bundle (no manifest with artifactType {} in the index); \
             push one with `ferry push <bundle.run> {r}`",
            client.registry(),
            artifact::ARTIFACT_TYPE
        )
    };
    let (artifact_digest, artifact_bytes, manifest_digests) = if parsed.is_index(&top_type) {
        let art = parsed
            .children()
            .iter()
            .find(|d| d.artifact_type.as_deref() == Some(artifact::ARTIFACT_TYPE))
            .ok_or_else(not_a_bundle)?;
        let what = format!("artifact manifest {}", art.digest);
        let (bytes, _) = get_document(&client, &art.digest.to_string(), Some(art.digest), &what)?;
        let docs = parsed
            .children()
            .iter()
            .filter(|d| d.digest != art.digest)
            .map(|d| d.digest)
            .collect();
        (art.digest, bytes, docs)
    } else {
        (digest, top.clone(), HashSet::new())
    };
    let artifact = Manifest::parse(&artifact_bytes)
        .map_err(|e| malformed(&client, "the artifact manifest", e))?;
    if artifact.effective_artifact_type().as_deref() != Some(artifact::ARTIFACT_TYPE)
        && artifact.config.as_ref().map(|c| c.media_type.as_str())
            != Some(artifact::CONFIG_MEDIA_TYPE)
    {
        return Err(not_a_bundle());
    }
    let config_desc = artifact
        .config
        .clone()
        .filter(|c| c.media_type == artifact::CONFIG_MEDIA_TYPE)
        .ok_or_else(not_a_bundle)?;
    let config_bytes = get_small_blob(&client, &config_desc.digest, config_desc.size, 1 << 20)?;
    let config: ArtifactConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(&client, "the artifact's config", e))?;
    let layer = find_layer(&artifact, artifact::TITLE_MANIFEST)
        .filter(|l| l.size == config.manifest_size)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{r}: the artifact has no bundle.json layer of {} bytes",
                config.manifest_size
            )
        })?;
    let manifest_bytes = get_small_blob(
        &client,
        &layer.digest,
        layer.size,
        ferry_bundle::reader::MAX_MANIFEST,
    )?;
    let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| malformed(&client, "bundle.json", e))?;
    Ok(Remote {
        client,
        reference: r.clone(),
        digest,
        artifact_digest,
        artifact,
        config,
        manifest_bytes,
        manifest,
        manifest_digests,
    })
}

fn find_layer<'a>(m: &'a Manifest, title: &str) -> Option<&'a oci::Descriptor> {
    m.layers.iter().find(|l| {
        l.annotations
            .get(artifact::ANNOTATION_TITLE)
            .map(String::as_str)
            == Some(title)
    })
}

fn malformed(client: &Client, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    PullError::Malformed {
        reference: client.reference().to_string(),
        registry: client.registry(),
        what: what.to_string(),
        detail: e.to_string(),
    }
    .into()
}

/// A manifest or index by tag or digest (at most 4 MiB), checked against `digest` when
/// given and against `Docker-Content-Digest` when the registry sends one.
fn get_document(
    client: &Client,
    reference: &str,
    digest: Option<Sha256Digest>,
    what: &str,
) -> Result<(Vec<u8>, Option<String>)> {
    let url = client.endpoint.manifest_url(reference);
    let accept = format!("{MANIFEST_ACCEPT}, {}", oci::OCI_ARTIFACT_MANIFEST);
    let mut resp = client.send(Method::Get, &url, Some(&accept), what)?;
    let ct = header(&resp, "content-type");
    let said = header(&resp, "docker-content-digest");
    let mut bytes = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: reading {what}", client.reference()))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        bail!(
            "{}: {what} is larger than {MAX_MANIFEST_BYTES} bytes",
            client.reference()
        );
    }
    let found = Sha256Digest::of(&bytes);
    if let Some(expected) = digest.map(|d| d.to_string()).or(said) {
        if expected != found.to_string() {
            return Err(digest_mismatch(client, what, &expected, &found.to_string()));
        }
    }
    Ok((bytes, ct))
}

/// A small blob (config, bundle.json) into memory, checked. A transfer that breaks off
/// is tried again.
fn get_small_blob(client: &Client, d: &Sha256Digest, size: u64, limit: u64) -> Result<Vec<u8>> {
    let what = format!("blob {d}");
    if size > limit {
        bail!(
            "{}: {what} is {size} bytes, more than the {limit} allowed",
            client.reference()
        );
    }
    let url = client.endpoint.blob_url(&d.to_string());
    let mut attempt = 0;
    let bytes = loop {
        attempt += 1;
        let mut resp = client.send(Method::Get, &url, None, &what)?;
        let mut bytes = Vec::with_capacity(size as usize);
        match resp
            .body_mut()
            .as_reader()
            .take(size + 1)
            .read_to_end(&mut bytes)
        {
            Ok(_) => break bytes,
            Err(e) if attempt < client.attempts() => {
                tracing::debug!("{what}: {e}; trying again");
                std::thread::sleep(client.backoff(attempt));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "{}: reading {what} from {} ({attempt} attempts)",
                    client.reference(),
                    client.registry()
                )))
            }
        }
    };
    let found = Sha256Digest::of(&bytes);
    if found != *d || bytes.len() as u64 != size {
        return Err(digest_mismatch(
            client,
            &what,
            &d.to_string(),
            &found.to_string(),
        ));
    }
    Ok(bytes)
}

fn digest_mismatch(client: &Client, what: &str, expected: &str, actual: &str) -> anyhow::Error {
    PullError::DigestMismatch {
        reference: client.reference().to_string(),
        registry: client.registry(),
        what: what.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
    .into()
}

/// `<out>` + suffix.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Pulls the bundle `r` names into `out`.
pub fn pull(r: &Reference, out: &Path, opts: &FetchOptions) -> Result<Pulled> {
    let remote = resolve(r, &opts.registry)?;
    pull_remote(&remote, out, opts)
}

/// Pulls an already resolved bundle into `out`.
pub fn pull_remote(remote: &Remote, out: &Path, opts: &FetchOptions) -> Result<Pulled> {
    let started = std::time::Instant::now();
    let cfg = &remote.config;
    let m = &remote.manifest;
    let spans = artifact::spans(cfg, &m.entries)?;
    if m.installer.size != cfg.payload_offset {
        bail!(
            "{}: bundle.json says the installer is {} bytes, the artifact says {}",
            remote.reference,
            m.installer.size,
            cfg.payload_offset
        );
    }
    let partial = beside(out, ".partial");
    let state_path = beside(out, ".partial.json");
    let mut w = Writer::open(&partial, &state_path, remote.artifact_digest)?;
    let resumed = w.pos;
    let frame = fetch_frame(remote, &beside(out, ".partial.frame"))?;
    let bar = ferry_console::bytes_bar(cfg.size, "pulling", opts.quiet);
    bar.set_position(w.pos);
    let mut stats = Pulled {
        reference: remote.reference.to_string(),
        digest: remote.digest,
        output: out.to_path_buf(),
        bundle: m.name.clone(),
        size: cfg.size,
        payload_sha256: cfg.payload_sha256,
        blobs_fetched: 0,
        bytes_fetched: 0,
        blobs_from_cache: 0,
        bytes_resumed: resumed,
        file_sha256: String::new(),
        seconds: 0.0,
    };
    let res = write_spans(remote, opts, &mut w, &spans, &frame, &mut stats, &|p| {
        bar.set_position(p)
    });
    if let Err(e) = res {
        // What is written is verified (or re-hashed on resume): keep it for the next try.
        let _ = w.checkpoint();
        bar.finish_and_clear();
        return Err(e.context(format!(
            "pulling {} into {} (run the same pull again to resume)",
            remote.reference,
            partial.display()
        )));
    }
    bar.finish_and_clear();
    stats.file_sha256 = w.finish(out)?.hex();
    let _ = std::fs::remove_file(&state_path);
    let _ = std::fs::remove_file(beside(out, ".partial.frame"));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sum = beside(out, ".sha256");
    std::fs::write(&sum, format!("{}  {name}\n", stats.file_sha256))
        .with_context(|| format!("writing {}", sum.display()))?;
    let b = ferry_bundle::Bundle::open(out)?;
    if b.footer.payload_sha256 != cfg.payload_sha256 {
        bail!(
            "{}: the pulled file's payload is {}, the artifact announced {}",
            out.display(),
            b.footer.payload_sha256,
            cfg.payload_sha256
        );
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Writes every span from the writer's position on.
fn write_spans(
    remote: &Remote,
    opts: &FetchOptions,
    w: &mut Writer,
    spans: &[Span],
    frame: &File,
    stats: &mut Pulled,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let m = &remote.manifest;
    let mut frame_at = 0u64;
    for s in spans {
        if s.end() <= w.pos {
            if s.part == Part::Frame {
                frame_at += s.len;
            }
            continue;
        }
        let skip = w.pos - s.offset;
        match s.part {
            Part::Frame => {
                let mut f = frame.try_clone()?;
                f.seek(SeekFrom::Start(frame_at + skip))?;
                w.copy(&mut f.take(s.len - skip), None)?;
                frame_at += s.len;
            }
            part => {
                let digest = match part {
                    Part::Installer => m.installer.sha256,
                    Part::Manifest => Sha256Digest::of(&remote.manifest_bytes),
                    Part::Entry(i) => m.entries[i].sha256,
                    Part::Frame => unreachable!(),
                };
                let from_cache = piece(remote, opts, w, s, digest, skip, stats)?;
                if from_cache {
                    stats.blobs_from_cache += 1;
                } else {
                    stats.blobs_fetched += 1;
                }
            }
        }
        w.maybe_checkpoint()?;
        progress(w.pos);
    }
    Ok(())
}

/// Writes one content piece at `s`; returns whether it came from the cache.
fn piece(
    remote: &Remote,
    opts: &FetchOptions,
    w: &mut Writer,
    s: &Span,
    digest: Sha256Digest,
    skip: u64,
    stats: &mut Pulled,
) -> Result<bool> {
    let what = format!("blob {digest}");
    let mut h = Sha256::new();
    if skip > 0 {
        w.hash_back(s.offset, skip, &mut h)?;
    }
    let cached = opts
        .cache
        .as_ref()
        .filter(|c| c.contains(&digest, s.len))
        .map(|c| c.blob_path(&digest));
    let from_cache = if let Some(path) = cached {
        let mut f = File::open(&path).with_context(|| format!("{}", path.display()))?;
        f.seek(SeekFrom::Start(skip))?;
        w.copy(&mut f.take(s.len - skip), Some(&mut h))?;
        true
    } else {
        let client = &remote.client;
        let attempts = client.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let at = w.pos - s.offset;
            let mut body = open_blob(remote, &digest, at, &what)?;
            let before = w.pos;
            match w.copy(&mut (&mut body).take(s.len - at), Some(&mut h)) {
                Ok(()) if w.pos == s.end() => {
                    stats.bytes_fetched += w.pos - before;
                    break;
                }
                Ok(()) => {
                    stats.bytes_fetched += w.pos - before;
                    if attempt >= attempts {
                        bail!(
                            "{}: {what} from {} ended after {} of {} bytes ({attempt} attempts)",
                            remote.reference,
                            client.registry(),
                            w.pos - s.offset,
                            s.len
                        );
                    }
                }
                Err(e) if attempt < attempts => {
                    stats.bytes_fetched += w.pos - before;
                    tracing::debug!("{what}: {e}; continuing from byte {}", w.pos - s.offset);
                    std::thread::sleep(client.backoff(attempt));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "{}: {what} from {}",
                        remote.reference,
                        client.registry()
                    )))
                }
            }
        }
        false
    };
    let found = Sha256Digest(h.finalize().into());
    if found != digest {
        // Nothing of this piece may count as done: a re-run fetches it again.
        w.rewind(s.offset)?;
        return Err(digest_mismatch(
            &remote.client,
            &what,
            &digest.to_string(),
            &found.to_string(),
        ));
    }
    Ok(from_cache)
}

/// A blob's bytes from byte `at` on: from `/manifests/` for the documents the index
/// names, else `/blobs/` (each falling back to the other on 404, since registries differ
/// in which serves a manifest's bytes).
fn open_blob(remote: &Remote, d: &Sha256Digest, at: u64, what: &str) -> Result<Box<dyn Read>> {
    let client = &remote.client;
    let blob_url = client.endpoint.blob_url(&d.to_string());
    let manifest_url = client.endpoint.manifest_url(&d.to_string());
    let accept = format!("{MANIFEST_ACCEPT}, {}", oci::OCI_ARTIFACT_MANIFEST);
    let mut order = [(blob_url.as_str(), false), (manifest_url.as_str(), true)];
    if remote.manifest_digests.contains(d) {
        order.reverse();
    }
    let mut last = None;
    for (url, is_manifest) in order {
        let mut req = Request::new(Method::Get, url);
        if is_manifest {
            req = req.accept(&accept);
        } else if at > 0 {
            req = req.header("Range", format!("bytes={at}-"));
        }
        let resp = client.exchange(&req, what)?;
        let status = resp.status().as_u16();
        if status == 404 {
            last = Some(resp);
            continue;
        }
        let resp = client.check(resp, what)?;
        let mut body: Box<dyn Read> = Box::new(resp.into_body().into_reader());
        if status != 206 && at > 0 {
            // The registry sent it all: skip what is already written.
            std::io::copy(&mut (&mut body).take(at), &mut std::io::sink())?;
        }
        return Ok(body);
    }
    Err(client
        .check(last.expect("a 404 was seen"), what)
        .err()
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("{what}: not found")))
}

/// The frame blob in a temp file beside the output, checked (fetched again unless a
/// complete, matching copy is there from an interrupted pull).
fn fetch_frame(remote: &Remote, path: &Path) -> Result<File> {
    let layer = find_layer(&remote.artifact, artifact::TITLE_FRAME)
        .ok_or_else(|| anyhow::anyhow!("{}: the artifact has no frame layer", remote.reference))?
        .clone();
    let want = artifact::frame_len(&artifact::spans(&remote.config, &remote.manifest.entries)?);
    if layer.size != want {
        bail!(
            "{}: the frame layer is {} bytes, the layout needs {want}",
            remote.reference,
            layer.size
        );
    }
    if let Ok(f) = File::open(path) {
        if f.metadata()?.len() == want {
            let (d, _) = ferry_bundle::digest::hash_reader(&f)?;
            if d == layer.digest {
                return Ok(f);
            }
        }
    }
    let what = format!("frame {}", layer.digest);
    let mut body = open_blob(remote, &layer.digest, 0, &what)?;
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut hr = ferry_bundle::digest::HashingReader::new((&mut body).take(want + 1));
    std::io::copy(&mut hr, &mut f)?;
    let (d, n) = hr.finish();
    if d != layer.digest || n != want {
        return Err(digest_mismatch(
            &remote.client,
            &what,
            &layer.digest.to_string(),
            &d.to_string(),
        ));
    }
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

/// The growing output file and its resume record.
struct Writer {
    file: BufWriter<File>,
    path: PathBuf,
    state: PathBuf,
    artifact: Sha256Digest,
    pos: u64,
    synced: u64,
    last_sync: std::time::Instant,
    /// sha256 of bytes `0 .. pos` (a resumed pull re-reads what it kept, once).
    whole: Sha256,
}

impl Writer {
    /// Opens the partial file, keeping what an earlier pull of the same artifact made
    /// durable.
    fn open(path: &Path, state: &Path, artifact: Sha256Digest) -> Result<Writer> {
        let prior: Option<State> = std::fs::read(state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let len = file.metadata()?.len();
        let pos = match prior {
            Some(s) if s.artifact == artifact && s.done <= len => s.done,
            _ => 0,
        };
        if pos > 0 {
            tracing::info!("resuming {} at byte {pos}", path.display());
        }
        file.set_len(pos)?;
        let mut whole = Sha256::new();
        hash_range(&file, 0, pos, &mut whole)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.seek(SeekFrom::Start(pos))?;
        Ok(Writer {
            whole,
            file,
            path: path.to_path_buf(),
            state: state.to_path_buf(),
            artifact,
            pos,
            synced: pos,
            last_sync: std::time::Instant::now(),
        })
    }

    /// Copies `r` to the end of the file, hashing into `h`; checkpoints every
    /// [`CHECKPOINT`] bytes.
    fn copy(&mut self, r: &mut dyn Read, mut h: Option<&mut Sha256>) -> Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(h) = h.as_deref_mut() {
                h.update(&buf[..n]);
            }
            self.whole.update(&buf[..n]);
            self.file
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", self.path.display()))?;
            self.pos += n as u64;
            if self.pos - self.synced >= CHECKPOINT {
                self.checkpoint()?;
            }
        }
    }

    /// Checkpoints after a piece when enough bytes or time went by since the last one
    /// (a sync per small entry would make pulling thousands of files slow).
    fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.pos - self.synced >= CHECKPOINT || self.last_sync.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Hashes `len` bytes already written at `offset` (a piece resumed in its middle).
    fn hash_back(&mut self, offset: u64, len: u64, h: &mut Sha256) -> Result<()> {
        self.file.flush()?;
        Ok(hash_range(self.file.get_ref(), offset, len, h)?)
    }

    /// Makes everything written so far durable and records it.
    fn checkpoint(&mut self) -> Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        self.synced = self.pos;
        self.last_sync = std::time::Instant::now();
        let s = serde_json::to_vec(&State {
            artifact: self.artifact,
            done: self.pos,
        })?;
        let tmp = beside(&self.state, ".tmp");
        std::fs::write(&tmp, s)?;
        std::fs::rename(&tmp, &self.state)?;
        Ok(())
    }

    /// Cuts the file back to `offset` (a piece that failed its digest).
    fn rewind(&mut self, offset: u64) -> Result<()> {
        self.file.flush()?;
        self.file.get_ref().set_len(offset)?;
        self.file.seek(SeekFrom::Start(offset))?;
        self.pos = offset;
        self.checkpoint()?;
        // The whole-file hash ran past `offset`: start it again over what is kept.
        let mut whole = Sha256::new();
        hash_range(self.file.get_ref(), 0, offset, &mut whole)?;
        self.whole = whole;
        Ok(())
    }

    /// Puts the file in place; returns its sha256.
    fn finish(mut self, out: &Path) -> Result<Sha256Digest> {
        self.file.flush()?;
        let f = self.file.get_ref();
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&self.path, out)
            .with_context(|| format!("renaming {} to {}", self.path.display(), out.display()))?;
        Ok(Sha256Digest(self.whole.finalize().into()))
    }
}

/// Hashes `len` bytes of `f` at `offset` into `h`.
fn hash_range(f: &File, offset: u64, len: u64, h: &mut Sha256) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (buf.len() as u64).min(len - done) as usize;
        f.read_exact_at(&mut buf[..n], offset + done)?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}
