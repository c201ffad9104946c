//! Just enough YAML output for k3s's files, without a YAML crate.
//!
//! The installer must stay a small static binary, and what it writes is a handful of
//! fixed-shape documents. The one thing that must never go wrong is a value that changes
//! meaning (a token `no` read as a boolean, a path with `: ` read as a mapping, a values
//! file whose indentation is swallowed), so every string goes out double-quoted with YAML's
//! escapes ([`quote`]), and multi-line text goes out as a literal block only when that is
//! exact, else double-quoted ([`text`]). The tests parse the output back with a real YAML
//! parser (libyaml's port) and compare.

use std::fmt::Write;

/// `s` as a YAML double-quoted scalar: always a string, whatever it looks like.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if needs_escape(c) => {
                let _ = if (c as u32) <= 0xff {
                    write!(out, "\\x{:02x}", c as u32)
                } else {
                    write!(out, "\\u{:04x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters YAML does not allow unescaped in a scalar (outside the named escapes above).
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || u == 0x7f
        || (0x80..=0x9f).contains(&u)
        || u == 0xfeff
        || (0xd800..=0xdfff).contains(&u)
        || u == 0xfffe
        || u == 0xffff
}

/// Multi-line `text` as the value after `key: `, content indented by `indent` spaces:
/// a literal block (`|`, `|-` or `|+`, chosen so trailing newlines survive exactly) when
/// every line can be carried verbatim, else a double-quoted scalar. Ends with a newline.
///
/// A literal block is what a person expects to read in `valuesContent`; it is refused
/// when the first non-empty line starts with a space or tab (the block's indentation would
/// be detected from it and eat the content's own), when the text holds characters a block
/// cannot carry (carriage returns, control characters, byte-order marks, Unicode line
/// separators), or when it is empty or only line breaks.
pub fn text(text: &str, indent: usize) -> String {
    if !literal_ok(text) {
        return format!("{}\n", quote(text));
    }
    let body = text.trim_end_matches('\n');
    let chomp = match text.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}\n");
    let pad = " ".repeat(indent.max(1));
    for line in body.split('\n') {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    // Kept trailing line breaks beyond the last line's own (only for `|+`).
    for _ in 1..(text.len() - body.len()) {
        out.push('\n');
    }
    out
}

fn literal_ok(text: &str) -> bool {
    let Some(first) = text.split('\n').find(|l| !l.is_empty()) else {
        return false;
    };
    if first.starts_with([' ', '\t']) {
        return false;
    }
    text.chars().all(|c| {
        c == '\n'
            || c == '\t'
            || !(needs_escape(c) || matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
    })
}

/// A block sequence of quoted strings, one `<indent>- "<item>"` line each.
pub fn string_list(items: &[String], indent: usize) -> String {
    let pad = " ".repeat(indent);
    items
        .iter()
        .map(|i| format!("{pad}- {}\n", quote(i)))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    /// Parses one YAML document (panics with the document on error: these are tests).
    pub(crate) fn parse(doc: &str) -> Value {
        serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{doc}"))
    }

    const TRICKY: &[&str] = &[
        "",
        "plain",
        "no",
        "yes",
        "null",
        "~",
        "true",
        "0644",
        "1e3",
        "0x1f",
        ".inf",
        "- item",
        "a: b",
        "# not a comment",
        "key: \"quoted\" and 'single'",
        "back\\slash\\",
        "tab\there",
        "new\nline",
        "cr\r\nlf",
        "nul\0byte",
        "bell\x07 esc\x1b del\x7f",
        "c1\u{80}\u{9f} nel\u{85} nbsp\u{a0}",
        "ls\u{2028}ps\u{2029} bom\u{feff} nonchar\u{fffe}",
        "ünïcødé ✓ 日本 🚀",
        "  leading and trailing spaces  ",
        "*alias &anchor !tag %directive @at `tick` |pipe >fold",
        "{flow: map} [flow, seq]",
        "---",
        "...",
    ];

    #[test]
    fn quoted_strings_read_back_exactly() {
        for s in TRICKY {
            let doc = format!("k: {}\n", quote(s));
            let v = parse(&doc);
            assert_eq!(v["k"].as_str(), Some(*s), "{doc}");
        }
    }

    #[test]
    fn text_reads_back_exactly() {
        let mut cases: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
        cases.extend(
            [
                "image:\n  tag: v1\n",
                "image:\n  tag: v1",
                "a: 1\n\n\n",
                "\n\nleading blank lines\n",
                "  indented first line\nx: 1\n",
                "\tfirst line tab\n",
                "x:\n  - a\n\n  - b   \n    \n# comment\n",
                "\n",
                "\n\n",
                "--- \n...\nkey: v\n",
                "win\r\nline\r\n",
            ]
            .map(String::from),
        );
        for s in &cases {
            for indent in [2, 4, 6] {
                let doc = format!("top:\n{}k: {}", " ".repeat(indent - 2), text(s, indent));
                let v = parse(&doc);
                let got = if indent == 2 {
                    v["k"].as_str()
                } else {
                    v["top"]["k"].as_str()
                };
                assert_eq!(got, Some(s.as_str()), "indent {indent}:\n{doc}");
            }
        }
    }

    #[test]
    fn values_text_is_a_readable_literal_block() {
        let t = text("image:\n  tag: v1\n", 4);
        assert_eq!(t, "|\n    image:\n      tag: v1\n");
        assert_eq!(text("a: 1", 4), "|-\n    a: 1\n");
        assert_eq!(text("a: 1\n\n", 2), "|+\n  a: 1\n\n");
        assert!(text("  a", 4).starts_with('"'));
    }

    #[test]
    fn string_lists_are_sequences_of_strings() {
        let items = vec!["no".to_string(), "10.0.0.1".to_string(), "a: b".to_string()];
        let v = parse(&format!("l:\n{}", string_list(&items, 2)));
        let got: Vec<&str> = v["l"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(got, ["no", "10.0.0.1", "a: b"]);
    }
}
