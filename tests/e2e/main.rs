//! End-to-end tests: one binary, one module per area, each driving the real `ferry` and
//! `ferry-installer` binaries (built by `scripts/build.sh` into `target/dist/`).

mod apps;
mod arm64;
mod bundle;
mod cli;
mod completeness;
mod crash;
mod disk;
mod hostile;
mod install;
mod join;
mod k3s;
mod novice;
mod packages;
mod pull;
mod push;
mod registry_serve;
mod releases;
mod scale;
mod site;
mod trust;
mod upgrade;
