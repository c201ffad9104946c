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
//! | 8 | 4 | format version (3; 1 and 2 are still read) |
//! | 12 | 4 | footer length (192) |
//! | 16 | 8 | payload offset (absolute, bytes from start of file) |
//! | 24 | 8 | payload length |
//! | 32 | 32 | the payload's identity (v3: [`derived_identity`]; v1, v2: sha256 of the payload) |
//! | 64 | 8 | bundle.json data offset, relative to the payload start |
//! | 72 | 8 | bundle.json length |
//! | 80 | 32 | sha256 of bundle.json |
//! | 112 | 32 | sha256 of the gaps: every payload byte outside entry data, in order |
//! | 144 | 8 | v2: payload offset of the signature's data (`bundle.json.sig`); 0 = unsigned |
//! | 152 | 4 | v2: signature length; 0 = unsigned |
//! | 156 | 4 | v2: number of rows in the part table before the footer; 0 = none |
//! | 160 | 32 | sha256 of footer bytes 0..160 |
//!
//! In format 1 bytes 144..160 are reserved and zero. Format 2 uses them and keeps the
//! footer 192 bytes with the magic in the same place and the self-checksum over the same
//! bytes, so a format-1 installer reads a v2 footer far enough to say "unsupported bundle
//! format version 2" instead of "truncated" or "damaged". Between the payload and the
//! footer a split bundle has its part table ([`crate::parts`]).
//!
//! Why a gaps hash: entries are hashed for themselves (bundle.json pins them), and the
//! gaps (tar headers, padding, end marker) by this one hash, so every byte has one range
//! hash that names it when it is damaged.
//!
//! Why a derived identity (format 3): the payload's identity (install journals it, a join
//! and an upgrade compare it, a delta names its base by it) used to be the sha256 of every
//! payload byte. Since every payload byte already lies in exactly one hashed range (an
//! entry, pinned by bundle.json, which the manifest hash pins; a gap; or the signature),
//! a hash over the manifest hash, the gaps hash and the signature's bytes identifies the
//! payload just as firmly, while every byte is hashed once instead of twice: on a 2-core
//! machine the second sha256 stream was what kept staging and `--check` from the speed
//! of a plain copy (docs/benchmarks.md). `--check` recomputes it from the hashes it has
//! just verified, so a footer carrying another bundle's identity is still refused. Format
//! 1 and 2 bundles keep the whole-payload hash, and `verify` recomputes that for them.

use crate::digest::Sha256Digest;
use sha2::{Digest as _, Sha256};

pub const MAGIC: &[u8; 8] = b"FERRYBDL";
/// The version this code writes.
pub const FORMAT_VERSION: u32 = 3;
/// The first version whose identity is [`derived_identity`].
pub const DERIVED_IDENTITY_VERSION: u32 = 3;
/// The oldest version this code reads (v1 bundles are staged on hosts being upgraded).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
pub const FOOTER_LEN: usize = 192;
/// Largest signature accepted: a DER ECDSA P-256 signature is at most 72 bytes.
pub const MAX_SIGNATURE_LEN: u32 = 1024;

/// Where the signature's bytes lie: `len` bytes at `offset` from the payload start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureRange {
    pub offset: u64,
    pub len: u32,
}

impl SignatureRange {
    /// One past its last byte; saturates (a forged offset near `u64::MAX` is then simply
    /// outside the payload — found by the footer fuzz target, which overflowed here).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len as u64)
    }
}

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
    /// v2: the signature of bundle.json (the tar entry `bundle.json.sig`), if signed.
    pub signature: Option<SignatureRange>,
    /// v2: rows of the part table in front of the footer (0: the bundle was not split).
    pub part_count: u32,
}

