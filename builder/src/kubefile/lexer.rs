//! Splits Kubefile text into logical lines of words: comments and blank lines dropped,
//! `\` continuations joined (reported at their first line), double-quoted words kept whole.

/// A logical line: its first physical line number and its words.
pub type LogicalLine = (usize, Vec<String>);

/// Returns every logical line, or `(line number, message)` for the first bad one.
pub fn logical_lines(text: &str) -> Result<Vec<LogicalLine>, (usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((n, String::new()));
        if let Some(body) = trimmed.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(trimmed);
        out.push((start, split_words(&acc).map_err(|e| (start, e))?));
    }
    if let Some((start, acc)) = pending {
        out.push((start, split_words(&acc).map_err(|e| (start, e))?));
    }
    Ok(out)
}

fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(e) = chars.next() {
                                cur.push(e)
                            }
                        }
                        Some(o) => cur.push(o),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c)
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}
