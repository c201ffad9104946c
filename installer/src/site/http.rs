//! A small blocking HTTP/1.1 client for the site's registry: any method, request bodies
//! streamed with `Content-Length` (a blob is never held in memory), responses with
//! `Content-Length`, chunked or close-delimited bodies, over TCP or rustls.
//!
//! Why not an HTTP crate: the stub is size-gated (6 MiB) and already links rustls/ring
//! (the join channel) and `httparse` (the registry server); the registry protocol needs
//! little more than what the join channel's GET client does. One request per connection
//! (`Connection: close`) keeps it simple; a push makes a few requests per blob.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 << 10;

/// Where requests go: `host[:port]`, over TLS with `tls` or plain HTTP without.
#[derive(Clone)]
pub struct Endpoint {
    pub authority: String,
    pub tls: Option<Arc<ClientConfig>>,
    pub timeout: Duration,
}

/// What a request sends.
pub enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    /// Exactly this many bytes from the reader.
    Stream(u64, Box<dyn Read + 'a>),
}

pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn Read>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every header of that name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body, for streaming.
    pub fn into_body(self) -> Box<dyn Read> {
        self.body
    }
    /// Up to `limit` bytes of the body.
    pub fn bytes(mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        (&mut self.body).take(limit).read_to_end(&mut v)?;
        Ok(v)
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Endpoint {
    /// `host[:port]` to connect to (the scheme's port when none is given) and the TLS
    /// server name.
    fn target(&self) -> (String, String) {
        let a = &self.authority;
        let (host, has_port) = match a.strip_prefix('[') {
            Some(rest) => (
                rest.split(']').next().unwrap_or(rest).to_string(),
                rest.contains("]:"),
            ),
            None => match a.rsplit_once(':') {
                Some((h, _)) => (h.to_string(), true),
                None => (a.clone(), false),
            },
        };
        let addr = if has_port {
            a.clone()
        } else {
            let port = if self.tls.is_some() { 443 } else { 80 };
            format!("{a}:{port}")
        };
        (addr, host)
    }

    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        let (addr, host) = self.target();
        let sock = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{addr}: no address")))?;
        let tcp = TcpStream::connect_timeout(&sock, self.timeout)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::other(format!("{host}: {e}")))?;
                let conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
                Box::new(StreamOwned::new(conn, tcp))
            }
        })
    }

    /// Sends one request (`target` is the path and query) and reads the response head.
    pub fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> io::Result<Response> {
        let mut s = self.connect()?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ferry-installer/{}\r\nConnection: close\r\n",
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in headers {
            if v.contains(['\r', '\n']) {
                return Err(io::Error::other(format!("header {k} holds a line break")));
            }
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let len = match &body {
            Body::None => None,
            Body::Bytes(b) => Some(b.len() as u64),
            Body::Stream(n, _) => Some(*n),
        };
        if let Some(n) = len.or((method != "GET" && method != "HEAD").then_some(0)) {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        {
            let mut w = io::BufWriter::with_capacity(1 << 20, &mut s);
            w.write_all(head.as_bytes())?;
            match body {
                Body::None => {}
                Body::Bytes(b) => w.write_all(b)?,
                Body::Stream(n, r) => {
                    // One byte more than announced is asked for, so the source sees its
                    // end (a verifying source checks its digest there).
                    let sent = io::copy(&mut r.take(n + 1), &mut w)?;
                    if sent != n {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the body ended after {sent} of {n} bytes"),
                        ));
                    }
                }
            }
            w.flush()?;
        }
        read_response(s, method == "HEAD")
    }
}

fn read_response(s: Box<dyn Stream>, head_only: bool) -> io::Result<Response> {
    let mut r = BufReader::with_capacity(64 << 10, s);
    let mut buf = Vec::new();
    loop {
        let n = r.by_ref().take(1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a complete response head",
            ));
        }
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other(format!(
                "response head longer than {MAX_HEAD} bytes"
            )));
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; 96];
    let mut resp = httparse::Response::new(&mut hs);
    match resp.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(io::Error::other("malformed response head")),
    }
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    let body: Box<dyn Read> = if head_only || status == 204 || status == 304 {
        Box::new(io::empty())
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        Box::new(Chunked {
            r,
            left: 0,
            done: false,
        })
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<u64>().ok()) {
        Box::new(r.take(n))
    } else {
        Box::new(r)
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    r: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.r.by_ref().take(1024).read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let got = self.r.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside a chunk",
            ));
        }
        self.left -= got as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.r.by_ref().take(2).read_line(&mut crlf)?;
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_only: bool) -> io::Result<(u16, String, Vec<u8>)> {
        let s: Box<dyn Stream> = Box::new(io::Cursor::new(raw.to_vec()));
        let r = read_response(s, head_only)?;
        let loc = r.header("location").unwrap_or("").to_string();
        Ok((r.status, loc, r.bytes(1 << 20)?))
    }

    #[test]
    fn reads_lengths_chunks_and_heads() {
        let (s, loc, b) = parse(
            b"HTTP/1.1 202 Accepted\r\nLocation: /v2/x/blobs/uploads/u?_state=1\r\nContent-Length: 2\r\n\r\nokEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(
            (s, loc.as_str(), &b[..]),
            (202, "/v2/x/blobs/uploads/u?_state=1", &b"ok"[..])
        );
        let (_, _, b) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(b, b"abcdefg");
        let (s, _, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true).unwrap();
        assert_eq!((s, b.len()), (200, 0));
        assert!(parse(b"HTTP/1.1 200 OK\r\nX: y", false).is_err());
        assert!(parse(b"SSH-2.0\r\n\r\n", false).is_err());
    }

    #[test]
    fn ports_default_by_scheme() {
        let e = Endpoint {
            authority: "site.local".into(),
            tls: None,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            e.target(),
            ("site.local:80".to_string(), "site.local".to_string())
        );
        let e = Endpoint {
            authority: "[fd00::1]:5000".into(),
            ..e
        };
        assert_eq!(
            e.target(),
            ("[fd00::1]:5000".to_string(), "fd00::1".to_string())
        );
    }
}
