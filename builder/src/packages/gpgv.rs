//! Checking a repository's `InRelease` signature with `gpgv`.
//!
//! Why `gpgv` and not an OpenPGP crate: `gpgv` is the verifier apt itself uses (apt
//! depends on it, so every Debian or Ubuntu builder has it) — the trust decision is the
//! one the operator's own apt makes, against the same keyrings. The Rust
//! implementations (`sequoia-openpgp`, `pgp`) would each add some fifty crates of
//! cryptography to the builder's cold build on these 2-core machines for a check that
//! runs once per repository per build. What `gpgv` is asked is narrow: verify a
//! clearsigned file against one keyring and write out *only the signed text*, so that
//! nothing outside the signature is ever parsed.
//!
//! A signature counts when `gpgv` reports `VALIDSIG` for it; any `BADSIG` fails the file
//! whatever else it says (apt's rule too). Archive files are often signed by several
//! keys, not all of which a keyring has: those missing keys (`NO_PUBKEY`) are fine as long
//! as one good signature remains.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "gpgv is needed to check {what}'s signature and could not be run ({source}); \
         install it (apt-get install gpgv, or gnupg on other systems)"
    )]
    NoGpgv {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring {keyring}: {reason}")]
    Keyring { keyring: PathBuf, reason: String },
    #[error(
        "{what}: BAD signature (key {key}): the file was changed after it was signed; refusing it"
    )]
    Bad { what: String, key: String },
    #[error(
        "{what}: no good signature by a key in {keyring} ({detail}); \
         give the repository's own keyring with KEYRING <file> on the APT line"
    )]
    Untrusted {
        what: String,
        keyring: PathBuf,
        detail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a verified clearsigned file says.
#[derive(Debug)]
pub struct Verified {
    /// The signed text alone (dash-escaping undone).
    pub text: Vec<u8>,
    /// Fingerprints of the keys whose signatures are good.
    pub signers: Vec<String>,
}

/// Verifies the clearsigned file `signed` against `keyring` (binary or ASCII-armored).
pub fn verify(signed: &Path, keyring: &Path, what: &str) -> Result<Verified, SignatureError> {
    let io = |source| SignatureError::Io {
        what: what.to_string(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let keyring_file = binary_keyring(keyring, dir.path())?;
    let out_path = dir.path().join("signed.txt");
    let out = Command::new(std::env::var_os("FERRY_GPGV").unwrap_or_else(|| "gpgv".into()))
        .arg("--status-fd")
        .arg("1")
        .arg("--keyring")
        .arg(&keyring_file)
        .arg("--output")
        .arg(&out_path)
        .arg(signed)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| SignatureError::NoGpgv {
            what: what.to_string(),
            source,
        })?;
    let status = String::from_utf8_lossy(&out.stdout);
    let mut signers = Vec::new();
    let mut missing = Vec::new();
    for l in status.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.get(1).copied() {
            Some("BADSIG") => {
                return Err(SignatureError::Bad {
                    what: what.to_string(),
                    key: w.get(2).unwrap_or(&"?").to_string(),
                })
            }
            Some("VALIDSIG") => signers.push(w.get(2).unwrap_or(&"?").to_string()),
            Some("NO_PUBKEY") | Some("EXPKEYSIG") | Some("REVKEYSIG") => {
                missing.push(format!("{} {}", w[1], w.get(2).unwrap_or(&"?")))
            }
            _ => {}
        }
    }
    if signers.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SignatureError::Untrusted {
            what: what.to_string(),
            keyring: keyring.to_path_buf(),
            detail: if missing.is_empty() {
                stderr
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("not signed")
                    .to_string()
            } else {
                missing.join(", ")
            },
        });
    }
    let text = std::fs::read(&out_path).map_err(io)?;
    Ok(Verified { text, signers })
}

/// `gpgv` reads binary keyrings only; an armored one (`.asc`) is de-armored into `dir`.
fn binary_keyring(keyring: &Path, dir: &Path) -> Result<PathBuf, SignatureError> {
    let err = |reason: String| SignatureError::Keyring {
        keyring: keyring.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(keyring).map_err(|e| err(e.to_string()))?;
    if !bytes.starts_with(b"-----BEGIN PGP") {
        return Ok(keyring.to_path_buf());
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    let mut in_block = false;
    let mut in_body = false;
    let mut b64 = String::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK") {
            in_block = true;
            in_body = false;
            b64.clear();
        } else if l.starts_with("-----END PGP") && in_block {
            use base64::Engine;
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(&b64)
                    .map_err(|e| err(format!("bad armor: {e}")))?,
            );
            in_block = false;
        } else if in_block && !in_body {
            // Armor headers end at the first blank line (or there are none).
            if l.is_empty() {
                in_body = true;
            } else if !l.contains(':') {
                in_body = true;
                b64.push_str(l);
            }
        } else if in_block && !l.starts_with('=') {
            b64.push_str(l);
        }
    }
    if out.is_empty() {
        return Err(err("no PGP PUBLIC KEY BLOCK in it".into()));
    }
    let p = dir.join("keyring.gpg");
    std::fs::write(&p, out).map_err(|e| err(e.to_string()))?;
    Ok(p)
}
