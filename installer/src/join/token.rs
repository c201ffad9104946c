//! Join tokens pin the master, k3s-style: `K10<sha256 of the master's CA PEM>::<secret>`.
//! A node fetches the CA, compares its hash with the token and only then trusts it; the
//! secret then authenticates the node to the master. The secret is hex (ferry makes 32
//! random bytes): anything else — spaces, control characters, quotes — is refused before
//! it can reach a header or a config file.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// sha256 (hex) of the master's CA certificate PEM.
    pub ca_hash: String,
    /// Shared secret (lowercase hex).
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed join token ({0}): expected K10<64 hex>::<hex secret> as printed by the master's install (or its `status`)")]
pub struct TokenError(&'static str);

impl Token {
    pub fn parse(s: &str) -> Result<Token, TokenError> {
        let rest = s
            .trim()
            .strip_prefix("K10")
            .ok_or(TokenError("it does not start with K10"))?;
        let (hash, secret) = rest
            .split_once("::")
            .ok_or(TokenError("no :: between CA hash and secret"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError("the CA hash is not 64 hex digits"));
        }
        if !(32..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError("the secret is not 32 to 128 hex digits"));
        }
        Ok(Token {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "K10{}::{}", self.ca_hash, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let t = Token {
            ca_hash: "a".repeat(64),
            secret: "b".repeat(64),
        };
        assert_eq!(Token::parse(&t.to_string()), Ok(t));
        for bad in [
            "",
            "K10abc::x",
            &format!("K11{}::{}", "a".repeat(64), "b".repeat(40)),
            &format!("K10{}::short", "a".repeat(64)),
            &format!("K10{}::{} x", "a".repeat(64), "b".repeat(40)),
            &format!("K10{}::{}\r\nX: y", "a".repeat(64), "b".repeat(40)),
            &format!("K10{}::{}", "a".repeat(64), "g".repeat(40)),
        ] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
        }
    }
}
