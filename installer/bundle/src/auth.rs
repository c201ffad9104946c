//! Registry authentication, the part both halves speak: `WWW-Authenticate` challenges and
//! the Bearer token endpoint's URL and reply. The builder pulls and pushes with it
//! (`ferry_builder::pull::auth`), the installer pushes to the site's registry with it.
//!
//! Registries say how they want to be spoken to in their 401: `Basic realm=…` means send
//! the configured credentials on every request; `Bearer realm=…,service=…,scope=…` means
//! fetch a token from `realm` (with those credentials as Basic auth if there are any, else
//! anonymously, as Docker Hub allows for public images) and send `Bearer <token>`. Acting on
//! the challenge instead of guessing keeps one code path for Docker Hub, Harbor, GHCR, quay
//! and a plain Distribution registry with htpasswd.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One parsed challenge: auth scheme (lowercased) and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 7235: a header may carry
/// several, parameters may be quoted and contain commas, e.g. `scope="repo:a:pull,push"`).
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip = |i: &mut usize, also_comma: bool| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || (also_comma && s[*i] == b',')) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=') {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip(&mut i, true);
        if i >= s.len() {
            break;
        }
        let scheme = token(&mut i);
        if scheme.is_empty() {
            i += 1; // a stray '=': skip it rather than loop forever
            continue;
        }
        let mut params = BTreeMap::new();
        loop {
            skip(&mut i, true);
            let mark = i;
            let name = token(&mut i);
            skip(&mut i, false);
            if name.is_empty() || i >= s.len() || s[i] != b'=' {
                i = mark; // not `name=`: the next challenge's scheme (or the end)
                break;
            }
            i += 1;
            skip(&mut i, false);
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i = (i + 1).min(s.len()); // closing quote, if any
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let start = i;
                while i < s.len() && s[i] != b',' {
                    i += 1;
                }
                header[start..i].trim().to_string()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

/// Picks the challenge to answer: Bearer if offered (it is what registries prefer), else
/// Basic.
pub fn preferred(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| challenges.iter().find(|c| c.scheme == "basic"))
}

/// The URL to fetch a token from: `realm?service=…&scope=…`. The challenge's own scope is
/// used when present; otherwise the pull scope of the repository being fetched.
pub fn token_url(challenge: &Challenge, default_scope: &str) -> Option<String> {
    let realm = challenge.param("realm").filter(|r| !r.is_empty())?;
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(service) = challenge.param("service") {
        url.push_str(&format!("{sep}service={}", encode_query(service)));
        sep = '&';
    }
    // Several scopes are space-separated in a challenge; the token API wants one
    // `scope=` parameter per scope.
    let scope = challenge.param("scope").unwrap_or(default_scope);
    for sc in scope.split(' ').filter(|s| !s.is_empty()) {
        url.push_str(&format!("{sep}scope={}", encode_query(sc)));
        sep = '&';
    }
    Some(url)
}

/// Percent-encodes a query value, keeping the characters a scope is made of readable.
fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Extracts the token from a token endpoint's JSON reply (`token`, or the OAuth2
/// `access_token` some registries send instead).
pub fn parse_token_reply(body: &[u8]) -> Result<String, String> {
    let r: TokenReply =
        serde_json::from_slice(body).map_err(|e| format!("token reply is not JSON: {e}"))?;
    r.token
        .or(r.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "token reply has neither `token` nor `access_token`".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/nginx:pull"));
        assert_eq!(
            token_url(&c[0], "unused").unwrap(),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/nginx:pull"
        );
    }

    #[test]
    fn parses_quoted_commas_unquoted_values_and_several_challenges() {
        let c = parse_www_authenticate(
            r#"Basic realm="Registry Realm", Bearer realm=https://h/t?x=1 , scope="repository:a/b:pull,push", Service = "s\"q""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].param("realm"), Some("https://h/t?x=1"));
        assert_eq!(c[1].param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c[1].param("service"), Some("s\"q"));
        assert_eq!(preferred(&c).unwrap().scheme, "bearer");
        assert_eq!(
            token_url(&c[1], "x").unwrap(),
            "https://h/t?x=1&service=s%22q&scope=repository:a/b:pull%2Cpush"
        );
    }

    #[test]
    fn default_scope_and_multiple_scopes() {
        let c = &parse_www_authenticate(r#"Bearer realm="http://127.0.0.1:9/token""#)[0];
        assert_eq!(
            token_url(c, "repository:app:pull").unwrap(),
            "http://127.0.0.1:9/token?scope=repository:app:pull"
        );
        let c = &parse_www_authenticate(r#"Bearer realm="r",scope="a:b:pull c:d:pull""#)[0];
        assert_eq!(token_url(c, "").unwrap(), "r?scope=a:b:pull&scope=c:d:pull");
        let c = &parse_www_authenticate("Bearer service=x")[0];
        assert_eq!(token_url(c, ""), None, "no realm, no token URL");
    }

    #[test]
    fn tolerates_garbage() {
        for h in [
            "",
            ",,,",
            "=",
            "Bearer",
            "Bearer realm",
            "Bearer realm=\"unterminated",
        ] {
            let _ = parse_www_authenticate(h);
        }
        assert_eq!(parse_www_authenticate("Basic")[0].scheme, "basic");
    }

    #[test]
    fn token_replies() {
        assert_eq!(
            parse_token_reply(br#"{"token":"t1","expires_in":60}"#).unwrap(),
            "t1"
        );
        assert_eq!(
            parse_token_reply(br#"{"access_token":"t2"}"#).unwrap(),
            "t2"
        );
        assert!(parse_token_reply(br#"{"token":""}"#).is_err());
        assert!(parse_token_reply(b"<html>").is_err());
    }
}
