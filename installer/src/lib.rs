//! The ferry installer as a library: the `ferry-installer` binary (the stub inside every
//! `delivery.run`) is a thin command-line layer over these modules.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod host;
pub mod install;
pub mod join;
pub mod k3s;
pub mod locate;
pub mod process_lock;
pub mod registry;
pub mod service;
pub mod site;
