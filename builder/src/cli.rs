//! Command-line surface of `ferry`, the builder. Values with a grammar (`--platform`,
//! `--registry-mirror`, `--payload`) are parsed by clap into their types, so a typo is a
//! usage error naming the flag before anything runs; `--output` is the one
//! [`OutputFormat`] both binaries share.

use crate::build::payload::PayloadSource;
pub use crate::discover::CandidateMode;
use crate::pull::{Mirror, Platform, PullOptions};
use crate::release::ReleaseMirror;
use clap::{Args, Parser, Subcommand};
use ferry_bundle::reference::Reference;
pub use ferry_console::OutputFormat;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Builds delivery.run bundles for air-gapped Kubernetes sites"
)]
pub struct Cli {
    /// Only print errors and requested data; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a delivery.run from a Kubefile.
    Build(Box<BuildArgs>),
    /// List the images a Kubefile needs: IMAGE lines and what discovery finds in its APPs.
    Images(ImagesArgs),
    /// List the OS packages a Kubefile's PACKAGE lines carry: the dependency closure for
    /// its OS release, with why each package is needed.
    Packages(PackagesArgs),
    /// Push a bundle to an OCI registry (Harbor, Distribution, Zot) as an artifact: its
    /// images under their digests, everything else as an artifact manifest, one tag.
    Push(PushArgs),
    /// Pull a pushed bundle back into one file, identical to the one pushed.
    Pull(PullArgs),
    /// Bundle signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Args)]
pub struct PackagesArgs {
    /// The Kubefile to read.
    #[arg(short = 'f', long = "file", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// Read the OS release's packages from this archive mirror instead of this machine's
    /// apt sources (used when the Kubefile has no APT line); or, as <from-url>=<to-url>,
    /// fetch an APT line's repository from a mirror of it.
    #[arg(long = "apt-mirror", value_name = "URL|FROM=TO")]
    pub apt_mirrors: Vec<String>,
    /// Content cache for package indexes (and .debs, and pulled blobs).
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
}

/// Registry access shared by push and pull (as for `build`'s pulls).
#[derive(Debug, Args, Clone)]
pub struct RemoteArgs {
    /// Registry reachable over plain HTTP (host:port); only these are ever contacted without TLS.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Content cache (default ~/.cache/ferry): pull copies blobs it holds instead of
    /// downloading them; push records where blobs went, to mount them next time.
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle to push.
    pub bundle: PathBuf,
    /// Where: host[:port]/repository:tag (Harbor: host/<project>/<repository>:tag).
    #[arg(value_parser = parse_reference)]
    pub reference: Reference,
    #[command(flatten)]
    pub registry: RemoteArgs,
    /// Blobs larger than this many MiB are uploaded in chunks of this size (resumable);
    /// smaller ones in one request.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: host[:port]/repository:tag or …@sha256:<digest>.
    #[arg(value_parser = parse_reference)]
    pub reference: Reference,
    /// Where to write the bundle (an interrupted pull resumes from `<out>.partial`).
    #[arg(short = 'o', long = "out", default_value = "delivery.run")]
    pub out: PathBuf,
    #[command(flatten)]
    pub registry: RemoteArgs,
}

fn parse_reference(s: &str) -> Result<Reference, String> {
    Reference::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make an ECDSA P-256 key pair: <prefix>.key.pem (PKCS#8, mode 0600; keep it secret,
    /// give it to `ferry build --sign`) and <prefix>.pub.pem (give it to the sites:
    /// `delivery.run --trust-key`, or /etc/ferry/trust/).
    Generate {
        /// Path prefix of the two files.
        #[arg(short = 'o', long = "out", value_name = "PREFIX")]
        out: PathBuf,
    },
}

/// `--split <size>`: bytes, or with a binary unit `K`, `M`, `G`, `T` (`4480M`, `4G`).
/// `4G` means FAT32's largest file, 4 GiB − 1 byte, since a part of exactly 4 GiB does
/// not fit there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSize(pub u64);

impl std::str::FromStr for SplitSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_suffix("iB")
            .or_else(|| t.strip_suffix('B'))
            .unwrap_or(t);
        let (digits, shift) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let shift = match c.to_ascii_uppercase() {
                    'K' => 10,
                    'M' => 20,
                    'G' => 30,
                    'T' => 40,
                    _ => return Err(format!("{s:?}: unknown unit {c:?} (use K, M, G or T)")),
                };
                (&t[..i], shift)
            }
            _ => (t, 0),
        };
        let n: u64 = digits
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a size: expected e.g. 4G or 4480M"))?;
        let bytes = n
            .checked_mul(1 << shift)
            .ok_or_else(|| format!("{s:?} is too large"))?;
        let min = ferry_bundle::writer::MIN_PART_SIZE;
        if bytes < min {
            return Err(format!("{s:?} is smaller than the smallest part, 1M"));
        }
        // FAT32 holds files of at most 4 GiB − 1 byte.
        Ok(SplitSize(if bytes == 4 << 30 { bytes - 1 } else { bytes }))
    }
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The Kubefile to read.
    #[arg(short = 'f', long = "file", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// Show every file and object that references this image (as written or normalised).
    #[arg(long, value_name = "IMAGE")]
    pub why: Option<String>,
    #[command(flatten)]
    pub candidates: CandidateArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
}

