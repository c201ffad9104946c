//! The Kubefile: what to deliver, one Docker-like instruction per line.
//!
//! `#` starts a comment line, a trailing `\` continues a line, instruction keywords are
//! case-insensitive; a UTF-8 byte order mark at the start is ignored. Parsing
//! ([`Kubefile`]) is separate from interpreting ([`Recipe`]), and `ferry images` and
//! `ferry build` both consume the one [`Recipe`], so they read a Kubefile identically;
//! every error names `file:line`. The reference is `docs/kubefile.md`.

mod instruction;
mod lexer;
mod recipe;

pub use instruction::{Instruction, Located};
pub use recipe::{
    strip_bom, AppSpec, AptSpec, ClusterSpec, CopySpec, HookSpec, ImageSpec, ImageVia, Origin,
    OsSpec, PackageSpec, Recipe, RuntimeSpec,
};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KubefileError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A file the Kubefile names is missing or unreadable.
    #[error("{at}: {what} {}: {error}", path.display())]
    Missing {
        at: Origin,
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// An image reference (IMAGE, IMAGES line, AS name) that does not parse.
    #[error("{at}: {error}")]
    Reference {
        at: Origin,
        error: ferry_bundle::ReferenceError,
    },
    #[error("{at}: COPY destination {dest:?}: {error}")]
    Destination {
        at: Origin,
        dest: String,
        error: ferry_bundle::paths::PathError,
    },
}

#[derive(Debug, Clone)]
pub struct Kubefile {
    pub path: PathBuf,
    pub instructions: Vec<Located>,
}

