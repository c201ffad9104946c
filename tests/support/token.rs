//! A token server for Distribution's own `auth: token` mode, so tests run the registry's
//! real Bearer flow (challenge with scope, token endpoint, JWT checked by the registry for
//! issuer, audience, expiry, signature and the granted actions) rather than a stand-in.
//!
//! The server signs ES256 JWTs with a fresh P-256 key whose self-signed certificate is the
//! registry's `rootcertbundle`; the certificate travels in the token's `x5c` header, which
//! Distribution checks against that bundle. A client presenting the Basic credentials gets
//! every action it asks for; an anonymous client gets `pull` only where
//! [`TokenServer::anonymous_pull`] allows it. Every request is counted and its query kept,
//! so tests can see which scopes a client asked for.

use anyhow::Result;
use base64::Engine as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "ferry-test-registry";
pub const ISSUER: &str = "ferry-test-issuer";

/// A running token server. Stops on drop.
pub struct TokenServer {
    host: String,
    cert_path: PathBuf,
    _dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    state: Arc<State>,
}

struct State {
    user: String,
    password: String,
    key: ring::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
    anonymous_pull: AtomicBool,
    requests: AtomicUsize,
    queries: Mutex<Vec<String>>,
}

impl TokenServer {
    /// Starts a server that grants `user`/`password` everything asked for.
    pub fn start(user: &str, password: &str) -> Result<TokenServer> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ferry test token signer");
        let cert = params.self_signed(&key)?;
        let dir = tempfile::Builder::new().prefix("ferry-token-").tempdir()?;
        let cert_path = dir.path().join("token-signer.pem");
        std::fs::write(&cert_path, cert.pem())?;
        let rng = ring::rand::SystemRandom::new();
        let signing = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?.to_string();
        let state = Arc::new(State {
            user: user.to_string(),
            password: password.to_string(),
            key: signing,
            cert_der: cert.der().to_vec(),
            anonymous_pull: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            queries: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, state2) = (stop.clone(), state.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state2.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &state);
                });
            }
        });
        Ok(TokenServer {
            host,
            cert_path,
            _dir: dir,
            stop,
            state,
        })
    }

    /// Lets anonymous clients pull (as a public Harbor project does).
    pub fn anonymous_pull(&self, allow: bool) {
        self.state.anonymous_pull.store(allow, Ordering::SeqCst);
    }

    /// The `auth:` section of a Distribution config that trusts this server.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.host,
            self.cert_path.display()
        )
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many token requests arrived.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The query strings of every token request so far.
    pub fn queries(&self) -> Vec<String> {
        self.state.queries.lock().unwrap().clone()
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host);
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn serve(mut conn: TcpStream, st: &State) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let auth = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    st.requests.fetch_add(1, Ordering::SeqCst);
    let query = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .to_string();
    st.queries.lock().unwrap().push(query.clone());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", st.user, st.password))
    );
    let authenticated = auth == expected;
    if !auth.is_empty() && !authenticated {
        return respond(
            &mut conn,
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#,
        );
    }
    if !authenticated && !st.anonymous_pull.load(Ordering::SeqCst) {
        return respond(
            &mut conn,
            "401 Unauthorized",
            r#"{"details":"log in first"}"#,
        );
    }
    let mut access = Vec::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k != "scope" {
            continue;
        }
        let v = percent_decode(v);
        let mut parts = v.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let actions: Vec<&str> = actions
            .split(',')
            .filter(|a| authenticated || *a == "pull")
            .collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": actions}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&st.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": if authenticated { st.user.as_str() } else { "" },
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", st.requests.load(Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = st
        .key
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .map_err(|_| io::Error::other("signing failed"))?;
    let token = format!("{signing_input}.{}", b64url(sig.as_ref()));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    respond(&mut conn, "200 OK", &body)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.shutdown(Shutdown::Write)
}
