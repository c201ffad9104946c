//! Signed bundles: who built this bundle, checked with nothing but the installer.
//!
//! The builder signs the exact bytes of `bundle.json` with an ECDSA P-256 key (SHA-256,
//! DER signature, the form `openssl dgst -sha256 -sign` writes). bundle.json pins the
//! installer stub's and every entry's sha256, path, size, offset and mode, so the
//! signature covers everything the installer uses. The signature is the tar entry
//! `bundle.json.sig` right after bundle.json, outside bundle.json's own entry list (it
//! cannot list its own signature), and the footer records its range. bundle.json names
//! the signer's public key (`signer.public_key`, hex of the DER SubjectPublicKeyInfo),
//! so the signature is bound to the key and a signature that was stripped or swapped is
//! seen even by an installer that trusts no key yet.
//!
//! Why P-256 and these encodings: every standard tool checks them (`openssl dgst -sha256
//! -verify pub.pem -signature bundle.json.sig bundle.json`, `cosign verify-blob --key`),
//! and the static installer verifies them with `ring`, which it already links for TLS —
//! no new code in the size-gated stub but this module. The key's *fingerprint* is
//! `sha256:` of the DER public key: `openssl pkey -pubin -in pub.pem -outform DER |
//! sha256sum` gives the same hex.

use crate::digest::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Tar entry holding the DER signature of bundle.json (not listed in `entries[]`).
pub const SIGNATURE_PATH: &str = "bundle.json.sig";
/// The one algorithm: ECDSA over P-256 with SHA-256, DER (ASN.1) signatures.
pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// DER SubjectPublicKeyInfo of a P-256 key up to its 65-byte uncompressed point:
/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P256_POINT_LEN: usize = 65;

/// Why a key was refused; the caller names the file or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no PUBLIC KEY in PEM form ({0}); expected a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) as `ferry key generate` writes to <prefix>.pub.pem")]
    NotPem(String),
    #[error("not an ECDSA P-256 public key with an uncompressed point (ferry signs with P-256 only: `ferry key generate`, or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)")]
    NotP256,
    #[error("{0:?} is not a key fingerprint: expected sha256:<64 lowercase hex> (as `--info` and `ferry key generate` print)")]
    BadFingerprint(String),
}

/// An ECDSA P-256 public key, held as its DER SubjectPublicKeyInfo.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki: Vec<u8>,
}

impl PublicKey {
    /// From a DER SubjectPublicKeyInfo; only P-256 with an uncompressed point.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if der.len() != P256_SPKI_PREFIX.len() + P256_POINT_LEN
            || der[..P256_SPKI_PREFIX.len()] != P256_SPKI_PREFIX
            || der[P256_SPKI_PREFIX.len()] != 0x04
        {
            return Err(KeyError::NotP256);
        }
        Ok(PublicKey { spki: der.to_vec() })
    }

    /// From the 65-byte uncompressed point (`04 || X || Y`), as `ring` hands it out.
    pub fn from_point(point: &[u8]) -> Result<PublicKey, KeyError> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(point);
        PublicKey::from_spki_der(&der)
    }

    /// From a `-----BEGIN PUBLIC KEY-----` PEM file's bytes.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|e| KeyError::NotPem(e.to_string()))?;
        PublicKey::from_spki_der(der.as_ref())
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// `sha256:` of the DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(Sha256Digest::of(&self.spki))
    }

    /// True if `signature` (DER ECDSA) is this key's signature of `message` (SHA-256).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let point = &self.spki[P256_SPKI_PREFIX.len()..];
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// A key's fingerprint: `sha256:<hex>` of its DER SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub Sha256Digest);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256Digest::parse(s.trim())
            .map(Fingerprint)
            .map_err(|_| KeyError::BadFingerprint(s.to_string()))
    }
}

serde_as_string!(Fingerprint);

/// bundle.json's `signer`: the key whose signature `bundle.json.sig` is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSigner", into = "RawSigner")]
pub struct SignerRecord {
    pub key: PublicKey,
}

#[derive(Serialize, Deserialize)]
struct RawSigner {
    algorithm: String,
    /// Hex of the DER SubjectPublicKeyInfo.
    public_key: String,
}

impl TryFrom<RawSigner> for SignerRecord {
    type Error = String;
    fn try_from(r: RawSigner) -> Result<Self, String> {
        if r.algorithm != ALGORITHM {
            return Err(format!(
                "signer.algorithm {:?} is not supported (only {ALGORITHM})",
                r.algorithm
            ));
        }
        let der =
            hex::decode(&r.public_key).map_err(|_| "signer.public_key is not hex".to_string())?;
        let key = PublicKey::from_spki_der(&der).map_err(|e| format!("signer.public_key: {e}"))?;
        Ok(SignerRecord { key })
    }
}

impl From<SignerRecord> for RawSigner {
    fn from(s: SignerRecord) -> RawSigner {
        RawSigner {
            algorithm: ALGORITHM.into(),
            public_key: hex::encode(s.key.spki_der()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed test key pair (PKCS#8 v1 with the public key, as ring writes it).
    pub(crate) fn test_key() -> ring::signature::EcdsaKeyPair {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap()
    }

    #[test]
    fn signatures_verify_only_with_their_key_and_message() {
        use ring::signature::KeyPair;
        let k = test_key();
        let other = test_key();
        let rng = ring::rand::SystemRandom::new();
        let sig = k.sign(&rng, b"bundle.json bytes").unwrap();
        let pk = PublicKey::from_point(k.public_key().as_ref()).unwrap();
        let wrong = PublicKey::from_point(other.public_key().as_ref()).unwrap();
        assert!(pk.verifies(b"bundle.json bytes", sig.as_ref()));
        assert!(!pk.verifies(b"bundle.json bytez", sig.as_ref()));
        assert!(!wrong.verifies(b"bundle.json bytes", sig.as_ref()));
        assert!(!pk.verifies(b"bundle.json bytes", &sig.as_ref()[1..]));
        assert_ne!(pk.fingerprint(), wrong.fingerprint());
    }

    #[test]
    fn pem_and_fingerprints_parse_and_refuse_clearly() {
        // `openssl ecparam -name prime256v1 -genkey | openssl pkey -pubout`
        let pem = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEubjS5QOOIkCyUBboB9wI4TzZ5iTR\n\
            EsQuOarpR7aWQrkArud9Xd6aVOgDMCL5RbXq/cjTCEABuUKnhbeJ42dk9Q==\n\
            -----END PUBLIC KEY-----\n";
        let k = PublicKey::from_pem(pem.as_bytes()).unwrap();
        let fp = k.fingerprint().to_string();
        // `openssl pkey -pubin -outform DER | sha256sum` of the same PEM.
        assert_eq!(
            fp,
            "sha256:0c1b0d8da9ce45c09345d018ba3dffc3d45e3e11185b65afe75865cf4019e18e"
        );
        assert_eq!(fp.parse::<Fingerprint>().unwrap(), k.fingerprint());
        assert!(matches!(
            "abc".parse::<Fingerprint>(),
            Err(KeyError::BadFingerprint(_))
        ));
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(private.as_bytes()),
            Err(KeyError::NotPem(_))
        ));
        assert_eq!(
            PublicKey::from_spki_der(&k.spki_der()[1..]),
            Err(KeyError::NotP256)
        );
        let rec = SignerRecord { key: k.clone() };
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains(ALGORITHM), "{json}");
        assert_eq!(serde_json::from_str::<SignerRecord>(&json).unwrap(), rec);
        let bad = json.replace(ALGORITHM, "rsa");
        assert!(serde_json::from_str::<SignerRecord>(&bad).is_err());
    }
}
