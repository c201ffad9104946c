//! What a connection must offer the server: plain TCP, or TLS for remote nodes.
//!
//! A connection lives in two modes (see [`super::server`]). While it waits for a request
//! head it is *non-blocking* and owned by the waiting room, which calls
//! [`Transport::read_ready`] when the socket is readable: a TLS transport runs its
//! handshake there, step by step, so neither a handshake nor a head can hold a worker
//! thread however slowly it trickles in. Once a whole head has arrived the connection is
//! made *blocking* (with a write timeout) and a worker writes the response through
//! [`Write`]. An [`Acceptor`] wraps each accepted socket without any I/O.
//!
//! Only a transport that writes bytes to the socket unchanged exposes its socket for
//! `sendfile(2)`; anything that transforms bytes returns `None` and blobs go through a
//! read/write loop instead.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};

/// What a response is written to.
pub trait ResponseSink: Write {
    /// The socket file bytes may be `sendfile`d to, if bytes written to it reach the
    /// peer unchanged.
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>>;
}

/// Bytes collected in memory (refusals, and the fuzz target's replay).
impl ResponseSink for Vec<u8> {
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

pub trait Transport: ResponseSink + Send {
    /// The TCP socket underneath (for readiness, blocking mode and timeouts).
    fn socket(&self) -> &TcpStream;
    /// Reads request bytes that have arrived, without blocking: `Ok(0)` when the peer
    /// closed, `WouldBlock` when nothing (more) is there yet. Drives a TLS handshake.
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether protocol bytes (TLS records) wait to be sent before more can be read.
    fn wants_write(&self) -> bool {
        false
    }
    /// Sends what [`Transport::wants_write`] holds, without blocking.
    fn write_ready(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ResponseSink for TcpStream {
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
}

/// Turns an accepted socket into a [`Transport`]. Must not do I/O: the socket is
/// non-blocking and the accept loop must never wait for a client.
pub trait Acceptor: Send + Sync + 'static {
    type Conn: Transport + 'static;
    fn accept(&self, socket: TcpStream) -> io::Result<Self::Conn>;
}

/// Plain HTTP: the socket is the transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Conn = TcpStream;
    fn accept(&self, socket: TcpStream) -> io::Result<TcpStream> {
        Ok(socket)
    }
}

/// A transport that hides its socket from `sendfile`, forcing the read/write path
/// (tests, and what a TLS stream looks like to the HTTP layer).
#[derive(Debug)]
pub struct NoSendfile<T>(pub T);

impl<T: Write> Write for NoSendfile<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<T: Write> ResponseSink for NoSendfile<T> {
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}
impl<T: Transport> Transport for NoSendfile<T> {
    fn socket(&self) -> &TcpStream {
        self.0.socket()
    }
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_ready(buf)
    }
    fn wants_write(&self) -> bool {
        self.0.wants_write()
    }
    fn write_ready(&mut self) -> io::Result<()> {
        self.0.write_ready()
    }
}

/// Plain HTTP without `sendfile` (to compare the two paths).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcpNoSendfile;

impl Acceptor for PlainTcpNoSendfile {
    type Conn = NoSendfile<TcpStream>;
    fn accept(&self, socket: TcpStream) -> io::Result<Self::Conn> {
        Ok(NoSendfile(socket))
    }
}
