//! Read-only OCI Distribution registry served straight out of a bundle (being written).
