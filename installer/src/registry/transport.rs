//! What a connection must offer the HTTP layer, so TLS can be slotted in later.
//!
//! The HTTP code is generic over [`Transport`]: a plain [`TcpStream`] today, a rustls
//! stream for remote nodes tomorrow. An [`Acceptor`] turns each accepted socket into a
//! transport on a worker thread (where a TLS handshake would run, off the accept loop).
//! Only a transport that writes bytes to the socket unchanged exposes its socket for
//! `sendfile(2)`; anything that transforms bytes returns `None` and blobs go through a
//! read/write loop instead.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

pub trait Transport: Read + Write + Send {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// The socket file bytes may be `sendfile`d to, if bytes written to it reach the
    /// peer unchanged.
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

/// Turns an accepted socket into a [`Transport`] (e.g. runs a TLS handshake).
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

/// A transport that hides its socket, forcing the read/write path (tests, and what a
/// TLS stream looks like to the HTTP layer).
#[derive(Debug)]
pub struct NoSendfile<T>(pub T);

impl<T: Read> Read for NoSendfile<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl<T: Write> Write for NoSendfile<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<T: Transport> Transport for NoSendfile<T> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        None
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
