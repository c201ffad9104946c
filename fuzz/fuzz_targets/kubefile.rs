//! The Kubefile parser (lexer and instruction rules), on any text.
#![no_main]

use ferry_builder::kubefile::Kubefile;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Kubefile::parse(&text, Path::new("Kubefile")) {
        for i in k.iter() {
            assert!(
                i.line >= 1 && i.line <= text.lines().count().max(1),
                "{i:?}"
            );
        }
    }
});
