//! Does an image exist? One manifest `HEAD` through the same [`Client`] a pull uses, so the
//! answer comes with the same credentials, mirrors, insecure-registry rules and errors.
//!
//! Why not a pull: candidate verification asks about every image-like string discovery
//! found, and most builds drop some of them; a `HEAD` costs one round trip (plus a token
//! fetch on registries that want one) and transfers nothing. A registry that refuses `HEAD`
//! on manifests (405, or 400/501 from old proxies) is asked with `GET`, whose body is
//! dropped unread.

use super::client::{Client, Method};
use super::error::PullError;
use super::options::PullOptions;
use ferry_bundle::oci::MANIFEST_ACCEPT;
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;

/// What the registry said about an existing manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `Docker-Content-Digest`, when the registry sent one.
    pub digest: Option<Sha256Digest>,
    /// `Content-Type` of the manifest (an index, an image manifest, …).
    pub media_type: Option<String>,
    /// The registry contacted (`host (mirror of docker.io)`).
    pub registry: String,
}

/// Asks `reference`'s registry (or its mirror) whether its manifest exists. `Ok` means it
/// does; a missing one is [`PullError::NotFound`], and every other error says what went
/// wrong (refused credentials, unreachable host) as a pull would.
pub fn probe(reference: &Reference, opts: &PullOptions) -> Result<Probe, PullError> {
    let client = Client::new(reference, opts)?;
    let (what, target) = match (&reference.digest, &reference.tag) {
        (Some(d), _) => (format!("manifest {d}"), d.to_string()),
        (None, t) => {
            let t = t.as_deref().unwrap_or("latest");
            (format!("manifest {t}"), t.to_string())
        }
    };
    let url = client.endpoint.manifest_url(&target);
    let resp = match client.send(Method::Head, &url, Some(MANIFEST_ACCEPT), &what) {
        Err(PullError::Status {
            status: 400 | 405 | 501,
            ..
        }) => client.send(Method::Get, &url, Some(MANIFEST_ACCEPT), &what)?,
        other => other?,
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string())
    };
    Ok(Probe {
        digest: header("docker-content-digest").and_then(|d| Sha256Digest::parse(&d).ok()),
        media_type: header("content-type"),
        registry: client.registry(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A registry that refuses HEAD (405) and answers GET; returns the methods it saw.
    fn no_head_registry() -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                while r.read_line(&mut String::new()).unwrap() > 2 {}
                let method = line.split(' ').next().unwrap().to_string();
                let d = Sha256Digest::of(b"{}");
                let reply = match method.as_str() {
                    "HEAD" => "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    _ => format!("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {d}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
                };
                (&s).write_all(reply.as_bytes()).unwrap();
                seen.push(method);
            }
            seen
        });
        (host, t)
    }

    #[test]
    fn a_registry_refusing_head_is_asked_with_get() {
        let (host, server) = no_head_registry();
        let opts = PullOptions {
            insecure_registries: vec![host.clone()],
            docker_config: Some("/nonexistent/ferry/config.json".into()),
            attempts: 1,
            ..Default::default()
        };
        let p = probe(&Reference::parse(&format!("{host}/x/y:1")).unwrap(), &opts).unwrap();
        assert_eq!(p.digest, Some(Sha256Digest::of(b"{}")));
        assert_eq!(p.registry, host);
        assert_eq!(server.join().unwrap(), ["HEAD", "GET"]);
    }
}
