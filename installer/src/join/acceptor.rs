//! TLS for the registry's node-facing listener: a rustls stream as a registry
//! [`Transport`] (the handshake runs on the worker thread, off the accept loop). Bytes are
//! encrypted, so blobs go through the read/write path instead of `sendfile`.

use crate::registry::{Acceptor, Transport};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

pub struct TlsConn(StreamOwned<ServerConnection, TcpStream>);

impl Read for TlsConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for TlsConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl Transport for TlsConn {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_read_timeout(t)
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_write_timeout(t)
    }
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

#[derive(Clone)]
pub struct TlsAcceptor(pub Arc<ServerConfig>);

impl Acceptor for TlsAcceptor {
    type Conn = TlsConn;
    fn accept(&self, socket: TcpStream) -> io::Result<TlsConn> {
        socket.set_read_timeout(Some(Duration::from_secs(30)))?;
        let conn = ServerConnection::new(self.0.clone()).map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, socket);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(TlsConn(s))
    }
}
