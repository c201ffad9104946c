//! One Kubefile instruction and its argument rules.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM scratch` or `FROM <bundle>` (layering: recorded, not yet supported by build).
    From(String),
    /// `CLUSTER <distribution> <version>`.
    Cluster {
        distribution: String,
        version: String,
    },
    /// `RUNTIME containerd [<version>] [runc=<version>] [cni=<version>]`: the container
    /// runtime of a bundle without `CLUSTER`, by release version.
    Runtime {
        name: String,
        version: Option<String>,
        /// `runc=` / `cni=`: the versions of the runtime's other parts.
        parts: Vec<(String, String)>,
    },
    /// `IMAGE <source>… [AS <name>]`; `AS` only with a single source.
    Image {
        sources: Vec<String>,
        name: Option<String>,
    },
    /// `IMAGES <file>`: one reference per line.
    Images(String),
    /// `APP <name> <path>`: chart dir/.tgz or manifest directory.
    App {
        name: String,
        path: String,
    },
    Values {
        app: String,
        file: String,
    },
    Set {
        app: String,
        assignment: String,
    },
    /// `COPY <src> <dst>`: a file or directory from the context into the host's filesystem.
    Copy {
        src: String,
        dest: String,
    },
    /// `OS <distribution> <release> <arch>`: the release `PACKAGE deb` resolves for.
    Os {
        distribution: String,
        release: String,
        architecture: String,
    },
    /// `APT <url> <suite> <component>… [KEYRING <file>]`: a repository to resolve from.
    Apt {
        url: String,
        suite: String,
        components: Vec<String>,
        keyring: Option<String>,
    },
    /// `PACKAGE deb <name>[=<version>]…`.
    Package {
        kind: String,
        names: Vec<String>,
    },
    Env {
        key: String,
        value: String,
    },
    /// `RUN <command>`: hook run on the first master after the apps are deployed.
    Run(String),
    Label {
        key: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub ins: Instruction,
}

fn key_value(w: &str) -> Result<(String, String), String> {
    match w.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {w:?}")),
    }
}

fn exactly<'a>(
    kw: &str,
    args: &'a [String],
    n: usize,
    usage: &str,
) -> Result<&'a [String], String> {
    if args.len() == n {
        Ok(args)
    } else {
        Err(format!("{kw} takes {n} argument(s): {usage}"))
    }
}

const RUNTIME_USAGE: &str = "RUNTIME containerd [<version>] [runc=<version>] [cni=<version>]";

/// `RUNTIME containerd [<version>] [runc=<v>] [cni=<v>]`.
fn runtime(args: &[String]) -> Result<Instruction, String> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| format!("RUNTIME needs a runtime: {RUNTIME_USAGE}"))?;
    if name != "containerd" {
        return Err(format!(
            "RUNTIME {name}: ferry knows the containerd runtime only ({RUNTIME_USAGE}); \
             for k3s, which brings its own, write CLUSTER k3s <version>"
        ));
    }
    let (version, parts) = match rest.split_first() {
        Some((v, parts)) if !v.contains('=') => (Some(v.clone()), parts),
        _ => (None, rest),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for p in parts {
        let (k, v) = key_value(p)?;
        if !matches!(k.as_str(), "runc" | "cni") || v.is_empty() {
            return Err(format!(
                "RUNTIME containerd: {p:?}: expected runc=<version> or cni=<version>"
            ));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("RUNTIME containerd: {k}= given twice"));
        }
        out.push((k, v));
    }
    Ok(Instruction::Runtime {
        name: name.clone(),
        version,
        parts: out,
    })
}

