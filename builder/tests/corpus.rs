//! Image discovery against real, public charts and manifests with hand-checked ground truth
//! (`shared/corpus`, see its SOURCES.md), and against this crate's own edge-case charts
//! (`tests/charts/`).
//!
//! Why a corpus: discovery is judged by what real charts do (split image fields, subcharts,
//! hooks, operators that pull images named only in flags), and a miss here means an
//! air-gapped install that cannot start. The chart tests need a real helm and FAIL without
//! one: a silent skip would hide that nothing was checked.
//!
//! The corpus is found through `FERRY_CORPUS`, defaulting to `<workspace>/../shared/corpus`.

use ferry_builder::discover::verify::FixedRegistry;
use ferry_builder::discover::{
    discover_app, discover_app_with, discover_manifest_file, find_helm, is_bare, AppOptions,
    CandidateMode, Discovery, Found, HelmMode, Renderer, Selection, Status,
};
use ferry_bundle::reference::Reference;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("builder/ is inside the workspace")
        .to_path_buf()
}

fn corpus() -> PathBuf {
    let dir = std::env::var_os("FERRY_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/corpus"));
    assert!(
        dir.join("expected").is_dir(),
        "image-discovery corpus not found at {} (set FERRY_CORPUS to its directory)",
        dir.display()
    );
    dir
}

fn own_chart(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/charts")
        .join(name)
}

/// The helm to render with. Missing helm fails the test, with the fix in the message.
fn helm() -> PathBuf {
    match find_helm() {
        Ok(Some(p)) => p,
        Ok(None) => panic!(
            "helm is required to test chart discovery and was not found on PATH: \
             run scripts/install-helm.sh (or set FERRY_HELM to a helm binary)"
        ),
        Err(e) => panic!("{e}: run scripts/install-helm.sh (or fix FERRY_HELM)"),
    }
}

/// Renders `chart` with helm as the ground truth was made: release `rel`, default namespace.
fn render(chart: &Path, values: Vec<PathBuf>, set: Vec<String>) -> Discovery {
    let mut o = AppOptions::new(chart);
    o.release = "rel".into();
    o.helm = HelmMode::Binary(helm());
    o.values = values;
    o.set = set;
    let d = discover_app_with(&o).unwrap_or_else(|e| panic!("{}: {e}", chart.display()));
    assert!(matches!(d.rendered_with, Renderer::Helm { .. }));
    d
}

fn fallback(chart: &Path) -> Discovery {
    let mut o = AppOptions::new(chart);
    o.helm = HelmMode::Disabled;
    discover_app_with(&o).unwrap_or_else(|e| panic!("{}: {e}", chart.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn owned(set: BTreeSet<&str>) -> BTreeSet<String> {
    set.into_iter().map(str::to_string).collect()
}

/// `<name>.images.txt`: sorted unique images, one a line.
fn expected_images(name: &str) -> BTreeSet<String> {
    read(&corpus().join(format!("expected/{name}.images.txt")))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// One row of `<name>.images.detail.tsv`: image, kind, namespace/name, container list,
/// container, hook.
type Detail = (String, String, String, String, String, String);

fn expected_details(name: &str) -> BTreeSet<Detail> {
    read(&corpus().join(format!("expected/{name}.images.detail.tsv")))
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let col = |i: usize| c.get(i).copied().unwrap_or("").to_string();
            (col(0), col(1), col(2), col(3), col(4), col(5))
        })
        .collect()
}

/// Helm's random name suffixes (`rel-ui-test-xtdg6`) change every render: keep the stem.
fn stable_name(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((stem, tail))
            if tail.len() == 5
                && tail
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            format!("{stem}-?????")
        }
        _ => name.to_string(),
    }
}

