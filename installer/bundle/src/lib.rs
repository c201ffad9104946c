//! The `delivery.run` bundle format, defined once and used by both halves of ferry.
//!
//! A bundle is `[ installer stub ][ payload: POSIX tar ][ footer ]`. The builder writes it
//! with [`writer::BundleWriter`]; the installer opens it with [`reader::Bundle`], checks it
//! with [`verify`] and unpacks it with [`extract`]. The byte layout is documented in
//! `docs/format.md`; the constants and structs here are the executable form of that page.

pub mod digest;
pub mod error;
pub mod extract;
pub mod footer;
pub mod manifest;
pub mod paths;
pub mod reader;
pub mod reference;
pub mod subfile;
pub mod tarscan;
pub mod verify;
pub mod writer;

pub use digest::Sha256Digest;
pub use error::BundleError;
pub use footer::Footer;
pub use manifest::{BundleManifest, EntryRecord, ImageRecord};
pub use reader::Bundle;

/// Path of the bundle manifest inside the payload tar. It is always the last entry, so
/// that every other entry's offset is known when it is written.
pub const MANIFEST_PATH: &str = "bundle.json";
/// Directory of the single OCI image layout that holds every image of the bundle.
pub const OCI_DIR: &str = "oci";
/// Directory of every non-image file (binaries, charts, manifests, packages).
pub const FILES_DIR: &str = "files";
