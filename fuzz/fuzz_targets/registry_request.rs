//! Raw bytes on a registry connection: request heads (httparse, header limits,
//! pipelining, keep-alive), targets, paths, queries, Range and pagination, answered by the
//! real routes from a small store.
//!
//! Oracle: every response head the server writes is well-formed HTTP with printable
//! header values (no injected lines), and no request makes it fail with a 5xx.
#![no_main]

use ferry_installer::registry::fuzzing::{answer, sample_store};
use libfuzzer_sys::fuzz_target;

const STATUSES: [&str; 11] = [
    "200", "206", "400", "401", "404", "405", "408", "414", "416", "431", "505",
];

fuzz_target!(|data: &[u8]| {
    let out = answer(sample_store(), data, 4096);
    let mut rest = &out[..];
    // Responses are found by their status lines: no request target can put "HTTP/1.1 "
    // into a body (targets have no spaces, and bodies are JSON or blobs).
    while let Some(at) = find(rest, b"HTTP/1.1 ") {
        rest = &rest[at..];
        let end = find(rest, b"\r\n\r\n").expect("a response head ends with an empty line");
        let head = std::str::from_utf8(&rest[..end]).expect("response heads are UTF-8");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        let code = &status[9..12];
        assert!(STATUSES.contains(&code), "{status:?}");
        for line in lines {
            let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{line:?}"
            );
            assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
        }
        rest = &rest[end + 4..];
    }
});

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
