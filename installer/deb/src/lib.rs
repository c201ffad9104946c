//! Debian package facts that both halves of ferry need, defined once: the builder
//! resolves a dependency closure from apt repositories, the installer decides which
//! carried packages a host still lacks. Both compare versions the way dpkg does
//! ([`version`]), read relationship fields ([`relation`]) and deb822 paragraphs
//! ([`control`]); the installer reads dpkg's database ([`status`]). Small on purpose: it
//! is linked into the static installer stub.

pub mod control;
pub mod relation;
pub mod status;
pub mod version;

pub use control::{Paragraph, Paragraphs};
pub use relation::{parse_depends, parse_provides, Alternatives, Op, Relation, RelationError};
pub use status::{Installed, Status};
pub use version::{Version, VersionError};
