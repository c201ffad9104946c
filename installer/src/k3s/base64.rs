//! Standard base64 (RFC 4648 §4, with `=` padding), encode only.
//!
//! A HelmChart's `spec.chartContent` is the chart archive in base64. That is the installer's
//! only use of base64, and twenty lines do not justify another crate in a binary whose size
//! is gated; the tests check it against RFC 4648's vectors and against the `base64` crate.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64 with padding, on one line.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;
    use base64::Engine;

    #[test]
    fn rfc4648_vectors() {
        for (plain, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), want, "{plain:?}");
        }
    }

    #[test]
    fn agrees_with_the_base64_crate_on_every_byte_and_length() {
        let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..data.len() {
            let mine = encode(&data[..len]);
            assert_eq!(
                mine,
                base64::engine::general_purpose::STANDARD.encode(&data[..len])
            );
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(&mine)
                    .unwrap(),
                &data[..len]
            );
        }
    }
}