/// What to do with discovery's candidates (image-like strings outside pod templates:
/// operator flags, `*_IMAGE` env vars, custom-resource fields, composed values).
#[derive(Debug, Args)]
pub struct CandidateArgs {
    /// verify: ask each candidate's registry and carry the ones that exist (dropped ones
    /// are listed with the reason); all: carry every candidate without asking (bare words
    /// such as `pilot` are still asked); none: carry none.
    #[arg(long, value_enum, default_value_t = CandidateMode::Verify)]
    pub candidates: CandidateMode,
    /// The same as --candidates all (kept for older scripts).
    #[arg(long, conflicts_with = "candidates")]
    pub include_candidates: bool,
}

impl CandidateArgs {
    pub fn mode(&self) -> CandidateMode {
        if self.include_candidates {
            CandidateMode::All
        } else {
            self.candidates
        }
    }
}

/// How registries are reached: by `ferry build`'s pulls and by candidate verification.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry reachable over plain HTTP (host:port); only these are ever contacted without TLS.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Pull <host>'s images through a mirror while keeping their names, e.g.
    /// docker.io=harbor.local/dockerhub.
    #[arg(long = "registry-mirror", value_name = "HOST=MIRROR[/PATH]")]
    pub registry_mirrors: Vec<Mirror>,
}

