//! What a build carries of what discovery found, and why — one decision for `ferry build`
//! and `ferry images`, so the listing is the build.
//!
//! Every image and candidate of every app is grouped under its normalised reference, and
//! each reference gets one [`Status`]:
//!
//! * a pod-template image is **certain** and carried (Kubernetes will pull it; a hook's or a
//!   test's pod is no exception: its `helm.sh/hook` travels with it into every report);
//! * a candidate is asked of its registry ([`super::verify`]) and carried when it exists
//!   (`--candidates verify`, the default), carried without asking (`all`: except bare words
//!   such as `pilot`, which are always asked), or not carried (`none`);
//! * a candidate the registry does not have, or that could not be asked, is **dropped** and
//!   listed with the reason;
//! * without helm, images guessed for components switched off in the values are not asked
//!   about (they would not run), and carried only with `all`.
//!
//! `--strict` asks about the candidates even with `none`, so that a build can fail when a
//! reference that exists is not carried ([`Selection::not_carried`]).

use super::grammar::is_bare;
use super::verify::{check_all, Checked, Checker};
use super::{Clue, Discovery, Found};
use ferry_bundle::reference::Reference;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What to do with candidates: `--candidates`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CandidateMode {
    /// Ask each candidate's registry; carry the ones that exist.
    #[default]
    Verify,
    /// Carry every candidate without asking (bare words are still asked).
    All,
    /// Carry none (list them).
    None,
}

/// What became of one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// The image of a pod template: carried.
    Certain,
    /// Guessed from chart values because helm was not available: carried.
    Guessed,
    /// A candidate its registry has: carried.
    Verified,
    /// A candidate carried without asking (`--candidates all`).
    Unverified,
    /// A candidate that an `IMAGE` line carries anyway.
    Provided,
    /// A candidate not carried because its registry does not have it, or could not be asked.
    Dropped { reason: String },
    /// A candidate its registry has, not carried because of `--candidates none`.
    Withheld,
    /// A candidate neither asked about nor carried (`--candidates none`).
    Unchecked,
    /// Guessed from the values of a component switched off (no helm): not carried.
    Disabled,
    /// A verified candidate whose pull failed: not carried.
    Failed { reason: String },
}

impl Status {
    pub fn carried(&self) -> bool {
        matches!(
            self,
            Status::Certain
                | Status::Guessed
                | Status::Verified
                | Status::Unverified
                | Status::Provided
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Certain => f.write_str("certain"),
            Status::Guessed => f.write_str("guessed from values (no helm)"),
            Status::Verified => f.write_str("verified candidate"),
            Status::Unverified => f.write_str("unverified candidate"),
            Status::Provided => f.write_str("candidate, carried by an IMAGE line"),
            Status::Dropped { reason } => write!(f, "dropped candidate: {reason}"),
            Status::Withheld => {
                f.write_str("candidate that exists, not carried (--candidates none)")
            }
            Status::Unchecked => f.write_str("candidate, not carried (--candidates none)"),
            Status::Disabled => {
                f.write_str("guessed from values of a disabled component (no helm), not carried")
            }
            Status::Failed { reason } => write!(f, "verified candidate, NOT carried: {reason}"),
        }
    }
}

/// One finding of one app.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub app: String,
    /// True for discovery's candidates, false for its images.
    pub candidate: bool,
    #[serde(flatten)]
    pub found: Found,
}

/// One reference and everything known about it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The normalised reference (`docker.io/library/busybox:1.36`).
    pub image: String,
    #[serde(skip)]
    pub reference: Reference,
    #[serde(flatten)]
    pub status: Status,
    /// The `helm.sh/hook` annotations of the objects it was found in (`test`, `pre-install`).
    pub hooks: Vec<String>,
    /// What its registry said, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Checked>,
    pub origins: Vec<Origin>,
}

impl Entry {
    /// `certain`, `verified candidate`, … with the hooks: `certain, helm hook test`.
    pub fn label(&self) -> String {
        let mut s = match &self.status {
            Status::Dropped { .. } => "dropped candidate".to_string(),
            Status::Failed { .. } => "verified candidate, NOT carried".to_string(),
            other => other.to_string(),
        };
        if !self.hooks.is_empty() {
            s.push_str(&format!(", helm hook {}", self.hooks.join(" ")));
        }
        s
    }
}

/// A finding whose string is not a valid reference (a template left unrendered).
#[derive(Debug, Clone, Serialize)]
pub struct Invalid {
    #[serde(flatten)]
    pub origin: Origin,
    pub error: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "APP {}: {} ({} {}): {}",
            o.app, o.found.image, o.found.file, o.found.field, self.error
        )
    }
}

