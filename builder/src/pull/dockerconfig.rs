//! Registry credentials from Docker's `config.json`, so `docker login` is all a user needs.
//!
//! Read in Docker's order: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. For a
//! host, a `credHelpers` entry wins, then `credsStore`, then the inline `auths` entry
//! (`auth` = base64 `user:password`, or `username`/`password`). Keys are matched by host
//! alone, since `docker login` writes them in several spellings
//! (`https://index.docker.io/v1/`, `host:5000`, `https://host:5000/v2/`).
//! Identity tokens (OAuth refresh tokens) are not supported yet: such an entry is skipped
//! with a warning rather than sent as a password.

use base64::Engine as _;
use ferry_bundle::reference::normalise_host;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user name and password (or token used as a password). Debug output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Why a Docker config file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("docker config {path}: {detail}")]
pub struct DockerConfigError {
    pub path: PathBuf,
    pub detail: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// A parsed Docker config: credentials by canonical host, plus helper settings.
#[derive(Debug, Default, Clone)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    auths: BTreeMap<String, Credentials>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
}

impl DockerConfig {
    /// Docker's lookup: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(
            std::env::var_os("DOCKER_CONFIG").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// Loads `path`, or the default path if `None`. A missing file is an empty config
    /// (anonymous pulls); a malformed one is an error, since silently pulling anonymously
    /// would turn a typo into a confusing 401 later.
    pub fn load(path: Option<&Path>) -> Result<DockerConfig, DockerConfigError> {
        let Some(path) = path.map(Path::to_path_buf).or_else(Self::default_path) else {
            return Ok(DockerConfig::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(DockerConfigError {
                path,
                detail: e.to_string(),
            }),
        }
    }

    /// Parses the text of a config file; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<DockerConfig, DockerConfigError> {
        let err = |detail: String| DockerConfigError {
            path: path.to_path_buf(),
            detail,
        };
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut auths = BTreeMap::new();
        for (key, entry) in raw.auths {
            let host = host_of_key(&key);
            let creds = if let Some(b64) = entry.auth.as_deref().filter(|s| !s.is_empty()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| err(format!("auths.{key}.auth is not base64: {e}")))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| err(format!("auths.{key}.auth is not UTF-8")))?;
                let (u, p) = text
                    .split_once(':')
                    .ok_or_else(|| err(format!("auths.{key}.auth is not user:password")))?;
                Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                })
            } else if let (Some(u), Some(p)) = (entry.username, entry.password) {
                Some(Credentials {
                    username: u,
                    password: p,
                })
            } else {
                if entry.identitytoken.is_some() {
                    tracing::warn!(
                        "{}: auths.{key} holds an identity token, which ferry does not support yet; \
                         pulling from {host} anonymously",
                        path.display()
                    );
                }
                None
            };
            if let Some(c) = creds {
                auths.insert(host, c);
            }
        }
        Ok(DockerConfig {
            path: Some(path.to_path_buf()),
            auths,
            creds_store: raw.creds_store.filter(|s| !s.is_empty()),
            cred_helpers: raw
                .cred_helpers
                .into_iter()
                .map(|(k, v)| (host_of_key(&k), v))
                .collect(),
        })
    }

    /// The file this config came from, if any (for messages).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Credentials for `host` (`docker.io`, `localhost:5000`, …), if any are configured.
    pub fn credentials_for(&self, host: &str) -> Option<Credentials> {
        let host = canonical_host(host);
        let helper = self.cred_helpers.get(&host).or(self.creds_store.as_ref());
        if let Some(helper) = helper {
            match run_helper(helper, &server_url(&host)) {
                Ok(Some(c)) => return Some(c),
                Ok(None) => {}
                Err(e) => tracing::warn!("docker-credential-{helper}: {e}"),
            }
        }
        self.auths.get(&host).cloned()
    }
}

