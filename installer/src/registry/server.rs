//! The server: a waiting room for connections, and workers for responses.
//!
//! Why two parts: a connection that has not sent a whole request head costs nothing but
//! a descriptor and a small buffer, so it must not hold a thread. Before this design each
//! connection held a worker from its first byte, and 64 idle or trickling clients stalled
//! every pull for 30 s. Now:
//!
//! - **The waiting room** (one thread, `epoll`) owns every connection that is waiting for
//!   its next request head: new ones (a TLS handshake runs here too, step by step, see
//!   [`Transport::read_ready`]) and keep-alive ones between requests. It reads what has
//!   arrived without blocking, and only a connection with a *whole* head goes to a worker.
//!   It enforces the deadlines (a head must be complete within `head_timeout` of its
//!   first byte or of the connection's arrival, an idle keep-alive connection goes after
//!   `idle_timeout`), the head size cap (431), and the connection cap: at
//!   `max_connections`, a new connection evicts the longest-idle waiting one, so idle
//!   clients can never lock newcomers out. Refusals (400, 408, 431) are written without
//!   blocking, best effort.
//! - **Workers** (a [`Pool`] of at most `workers` threads) answer a request (and any whole
//!   pipelined ones behind it) on a blocking socket with `write_timeout` per stalled write,
//!   then hand the connection back to the waiting room. A client that stops reading while
//!   a response is sent holds its worker until that timeout; nothing else can.
//!
//! Threads: the waiting room, and at most `workers` workers (started on demand, retired
//! when idle). Memory: per waiting connection its head buffer (at most `max_head_bytes`,
//! allocated as bytes arrive) and, for TLS, rustls's buffers; `docs/reliability.md` has
//! the measurements. A panic in a worker is caught by the pool; the connection is closed.

use super::errors::{ApiError, ErrorCode};
use super::http::{parse_head, write_response, HeadError, Request, Response};
use super::pool::Pool;
use super::routes;
use super::store::ImageStore;
use super::transport::{Acceptor, PlainTcp, ResponseSink, Transport};
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::fd::OwnedFd;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits and knobs of the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most responses written at once (worker threads).
    pub workers: usize,
    /// Most connections open at once, waiting or being answered. A new connection beyond
    /// it evicts the longest-idle waiting one.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    pub max_head_bytes: usize,
    /// Time a client has to send a whole request head, from its first byte (a new
    /// connection: from its arrival, TLS handshake included); else 408.
    pub head_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Time a single write may stall (a client that stops reading).
    pub write_timeout: Duration,
    /// Send verified blob bodies with `sendfile(2)` where the transport allows it (plain
    /// TCP), instead of the `pread`/`write` copy loop. Off by default: over loopback, the
    /// one place plain HTTP is used, the copy loop was as fast or faster for skopeo,
    /// containerd and raw GETs (`docs/benchmarks.md` §3, `super::body`).
    pub sendfile: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 64,
            max_connections: 1024,
            max_head_bytes: 16 << 10,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            sendfile: false,
        }
    }
}

/// Serves plain HTTP on `listener` until the process ends.
pub fn serve(store: Arc<ImageStore>, listener: TcpListener, opts: ServeOptions) -> io::Result<()> {
    let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
    run(
        store,
        listener,
        opts,
        PlainTcp,
        Arc::new(AtomicBool::new(false)),
        wake,
    )
}

/// A server running on a background thread; stopped by [`RunningServer::stop`] or drop.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
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
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let (flag, w) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("registry-wait".into())
            .spawn(move || run(store, listener, opts, acceptor, flag, w))?;
        Ok(RunningServer {
            addr,
            stop,
            wake,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every waiting connection at once (a response in flight is
    /// finished) and joins all threads.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        poke(&self.wake);
        thread
            .join()
            .map_err(|_| io::Error::other("registry thread panicked"))?
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!("stopping the registry: {e}");
        }
    }
}

fn poke(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// What to do with the bytes a connection has sent so far.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A whole head: the request and the bytes it used.
    Request(Request, usize),
    /// Not a whole head yet.
    More,
    /// Answer with this status and message, and close.
    Refuse(u16, String),
}

