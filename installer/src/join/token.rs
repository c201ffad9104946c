//! Join tokens pin the master, k3s-style: `K10<sha256 of the master's CA PEM>::<secret>`.
//! A node fetches the CA, compares its hash with the token and only then trusts it; the
//! secret then authenticates the node to the master.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// sha256 (hex) of the master's CA certificate PEM.
    pub ca_hash: String,
    /// Shared secret (hex).
    pub secret: String,
}

impl Token {
    pub fn parse(s: &str) -> Result<Token, String> {
        let bad = || {
            "malformed token: expected K10<64 hex>::<secret> as printed by the master's install (or `status`)".to_string()
        };
        let rest = s.trim().strip_prefix("K10").ok_or_else(bad)?;
        let (hash, secret) = rest.split_once("::").ok_or_else(bad)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() < 16 {
            return Err(bad());
        }
        Ok(Token {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
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
            &format!("K11{}::{}", "a".repeat(64), "b".repeat(20)),
            &format!("K10{}::short", "a".repeat(64)),
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }
}
