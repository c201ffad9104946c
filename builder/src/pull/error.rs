//! Pull errors. Each names the image reference, the registry actually contacted (a mirror
//! says so) and what the user can do about it, because a build log line is often all a
//! user gets to see.

use super::cache::CacheError;
use super::dockerconfig::DockerConfigError;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{reference}: {status} from {registry}{detail}: {hint}")]
    Unauthorized {
        reference: String,
        registry: String,
        status: u16,
        /// `: <registry's message>`, or empty.
        detail: String,
        /// Which credentials were used and how to fix them.
        hint: String,
    },

    #[error(
        "{reference}: 403 from {registry}: the credentials are valid but may not {action} \
         this repository; ask the registry's administrator for that access"
    )]
    Denied {
        reference: String,
        registry: String,
        /// `pull from` or `push to`.
        action: &'static str,
    },

    #[error("{reference}: {what} not found on {registry} (404){hint}")]
    NotFound {
        reference: String,
        registry: String,
        what: String,
        hint: String,
    },

    #[error("{reference}: cannot reach {registry}: {detail}{hint}")]
    Connect {
        reference: String,
        registry: String,
        detail: String,
        hint: String,
    },

    #[error(
        "{reference}: {registry} answered {status} for {what} after {attempts} attempt(s){detail}"
    )]
    Status {
        reference: String,
        registry: String,
        what: String,
        status: u16,
        attempts: u32,
        detail: String,
    },

    #[error("{reference}: transfer of {what} from {registry} failed after {attempts} attempt(s): {detail}")]
    Transfer {
        reference: String,
        registry: String,
        what: String,
        attempts: u32,
        detail: String,
    },

    #[error(
        "{reference}: {what} from {registry} has digest {actual}, expected {expected}: the \
         registry's copy is corrupt or was tampered with, and it was not stored; re-push the \
         image or report it to the registry's operator"
    )]
    DigestMismatch {
        reference: String,
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },

    #[error(
        "{reference}: {what} from {registry} is {actual} bytes, expected {expected}: the \
         registry's copy is truncated or tampered with, and it was not stored"
    )]
    SizeMismatch {
        reference: String,
        registry: String,
        what: String,
        expected: u64,
        actual: String,
    },

    #[error(
        "{reference}: no image for {wanted} in the index from {registry}; it offers: \
         {available}. Choose one of those platforms"
    )]
    PlatformNotFound {
        reference: String,
        registry: String,
        wanted: String,
        available: String,
    },

    #[error(
        "{reference}: the image from {registry} is for {actual}, not {wanted}, and it is not a \
         multi-platform index; choose platform {actual} or use another image"
    )]
    PlatformMismatch {
        reference: String,
        registry: String,
        wanted: String,
        actual: String,
    },

    #[error("{reference}: {what} from {registry} is not supported: {detail}")]
    Unsupported {
        reference: String,
        registry: String,
        what: String,
        detail: String,
    },

    #[error("{reference}: malformed {what} from {registry}: {detail}")]
    Malformed {
        reference: String,
        registry: String,
        what: String,
        detail: String,
    },

    #[error("{reference}: getting a token for {registry} from {realm} failed: {detail}; {hint}")]
    Token {
        reference: String,
        registry: String,
        realm: String,
        detail: String,
        /// Which credentials were used and how to fix them.
        hint: String,
    },

    #[error(transparent)]
    DockerConfig(#[from] DockerConfigError),

    #[error("{reference}: {source}")]
    Cache {
        reference: String,
        #[source]
        source: CacheError,
    },
}
