//! Does a string look like an image reference, and does a name (key, env var, flag) say
//! that its value is one?
//!
//! Why two strengths: where a name already says "image" (`--helper-image`, `SIDECAR_IMAGE`,
//! `image:`), any valid reference is worth reporting, even a bare `busybox`. A string with
//! no such context is reported only when it has the full shape `registry.host/path:tag` (or
//! `@sha256:`), because short `name:tag` strings are everywhere (RBAC names `system:x`,
//! plugin lists `git:5.10.1`, `host:port`).

use ferry_bundle::reference::{check_tag, looks_like_host, Reference};

/// Values that parse as references but are settings, not images.
const NOT_IMAGES: &[&str] = &[
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "null",
    "none",
    "nil",
    "always",
    "never",
    "ifnotpresent",
    "default",
    "latest",
    "enabled",
    "disabled",
];

/// Words that, inside an image-ish name, say the value is about images but is not one:
/// `imagePullPolicy`, `imageTag`, `IMAGE_PULL_SECRET`, `--image-gc-high-threshold`.
const NOT_IMAGE_NAMES: &[&str] = &[
    "policy",
    "secret",
    "tag",
    "digest",
    "version",
    "registry",
    "gc",
    "fs",
    "credential",
    "threshold",
    "age",
    "size",
    "count",
    "percent",
    "timeout",
    "deadline",
    "period",
    "limit",
    "prefix",
    "suffix",
    "dir",
    "path",
    "url",
    "format",
    "type",
    "hash",
    "progress",
    "parallel",
    "serial",
    "qps",
    "burst",
    // Plurals of the above that appear in real names (`imagePullSecrets`).
    "secrets",
    "policies",
    "tags",
    "digests",
    "versions",
    "registries",
    "credentials",
    "paths",
    "urls",
    "dirs",
    "types",
];

/// Splits a name into lowercase words at `_`, `-`, `.`, and lower→upper case changes.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// True when a key, env var or flag name says its value is an image (`image`,
/// `helperImage`, `CSI_ATTACHER_IMAGE`, `executor-image`, `images`).
pub fn names_image(name: &str) -> bool {
    let w = words(name);
    let has_image = w
        .iter()
        .any(|x| x == "image" || x == "images" || x.ends_with("image"));
    has_image && !w.iter().any(|x| NOT_IMAGE_NAMES.contains(&x.as_str()))
}

/// True when a name says its value is an image repository (`SCANNER_TRIVY_DB_REPOSITORY`,
/// `imageRepository`). Such values are reported only when they contain a `/`.
pub fn names_repository(name: &str) -> bool {
    let w = words(name);
    w.iter().any(|x| x == "repository" || x == "repositories")
        && !w.iter().any(|x| NOT_IMAGE_NAMES.contains(&x.as_str()))
}

/// A registry host: DNS-ish name with an optional port, or a bracketed IPv6 address.
fn is_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || n.starts_with('[') => (n, Some(p)),
        _ => (h, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if name.starts_with('[') && name.ends_with(']') {
        return name[1..name.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !name.is_empty()
        && !name.contains("..")
        && !name.starts_with(['.', '-'])
        && !name.ends_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Strips matching quotes and blanks around a value.
pub fn clean(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.trim();
        }
    }
    s
}

/// True when `s` is a valid reference that is not obviously something else. Used where the
/// context already says "image".
pub fn is_image_like(s: &str) -> bool {
    if s.is_empty()
        || s.len() > 512
        || s.contains("://")
        || s.starts_with(['-', '/', '.', ':', '@'])
        || s.chars().any(|c| c.is_whitespace())
        || NOT_IMAGES.contains(&s.to_ascii_lowercase().as_str())
    {
        return false;
    }
    if Reference::parse(s).is_err() {
        return false;
    }
    let without_digest = s.split('@').next().unwrap_or(s);
    let last_slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let name_end = without_digest[last_slash..]
        .find(':')
        .map(|i| last_slash + i)
        .unwrap_or(without_digest.len());
    let name = &without_digest[..name_end];
    // A registry host, if the first component is one, must be a real host.
    if let Some((first, _)) = name.split_once('/') {
        if (first.contains('.') || first.contains(':') || first == "localhost") && !is_host(first) {
            return false;
        }
    }
    // `1.2.3` parses as a repository; an image name has a letter in its last component.
    let last = &name[last_slash.min(name.len())..];
    last.bytes().any(|b| b.is_ascii_lowercase())
}

/// True when `s` has the full shape of a reference with no context to help: a registry host,
/// a path, and a tag or digest (`ghcr.io/org/app:v1`, `quay.io/x/y@sha256:…`).
pub fn is_full_reference(s: &str) -> bool {
    is_image_like(s) && names_host(s) && is_pinned(s)
}

/// True when the first component of `s` is a registry host (`quay.io/x`, `localhost:5000/x`).
pub fn names_host(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(first, _)| looks_like_host(first) && is_host(first))
}

