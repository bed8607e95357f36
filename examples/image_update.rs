//! Image update automation from the command line.
//!
//! ```text
//! cargo run --features image-automation --example image_update -- \
//!     --repo file:///srv/git/fleet.git --branch main \
//!     --push-branch flux-image-updates --path ./apps/base/app1 \
//!     --policies ./apps/base/app1 --tags tags.yaml \
//!     --signing-key ~/.ssh/fluxbot_ed25519 \
//!     --allowed-signers ./allowed_signers
//! ```
//!
//! `--policies` is a file or a folder holding ImagePolicy and
//! ImageRepository objects; `--tags` is a YAML map from image name to its
//! list of tags. Prints each change as `file:line old → new`, then the new
//! commit's id and revision, or `no updates`. The fetch cache lives in the
//! system's temporary folder, one per remote.
//!
//! `--allowed-signers` (SSH) or `--openpgp-keys` (a folder of armored
//! public keys) are the keys the fleet verifies the branch with: the head
//! the update would be built on must verify with them, or nothing is
//! committed (`refusing to commit on top of <commit> ...`), so the bot never
//! signs on top of a commit the fleet would refuse. A refusal is an error
//! (exit code 2).
//!
//! Exit code 0 when the commit was pushed or every image is up to date, 2
//! on any error, before anything is fetched: among them a tags file that
//! cannot be read, a policy whose ImageRepository is not in `--policies`,
//! and a policy that cannot choose a tag (each is listed). "no updates" is
//! never printed for policies that chose nothing.

#[macro_use]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless::image::automation::{Automation, CommitSigner, CommitTime, Outcome, SshSigner};
use driftless::image::{resolve, FileTags, ImageObjects};
use driftless::verify::{OpenPgpVerifier, SshVerifier, Verifier, VerifyMode};
use sha2::{Digest, Sha256};

#[derive(Parser, Debug)]
#[command(about = "Update image references in Git as Flux's image automation does")]
struct Args {
    /// The Git remote: a path, file://, http(s):// or ssh:// URL.
    #[arg(long)]
    repo: String,
    /// The branch to check out.
    #[arg(long, default_value = "main")]
    branch: String,
    /// The branch to push to (the checkout branch is refused unless named
    /// here explicitly, which is taken as the host asking for it).
    #[arg(long, default_value = "flux-image-updates")]
    push_branch: String,
    /// The folder whose files the setters update.
    #[arg(long, default_value = ".")]
    path: String,
    /// ImagePolicy and ImageRepository objects (a file or a folder).
    #[arg(long)]
    policies: PathBuf,
    /// A YAML map from image name to its list of tags.
    #[arg(long)]
    tags: PathBuf,
    /// An OpenSSH ed25519 private key to sign the commit with.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Trusted SSH signers (git's allowed-signers format): the head the
    /// update is built on must be signed by one of them.
    #[arg(long, conflicts_with = "openpgp_keys")]
    allowed_signers: Option<PathBuf>,
    /// A folder of trusted armored OpenPGP public keys: the head the update
    /// is built on must be signed by one of them.
    #[arg(long)]
    openpgp_keys: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => cli::exit(cli::SUCCESS),
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let objects = ImageObjects::read_path(&args.policies)?;
    if objects.policies.is_empty() {
        return Err(format!("no ImagePolicy found in {}", args.policies.display()).into());
    }
    let tags = FileTags::new(&args.tags);
    let resolution = futures::executor::block_on(resolve(&objects, &tags))?;
    // a policy that chose nothing fails the run: its images would stay
    // as they are without a word
    if !resolution.skipped.is_empty() {
        let reasons: Vec<String> = resolution
            .skipped
            .iter()
            .map(|(policy, why)| format!("policy {policy} chose no image: {why}"))
            .collect();
        return Err(reasons.join("\n").into());
    }

    let signer = match &args.signing_key {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(SshSigner::from_openssh(&text)?)
        }
        None => None,
    };

    let digest = Sha256::digest(args.repo.as_bytes());
    let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let cache = std::env::temp_dir()
        .join("driftless-image-update")
        .join(key);
    let mut automation = Automation::new(&args.repo, &args.branch, &args.path, cache);
    automation.push_branch = args.push_branch.clone();
    // Naming the checkout branch as the push branch on the command line is
    // the host asking for a direct push.
    automation.push_to_checkout_branch = args.push_branch == args.branch;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let time = CommitTime {
        seconds: now,
        offset_seconds: 0,
    };
    let verifier: Option<Box<dyn Verifier>> = match (&args.allowed_signers, &args.openpgp_keys) {
        (Some(f), _) => Some(Box::new(SshVerifier::from_file(f, VerifyMode::Head)?)),
        (None, Some(d)) => Some(Box::new(OpenPgpVerifier::from_dir(
            d,
            VerifyMode::Head,
            // key expiry is checked at the current time, as gpg does
            move || now,
        )?)),
        (None, None) => None,
    };
    let signer = signer.as_ref().map(|s| s as &dyn CommitSigner);
    let outcome = match &verifier {
        Some(v) => automation.run_verified(&resolution.images, time, signer, v.as_ref())?,
        None => automation.run(&resolution.images, time, signer)?,
    };
    match outcome {
        Outcome::NoUpdates { .. } => outln!("no updates"),
        Outcome::Pushed(p) => {
            for c in &p.changes {
                outln!("{}:{} {} → {}", c.file, c.line, c.old_value, c.new_value);
            }
            outln!("commit {}", p.id);
            outln!("revision {}", p.revision);
        }
        other => outln!("{other:?}"),
    }
    Ok(())
}
