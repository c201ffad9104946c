//! Reading the installer's `plan --output json`: phases of steps (see the installer's
//! `engine::plan`). Paths in a plan are host paths; tests map them under their `--root`.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Every `write_file` step: (host path, the step).
pub fn files(plan: &Value) -> Vec<(String, &Value)> {
    steps(plan)
        .filter(|s| s["step"] == "write_file")
        .map(|s| (s["path"].as_str().unwrap().to_string(), s))
        .collect()
}

/// Every step of every phase.
pub fn steps(plan: &Value) -> impl Iterator<Item = &Value> {
    plan["phases"]
        .as_array()
        .expect("a plan has phases")
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap().iter())
}

/// The text of the file planned at a path ending in `suffix`.
pub fn file_text<'a>(plan: &'a Value, suffix: &str) -> &'a str {
    files(plan)
        .into_iter()
        .find(|(p, _)| p.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in plan"))
        .1["content"]["bytes"]
        .as_str()
        .unwrap_or_else(|| panic!("{suffix} is not literal text in the plan"))
}

/// Every path the plan writes (files, links and the staged bundle), mapped under `root`.
pub fn written_paths(plan: &Value, root: &Path) -> Vec<PathBuf> {
    steps(plan)
        .filter_map(|s| match s["step"].as_str() {
            Some("write_file") | Some("link") => s["path"].as_str(),
            Some("stage") => s["dest"].as_str(),
            _ => None,
        })
        .map(|p| root.join(p.trim_start_matches('/')))
        .collect()
}
