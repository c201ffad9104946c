//! The installer's read-only OCI Distribution registry, served straight out of the bundle.
//!
//! Images stay where the bundle put them: every blob is a byte range of the staged
//! `delivery.run` (or a file of an OCI layout), copied to the socket from there (`body`
//! has the two ways, `sendfile(2)` and a copy loop, and why). The server is a
//! small blocking HTTP/1.1 implementation on `std::net` with a bounded thread pool: the API
//! is a handful of GET/HEAD routes, and the installer must stay a small static binary
//! (DESIGN §5 has the measurements that chose this over hyper).
//!
//! Image names are never rewritten. containerd, configured with a `hosts.toml` mirror per
//! upstream host, sends `?ns=<upstream host>`, and the registry resolves the repository
//! within that host, so `docker.io/library/x` and `quay.io/library/x` stay distinct.
//! Clients that cannot send `ns` use `/v2/<host>/<repository>/…` or an unambiguous
//! repository path.
//!
//! Layout: [`store`] (what is served) is built by `load` from images and blob locations
//! (or by `layout` from an OCI layout); `routes` answers requests using `path`, `names`,
//! `range` and `pagination`, and counts what it could not answer in [`misses`]; `server`
//! runs connections over `http`, `body` and a `pool`,
//! generic over a [`Transport`] so TLS can be added. Every blob is checked against its
//! digest once (`verify`): in the background at idle priority from the `registry`
//! command's start, or, for a blob asked for first, while its first full GET is sent (the
//! last chunk only goes out if the digest matches); HEAD and range requests on a blob not
//! yet verified hash it before answering.

mod body;
mod errors;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http;
mod layout;
mod load;
pub mod misses;
mod names;
mod pagination;
mod path;
mod pool;
mod range;
mod routes;
mod server;
mod store;
mod transport;
mod verify;

#[cfg(test)]
mod tests;

pub use errors::{ApiError, ErrorCode, RegistryError};
pub use http::{Body, Request, Response};
pub use misses::{MissLog, MissReport};
pub use names::{percent_decode, percent_encode};
pub use server::{serve, RunningServer, ServeOptions};
pub use store::{BlobLocation, Extension, ExtensionFn, ImageStore, SkippedImage, StoredImage};
pub use transport::{Acceptor, NoSendfile, PlainTcp, PlainTcpNoSendfile, ResponseSink, Transport};
pub use verify::verify_in_background;
