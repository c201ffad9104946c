//! Why a k3s plan could not be made.
//!
//! Everything here is found before a single file is written: a plan either describes a node
//! k3s will accept, or names the parameter that is wrong. The checks are the ones whose
//! failure would otherwise surface minutes later as a k3s or helm-controller error on the
//! host (an invalid object name, a registry URL containerd cannot use, two apps writing
//! the same file).

/// A parameter the k3s plan cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K3sError {
    #[error("k3s: {field} must not be empty")]
    Empty { field: &'static str },
    #[error("k3s: {field} {value:?} contains a line break or a NUL byte")]
    BadText { field: &'static str, value: String },
    #[error(
        "k3s: registry endpoint {url:?} must be http://<host>[:<port>] or https://<host>[:<port>] \
         without path, query or credentials"
    )]
    BadEndpoint { url: String },
    #[error("k3s: a registry CA file is given but the endpoint {url:?} is not https")]
    CaWithoutTls { url: String },
    #[error("k3s: {host:?} is not a registry host name (expected e.g. docker.io or registry.local:5000)")]
    BadHost { host: String },
    #[error("k3s: master address {addr:?} is not a host name or IP address")]
    BadMaster { addr: String },
    #[error("k3s: app {name:?}: {reason}")]
    BadAppName { name: String, reason: String },
    #[error("k3s: app {app:?}: namespace {namespace:?} {reason}")]
    BadNamespace {
        app: String,
        namespace: String,
        reason: String,
    },
    #[error("k3s: app {name:?} is given twice")]
    DuplicateApp { name: String },
    #[error(
        "k3s: app {name:?} would replace k3s's own packaged HelmChart of that name; rename the app"
    )]
    ReservedAppName { name: String },
    #[error("k3s: app {app:?}: --set key {key:?} must be non-empty and contain no '=' or ','")]
    BadSetKey { app: String, key: String },
    #[error("k3s: app {app:?} has no manifest files")]
    NoManifests { app: String },
    #[error("k3s: app {app:?}: chart archive is empty")]
    EmptyChart { app: String },
    #[error("k3s: two files of the plan would be written to {path}")]
    PathClash { path: String },
}
