//! sha256 digests and the hashing adapters used to check bytes while they stream past.
//! `sha2` picks the SHA-NI code path at run time where the CPU has it.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A sha256 digest. Displays (and debug-prints) as `sha256:<hex>`, the form OCI and
/// people read; [`Sha256Digest::hex`] gives the bare 64 hex characters used in blob
/// file names and in bundle.json's entry table. Serde uses `sha256:<hex>`; fields that
/// format v1 stores as bare hex use [`hex_serde`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

/// Why a string is not a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} is not sha256:<64 lowercase hex> (only sha256 is supported)")]
    NotSha256(String),
    #[error("{0:?} is not 64 lowercase hex characters")]
    BadHex(String),
}

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }
    /// The bare 64 lowercase hex characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex characters (lowercase, as OCI requires).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Sha256Digest(out))
    }
    /// Parses `sha256:<64 lowercase hex>`; any other algorithm is refused.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        s.strip_prefix("sha256:")
            .and_then(Self::from_hex)
            .ok_or_else(|| DigestError::NotSha256(s.to_string()))
    }
}

impl std::str::FromStr for Sha256Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256Digest::parse(s)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}
impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_as_string!(Sha256Digest);

/// `#[serde(with = "ferry_bundle::digest::hex_serde")]`: a [`Sha256Digest`] stored as
/// bare hex. bundle.json format v1 writes entry and stub checksums that way; the field's
/// type changes, its bytes on disk do not.
pub mod hex_serde {
    use super::{DigestError, Sha256Digest};

    pub fn serialize<S: serde::Serializer>(d: &Sha256Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.hex())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Sha256Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Sha256Digest::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(DigestError::BadHex(s.into_owned())))
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it: the builder wraps its output
/// in one so that the payload's sha256 and every entry's offset come for free.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn position(&self) -> u64 {
        self.count
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest(self.hasher.finalize().into()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a whole reader; returns digest and length.
pub fn hash_reader(mut r: impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((Sha256Digest(h.finalize().into()), n_total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn displays_and_parses_the_oci_form() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(d.to_string(), format!("sha256:{ABC}"));
        assert_eq!(format!("{d:?}"), format!("sha256:{ABC}"));
        assert_eq!(d.hex(), ABC);
        assert_eq!(Sha256Digest::parse(&d.to_string()), Ok(d));
        assert_eq!(d.to_string().parse::<Sha256Digest>(), Ok(d));
        assert!(Sha256Digest::parse("sha512:00").is_err());
        assert!(
            Sha256Digest::parse(ABC).is_err(),
            "bare hex is not the OCI form"
        );
        assert_eq!(Sha256Digest::from_hex(&d.hex().to_uppercase()), None);
        assert_eq!(Sha256Digest::from_hex("../etc"), None);
    }

    #[test]
    fn serde_default_is_prefixed_and_hex_serde_is_bare() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Both {
            digest: Sha256Digest,
            #[serde(with = "hex_serde")]
            sha256: Sha256Digest,
        }
        let d = Sha256Digest::of(b"abc");
        let json = serde_json::to_string(&Both {
            digest: d,
            sha256: d,
        })
        .unwrap();
        assert_eq!(
            json,
            format!(r#"{{"digest":"sha256:{ABC}","sha256":"{ABC}"}}"#)
        );
        let back: Both = serde_json::from_str(&json).unwrap();
        assert_eq!(back.digest, d);
        assert_eq!(back.sha256, d);
        // Each form refuses the other.
        let swapped = format!(r#"{{"digest":"{ABC}","sha256":"{ABC}"}}"#);
        assert!(serde_json::from_str::<Both>(&swapped).is_err());
        let swapped = format!(r#"{{"digest":"sha256:{ABC}","sha256":"sha256:{ABC}"}}"#);
        assert!(serde_json::from_str::<Both>(&swapped).is_err());
    }

    #[test]
    fn hashing_reader_matches_one_shot() {
        let data = vec![7u8; 3_000_000];
        let mut r = HashingReader::new(&data[..]);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Sha256Digest::of(&data));
    }
}