/// Judges the buffered bytes of one connection; the same rules for the waiting room and
/// the fuzz target's replay.
pub(super) fn next(buf: &[u8], max_head: usize) -> Next {
    match parse_head(buf) {
        Ok(Some((req, used))) => Next::Request(req, used),
        Ok(None) if buf.len() >= max_head => {
            Next::Refuse(431, format!("request head larger than {max_head} bytes"))
        }
        Ok(None) => Next::More,
        Err(HeadError::TooLarge) => Next::Refuse(431, "too many request headers".into()),
        Err(HeadError::Malformed(m)) => Next::Refuse(400, m),
    }
}

/// Answers one request on `io`; `Ok(true)` if the connection may carry another.
pub(super) fn respond<S: ResponseSink>(
    store: &ImageStore,
    io: &mut S,
    req: &Request,
    peer: SocketAddr,
    sendfile: bool,
    stopping: bool,
) -> bool {
    let started = Instant::now();
    let resp = routes::handle_from(store, req, Some(peer.ip()));
    let close = !req.keep_alive || req.has_body || stopping;
    let result = write_response(io, &resp, req.method == "HEAD", close, sendfile);
    log(peer, req, &resp, &result, started);
    result.is_ok() && !close
}

/// The bytes of a refusal (small: written without blocking, best effort).
pub(super) fn refusal(status: u16, message: String) -> Vec<u8> {
    let resp = Response::error(&ApiError::new(status, ErrorCode::Unsupported, message));
    let mut out = Vec::new();
    let _ = write_response(&mut out, &resp, false, true, false);
    out
}

/// A connection in the waiting room.
struct Waiting<C> {
    conn: C,
    peer: SocketAddr,
    /// Bytes of the next request head(s) read so far.
    buf: Vec<u8>,
    /// When it entered the waiting room (arrived, or came back after a response).
    since: Instant,
    /// When the head being waited for began (first byte; arrival for a new connection).
    head_started: Option<Instant>,
    /// Registered for writability too (a TLS flight waits to be sent).
    out: bool,
}

/// A connection a worker hands back after its response.
struct Back<C> {
    conn: C,
    peer: SocketAddr,
    buf: Vec<u8>,
}

struct Shared<C> {
    back: Mutex<Vec<Back<C>>>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    /// Connections a worker holds.
    busy: AtomicUsize,
}

const LISTENER: u64 = 0;
const WAKE: u64 = 1;
const TICK: Duration = Duration::from_millis(100);

fn run<A: Acceptor>(
    store: Arc<ImageStore>,
    listener: TcpListener,
    opts: ServeOptions,
    acceptor: A,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &ep,
        &listener,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )?;
    epoll::add(
        &ep,
        &*wake,
        epoll::EventData::new_u64(WAKE),
        epoll::EventFlags::IN,
    )?;
    let shared = Arc::new(Shared {
        back: Mutex::new(Vec::new()),
        wake,
        stop: stop.clone(),
        busy: AtomicUsize::new(0),
    });
    let mut room = Room {
        ep,
        store,
        pool: Pool::new(opts.workers),
        opts: Arc::new(opts),
        shared,
        waiting: HashMap::new(),
        next_id: 2,
        accept_paused: None,
    };
    tracing::info!(addr = %listener.local_addr()?, "registry listening");
    let mut events = Vec::with_capacity(256);
    let mut last_sweep = Instant::now();
    let tick = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as i64,
    };
    while !stop.load(Ordering::SeqCst) {
        events.clear();
        match epoll::wait(
            &room.ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&tick),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in events.iter() {
            match ev.data.u64() {
                LISTENER => room.accept(&listener, &acceptor),
                WAKE => room.take_back(),
                id => room.pump(id),
            }
        }
        if last_sweep.elapsed() >= TICK {
            last_sweep = Instant::now();
            room.sweep(&listener);
        }
    }
    room.waiting.clear();
    room.pool.shutdown();
    tracing::info!("registry stopped");
    Ok(())
}

struct Room<C: Transport + 'static> {
    ep: OwnedFd,
    store: Arc<ImageStore>,
    opts: Arc<ServeOptions>,
    pool: Pool,
    shared: Arc<Shared<C>>,
    waiting: HashMap<u64, Waiting<C>>,
    next_id: u64,
    /// Accepting paused until then (out of descriptors).
    accept_paused: Option<Instant>,
}

