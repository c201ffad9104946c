//! Image discovery in charts and manifests (being written).
