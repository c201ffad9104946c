//! The k3s driver's artifacts: every file and command the installer needs to bring up a
//! k3s node, as pure functions of a few parameters.
//!
//! Why pure: no k3s binary can be had where ferry is developed and tested, so the driver is
//! split in two. This module decides *what* goes on a host (file paths, bytes, modes, the
//! commands to run) and is tested against k3s's documented formats by parsing what it
//! generates back; the installer's cluster phase (DESIGN §3, phases 5–7) only writes those
//! files under `--root` and runs those commands, which a recording stand-in can check.
//!
//! One concept per file:
//! - [`registries`]: `/etc/rancher/k3s/registries.yaml`, a mirror per upstream host, all
//!   pointing at ferry's registry (names are never rewritten: containerd sends `?ns=`).
//! - [`config`]: `/etc/rancher/k3s/config.yaml` for a first server, a joining server, an
//!   agent.
//! - [`unit`](mod@unit): the systemd unit (k3s's own install.sh unit) and the argv used when PID 1 is
//!   not systemd.
//! - [`helmchart`]: a `helm.cattle.io/v1` `HelmChart` resource.
//! - [`apps`]: an application (chart or manifests) → files in k3s's auto-deploy directory.
//! - [`plan`]: puts them together: [`server_plan`], [`join_server_plan`], [`agent_plan`].
//! - [`payload`]: the roles of the k3s payload's files (`payloads/k3s/payload.toml`).
//! - [`yaml`]: the small text helpers that keep the installer free of a YAML crate (it must
//!   stay a small static binary). base64 comes from the `base64` crate, which rustls'
//!   PEM support links anyway.
//!
//! `docs/k3s.md` says which k3s document each file follows and what has (not) been checked
//! against a real k3s.

pub mod apps;
pub mod config;
pub mod error;
pub mod helmchart;
pub mod payload;
pub mod plan;
pub mod registries;
pub mod unit;
pub mod yaml;

pub use error::K3sError;
pub use plan::{
    agent_plan, join_server_plan, server_plan, App, AppKind, K3sParams, K3sPlan, PlannedFile,
    PlannedLink,
};
pub use registries::{registries_yaml, MirrorSpec};

/// k3s's configuration file (`--config` default). docs.k3s.io/installation/configuration.
pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// k3s's registry configuration (`--private-registry` default).
/// docs.k3s.io/installation/private-registry.
pub const REGISTRIES_PATH: &str = "/etc/rancher/k3s/registries.yaml";
/// Auto-deploy directory: k3s applies every manifest found here, like `kubectl apply`.
/// docs.k3s.io/installation/packaged-components (auto-deploying manifests).
pub const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";
/// Served anonymously by every server's apiserver at `/static/…`; `%{KUBERNETES_API}%` in a
/// HelmChart's `spec.chart` points there. docs.k3s.io/add-ons/helm.
pub const STATIC_CHARTS_DIR: &str = "/var/lib/rancher/k3s/server/static/charts";
/// Image tarballs found here are imported by k3s's containerd at start.
/// docs.k3s.io/installation/airgap (manually deploy images).
pub const AGENT_IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
/// Where k3s's install.sh puts the binary and where the units below expect it by default.
pub const DEFAULT_K3S_BINARY: &str = "/usr/local/bin/k3s";
/// The supervisor/apiserver port every server listens on and joining nodes connect to.
pub const SERVER_PORT: u16 = 6443;
