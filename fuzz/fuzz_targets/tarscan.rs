//! The payload tar's header walk, on raw tar bytes (no footer or bundle.json in the way).
//!
//! Oracle: every entry found lies inside the payload, in order, with a path the bundle
//! rules allow.
#![no_main]

use ferry_bundle::subfile::SubFile;
use ferry_bundle::tarscan::scan;
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};

fn file() -> &'static Arc<std::fs::File> {
    static F: OnceLock<Arc<std::fs::File>> = OnceLock::new();
    F.get_or_init(|| Arc::new(tempfile::tempfile().unwrap()))
}

fuzz_target!(|data: &[u8]| {
    let f = file();
    f.set_len(0).unwrap();
    f.write_all_at(data, 0).unwrap();
    let len = data.len() as u64;
    if let Ok(entries) = scan(&mut SubFile::new(f.clone(), 0, len)) {
        let mut prev = 0;
        for e in entries {
            assert!(e.data_offset >= prev + 512, "{e:?}");
            assert!(e.data_offset + e.size <= len, "{e:?}");
            assert!(
                ferry_bundle::paths::check_entry_path(&e.path).is_ok(),
                "{e:?}"
            );
            prev = e.data_offset + e.size;
        }
    }
});
