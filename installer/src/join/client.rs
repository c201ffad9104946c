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
    let (status, length) = read_head(&mut r)?;
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

/// Whether `e` is the TLS layer refusing the peer's certificate (not signed by the pinned
/// CA, or not for this address): another server answered than the one pinned.
pub fn is_certificate_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

/// Longest response head (status line and headers) accepted from a master.
pub const MAX_HEAD: u64 = 64 << 10;

/// Reads a response head: the status code and `Content-Length`, if any. Bounded by
/// [`MAX_HEAD`]: the bytes come from the network before the secret is proven to matter,
/// and an endless header line must not grow memory. Bytes of the body stay in `r`.
pub fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Option<u64>)> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut budget = MAX_HEAD;
    let mut next_line = |r: &mut dyn BufRead| -> std::io::Result<String> {
        let mut line = Vec::new();
        let n = r.take(budget).read_until(b'\n', &mut line)? as u64;
        budget -= n;
        if !line.ends_with(b"\n") {
            return Err(bad(if budget == 0 {
                format!("response head longer than {MAX_HEAD} bytes")
            } else {
                "connection closed in the middle of the response head".into()
            }));
        }
        String::from_utf8(line).map_err(|_| bad("response head is not UTF-8".into()))
    };
    let line = next_line(r)?;
    let mut words = line.split_whitespace();
    let status: u16 = match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && code.len() == 3 => {
            code.parse().ok().filter(|c| (100..600).contains(c))
        }
        _ => None,
    }
    .ok_or_else(|| bad(format!("bad status line {:?}", line.trim_end())))?;
    let mut length = None;
    loop {
        let line = next_line(r)?;
        if line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("bad Content-Length {:?}", v.trim())))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("two different Content-Length headers".into()));
                }
                length = Some(n);
            }
        }
    }
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &[u8]) -> std::io::Result<(u16, Option<u64>)> {
        read_head(&mut std::io::BufReader::new(s))
    }

    #[test]
    fn reads_status_and_length_and_leaves_the_body() {
        let mut r = std::io::BufReader::new(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"[..],
        );
        assert_eq!(read_head(&mut r).unwrap(), (200, Some(5)));
        let mut body = String::new();
        r.read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello");
        assert_eq!(head(b"HTTP/1.0 401 No\n\n").unwrap(), (401, None));
    }

    #[test]
    fn refuses_hostile_heads() {
        let endless = [&b"HTTP/1.1 200 OK\r\nX: "[..], &vec![b'a'; 1 << 20]].concat();
        let cases: [&[u8]; 9] = [
            b"",
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-x\r\n\r\n",
            b"HTTP/1.1 99999 x\r\n\r\n",
            b"HTTP/1.1 +20 x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 \xff\r\n\r\n",
            &endless,
        ];
        for c in cases {
            assert!(head(c).is_err(), "{:?}", String::from_utf8_lossy(c));
        }
        let e = head(&endless).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
    }
}
