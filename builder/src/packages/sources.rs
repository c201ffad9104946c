//! The builder machine's own apt sources (`/etc/apt/sources.list`, `sources.list.d/*.list`
//! one-line entries and `*.sources` deb822 entries).
//!
//! Why: with no `APT` line and no `--apt-mirror`, the repositories of a target are the
//! ones this machine's apt already uses for that release — its official archive or the
//! site's mirror of it, with the keyring apt checks it against. ferry carries no archive
//! host names of its own. The tests read the machine's mirror the same way.

use std::path::{Path, PathBuf};

/// One `deb` source: a URL, one suite, its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// `Signed-By` / `[signed-by=…]`, when it names a keyring file.
    pub keyring: Option<PathBuf>,
    /// The file it was read from.
    pub file: PathBuf,
}

/// Every enabled `deb` source under `etc_apt` (normally `/etc/apt`), in file order.
pub fn read(etc_apt: &Path) -> Vec<AptSource> {
    let mut files = vec![etc_apt.join("sources.list")];
    let mut d: Vec<PathBuf> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    d.sort();
    files.extend(d);
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(deb822(&text, &f)),
            Some("list") => out.extend(one_line(&text, &f)),
            _ => {}
        }
    }
    out
}

fn one_line(text: &str, file: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    for l in text.lines() {
        let l = l.split('#').next().unwrap_or("").trim();
        let Some(rest) = l.strip_prefix("deb ").or_else(|| l.strip_prefix("deb\t")) else {
            continue;
        };
        let mut rest = rest.trim();
        let mut keyring = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((o, after)) = opts.split_once(']') else {
                continue;
            };
            for kv in o.split_whitespace() {
                if let Some(k) = kv.strip_prefix("signed-by=") {
                    keyring = Some(PathBuf::from(k));
                }
            }
            rest = after.trim();
        }
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.len() >= 2 {
            out.push(AptSource {
                url: w[0].trim_end_matches('/').to_string(),
                suite: w[1].to_string(),
                components: w[2..].iter().map(|s| s.to_string()).collect(),
                keyring,
                file: file.to_path_buf(),
            });
        }
    }
    out
}

fn deb822(text: &str, file: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    for p in ferry_deb::Paragraphs::new(text.as_bytes()).flatten() {
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        if !words("Types").iter().any(|t| t == "deb") || p.get("Enabled") == Some("no") {
            continue;
        }
        let keyring = p
            .get("Signed-By")
            .filter(|k| !k.contains('\n') && k.starts_with('/'))
            .map(PathBuf::from);
        for url in words("URIs") {
            for suite in words("Suites") {
                out.push(AptSource {
                    url: url.trim_end_matches('/').to_string(),
                    suite,
                    components: words("Components"),
                    keyring: keyring.clone(),
                    file: file.to_path_buf(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats_and_skips_disabled_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list"),
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main contrib\ndeb-src http://m.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sources.list.d/a.sources"),
            "Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/x.gpg\n\n\
             Types: deb\nURIs: http://other.example/\nSuites: x\nComponents: main\nEnabled: no\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sources.list.d/b.list.disabled"),
            "deb http://no x main\n",
        )
        .unwrap();
        let s = read(d.path());
        assert_eq!(s.len(), 3, "{s:#?}");
        assert_eq!(s[0].url, "http://m.example/debian");
        assert_eq!(s[0].keyring.as_deref(), Some(Path::new("/k.gpg")));
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[2].suite, "bookworm-updates");
        assert_eq!(
            s[2].keyring.as_deref(),
            Some(Path::new("/usr/share/keyrings/x.gpg"))
        );
    }
}
