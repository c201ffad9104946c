//! The size marker: how a bundle cut short is recognised from its own bytes.
//!
//! The commonest accident at a site is a partial copy (a full USB stick, an interrupted
//! transfer). The footer is at the end of the file, so a cut-short copy has none, and
//! nothing at the end can say how long the file should have been. The beginning can: the
//! installer stub carries a 32-byte marker (`BLANK`: a magic and a zero size, in a static
//! of the installer), and the builder writes the complete bundle's size into it when it
//! finishes the bundle. Any copy that still holds its first few MiB therefore knows its
//! own expected size, and the installer can say "this copy has 30 000 000 of
//! 731 842 560 bytes — copy it again" instead of "no bundle here".
//!
//! The size is that of the *file the stub is in*: the whole bundle, or part 1 of a split
//! one ([`crate::parts`]), so part 1 checks its own length like any bundle file, and a
//! complete part 1 without its footer is known to be waiting for its other parts.
//!
//! The magic must occur exactly once in a stub. The scanner keeps its copy of the magic
//! reversed (and un-reverses it at run time behind `black_box`), so the scanning code does
//! not put a second copy of the magic into the binary.

/// Length of the marker: 24 bytes of magic, 8 bytes of little-endian size.
pub const MARKER_LEN: usize = 32;
const MAGIC_LEN: usize = 24;

/// The marker as the installer is built with it: magic, size 0 (a bare installer).
/// Use it only to initialise the one static that carries it.
pub const BLANK: [u8; MARKER_LEN] = *b"FERRY:BUNDLE-SIZE:v1\0\0\0\0\0\0\0\0\0\0\0\0";

/// The magic, reversed, so that this constant is not a second occurrence of it.
const MAGIC_REVERSED: [u8; MAGIC_LEN] = {
    let mut r = [0u8; MAGIC_LEN];
    let mut i = 0;
    while i < MAGIC_LEN {
        r[i] = BLANK[MAGIC_LEN - 1 - i];
        i += 1;
    }
    r
};

fn magic() -> [u8; MAGIC_LEN] {
    let r = std::hint::black_box(MAGIC_REVERSED);
    let mut m = [0u8; MAGIC_LEN];
    for (i, b) in r.iter().rev().enumerate() {
        m[i] = *b;
    }
    m
}

/// Where the marker is in `stub`: `None` if it has none, or more than one (then it
/// cannot be told which is the real one).
pub fn find(stub: &[u8]) -> Option<usize> {
    let m = magic();
    let mut found = None;
    let mut start = 0;
    while let Some(i) = stub[start..]
        .windows(MAGIC_LEN)
        .position(|w| w == m)
        .map(|i| i + start)
    {
        if found.is_some() {
            return None;
        }
        found = Some(i);
        start = i + 1;
    }
    found.filter(|&i| i + MARKER_LEN <= stub.len())
}

/// The marker bytes saying the bundle is `total` bytes long (0: a bare installer). Built
/// at run time, so code that blanks or fills a marker holds no copy of the magic.
pub fn encode(total: u64) -> [u8; MARKER_LEN] {
    let mut out = [0u8; MARKER_LEN];
    out[..MAGIC_LEN].copy_from_slice(&magic());
    out[MAGIC_LEN..].copy_from_slice(&total.to_le_bytes());
    out
}

/// The expected bundle size in a stub's marker at `at` (0 = a bare installer).
pub fn size_at(stub: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = stub.get(at + MAGIC_LEN..at + MARKER_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(b)).filter(|&n| n != 0)
}

/// How far into a file the marker is looked for: stubs are a few MiB.
pub const SCAN_LEN: u64 = 16 << 20;

/// The expected size a file's stub records, if it has a marker with a size.
pub fn expected_size(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().ok()?.len().min(SCAN_LEN) as usize;
    let mut buf = vec![0u8; len];
    let n = file.read_at(&mut buf, 0).ok()?;
    buf.truncate(n);
    let at = find(&buf)?;
    size_at(&buf, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_once_and_round_trips() {
        let mut stub = vec![7u8; 5000];
        stub[1234..1234 + MARKER_LEN].copy_from_slice(&BLANK);
        let at = find(&stub).unwrap();
        assert_eq!(at, 1234);
        assert_eq!(
            size_at(&stub, at),
            None,
            "a blank marker says: bare installer"
        );
        stub[at..at + MARKER_LEN].copy_from_slice(&encode(731_842_560));
        assert_eq!(size_at(&stub, find(&stub).unwrap()), Some(731_842_560));
        // Two markers: ambiguous, so none.
        stub[3000..3000 + MARKER_LEN].copy_from_slice(&BLANK);
        assert_eq!(find(&stub), None);
        assert_eq!(find(&[0u8; 10]), None);
    }

    #[test]
    fn the_scanner_holds_no_plain_copy_of_the_magic() {
        assert_ne!(MAGIC_REVERSED[..], BLANK[..MAGIC_LEN]);
    }
}