/// The decision for every reference of every app.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    pub mode: CandidateMode,
    /// Sorted by image.
    pub entries: Vec<Entry>,
    pub invalid: Vec<Invalid>,
}

/// Counts for one summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub certain: usize,
    pub verified: usize,
    pub other_carried: usize,
    /// Carried references found (also or only) in helm hooks and tests.
    pub hooks: usize,
    pub dropped: usize,
    pub not_carried: usize,
    /// Registry checks made, and their summed time.
    pub checks: usize,
    pub check_millis: u64,
}

impl Selection {
    /// Decides what to carry. `provided` holds the normalised names that `IMAGE` lines
    /// carry anyway (they are not asked about).
    pub fn new(
        apps: &[(&str, &Discovery)],
        provided: &BTreeSet<String>,
        mode: CandidateMode,
        strict: bool,
        checker: &dyn Checker,
    ) -> Selection {
        let mut by_ref: BTreeMap<String, (Reference, Vec<Origin>)> = BTreeMap::new();
        let mut invalid = Vec::new();
        for (app, d) in apps {
            let found = d.images.iter().map(|f| (f, false));
            for (f, candidate) in found.chain(d.candidates.iter().map(|f| (f, true))) {
                let origin = Origin {
                    app: app.to_string(),
                    candidate,
                    found: f.clone(),
                };
                match Reference::parse(&f.image) {
                    Ok(r) => by_ref
                        .entry(r.to_string())
                        .or_insert_with(|| (r, Vec::new()))
                        .1
                        .push(origin),
                    Err(e) => invalid.push(Invalid {
                        origin,
                        error: e.to_string(),
                    }),
                }
            }
        }
        let mut entries: Vec<Entry> = by_ref
            .into_iter()
            .map(|(image, (reference, origins))| {
                let status = first_status(&image, &origins, provided, mode);
                let hooks: BTreeSet<String> = origins
                    .iter()
                    .filter_map(|o| o.found.hook.clone())
                    .collect();
                Entry {
                    image,
                    reference,
                    status,
                    hooks: hooks.into_iter().collect(),
                    check: None,
                    origins,
                }
            })
            .collect();
        // Entries left without a status are asked about, all at once.
        let ask: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                entries[i].status == Status::Unchecked && needs_check(&entries[i], mode, strict)
            })
            .collect();
        let refs: Vec<Reference> = ask.iter().map(|&i| entries[i].reference.clone()).collect();
        for (i, checked) in ask.into_iter().zip(check_all(&refs, checker)) {
            let e = &mut entries[i];
            e.status = match (&checked.check, mode) {
                (c, _) if !c.exists() => Status::Dropped { reason: c.reason() },
                (_, CandidateMode::None) => Status::Withheld,
                _ => Status::Verified,
            };
            e.check = Some(checked);
        }
        Selection {
            mode,
            entries,
            invalid,
        }
    }

    /// The references to carry.
    pub fn carried(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.status.carried())
    }

    /// References that exist (or are certain) and are not carried: what `--strict` refuses.
    pub fn not_carried(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.status, Status::Withheld | Status::Failed { .. }))
            .collect()
    }

    /// Candidates that were dropped, with their reasons.
    pub fn dropped(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.status, Status::Dropped { .. }))
    }

    pub fn get(&self, image: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.image == image)
    }

    /// Records that a carried candidate could not be pulled after all.
    pub fn failed(&mut self, image: &str, reason: String) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.image == image) {
            e.status = Status::Failed { reason };
        }
    }

    /// The references one app carries, sorted.
    pub fn carried_by(&self, app: &str) -> Vec<String> {
        self.carried()
            .filter(|e| e.origins.iter().any(|o| o.app == app))
            .map(|e| e.image.clone())
            .collect()
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for e in &self.entries {
            match &e.status {
                Status::Certain => s.certain += 1,
                Status::Verified => s.verified += 1,
                Status::Dropped { .. } => s.dropped += 1,
                Status::Withheld | Status::Failed { .. } => s.not_carried += 1,
                st if st.carried() => s.other_carried += 1,
                _ => {}
            }
            if e.status.carried() && !e.hooks.is_empty() {
                s.hooks += 1;
            }
            if let Some(c) = &e.check {
                s.checks += 1;
                s.check_millis += c.millis;
            }
        }
        s
    }
}

/// The status a reference has before any registry is asked; `Unchecked` means "ask, or
/// leave" (see [`needs_check`]).
fn first_status(
    image: &str,
    origins: &[Origin],
    provided: &BTreeSet<String>,
    mode: CandidateMode,
) -> Status {
    if origins
        .iter()
        .any(|o| !o.candidate && o.found.clue == Clue::PodTemplate)
    {
        return Status::Certain;
    }
    if origins.iter().any(|o| !o.candidate) {
        return Status::Guessed;
    }
    if provided.contains(image) {
        return Status::Provided;
    }
    let disabled = origins
        .iter()
        .all(|o| matches!(o.found.clue, Clue::Values(_)));
    match mode {
        CandidateMode::All if !all_bare(origins) => Status::Unverified,
        // Without helm, images of switched-off components are guesses about parts that do
        // not run: carried only when asked for with `all`.
        _ if disabled => Status::Disabled,
        _ => Status::Unchecked,
    }
}

