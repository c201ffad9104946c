//! Request targets → API endpoints.
//!
//! `<name>` may itself contain `/` and even a component called `manifests` or `tags`, so
//! a target is split into segments and matched from the right. Each segment is
//! percent-decoded on its own (an encoded `/` cannot smuggle in a new segment). Names are
//! only checked for shape here (no empty, `.` or `..` segments, length); their grammar is
//! checked when they are resolved against the store.

use super::errors::{ApiError, ErrorCode};
use super::names::{percent_decode, MAX_NAME_LEN};
use ferry_bundle::reference::check_tag;
use ferry_bundle::Sha256Digest;

/// A request target longer than this is refused outright (414).
pub const MAX_TARGET_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    Digest(Sha256Digest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    Manifest {
        name: String,
        reference: ManifestRef,
    },
    Blob {
        name: String,
        digest: Sha256Digest,
    },
    Tags {
        name: String,
    },
    Referrers {
        name: String,
        digest: Sha256Digest,
    },
}

/// The query parameters the registry understands; others are ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pub ns: Option<String>,
    pub n: Option<String>,
    pub last: Option<String>,
    pub artifact_type: Option<String>,
}

impl Query {
    pub fn parse(q: &str) -> Result<Query, ApiError> {
        let mut out = Query::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "ns" => &mut out.ns,
                "n" => &mut out.n,
                "last" => &mut out.last,
                "artifactType" => &mut out.artifact_type,
                _ => continue,
            };
            if slot.is_none() {
                let v = percent_decode(v).ok_or_else(|| {
                    ApiError::new(
                        400,
                        ErrorCode::Unsupported,
                        format!("query parameter {k}: bad percent-encoding"),
                    )
                })?;
                *slot = Some(v);
            }
        }
        Ok(out)
    }
}

/// Splits a request target into path and query.
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        404,
        ErrorCode::Unsupported,
        format!("{path}: no such endpoint (this registry serves the pull side of the OCI Distribution API under /v2/)"),
    )
}

/// Parses a digest path segment: `sha256:<64 lowercase hex>`.
pub fn parse_digest(s: &str) -> Result<Sha256Digest, ApiError> {
    Sha256Digest::parse(s).map_err(|_| {
        let shown: String = s.chars().take(80).collect();
        ApiError::digest_invalid(format!(
            "{shown:?} is not a digest this registry stores (sha256:<64 lowercase hex>)"
        ))
    })
}

