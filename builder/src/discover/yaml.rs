//! YAML streams read the way Kubernetes tooling (and the PyYAML-built ground truth) reads them.
//!
//! Why not plain `serde_norway::Value`: real manifests and rendered charts contain duplicate
//! mapping keys (PyYAML, kubectl and helm keep the last one; serde's `Value` refuses the whole
//! stream), `<<` merge keys, and custom tags (`!Ref`). [`Node`] accepts all three. Why our own
//! document splitting: serde_norway's multi-document iterator neither says where a document
//! starts nor recovers after an error, and we need both the document index and an error line
//! relative to the whole file, plus the `# Source:` comment helm writes at the top of each
//! rendered document.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A parsed YAML value. Mapping keys are kept as text (numbers and booleans as written by
/// their canonical form), in document order; a repeated key replaces the earlier value in
/// place.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// A number, kept as text so that nothing is lost or reformatted twice.
    Number(String),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The text of any scalar (string, number, boolean): image tags such as `1.28` are often
    /// written unquoted.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Node::String(s) => Some(s.clone()),
            Node::Number(n) => Some(n.clone()),
            Node::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Node::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// Inserts or replaces `key` (last one wins, first position kept: PyYAML's dict order).
    pub fn insert(entries: &mut Vec<(String, Node)>, key: String, value: Node) {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => entries.push((key, value)),
        }
    }

    /// Text used when a non-string value is a mapping key.
    fn key_text(self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Number(n) | Node::String(n) => n,
            // Complex keys never name anything we look for.
            Node::Seq(_) | Node::Map(_) => "?".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Number(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut merges: Vec<Node> = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            let key = key.key_text();
            if key == "<<" && matches!(value, Node::Map(_) | Node::Seq(_)) {
                merges.push(value);
            } else {
                Node::insert(&mut entries, key, value);
            }
        }
        // YAML merge keys: explicit keys win; among merged maps, the earlier one wins.
        for merged in merges {
            let sources = match merged {
                Node::Seq(items) => items,
                other => vec![other],
            };
            for source in sources {
                if let Node::Map(source_entries) = source {
                    for (k, v) in source_entries {
                        if !entries.iter().any(|(existing, _)| *existing == k) {
                            entries.push((k, v));
                        }
                    }
                }
            }
        }
        Ok(Node::Map(entries))
    }

    /// A tagged value (`!Ref x`, `!!binary ...`): the tag is dropped, the value kept.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        use de::VariantAccess;
        let (_tag, variant) = data.variant::<String>()?;
        variant.newtype_variant::<Node>()
    }
}

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Index in the stream, counting empty documents, from 0 (PyYAML's `load_all` order).
    pub index: usize,
    /// The path in helm's `# Source: <path>` comment heading the document, if any.
    pub helm_source: Option<String>,
    /// `None` for an empty document (only comments, or `~`).
    pub node: Option<Node>,
}

/// A YAML syntax error, with its 1-based line in the whole stream when known.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

/// A slice of the stream that holds at most one document.
struct Chunk<'a> {
    text: &'a str,
    line: usize,
    /// True for the text before the first `---`: it is a document only if it has content.
    implicit: bool,
}

/// True when `line` is a document marker (`---` or `...`) followed by nothing or blanks.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// Splits at `---` / `...` lines in column 0. YAML forbids those lines inside any scalar
/// (libyaml rejects them even in quoted strings), so the split agrees with a real parser.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut implicit = true;
    let mut offset = 0usize;
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end_matches('\n');
        if is_marker(bare, "---") {
            chunks.push(Chunk {
                text: &text[start..offset],
                line: start_line,
                implicit,
            });
            start = offset;
            start_line = line_no;
            implicit = false;
        } else if is_marker(bare, "...") {
            let end = offset + line.len();
            chunks.push(Chunk {
                text: &text[start..end],
                line: start_line,
                implicit,
            });
            start = end;
            start_line = line_no + 1;
            implicit = true;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        line: start_line,
        implicit,
    });
    chunks
}

/// True when the chunk holds nothing but blanks, comments, directives and markers.
fn is_blank(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim();
        t.is_empty()
            || t.starts_with('#')
            || t.starts_with('%')
            || is_marker(t, "...")
            || (is_marker(t, "---") && t[3..].trim_start().starts_with('#'))
            || t == "---"
    })
}

/// The `# Source: path` comment helm puts at the top of every rendered document.
fn helm_source(chunk: &str) -> Option<String> {
    for l in chunk.lines() {
        let t = l.trim();
        if t == "---" || t.is_empty() {
            continue;
        }
        return t
            .strip_prefix("# Source:")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
    }
    None
}

/// Parses every document of a stream. The first syntax error ends the parse: a half-read
/// manifest would give a silently incomplete image list.
pub fn parse_stream(text: &str) -> Result<Vec<Document>, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut index = 0usize;
    for chunk in split_documents(text) {
        let blank = is_blank(chunk.text);
        if chunk.implicit && blank {
            continue;
        }
        let node = if blank {
            None
        } else {
            parse_one(chunk.text).map_err(|e| YamlError {
                line: e.line.map(|l| l + chunk.line - 1),
                message: e.message,
            })?
        };
        docs.push(Document {
            index,
            helm_source: helm_source(chunk.text),
            node,
        });
        index += 1;
    }
    Ok(docs)
}

