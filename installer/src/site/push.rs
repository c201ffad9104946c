//! Pushing one carried image into the site's registry (an engine `Push` step), per the
//! OCI distribution spec: every blob `HEAD`ed first and skipped when present, mounted
//! from the site repository an earlier step pushed it to (`POST …/uploads/?mount=…&from=…`),
//! otherwise uploaded in one streamed `PUT`; then each manifest (`HEAD`, else `PUT` by
//! digest), then the tag. A re-run after an interruption therefore sends only what is
//! missing. Bytes come from the staged bundle through the engine's verifying source, and
//! the registry checks every digest again.
//!
//! Authentication follows the registry's `401`: Basic with the site login, or a Bearer
//! token from the challenge's realm (Harbor, Distribution's token auth), fetched with the
//! login and kept per repository. Challenges and token replies are parsed by the bundle
//! crate's [`ferry_bundle::auth`], the same code the builder pushes with.

use super::http::{Body, Endpoint, Response};
use super::{Login, SiteConfig};
use crate::engine::{EntrySource, PushStep};
use ferry_bundle::auth;
use ferry_bundle::oci::MAX_MANIFEST_BYTES;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

/// Attempts per request on connection errors and 5xx.
const ATTEMPTS: u32 = 4;

/// A client for one site registry.
pub struct Client {
    ep: Endpoint,
    site: SiteConfig,
    login: Option<Login>,
    /// `Authorization` header per repository, once a challenge was answered.
    auth: RefCell<HashMap<String, String>>,
}

/// What a push did, for the progress line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub uploaded: u64,
    pub present: u64,
    pub mounted: u64,
    pub bytes: u64,
    pub manifests: u64,
}

impl std::fmt::Display for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} blob(s) uploaded ({} bytes), {} already there, {} mounted; {} manifest(s) pushed",
            self.uploaded, self.bytes, self.present, self.mounted, self.manifests
        )
    }
}

/// The TLS client configuration for the site: its CA if given, else the host's trusted
/// CAs (`/etc/ssl/certs/ca-certificates.crt` or `/etc/pki/tls/certs/ca-bundle.crt`).
fn tls(site: &SiteConfig) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    if let Some(ca) = &site.ca_pem {
        return crate::join::tls::pinned_client(ca.as_bytes())
            .map_err(|e| format!("--site-registry-ca: {e}"));
    }
    for bundle in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(bundle) {
            return crate::join::tls::trusting(&pem).map_err(|e| format!("{bundle}: {e}"));
        }
    }
    Err(format!(
        "this host has no CA bundle to check {}'s certificate with; pass --site-registry-ca <ca.pem> (or --site-registry-insecure for a plain-HTTP registry)",
        site.registry
    ))
}

impl Client {
    pub fn new(site: &SiteConfig, login: Option<&Login>) -> Result<Client, String> {
        let tls = if site.plain_http {
            None
        } else {
            Some(tls(site)?)
        };
        Ok(Client {
            ep: Endpoint {
                authority: site.registry.clone(),
                tls,
                timeout: Duration::from_secs(60),
            },
            site: site.clone(),
            login: login.cloned(),
            auth: RefCell::new(HashMap::new()),
        })
    }

    /// `GET /v2/` answers (200, or 401 asking for credentials): the registry is up.
    pub fn ping(&self) -> Result<(), String> {
        let r = self
            .ep
            .send("GET", "/v2/", &[], Body::None)
            .map_err(|e| self.unreachable(&e))?;
        match r.status {
            200 | 401 => Ok(()),
            s => Err(format!("{} answered {s} to GET /v2/", self.site.url())),
        }
    }

    fn unreachable(&self, e: &std::io::Error) -> String {
        let hint = if e.to_string().to_ascii_lowercase().contains("certificate") {
            " (pass the CA that signed its certificate with --site-registry-ca)"
        } else if self.site.plain_http {
            " (is it serving plain HTTP? without --site-registry-insecure ferry uses HTTPS)"
        } else {
            ""
        };
        format!(
            "cannot reach the site registry {}: {e}{hint}",
            self.site.url()
        )
    }

