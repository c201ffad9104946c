//! Repository-name syntax: registry hosts, containerd's `?ns=`, Docker Hub's `library/`.
//!
//! ferry never rewrites an image name, so a request must be mapped back to the
//! `(host, repository)` the image was bundled under. The host comes from `?ns=` (sent by
//! containerd for a `hosts.toml` mirror), from the first path component when it looks like
//! a host (`/v2/quay.io/library/x/…`, for clients such as skopeo), or, failing both, from
//! the only host that carries the repository. The rules are Docker's: a first component
//! containing `.` or `:`, or equal to `localhost`, is a host.

use ferry_bundle::reference::DEFAULT_HOST;

/// The spec's limit on `<name>` (host included in the full-path form).
pub const MAX_NAME_LEN: usize = 255;

/// Whether a first path component names a registry host rather than a namespace.
pub fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Validates and normalises a registry host (`host[:port]`, `[v6]:port`), folding Docker
/// Hub's aliases into `docker.io`. `None` for anything that is not a host.
pub fn normalise_host(host: &str) -> Option<String> {
    if host.is_empty() || host.len() > 253 + 6 {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':')?)),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host.as_str()), None),
        }
    };
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !name.split('.').all(label_ok) {
            return None;
        }
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_HOST.to_string(),
        _ => host,
    })
}

/// Docker Hub's official images live under `library/`: `docker.io` + `nginx` is
/// `library/nginx`, as `docker pull` normalises it.
pub fn hub_repository(host: &str, repository: &str) -> String {
    if host == DEFAULT_HOST && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    }
}

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
    fn hosts_are_validated_and_hub_aliases_folded() {
        assert_eq!(normalise_host("quay.io").as_deref(), Some("quay.io"));
        assert_eq!(
            normalise_host("Registry-1.Docker.io").as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            normalise_host("index.docker.io").as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            normalise_host("localhost:5000").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(normalise_host("[::1]:5000").as_deref(), Some("[::1]:5000"));
        for bad in [
            "", "a..b", "-a.io", "a.io:", "a.io:x", "a.io/b", "a b", "[zz]", "x:123456",
        ] {
            assert_eq!(normalise_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hub_gets_library() {
        assert_eq!(hub_repository("docker.io", "app"), "library/app");
        assert_eq!(hub_repository("docker.io", "a/b"), "a/b");
        assert_eq!(hub_repository("quay.io", "app"), "app");
    }

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
