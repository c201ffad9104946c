//! One repository on one registry, over HTTP: authentication, retries and status mapping.
//!
//! Every request goes through [`Client::send`]: it adds the current `Authorization`,
//! answers a 401 challenge once (Basic or Bearer, see [`super::auth`]), retries connect
//! errors, 5xx and 429 with exponential backoff (honouring `Retry-After`), and turns what is
//! left into a [`PullError`] that names the reference and the registry. Callers only ever
//! see 2xx responses.

use super::auth::{self, Authorization, Challenge};
use super::dockerconfig::{Credentials, DockerConfig};
use super::endpoint::Endpoint;
use super::error::PullError;
use super::options::PullOptions;
use ferry_bundle::reference::Reference;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;

fn http_err(e: ureq::http::Error) -> ureq::Error {
    ureq::Error::Http(e)
}

/// Longest single backoff, whatever `Retry-After` says: a build should fail, not hang.
const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// Opens a request body afresh: a retried or re-authorised request sends it again.
pub type OpenBody<'a> = dyn Fn() -> std::io::Result<Box<dyn Read + 'a>> + Sync + 'a;

/// What a request sends.
pub enum ReqBody<'a> {
    None,
    Bytes(&'a [u8]),
    /// `len` bytes from a stream (a blob of a 20 GB bundle is never held in memory).
    Stream {
        len: u64,
        open: &'a OpenBody<'a>,
    },
}

/// One request: method, URL, `Accept`, extra headers and the body.
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub accept: Option<&'a str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReqBody<'a>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            accept: None,
            headers: Vec::new(),
            body: ReqBody::None,
        }
    }
    pub fn accept(mut self, a: &'a str) -> Self {
        self.accept = Some(a);
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, b: ReqBody<'a>) -> Self {
        self.body = b;
        self
    }
}

/// What a client is for: the token scope it asks for and the access messages name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// An HTTP client bound to one reference's endpoint. Shared by the download threads
/// (`&Client` is `Sync`), so a token fetched by one is used by all.
pub struct Client {
    /// Replaced by [`Client::close_idle`]; requests clone it (an `Agent` is a handle).
    agent: Mutex<ureq::Agent>,
    pub endpoint: Endpoint,
    reference: String,
    creds: Option<Credentials>,
    config_name: String,
    auth: Mutex<Authorization>,
    attempts: u32,
    retry_delay: Duration,
    insecure: Vec<String>,
    access: Access,
}

impl Client {
    pub fn new(reference: &Reference, opts: &PullOptions) -> Result<Client, PullError> {
        Self::with_access(reference, opts, Access::Pull)
    }

    /// A client for `reference` that may also push to it (token scope `pull,push`).
    pub fn with_access(
        reference: &Reference,
        opts: &PullOptions,
        access: Access,
    ) -> Result<Client, PullError> {
        let endpoint = Endpoint::resolve(reference, opts);
        let config_path = opts
            .docker_config
            .clone()
            .or_else(DockerConfig::default_path);
        let config = DockerConfig::load(config_path.as_deref())?;
        let creds = config.credentials_for(&endpoint.auth_host);
        let config_name = config_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.docker/config.json".to_string());
        Ok(Client {
            agent: Mutex::new(agent(opts.connect_timeout, opts.read_timeout)),
            endpoint,
            reference: reference.to_string(),
            creds,
            config_name,
            auth: Mutex::new(Authorization::None),
            attempts: opts.attempts.max(1),
            retry_delay: opts.retry_delay,
            insecure: opts.insecure_registries.clone(),
            access,
        })
    }

    /// Closes the connections this client keeps open for its next request (each holds
    /// ureq's 256 KiB of buffers). The next request, if any, connects again; a request in
    /// flight keeps its connection and closes it when done.
    pub fn close_idle(&self) {
        let mut agent = self.agent.lock().unwrap_or_else(|e| e.into_inner());
        *agent = ureq::Agent::new_with_config(agent.config().clone());
    }

