//! Checksum files as projects publish them next to their release assets.
//!
//! All of the ones ferry reads are `sha256sum` output: k3s's `sha256sum-<arch>.txt` and
//! runc's `runc.sha256sum` list many assets, containerd's `<asset>.sha256sum` and the CNI
//! plugins' `<asset>.sha256` one. A line is `<64 hex> <space or *><name>`; the name may
//! carry the directory the release was built in (`dist/x`), so an asset is found by its
//! exact name or, failing that, by the last path component. A file holding nothing but a
//! bare hash answers for the one asset it was published beside. Anything else on a line
//! (blank lines, comments, other hash lengths) is skipped rather than guessed at.

use ferry_bundle::Sha256Digest;

/// A parsed checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    /// `(name, sha256)` in file order; `name` is empty for a bare hash.
    entries: Vec<(String, Sha256Digest)>,
}

impl Checksums {
    pub fn parse(text: &str) -> Checksums {
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim) {
            let (hash, name) = match line.split_once(char::is_whitespace) {
                Some((h, n)) => (h, n.trim_start().trim_start_matches('*').trim()),
                None => (line, ""),
            };
            if hash.len() != 64 || line.starts_with('#') {
                continue;
            }
            if let Some(d) = Sha256Digest::from_hex(&hash.to_ascii_lowercase()) {
                entries.push((name.to_string(), d));
            }
        }
        Checksums { entries }
    }

    /// The sha256 published for `asset`.
    pub fn find(&self, asset: &str) -> Option<Sha256Digest> {
        let exact = self.entries.iter().find(|(n, _)| n == asset);
        let by_base = || {
            self.entries
                .iter()
                .find(|(n, _)| n.rsplit('/').next() == Some(asset))
        };
        let bare = || match self.entries.as_slice() {
            [(n, d)] if n.is_empty() => Some(d),
            _ => None,
        };
        exact
            .or_else(by_base)
            .map(|(_, d)| d)
            .or_else(bare)
            .copied()
    }

    /// The names listed, for "not listed" messages.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn finds_assets_by_name_path_or_a_lone_hash() {
        let text = format!(
            "{}  k3s\n{} *k3s-arm64\n\n# comment\n{}  dist/artifacts/k3s-images.txt\nnot a line\n{}  short\n",
            h('a'),
            h('B'),
            h('c'),
            "d".repeat(40)
        );
        let c = Checksums::parse(&text);
        assert_eq!(c.find("k3s").unwrap().hex(), h('a'));
        assert_eq!(c.find("k3s-arm64").unwrap().hex(), h('b'));
        assert_eq!(c.find("k3s-images.txt").unwrap().hex(), h('c'));
        assert_eq!(c.find("k3s-armhf"), None);
        assert_eq!(c.find("short"), None);
        assert_eq!(
            c.names(),
            ["k3s", "k3s-arm64", "dist/artifacts/k3s-images.txt"]
        );

        let bare = Checksums::parse(&format!("{}\n", h('e')));
        assert_eq!(bare.find("anything.tgz").unwrap().hex(), h('e'));
        // A named line is not a bare hash for another asset.
        let one = Checksums::parse(&format!("{}  cni.tgz\n", h('e')));
        assert_eq!(one.find("other.tgz"), None);
    }
}