impl<C: Transport + 'static> Room<C> {
    fn accept<A: Acceptor<Conn = C>>(&mut self, listener: &TcpListener, acceptor: &A) {
        // A bounded batch per wake-up, so that one flood cannot starve waiting clients.
        for _ in 0..64 {
            let (socket, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors: free one from the longest-idle client, or pause.
                    if !self.evict() {
                        tracing::warn!("accept: {e}; pausing new connections briefly");
                        let _ = epoll::modify(
                            &self.ep,
                            listener,
                            epoll::EventData::new_u64(LISTENER),
                            epoll::EventFlags::empty(),
                        );
                        self.accept_paused = Some(Instant::now() + Duration::from_millis(200));
                    }
                    return;
                }
            };
            let open = self.waiting.len() + self.shared.busy.load(Ordering::SeqCst);
            if open >= self.opts.max_connections && !self.evict() {
                // Every connection is being answered: this one has to wait for a later try.
                let mut s = &socket;
                let _ = s.write(&refusal(
                    503,
                    "the registry is at its connection limit; retry".into(),
                ));
                continue;
            }
            let setup = socket
                .set_nonblocking(true)
                .and_then(|()| socket.set_nodelay(true))
                .and_then(|()| acceptor.accept(socket));
            let conn = match setup {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%peer, "connection setup failed: {e}");
                    continue;
                }
            };
            let now = Instant::now();
            self.admit(
                Waiting {
                    conn,
                    peer,
                    buf: Vec::new(),
                    since: now,
                    head_started: Some(now),
                    out: false,
                },
                false,
            );
        }
    }

    /// Registers a connection with the waiting room; `pump_now` reads what it already
    /// holds (a connection handed back may carry a pipelined request).
    fn admit(&mut self, w: Waiting<C>, pump_now: bool) {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = epoll::add(
            &self.ep,
            w.conn.socket(),
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        ) {
            tracing::debug!(peer = %w.peer, "epoll add: {e}");
            return;
        }
        self.waiting.insert(id, w);
        if pump_now {
            self.pump(id);
        }
    }

    /// Closes the waiting connection idle for longest (or, if all are sending heads, the
    /// one whose head started first). False if none waits.
    fn evict(&mut self) -> bool {
        let victim = self
            .waiting
            .iter()
            .min_by_key(|(_, w)| (!w.buf.is_empty(), w.head_started.unwrap_or(w.since)))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                if let Some(w) = self.waiting.remove(&id) {
                    tracing::debug!(peer = %w.peer, "closed to make room for a new connection");
                }
                true
            }
            None => false,
        }
    }

    fn take_back(&mut self) {
        let mut n = [0u8; 8];
        let _ = rustix::io::read(&*self.shared.wake, &mut n);
        let back = std::mem::take(&mut *self.shared.back.lock().unwrap_or_else(|e| e.into_inner()));
        for b in back {
            if b.conn.socket().set_nonblocking(true).is_err() {
                continue;
            }
            let now = Instant::now();
            let head_started = (!b.buf.is_empty()).then_some(now);
            self.admit(
                Waiting {
                    conn: b.conn,
                    peer: b.peer,
                    buf: b.buf,
                    since: now,
                    head_started,
                    out: false,
                },
                true,
            );
        }
    }

    /// Reads what connection `id` has sent; dispatches a whole head to a worker, refuses
    /// a bad one, or keeps waiting.
    fn pump(&mut self, id: u64) {
        let max_head = self.opts.max_head_bytes;
        let Some(w) = self.waiting.get_mut(&id) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        // Bytes not yet judged: all of them when a connection comes back with some.
        let mut fresh = 0..w.buf.len();
        loop {
            // Judged when a line ends in the new bytes (or they are the first): a head
            // can only complete, or a request line turn out bad, at a line's end. A
            // client trickling a byte at a time is then parsed once per line (at most
            // 64 headers), not once per byte.
            let new = &w.buf[fresh.clone()];
            if fresh.start == 0 && !new.is_empty()
                || new.contains(&b'\n')
                || w.buf.len() >= max_head
            {
                match next(&w.buf, max_head) {
                    Next::Request(req, used) => return self.dispatch(id, req, used),
                    Next::Refuse(status, message) => return self.refuse(id, status, message),
                    Next::More => {}
                }
            }
            let room = (max_head - w.buf.len()).min(chunk.len());
            match w.conn.read_ready(&mut chunk[..room]) {
                Ok(0) => {
                    self.waiting.remove(&id);
                    return;
                }
                Ok(n) => {
                    fresh = w.buf.len()..w.buf.len() + n;
                    w.buf.extend_from_slice(&chunk[..n]);
                    w.head_started.get_or_insert_with(Instant::now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(peer = %w.peer, "reading request: {e}");
                    self.waiting.remove(&id);
                    return;
                }
            }
        }
        // Waiting for more: also for writability while a TLS flight is pending.
        if w.conn.write_ready().is_err() {
            self.waiting.remove(&id);
            return;
        }
        let out = w.conn.wants_write();
        if out != w.out {
            w.out = out;
            let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
            if out {
                flags |= epoll::EventFlags::OUT;
            }
            let _ = epoll::modify(
                &self.ep,
                w.conn.socket(),
                epoll::EventData::new_u64(id),
                flags,
            );
        }
    }

    /// Writes a refusal without blocking, as far as the socket takes it, and closes.
    fn refuse(&mut self, id: u64, status: u16, message: String) {
        if let Some(mut w) = self.waiting.remove(&id) {
            tracing::debug!(peer = %w.peer, status, "{message}");
            let _ = w.conn.write_all(&refusal(status, message));
            let _ = w.conn.flush();
            let _ = w.conn.write_ready();
        }
    }

    /// Hands a connection with a whole request head to a worker.
    fn dispatch(&mut self, id: u64, req: Request, used: usize) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        let _ = epoll::delete(&self.ep, w.conn.socket());
        let Waiting {
            mut conn,
            peer,
            mut buf,
            ..
        } = w;
        let sock = conn.socket();
        let timeout = Some(self.opts.write_timeout);
        if let Err(e) = sock
            .set_nonblocking(false)
            .and_then(|()| sock.set_write_timeout(timeout))
            .and_then(|()| sock.set_read_timeout(timeout))
        {
            tracing::debug!(%peer, "socket setup: {e}");
            return;
        }
        let (store, opts, shared) = (self.store.clone(), self.opts.clone(), self.shared.clone());
        shared.busy.fetch_add(1, Ordering::SeqCst);
        let job = Box::new(move || {
            let _busy = Busy(&shared.busy);
            let (mut req, mut used) = (req, used);
            loop {
                buf.drain(..used);
                let stopping = shared.stop.load(Ordering::Relaxed);
                if !respond(&store, &mut conn, &req, peer, opts.sendfile, stopping) {
                    return;
                }
                // A whole pipelined request behind it is answered at once.
                match parse_head(&buf) {
                    Ok(Some((r, u))) => (req, used) = (r, u),
                    _ => break,
                }
            }
            shared
                .back
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Back { conn, peer, buf });
            poke(&shared.wake);
        });
        if self.pool.submit(job).is_err() {
            tracing::debug!(%peer, "registry stopping: connection dropped");
        }
    }

    /// Closes connections past their deadlines; resumes accepting after a pause.
    fn sweep(&mut self, listener: &TcpListener) {
        let now = Instant::now();
        let (head, idle) = (self.opts.head_timeout, self.opts.idle_timeout);
        let late: Vec<(u64, bool)> = self
            .waiting
            .iter()
            .filter_map(|(id, w)| match w.head_started {
                Some(t) if now.duration_since(t) > head => Some((*id, !w.buf.is_empty())),
                None if now.duration_since(w.since) > idle => Some((*id, false)),
                _ => None,
            })
            .collect();
        for (id, started) in late {
            if started {
                self.refuse(id, 408, "request head not received in time".into());
            } else {
                self.waiting.remove(&id);
            }
        }
        if self.accept_paused.is_some_and(|t| now >= t) {
            self.accept_paused = None;
            let _ = epoll::modify(
                &self.ep,
                listener,
                epoll::EventData::new_u64(LISTENER),
                epoll::EventFlags::IN,
            );
        }
    }
}

/// Counts a connection as held by a worker until dropped (also on a panic).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
