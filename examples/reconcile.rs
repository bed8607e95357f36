//! Reconcile a Flux fleet into the embedded cluster, as Flux would.
//!
//! ```text
//! cargo run --example reconcile                      # the bundled demo fleet
//! cargo run --example reconcile -- --repo <git URL or folder> --path clusters/staging
//! ```
//!
//! The cluster folder renders to GitRepository and Kustomization objects;
//! each Kustomization is then reconciled in dependency order. State persists
//! in `--state` (default `./.driftless-state`), so a second run reports
//! everything unchanged, a hand edit in the state folder shows up as
//! configured and is reverted, and a manifest removed from Git is pruned.
//!
//! Output: a `►` line per Kustomization (name, revision, Ready reason and
//! message), one line per object (`Kind/ns/name created|configured|...`)
//! with the field diff under configured objects, and a last line
//! `N created, N configured, N unchanged, N deleted, N skipped`.
//!
//! Exit code 0 when every Kustomization is Ready, 1 when the run finished
//! but one is not, 2 on an error before or outside reconciling (bad flags,
//! an unreadable repository or state folder, a corrupt state). A run that
//! writes nothing to a state folder that did not exist leaves none behind.
//!
//! Watching: `--watch` keeps reconciling as Flux's controllers would, on the
//! wall clock, until interrupted: each Kustomization again after its
//! `spec.interval` (`spec.retryInterval` after a failure, 30s while a
//! dependency is not ready), each GitRepository polled once per its
//! `spec.interval`, and a new revision reconciled at once. Every wake-up
//! prints its runs in the format above. `--for 10m` stops after that long
//! (implies `--watch`); the exit code then tells whether every
//! Kustomization was Ready at the end.
//!
//! The prune guard: `--max-prune N|P%` (default `50%`) stops a
//! Kustomization's run before any write when it would delete more than `N`
//! objects, or more than `P` percent of its inventory (rounded down; the
//! inventories of the Kustomizations it deletes, which their finalizer
//! garbage-collects, count too). The Kustomization is then not Ready
//! (`PruneLimitExceeded`), and the message lists what would have been
//! deleted. `--max-prune 100%` allows any prune.
//!
//! Verification: `--allowed-signers` or `--openpgp-keys` check every revision
//! with those keys. Otherwise each GitRepository's `spec.verify` decides, as
//! the GitRepository is live in the embedded cluster (or rendered from
//! another source), with the trusted keys read from the live Secret it names
//! (`KeysFromSecret`). A revision never chooses its own keys: on a first run
//! (no GitRepository in the cluster yet) give the host's keys, or apply the
//! GitRepository and its Secret first, as `flux bootstrap` does. A Git
//! revision that nothing checks is refused unless `--insecure-skip-verify`
//! is given. A plain folder carries no signature and is reconciled as it is.
//!
//! Multi-tenancy lockdown, on by default as Flux's lockdown guide sets it:
//! `--default-service-account` (default `default`) makes a Kustomization
//! that names no `serviceAccountName` impersonate that ServiceAccount of
//! its namespace (platform Kustomizations name `serviceAccountName:
//! kustomize-controller`; the root acts as the reconciler), and
//! `--no-cross-namespace-refs` (default true) refuses a `sourceRef` to
//! another namespace. Turn them off with `--default-service-account=` and
//! `--no-cross-namespace-refs=false`. Sources other than the root are
//! mapped with `--local-sources Kind/ns/name=<folder or URL>` (the demo
//! fleet's tenant repository is mapped to the demo folder).

#[macro_use]
mod cli;
mod fleet_flags;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use driftless::apply::MemoryCluster;
use driftless::fleet::{
    Clock, FleetContext, FleetOptions, FleetReport, KeysFromSecret, NoEvents, ScheduleOptions,
    Scheduler, SourceBinding,
};
use driftless::flux::parse_duration;
use driftless::plan::{Action, MaxPrune};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::sops::SecretRules;
use driftless::source::{DirSource, GitRef, GitSource, Source};
use driftless::verify::{
    danger::NoVerification, OpenPgpVerifier, SshVerifier, Verifier, VerifyMode,
};
use driftless::ObjectId;

