//! Rendering charts with the real `helm template`.
//!
//! Why a subprocess and not a Go-template reimplementation: charts compose images with
//! `include`, `tpl`, `default .Chart.AppVersion`, globals and subchart values; only helm gets
//! all of that right, including which `if`-guarded sidecars are off. Rendering needs no
//! cluster and no network for a chart whose dependencies are vendored.

use super::{AppOptions, DiscoverError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which helm binary to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HelmMode {
    /// `$FERRY_HELM` if set, else `helm` on `PATH`, else the values fallback.
    #[default]
    Auto,
    /// This binary; an error if it does not run.
    Binary(PathBuf),
    /// Never render: always use the values fallback.
    Disabled,
}

/// Environment variable naming the helm binary to use.
pub const HELM_ENV: &str = "FERRY_HELM";

/// Finds the helm binary to use, or `None` for the values fallback. A `$FERRY_HELM` that
/// does not exist is an error: someone asked for that binary, and silently guessing from
/// values instead would hide the mistake.
pub(crate) fn locate(mode: &HelmMode) -> Result<Option<PathBuf>, DiscoverError> {
    match mode {
        HelmMode::Disabled => Ok(None),
        HelmMode::Binary(p) => check(p).map(Some),
        HelmMode::Auto => match std::env::var_os(HELM_ENV).filter(|v| !v.is_empty()) {
            Some(v) => check(Path::new(&v)).map(Some),
            None => Ok(find_on_path("helm")),
        },
    }
}

fn check(path: &Path) -> Result<PathBuf, DiscoverError> {
    if path.components().count() == 1 {
        // A bare name: look it up like a shell would.
        return find_on_path(&path.to_string_lossy()).ok_or_else(|| DiscoverError::HelmBinary {
            path: path.to_path_buf(),
            message: "not found on PATH".into(),
        });
    }
    if is_executable(path) {
        Ok(path.to_path_buf())
    } else {
        Err(DiscoverError::HelmBinary {
            path: path.to_path_buf(),
            message: "not an executable file".into(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `which name`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// `helm version --short`, e.g. `v4.1.4+g05fa379`.
pub(crate) fn version(bin: &Path) -> Result<String, DiscoverError> {
    let out = Command::new(bin)
        .args(["version", "--short"])
        .output()
        .map_err(|e| DiscoverError::HelmBinary {
            path: bin.to_path_buf(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(DiscoverError::HelmBinary {
            path: bin.to_path_buf(),
            message: format!(
                "`version --short` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What `helm template` printed.
pub(crate) struct Rendered {
    pub stdout: String,
    pub stderr: String,
}

/// The `helm template` arguments for these options.
pub(crate) fn template_args(opts: &AppOptions) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "template".into(),
        opts.release.clone().into(),
        opts.path.clone().into_os_string(),
    ];
    if let Some(ns) = &opts.namespace {
        args.push("--namespace".into());
        args.push(ns.into());
    }
    for v in &opts.values {
        args.push("--values".into());
        args.push(v.clone().into_os_string());
    }
    for s in &opts.set {
        args.push("--set".into());
        args.push(s.into());
    }
    args
}

/// Runs `helm template <release> <chart> [--namespace n] [--values f]… [--set k=v]…`.
pub(crate) fn template(bin: &Path, opts: &AppOptions) -> Result<Rendered, DiscoverError> {
    let out = Command::new(bin)
        .args(template_args(opts))
        .output()
        .map_err(|e| DiscoverError::HelmBinary {
            path: bin.to_path_buf(),
            message: e.to_string(),
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(DiscoverError::HelmFailed {
            chart: opts.path.clone(),
            status: out.status.to_string(),
            stderr,
        });
    }
    Ok(Rendered {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{discover_app_with, Renderer};

    fn edge_chart() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/charts/edge")
    }

    /// The helm to test with; tests that need it fail loudly without it.
    fn helm() -> PathBuf {
        locate(&HelmMode::Auto).ok().flatten().expect(
            "helm is required for these tests: run scripts/install-helm.sh (or set FERRY_HELM)",
        )
    }

    #[test]
    fn args_keep_order() {
        let mut o = AppOptions::new("/c");
        o.release = "r".into();
        o.namespace = Some("ns".into());
        o.values = vec!["a.yaml".into(), "b.yaml".into()];
        o.set = vec!["x=1".into(), "y=2".into()];
        let args: Vec<String> = template_args(&o)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "template",
                "r",
                "/c",
                "--namespace",
                "ns",
                "--values",
                "a.yaml",
                "--values",
                "b.yaml",
                "--set",
                "x=1",
                "--set",
                "y=2"
            ]
        );
    }

    #[test]
    fn missing_binary_is_an_error_not_a_fallback() {
        let e = locate(&HelmMode::Binary("/nonexistent/helm".into())).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/helm"), "{e}");
        assert_eq!(locate(&HelmMode::Disabled).unwrap(), None);
    }

    #[test]
    fn renders_edge_chart_with_source_files() {
        let mut o = AppOptions::new(edge_chart());
        o.helm = HelmMode::Binary(helm());
        o.release = "rel".into();
        let d = discover_app_with(&o).unwrap();
        assert!(matches!(d.rendered_with, Renderer::Helm { .. }));
        let job = d
            .images
            .iter()
            .find(|f| f.kind.as_deref() == Some("Job"))
            .expect("hook job");
        assert_eq!(job.file, "edge/templates/job.yaml");
        assert_eq!(job.hook.as_deref(), Some("pre-install,pre-upgrade"));
    }

    #[test]
    fn helm_errors_carry_stderr() {
        let mut o = AppOptions::new(edge_chart());
        o.helm = HelmMode::Binary(helm());
        o.set = vec!["fail=true".into()];
        let e = discover_app_with(&o).unwrap_err();
        assert!(matches!(e, DiscoverError::HelmFailed { .. }), "{e}");
        assert!(e.to_string().contains("asked to fail"), "{e}");
    }
}
