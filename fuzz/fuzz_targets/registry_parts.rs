//! The registry's small parsers one by one, each with its own oracle: `Range` (a partial
//! range lies inside the blob), paths (names have no empty, `.` or `..` segment),
//! queries and percent-decoding (no control characters; encoding round-trips),
//! pagination (a page holds at most `n` items after `last`), hosts (normalising is
//! idempotent).
#![no_main]

use ferry_installer::registry::fuzzing::*;
use libfuzzer_sys::fuzz_target;

const TAGS: [&str; 6] = ["1", "1.1", "2", "a+b", "latest", "v3"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) >> (data[0] % 64);
    let Ok(s) = std::str::from_utf8(&data[8..]) else {
        return;
    };

    match ByteRange::parse(Some(s), len) {
        ByteRange::Partial { start, end } => assert!(start <= end && end < len, "{s:?} {len}"),
        ByteRange::Full | ByteRange::Unsatisfiable => {}
    }

    let (path, query) = split_target(s);
    if let Ok(e) = parse_path(path) {
        let name = match &e {
            Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::Tags { name }
            | Endpoint::Referrers { name, .. } => Some(name),
            Endpoint::Base | Endpoint::Catalog => None,
        };
        if let Some(name) = name {
            assert!(name.len() <= 255, "{name:?}");
            assert!(
                name.split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
                "{name:?}"
            );
            assert!(!name.chars().any(char::is_control), "{name:?}");
        }
    }
    if let Ok(q) = Query::parse(query) {
        for v in [&q.ns, &q.n, &q.last, &q.artifact_type]
            .into_iter()
            .flatten()
        {
            assert!(!v.chars().any(char::is_control), "{v:?}");
        }
        if let Ok(n) = parse_n(q.n.as_deref()) {
            let page = paginate(TAGS, n, q.last.as_deref());
            if let Some(n) = n {
                assert!(page.items.len() <= n);
            }
            if let Some(last) = q.last.as_deref() {
                assert!(page.items.iter().all(|i| *i > last));
            }
            if let (Some(next), Some(n)) = (page.next_last, n) {
                assert_eq!(Some(&next), page.items.last());
                let l = link("/v2/a/tags/list", n, next, q.ns.as_deref());
                assert!(!l.contains(['\r', '\n']), "{l:?}");
            }
        }
    }

    if let Some(d) = percent_decode(s) {
        assert!(!d.chars().any(char::is_control), "{d:?}");
        assert_eq!(
            percent_decode(&percent_encode(&d)).as_deref(),
            Some(d.as_str())
        );
    }

    if let Some(h) = normalise_host(s) {
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-:[]".contains(&b)),
            "{h:?}"
        );
        assert_eq!(normalise_host(&h).as_deref(), Some(h.as_str()));
    }
});
