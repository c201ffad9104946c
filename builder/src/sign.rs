//! Signing keys: `ferry key generate` and the signer of `ferry build --sign`.
//!
//! Keys are ECDSA P-256 in the standard encodings every tool reads: the private key as
//! PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, mode 0600), the public key as
//! SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`). Why `ring`: it is already in
//! the builder (through rustls) and is what the installer verifies with, so no new
//! crypto crate is added anywhere; `p256`/`pkcs8` would be a second implementation of the
//! same curve. A key made by openssl (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`) works as well.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ferry_bundle::signature::{PublicKey, SignerRecord};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A private key ready to sign bundle.json.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    /// The file it came from (for messages).
    pub path: PathBuf,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key; errors name the file and say how to convert others.
    pub fn load(path: &Path) -> Result<SigningKey> {
        use rustls_pki_types::pem::PemObject;
        let pem = std::fs::read(path).with_context(|| format!("--sign {}", path.display()))?;
        let text = String::from_utf8_lossy(&pem);
        if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            bail!(
                "--sign {}: the key is encrypted; ferry needs it unencrypted (PKCS#8): \
                 openssl pkcs8 -in {0} -nocrypt -out <plain.pem>",
                path.display()
            );
        }
        if text.contains("BEGIN EC PRIVATE KEY") {
            bail!(
                "--sign {}: this is a SEC1 EC key; convert it to PKCS#8: \
                 openssl pkcs8 -topk8 -nocrypt -in {0} -out <key.pem>",
                path.display()
            );
        }
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| {
            anyhow::anyhow!(
                "--sign {}: no PKCS#8 private key (-----BEGIN PRIVATE KEY-----): {e}; \
                 make one with `ferry key generate -o <prefix>`",
                path.display()
            )
        })?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "--sign {}: not an ECDSA P-256 private key ({e}); ferry signs with P-256 only \
                 (`ferry key generate -o <prefix>`)",
                path.display()
            )
        })?;
        Ok(SigningKey {
            pair,
            rng,
            path: path.to_path_buf(),
        })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_point(self.pair.public_key().as_ref())
            .expect("ring's P-256 public key is an uncompressed point")
    }

    /// bundle.json's `signer`.
    pub fn signer_record(&self) -> SignerRecord {
        SignerRecord {
            key: self.public_key(),
        }
    }

    /// The DER ECDSA signature (SHA-256) of `message`.
    pub fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Files written by [`generate`].
pub struct GeneratedKey {
    pub private: PathBuf,
    pub public: PathBuf,
    pub key: PublicKey,
}

/// `ferry key generate -o <prefix>`: `<prefix>.key.pem` (PKCS#8, mode 0600, never
/// overwritten) and `<prefix>.pub.pem`.
pub fn generate(prefix: &Path) -> Result<GeneratedKey> {
    let with = |suffix: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let (private, public) = (with(".key.pem"), with(".pub.pem"));
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("generating a P-256 key: {e}"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| anyhow::anyhow!("reading the generated key: {e}"))?;
    let key = PublicKey::from_point(pair.public_key().as_ref())
        .expect("ring's P-256 public key is an uncompressed point");
    if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .with_context(|| {
            format!(
                "{}: a private key is never overwritten; choose another -o prefix or remove it first",
                private.display()
            )
        })?;
    f.write_all(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", private.display()))?;
    std::fs::write(&public, pem("PUBLIC KEY", key.spki_der()))
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(GeneratedKey {
        private,
        public,
        key,
    })
}

/// PEM: base64 in 64-character lines between the label's BEGIN and END lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_keys_sign_and_verify_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(&dir.path().join("keys/vendor")).unwrap();
        assert_eq!(
            std::fs::metadata(&g.private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k = SigningKey::load(&g.private).unwrap();
        assert_eq!(k.public_key(), g.key);
        let pubkey = PublicKey::from_pem(&std::fs::read(&g.public).unwrap()).unwrap();
        assert_eq!(pubkey, g.key);
        let sig = k.sign(b"bundle.json").unwrap();
        assert!(pubkey.verifies(b"bundle.json", &sig));
        let e = generate(&dir.path().join("keys/vendor")).err().unwrap();
        assert!(format!("{e:#}").contains("never overwritten"), "{e:#}");
    }

    #[test]
    fn other_key_forms_are_refused_with_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(
            &p,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = format!("{:#}", SigningKey::load(&p).err().unwrap());
        assert!(e.contains("openssl pkcs8 -topk8"), "{e}");
        std::fs::write(&p, pem("PUBLIC KEY", b"x")).unwrap();
        let e = format!("{:#}", SigningKey::load(&p).err().unwrap());
        assert!(e.contains("ferry key generate"), "{e}");
    }
}
