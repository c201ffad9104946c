//! The fixed-size footer: the last [`FOOTER_LEN`] bytes of every bundle.
//!
//! The installer finds its payload by reading the end of `/proc/self/exe`, so the footer
//! must be findable without any other knowledge. It is self-checking (its last 32 bytes are
//! the sha256 of the rest), so a flipped byte *anywhere* in it — even in reserved space —
//! is reported as a damaged footer rather than as a confusing downstream error.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `FERRYBDL` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | footer length (192) |
//! | 16 | 8 | payload offset (absolute, bytes from start of file) |
//! | 24 | 8 | payload length |
//! | 32 | 32 | sha256 of the payload |
//! | 64 | 8 | bundle.json data offset, relative to the payload start |
//! | 72 | 8 | bundle.json length |
//! | 80 | 32 | sha256 of bundle.json |
//! | 112 | 32 | sha256 of the gaps: every payload byte outside entry data, in order |
//! | 144 | 16 | reserved, zero |
//! | 160 | 32 | sha256 of footer bytes 0..160 |
//!
//! Why a gaps hash: entries are hashed for themselves (bundle.json pins them), and the
//! gaps (tar headers, padding, end marker) by this one hash, so every byte has one range
//! hash that names it when it is damaged. The payload sha256 is the bundle's identity and
//! is recomputed by `--check` as well (see `verify`).

use crate::digest::Sha256Digest;

pub const MAGIC: &[u8; 8] = b"FERRYBDL";
pub const FORMAT_VERSION: u32 = 1;
pub const FOOTER_LEN: usize = 192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub version: u32,
    pub payload_offset: u64,
    pub payload_len: u64,
    pub payload_sha256: Sha256Digest,
    pub manifest_offset: u64,
    pub manifest_len: u64,
    pub manifest_sha256: Sha256Digest,
    pub gaps_sha256: Sha256Digest,
}

/// Why a footer could not be decoded; the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FooterProblem {
    /// No magic: not a bundle, or truncated.
    Missing(String),
    /// Magic present but the footer is internally inconsistent.
    Damaged(String),
    /// A newer (or older) format.
    Version(u32),
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(FOOTER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..64].copy_from_slice(&self.payload_sha256.0);
        b[64..72].copy_from_slice(&self.manifest_offset.to_le_bytes());
        b[72..80].copy_from_slice(&self.manifest_len.to_le_bytes());
        b[80..112].copy_from_slice(&self.manifest_sha256.0);
        b[112..144].copy_from_slice(&self.gaps_sha256.0);
        let check = Sha256Digest::of(&b[0..160]);
        b[160..192].copy_from_slice(&check.0);
        b
    }

    /// Decodes and validates a footer read from the end of a file of `file_len` bytes.
    pub fn decode(b: &[u8], file_len: u64) -> Result<Footer, FooterProblem> {
        if b.len() != FOOTER_LEN {
            return Err(FooterProblem::Missing(format!(
                "file is only {file_len} bytes"
            )));
        }
        if &b[0..8] != MAGIC {
            return Err(FooterProblem::Missing("magic FERRYBDL not found".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let digest_at = |o: usize| Sha256Digest(b[o..o + 32].try_into().unwrap());
        let check = Sha256Digest::of(&b[0..160]);
        if check != digest_at(160) {
            return Err(FooterProblem::Damaged(
                "its own checksum does not match".into(),
            ));
        }
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(FooterProblem::Version(version));
        }
        if u32_at(12) as usize != FOOTER_LEN {
            return Err(FooterProblem::Damaged(format!(
                "footer length field is {}, expected {FOOTER_LEN}",
                u32_at(12)
            )));
        }
        if b[144..160].iter().any(|&x| x != 0) {
            return Err(FooterProblem::Damaged("reserved bytes are not zero".into()));
        }
        let f = Footer {
            version,
            payload_offset: u64_at(16),
            payload_len: u64_at(24),
            payload_sha256: digest_at(32),
            manifest_offset: u64_at(64),
            manifest_len: u64_at(72),
            manifest_sha256: digest_at(80),
            gaps_sha256: digest_at(112),
        };
        // `file_len` comes from the caller: a length shorter than a footer is no file this
        // footer can end (the fuzzer found the subtraction below underflowing).
        let footer_start = file_len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| FooterProblem::Missing(format!("file is only {file_len} bytes")))?;
        let payload_end = f.payload_offset.checked_add(f.payload_len);
        if payload_end != Some(footer_start) {
            return Err(FooterProblem::Damaged(format!(
                "payload offset {} + length {} does not end where the footer starts (byte {footer_start}); the file was truncated or extended",
                f.payload_offset,
                f.payload_len,
            )));
        }
        let manifest_end = f.manifest_offset.checked_add(f.manifest_len);
        if manifest_end.is_none_or(|e| e > f.payload_len) {
            return Err(FooterProblem::Damaged(format!(
                "bundle.json range {}+{} lies outside the payload ({} bytes)",
                f.manifest_offset, f.manifest_len, f.payload_len
            )));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Footer {
        Footer {
            version: FORMAT_VERSION,
            payload_offset: 1000,
            payload_len: 4096,
            payload_sha256: Sha256Digest::of(b"p"),
            manifest_offset: 2048,
            manifest_len: 100,
            manifest_sha256: Sha256Digest::of(b"m"),
            gaps_sha256: Sha256Digest::of(b"g"),
        }
    }

    #[test]
    fn round_trips() {
        let f = sample();
        let b = f.encode();
        assert_eq!(Footer::decode(&b, 1000 + 4096 + 192), Ok(f));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let b = sample().encode();
        for i in 0..FOOTER_LEN {
            let mut c = b;
            c[i] ^= 0x01;
            assert!(
                Footer::decode(&c, 1000 + 4096 + 192).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    /// Found by `fuzz/fuzz_targets/footer.rs`: a file length shorter than the footer
    /// underflowed instead of being refused.
    #[test]
    fn a_file_shorter_than_a_footer_is_refused() {
        let b = sample().encode();
        for len in [0, 3, FOOTER_LEN as u64 - 1] {
            assert!(matches!(
                Footer::decode(&b, len),
                Err(FooterProblem::Missing(_))
            ));
        }
    }

    #[test]
    fn offsets_must_fit_the_file() {
        let b = sample().encode();
        assert!(matches!(
            Footer::decode(&b, 1000 + 4096 + 192 - 1),
            Err(FooterProblem::Damaged(_))
        ));
        let mut f = sample();
        f.manifest_offset = 4090;
        assert!(matches!(
            Footer::decode(&f.encode(), 1000 + 4096 + 192),
            Err(FooterProblem::Damaged(_))
        ));
        let mut f = sample();
        f.payload_offset = u64::MAX;
        assert!(Footer::decode(&f.encode(), 1000 + 4096 + 192).is_err());
    }
}
