//! Join tokens as typed or pasted by an operator (`--token`), and as read from the token
//! file. Oracle: an accepted token is hex only and prints back to a token that parses to
//! itself.
#![no_main]

use ferry_installer::join::token::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Token::parse(s) {
        let hex = |x: &str| {
            x.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert!(hex(&t.ca_hash) && t.ca_hash.len() == 64, "{t:?}");
        assert!(hex(&t.secret) && !t.secret.is_empty(), "{t:?}");
        assert_eq!(Token::parse(&t.to_string()).as_ref(), Ok(&t));
    }
});