fn details_of(found: &[Found]) -> BTreeSet<Detail> {
    found
        .iter()
        .map(|f| {
            // `spec.template.spec.initContainers[0].image` → `initContainers`.
            let list = f
                .field
                .rsplit('.')
                .nth(1)
                .and_then(|s| s.split('[').next())
                .unwrap_or("")
                .to_string();
            (
                f.image.clone(),
                f.kind.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    f.namespace.as_deref().unwrap_or(""),
                    stable_name(f.name.as_deref().unwrap_or(""))
                ),
                list,
                f.container.clone().unwrap_or_default(),
                f.hook.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// `<name>.other-image-strings.txt`: (verdict, string) rows.
fn other_strings(name: &str) -> Vec<(String, String)> {
    read(&corpus().join(format!("expected/{name}.other-image-strings.txt")))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut c = l.split('\t');
            Some((c.next()?.to_string(), c.next()?.to_string()))
        })
        .collect()
}

/// Compares one discovery with the ground truth; returns a report of every difference.
fn check(name: &str, d: &Discovery) -> String {
    let mut report = String::new();
    let want = expected_images(name);
    let got = owned(d.image_set());
    if got != want {
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        writeln!(
            report,
            "{name}: images differ\n  missing: {missing:?}\n  extra:   {extra:?}"
        )
        .unwrap();
    }
    let want = expected_details(name)
        .into_iter()
        .map(|(i, k, n, f, c, h)| (i, k, stable_name_in(&n), f, c, h))
        .collect::<BTreeSet<_>>();
    let got = details_of(&d.images);
    if got != want {
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        writeln!(
            report,
            "{name}: locations differ\n  missing: {missing:?}\n  extra:   {extra:?}"
        )
        .unwrap();
    }
    let candidates = owned(d.candidate_set());
    for (verdict, s) in other_strings(name) {
        match verdict.as_str() {
            "maybe" if !candidates.contains(&s) => {
                writeln!(report, "{name}: candidate not reported: {s}").unwrap()
            }
            "noise" if candidates.contains(&s) => {
                writeln!(report, "{name}: noise reported as candidate: {s}").unwrap()
            }
            _ => {}
        }
    }
    report
}

fn stable_name_in(ns_name: &str) -> String {
    match ns_name.split_once('/') {
        Some((ns, n)) => format!("{ns}/{}", stable_name(n)),
        None => stable_name(ns_name),
    }
}

/// Candidates the hand-reviewed list does not mention: printed for review, not failed.
/// With `FERRY_CORPUS_VERBOSE` set, every image and candidate is printed.
fn print_unlisted(name: &str, label: &str, d: &Discovery) {
    let verbose = std::env::var_os("FERRY_CORPUS_VERBOSE").is_some();
    if verbose {
        for f in &d.images {
            eprintln!(
                "{label}: image {} ({:?} at {} {})",
                f.image, f.clue, f.file, f.field
            );
        }
    }
    let listed: BTreeSet<String> = other_strings(name).into_iter().map(|(_, s)| s).collect();
    for c in &d.candidates {
        if verbose || !listed.contains(&c.image) {
            let listed = if listed.contains(&c.image) {
                ""
            } else {
                "unlisted "
            };
            eprintln!(
                "{label}: {listed}candidate {} ({:?} at {} {}/{} {})",
                c.image,
                c.clue,
                c.kind.as_deref().unwrap_or("?"),
                c.namespace.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or("?"),
                c.field
            );
        }
    }
}

fn names_in(dir: &Path, strip: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| n.strip_suffix(strip).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn every_corpus_entry_has_ground_truth_and_input() {
    let c = corpus();
    let expected = names_in(&c.join("expected"), ".images.txt");
    let charts = names_in(&c.join("charts"), "");
    let manifests = names_in(&c.join("manifests"), ".yaml");
    let mut inputs: Vec<String> = charts.iter().chain(&manifests).cloned().collect();
    inputs.sort();
    assert_eq!(
        inputs, expected,
        "corpus inputs and expected/*.images.txt must match one to one"
    );
    assert!(!charts.is_empty() && !manifests.is_empty());
}

#[test]
fn corpus_charts_match_ground_truth() {
    let c = corpus();
    let mut failures = String::new();
    let charts = names_in(&c.join("charts"), "");
    for name in &charts {
        let d = render(&c.join("charts").join(name), vec![], vec![]);
        print_unlisted(name, name, &d);
        eprintln!(
            "{name}: {} images, {} candidates",
            d.image_set().len(),
            d.candidate_set().len()
        );
        failures += &check(name, &d);
    }
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn corpus_manifests_match_ground_truth() {
    let c = corpus();
    let mut failures = String::new();
    for name in names_in(&c.join("manifests"), ".yaml") {
        let d = discover_manifest_file(&c.join("manifests").join(format!("{name}.yaml")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.rendered_with, Renderer::Manifests);
        print_unlisted(&name, &name, &d);
        eprintln!(
            "{name}: {} images, {} candidates",
            d.image_set().len(),
            d.candidate_set().len()
        );
        failures += &check(&name, &d);
    }
    assert!(failures.is_empty(), "{failures}");
}

/// A directory of manifests is every file in it: the union of the per-file ground truths.
#[test]
fn corpus_manifest_dir_is_the_union() {
    let c = corpus();
    let d = discover_app(&c.join("manifests"), &[], &[]).unwrap();
    assert_eq!(d.rendered_with, Renderer::Manifests);
    let mut want = BTreeSet::new();
    for name in names_in(&c.join("manifests"), ".yaml") {
        want.extend(expected_images(&name));
    }
    assert_eq!(owned(d.image_set()), want);
    assert!(d.images.iter().all(|f| f.file.ends_with(".yaml")));
}

/// The fallback is a guess, but on real charts it must at least run, say so, and find
/// something.
#[test]
fn corpus_charts_fallback_runs_and_warns() {
    let c = corpus();
    for name in names_in(&c.join("charts"), "") {
        let d = fallback(&c.join("charts").join(&name));
        print_unlisted(&name, &format!("{name} (fallback)"), &d);
        assert!(d.is_fallback(), "{name}");
        assert!(
            d.warnings.iter().any(|w| w.contains("GUESSED")),
            "{name}: {:?}",
            d.warnings
        );
        let want = expected_images(&name);
        let got = owned(d.image_set());
        eprintln!(
            "{name}: fallback found {}/{} of the rendered images, plus {} others",
            want.intersection(&got).count(),
            want.len(),
            got.difference(&want).count()
        );
        assert!(!got.is_empty(), "{name}: fallback found nothing");
    }
}

fn normalised(s: &str) -> String {
    Reference::parse(s)
        .map(|r| r.to_string())
        .unwrap_or_default()
}

/// What the build would carry of every corpus entry, against a registry that holds every
/// hand-reviewed `maybe` except the bare words (`vgpu-manager`: no registry, no tag): the
/// `maybe`s are carried and the bare words dropped, no `noise` string costs a registry
/// question, and every hook's and test's image is carried and labelled with its hook.
#[test]
fn corpus_selection_verifies_candidates_and_labels_hooks() {
    let c = corpus();
    let mut failures = String::new();
    let mut entries: Vec<(String, Discovery)> = names_in(&c.join("charts"), "")
        .into_iter()
        .map(|n| {
            let d = render(&c.join("charts").join(&n), vec![], vec![]);
            (n, d)
        })
        .collect();
    for n in names_in(&c.join("manifests"), ".yaml") {
        let d = discover_manifest_file(&c.join("manifests").join(format!("{n}.yaml"))).unwrap();
        entries.push((n, d));
    }
    let (mut asked_total, mut carried_total) = (0, 0);
    for (name, d) in &entries {
        let strings = other_strings(name);
        let maybe: Vec<&str> = strings
            .iter()
            .filter(|(v, _)| v == "maybe")
            .map(|(_, s)| s.as_str())
            .collect();
        let registry =
            FixedRegistry::new(maybe.iter().filter(|s| !is_bare(s)).map(|s| normalised(s)));
        let sel = Selection::new(
            &[(name.as_str(), d)],
            &BTreeSet::new(),
            CandidateMode::Verify,
            false,
            &registry,
        );
        let asked: BTreeSet<String> = registry.asked().into_iter().collect();
        for s in &maybe {
            let e = sel.get(&normalised(s));
            let carried = e.is_some_and(|e| e.status.carried());
            if carried == is_bare(s) {
                writeln!(failures, "{name}: maybe {s}: {:?}", e.map(|e| &e.status)).unwrap();
            }
        }
        for (_, s) in strings.iter().filter(|(v, _)| v == "noise") {
            if asked.contains(&normalised(s)) {
                writeln!(failures, "{name}: noise {s} was asked about").unwrap();
            }
        }
        for (image, _, _, _, _, hook) in expected_details(name) {
            let e = sel.get(&normalised(&image));
            let ok = e.is_some_and(|e| {
                e.status == Status::Certain && (hook.is_empty() || e.hooks.contains(&hook))
            });
            if !ok {
                writeln!(failures, "{name}: {image} (hook {hook:?}): {e:?}").unwrap();
            }
        }
        let carried = sel.carried().count();
        eprintln!(
            "{name}: {carried} carried ({} certain, {} verified candidates, {} with hooks), {} dropped, {} registry questions",
            sel.summary().certain,
            sel.summary().verified,
            sel.summary().hooks,
            sel.summary().dropped,
            asked.len()
        );
        asked_total += asked.len();
        carried_total += carried;
    }
    eprintln!("corpus: {carried_total} images carried, {asked_total} registry questions");
    assert!(failures.is_empty(), "{failures}");
}

const DIGEST: &str = "sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1";

fn edge_images() -> BTreeSet<String> {
    let cron = format!("example/cron@{DIGEST}");
    set_of(&[
        "busybox:1.36",
        &cron,
        "example/debug:1",
        "example/migrate:v2",
        "registry.example.com/team/app:1.2.3",
        "registry.example.com/team/listed:1.2.3",
        "registry.example.com/team/worker:0.9.0",
        "registry.k8s.io/pause:3.10",
    ])
}

#[test]
fn edge_chart_rendered() {
    let d = render(&own_chart("edge"), vec![], vec![]);
    // The disabled sidecar and the subchart switched off by its condition are absent.
    assert_eq!(owned(d.image_set()), edge_images());

    let by_image = |img: &str| d.images.iter().find(|f| f.image == img).unwrap().clone();
    let init = by_image("busybox:1.36");
    assert_eq!(init.field, "spec.template.spec.initContainers[0].image");
    assert_eq!(init.container.as_deref(), Some("init"));
    assert_eq!(init.file, "edge/templates/deployment.yaml");
    assert_eq!(init.namespace.as_deref(), Some("default"));
    assert_eq!(init.name.as_deref(), Some("rel-app"));

    let job = by_image("example/migrate:v2");
    assert_eq!(job.kind.as_deref(), Some("Job"));
    assert_eq!(job.hook.as_deref(), Some("pre-install,pre-upgrade"));

    let cron = by_image(&format!("example/cron@{DIGEST}"));
    assert_eq!(
        cron.field,
        "spec.jobTemplate.spec.template.spec.containers[0].image"
    );

    let debug = by_image("example/debug:1");
    assert_eq!(debug.field, "spec.ephemeralContainers[0].image");
    assert_eq!(debug.hook.as_deref(), Some("test"));

    let listed = by_image("registry.example.com/team/listed:1.2.3");
    assert_eq!(listed.kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(
        listed.field,
        "items[1].spec.template.spec.containers[0].image"
    );

    let worker = by_image("registry.example.com/team/worker:0.9.0");
    assert_eq!(worker.file, "edge/charts/worker/templates/statefulset.yaml");
    assert_eq!(worker.kind.as_deref(), Some("StatefulSet"));

    // Flags, env vars and embedded pod specs are candidates, never images.
    assert_eq!(
        owned(d.candidate_set()),
        set_of(&[
            "docker.io/library/busybox:1.36",
            "registry.example.com/tools/helper:3"
        ])
    );
    assert!(d
        .candidates
        .iter()
        .any(|c| c.kind.as_deref() == Some("ConfigMap")
            && c.field == "items[0].data[\"helperPod.yaml\"]#spec.containers[0].image"));
}

#[test]
fn edge_chart_values_and_set() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("site.yaml");
    std::fs::write(
        &values,
        format!("image:\n  digest: {DIGEST}\nworker:\n  enabled: false\n"),
    )
    .unwrap();
    let d = render(
        &own_chart("edge"),
        vec![values],
        vec!["sidecar.enabled=true".into(), "extra.enabled=true".into()],
    );
    let got = owned(d.image_set());
    let mut want = edge_images();
    want.remove("registry.example.com/team/app:1.2.3");
    want.remove("registry.example.com/team/worker:0.9.0");
    want.insert(format!("registry.example.com/team/app:1.2.3@{DIGEST}"));
    want.insert("registry.example.com/team/sidecar:9.9".into());
    want.insert("registry.example.com/team/extra:6.6".into());
    assert_eq!(got, want);
}

#[test]
fn edge_chart_archive_renders_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let tgz = tmp.path().join("edge-0.1.0.tgz");
    let file = std::fs::File::create(&tgz).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    tar.append_dir_all("edge", own_chart("edge")).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let d = render(&tgz, vec![], vec![]);
    assert_eq!(owned(d.image_set()), edge_images());
}

#[test]
fn aliased_subchart_rendered_and_guessed() {
    let d = render(&own_chart("aliased"), vec![], vec![]);
    assert_eq!(owned(d.image_set()), set_of(&["example/svc:2.0"]));
    assert_eq!(
        d.images[0].file,
        "aliased/charts/front/templates/deployment.yaml"
    );

    let d = render(
        &own_chart("aliased"),
        vec![],
        vec!["back.enabled=true".into()],
    );
    assert_eq!(
        owned(d.image_set()),
        set_of(&["example/svc:1.0", "example/svc:2.0"])
    );

    let d = fallback(&own_chart("aliased"));
    assert!(d.is_fallback());
    assert_eq!(owned(d.image_set()), set_of(&["example/svc:2.0"]));
    assert_eq!(owned(d.candidate_set()), set_of(&["example/svc:1.0"]));
}

#[test]
fn helm_from_env_must_exist() {
    // FERRY_HELM names a binary explicitly: a wrong path is an error, not a quiet fallback.
    let mut o = AppOptions::new(own_chart("edge"));
    o.helm = HelmMode::Binary(PathBuf::from("/nonexistent/helm"));
    let e = discover_app_with(&o).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/helm"), "{e}");
}
