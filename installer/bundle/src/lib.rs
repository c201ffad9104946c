//! The `delivery.run` bundle format, defined once and used by both halves of ferry.
//!
//! A bundle is `[ installer stub ][ payload: POSIX tar ][ footer ]`. The builder writes it
//! with [`writer::BundleWriter`]; the installer opens it with [`reader::Bundle`], checks it
//! with [`verify`] and unpacks it with [`extract`]. The byte layout is documented in
//! `docs/format.md`; the constants and structs here are the executable form of that page.
//!
//! It is also the contract between the two binaries, so the vocabulary both use lives
//! here once: image references and registry hosts ([`reference`]), digests ([`digest`]),
//! the OCI model and the layout index ([`oci`]), entry paths and host destinations
//! ([`paths`]), and payload roles ([`roles`]).

/// Serde as a type's string form: `Display` when written, `FromStr` (and so its
/// validation) when read. For the value types of bundle.json: a digest, a reference, a
/// host path are strings on disk and checked types in memory.
macro_rules! serde_as_string {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod artifact;
pub mod auth;
mod background;
pub mod delta;
pub mod digest;
pub mod error;
pub mod extract;
pub mod footer;
pub mod graph;
pub mod manifest;
pub mod marker;
pub mod oci;
pub mod packages;
pub mod parts;
pub mod paths;
pub mod reader;
pub mod reference;
pub mod roles;
pub mod signature;
pub mod subfile;
pub mod tarscan;
pub mod trust;
pub mod verify;
pub mod writeback;
pub mod writer;

pub use digest::Sha256Digest;
pub use error::BundleError;
pub use footer::Footer;
pub use manifest::{BundleManifest, EntryRecord, ImageRecord};
pub use paths::HostPath;
pub use reader::Bundle;
pub use reference::{normalise_host, Reference, ReferenceError};

/// Path of the bundle manifest inside the payload tar. It is always the last entry, so
/// that every other entry's offset is known when it is written.
pub const MANIFEST_PATH: &str = "bundle.json";
/// Directory of the single OCI image layout that holds every image of the bundle.
pub const OCI_DIR: &str = "oci";
/// Directory of every non-image file (binaries, charts, manifests, packages).
pub const FILES_DIR: &str = "files";
