//! The two kinds of failure the registry knows, kept apart on purpose.
//!
//! [`RegistryError`] is for the operator: the bundle could not be loaded into an
//! [`ImageStore`](super::ImageStore) (missing or corrupt manifest, conflicting tags, a bad
//! OCI layout). [`ApiError`] is for the client on the wire: one entry of the OCI
//! Distribution spec's error body `{"errors":[{"code":…,"message":…}]}` plus the HTTP
//! status it travels with.

use serde::Serialize;
use std::io;
use std::path::PathBuf;

/// Why an [`ImageStore`](super::ImageStore) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("image {image}: its manifest {digest} is not among the bundle's blobs")]
    MissingManifest { image: String, digest: String },
    #[error("manifest {digest} in {path} is corrupt: its bytes hash to {actual}")]
    CorruptManifest {
        digest: String,
        path: PathBuf,
        actual: String,
    },
    #[error("manifest {digest}: {source}")]
    Manifest {
        digest: String,
        #[source]
        source: ferry_bundle::oci::OciError,
    },
    #[error("manifest {digest} is {len} bytes; a manifest may have at most {max} bytes")]
    ManifestTooLarge { digest: String, len: u64, max: u64 },
    #[error("image {image}: {reason}")]
    InvalidImage { image: String, reason: String },
    #[error("{host}/{repository}:{tag} is given twice, as {first} and as {second}")]
    TagConflict {
        host: String,
        repository: String,
        tag: String,
        first: String,
        second: String,
    },
    #[error("OCI layout {dir}: {reason}")]
    Layout { dir: PathBuf, reason: String },
}

/// Error codes of the OCI Distribution spec (plus two that Docker's registry also uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    Unsupported,
    PaginationNumberInvalid,
    RangeInvalid,
    TooManyRequests,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
        }
    }
}

/// One error as the client sees it: HTTP status, spec code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn name_invalid(message: impl Into<String>) -> Self {
        Self::new(400, ErrorCode::NameInvalid, message)
    }
    pub fn name_unknown(message: impl Into<String>) -> Self {
        Self::new(404, ErrorCode::NameUnknown, message)
    }
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(400, ErrorCode::DigestInvalid, message)
    }
    pub fn manifest_unknown(message: impl Into<String>) -> Self {
        Self::new(404, ErrorCode::ManifestUnknown, message)
    }
    pub fn blob_unknown(message: impl Into<String>) -> Self {
        Self::new(404, ErrorCode::BlobUnknown, message)
    }
    /// Every write method: this registry is read-only.
    pub fn read_only(method: &str) -> Self {
        Self::new(
            405,
            ErrorCode::Unsupported,
            format!("{method} is not supported: this registry is read-only (GET and HEAD only)"),
        )
    }

    /// The spec's JSON error body.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Entry<'a> {
            code: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            errors: [Entry<'a>; 1],
        }
        serde_json::to_vec(&Body {
            errors: [Entry {
                code: self.code.as_str(),
                message: &self.message,
            }],
        })
        .unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.code.as_str(),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_spec_shape() {
        let e = ApiError::manifest_unknown("no \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errors":[{"code":"MANIFEST_UNKNOWN","message":"no \"x\""}]})
        );
    }
}