    /// Sends a request for `repo`, answering one authentication challenge and retrying
    /// connection errors and 5xx. `body` is made afresh for every attempt.
    fn request<'b>(
        &self,
        repo: &str,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: &dyn Fn() -> Result<Body<'b>, String>,
        what: &str,
    ) -> Result<Response, String> {
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut h: Vec<(&str, String)> = headers.to_vec();
            if let Some(a) = self.auth.borrow().get(repo) {
                h.push(("Authorization", a.clone()));
            }
            let resp = match self.ep.send(method, target, &h, body()?) {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                    tracing::debug!("{what}: {e}; retrying");
                    continue;
                }
                Err(e) => return Err(format!("{what}: {}", self.unreachable(&e))),
            };
            match resp.status {
                401 if !challenged => {
                    challenged = true;
                    self.answer(repo, &resp)?;
                }
                500..=599 | 429 if attempt < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(250 << attempt));
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Works out the `Authorization` for `repo` from a 401's challenge.
    fn answer(&self, repo: &str, resp: &Response) -> Result<(), String> {
        let challenges: Vec<auth::Challenge> = resp
            .all("www-authenticate")
            .flat_map(auth::parse_www_authenticate)
            .collect();
        let needs_login = || {
            format!(
                "the site registry {} asks for credentials: pass --site-registry-user and --site-registry-password-stdin",
                self.site.url()
            )
        };
        let header = match auth::preferred(&challenges) {
            Some(c) if c.scheme == "bearer" => {
                format!("Bearer {}", self.token(c, repo)?)
            }
            Some(_) => self
                .login
                .as_ref()
                .map(Login::basic)
                .ok_or_else(needs_login)?,
            None => {
                return Err(format!(
                    "the site registry {} refused the request (401) without a usable challenge",
                    self.site.url()
                ))
            }
        };
        self.auth.borrow_mut().insert(repo.to_string(), header);
        Ok(())
    }

    /// A Bearer token from the challenge's realm, asked with the site login.
    fn token(&self, c: &auth::Challenge, repo: &str) -> Result<String, String> {
        let scope = format!("repository:{repo}:pull,push");
        let url = auth::token_url(c, &scope).ok_or_else(|| {
            format!(
                "the site registry {}'s challenge names no token realm",
                self.site.url()
            )
        })?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("token realm {url:?} is not an http(s) URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if scheme == "http" && !self.site.plain_http && self.login.is_some() {
            return Err(format!(
                "the site registry's token realm {url} is plain HTTP: ferry does not send the site login there (use --site-registry-insecure only for a plain-HTTP site)"
            ));
        }
        let tls = match (scheme, &self.ep.tls) {
            ("https", Some(t)) => Some(t.clone()),
            ("https", None) => Some(tls(&self.site)?),
            _ => None,
        };
        let ep = Endpoint {
            authority: authority.to_string(),
            tls,
            timeout: self.ep.timeout,
        };
        let mut h = Vec::new();
        if let Some(l) = &self.login {
            h.push(("Authorization", l.basic()));
        }
        let r = ep
            .send("GET", path, &h, Body::None)
            .map_err(|e| format!("token from {url}: {e}"))?;
        let status = r.status;
        let body = r
            .bytes(1 << 20)
            .map_err(|e| format!("token from {url}: {e}"))?;
        if status != 200 {
            let why = if status == 401 && self.login.is_some() {
                "the site login was rejected (check --site-registry-user and the password)"
            } else if status == 401 {
                "anonymous access refused: pass --site-registry-user and --site-registry-password-stdin"
            } else {
                "the token service failed"
            };
            return Err(format!("token from {url}: HTTP {status}: {why}"));
        }
        auth::parse_token_reply(&body).map_err(|e| format!("token from {url}: {e}"))
    }

    /// Fails with the registry's own words and what to do.
    fn fail(&self, what: &str, r: Response) -> String {
        let status = r.status;
        let body = r.bytes(4096).unwrap_or_default();
        let detail = String::from_utf8_lossy(&body);
        let detail = detail.trim();
        let hint = match status {
            401 => "; check --site-registry-user and the password",
            403 => "; the login may not push there: ask the registry's administrator for push access (Harbor: a project member with the developer role, and the project must exist)",
            404 => "; check the path of --site-registry (Harbor: the project must exist)",
            _ => "",
        };
        format!(
            "{what} on {}: HTTP {status}{}{hint}",
            self.site.url(),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {}", detail.chars().take(300).collect::<String>())
            }
        )
    }

    /// Pushes the image of `step`.
    pub fn push(&self, step: &PushStep, entries: &dyn EntrySource) -> Result<Pushed, String> {
        let repo = step.repository.as_str();
        let mut done = Pushed::default();
        for b in &step.blobs {
            let d = b.entry.sha256;
            let what = format!("blob {d} of {} ({})", step.image, repo);
            let r = self.request(
                repo,
                "HEAD",
                &format!("/v2/{repo}/blobs/{d}"),
                &[],
                &|| Ok(Body::None),
                &what,
            )?;
            if r.status == 200 {
                done.present += 1;
                continue;
            }
            let mut location = None;
            if let Some(from) = &b.mount_from {
                let r = self.request(
                    repo,
                    "POST",
                    &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
                    &[],
                    &|| Ok(Body::None),
                    &what,
                )?;
                match r.status {
                    201 => {
                        done.mounted += 1;
                        continue;
                    }
                    202 => location = Some(self.location(&r, &what)?),
                    _ => {}
                }
            }
            let location = match location {
                Some(l) => l,
                None => {
                    let r = self.request(
                        repo,
                        "POST",
                        &format!("/v2/{repo}/blobs/uploads/"),
                        &[],
                        &|| Ok(Body::None),
                        &what,
                    )?;
                    if r.status != 202 {
                        return Err(self.fail(&format!("starting the upload of {what}"), r));
                    }
                    self.location(&r, &what)?
                }
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let target = format!("{location}{sep}digest={d}");
            let open = || -> Result<Body<'_>, String> {
                let r = entries.open(&b.entry).map_err(|e| format!("{what}: {e}"))?;
                Ok(Body::Stream(b.entry.size, r))
            };
            let r = self.request(
                repo,
                "PUT",
                &target,
                &[("Content-Type", "application/octet-stream".into())],
                &open,
                &what,
            )?;
            if r.status != 201 {
                return Err(self.fail(&format!("uploading {what}"), r));
            }
            done.uploaded += 1;
            done.bytes += b.entry.size;
        }
        for m in &step.manifests {
            let bytes = match &m.entry {
                Some(e) => {
                    let mut v = Vec::new();
                    entries
                        .open(e)
                        .map_err(|err| format!("manifest {}: {err}", m.digest))?
                        .take(MAX_MANIFEST_BYTES + 1)
                        .read_to_end(&mut v)
                        .map_err(|err| format!("manifest {}: {err}", m.digest))?;
                    v
                }
                None => m.bytes.clone(),
            };
            let last = std::ptr::eq(m, step.manifests.last().expect("a root"));
            let mut refs = vec![m.digest.to_string()];
            if last {
                refs.extend(step.tag.clone());
            }
            for reference in refs {
                let what = format!("manifest {reference} of {} ({repo})", step.image);
                let by_digest = reference == m.digest.to_string();
                let accept = [("Accept", m.media_type.clone())];
                if by_digest {
                    let r = self.request(
                        repo,
                        "HEAD",
                        &format!("/v2/{repo}/manifests/{reference}"),
                        &accept,
                        &|| Ok(Body::None),
                        &what,
                    )?;
                    if r.status == 200 {
                        continue;
                    }
                }
                let r = self.request(
                    repo,
                    "PUT",
                    &format!("/v2/{repo}/manifests/{reference}"),
                    &[("Content-Type", m.media_type.clone())],
                    &|| Ok(Body::Bytes(&bytes)),
                    &what,
                )?;
                if r.status != 201 {
                    return Err(self.fail(&format!("pushing {what}"), r));
                }
                done.manifests += 1;
            }
        }
        Ok(done)
    }

    /// The path and query of an upload's `Location` (absolute or not).
    fn location(&self, r: &Response, what: &str) -> Result<String, String> {
        let l = r.header("location").ok_or_else(|| {
            format!(
                "{what}: the site registry {} answered {} without a Location",
                self.site.url(),
                r.status
            )
        })?;
        Ok(match l.split_once("://") {
            Some((_, rest)) => rest
                .find('/')
                .map_or("/".to_string(), |i| rest[i..].to_string()),
            None => l.to_string(),
        })
    }
}
