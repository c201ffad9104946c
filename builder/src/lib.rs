//! The ferry builder as a library: the `ferry` binary is a thin command-line layer over it.

pub mod discover;
