//! Candidate verification: ask each candidate's registry whether it has the image.
//!
//! Why: discovery's candidates (operator flags, `*_IMAGE` env vars, custom-resource fields,
//! composed `hub/image:tag`) are the images an operator pulls after install, so an
//! air-gapped site needs them; but some are words that only look like images (`pilot`
//! becomes `docker.io/library/pilot:latest`, which does not exist). The registry is the one
//! judge that is never wrong about that, so every candidate is asked — with one manifest
//! `HEAD` through the pull client ([`crate::pull::probe`]: same credentials, mirrors and
//! insecure registries as the pull that follows) — and carried only when it exists.
//!
//! The [`Checker`] trait keeps the question apart from the network, so the selection rules
//! ([`super::select`]) are tested with a fake registry and the real one in the end-to-end
//! tests. Checks run [`PARALLEL_CHECKS`] at a time: each is one round trip.

use crate::pull::{probe, PullError, PullOptions};
use ferry_bundle::reference::Reference;
use ferry_bundle::Sha256Digest;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Candidates checked at once: enough to hide round trips, few enough for rate limits.
pub const PARALLEL_CHECKS: usize = 8;

/// What a registry said about one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Check {
    /// The manifest exists.
    Exists {
        /// `Docker-Content-Digest`, when the registry sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<Sha256Digest>,
        /// The registry that answered (a mirror says so).
        registry: String,
    },
    /// The registry has no such manifest (404).
    NotFound { registry: String },
    /// The question could not be answered (refused credentials, unreachable host, …).
    Failed { reason: String },
}

impl Check {
    pub fn exists(&self) -> bool {
        matches!(self, Check::Exists { .. })
    }

    /// Why a reference that is not carried was dropped, for reports.
    pub fn reason(&self) -> String {
        match self {
            Check::Exists { registry, .. } => format!("exists on {registry}"),
            Check::NotFound { registry } => format!("not found on {registry}"),
            Check::Failed { reason } => reason.clone(),
        }
    }
}

/// A reference with its check and what the check cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    #[serde(flatten)]
    pub check: Check,
    pub millis: u64,
}

/// Answers "does this image exist?".
pub trait Checker: Sync {
    fn check(&self, reference: &Reference) -> Check;
}

/// The real registries, through the pull client.
pub struct LiveRegistries<'a> {
    pub pull: &'a PullOptions,
}

impl Checker for LiveRegistries<'_> {
    fn check(&self, reference: &Reference) -> Check {
        match probe(reference, self.pull) {
            Ok(p) => Check::Exists {
                digest: p.digest,
                registry: p.registry,
            },
            Err(PullError::NotFound { registry, .. }) => Check::NotFound { registry },
            Err(e) => Check::Failed {
                reason: e.to_string(),
            },
        }
    }
}

/// A registry that has exactly the given references (normalised), and remembers what it was
/// asked: the stand-in for tests of everything that verifies.
#[derive(Debug, Default)]
pub struct FixedRegistry {
    have: BTreeSet<String>,
    asked: Mutex<Vec<String>>,
}

impl FixedRegistry {
    pub fn new<S: AsRef<str>>(have: impl IntoIterator<Item = S>) -> FixedRegistry {
        FixedRegistry {
            have: have.into_iter().map(|s| s.as_ref().to_string()).collect(),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// The references asked about, sorted.
    pub fn asked(&self) -> Vec<String> {
        let mut v = self.asked.lock().expect("asked").clone();
        v.sort();
        v
    }
}

impl Checker for FixedRegistry {
    fn check(&self, r: &Reference) -> Check {
        let s = r.to_string();
        let exists = self.have.contains(&s);
        self.asked.lock().expect("asked").push(s);
        let registry = r.host.clone();
        match exists {
            true => Check::Exists {
                digest: None,
                registry,
            },
            false => Check::NotFound { registry },
        }
    }
}

/// Checks every reference, [`PARALLEL_CHECKS`] at a time; results in the input's order.
pub fn check_all(refs: &[Reference], checker: &dyn Checker) -> Vec<Checked> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Checked>>> = Mutex::new(vec![None; refs.len()]);
    let workers = PARALLEL_CHECKS.clamp(1, refs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = refs.get(i) else { break };
                let started = Instant::now();
                let check = checker.check(r);
                let millis = started.elapsed().as_millis() as u64;
                tracing::debug!("candidate {r}: {} ({millis} ms)", check.reason());
                results.lock().expect("results")[i] = Some(Checked { check, millis });
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|c| c.expect("every reference is checked"))
        .collect()
}

/// Total time of a set of checks (their sum: what they would cost one at a time).
pub fn total(checked: &[Checked]) -> Duration {
    Duration::from_millis(checked.iter().map(|c| c.millis).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_input_order() {
        let refs: Vec<Reference> = (0..30)
            .map(|i| Reference::parse(&format!("quay.io/x/app-{i}:1")).unwrap())
            .collect();
        let got = check_all(&refs, &FixedRegistry::new(["quay.io/x/app-17:1"]));
        assert_eq!(got.len(), 30);
        for (i, c) in got.iter().enumerate() {
            assert_eq!(c.check.exists(), i == 17, "{i}: {c:?}");
        }
        assert_eq!(got[3].check.reason(), "not found on quay.io");
        assert!(check_all(&[], &FixedRegistry::default()).is_empty());
    }

    #[test]
    fn an_unreachable_registry_is_a_failed_check_naming_the_host() {
        let pull = PullOptions {
            attempts: 1,
            docker_config: Some("/nonexistent/ferry/config.json".into()),
            ..Default::default()
        };
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let r = Reference::parse("127.0.0.1:9/x/y:1").unwrap();
        let c = LiveRegistries { pull: &pull }.check(&r);
        match &c {
            Check::Failed { reason } => assert!(reason.contains("127.0.0.1:9"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(!c.exists());
    }
}
