//! deb822 control paragraphs (policy §5.1): `Packages` indexes, `Release` files and
//! dpkg's `status` database are all this format — `Field: value` lines, continuation
//! lines starting with a space or tab, paragraphs separated by blank lines.
//!
//! [`Paragraphs`] reads them one at a time from any `BufRead`, so a 50 MB `Packages`
//! stream is never held whole: only the current paragraph is.

use std::io::{self, BufRead};

/// One paragraph: fields in file order. Field names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
    /// 1-based line where the paragraph starts, for error messages.
    pub line: usize,
}

impl Paragraph {
    /// The value of `name` (multi-line values joined with `\n`, first line trimmed).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Iterator over the paragraphs of a deb822 stream.
pub struct Paragraphs<R> {
    r: R,
    line: usize,
    buf: String,
}

impl<R: BufRead> Paragraphs<R> {
    pub fn new(r: R) -> Self {
        Paragraphs {
            r,
            line: 0,
            buf: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for Paragraphs<R> {
    type Item = io::Result<Paragraph>;

    fn next(&mut self) -> Option<io::Result<Paragraph>> {
        let mut p = Paragraph::default();
        loop {
            self.buf.clear();
            match self.r.read_line(&mut self.buf) {
                Ok(0) => return (!p.fields.is_empty()).then_some(Ok(p)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            self.line += 1;
            let l = self.buf.trim_end_matches(['\n', '\r']);
            if l.trim().is_empty() {
                if p.fields.is_empty() {
                    continue;
                }
                return Some(Ok(p));
            }
            if l.starts_with('#') {
                continue;
            }
            if l.starts_with([' ', '\t']) {
                match p.fields.last_mut() {
                    Some((_, v)) => {
                        v.push('\n');
                        v.push_str(l.trim());
                    }
                    None => {
                        return Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("line {}: continuation line before any field", self.line),
                        )))
                    }
                }
                continue;
            }
            let Some((k, v)) = l.split_once(':') else {
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("line {}: expected 'Field: value', got {l:?}", self.line),
                )));
            };
            if p.fields.is_empty() {
                p.line = self.line;
            }
            p.fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_paragraphs_and_continuations() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n\n\n\
                    package: b\r\nDepends: x,\n y\n";
        let ps: Vec<_> = Paragraphs::new(text.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\nlong line\n."));
        assert_eq!(ps[1].get("Package"), Some("b"));
        assert_eq!(ps[1].get("Depends"), Some("x,\ny"));
        assert_eq!(ps[1].line, 8);
        let e = Paragraphs::new(" x\n".as_bytes())
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