    fn agent(&self) -> ureq::Agent {
        self.agent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The reference being pulled, for messages.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The registry contacted, for messages (`host (mirror of docker.io)`).
    pub fn registry(&self) -> String {
        self.endpoint.display_host()
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Sends a request and returns a 2xx response; everything else becomes a `PullError`.
    /// `what` names the object for messages (`manifest 1.27`, `blob sha256:…`).
    pub fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response<ureq::Body>, PullError> {
        let mut req = Request::new(method, url);
        req.accept = accept;
        let resp = self.exchange(&req, what)?;
        self.check(resp, what)
    }

    /// Sends a request, answering an authentication challenge once and retrying what is
    /// worth retrying, and returns the response whatever its status (a 401 that survives
    /// a fresh challenge is an error here). Callers that expect a 404 or a 202 look at the
    /// status themselves and hand the rest to [`Client::check`].
    pub fn exchange(&self, req: &Request, what: &str) -> Result<Response<ureq::Body>, PullError> {
        let mut answered_challenge = false;
        loop {
            let used = self.auth.lock().expect("auth lock").clone();
            let (mut resp, _) = self.call_with_retry(what, || self.call(req, &used))?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            if answered_challenge {
                return Err(PullError::Unauthorized {
                    reference: self.reference.clone(),
                    registry: self.registry(),
                    status: 401,
                    detail: error_detail(&mut resp),
                    hint: self.login_hint(),
                });
            }
            answered_challenge = true;
            self.answer_challenge(&resp, &used)?;
        }
    }

    /// One attempt of `req` with `auth`.
    fn call(
        &self,
        req: &Request,
        auth: &Authorization,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut b = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(req.url);
        if let Some(a) = req.accept {
            b = b.header("Accept", a);
        }
        if let Some(h) = auth.header() {
            b = b.header("Authorization", h);
        }
        for (k, v) in &req.headers {
            b = b.header(*k, v.as_str());
        }
        let has_body = matches!(req.method, Method::Post | Method::Put | Method::Patch);
        let agent = self.agent();
        match &req.body {
            ReqBody::None if !has_body => agent.run(b.body(()).map_err(http_err)?),
            ReqBody::None => agent.run(
                b.header("Content-Length", "0")
                    .body(&[][..])
                    .map_err(http_err)?,
            ),
            ReqBody::Bytes(bytes) => agent.run(
                b.header("Content-Length", bytes.len().to_string())
                    .body(*bytes)
                    .map_err(http_err)?,
            ),
            ReqBody::Stream { len, open } => {
                let mut r = open().map_err(ureq::Error::Io)?;
                let body = ureq::SendBody::from_reader(&mut r);
                agent.run(
                    b.header("Content-Length", len.to_string())
                        .body(body)
                        .map_err(http_err)?,
                )
            }
        }
    }

    /// A 2xx response as is; any other status as the `PullError` that explains it.
    pub fn check(
        &self,
        mut resp: Response<ureq::Body>,
        what: &str,
    ) -> Result<Response<ureq::Body>, PullError> {
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(resp),
            401 => Err(PullError::Unauthorized {
                reference: self.reference.clone(),
                registry: self.registry(),
                status,
                detail: error_detail(&mut resp),
                hint: self.login_hint(),
            }),
            403 => Err(PullError::Denied {
                reference: self.reference.clone(),
                registry: self.registry(),
                action: match self.access {
                    Access::Pull => "pull from",
                    Access::Push => "push to",
                },
            }),
            404 => {
                let hint = if self.endpoint.mirror_of.is_some() {
                    format!(
                        "; the mirror lacks it: copy it to {}/{} first",
                        self.endpoint.host, self.endpoint.repository
                    )
                } else {
                    "; check the repository name, tag and digest".to_string()
                };
                Err(PullError::NotFound {
                    reference: self.reference.clone(),
                    registry: self.registry(),
                    what: what.to_string(),
                    hint,
                })
            }
            _ => {
                let mut detail = error_detail(&mut resp);
                if status == 429 || status >= 500 {
                    detail.push_str("; the registry is overloaded or failing, try again later");
                } else if status == 400 && self.endpoint.scheme == "http" {
                    detail.push_str(&format!(
                        "; if {} serves HTTPS, drop --insecure-registry {0}",
                        self.endpoint.host
                    ));
                }
                Err(PullError::Status {
                    reference: self.reference.clone(),
                    registry: self.registry(),
                    what: what.to_string(),
                    status,
                    attempts: self.attempts,
                    detail,
                })
            }
        }
    }

    /// Runs `call` until it gives a response that is neither 5xx nor 429, or attempts run
    /// out; transport errors that may be transient are retried too. Returns the last
    /// response and the number of attempts made.
    fn call_with_retry(
        &self,
        what: &str,
        call: impl Fn() -> Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<(Response<ureq::Body>, u32), PullError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.attempts;
            match call() {
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    if (s == 429 || s >= 500) && !last {
                        let delay = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                        tracing::debug!(
                            "{what}: {s} from {}, retrying in {delay:?}",
                            self.registry()
                        );
                        std::thread::sleep(delay.min(MAX_DELAY));
                        continue;
                    }
                    return Ok((resp, attempt));
                }
                Err(e) if transient(&e) && !last => {
                    let delay = self.backoff(attempt);
                    tracing::debug!("{what}: {e} ({}), retrying in {delay:?}", self.registry());
                    std::thread::sleep(delay);
                }
                Err(e) => return Err(self.connect_error(&e, attempt)),
            }
        }
    }

    /// `retry_delay * 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_delay.saturating_mul(factor).min(MAX_DELAY)
    }

    /// Answers a 401: works out a new `Authorization` from its challenge. If another thread
    /// already replaced the one that failed, that newer one is simply tried.
    fn answer_challenge(
        &self,
        resp: &Response<ureq::Body>,
        used: &Authorization,
    ) -> Result<(), PullError> {
        let mut current = self.auth.lock().expect("auth lock");
        if *current != *used {
            return Ok(());
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(auth::parse_www_authenticate)
            .collect();
        let unauthorized = |detail: &str| PullError::Unauthorized {
            reference: self.reference.clone(),
            registry: self.registry(),
            status: 401,
            detail: detail.to_string(),
            hint: self.login_hint(),
        };
        let next = match auth::preferred(&challenges) {
            Some(c) if c.scheme == "bearer" => {
                Authorization::Bearer(format!("Bearer {}", self.fetch_token(c)?))
            }
            Some(_) => auth::basic(self.creds.as_ref()).ok_or_else(|| {
                unauthorized(": the registry wants a user name and password and none is configured")
            })?,
            None => return Err(unauthorized(": no usable WWW-Authenticate challenge")),
        };
        if next == *used {
            return Err(unauthorized(": the registry rejected the credentials"));
        }
        *current = next;
        Ok(())
    }

    /// Fetches a Bearer token from the challenge's realm, with Basic credentials if there
    /// are any. Credentials go to a plain-HTTP realm only if that realm's host is listed as
    /// insecure (or is the insecure registry itself), never by accident.
    fn fetch_token(&self, challenge: &Challenge) -> Result<String, PullError> {
        let realm = challenge.param("realm").unwrap_or("").to_string();
        let fail = |detail: String| PullError::Token {
            reference: self.reference.clone(),
            registry: self.registry(),
            realm: realm.clone(),
            detail,
            hint: self.login_hint(),
        };
        let scope = match self.access {
            Access::Pull => self.endpoint.pull_scope(),
            Access::Push => self.endpoint.push_scope(),
        };
        let url = auth::token_url(challenge, &scope)
            .ok_or_else(|| fail("the challenge has no realm".into()))?;
        let realm_host = url
            .split_once("://")
            .map(|(_, r)| r.split(['/', '?']).next().unwrap_or(""))
            .unwrap_or("");
        let plain = url.starts_with("http://");
        if !plain && !url.starts_with("https://") {
            return Err(fail("the realm is not an http(s) URL".into()));
        }
        let creds = self.creds.as_ref().filter(|_| {
            !plain
                || self
                    .insecure
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(realm_host))
        });
        let (mut resp, _) = self.call_with_retry("token", || {
            let mut req = self.agent().get(&url);
            if let Some(c) = creds {
                req = req.header("Authorization", c.basic_header());
            }
            req.call()
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = if status == 401 && creds.is_some() {
                " (credentials rejected)".to_string()
            } else if status == 401 {
                " (anonymous access refused)".to_string()
            } else {
                String::new()
            };
            return Err(fail(format!(
                "HTTP {status}{why}{}",
                error_detail(&mut resp)
            )));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))?;
        auth::parse_token_reply(&body).map_err(fail)
    }

    /// What to do about rejected or missing credentials.
    fn login_hint(&self) -> String {
        let host = &self.endpoint.auth_host;
        format!(
            "check the credentials for {host} in {} or run `docker login {host}`",
            self.config_name
        )
    }

    fn connect_error(&self, e: &ureq::Error, attempts: u32) -> PullError {
        let text = e.to_string();
        let tls_like = matches!(e, ureq::Error::Tls(_))
            || text.contains("InvalidContentType")
            || text.contains("corrupt message")
            || text.to_ascii_lowercase().contains("tls");
        let hint = if tls_like && self.endpoint.scheme == "https" {
            format!(
                "; if {} serves plain HTTP, pass --insecure-registry {0}",
                self.endpoint.host
            )
        } else if matches!(e, ureq::Error::HostNotFound) {
            "; check the host name and DNS".to_string()
        } else {
            "; check that the registry is running and reachable from this machine".to_string()
        };
        PullError::Connect {
            reference: self.reference.clone(),
            registry: self.registry(),
            detail: format!("{text} (after {attempts} attempt(s))"),
            hint,
        }
    }
}