impl Kubefile {
    pub fn read(path: &Path) -> Result<Kubefile, KubefileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KubefileError::Io {
            file: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Kubefile, KubefileError> {
        let mut instructions = Vec::new();
        for (line, words) in lexer::logical_lines(strip_bom(text)).map_err(|(line, message)| {
            KubefileError::Syntax {
                file: path.into(),
                line,
                message,
            }
        })? {
            let ins = Instruction::parse(&words).map_err(|message| KubefileError::Syntax {
                file: path.into(),
                line,
                message,
            })?;
            instructions.push(Located { line, ins });
        }
        let k = Kubefile {
            path: path.to_path_buf(),
            instructions,
        };
        k.check_consistency()?;
        Ok(k)
    }

    fn err(&self, line: usize, message: String) -> KubefileError {
        KubefileError::Syntax {
            file: self.path.clone(),
            line,
            message,
        }
    }

    /// Cross-line rules: FROM first and once, VALUES/SET name a declared APP, unique APPs.
    fn check_consistency(&self) -> Result<(), KubefileError> {
        let mut apps = std::collections::HashSet::new();
        for (i, l) in self.instructions.iter().enumerate() {
            match &l.ins {
                Instruction::From(_) if i != 0 => {
                    return Err(self.err(l.line, "FROM must be the first instruction".into()))
                }
                Instruction::App { name, .. } if !apps.insert(name.clone()) => {
                    return Err(self.err(l.line, format!("APP {name} declared twice")));
                }
                Instruction::Values { app, .. } | Instruction::Set { app, .. }
                    if !apps.contains(app) =>
                {
                    return Err(self.err(
                        l.line,
                        format!(
                            "no APP named {app} above this line; declare `APP {app} <path>` first"
                        ),
                    ));
                }
                Instruction::Cluster { .. }
                    if self.instructions[..i]
                        .iter()
                        .any(|p| matches!(p.ins, Instruction::Cluster { .. })) =>
                {
                    return Err(self.err(l.line, "CLUSTER given twice".into()))
                }
                Instruction::Runtime { .. }
                    if self.instructions[..i]
                        .iter()
                        .any(|p| matches!(p.ins, Instruction::Runtime { .. })) =>
                {
                    return Err(self.err(l.line, "RUNTIME given twice".into()))
                }
                Instruction::Runtime { .. } | Instruction::Cluster { .. }
                    if self
                        .instructions
                        .iter()
                        .any(|p| matches!(p.ins, Instruction::Runtime { .. }))
                        && self
                            .instructions
                            .iter()
                            .any(|p| matches!(p.ins, Instruction::Cluster { .. })) =>
                {
                    return Err(self.err(
                        l.line,
                        "RUNTIME and CLUSTER together: k3s brings its own containerd; \
                         keep CLUSTER for a cluster, RUNTIME for a runtime-only bundle"
                            .into(),
                    ))
                }
                Instruction::Os { .. }
                    if self.instructions[..i]
                        .iter()
                        .any(|p| matches!(p.ins, Instruction::Os { .. })) =>
                {
                    return Err(self.err(
                        l.line,
                        "OS given twice: a bundle's packages are for one release".into(),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Located> {
        self.instructions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Kubefile, KubefileError> {
        Kubefile::parse(s, Path::new("Kubefile"))
    }

    #[test]
    fn parses_every_instruction() {
        let k = parse(
            "# demo\nFROM scratch\nCLUSTER k3s v1.31.4+k3s1\nIMAGE nginx:1.27 quay.io/a/b:1\n\
             IMAGE oci:./layout:app AS docker.io/library/app:1\nIMAGES images.txt\n\
             APP web ./chart\nVALUES web v.yaml\nSET web image.tag=2\nCOPY a.sh /opt/a.sh\n\
             ENV A=b\nRUN kubectl get pods \\\n  -A\nLABEL owner=ops\nPACKAGE deb curl jq\n",
        )
        .unwrap();
        assert_eq!(k.instructions.len(), 13);
        assert_eq!(
            k.instructions[10].ins,
            Instruction::Run("kubectl get pods -A".into())
        );
        assert_eq!(k.instructions[10].line, 12);
        assert_eq!(
            k.instructions[3].ins,
            Instruction::Image {
                sources: vec!["oci:./layout:app".into()],
                name: Some("docker.io/library/app:1".into())
            }
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_instruction() {
        let k = parse("\u{feff}FROM scratch\nIMAGE nginx\n").unwrap();
        assert_eq!(k.instructions[0].ins, Instruction::From("scratch".into()));
        assert_eq!(k.instructions[1].line, 2);
    }

    #[test]
    fn os_apt_and_package_lines() {
        let k = parse(
            "FROM scratch\nOS debian bookworm amd64\nAPT http://m/debian bookworm main contrib KEYRING k.asc\n\
             APT https://m/debian-security bookworm-security main\nPACKAGE deb nfs-common chrony=4.3-2+deb12u1\n",
        )
        .unwrap();
        assert_eq!(
            k.instructions[2].ins,
            Instruction::Apt {
                url: "http://m/debian".into(),
                suite: "bookworm".into(),
                components: vec!["main".into(), "contrib".into()],
                keyring: Some("k.asc".into())
            }
        );
        for (bad, want) in [
            ("OS debian bookworm\n", "OS takes 3"),
            ("APT http://m bookworm\n", "APT <url> <suite> <component>"),
            ("APT ftp://m bookworm main\n", "http:// or https://"),
            (
                "APT http://m bookworm main KEYRING\n",
                "KEYRING takes one file",
            ),
            (
                "OS debian bookworm amd64\nOS debian trixie amd64\n",
                "OS given twice",
            ),
            ("PACKAGE rpm x\n", "PACKAGE deb <name>[=<version>]"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM scratch\n\nBOGUS x\n").unwrap_err().to_string();
        assert!(e.starts_with("Kubefile:3:"), "{e}");
        let e = parse("FROM scratch\nSET web a=b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Kubefile:2:") && e.contains("APP web"), "{e}");
        let e = parse("IMAGE a b AS c\n").unwrap_err().to_string();
        assert!(e.contains("AS"), "{e}");
        let e = parse("LABEL novalue\n").unwrap_err().to_string();
        assert!(e.contains("key=value"), "{e}");
        let e = parse("IMAGE \"unterminated\n").unwrap_err().to_string();
        assert!(e.contains("Kubefile:1:"), "{e}");
    }

    #[test]
    fn runtime_takes_a_version_and_part_versions() {
        let k = parse("RUNTIME containerd 2.1.1 runc=1.3.0 cni=1.7.1\n").unwrap();
        assert_eq!(
            k.instructions[0].ins,
            Instruction::Runtime {
                name: "containerd".into(),
                version: Some("2.1.1".into()),
                parts: vec![
                    ("runc".into(), "1.3.0".into()),
                    ("cni".into(), "1.7.1".into())
                ],
            }
        );
        let k = parse("RUNTIME containerd cni=1.7.1\n").unwrap();
        assert!(
            matches!(&k.instructions[0].ins, Instruction::Runtime { version: None, parts, .. } if parts.len() == 1)
        );
        for (text, line, says) in [
            ("RUNTIME crio 1\n", 1, "containerd runtime only"),
            ("RUNTIME containerd 2 shim=1\n", 1, "runc=<version>"),
            ("RUNTIME containerd 2 runc=1 runc=2\n", 1, "twice"),
            (
                "RUNTIME containerd\nRUNTIME containerd\n",
                2,
                "RUNTIME given twice",
            ),
            (
                "CLUSTER k3s v1\n\nRUNTIME containerd\n",
                1,
                "k3s brings its own containerd",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("Kubefile:{line}:")) && e.contains(says),
                "{e}"
            );
        }
    }
}
