//! What the builder parses from registries it pulls from before any digest protects it:
//! `WWW-Authenticate` challenges, the token URL made from them, and token replies.
//! Oracle: a header value (which never holds CR or LF) gives a token URL without them.
#![no_main]

use ferry_builder::pull::auth::{parse_token_reply, parse_www_authenticate, preferred, token_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_token_reply(data);
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if header.contains(['\r', '\n']) {
        return;
    }
    let challenges = parse_www_authenticate(header);
    if let Some(c) = preferred(&challenges) {
        if let Some(url) = token_url(c, "repository:library/app:pull") {
            assert!(!url.contains(['\r', '\n']), "{url:?}");
            assert!(url.starts_with(c.param("realm").unwrap()), "{url:?}");
        }
    }
});
