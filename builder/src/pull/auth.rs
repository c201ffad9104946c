//! Registry authentication in the builder: answering a challenge with the Docker config's
//! credentials. Parsing challenges and token replies is the bundle crate's
//! ([`ferry_bundle::auth`]), shared with the installer's push to a site registry.

use super::dockerconfig::Credentials;
pub use ferry_bundle::auth::{
    parse_token_reply, parse_www_authenticate, preferred, token_url, Challenge,
};

/// How to authorise requests to one endpoint once a challenge has been answered. Each
/// variant holds the complete `Authorization` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    None,
    Basic(String),
    Bearer(String),
}

impl Authorization {
    pub fn header(&self) -> Option<&str> {
        match self {
            Authorization::None => None,
            Authorization::Basic(h) | Authorization::Bearer(h) => Some(h),
        }
    }
}

/// The Basic header for a challenge, if credentials exist.
pub fn basic(creds: Option<&Credentials>) -> Option<Authorization> {
    creds.map(|c| Authorization::Basic(c.basic_header()))
}
