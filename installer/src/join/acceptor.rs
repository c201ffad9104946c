//! TLS for the registry's node-facing listener: a rustls connection as a registry
//! [`Transport`]. The handshake is driven without blocking by the server's waiting room
//! ([`Transport::read_ready`]), so a client that stalls in the middle of a handshake holds
//! no worker thread; once a request head has arrived the socket is blocking and the
//! response is written through rustls. Bytes are encrypted, so blobs go through the
//! read/write path instead of `sendfile`.

use crate::registry::{Acceptor, ResponseSink, Transport};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub struct TlsConn(StreamOwned<ServerConnection, TcpStream>);

impl Write for TlsConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl ResponseSink for TlsConn {
    fn sendfile_socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl Transport for TlsConn {
    fn socket(&self) -> &TcpStream {
        &self.0.sock
    }
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Plaintext rustls already holds (a pipelined request) comes first.
            match self.0.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // The handshake's next flight goes out before more is read.
            self.write_ready_inner()?;
            let s = &mut self.0;
            match s.conn.read_tls(&mut s.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = s.conn.process_new_packets() {
                        // Tell the peer why (an alert), as far as the socket takes it.
                        let _ = s.conn.write_tls(&mut s.sock);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) => {
                    self.write_ready_inner()?;
                    return Err(e);
                }
            }
        }
    }
    fn wants_write(&self) -> bool {
        self.0.conn.wants_write()
    }
    fn write_ready(&mut self) -> io::Result<()> {
        self.write_ready_inner()
    }
}

impl TlsConn {
    fn write_ready_inner(&mut self) -> io::Result<()> {
        let StreamOwned { conn, sock } = &mut self.0;
        while conn.wants_write() {
            match conn.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct TlsAcceptor(pub Arc<ServerConfig>);

impl Acceptor for TlsAcceptor {
    type Conn = TlsConn;
    fn accept(&self, socket: TcpStream) -> io::Result<TlsConn> {
        let conn = ServerConnection::new(self.0.clone()).map_err(io::Error::other)?;
        Ok(TlsConn(StreamOwned::new(conn, socket)))
    }
}
