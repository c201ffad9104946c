//! The dependency closure of the Kubefile's `PACKAGE deb` lines.
//!
//! Like apt, and deliberately no cleverer: every `Pre-Depends` and `Depends` of every
//! package carried is satisfied by one alternative; an alternative already satisfied (by
//! a package carried, or by the release's base) wins, else the first alternative that
//! can be satisfied, by the newest version of the real package that meets the
//! constraint or else by a package that `Provides` it (for a versioned relation, with a
//! matching provided version). A package is chosen at one version; a later constraint
//! it does not meet is an error naming both, not a search (apt does not backtrack
//! either, and a closure that needs it is one an operator should see).
//!
//! The *base* — `Essential: yes` and `Priority: required` packages and their own
//! dependencies, which every installation of the release has (debootstrap's minbase is
//! exactly these) — is never
//! carried; a dependency it satisfies is noted, not followed. `Recommends` and
//! `Suggests` are not followed (`apt-get install --no-install-recommends`); `Conflicts`
//! and `Breaks` are left to dpkg, which refuses with its own message.
//!
//! The result is in install order: groups (strongly connected components of the
//! dependency graph, for the rare dependency cycles) with every group's dependencies in
//! earlier groups, which is the order the installer runs `dpkg -i` in.

use super::index::{Index, Package};
use ferry_deb::{parse_depends, Alternatives, Relation};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// One `PACKAGE deb name[=version]` word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub version: Option<String>,
    /// Where it was asked for (`Kubefile:7`).
    pub at: String,
}

impl Request {
    pub fn parse(word: &str, at: &str) -> Result<Request, String> {
        let (name, version) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        if !ferry_deb::relation::valid_name(name) {
            return Err(format!(
                "{word:?} is not a package name[=version] (names are lower case: a-z 0-9 + - .)"
            ));
        }
        if let Some(v) = &version {
            ferry_deb::Version::parse(v).map_err(|e| e.to_string())?;
        }
        Ok(Request {
            name: name.to_string(),
            version,
            at: at.to_string(),
        })
    }
}

/// Why a package is carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Named on a `PACKAGE deb` line.
    Requested { at: String },
    /// Satisfies `field: relation` of `of`.
    Dependency {
        of: String,
        field: String,
        relation: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Requested { at } => write!(f, "PACKAGE deb ({at})"),
            Reason::Dependency {
                of,
                field,
                relation,
            } => write!(f, "{of} {field}: {relation}"),
        }
    }
}

/// A package of the closure.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub package: Package,
    pub why: Vec<Reason>,
    /// Names of the carried packages it depends on.
    pub depends: Vec<String>,
    /// Install group: every dependency is in this group or an earlier one.
    pub group: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Closure {
    /// In install order.
    pub packages: Vec<Resolved>,
    /// Base packages a dependency relied on (name → version in the repositories): the
    /// target host must have them, as every installation of the release does.
    pub base: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{at}: PACKAGE deb {word}: {reason}")]
    Request {
        at: String,
        word: String,
        reason: String,
    },
    #[error(
        "cannot satisfy {package} {field}: {relation}\n  {reason}\n  {package} is needed by: {chain}"
    )]
    Unsatisfiable {
        package: String,
        field: String,
        relation: String,
        reason: String,
        chain: String,
    },
    #[error("{package}: {field} cannot be read: {reason}")]
    Field {
        package: String,
        field: String,
        reason: String,
    },
}

struct Resolver<'a> {
    ix: &'a Index,
    arch: &'a str,
    /// Chosen package per name.
    chosen: HashMap<String, usize>,
    order: Vec<usize>,
    why: HashMap<usize, Vec<Reason>>,
    edges: HashMap<usize, BTreeSet<usize>>,
    /// The base (see [`base`]): package per name.
    base: HashMap<String, usize>,
    base_used: BTreeMap<String, String>,
}

pub fn resolve(ix: &Index, arch: &str, requests: &[Request]) -> Result<Closure, ResolveError> {
    let mut r = Resolver::new(ix, arch, base(ix, arch));
    let mut queue = VecDeque::new();
    for req in requests {
        let i = r.requested(req)?;
        r.why
            .entry(i)
            .or_default()
            .push(Reason::Requested { at: req.at.clone() });
        if r.choose(i) {
            queue.push_back(i);
        }
    }
    r.close(queue, true)?;
    Ok(r.finish())
}

