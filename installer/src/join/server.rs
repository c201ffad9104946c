//! The master's side of the join channel: routes under `/ferry/v1/` added to the
//! registry's TLS listener. The CA is public (its hash is what tokens pin); join info and
//! bundle entries need the token's secret, compared in constant time.

use super::protocol::{join_info, CACERTS, ENTRY_PREFIX, JOIN};
use crate::registry::{Body, Extension, Request, Response};
use ferry_bundle::Bundle;
use std::sync::Arc;

pub struct JoinServer {
    pub bundle: Bundle,
    pub ca_pem: Vec<u8>,
    pub secret: String,
    /// `ip:port` nodes reach the TLS registry at.
    pub advertise: String,
    /// The site's registry nodes pull from (`--site-registry` installs).
    pub site: Option<crate::site::SiteConfig>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl JoinServer {
    fn authorized(&self, req: &Request) -> bool {
        req.authorization
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|s| constant_time_eq(s.trim().as_bytes(), self.secret.as_bytes()))
    }

    pub fn handle(&self, req: &Request) -> Option<Response> {
        let path = req.target.split('?').next().unwrap_or("");
        if path == CACERTS {
            return Some(
                Response::new(200, Body::Bytes(self.ca_pem.clone()))
                    .header("Content-Type", "application/x-pem-file"),
            );
        }
        if !self.authorized(req) {
            return Some(Response::json(
                401,
                br#"{"error":"join token secret required"}"#.to_vec(),
            ));
        }
        if path == JOIN {
            // `?platform=linux/arm64`: the node's platform (a mixed cluster).
            let platform = query_value(&req.target, "platform");
            return Some(
                match join_info(
                    &self.bundle,
                    &format!("https://{}", self.advertise),
                    platform.as_deref(),
                ) {
                    Ok(mut info) => {
                        info.site_registry = self.site.clone();
                        Response::json(200, serde_json::to_vec(&info).expect("json"))
                    }
                    Err(e) => Response::json(
                        404,
                        serde_json::to_vec(&serde_json::json!({ "error": e.to_string() }))
                            .expect("json"),
                    ),
                },
            );
        }
        if let Some(entry) = path.strip_prefix(ENTRY_PREFIX) {
            // Only runtime payload files are handed out, not arbitrary entries.
            let payload_file = self
                .bundle
                .manifest
                .payloads
                .iter()
                .any(|p| p.files.values().any(|e| e == entry));
            if !payload_file {
                return Some(Response::json(
                    404,
                    br#"{"error":"no such payload file"}"#.to_vec(),
                ));
            }
            let at = self.bundle.locate(entry)?;
            let body = Body::open(&at.bundle.entry_ranges(at.entry)).ok()?;
            return Some(
                Response::new(200, body).header("Content-Type", "application/octet-stream"),
            );
        }
        None
    }

    pub fn into_extension(self) -> Extension {
        let me = Arc::new(self);
        Extension(Arc::new(move |req: &Request| me.handle(req)))
    }
}

/// The value of `key` in a request target's query, percent-decoded.
fn query_value(target: &str, key: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key)
            .then(|| crate::registry::percent_decode(v))
            .flatten()
    })
}