/// Maps a decoded path to an endpoint.
pub fn parse_path(path: &str) -> Result<Endpoint, ApiError> {
    let Some(rest) = path.strip_prefix("/v2") else {
        return Err(not_found(path));
    };
    if rest.is_empty() || rest == "/" {
        return Ok(Endpoint::Base);
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(not_found(path));
    };
    if rest == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    let segments = rest
        .split('/')
        .map(|s| percent_decode(s).filter(|d| !d.contains('/')))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| ApiError::name_invalid("bad percent-encoding in the path"))?;
    let n = segments.len();
    if n < 3 {
        return Err(not_found(path));
    }
    let (kind, last) = (segments[n - 2].as_str(), segments[n - 1].as_str());
    let name_segments = &segments[..n - 2];
    let name = || -> Result<String, ApiError> {
        if name_segments
            .iter()
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(ApiError::name_invalid(
                "repository name has an empty, '.' or '..' path segment",
            ));
        }
        let name = name_segments.join("/");
        if name.len() > MAX_NAME_LEN {
            return Err(ApiError::name_invalid(format!(
                "repository name is {} characters long; the limit is {MAX_NAME_LEN}",
                name.len()
            )));
        }
        Ok(name)
    };
    match (kind, last) {
        ("tags", "list") => Ok(Endpoint::Tags { name: name()? }),
        ("manifests", reference) => {
            let name = name()?;
            let reference = if reference.contains(':') {
                ManifestRef::Digest(parse_digest(reference)?)
            } else {
                check_tag(reference).map_err(|e| {
                    ApiError::manifest_unknown(format!(
                        "{e}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
                    ))
                })?;
                ManifestRef::Tag(reference.to_string())
            };
            Ok(Endpoint::Manifest { name, reference })
        }
        ("blobs", digest) => {
            let name = name()?;
            Ok(Endpoint::Blob {
                name,
                digest: parse_digest(digest)?,
            })
        }
        ("referrers", digest) => {
            let name = name()?;
            Ok(Endpoint::Referrers {
                name,
                digest: parse_digest(digest)?,
            })
        }
        _ => Err(not_found(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_path("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(parse_path("/v2").unwrap(), Endpoint::Base);
        assert_eq!(parse_path("/v2/_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(
            parse_path("/v2/library/app/manifests/1").unwrap(),
            Endpoint::Manifest {
                name: "library/app".into(),
                reference: ManifestRef::Tag("1".into())
            }
        );
        assert_eq!(
            parse_path(&format!("/v2/quay.io/a/b/blobs/{}", d())).unwrap(),
            Endpoint::Blob {
                name: "quay.io/a/b".into(),
                digest: Sha256Digest::parse(&d()).unwrap()
            }
        );
        // An encoded colon in a digest is fine.
        assert!(matches!(
            parse_path(&format!("/v2/a/manifests/{}", d().replace(':', "%3A"))).unwrap(),
            Endpoint::Manifest {
                reference: ManifestRef::Digest(_),
                ..
            }
        ));
        // A repository may have a component named like an endpoint.
        assert_eq!(
            parse_path("/v2/tags/manifests/tags/list").unwrap(),
            Endpoint::Tags {
                name: "tags/manifests".into()
            }
        );
        assert!(matches!(
            parse_path(&format!("/v2/a/referrers/{}", d())).unwrap(),
            Endpoint::Referrers { .. }
        ));
    }

    #[test]
    fn malformed_paths_are_4xx() {
        let long = format!("/v2/{}/tags/list", "a/".repeat(200));
        let cases = [
            ("/", 404),
            ("/v2x", 404),
            ("/v2/x", 404),
            ("/v2/x/y", 404),
            ("/v2/x/blobs/uploads/", 404),
            ("/v2/../etc/manifests/1", 400),
            ("/v2/a//b/tags/list", 400),
            ("/v2/a/%2e%2e/tags/list", 400),
            ("/v2/a%2Fb/tags/list", 400),
            ("/v2/a/%zz/tags/list", 400),
            ("/v2/a%+0b/tags/list", 400),
            ("/v2/a%00b/tags/list", 400),
            ("/v2/a/manifests/1%0d%0aX", 400),
            ("/v2/a/blobs/sha256:abc", 400),
            ("/v2/a/blobs/md5:abc", 400),
            ("/v2/a/blobs/../../etc/passwd", 404),
            ("/v2/a/manifests/-bad", 404),
            ("/v2/a/manifests/sha256:../x", 404),
            ("/v2/a/manifests/sha256:..", 400),
            (long.as_str(), 400),
        ];
        for (p, status) in cases {
            let e = parse_path(p).unwrap_err();
            assert_eq!(e.status, status, "{p}: {e}");
        }
    }

    #[test]
    fn query() {
        let q = Query::parse(
            "ns=docker.io&n=2&last=a%2Bb&artifactType=application/x+json&x=1&ns=quay.io",
        )
        .unwrap();
        assert_eq!(q.ns.as_deref(), Some("docker.io"));
        assert_eq!(q.n.as_deref(), Some("2"));
        assert_eq!(q.last.as_deref(), Some("a+b"));
        assert_eq!(q.artifact_type.as_deref(), Some("application/x+json"));
        assert!(Query::parse("ns=%").is_err());
        assert!(Query::parse("ns=docker.io%+0").is_err());
        assert!(Query::parse("last=a%0d%0aLocation:%20x").is_err());
        assert_eq!(split_target("/v2/?a=b"), ("/v2/", "a=b"));
    }
}
