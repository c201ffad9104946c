//! Relationship fields (`Depends`, `Pre-Depends`, `Provides`): policy §7.1.
//!
//! `Depends: a (>= 1.2) | b, c:any` is a conjunction of alternatives; each alternative
//! names a package, optionally an architecture qualifier and a version constraint. The
//! architecture lists (`[amd64]`) and build profiles (`<!nocheck>`) that only source
//! packages use are dropped if present.

use crate::version::{Version, VersionError};
use std::fmt;

/// A version constraint operator. The obsolete `<` and `>` mean `<=` and `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    #[serde(rename = "<<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">>")]
    Gt,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }
    /// Does `have` satisfy `have <op> want`?
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let o = have.cmp(want);
        match self {
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Eq => o.is_eq(),
            Op::Ge => o.is_ge(),
            Op::Gt => o.is_gt(),
        }
    }
}

/// One alternative: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture name, when qualified.
    pub arch: Option<String>,
    pub constraint: Option<(Op, Version)>,
}

impl Relation {
    /// Does a package (or a `Provides`) of `version` satisfy this relation's constraint?
    /// `None` is an unversioned `Provides`, which satisfies only unversioned relations.
    pub fn accepts(&self, version: Option<&Version>) -> bool {
        match (&self.constraint, version) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((op, want)), Some(have)) => op.holds(have, want),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

/// Alternatives separated by `|`: satisfied by any one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternatives(pub Vec<Relation>);

impl fmt::Display for Alternatives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("{field:?}: {reason}")]
    Syntax { field: String, reason: String },
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// A package name as policy §5.6.1 allows it: lower case letters, digits, `+ - .`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Parses a `Depends`-like field into its conjunction of alternatives.
pub fn parse_depends(field: &str) -> Result<Vec<Alternatives>, RelationError> {
    let mut out = Vec::new();
    for part in field.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in part.split('|') {
            alts.push(parse_relation(alt, field)?);
        }
        out.push(Alternatives(alts));
    }
    Ok(out)
}

/// Parses a `Provides` field: a list of relations with at most `(= version)`.
pub fn parse_provides(field: &str) -> Result<Vec<Relation>, RelationError> {
    field
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| parse_relation(p, field))
        .collect()
}

fn parse_relation(text: &str, field: &str) -> Result<Relation, RelationError> {
    let syntax = |reason: String| RelationError::Syntax {
        field: field.to_string(),
        reason,
    };
    // Drop source-only parts: `[arch list]` and `<build profiles>`.
    let mut s = String::with_capacity(text.len());
    let mut depth_sq = 0;
    let mut depth_ang = 0;
    for c in text.chars() {
        match c {
            '[' => depth_sq += 1,
            ']' => depth_sq -= 1,
            '<' if depth_sq == 0 && !s.contains('(') => depth_ang += 1,
            '>' if depth_ang > 0 && !s.contains('(') => depth_ang -= 1,
            _ if depth_sq > 0 || depth_ang > 0 => {}
            _ => s.push(c),
        }
    }
    let s = s.trim();
    let (head, constraint) = match s.find('(') {
        Some(i) => {
            let close = s[i..]
                .find(')')
                .ok_or_else(|| syntax(format!("unclosed '(' in {text:?}")))?;
            let inner = s[i + 1..i + close].trim();
            let op_len = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .unwrap_or(inner.len());
            let op = Op::parse(&inner[..op_len])
                .ok_or_else(|| syntax(format!("bad operator in {text:?}")))?;
            let v = Version::parse(inner[op_len..].trim())?;
            (s[..i].trim(), Some((op, v)))
        }
        None => (s, None),
    };
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (head, None),
    };
    if !valid_name(name) {
        return Err(syntax(format!("bad package name in {text:?}")));
    }
    Ok(Relation {
        name: name.to_string(),
        arch,
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alternatives_constraints_and_qualifiers() {
        let d =
            parse_depends("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any, x (<<2)")
                .unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].0[0].name, "libc6");
        assert_eq!(d[0].0[0].constraint.as_ref().unwrap().0, Op::Ge);
        assert_eq!(d[1].0.len(), 2);
        assert_eq!(d[1].0[1].name, "debconf-2.0");
        assert_eq!(d[2].0[0].arch.as_deref(), Some("any"));
        assert_eq!(d[3].0[0].constraint.as_ref().unwrap().0, Op::Lt);
        assert_eq!(d[1].to_string(), "debconf (>= 0.5) | debconf-2.0");
        let d = parse_depends("foo [amd64] <!nocheck>, bar (> 1)").unwrap();
        assert_eq!(d[0].0[0].name, "foo");
        assert_eq!(d[1].0[0].constraint.as_ref().unwrap().0, Op::Ge);
        assert!(parse_depends("Foo").is_err());
        assert!(parse_depends("foo (>= 1").is_err());
    }

    #[test]
    fn constraints_and_provides() {
        let r = &parse_depends("a (>= 1.2)").unwrap()[0].0[0];
        assert!(r.accepts(Some(&Version::parse("1.10").unwrap())));
        assert!(!r.accepts(Some(&Version::parse("1.1").unwrap())));
        assert!(!r.accepts(None), "an unversioned Provides");
        let p = parse_provides("mail-transport-agent, libfoo-abi (= 3)").unwrap();
        assert_eq!(p[1].constraint.as_ref().unwrap().1.as_str(), "3");
    }
}