fn default_path_from(docker_config: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(d), _) if !d.as_os_str().is_empty() => Some(d.join("config.json")),
        (_, Some(h)) if !h.as_os_str().is_empty() => Some(h.join(".docker").join("config.json")),
        _ => None,
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://h:5000/v2/` → `h:5000`.
fn host_of_key(key: &str) -> String {
    let k = key.trim();
    let k = k.split_once("://").map_or(k, |(_, rest)| rest);
    let k = k.split('/').next().unwrap_or(k);
    canonical_host(k)
}

/// The bundle crate's host normalisation (Docker Hub's aliases are `docker.io`), so
/// credentials are found under the same name the image reference uses; a key that is
/// not a valid host is kept lowercased (it can then match nothing).
fn canonical_host(host: &str) -> String {
    normalise_host(host).unwrap_or_else(|_| host.to_ascii_lowercase())
}

/// The server URL credential helpers are keyed by (what `docker login` stored).
fn server_url(host: &str) -> String {
    if host == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-<helper> get`. A helper that knows nothing exits non-zero
/// ("credentials not found"): that is `Ok(None)`, not an error.
fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>, String> {
    let bin = format!("docker-credential-{helper}");
    let mut child = Command::new(&bin)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Ok(None);
    }
    let reply: HelperReply =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad reply from {bin}: {e}"))?;
    if reply.username == "<token>" {
        return Err("identity tokens are not supported yet".into());
    }
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DockerConfig {
        DockerConfig::parse(text, Path::new("/t/config.json")).unwrap()
    }

    #[test]
    fn reads_auth_and_username_password_forms() {
        // "alice:s3cr:et" — the password may itself contain ':'.
        let c = parse(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
                "127.0.0.1:5000": {"username": "bob", "password": "pw"},
                "http://reg.local:8080/v2/": {"auth": "Ym9iOnB3"},
                "empty.io": {}
            }}"#,
        );
        let hub = c.credentials_for("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("alice", "s3cr:et")
        );
        assert_eq!(c.credentials_for("index.docker.io"), Some(hub));
        assert_eq!(c.credentials_for("127.0.0.1:5000").unwrap().username, "bob");
        assert_eq!(c.credentials_for("reg.local:8080").unwrap().password, "pw");
        assert_eq!(c.credentials_for("empty.io"), None);
        assert_eq!(c.credentials_for("quay.io"), None);
        assert_eq!(c.path(), Some(Path::new("/t/config.json")));
    }

    #[test]
    fn malformed_config_is_an_error_naming_the_file() {
        let e = DockerConfig::parse("{", Path::new("/t/c.json")).unwrap_err();
        assert!(e.to_string().starts_with("docker config /t/c.json"), "{e}");
        let e =
            DockerConfig::parse(r#"{"auths":{"h":{"auth":"!!"}}}"#, Path::new("/c")).unwrap_err();
        assert!(e.to_string().contains("auths.h.auth is not base64"), "{e}");
        let e = DockerConfig::parse(
            r#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#,
            Path::new("/c"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not user:password"), "{e}");
    }

    #[test]
    fn missing_file_is_anonymous() {
        let c = DockerConfig::load(Some(Path::new("/nonexistent/ferry/config.json"))).unwrap();
        assert_eq!(c.credentials_for("docker.io"), None);
    }

    #[test]
    fn missing_helper_falls_back_to_inline_auths() {
        let c = parse(
            r#"{"credsStore": "ferry-test-no-such-helper",
                "auths": {"h:1": {"username": "u", "password": "p"}}}"#,
        );
        assert_eq!(c.credentials_for("h:1").unwrap().username, "u");
    }

    #[test]
    fn default_path_follows_docker() {
        assert_eq!(
            default_path_from(Some("/d".into()), Some("/home/u".into())),
            Some(PathBuf::from("/d/config.json"))
        );
        assert_eq!(
            default_path_from(None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(default_path_from(None, None), None);
    }

    #[test]
    fn basic_header_and_redacted_debug() {
        let c = Credentials {
            username: "bob".into(),
            password: "pw".into(),
        };
        assert_eq!(c.basic_header(), "Basic Ym9iOnB3");
        assert!(!format!("{c:?}").contains("pw"));
    }
}
