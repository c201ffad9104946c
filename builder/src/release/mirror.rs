//! `--release-mirror <url-prefix>=<replacement-prefix>`: where release downloads really go.
//!
//! Sites behind an Artifactory or Nexus "remote repository" proxy reach GitHub only through
//! it, under another URL with the same path layout (`https://github.com/k3s-io/k3s/…` →
//! `https://artifactory.corp/github/k3s-io/k3s/…`). A mirror rewrites the front of a URL
//! and nothing else: the rest of the path (the URL-encoded tag included) stays byte for
//! byte, so a proxy laid out like GitHub serves it. Only the bytes' source changes; what
//! they must hash to, the names in messages and the URLs recorded in `ferry.lock` stay
//! the upstream ones, so a lock written behind a proxy holds on a directly connected
//! machine and the other way round.

use std::fmt;
use std::str::FromStr;

/// One `--release-mirror` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMirror {
    /// The upstream prefix, e.g. `https://github.com`.
    pub prefix: String,
    /// What replaces it, e.g. `http://127.0.0.1:8080` or `https://nexus.corp/repository/github`.
    pub replacement: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid release mirror {value:?}: {problem}; expected <url-prefix>=<replacement-prefix>, e.g. https://github.com=https://artifactory.example/github")]
pub struct ReleaseMirrorError {
    pub value: String,
    pub problem: &'static str,
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r.contains(['?', '#'])
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

impl FromStr for ReleaseMirror {
    type Err = ReleaseMirrorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem| ReleaseMirrorError {
            value: s.to_string(),
            problem,
        };
        let (prefix, replacement) = s.trim().split_once('=').ok_or(bad("missing '='"))?;
        let (prefix, replacement) = (
            prefix.trim().trim_end_matches('/'),
            replacement.trim().trim_end_matches('/'),
        );
        if !is_http_url(prefix) {
            return Err(bad("the prefix must be an http:// or https:// URL"));
        }
        if !is_http_url(replacement) {
            return Err(bad("the replacement must be an http:// or https:// URL"));
        }
        Ok(ReleaseMirror {
            prefix: prefix.to_string(),
            replacement: replacement.to_string(),
        })
    }
}

impl fmt::Display for ReleaseMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.prefix, self.replacement)
    }
}

impl ReleaseMirror {
    /// `url` with this mirror's prefix replaced, if the prefix matches at a path
    /// boundary (`https://github.com` matches `https://github.com/x`, not
    /// `https://github.com.evil/x`).
    fn apply(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(&self.prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", self.replacement))
    }
}

/// The URL to fetch for upstream `url`: the longest matching mirror prefix wins; no match
/// means the upstream itself.
pub fn rewrite(mirrors: &[ReleaseMirror], url: &str) -> String {
    mirrors
        .iter()
        .filter_map(|m| m.apply(url).map(|u| (m.prefix.len(), u)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, u)| u)
        .unwrap_or_else(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_prefix_only_and_keeps_the_encoded_path() {
        let m: Vec<ReleaseMirror> = [
            "https://github.com=http://127.0.0.1:8080/",
            "https://github.com/k3s-io=https://nexus.corp/k3s",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            rewrite(
                &m,
                "https://github.com/containerd/containerd/releases/download/v2.0.5/x.tar.gz"
            ),
            "http://127.0.0.1:8080/containerd/containerd/releases/download/v2.0.5/x.tar.gz"
        );
        // Longest prefix wins; the %2B stays encoded.
        assert_eq!(
            rewrite(
                &m,
                "https://github.com/k3s-io/k3s/releases/download/v1.32.3%2Bk3s1/k3s"
            ),
            "https://nexus.corp/k3s/k3s/releases/download/v1.32.3%2Bk3s1/k3s"
        );
        assert_eq!(
            rewrite(&m, "https://github.com.evil/x"),
            "https://github.com.evil/x"
        );
        assert_eq!(rewrite(&[], "https://a/b"), "https://a/b");
    }

    #[test]
    fn refuses_what_is_not_two_urls() {
        for bad in [
            "https://github.com",
            "github.com=http://x",
            "https://github.com=x",
            "https://github.com=http://",
            "https://github.com=http://a b",
            "https://github.com?x=1=http://a",
        ] {
            assert!(bad.parse::<ReleaseMirror>().is_err(), "{bad}");
        }
        let m: ReleaseMirror = " https://github.com/ = http://h:1/p ".parse().unwrap();
        assert_eq!(m.to_string(), "https://github.com=http://h:1/p");
    }
}
