//! A minimal HTTPS/1.1 GET client for the join channel (the installer has no HTTP stack
//! of its own beyond the registry server, and needs only GET with a body it can stream).

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub length: Option<u64>,
    pub body: Box<dyn Read>,
}

impl Response {
    pub fn bytes(mut self, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        (&mut self.body).take(limit).read_to_end(&mut v)?;
        Ok(v)
    }
}

/// GET `path` from `addr` (`host:port`) over TLS with `cfg`; `bearer` is sent as
/// `Authorization: Bearer …` when given.
pub fn get(
    cfg: Arc<ClientConfig>,
    addr: &str,
    path: &str,
    bearer: Option<&str>,
) -> std::io::Result<Response> {
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_matches(['[', ']']);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr}: no address")))?;
    let tcp = TcpStream::connect_timeout(&sock, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let conn = ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    tls.flush()?;
    let mut r = BufReader::new(tls);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let body: Box<dyn Read> = match length {
        Some(n) => Box::new(r.take(n)),
        None => Box::new(r),
    };
    Ok(Response {
        status,
        length,
        body,
    })
}
