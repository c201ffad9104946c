//! The slice of HTTP/1.1 the registry speaks: request heads in, responses out.
//!
//! Requests are parsed with `httparse` from a buffer capped at the server's head limit,
//! so a head larger than the cap is refused (431) without growing memory. Bodies are
//! never read: the API is GET/HEAD only, so a request that announces a body is answered
//! and the connection closed. *When* bytes are read is the server's business (its
//! waiting room, `super::server`); this module only says whether they make a request.

use super::body::{send_checked, send_file_range};
use super::errors::ApiError;
use super::transport::ResponseSink;
use super::verify::Deferred;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub range: Option<String>,
    /// `Authorization` header, for the join channel's endpoints (the OCI API ignores it).
    pub authorization: Option<String>,
    /// Whether the client lets the connection live after this response.
    pub keep_alive: bool,
    /// The request announced a body (which is never read).
    pub has_body: bool,
}

/// Why bytes are not a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// 431: more headers than allowed (the byte cap is the caller's).
    TooLarge,
    /// 400.
    Malformed(String),
}

/// Parses the request head at the start of `buf`: the request and the bytes it used, or
/// `None` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(format!("malformed request: {e}"))),
    };
    let minor_version = req.version.unwrap_or(1);
    let mut out = Request {
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        minor_version,
        range: None,
        authorization: None,
        keep_alive: minor_version >= 1,
        has_body: false,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Malformed(format!("header {} is not UTF-8", h.name)))?
            .trim();
        if h.name.eq_ignore_ascii_case("range") {
            out.range = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("authorization") {
            out.authorization = Some(value.to_string());
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    out.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && minor_version == 0 {
                    out.keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| HeadError::Malformed(format!("bad Content-Length {value:?}")))?;
            out.has_body |= n > 0;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            out.has_body = true;
        }
    }
    Ok(Some((out, used)))
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    Bytes(Vec<u8>),
    Shared(Arc<[u8]>),
    /// Byte ranges of files, sent in order (a blob of a split bundle spans parts).
    Files {
        ranges: Vec<OpenRange>,
        /// Set on the first full GET of a blob not yet verified: the ranges are the whole
        /// blob, hashed as they are sent (`super::verify`).
        check: Option<Deferred>,
    },
}

/// `len` bytes at `offset` of an open `file`.
#[derive(Debug)]
pub struct OpenRange {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl Body {
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Shared(b) => b.len() as u64,
            Body::Files { ranges, .. } => ranges.iter().map(|r| r.len).sum(),
        }
    }

    /// A body of the bytes of `ranges`, each file opened now.
    pub fn open(ranges: &[ferry_bundle::parts::FileRange]) -> std::io::Result<Body> {
        Body::open_checked(ranges, None)
    }

    /// Like [`Body::open`]; `check` (if any) verifies the bytes as they are sent.
    pub(crate) fn open_checked(
        ranges: &[ferry_bundle::parts::FileRange],
        check: Option<Deferred>,
    ) -> std::io::Result<Body> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(OpenRange {
                file: File::open(&r.path)?,
                offset: r.offset,
                len: r.len,
            });
        }
        Ok(Body::Files { ranges: out, check })
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Headers other than `Content-Length` and `Connection`, which are computed.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub const API_VERSION_HEADER: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

impl Response {
    pub fn new(status: u16, body: Body) -> Self {
        Response {
            status,
            headers: vec![(API_VERSION_HEADER.0, API_VERSION_HEADER.1.to_string())],
            body,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Response::new(status, Body::Bytes(body)).header("Content-Type", "application/json")
    }
    pub fn error(e: &ApiError) -> Self {
        let r = Response::json(e.status, e.body());
        if e.status == 405 {
            r.header("Allow", "GET, HEAD")
        } else {
            r
        }
    }
    #[cfg(test)]
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Writes `resp` (headers only when `head_only`); returns the body bytes sent.
pub fn write_response<T: ResponseSink>(
    io: &mut T,
    resp: &Response,
    head_only: bool,
    close: bool,
    use_sendfile: bool,
) -> io::Result<u64> {
    let mut out = Vec::with_capacity(256);
    write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    for (name, value) in &resp.headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    write!(out, "Content-Length: {}\r\n", resp.body.len())?;
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_only {
        io.write_all(&out)?;
        return Ok(0);
    }
    match &resp.body {
        Body::Bytes(b) => {
            out.extend_from_slice(b);
            io.write_all(&out)?;
            Ok(b.len() as u64)
        }
        Body::Shared(b) => {
            out.extend_from_slice(b);
            io.write_all(&out)?;
            Ok(b.len() as u64)
        }
        Body::Files { ranges, check } => {
            io.write_all(&out)?;
            match check {
                Some(check) => send_checked(io, ranges, check)?,
                None => {
                    for r in ranges {
                        send_file_range(io, &r.file, r.offset, r.len, use_sendfile)?;
                    }
                }
            }
            Ok(resp.body.len())
        }
    }
}
