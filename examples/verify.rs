//! Fetch a Git revision and verify its signature.
//!
//! ```text
//! cargo run --example verify -- --repo <url|dir> --ref <ref> \
//!     (--allowed-signers <file> | --openpgp-keys <dir>) \
//!     [--mode head|tag|tag-and-head|all-commits-since-last-applied [--last-applied <sha>]]
//! ```
//!
//! `--ref` is a branch name, or `tag:<name>`, `semver:<range>`, `commit:<sha>`,
//! `branch:<name>`, or a full ref name starting with `refs/`.
//! Prints `verified <revision> signed by <principal> (<fingerprint>)` (exit
//! code 0), or the refusal on stderr with exit code 1 when the revision was
//! fetched and its signature is refused. Exit code 2 on an error: bad
//! flags, keys that cannot be read, a repository that cannot be fetched.
//! `--ref` defaults to `main`, as the other examples' `--branch`.
//!
//! The signature is checked before the revision's files are read.
//! `--mode all-commits-since-last-applied` checks the head and every commit
//! since `--last-applied` (`git rev-list <sha>..<head>`); without
//! `--last-applied`, the head alone.

#[macro_use]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless::source::{FetchError, FetchRequest, GitRef, GitSource, Source};
use driftless::verify::{OpenPgpVerifier, SshVerifier, Verifier, VerifyMode};

#[derive(Parser)]
#[command(about = "Fetch a Git revision and verify its signature")]
struct Args {
    /// Repository URL (path, file://, http(s)://, ssh://).
    #[arg(long)]
    repo: String,
    /// Reference: branch, tag:<t>, semver:<range>, commit:<sha>, refs/...
    #[arg(long = "ref", default_value = "main")]
    reference: String,
    /// An allowed-signers file (SSH signatures).
    #[arg(
        long,
        conflicts_with = "openpgp_keys",
        required_unless_present = "openpgp_keys"
    )]
    allowed_signers: Option<PathBuf>,
    /// A folder of armored OpenPGP public keys.
    #[arg(long)]
    openpgp_keys: Option<PathBuf>,
    /// What to verify: head, tag, tag-and-head or
    /// all-commits-since-last-applied.
    #[arg(long, default_value = "head")]
    mode: String,
    /// The commit applied last, for `--mode all-commits-since-last-applied`.
    #[arg(long)]
    last_applied: Option<String>,
    /// Cache folder for the fetched repository.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// ssh: deploy key.
    #[arg(long, requires = "known_hosts")]
    ssh_key: Option<PathBuf>,
    /// ssh: known_hosts file pinning the host key.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
}

fn parse_ref(r: &str) -> Result<GitRef, String> {
    let mut g = GitRef::default();
    if let Some(t) = r.strip_prefix("tag:") {
        g.tag = Some(t.into());
    } else if let Some(s) = r.strip_prefix("semver:") {
        g.semver = Some(s.into());
    } else if let Some(c) = r.strip_prefix("commit:") {
        g.commit = Some(c.into());
    } else if let Some(b) = r.strip_prefix("branch:") {
        g.branch = Some(b.into());
    } else if r.starts_with("refs/") {
        g.name = Some(r.into());
    } else if r.is_empty() {
        return Err("empty --ref".into());
    } else {
        g.branch = Some(r.into());
    }
    Ok(g)
}

/// Why no revision was verified.
enum Failure {
    /// The revision's signature was refused (exit code 1).
    Refused(String),
    /// Anything before: flags, keys, the fetch (exit code 2).
    Error(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

fn run(args: Args) -> Result<String, Failure> {
    let mode = match args.mode.as_str() {
        "head" | "HEAD" => VerifyMode::Head,
        "tag" | "Tag" => VerifyMode::Tag,
        "tag-and-head" | "TagAndHEAD" => VerifyMode::TagAndHead,
        "all-commits-since-last-applied" | "AllCommitsSinceLastApplied" => {
            VerifyMode::AllCommitsSinceLastApplied
        }
        other => {
            return Err(Failure::Error(format!(
                "unknown --mode {other:?}: use head, tag, tag-and-head or all-commits-since-last-applied"
            )))
        }
    };
    if args.last_applied.is_some() && !mode.needs_history() {
        return Err(Failure::Error(
            "--last-applied needs --mode all-commits-since-last-applied".into(),
        ));
    }
    let verifier: Box<dyn Verifier> = match (&args.allowed_signers, &args.openpgp_keys) {
        (Some(f), _) => Box::new(SshVerifier::from_file(f, mode).map_err(|e| e.to_string())?),
        (None, Some(d)) => Box::new(
            // key expiry is checked at the current time, as gpg does
            OpenPgpVerifier::from_dir(d, mode, || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(i64::MAX)
            })
            .map_err(|e| e.to_string())?,
        ),
        (None, None) => {
            return Err(Failure::Error(
                "give --allowed-signers or --openpgp-keys".into(),
            ))
        }
    };
    let mut src = GitSource::new(&args.repo).map_err(|e| e.to_string())?;
    if let Some(c) = args.cache_dir {
        src = src.with_cache_dir(c);
    }
    if let (Some(k), Some(h)) = (args.ssh_key, args.known_hosts) {
        src = src.with_ssh_key(k, h);
    }
    let request =
        FetchRequest::new(parse_ref(&args.reference)?).with_last_applied(args.last_applied);
    // the signature is checked before the tree is read
    let verified = futures::executor::block_on(src.fetch_verified(&request, verifier.as_ref()))
        .map_err(|e| match e {
            FetchError::Verify(refused) => Failure::Refused(refused.to_string()),
            other => Failure::Error(other.to_string()),
        })?;
    let v = verified.verdict();
    Ok(format!(
        "verified {} signed by {} ({})",
        verified.revision, v.principal, v.fingerprint
    ))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(line) => {
            outln!("{line}");
            cli::exit(cli::SUCCESS)
        }
        Err(Failure::Refused(e)) => {
            errln!("{e}");
            cli::exit(cli::NOT_READY)
        }
        Err(Failure::Error(e)) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
