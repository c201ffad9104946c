//! The HTTP responses a joining node reads from its master (status line, headers, body
//! length). Oracle: a head is accepted only within its size bound, and the body read
//! never exceeds the announced length.
#![no_main]

use ferry_installer::join::client::{read_head, MAX_HEAD};
use libfuzzer_sys::fuzz_target;
use std::io::{BufReader, Read};

fuzz_target!(|data: &[u8]| {
    let mut r = BufReader::with_capacity(512, data);
    if let Ok((status, length)) = read_head(&mut r) {
        assert!((100..600).contains(&status));
        let consumed = data.len() - r.buffer().len() - r.get_ref().len();
        assert!(consumed as u64 <= MAX_HEAD);
        let mut body = Vec::new();
        let limit = length.unwrap_or(1 << 20);
        r.take(limit).read_to_end(&mut body).unwrap();
        assert!(body.len() as u64 <= limit);
    }
});
