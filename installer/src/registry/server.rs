//! The accept loop and the per-connection request loop.
//!
//! One blocking thread per connection, from a bounded [`Pool`]; HTTP/1.1 keep-alive and
//! pipelining; every read and write bounded by a timeout, so a stuck or hostile client
//! costs one worker for a bounded time and never the process. When connections are
//! queued for a worker, a connection hands its worker back after its current response
//! (`Connection: close`), or as soon as it goes idle, so a hundred pulling clients all
//! make progress on 64 workers.

use super::errors::{ApiError, ErrorCode};
use super::http::{write_response, ReadError, Request, RequestReader, Response};
use super::pool::{Backlog, Pool};
use super::routes;
use super::store::ImageStore;
use super::transport::{Acceptor, PlainTcp, Transport};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits and knobs of the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections served at once; further ones queue.
    pub workers: usize,
    /// Most connections queued for a worker; beyond that they wait in the listen backlog.
    pub queue: usize,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    pub max_head_bytes: usize,
    /// Time a client has to send a whole request head once it started one (else 408).
    pub head_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Time a single write may stall (a client that stops reading).
    pub write_timeout: Duration,
    /// Send blob bodies with `sendfile(2)` where the transport allows it.
    pub sendfile: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 64,
            queue: 1024,
            max_head_bytes: 16 << 10,
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            sendfile: true,
        }
    }
}

/// Serves plain HTTP on `listener` until the process ends.
pub fn serve(store: Arc<ImageStore>, listener: TcpListener, opts: ServeOptions) -> io::Result<()> {
    run(
        store,
        listener,
        opts,
        PlainTcp,
        Arc::new(AtomicBool::new(false)),
    )
}

/// A server running on a background thread; stopped by [`RunningServer::stop`] or drop.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// Serves plain HTTP on `listener` from a background thread.
    pub fn start(
        store: Arc<ImageStore>,
        listener: TcpListener,
        opts: ServeOptions,
    ) -> io::Result<RunningServer> {
        Self::start_with(store, listener, opts, PlainTcp)
    }

    /// Like [`RunningServer::start`], with each connection set up by `acceptor` (TLS).
    pub fn start_with<A: Acceptor>(
        store: Arc<ImageStore>,
        listener: TcpListener,
        opts: ServeOptions,
        acceptor: A,
    ) -> io::Result<RunningServer> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("registry-accept".into())
            .spawn(move || run(store, listener, opts, acceptor, flag))?;
        Ok(RunningServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection (within a fraction of a second for idle
    /// ones; a response in flight is finished) and joins all threads.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(2));
        thread
            .join()
            .map_err(|_| io::Error::other("registry accept thread panicked"))?
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!("stopping the registry: {e}");
        }
    }
}

/// How long a new connection may stay silent while others wait for a worker.
const FRESH_GRACE: Duration = Duration::from_secs(2);

struct Ctx {
    opts: ServeOptions,
    stop: Arc<AtomicBool>,
    backlog: Backlog,
}

fn run<A: Acceptor>(
    store: Arc<ImageStore>,
    listener: TcpListener,
    opts: ServeOptions,
    acceptor: A,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let pool = Pool::new(opts.workers, opts.queue);
    let ctx = Arc::new(Ctx {
        opts,
        stop: stop.clone(),
        backlog: pool.backlog(),
    });
    let acceptor = Arc::new(acceptor);
    tracing::info!(addr = %listener.local_addr()?, "registry listening");
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or memory: back off and let connections finish.
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let (store, acceptor, ctx) = (store.clone(), acceptor.clone(), ctx.clone());
        let job = Box::new(move || connection(&store, &*acceptor, socket, peer, &ctx));
        if pool.submit(job).is_err() {
            break;
        }
    }
    pool.shutdown();
    tracing::info!("registry stopped");
    Ok(())
}

fn connection<A: Acceptor>(
    store: &ImageStore,
    acceptor: &A,
    socket: TcpStream,
    peer: SocketAddr,
    ctx: &Ctx,
) {
    let _ = socket.set_nodelay(true);
    let mut conn = match acceptor.accept(socket) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%peer, "connection setup failed: {e}");
            return;
        }
    };
    serve_connection(store, &mut conn, peer, ctx);
}

fn serve_connection<T: Transport>(store: &ImageStore, io: &mut T, peer: SocketAddr, ctx: &Ctx) {
    let opts = &ctx.opts;
    if let Err(e) = io.set_write_timeout(Some(opts.write_timeout)) {
        tracing::debug!(%peer, "set_write_timeout: {e}");
        return;
    }
    let mut reader = RequestReader::new(opts.max_head_bytes);
    let mut served = 0u64;
    loop {
        let let_go = |idle: Duration| {
            ctx.stop.load(Ordering::Relaxed)
                || idle >= opts.idle_timeout
                || ((served > 0 || idle >= FRESH_GRACE) && ctx.backlog.waiting() > 0)
        };
        let req = match reader.next(io, opts.head_timeout, &let_go) {
            Ok(req) => req,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(e)) => {
                tracing::debug!(%peer, "reading request: {e}");
                return;
            }
            Err(ReadError::TooLarge) => {
                let limit = opts.max_head_bytes;
                return refuse(
                    io,
                    peer,
                    431,
                    format!("request head larger than {limit} bytes"),
                );
            }
            Err(ReadError::Malformed(m)) => return refuse(io, peer, 400, m),
            Err(ReadError::Timeout) => {
                return refuse(io, peer, 408, "request head not received in time".into())
            }
        };
        let started = Instant::now();
        let resp = routes::handle_from(store, &req, Some(peer.ip()));
        served += 1;
        let close = !req.keep_alive
            || req.has_body
            || ctx.stop.load(Ordering::Relaxed)
            || ctx.backlog.waiting() > 0;
        let result = write_response(io, &resp, req.method == "HEAD", close, opts.sendfile);
        log(peer, &req, &resp, &result, started);
        if result.is_err() || close {
            return;
        }
    }
}

fn refuse<T: Transport>(io: &mut T, peer: SocketAddr, status: u16, message: String) {
    tracing::debug!(%peer, status, "{message}");
    let resp = Response::error(&ApiError::new(status, ErrorCode::Unsupported, message));
    let _ = write_response(io, &resp, false, true, false);
}

fn log(
    peer: SocketAddr,
    req: &Request,
    resp: &Response,
    result: &io::Result<u64>,
    started: Instant,
) {
    let elapsed = started.elapsed();
    match result {
        Ok(bytes) if resp.status >= 500 => {
            tracing::warn!(%peer, method = %req.method, target = %req.target, status = resp.status, bytes, ?elapsed, "request failed")
        }
        Ok(bytes) => {
            tracing::debug!(%peer, method = %req.method, target = %req.target, status = resp.status, bytes, ?elapsed, "request")
        }
        Err(e) => {
            tracing::debug!(%peer, method = %req.method, target = %req.target, status = resp.status, ?elapsed, "response cut short: {e}")
        }
    }
}
