//! `scripts/bench-scale.sh` at a tiny size (6 images, 60 MiB): the scale benchmark's
//! script works end to end (generated Distribution registry, build, `--check`, install,
//! containerd pulls by original names on the master, a joined node pulling over TLS) and
//! prints its table with every phase. Its timings are not checked: they belong in
//! docs/benchmarks.md, not in pass/fail tests. Unpacking is on, so containerd also proves
//! the generated layers are real tar+gzip with the right diff_ids.

use ferry_tests::bins::{ferry, installer, run_ok, workspace};
use std::process::Command;

#[test]
fn bench_scale_script_runs_every_phase_at_tiny_size() {
    let t = tempfile::tempdir().unwrap();
    let table = t.path().join("table.md");
    let netns = || run_ok(Command::new("ip").args(["netns", "list"]));
    let before = netns();
    let out = run_ok(
        Command::new("bash")
            .arg(workspace().join("scripts/bench-scale.sh"))
            .args(["6", "60M"])
            .env("FERRY_BIN", ferry())
            .env("FERRY_INSTALLER_BIN", installer())
            .env("BENCH_WORK", t.path().join("work"))
            .env("BENCH_CACHE", "none")
            .env("BENCH_OUT", &table)
            .env("BENCH_UNPACK", "1"),
    );
    let written = std::fs::read_to_string(&table).unwrap();
    for phase in [
        "| 1 build |",
        "| 2 check |",
        "| 3 install |",
        "| 4 pull A |",
        "| 5 join B |",
        "| 6 pull B |",
    ] {
        assert!(
            out.contains(phase),
            "{phase} missing from the output:\n{out}"
        );
        assert!(
            written.contains(phase),
            "{phase} missing from {table:?}:\n{written}"
        );
    }
    assert!(written.contains("ferry build "), "{written}");
    assert!(written.contains("registry "), "{written}");
    // Nothing left behind: no new namespace, no data.
    let after = netns();
    for line in after.lines() {
        assert!(
            !line.starts_with("ferry-scale-") || before.contains(line),
            "left behind: {line}"
        );
    }
    assert!(!t.path().join("work").join("data").exists());
}
