//! Helpers for the end-to-end tests: start real services, make real images, find the
//! built binaries. Each helper lives in its own module so tests read as a story.

pub mod bins;
pub mod debian;
pub mod forge;
pub mod images;
pub mod plan;
pub mod registry;
pub mod releases;
pub mod token;