impl RegistryArgs {
    /// Pull options with these registries (credentials from the Docker config).
    pub fn pull_options(&self) -> PullOptions {
        PullOptions {
            mirrors: self.registry_mirrors.clone(),
            insecure_registries: self.insecure_registries.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Kubefile to read.
    #[arg(short = 'f', long = "file", default_value = "Kubefile")]
    pub kubefile: PathBuf,
    /// Where to write the bundle.
    #[arg(short = 'o', long = "out", default_value = "delivery.run")]
    pub out: PathBuf,
    /// Installer stub to put in front of the payload (default: ferry-installer beside ferry).
    #[arg(long, env = "FERRY_INSTALLER")]
    pub installer: Option<PathBuf>,
    /// Target platform(s), os/arch[/variant][,…]. One: keep just that manifest of each
    /// multi-platform image. Several: keep the index and those platforms' manifests, and
    /// write one bundle per platform beside -o (delivery-amd64.run, delivery-arm64.run),
    /// each carrying every platform's runtime.
    #[arg(long, default_value = "linux/amd64", value_delimiter = ',')]
    pub platform: Vec<Platform>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Content cache for pulled blobs, package indexes and .debs (a rebuild fetches no
    /// blob it already has).
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// OS packages: read the release from this archive mirror (no APT line), or an APT
    /// line's repository from a mirror of it (<from-url>=<to-url>).
    #[arg(long = "apt-mirror", value_name = "URL|FROM=TO")]
    pub apt_mirrors: Vec<String>,
    /// Supply a runtime/cluster payload from local files: <name>=<dir|file.tar.gz>; with
    /// several --platform, one per platform: <name>@<os/arch>=<path>. Without it, the
    /// payload is downloaded from its projects' releases and verified against their
    /// published checksums.
    #[arg(long = "payload", value_name = "NAME[@OS/ARCH]=PATH")]
    pub payloads: Vec<PayloadSource>,
    /// Download release files through a proxy: <url-prefix>=<replacement-prefix>, e.g.
    /// https://github.com=https://artifactory.example/github (repeatable; the longest
    /// matching prefix wins).
    #[arg(
        long = "release-mirror",
        value_name = "PREFIX=REPLACEMENT",
        env = "FERRY_RELEASE_MIRROR",
        value_delimiter = ','
    )]
    pub release_mirrors: Vec<ReleaseMirror>,
    /// Refuse to build if anything resolves differently from ferry.lock (a moved tag, a
    /// changed file, a re-published release file); write nothing then.
    #[arg(long)]
    pub locked: bool,
    /// Carry no runtime payload: an images-and-files bundle for hosts that already run
    /// containerd or k3s (app updates, format tests).
    #[arg(long, conflicts_with = "payloads")]
    pub no_payload: bool,
    /// Write a delta: carry only what this earlier bundle (of the same name) lacks. The
    /// site needs that exact bundle installed to install or upgrade to the delta. A file,
    /// or a pushed bundle's registry reference (host[:port]/repo:tag, pulled once into the
    /// cache; --insecure-registry and credentials as for images).
    #[arg(long, value_name = "OLD.run|REF")]
    pub delta_from: Option<PathBuf>,
    #[command(flatten)]
    pub candidates: CandidateArgs,
    /// Fail, listing them, when any discovered image that exists (certain, or a candidate
    /// its registry has) is not carried. Candidates are asked about even with
    /// --candidates none.
    #[arg(long)]
    pub strict: bool,
    /// Sign bundle.json with this ECDSA P-256 private key (PKCS#8 PEM, as `ferry key
    /// generate` writes): sites check it with `delivery.run --trust-key <pub.pem>`.
    #[arg(long, value_name = "KEY.PEM")]
    pub sign: Option<PathBuf>,
    /// Cut the bundle into parts of at most SIZE for FAT32 sticks or DVDs (`4G`, `4480M`):
    /// OUT, OUT.002, OUT.003, … Copy them all into one directory; run OUT.
    #[arg(long, value_name = "SIZE")]
    pub split: Option<SplitSize>,
    /// Also write the bundle's SBOM (SPDX 2.3 JSON, always inside the bundle) to FILE.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
    /// Directory relative paths in the Kubefile are taken from (default: the Kubefile's).
    pub context: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_args(args: &[&str]) -> Result<BuildArgs, clap::Error> {
        let mut argv = vec!["ferry", "build"];
        argv.extend(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Build(b) => Ok(*b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn typed_values_are_parsed_by_clap() {
        let b = build_args(&[
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "--registry-mirror",
            "index.docker.io=localhost:5000/hub",
            "--payload",
            "containerd=./p.tar.gz",
            "--release-mirror",
            "https://github.com=http://127.0.0.1:8080/gh",
            "--locked",
        ])
        .unwrap();
        assert_eq!(b.release_mirrors[0].replacement, "http://127.0.0.1:8080/gh");
        assert!(b.locked);
        assert_eq!(b.platform[1], Platform::new("linux", "arm64", Some("v8")));
        assert_eq!(b.registry.registry_mirrors[0].upstream, "docker.io");
        assert_eq!(b.registry.registry_mirrors[0].prefix, "hub");
        assert_eq!(b.payloads[0].name, "containerd");
        let default = build_args(&[]).unwrap();
        assert_eq!(default.platform, [Platform::new("linux", "amd64", None)]);
    }

    #[test]
    fn candidates_default_to_verify_and_include_candidates_means_all() {
        assert_eq!(
            build_args(&[]).unwrap().candidates.mode(),
            CandidateMode::Verify
        );
        let b = build_args(&["--include-candidates", "--strict"]).unwrap();
        assert_eq!(b.candidates.mode(), CandidateMode::All);
        assert!(b.strict);
        let b = build_args(&["--candidates", "none"]).unwrap();
        assert_eq!(b.candidates.mode(), CandidateMode::None);
        let e = build_args(&["--candidates", "none", "--include-candidates"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = build_args(&["--candidates", "some"]).unwrap_err();
        assert!(e.to_string().contains("--candidates"), "{e}");
    }

    #[test]
    fn push_and_pull_take_a_reference() {
        let cli = Cli::try_parse_from([
            "ferry",
            "push",
            "b.run",
            "127.0.0.1:5000/proj/app:1",
            "--insecure-registry",
            "127.0.0.1:5000",
        ])
        .unwrap();
        match cli.command {
            Command::Push(p) => {
                assert_eq!(p.reference.repository, "proj/app");
                assert_eq!(p.registry.insecure_registries, ["127.0.0.1:5000"]);
                assert_eq!(p.chunk_size, 64);
            }
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from(["ferry", "pull", "UPPER/x", "-o", "b.run"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn split_sizes() {
        let size = |s: &str| s.parse::<SplitSize>().map(|x| x.0);
        assert_eq!(size("4480M"), Ok(4480 << 20));
        assert_eq!(size("4G"), Ok((4 << 30) - 1), "FAT32's largest file");
        assert_eq!(size("8g"), Ok(8 << 30));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert!(size("4X").is_err());
        assert!(size("512K").unwrap_err().contains("smallest"));
        assert!(size("lots").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (args, flag) in [
            (["--platform", "linux"], "--platform"),
            (["--registry-mirror", "docker.io"], "--registry-mirror"),
            (["--payload", "containerd"], "--payload"),
            (["--release-mirror", "github.com=x"], "--release-mirror"),
            (["--split", "100K"], "--split"),
        ] {
            let e = build_args(&args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(e.to_string().contains(flag), "{e}");
        }
    }
}
