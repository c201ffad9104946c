//! The master's TLS material: a CA made at install, and a serving certificate for the
//! registry's TLS listener naming the node's IP. Nodes pin the CA through the join token.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use sha2::{Digest, Sha256};

pub struct Pki {
    pub ca_pem: String,
    pub ca_key_pem: String,
    pub server_pem: String,
    pub server_key_pem: String,
}

/// Makes a CA and a server certificate valid for `ips` (and `localhost`).
pub fn generate(ips: &[String]) -> Result<Pki, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ferry cluster CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(vec!["localhost".to_string()])?;
    p.distinguished_name
        .push(DnType::CommonName, "ferry registry");
    for ip in ips {
        if let Ok(addr) = ip.parse() {
            p.subject_alt_names.push(SanType::IpAddress(addr));
        }
    }
    let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_pem: cert.pem(),
        server_key_pem: key.serialize_pem(),
    })
}

/// The hash a token pins: sha256 of the CA PEM bytes, hex.
pub fn ca_hash(ca_pem: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_pem))
}