const DEMO_FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Parser)]
#[command(about = "Reconcile a Flux fleet into the embedded cluster")]
struct Args {
    /// A Git URL (file://, http(s)://, ssh://) or a folder; defaults to the bundled demo fleet.
    #[arg(long)]
    repo: Option<String>,
    /// The cluster folder to reconcile.
    #[arg(long, default_value = "clusters/production")]
    path: String,
    /// Branch to fetch from a Git repository.
    #[arg(long, default_value = "main")]
    branch: String,
    /// Where the embedded cluster keeps its state.
    #[arg(long, default_value = "./.driftless-state")]
    state: PathBuf,
    /// Plan and dry-run only; change nothing. The fleet runs against a
    /// copy-on-write overlay of the state, so later Kustomizations see what
    /// earlier ones would create (a tenant's namespace, a CRD's kind).
    #[arg(long)]
    dry_run: bool,
    /// Never delete objects that left Git.
    #[arg(long)]
    no_prune: bool,
    /// The prune guard: the most one Kustomization's run may delete, as a
    /// count (`10`) or a share of its inventory (`50%`), the inventories its
    /// deleted Kustomizations garbage-collect included. Over the limit,
    /// nothing is written and the Kustomization is not Ready. `100%`
    /// allows any prune.
    #[arg(long, value_name = "N|P%", default_value = "50%")]
    max_prune: MaxPrune,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Caps every Kustomization's timeout, e.g. `30s`.
    #[arg(long)]
    timeout: Option<String>,
    /// Map a source of the fleet to a folder or URL: `Kind/ns/name=<folder or URL>`.
    #[arg(long = "local-sources")]
    local_sources: Vec<String>,
    /// Trusted SSH signers (git's allowed-signers format).
    #[arg(long, conflicts_with = "openpgp_keys")]
    allowed_signers: Option<PathBuf>,
    /// A folder of trusted armored OpenPGP public keys.
    #[arg(long)]
    openpgp_keys: Option<PathBuf>,
    /// What to verify: head, tag or tag-and-head.
    #[arg(long, default_value = "head")]
    mode: String,
    /// Reconcile a Git revision without checking its signature.
    #[arg(long)]
    insecure_skip_verify: bool,
    /// Allow plaintext Secrets from this file or folder (relative to the
    /// repository root); repeatable. Everything else must be SOPS-encrypted.
    #[arg(long = "allow-plaintext-secrets")]
    allow_plaintext_secrets: Vec<String>,
    /// ssh: the deploy key.
    #[arg(long, requires = "known_hosts")]
    ssh_key: Option<PathBuf>,
    /// ssh: a known_hosts file pinning the host key.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// Keep reconciling by each Kustomization's interval and each source's
    /// poll interval, until interrupted.
    #[arg(long)]
    watch: bool,
    /// Watch for this long, e.g. `10m`, then stop (implies `--watch`).
    #[arg(long = "for", value_name = "DURATION")]
    watch_for: Option<String>,
    #[command(flatten)]
    lockdown: fleet_flags::Lockdown,
}

/// The wall clock, for a real run. Tests use `VirtualClock` instead.
struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
    async fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

fn is_url(s: &str) -> bool {
    ["file://", "http://", "https://", "ssh://"]
        .iter()
        .any(|p| s.starts_with(p))
        || s.contains('@') && s.contains(':')
}

fn open_source(location: &str, args: &Args) -> Result<Box<dyn Source>, String> {
    if is_url(location) {
        let mut g = GitSource::new(location).map_err(|e| e.to_string())?;
        if let (Some(key), Some(kh)) = (&args.ssh_key, &args.known_hosts) {
            g = g.with_ssh_key(key, kh);
        }
        Ok(Box::new(g))
    } else {
        Ok(Box::new(DirSource::new(location)))
    }
}

