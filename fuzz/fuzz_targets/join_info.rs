//! The join info a master hands a joining node (`GET /ferry/v1/join`, JSON), and the plan
//! the node makes from it: which files to fetch and where they go, the mirrors for the
//! upstream hosts, the services. Oracle: no panic, and every planned file stays under the
//! node's root.
#![no_main]

#[path = "common.rs"]
mod common;

use ferry_installer::join::protocol::JoinInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, json)) = data.split_first() else {
        return;
    };
    if let Ok(info) = serde_json::from_slice::<JoinInfo>(json) {
        common::plan_join(&info, flags & 1 == 1);
    }
});
