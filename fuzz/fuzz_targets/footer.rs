//! The footer: the last 192 bytes of a file, decoded before anything else is trusted.
//!
//! Input: the file's length (8 bytes, little-endian), a flag byte, then the footer bytes.
//! With the flag's low bit set the self-checksum is re-sealed, so that mutations reach the
//! field checks behind it. Oracle: what decodes re-encodes to the same bytes and its
//! ranges fit the file.
#![no_main]

use ferry_bundle::footer::{Footer, FOOTER_LEN};
use ferry_bundle::Sha256Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let file_len = u64::from_le_bytes(data[..8].try_into().unwrap());
    let mut footer = data[9..].to_vec();
    if data[8] & 1 == 1 && footer.len() == FOOTER_LEN {
        let sum = Sha256Digest::of(&footer[..160]);
        footer[160..].copy_from_slice(&sum.0);
    }
    if let Ok(f) = Footer::decode(&footer, file_len) {
        assert_eq!(f.encode().to_vec(), footer);
        assert_eq!(
            f.payload_offset.checked_add(f.payload_len),
            file_len.checked_sub(FOOTER_LEN as u64)
        );
        assert!(f.manifest_offset.checked_add(f.manifest_len).unwrap() <= f.payload_len);
    }
});