/// The identity of a format-3 payload: the sha256 of a domain tag, bundle.json's sha256,
/// the gaps sha256 and the signature's bytes (empty when unsigned). See the module docs.
pub fn derived_identity(
    manifest_sha256: &Sha256Digest,
    gaps_sha256: &Sha256Digest,
    signature: &[u8],
) -> Sha256Digest {
    let mut h = Sha256::new();
    h.update(b"ferry payload identity v3\0");
    h.update(manifest_sha256.0);
    h.update(gaps_sha256.0);
    h.update((signature.len() as u64).to_le_bytes());
    h.update(signature);
    Sha256Digest(h.finalize().into())
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
    /// True if `payload_sha256` is [`derived_identity`] (format 3 on), false if it is the
    /// sha256 of every payload byte (formats 1 and 2).
    pub fn identity_is_derived(&self) -> bool {
        self.version >= DERIVED_IDENTITY_VERSION
    }

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
        if let Some(sig) = self.signature {
            b[144..152].copy_from_slice(&sig.offset.to_le_bytes());
            b[152..156].copy_from_slice(&sig.len.to_le_bytes());
        }
        b[156..160].copy_from_slice(&self.part_count.to_le_bytes());
        let check = Sha256Digest::of(&b[0..160]);
        b[160..192].copy_from_slice(&check.0);
        b
    }

    /// Bytes between the payload's end and the footer: the part table, if any.
    pub fn trailer_len(&self) -> u64 {
        crate::parts::PartTable::encoded_len(self.part_count)
    }

    /// Decodes and validates a footer read from the end of a bundle of `file_len` bytes
    /// (all parts together, for a split bundle).
    pub fn decode(b: &[u8], file_len: u64) -> Result<Footer, FooterProblem> {
        if b.len() != FOOTER_LEN {
            return Err(FooterProblem::Missing(format!(
                "file is only {file_len} bytes"
            )));
        }
        let f = Footer::decode_fields(b)?;
        // `file_len` comes from the caller: a length shorter than a footer is no file this
        // footer can end (the fuzzer found the subtraction below underflowing).
        let footer_start = file_len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| FooterProblem::Missing(format!("file is only {file_len} bytes")))?;
        let payload_end = f.payload_offset.checked_add(f.payload_len);
        let trailer_start = footer_start.checked_sub(f.trailer_len());
        if payload_end.is_none() || payload_end != trailer_start {
            let what = if f.part_count > 0 {
                format!(
                    "where the part table starts (byte {})",
                    trailer_start.map_or("-".into(), |t| t.to_string())
                )
            } else {
                format!("where the footer starts (byte {footer_start})")
            };
            return Err(FooterProblem::Damaged(format!(
                "payload offset {} + length {} does not end {what}; the file was truncated or extended",
                f.payload_offset, f.payload_len,
            )));
        }
        Ok(f)
    }

    /// The bundle length this footer describes (`None` if it overflows).
    pub fn implied_len(&self) -> Option<u64> {
        self.payload_offset
            .checked_add(self.payload_len)?
            .checked_add(self.trailer_len())?
            .checked_add(FOOTER_LEN as u64)
    }

    /// Decodes and checks a footer's own fields (magic, checksum, version, ranges), but not
    /// that it fits the file it ends: a split bundle with a short part still names its
    /// parts' sizes.
    pub fn decode_fields(b: &[u8]) -> Result<Footer, FooterProblem> {
        if b.len() != FOOTER_LEN {
            return Err(FooterProblem::Missing(format!(
                "a footer is {FOOTER_LEN} bytes, not {}",
                b.len()
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
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(FooterProblem::Version(version));
        }
        if u32_at(12) as usize != FOOTER_LEN {
            return Err(FooterProblem::Damaged(format!(
                "footer length field is {}, expected {FOOTER_LEN}",
                u32_at(12)
            )));
        }
        if version == 1 && b[144..160].iter().any(|&x| x != 0) {
            return Err(FooterProblem::Damaged("reserved bytes are not zero".into()));
        }
        let (sig_offset, sig_len) = (u64_at(144), u32_at(152));
        let signature = match (sig_offset, sig_len) {
            (0, 0) => None,
            (offset, len) if offset > 0 && len > 0 && len <= MAX_SIGNATURE_LEN => {
                Some(SignatureRange { offset, len })
            }
            (offset, len) => {
                return Err(FooterProblem::Damaged(format!(
                    "signature range {offset}+{len} is not a signature (1 to {MAX_SIGNATURE_LEN} bytes at a non-zero offset)"
                )))
            }
        };
        let part_count = u32_at(156);
        if part_count > crate::parts::MAX_PARTS {
            return Err(FooterProblem::Damaged(format!(
                "it names {part_count} parts; at most {} are allowed",
                crate::parts::MAX_PARTS
            )));
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
            signature,
            part_count,
        };
        let manifest_end = f.manifest_offset.checked_add(f.manifest_len);
        if manifest_end.is_none_or(|e| e > f.payload_len) {
            return Err(FooterProblem::Damaged(format!(
                "bundle.json range {}+{} lies outside the payload ({} bytes)",
                f.manifest_offset, f.manifest_len, f.payload_len
            )));
        }
        if let Some(sig) = f.signature {
            if sig.offset < manifest_end.unwrap_or(u64::MAX) || sig.end() > f.payload_len {
                return Err(FooterProblem::Damaged(format!(
                    "signature range {}+{} is not between bundle.json's end and the payload's end ({} bytes)",
                    sig.offset, sig.len, f.payload_len
                )));
            }
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
            signature: None,
            part_count: 0,
        }
    }

    #[test]
    fn round_trips() {
        let f = sample();
        let b = f.encode();
        assert_eq!(Footer::decode(&b, 1000 + 4096 + 192), Ok(f));
    }

    #[test]
    fn v2_fields_round_trip_and_v1_footers_still_read() {
        let mut f = sample();
        f.signature = Some(SignatureRange {
            offset: 2048 + 100 + 12 + 512,
            len: 71,
        });
        f.part_count = 3;
        let len = 1000 + 4096 + f.trailer_len() + 192;
        assert_eq!(Footer::decode(&f.encode(), len), Ok(f.clone()));
        // Without room for the part table the footer does not fit the file.
        assert!(Footer::decode(&f.encode(), 1000 + 4096 + 192).is_err());
        let mut v1 = sample();
        v1.version = 1;
        assert_eq!(Footer::decode(&v1.encode(), 1000 + 4096 + 192), Ok(v1));
    }

    #[test]
    fn v2_footers_still_read_with_a_whole_payload_identity() {
        let mut v2 = sample();
        v2.version = 2;
        assert_eq!(
            Footer::decode(&v2.encode(), 1000 + 4096 + 192),
            Ok(v2.clone())
        );
        assert!(!v2.identity_is_derived());
        assert!(sample().identity_is_derived());
    }

    #[test]
    fn the_derived_identity_changes_with_each_of_its_inputs() {
        let (m, g) = (Sha256Digest::of(b"m"), Sha256Digest::of(b"g"));
        let base = derived_identity(&m, &g, b"");
        assert_eq!(base, derived_identity(&m, &g, b""));
        assert_ne!(base, derived_identity(&g, &m, b""));
        assert_ne!(base, derived_identity(&m, &Sha256Digest::of(b"h"), b""));
        assert_ne!(base, derived_identity(&m, &g, b"sig"));
        // Not the plain hash of anything the payload holds.
        assert_ne!(base, Sha256Digest::of(b""));
    }

    #[test]
    fn newer_versions_are_refused_as_versions() {
        let mut f = sample();
        f.version = FORMAT_VERSION + 1;
        assert_eq!(
            Footer::decode(&f.encode(), 1000 + 4096 + 192),
            Err(FooterProblem::Version(FORMAT_VERSION + 1))
        );
    }

    #[test]
    fn signature_must_follow_bundle_json_inside_the_payload() {
        // The last one was found by the footer fuzz target: offset + len overflowed.
        for (offset, len) in [
            (10, 64),
            (4090, 64),
            (2200, 0),
            (0, 64),
            (2200, 5000),
            (u64::MAX - 10, 64),
        ] {
            let mut f = sample();
            f.signature = Some(SignatureRange { offset, len });
            assert!(
                Footer::decode(&f.encode(), 1000 + 4096 + 192).is_err(),
                "{offset}+{len}"
            );
        }
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