/// The release's base: the newest `Essential: yes` and `Priority: required` packages and
/// everything they depend on (libraries are `optional` since bookworm; `libc6` is in the
/// base because `Essential` packages need it). That is what debootstrap's minbase installs.
fn base(ix: &Index, arch: &str) -> HashMap<String, usize> {
    let mut r = Resolver::new(ix, arch, HashMap::new());
    let mut queue = VecDeque::new();
    for (i, p) in ix.packages.iter().enumerate() {
        if p.in_base() && ix.versions(&p.name)[0] == i && r.choose(i) {
            queue.push_back(i);
        }
    }
    // The archive's own base is consistent; a dependency it cannot satisfy here (another
    // architecture's, say) only means fewer packages count as base.
    let _ = r.close(queue, false);
    r.chosen
}

/// Rank of a `Priority` when choosing among providers: the more basic, the better.
fn priority_rank(p: &str) -> u8 {
    match p {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

impl<'a> Resolver<'a> {
    fn new(ix: &'a Index, arch: &'a str, base: HashMap<String, usize>) -> Resolver<'a> {
        Resolver {
            ix,
            arch,
            chosen: HashMap::new(),
            order: Vec::new(),
            why: HashMap::new(),
            edges: HashMap::new(),
            base,
            base_used: BTreeMap::new(),
        }
    }

    /// Satisfies every `Pre-Depends` and `Depends` of the queued packages and of what
    /// they bring in. Not `strict`: a dependency that cannot be satisfied is skipped.
    fn close(&mut self, mut queue: VecDeque<usize>, strict: bool) -> Result<(), ResolveError> {
        let ix = self.ix;
        while let Some(i) = queue.pop_front() {
            let p = &ix.packages[i];
            for (field, text) in [("Pre-Depends", &p.pre_depends), ("Depends", &p.depends)] {
                let Some(text) = text else { continue };
                let deps = match parse_depends(text) {
                    Ok(d) => d,
                    Err(_) if !strict => continue,
                    Err(e) => {
                        return Err(ResolveError::Field {
                            package: p.id(),
                            field: field.into(),
                            reason: e.to_string(),
                        })
                    }
                };
                for alts in deps {
                    let j = match self.satisfy(i, field, &alts) {
                        Ok(Some(j)) => j,
                        Ok(None) => continue,
                        Err(_) if !strict => continue,
                        Err(e) => return Err(e),
                    };
                    self.edges.entry(i).or_default().insert(j);
                    let reason = Reason::Dependency {
                        of: p.name.clone(),
                        field: field.into(),
                        relation: alts.to_string(),
                    };
                    let w = self.why.entry(j).or_default();
                    if !w.contains(&reason) {
                        w.push(reason);
                    }
                    if self.choose(j) {
                        queue.push_back(j);
                    }
                }
            }
        }
        Ok(())
    }

    fn pkg(&self, i: usize) -> &Package {
        &self.ix.packages[i]
    }

    /// Records `i` as chosen; true if it is new.
    fn choose(&mut self, i: usize) -> bool {
        let name = self.pkg(i).name.clone();
        if self.chosen.contains_key(&name) {
            return false;
        }
        self.chosen.insert(name, i);
        self.order.push(i);
        true
    }

    fn requested(&self, req: &Request) -> Result<usize, ResolveError> {
        let err = |reason: String| ResolveError::Request {
            at: req.at.clone(),
            word: match &req.version {
                Some(v) => format!("{}={v}", req.name),
                None => req.name.clone(),
            },
            reason,
        };
        let versions = self.ix.versions(&req.name);
        if versions.is_empty() {
            let provided: Vec<String> = self
                .ix
                .providers(&req.name)
                .iter()
                .map(|(p, _)| self.pkg(*p).name.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(err(if provided.is_empty() {
                format!(
                    "no package of that name for {} in the repositories",
                    self.arch
                )
            } else {
                format!(
                    "a virtual package; name one of the packages that provide it: {}",
                    provided.join(", ")
                )
            }));
        }
        match &req.version {
            None => Ok(versions[0]),
            Some(v) => {
                let want = ferry_deb::Version::parse(v).map_err(|e| err(e.to_string()))?;
                versions
                    .iter()
                    .copied()
                    .find(|&i| self.pkg(i).version == want)
                    .ok_or_else(|| {
                        err(format!(
                            "the repositories have {} {}, not {v}",
                            req.name,
                            self.list_versions(&versions)
                        ))
                    })
            }
        }
    }

    fn list_versions(&self, versions: &[usize]) -> String {
        versions
            .iter()
            .map(|&i| self.pkg(i).version.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn arch_ok(&self, r: &Relation) -> bool {
        match r.arch.as_deref() {
            None | Some("any") | Some("native") => true,
            Some(a) => a == self.arch,
        }
    }

    /// The package among `cands` that satisfies `r` (by name or by `Provides`).
    fn satisfies_among(&self, r: &Relation, cand: impl Fn(&str) -> Option<usize>) -> Option<usize> {
        if let Some(i) = cand(&r.name) {
            if r.accepts(Some(&self.pkg(i).version)) {
                return Some(i);
            }
        }
        self.ix
            .providers(&r.name)
            .iter()
            .find(|(p, v)| cand(&self.pkg(*p).name) == Some(*p) && r.accepts(v.as_ref()))
            .map(|(p, _)| *p)
    }

    /// Satisfies one dependency of `of`: `Some(package carried)` or `None` when the base
    /// satisfies it.
    fn satisfy(
        &mut self,
        of: usize,
        field: &str,
        alts: &Alternatives,
    ) -> Result<Option<usize>, ResolveError> {
        let usable: Vec<&Relation> = alts.0.iter().filter(|r| self.arch_ok(r)).collect();
        for r in &usable {
            if let Some(i) = self.satisfies_among(r, |n| self.chosen.get(n).copied()) {
                return Ok(Some(i));
            }
        }
        for r in &usable {
            if let Some(i) = self.satisfies_among(r, |n| self.base.get(n).copied()) {
                let p = self.pkg(i);
                self.base_used.insert(p.name.clone(), p.version.to_string());
                return Ok(None);
            }
        }
        let mut why_not = Vec::new();
        for r in alts.0.iter() {
            if !self.arch_ok(r) {
                why_not.push(format!("{r}: for another architecture than {}", self.arch));
                continue;
            }
            match self.candidate(r) {
                Ok(i) => return Ok(Some(i)),
                Err(e) => why_not.push(e),
            }
        }
        Err(ResolveError::Unsatisfiable {
            package: self.pkg(of).id(),
            field: field.into(),
            relation: alts.to_string(),
            reason: why_not.join("; "),
            chain: self.chain(of),
        })
    }

    /// A package not chosen yet that satisfies `r`, or why there is none.
    fn candidate(&self, r: &Relation) -> Result<usize, String> {
        if let Some(&c) = self.chosen.get(&r.name) {
            // Chosen at a version that does not fit (else it would have satisfied `r`).
            let p = self.pkg(c);
            return Err(format!(
                "{} {} is carried (for {}), which does not meet {r}",
                p.name,
                p.version,
                self.why
                    .get(&c)
                    .and_then(|w| w.first())
                    .map(|w| w.to_string())
                    .unwrap_or_default()
            ));
        }
        let versions = self.ix.versions(&r.name);
        if let Some(&i) = versions
            .iter()
            .find(|&&i| r.accepts(Some(&self.pkg(i).version)))
        {
            return Ok(i);
        }
        let mut providers: Vec<usize> = self
            .ix
            .providers(&r.name)
            .iter()
            .filter(|(p, v)| {
                r.accepts(v.as_ref())
                    && !self.chosen.contains_key(&self.pkg(*p).name)
                    && self.ix.versions(&self.pkg(*p).name).first() == Some(p)
            })
            .map(|(p, _)| *p)
            .collect();
        providers.sort_by(|a, b| {
            let (pa, pb) = (self.pkg(*a), self.pkg(*b));
            priority_rank(&pa.priority)
                .cmp(&priority_rank(&pb.priority))
                .then_with(|| pa.name.cmp(&pb.name))
        });
        if let Some(&i) = providers.first() {
            return Ok(i);
        }
        Err(
            if versions.is_empty() && self.ix.providers(&r.name).is_empty() {
                format!(
                    "no package {} in the repositories, and none provides it",
                    r.name
                )
            } else if versions.is_empty() {
                format!("no package provides {r} (only other versions are provided)")
            } else {
                format!(
                    "the repositories have {} {} only",
                    r.name,
                    self.list_versions(&versions)
                )
            },
        )
    }

    /// `b ← a ← PACKAGE deb a (Kubefile:3)`: the first reason, followed to a request.
    fn chain(&self, mut i: usize) -> String {
        let mut parts = vec![];
        for _ in 0..64 {
            match self.why.get(&i).and_then(|w| w.first()) {
                Some(Reason::Requested { at }) => {
                    parts.push(format!("PACKAGE deb {} ({at})", self.pkg(i).name));
                    break;
                }
                Some(Reason::Dependency { of, .. }) => {
                    parts.push(of.clone());
                    match self.chosen.get(of) {
                        Some(&j) => i = j,
                        None => break,
                    }
                }
                None => break,
            }
        }
        parts.join(" ← ")
    }

    /// The chosen packages in install order (Tarjan's strongly connected components:
    /// each component is emitted after every component it depends on).
    fn finish(self) -> Closure {
        let mut nodes: Vec<usize> = self.order.clone();
        nodes.sort_by(|a, b| self.pkg(*a).name.cmp(&self.pkg(*b).name));
        let mut t = Tarjan {
            edges: &self.edges,
            index: HashMap::new(),
            low: HashMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            out: Vec::new(),
        };
        for &n in &nodes {
            if !t.index.contains_key(&n) {
                t.visit(n);
            }
        }
        let mut packages = Vec::new();
        for (group, mut comp) in t.out.into_iter().enumerate() {
            comp.sort_by(|a, b| self.pkg(*a).name.cmp(&self.pkg(*b).name));
            for i in comp {
                let mut depends: Vec<String> = self
                    .edges
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .map(|&j| self.pkg(j).name.clone())
                    .collect();
                depends.sort();
                depends.dedup();
                packages.push(Resolved {
                    package: self.pkg(i).clone(),
                    why: self.why.get(&i).cloned().unwrap_or_default(),
                    depends,
                    group,
                });
            }
        }
        Closure {
            packages,
            base: self.base_used,
        }
    }
}

struct Tarjan<'a> {
    edges: &'a HashMap<usize, BTreeSet<usize>>,
    index: HashMap<usize, usize>,
    low: HashMap<usize, usize>,
    stack: Vec<usize>,
    on_stack: BTreeSet<usize>,
    next: usize,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index.insert(v, self.next);
        self.low.insert(v, self.next);
        self.next += 1;
        self.stack.push(v);
        self.on_stack.insert(v);
        let succ: Vec<usize> = self.edges.get(&v).into_iter().flatten().copied().collect();
        for w in succ {
            if !self.index.contains_key(&w) {
                self.visit(w);
                let lw = self.low[&w];
                let lv = self.low.get_mut(&v).expect("visited");
                *lv = (*lv).min(lw);
            } else if self.on_stack.contains(&w) {
                let iw = self.index[&w];
                let lv = self.low.get_mut(&v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if self.low[&v] == self.index[&v] {
            let mut comp = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            self.out.push(comp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index from `name version [priority]; Depends; Provides` lines.
    fn index(lines: &[&str]) -> Index {
        let mut ix = Index::default();
        let mut text = String::new();
        for l in lines {
            let parts: Vec<&str> = l.split(';').map(str::trim).collect();
            let head: Vec<&str> = parts[0].split_whitespace().collect();
            text.push_str(&format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nPriority: {}\nFilename: pool/{}.deb\nSize: 1\nSHA256: {}\n",
                head[0],
                head[1],
                head.get(2).unwrap_or(&"optional"),
                head[0],
                "0".repeat(64)
            ));
            if let Some(d) = parts.get(1).filter(|d| !d.is_empty()) {
                text.push_str(&format!("Depends: {d}\n"));
            }
            if let Some(p) = parts.get(2).filter(|p| !p.is_empty()) {
                text.push_str(&format!("Provides: {p}\n"));
            }
            text.push('\n');
        }
        ix.add_stream(text.as_bytes(), "amd64", 0, "test").unwrap();
        ix
    }

    fn req(w: &str) -> Request {
        Request::parse(w, "Kubefile:3").unwrap()
    }

    fn names(c: &Closure) -> Vec<String> {
        c.packages
            .iter()
            .map(|p| format!("{}={}", p.package.name, p.package.version))
            .collect()
    }

    #[test]
    fn follows_depends_leaves_out_the_base_and_orders_dependencies_first() {
        let ix = index(&[
            "app 2; libx (>= 1.5), libc6 (>= 2.30), mta",
            "app 1; libx",
            "libx 1.4",
            "libx 1.6; liby",
            "liby 1",
            "libc6 2.36 required",
            "postfix 3;; mail-transport-agent, mta",
            "exim 4 important;; mta",
        ]);
        let c = resolve(&ix, "amd64", &[req("app")]).unwrap();
        assert_eq!(
            names(&c),
            ["liby=1", "libx=1.6", "exim=4", "app=2"],
            "{c:#?}"
        );
        assert_eq!(c.base.get("libc6").map(String::as_str), Some("2.36"));
        let app = c.packages.iter().find(|p| p.package.name == "app").unwrap();
        assert_eq!(app.depends, ["exim", "libx"]);
        assert_eq!(
            app.why,
            [Reason::Requested {
                at: "Kubefile:3".into()
            }]
        );
        let exim = c
            .packages
            .iter()
            .find(|p| p.package.name == "exim")
            .unwrap();
        assert_eq!(
            exim.why[0].to_string(),
            "app Depends: mta",
            "a virtual package goes to its most basic provider"
        );
        // A pinned version.
        let c = resolve(&ix, "amd64", &[req("app=1")]).unwrap();
        assert_eq!(names(&c), ["liby=1", "libx=1.6", "app=1"]);
    }

    #[test]
    fn alternatives_prefer_what_is_already_there() {
        let ix = index(&[
            "a 1; b | c",
            "b 1; d",
            "c 1",
            "d 1",
            "e 1; c",
            "top 1; e, a",
        ]);
        // e brings c first; a's `b | c` is then satisfied by c and b is not carried.
        let c = resolve(&ix, "amd64", &[req("top")]).unwrap();
        let n = names(&c);
        assert!(
            n.contains(&"c=1".into()) && !n.contains(&"b=1".into()),
            "{n:?}"
        );
        // Only a base package satisfies `| c`? Then nothing is carried for it.
        let ix = index(&["a 1; b | c", "b 1", "c 1 required"]);
        let c = resolve(&ix, "amd64", &[req("a")]).unwrap();
        assert_eq!(names(&c), ["a=1"]);
    }

    #[test]
    fn what_the_base_depends_on_is_base_too() {
        // Since bookworm libraries are `optional`: libtinfo6 is base because bash needs it.
        let ix = index(&[
            "bash 5.2 required; libtinfo6 (>= 6)",
            "libtinfo6 6.4",
            "app 1; libtinfo6 (>= 6), libfoo",
            "libfoo 1",
        ]);
        let c = resolve(&ix, "amd64", &[req("app")]).unwrap();
        assert_eq!(names(&c), ["libfoo=1", "app=1"]);
        assert_eq!(c.base.get("libtinfo6").map(String::as_str), Some("6.4"));
    }

    #[test]
    fn versioned_provides_and_cycles() {
        let ix = index(&[
            "user 1; libabi (>= 2)",
            "old 1;; libabi (= 1)",
            "new 1;; libabi (= 3)",
            "p 1; q",
            "q 1; p",
            "top 1; user, p",
        ]);
        let c = resolve(&ix, "amd64", &[req("top")]).unwrap();
        let n = names(&c);
        assert!(
            n.contains(&"new=1".into()) && !n.contains(&"old=1".into()),
            "{n:?}"
        );
        let group = |name: &str| {
            c.packages
                .iter()
                .find(|p| p.package.name == name)
                .unwrap()
                .group
        };
        let (gp, gq, gt) = (group("p"), group("q"), group("top"));
        assert_eq!(gp, gq, "a cycle is one install group");
        assert!(gt > gp);
    }

    #[test]
    fn unsatisfiable_names_the_package_the_constraint_and_the_chain() {
        let ix = index(&["top 1; mid", "mid 2; libz (>= 3) | libw", "libz 2.1"]);
        let e = resolve(&ix, "amd64", &[req("top")])
            .unwrap_err()
            .to_string();
        for want in [
            "cannot satisfy mid 2 (amd64) Depends: libz (>= 3) | libw",
            "the repositories have libz 2.1 only",
            "no package libw in the repositories",
            "mid 2 (amd64) is needed by: top ← PACKAGE deb top (Kubefile:3)",
        ] {
            assert!(e.contains(want), "{want:?} in {e}");
        }
        let e = resolve(&ix, "amd64", &[req("nope")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("Kubefile:3: PACKAGE deb nope: no package"),
            "{e}"
        );
        let e = resolve(&ix, "amd64", &[req("libz=9")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("have libz 2.1, not 9"), "{e}");
        // A version chosen for one package that another cannot use.
        let ix = index(&["top 1; a, b", "a 1; c (= 1)", "b 1; c (>= 2)", "c 1", "c 2"]);
        let e = resolve(&ix, "amd64", &[req("top")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("c 1 is carried (for a Depends: c (= 1))"), "{e}");
    }
}