/// Every way the reference was written is a bare word (`pilot`, never `pilot:1`).
fn all_bare(origins: &[Origin]) -> bool {
    origins.iter().all(|o| is_bare(&o.found.image))
}

/// Whether a candidate without a status yet is asked about.
fn needs_check(e: &Entry, mode: CandidateMode, strict: bool) -> bool {
    match mode {
        CandidateMode::Verify => true,
        CandidateMode::All => all_bare(&e.origins),
        CandidateMode::None => strict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::discover_manifests;
    use crate::discover::verify::FixedRegistry;

    /// An operator: a certain image, a test hook, a CR image, a reloader flag, an env var,
    /// a composed sidecar and a bare word.
    const OPERATOR: &str = "\
kind: Deployment
metadata: {name: op}
spec:
  template:
    spec:
      containers:
      - name: op
        image: quay.io/acme/operator:1.0
        args: ['--config-reloader=quay.io/acme/reloader:0.7']
        env:
        - {name: SIDECAR_IMAGE, value: 'ghcr.io/acme/sidecar:2'}
---
kind: Pod
metadata: {name: op-test, annotations: {helm.sh/hook: test}}
spec:
  containers:
  - {name: t, image: 'busybox:1.36'}
---
kind: Monitor
metadata: {name: m}
spec:
  image: quay.io/acme/monitor:3
  mode: {image: pilot}
---
kind: ConfigMap
metadata: {name: mesh}
data:
  values: '{\"global\": {\"hub\": \"quay.io/mesh\", \"tag\": \"1.22\", \"proxy\": {\"image\": \"proxyv2\"}}}'
";

    fn select(mode: CandidateMode, strict: bool, fake: &FixedRegistry) -> Selection {
        let d = discover_manifests(OPERATOR, "op.yaml").unwrap();
        Selection::new(&[("op", &d)], &BTreeSet::new(), mode, strict, fake)
    }

    const REAL: &[&str] = &[
        "quay.io/acme/reloader:0.7",
        "ghcr.io/acme/sidecar:2",
        "quay.io/acme/monitor:3",
        "quay.io/mesh/proxyv2:1.22",
    ];

    fn carried(s: &Selection) -> Vec<&str> {
        s.carried().map(|e| e.image.as_str()).collect()
    }

    #[test]
    fn verify_carries_exactly_what_exists_and_drops_bare_words() {
        let fake = FixedRegistry::new(REAL);
        let s = select(CandidateMode::Verify, false, &fake);
        assert_eq!(
            carried(&s),
            [
                "docker.io/library/busybox:1.36",
                "ghcr.io/acme/sidecar:2",
                "quay.io/acme/monitor:3",
                "quay.io/acme/operator:1.0",
                "quay.io/acme/reloader:0.7",
                "quay.io/mesh/proxyv2:1.22",
            ]
        );
        // Certain images are never asked about; every candidate is.
        assert_eq!(
            fake.asked(),
            [
                "docker.io/library/pilot:latest",
                "docker.io/library/proxyv2:latest",
                "ghcr.io/acme/sidecar:2",
                "quay.io/acme/monitor:3",
                "quay.io/acme/reloader:0.7",
                "quay.io/mesh/proxyv2:1.22",
            ]
        );
        let pilot = s.get("docker.io/library/pilot:latest").unwrap();
        assert_eq!(
            pilot.status,
            Status::Dropped {
                reason: "not found on docker.io".into()
            }
        );
        assert_eq!(pilot.origins[0].found.field, "spec.mode.image");
        let test = s.get("docker.io/library/busybox:1.36").unwrap();
        assert_eq!(test.status, Status::Certain);
        assert_eq!(test.hooks, ["test"]);
        assert_eq!(test.label(), "certain, helm hook test");
        let reloader = s.get("quay.io/acme/reloader:0.7").unwrap();
        assert_eq!(reloader.status, Status::Verified);
        assert_eq!(
            reloader.origins[0].found.clue,
            Clue::Flag("config-reloader".into())
        );
        assert!(s.not_carried().is_empty());
        let sum = s.summary();
        assert_eq!(
            (
                sum.certain,
                sum.verified,
                sum.dropped,
                sum.hooks,
                sum.checks
            ),
            (2, 4, 2, 1, 6)
        );
    }

    #[test]
    fn all_carries_without_asking_except_bare_words() {
        let fake = FixedRegistry::new(REAL);
        let s = select(CandidateMode::All, false, &fake);
        assert_eq!(
            fake.asked(),
            [
                "docker.io/library/pilot:latest",
                "docker.io/library/proxyv2:latest"
            ]
        );
        assert_eq!(
            s.get("quay.io/acme/monitor:3").unwrap().status,
            Status::Unverified
        );
        assert!(s.get("docker.io/library/pilot:latest").unwrap().status != Status::Unverified);
        assert_eq!(carried(&s).len(), 6);
    }

    #[test]
    fn none_carries_no_candidate_and_strict_names_the_ones_that_exist() {
        let fake = FixedRegistry::new(REAL);
        let s = select(CandidateMode::None, false, &fake);
        assert!(fake.asked().is_empty());
        assert_eq!(
            carried(&s),
            [
                "docker.io/library/busybox:1.36",
                "quay.io/acme/operator:1.0"
            ]
        );
        assert!(s.not_carried().is_empty());

        let fake = FixedRegistry::new(REAL);
        let s = select(CandidateMode::None, true, &fake);
        let missing: Vec<&str> = s.not_carried().iter().map(|e| e.image.as_str()).collect();
        assert_eq!(
            missing,
            [
                "ghcr.io/acme/sidecar:2",
                "quay.io/acme/monitor:3",
                "quay.io/acme/reloader:0.7",
                "quay.io/mesh/proxyv2:1.22",
            ]
        );
        assert_eq!(carried(&s).len(), 2);
    }

    #[test]
    fn provided_candidates_are_not_asked_and_failed_pulls_are_not_carried() {
        let fake = FixedRegistry::new(REAL);
        let d = discover_manifests(OPERATOR, "op.yaml").unwrap();
        let provided: BTreeSet<String> = ["quay.io/acme/monitor:3".to_string()].into();
        let mut s = Selection::new(
            &[("op", &d)],
            &provided,
            CandidateMode::Verify,
            false,
            &fake,
        );
        assert!(!fake.asked().contains(&"quay.io/acme/monitor:3".to_string()));
        assert_eq!(
            s.get("quay.io/acme/monitor:3").unwrap().status,
            Status::Provided
        );
        s.failed(
            "ghcr.io/acme/sidecar:2",
            "no linux/amd64 in its index".into(),
        );
        let nc: Vec<&str> = s.not_carried().iter().map(|e| e.image.as_str()).collect();
        assert_eq!(nc, ["ghcr.io/acme/sidecar:2"]);
        assert_eq!(s.carried_by("op").len(), 5);
    }

    #[test]
    fn images_of_disabled_components_guessed_without_helm_are_not_asked_about() {
        let chart = tempfile::tempdir().unwrap();
        std::fs::write(
            chart.path().join("Chart.yaml"),
            "apiVersion: v2\nname: c\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(
            chart.path().join("values.yaml"),
            "main:\n  image: quay.io/acme/on:1\nextra:\n  enabled: false\n  image: quay.io/acme/off:1\n",
        )
        .unwrap();
        let mut o = crate::discover::AppOptions::new(chart.path());
        o.helm = crate::discover::HelmMode::Disabled;
        let d = crate::discover::discover_app_with(&o).unwrap();
        let fake = FixedRegistry::new(["quay.io/acme/off:1"]);
        let s = Selection::new(
            &[("c", &d)],
            &BTreeSet::new(),
            CandidateMode::Verify,
            true,
            &fake,
        );
        assert!(fake.asked().is_empty());
        assert_eq!(s.get("quay.io/acme/on:1").unwrap().status, Status::Guessed);
        assert_eq!(
            s.get("quay.io/acme/off:1").unwrap().status,
            Status::Disabled
        );
        assert!(s.not_carried().is_empty());
        let s = Selection::new(
            &[("c", &d)],
            &BTreeSet::new(),
            CandidateMode::All,
            false,
            &fake,
        );
        assert_eq!(
            s.get("quay.io/acme/off:1").unwrap().status,
            Status::Unverified
        );
    }

    #[test]
    fn invalid_strings_are_kept_apart_with_their_error() {
        let d = discover_manifests(
            "kind: Pod\nspec:\n  containers:\n  - {name: a, image: 'Bad/Name:1'}\n",
            "p.yaml",
        )
        .unwrap();
        let s = Selection::new(
            &[("p", &d)],
            &BTreeSet::new(),
            CandidateMode::Verify,
            false,
            &FixedRegistry::default(),
        );
        assert!(s.entries.is_empty());
        assert_eq!(s.invalid.len(), 1);
        assert_eq!(s.invalid[0].origin.found.image, "Bad/Name:1");
    }
}