/// The verifier the command line asks for; `None` leaves it to each
/// GitRepository's `spec.verify` (keys from the Secret it names, see
/// `KeysFromSecret`).
fn verifier(args: &Args) -> Result<Option<Box<dyn Verifier>>, String> {
    let mode = match args.mode.as_str() {
        "head" | "HEAD" => VerifyMode::Head,
        "tag" | "Tag" => VerifyMode::Tag,
        "tag-and-head" | "TagAndHEAD" => VerifyMode::TagAndHead,
        other => {
            return Err(format!(
                "--mode {other:?}: expected head, tag or tag-and-head"
            ))
        }
    };
    if let Some(f) = &args.allowed_signers {
        return Ok(Some(Box::new(
            SshVerifier::from_file(f, mode).map_err(|e| e.to_string())?,
        )));
    }
    if let Some(d) = &args.openpgp_keys {
        return Ok(Some(Box::new(
            // key expiry is checked at the wall-clock time of each check
            OpenPgpVerifier::from_dir(d, mode, || SystemClock.now().as_secs() as i64)
                .map_err(|e| e.to_string())?,
        )));
    }
    if args.insecure_skip_verify {
        return Ok(Some(Box::new(NoVerification)));
    }
    Ok(None)
}

fn print_text(report: &FleetReport) {
    let mut totals: BTreeMap<Action, usize> = BTreeMap::new();
    for r in &report.results {
        let revision = r
            .last_applied_revision
            .as_deref()
            .or(r.last_attempted_revision.as_deref())
            .unwrap_or("-");
        let ready = if r.ready { "True" } else { "False" };
        outln!(
            "► Kustomization/{} {revision} Ready={ready} {}: {}",
            r.key,
            r.reason,
            r.message
        );
        for e in &r.changes.entries {
            outln!("{e}");
            for d in &e.drift {
                outln!("  {d}");
            }
            *totals.entry(e.action).or_default() += 1;
        }
    }
    let n = |a| totals.get(&a).copied().unwrap_or(0);
    outln!(
        "{} created, {} configured, {} unchanged, {} deleted, {} skipped",
        n(Action::Created),
        n(Action::Configured),
        n(Action::Unchanged),
        n(Action::Deleted),
        n(Action::Skipped)
    );
}