/// The builder's HTTP agent (registry pulls and release downloads): every status is a
/// response, not an error; connects and reads time out, whole transfers do not (layers and
/// release files can be GBs).
pub(crate) fn agent(connect: Duration, read: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(read))
        .timeout_per_read(Some(read))
        // Uploads (`ferry push`) write bodies: a stalled write is retried, not waited on.
        .timeout_per_write(Some(read))
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// A response header's value, trimmed.
pub fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Transport errors worth another try: the connection, not the request, was the problem.
pub(crate) fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// `Retry-After: <seconds>` (the HTTP-date form is rare from registries and ignored).
pub(crate) fn retry_after(resp: &Response<ureq::Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A short description of an error body: the Distribution spec's `errors[].code/message`
/// if it has them, else its first line; `: …` prefixed, or empty.
pub(crate) fn error_detail(resp: &mut Response<ureq::Body>) -> String {
    let mut buf = Vec::new();
    let _ = resp.body_mut().as_reader().take(4096).read_to_end(&mut buf);
    describe_error_body(&buf)
}

pub(crate) fn describe_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|x| format!("{} {}", x.code, x.message).trim().to_string())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line: String = line.chars().take(200).collect();
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_distribution_errors() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            describe_error_body(body),
            ": MANIFEST_UNKNOWN manifest unknown"
        );
        assert_eq!(describe_error_body(b"\n  oops\nmore"), ": oops");
        assert_eq!(describe_error_body(b""), "");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = Reference::parse("localhost:1/x").unwrap();
        let opts = PullOptions {
            retry_delay: Duration::from_millis(100),
            docker_config: Some("/nonexistent/ferry/config.json".into()),
            ..Default::default()
        };
        let c = Client::new(&r, &opts).unwrap();
        assert_eq!(c.backoff(1), Duration::from_millis(100));
        assert_eq!(c.backoff(3), Duration::from_millis(400));
        assert_eq!(c.backoff(40), MAX_DELAY);
    }

    #[test]
    fn close_idle_closes_the_kept_connection() {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = l.local_addr().unwrap().to_string();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            while r.read_line(&mut String::new()).unwrap() > 2 {}
            (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            // Keep-alive: the client keeps this connection until it closes it.
            let n = r.read(&mut [0u8; 1]).unwrap();
            closed_tx.send(n).unwrap();
        });
        let opts = PullOptions {
            insecure_registries: vec![host.clone()],
            docker_config: Some("/nonexistent/ferry/config.json".into()),
            attempts: 1,
            ..Default::default()
        };
        let c = Client::new(&Reference::parse(&format!("{host}/x/y:1")).unwrap(), &opts).unwrap();
        let url = format!("http://{host}/v2/");
        let mut resp = c.send(Method::Get, &url, None, "ping").unwrap();
        assert_eq!(resp.body_mut().read_to_vec().unwrap(), b"{}");
        drop(resp);
        let wait = Duration::from_millis(300);
        assert!(
            closed_rx.recv_timeout(wait).is_err(),
            "the connection is kept for the next request"
        );
        c.close_idle();
        assert_eq!(closed_rx.recv_timeout(Duration::from_secs(5)), Ok(0), "EOF");
        server.join().unwrap();
    }
}
