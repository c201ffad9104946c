//! The ferry builder as a library: the `ferry` binary is a thin command-line layer over it.

pub mod build;
pub mod cli;
pub mod commands;
pub mod discover;
pub mod image;
pub mod kubefile;
pub mod lock;
pub mod packages;
pub mod pull;
pub mod push;
pub mod release;
pub mod sbom;
pub mod sign;