/// Parses text that holds at most one document. `Null` documents become `None`.
fn parse_one(text: &str) -> Result<Option<Node>, YamlError> {
    let mut iter = serde_norway::Deserializer::from_str(text);
    let Some(doc) = iter.next() else {
        return Ok(None);
    };
    let error = |e: serde_norway::Error| YamlError {
        line: e.location().map(|l| l.line()),
        message: strip_location(&e.to_string()),
    };
    let node = Node::deserialize(doc).map_err(error)?;
    // The parser stops after the first node; text after it that is no document is an
    // error (`[section]` then `key = value` is TOML, not a one-item YAML list).
    if let Some(rest) = iter.next() {
        serde::de::IgnoredAny::deserialize(rest).map_err(error)?;
    }
    Ok((node != Node::Null).then_some(node))
}

/// serde_norway appends " at line L column C"; the caller reports the line itself (shifted to
/// the whole stream), so the relative one is dropped from the text.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => {
            let rest = &message[i + " at line ".len()..];
            let tail = rest.find(',').map(|j| &rest[j..]).unwrap_or("");
            format!("{}{}", &message[..i], tail)
        }
        None => message.to_string(),
    }
}

/// Parses a string that may hold an embedded YAML or JSON document (ConfigMap data): `None`
/// when it does not parse or holds no mapping/sequence.
pub fn parse_embedded(text: &str) -> Option<Vec<Node>> {
    let docs = parse_stream(text).ok()?;
    let nodes: Vec<Node> = docs
        .into_iter()
        .filter_map(|d| d.node)
        .filter(|n| matches!(n, Node::Map(_) | Node::Seq(_)))
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(text: &str) -> Vec<Option<Node>> {
        parse_stream(text)
            .unwrap()
            .into_iter()
            .map(|d| d.node)
            .collect()
    }

    #[test]
    fn bare_equals_is_a_string() {
        let docs = nodes("a: =\nb: 1\n");
        assert_eq!(
            docs[0].as_ref().unwrap().get("a"),
            Some(&Node::String("=".into()))
        );
        assert_eq!(
            docs[0].as_ref().unwrap().get("b"),
            Some(&Node::Number("1".into()))
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let docs = nodes("image: a\nimage: b\n");
        let map = docs[0].as_ref().unwrap();
        assert!(matches!(map, Node::Map(entries) if entries.len() == 1));
        assert_eq!(map.get("image").unwrap().as_str(), Some("b"));
    }

    #[test]
    fn merge_keys_and_tags() {
        let docs = nodes("base: &b {image: x, tag: '1'}\nc:\n  <<: *b\n  tag: '2'\nd: !Ref y\n");
        let map = docs[0].as_ref().unwrap();
        assert_eq!(map.at(&["c", "image"]).unwrap().as_str(), Some("x"));
        assert_eq!(map.at(&["c", "tag"]).unwrap().as_str(), Some("2"));
        assert_eq!(map.get("d").unwrap().as_str(), Some("y"));
    }

    #[test]
    fn documents_are_indexed_like_pyyaml() {
        // Leading empty text is no document; a `---` with only a comment is an empty one.
        let docs = parse_stream("# head\n---\na: 1\n---\n# nothing\n---\nb: 2\n").unwrap();
        let summary: Vec<(usize, bool)> =
            docs.iter().map(|d| (d.index, d.node.is_some())).collect();
        assert_eq!(summary, vec![(0, true), (1, false), (2, true)]);
        let docs = parse_stream("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn markers_with_content_and_end_markers() {
        let docs = nodes("--- {a: 1}\n...\n--- |\n  text\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1], Some(Node::String("text\n".into())));
    }

    #[test]
    fn helm_source_comments() {
        let docs =
            parse_stream("---\n# Source: c/templates/a.yaml\nkind: A\n---\n# Source: c/templates/b.yaml\nkind: B\n")
                .unwrap();
        assert_eq!(docs[0].helm_source.as_deref(), Some("c/templates/a.yaml"));
        assert_eq!(docs[1].helm_source.as_deref(), Some("c/templates/b.yaml"));
    }

    #[test]
    fn error_line_is_relative_to_the_stream() {
        let err = parse_stream("a: 1\n---\nb: 2\nc: [\n").unwrap_err();
        assert!(err.line.is_some_and(|l| l >= 4), "{err:?}");
        let err = parse_stream("a: 1\n---\nb: 2\nc: d: e\n").unwrap_err();
        assert_eq!(err.line, Some(4), "{err:?}");
        assert!(!err.message.contains(" at line "), "{}", err.message);
    }

    #[test]
    fn json_is_yaml() {
        let docs = nodes("{\"kind\": \"Pod\", \"spec\": {\"containers\": [{\"image\": \"x:1\"}]}}");
        let pod = docs[0].as_ref().unwrap();
        let c = &pod.at(&["spec", "containers"]).unwrap().as_seq().unwrap()[0];
        assert_eq!(c.get("image").unwrap().as_str(), Some("x:1"));
    }

    #[test]
    fn text_after_the_first_node_is_an_error() {
        let err = parse_stream("a: 1\n---\n[plugins.cri]\nsandbox_image = \"x\"\n").unwrap_err();
        assert_eq!(err.line, Some(4), "{err:?}");
        assert!(parse_embedded("{a: 1}\nfoo bar\n").is_none());
    }

    #[test]
    fn embedded_only_for_structures() {
        assert!(parse_embedded("just a sentence").is_none());
        assert!(parse_embedded("a: [").is_none());
        assert_eq!(parse_embedded("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }
}