/// True when `s` carries a tag or a digest (after its last `/`, so `host:port/x` is not).
pub fn is_pinned(s: &str) -> bool {
    let last = s.rsplit('/').next().unwrap_or(s);
    last.contains(':') || s.contains('@')
}

/// A bare word: a reference without registry host, tag or digest (`pilot`, `org/app`).
/// Short strings like these are everywhere, and `docker.io/library/pilot:latest` rarely
/// exists: such a candidate is carried only when its registry says it does.
pub fn is_bare(s: &str) -> bool {
    !names_host(s) && !is_pinned(s)
}

/// A registry, optionally with a path, that image names are put under: istio's
/// `hub: docker.io/istio`, `registry: quay.io`. Only a real host counts.
pub fn is_registry_prefix(s: &str) -> bool {
    let s = s.trim_end_matches('/');
    let first = s.split('/').next().unwrap_or(s);
    looks_like_host(first) && is_image_like(&format!("{s}/x")) && names_host(&format!("{s}/x"))
}

/// A tag by the distribution spec's grammar (`1.22`, `v0.75.0`).
pub fn is_tag(s: &str) -> bool {
    check_tag(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for yes in [
            "image",
            "images",
            "helperImage",
            "SIDECAR_IMAGE",
            "CSI_ATTACHER_IMAGE",
            "executor-image",
            "backing-image-manager-image",
            "imageName",
            "kubectlImage",
        ] {
            assert!(names_image(yes), "{yes}");
        }
        for no in [
            "imagePullPolicy",
            "IMAGE_PULL_POLICY",
            "imagePullSecrets",
            "imageTag",
            "image-gc-high-threshold",
            "imageRegistry",
            "imagefs.available",
            "name",
            "imaginary",
        ] {
            assert!(!names_image(no), "{no}");
        }
        assert!(names_repository("SCANNER_TRIVY_DB_REPOSITORY"));
        assert!(names_repository("imageRepository"));
        assert!(!names_repository("repoURL"));
    }

    #[test]
    fn image_like() {
        for yes in [
            "busybox",
            "docker.io/library/busybox",
            "bitnami/kubectl:1.28.5",
            "localhost:5000/x/y:1",
            "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
            "vgpu-manager",
            "jenkins/inbound-agent:3385.vf1123fb_515da_-1",
        ] {
            assert!(is_image_like(yes), "{yes}");
        }
        for no in [
            "",
            "Always",
            "true",
            "1.2.3",
            "15%",
            "https://charts.example.com/x",
            "some words here",
            "--flag",
            "/usr/bin/x",
            "${REGISTRY.x}/app:1",
            "{{ .Values.image }}",
            "a..b/c:1",
        ] {
            assert!(!is_image_like(no), "{no}");
        }
    }

    #[test]
    fn full_reference() {
        assert!(is_full_reference("ghcr.io/dapr/daprd:edge"));
        assert!(is_full_reference("localhost:5000/app@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"));
        assert!(
            !is_full_reference("mirror.gcr.io/aquasec/trivy-db"),
            "untagged"
        );
        assert!(
            !is_full_reference("bitnami/kubectl:1.28.5"),
            "no registry host"
        );
        assert!(!is_full_reference("git:5.10.1"));
        assert!(!is_full_reference("kubernetes.io/tls"));
        assert!(!is_full_reference(
            "system:serviceaccount:kube-system:default"
        ));
        assert!(!is_full_reference("10.0.0.1:8080"));
    }

    #[test]
    fn hosts_pins_and_bare_words() {
        assert!(names_host("quay.io/x/y"));
        assert!(names_host("localhost:5000/x"));
        assert!(!names_host("org/app:1"));
        assert!(!names_host("a..b/c"));
        assert!(is_pinned("org/app:1"));
        assert!(is_pinned(
            "app@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"
        ));
        assert!(!is_pinned("localhost:5000/app"), "a port is no tag");
        for bare in ["pilot", "org/app", "proxyv2"] {
            assert!(is_bare(bare), "{bare}");
        }
        for not_bare in ["pilot:1", "quay.io/x/pilot", "docker.io/library/busybox"] {
            assert!(!is_bare(not_bare), "{not_bare}");
        }
        assert!(is_registry_prefix("docker.io/istio"));
        assert!(is_registry_prefix("quay.io"));
        assert!(is_registry_prefix("localhost:5000/mirror/"));
        assert!(!is_registry_prefix("istio"));
        assert!(!is_registry_prefix("https://quay.io"));
        assert!(!is_registry_prefix(""));
        assert!(is_tag("1.22") && is_tag("v0.75.0") && !is_tag("-x") && !is_tag("a b"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean(" \"a:b\" "), "a:b");
        assert_eq!(clean("'x'"), "x");
        assert_eq!(clean("y"), "y");
    }
}
