//! Repository-name syntax: registry hosts, containerd's `?ns=`, Docker Hub's `library/`.
//!
//! ferry never rewrites an image name, so a request must be mapped back to the
//! `(host, repository)` the image was bundled under. The host comes from `?ns=` (sent by
//! containerd for a `hosts.toml` mirror), from the first path component when it looks like
//! a host (`/v2/quay.io/library/x/…`, for clients such as skopeo), or, failing both, from
//! the only host that carries the repository. The rules are Docker's: a first component
//! containing `.` or `:`, or equal to `localhost`, is a host. What a host is, and how
//! Docker Hub's names are folded, is the bundle crate's ([`ferry_bundle::reference`]):
//! the builder, this registry and the runtime's mirror configuration must agree.

/// The spec's limit on `<name>` (host included in the full-path form).
pub const MAX_NAME_LEN: usize = 255;

/// Percent-decodes one path segment or query value; `None` on a broken escape, a
/// non-UTF-8 result or a control character. Only `%` and two hex digits is an escape
/// (`u8::from_str_radix` alone once took `%+0` for NUL). `+` stays `+` (media types
/// contain it).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .ok()
        .filter(|d| !d.chars().any(char::is_control))
}

/// Percent-encodes a query value, keeping what a registry name, tag or host needs bare.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(percent_decode("sha256%3Aab").as_deref(), Some("sha256:ab"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
        // Only `%` + two hex digits is an escape; control characters are refused.
        for bad in [
            "%+0", "%-1", "%+f", "% 1", "%0", "%00", "%0a", "%0D", "%7f", "a\tb",
        ] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
        assert_eq!(percent_decode("%41%c3%a9").as_deref(), Some("Aé"));
        assert_eq!(percent_encode("[::1]:5"), "%5B::1%5D:5");
        assert_eq!(percent_encode("library/app"), "library/app");
    }
}
