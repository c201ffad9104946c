//! The first node's secrets: the cluster CA, the registry's certificate and keys, the
//! join token. Made once, with randomness from the engine's `System` (so tests can make
//! them without a kernel RNG), and reused when an interrupted install is resumed: a join
//! command already printed stays valid.

use crate::engine::{Secret, SecretSource, SourceError, System};
use crate::host::Host;
use crate::join::token::Token;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct InstallSecrets<'a> {
    host: &'a Host,
    sys: &'a dyn System,
    node_ip: String,
    made: Mutex<Option<HashMap<Secret, Vec<u8>>>>,
    /// The site registry's login, given by the operator (not made, not kept here).
    site_login: Option<crate::site::Login>,
}

impl<'a> InstallSecrets<'a> {
    pub fn new(host: &'a Host, sys: &'a dyn System, node_ip: String) -> Self {
        InstallSecrets {
            host,
            sys,
            node_ip,
            made: Mutex::new(None),
            site_login: None,
        }
    }

    /// With the site registry's login (for `Secret::SiteLogin`).
    pub fn with_site_login(mut self, login: Option<crate::site::Login>) -> Self {
        self.site_login = login;
        self
    }

    fn existing(&self) -> Option<HashMap<Secret, Vec<u8>>> {
        let read = |p| std::fs::read(self.host.path(&p)).ok();
        let token = read(self.host.token_file())?;
        let parsed = Token::parse(String::from_utf8_lossy(&token).trim()).ok()?;
        let mut m = HashMap::new();
        m.insert(Secret::CaCert, read(self.host.pki("ca.pem"))?);
        m.insert(Secret::CaKey, read(self.host.pki("ca.key"))?);
        m.insert(Secret::ServerCert, read(self.host.pki("server.pem"))?);
        m.insert(Secret::ServerKey, read(self.host.pki("server.key"))?);
        m.insert(Secret::ClusterSecret, parsed.secret.into_bytes());
        m.insert(Secret::JoinToken, token);
        Some(m)
    }

    fn generate(&self) -> Result<HashMap<Secret, Vec<u8>>, SourceError> {
        let pki = crate::join::pki::generate(&[self.node_ip.clone(), "127.0.0.1".into()])
            .map_err(|e| SourceError::Other(format!("generating the cluster CA: {e}")))?;
        let mut secret = [0u8; 32];
        self.sys
            .random(&mut secret)
            .map_err(|e| SourceError::Other(e.to_string()))?;
        let token = Token {
            ca_hash: crate::join::pki::ca_hash(pki.ca_pem.as_bytes()),
            secret: hex::encode(secret),
        };
        let mut m = HashMap::new();
        m.insert(Secret::CaCert, pki.ca_pem.into_bytes());
        m.insert(Secret::CaKey, pki.ca_key_pem.into_bytes());
        m.insert(Secret::ServerCert, pki.server_pem.into_bytes());
        m.insert(Secret::ServerKey, pki.server_key_pem.into_bytes());
        m.insert(Secret::ClusterSecret, token.secret.clone().into_bytes());
        m.insert(Secret::JoinToken, token.to_string().into_bytes());
        Ok(m)
    }
}

impl SecretSource for InstallSecrets<'_> {
    fn secret(&self, s: Secret) -> Result<Vec<u8>, SourceError> {
        if s == Secret::SiteLogin {
            return Ok(self
                .site_login
                .as_ref()
                .map(|l| serde_json::to_vec(l).expect("a login serialises"))
                .unwrap_or_default());
        }
        let mut made = self.made.lock().expect("secrets lock");
        if made.is_none() {
            *made = Some(match self.existing() {
                Some(m) => m,
                None => self.generate()?,
            });
        }
        Ok(made
            .as_ref()
            .and_then(|m| m.get(&s).cloned())
            .unwrap_or_default())
    }
}