impl Instruction {
    pub fn parse(words: &[String]) -> Result<Instruction, String> {
        let (kw, args) = words.split_first().ok_or("empty line")?;
        let kw_up = kw.to_ascii_uppercase();
        Ok(match kw_up.as_str() {
            "FROM" => Instruction::From(exactly("FROM", args, 1, "FROM scratch | FROM <bundle>")?[0].clone()),
            "CLUSTER" => {
                let a = exactly("CLUSTER", args, 2, "CLUSTER <distribution> <version>, e.g. CLUSTER k3s v1.31.4+k3s1")?;
                Instruction::Cluster { distribution: a[0].clone(), version: a[1].clone() }
            }
            "RUNTIME" => runtime(args)?,
            "IMAGE" => {
                let (sources, name) = match args.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                    Some(i) => {
                        if i != 1 || args.len() != 3 {
                            return Err("IMAGE <source> AS <name>: AS names exactly one source".into());
                        }
                        (vec![args[0].clone()], Some(args[2].clone()))
                    }
                    None => (args.to_vec(), None),
                };
                if sources.is_empty() {
                    return Err("IMAGE needs at least one image reference".into());
                }
                Instruction::Image { sources, name }
            }
            "IMAGES" => Instruction::Images(exactly("IMAGES", args, 1, "IMAGES <file>")?[0].clone()),
            "APP" => {
                let a = exactly("APP", args, 2, "APP <name> <chart dir, .tgz or manifest dir>")?;
                Instruction::App { name: a[0].clone(), path: a[1].clone() }
            }
            "VALUES" => {
                let a = exactly("VALUES", args, 2, "VALUES <app> <values.yaml>")?;
                Instruction::Values { app: a[0].clone(), file: a[1].clone() }
            }
            "SET" => {
                let a = exactly("SET", args, 2, "SET <app> key=value")?;
                key_value(&a[1])?;
                Instruction::Set { app: a[0].clone(), assignment: a[1].clone() }
            }
            "COPY" => {
                let a = exactly("COPY", args, 2, "COPY <src> <absolute dest>")?;
                if !a[1].starts_with('/') {
                    return Err(format!("COPY destination {:?} must be an absolute path", a[1]));
                }
                Instruction::Copy { src: a[0].clone(), dest: a[1].clone() }
            }
            "PACKAGE" => {
                if args.len() < 2 || args[0] != "deb" {
                    return Err("PACKAGE deb <name>[=<version>]… (deb is the one package kind)".into());
                }
                Instruction::Package { kind: args[0].clone(), names: args[1..].to_vec() }
            }
            "OS" => {
                let a = exactly("OS", args, 3, "OS <distribution> <release> <arch>, e.g. OS debian bookworm amd64")?;
                Instruction::Os { distribution: a[0].clone(), release: a[1].clone(), architecture: a[2].clone() }
            }
            "APT" => {
                let usage = "APT <url> <suite> <component>… [KEYRING <file>], e.g. APT http://mirror/debian bookworm main";
                let (words, keyring) = match args.iter().position(|w| w.eq_ignore_ascii_case("KEYRING")) {
                    Some(i) if i + 2 == args.len() => (&args[..i], Some(args[i + 1].clone())),
                    Some(_) => return Err(format!("KEYRING takes one file, last on the line: {usage}")),
                    None => (args, None),
                };
                if words.len() < 3 {
                    return Err(usage.into());
                }
                if !(words[0].starts_with("http://") || words[0].starts_with("https://")) {
                    return Err(format!("APT {}: the repository URL must be http:// or https://", words[0]));
                }
                Instruction::Apt { url: words[0].clone(), suite: words[1].clone(), components: words[2..].to_vec(), keyring }
            }
            "ENV" => {
                let a = exactly("ENV", args, 1, "ENV key=value")?;
                let (key, value) = key_value(&a[0])?;
                Instruction::Env { key, value }
            }
            "RUN" => {
                if args.is_empty() {
                    return Err("RUN <command>".into());
                }
                Instruction::Run(args.join(" "))
            }
            "LABEL" => {
                let a = exactly("LABEL", args, 1, "LABEL key=value")?;
                let (key, value) = key_value(&a[0])?;
                Instruction::Label { key, value }
            }
            other => {
                return Err(format!(
                    "unknown instruction {other}; known: FROM CLUSTER RUNTIME IMAGE IMAGES APP VALUES SET COPY OS APT PACKAGE ENV RUN LABEL"
                ))
            }
        })
    }
}