fn print_report(report: &FleetReport, output: Output) -> Result<(), String> {
    match output {
        Output::Text => print_text(report),
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

/// Runs the scheduler on the wall clock, printing the runs of each wake-up
/// as they happen, until interrupted or until `watch_for` has passed.
/// Returns the latest status of every Kustomization.
async fn watch(
    ctx: &FleetContext<'_>,
    options: FleetOptions,
    watch_for: Option<Duration>,
    output: Output,
) -> Result<FleetReport, String> {
    let mut scheduler = Scheduler::new(ctx, options, ScheduleOptions::default());
    // the root is due now: the first wake-up reconciles the whole fleet
    let start = scheduler.next_wake().unwrap_or_else(|| SystemClock.now());
    let end = watch_for.map(|d| start + d);
    loop {
        let next = scheduler.next_wake().unwrap_or(start);
        let until = end.map_or(next, |end| next.min(end));
        let runs = scheduler
            .run_until(until)
            .await
            .map_err(|e| e.to_string())?;
        if !runs.is_empty() {
            let report = FleetReport {
                results: runs.into_iter().map(|r| r.result).collect(),
            };
            print_report(&report, output)?;
        }
        // nobody reads any more (`… | head`): stop watching
        if cli::stdout_closed() || end.is_some_and(|end| until >= end) {
            return Ok(scheduler.report());
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let repo = args.repo.clone().unwrap_or_else(|| DEMO_FLEET.to_string());
    let root_source = open_source(&repo, &args)?;
    let root_verifier = verifier(&args)?;
    if !is_url(&repo) && !std::path::Path::new(&repo).is_dir() {
        return Err(format!("--repo {repo}: no such folder"));
    }
    let mut extra: Vec<(ObjectId, Box<dyn Source>)> = Vec::new();
    let mut mappings = args.local_sources.clone();
    if args.repo.is_none() {
        mappings.extend(fleet_flags::demo_sources(DEMO_FLEET));
    }
    for m in &mappings {
        let (id, location) = fleet_flags::local_source(m)?;
        extra.push((id, open_source(&location, &args)?));
    }
    let max_timeout = args
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("--timeout: {e}"))?;
    let watch_for = args
        .watch_for
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("--for: {e}"))?;
    // a run that writes nothing leaves no state folder behind it
    let fresh = !args.state.exists();
    // a dry run only reads the state (it runs through a copy-on-write
    // overlay, see FleetContext::reconcile): a snapshot under a shared lock
    let cluster = if args.dry_run {
        MemoryCluster::open_read_only(&args.state)
    } else {
        MemoryCluster::open(&args.state)
    }
    .map_err(|e| e.to_string())?;
    let bootstrapped = cluster.resource_version();
    let result = async {
        // Secrets do not go in Git: plaintext Secrets are refused unless their
        // path is allowed explicitly (SOPS-encrypted ones are decrypted through
        // each Kustomization's spec.decryption)
        let mut secrets = SecretRules::refuse_plaintext(None);
        secrets.allow_plaintext = args.allow_plaintext_secrets.clone();
        let renderer = Kustomize::new(KustomizeOptions {
            flux: true,
            secrets,
            ..KustomizeOptions::default()
        });
        let mut options = FleetOptions {
            cluster_path: args.path.clone(),
            max_timeout,
            dry_run: args.dry_run,
            allow_prune: !args.no_prune,
            max_prune: Some(args.max_prune),
            require_signed: !args.insecure_skip_verify,
            ..FleetOptions::default()
        };
        args.lockdown.apply_to(&mut options);
        let mut sources = BTreeMap::new();
        let reference = GitRef::branch(&args.branch);
        sources.insert(
            options.root_source.clone(),
            SourceBinding {
                source: root_source.as_ref(),
                reference: reference.clone(),
                verifier: root_verifier.as_deref(),
            },
        );
        for (id, s) in &extra {
            sources.insert(
                id.clone(),
                SourceBinding {
                    source: s.as_ref(),
                    reference: reference.clone(),
                    verifier: root_verifier.as_deref(),
                },
            );
        }
        let keys = KeysFromSecret::new();
        let ctx = FleetContext {
            sources,
            verifiers: Some(&keys),
            renderer: &renderer,
            applier: &cluster,
            clock: &SystemClock,
            events: &NoEvents,
            metrics: None,
            schema: Schema::kubernetes(),
        };
        let report = if args.watch || watch_for.is_some() {
            watch(&ctx, options, watch_for, args.output).await?
        } else {
            let report = ctx.reconcile(&options).await.map_err(|e| e.to_string())?;
            print_report(&report, args.output)?;
            report
        };
        for r in report.results.iter().filter(|r| !r.ready) {
            errln!(
                "Kustomization/{} not ready: {}: {}",
                r.key,
                r.reason,
                r.message
            );
        }
        Ok(report.all_ready())
    }
    .await;
    if fresh && args.state.exists() && cluster.resource_version() == bootstrapped {
        drop(cluster);
        std::fs::remove_dir_all(&args.state).map_err(|e| {
            format!(
                "removing the state folder {} this run created and wrote nothing to: {e}",
                args.state.display()
            )
        })?;
    }
    result
}

fn main() -> ExitCode {
    let args = Args::parse();
    match futures::executor::block_on(run(args)) {
        Ok(true) => cli::exit(cli::SUCCESS),
        Ok(false) => cli::exit(cli::NOT_READY),
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
