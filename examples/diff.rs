//! What reconciling a Flux fleet would change, in the spirit of
//! `flux diff kustomization`.
//!
//! ```text
//! cargo run --example reconcile -- --state ./state        # apply once
//! cargo run --example diff -- --state ./state             # then compare
//! cargo run --example diff -- --state ./state --kustomization flux-system/apps
//! ```
//!
//! The fleet is planned and dry-run against a copy-on-write overlay of the
//! embedded cluster persisted in `--state`, writing nothing: later
//! Kustomizations see what earlier ones would create (a tenant's namespace
//! and RoleBindings, a CRD's kind), so the diff of a change that adds a
//! tenant works, on an empty state too. For every object that would change, a line
//! `► Kind/ns/name created|drifted|deleted`; under a drifted object, a
//! unified diff between the live object and the result of a server-side
//! dry-run apply of the Git version (Secret values masked).
//!
//! Exit code: 0 when nothing differs, 1 when something does, 2 on an error
//! (including a Kustomization that cannot be built or planned).
//!
//! The fleet is planned with the same multi-tenancy lockdown as the
//! reconcile example (`--default-service-account`, default `default`;
//! `--no-cross-namespace-refs`, default true) and the same
//! `--local-sources`.

#[macro_use]
mod cli;
mod fleet_flags;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::diff::text::unified;
use driftless::fleet::{
    FleetContext, FleetOptions, KeysFromSecret, NoEvents, SourceBinding, VirtualClock,
};
use driftless::plan::Action;
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef, GitSource, Source};
use driftless::ObjectId;

const DEMO_FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");

#[derive(Parser)]
#[command(about = "Show what reconciling a Flux fleet would change")]
struct Args {
    /// A Git URL (file://, http(s)://, ssh://) or a folder; defaults to the bundled demo fleet.
    #[arg(long)]
    repo: Option<String>,
    /// The cluster folder.
    #[arg(long, default_value = "clusters/production")]
    path: String,
    /// Branch to fetch from a Git repository.
    #[arg(long, default_value = "main")]
    branch: String,
    /// The embedded cluster's state folder (as written by the reconcile example).
    #[arg(long, default_value = "./.driftless-state")]
    state: PathBuf,
    /// Only this Kustomization (`namespace/name`).
    #[arg(long)]
    kustomization: Option<String>,
    /// Do not report objects that would be pruned.
    #[arg(long)]
    no_prune: bool,
    /// Map a source of the fleet to a folder or URL: `Kind/ns/name=<folder or URL>`.
    #[arg(long = "local-sources")]
    local_sources: Vec<String>,
    #[command(flatten)]
    lockdown: fleet_flags::Lockdown,
}

fn is_url(s: &str) -> bool {
    ["file://", "http://", "https://", "ssh://"]
        .iter()
        .any(|p| s.starts_with(p))
}

fn open_source(location: &str) -> Result<Box<dyn Source>, String> {
    if is_url(location) {
        Ok(Box::new(
            GitSource::new(location).map_err(|e| e.to_string())?,
        ))
    } else {
        if !std::path::Path::new(location).is_dir() {
            return Err(format!("{location}: no such folder"));
        }
        Ok(Box::new(DirSource::new(location)))
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let repo = args.repo.clone().unwrap_or_else(|| DEMO_FLEET.to_string());
    let source = open_source(&repo).map_err(|e| format!("--repo {e}"))?;
    let mut mappings = args.local_sources.clone();
    if args.repo.is_none() {
        mappings.extend(fleet_flags::demo_sources(DEMO_FLEET));
    }
    let mut extra: Vec<(ObjectId, Box<dyn Source>)> = Vec::new();
    for m in &mappings {
        let (id, location) = fleet_flags::local_source(m)?;
        let s = open_source(&location).map_err(|e| format!("--local-sources {e}"))?;
        extra.push((id, s));
    }
    if !args.state.is_dir() {
        return Err(format!(
            "--state {}: no such folder (run the reconcile example first)",
            args.state.display()
        ));
    }
    // A snapshot taken under a shared lock: never disturbs a running
    // reconcile, and fails at once (naming the folder) while one writes.
    let cluster = MemoryCluster::open_read_only(&args.state).map_err(|e| e.to_string())?;
    let renderer = Kustomize::new(KustomizeOptions {
        flux: true,
        ..KustomizeOptions::default()
    });
    let mut options = FleetOptions {
        cluster_path: args.path.clone(),
        dry_run: true,
        allow_prune: !args.no_prune,
        ..FleetOptions::default()
    };
    args.lockdown.apply_to(&mut options);
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source: source.as_ref(),
            reference: GitRef::branch(&args.branch),
            verifier: None,
        },
    );
    for (id, s) in &extra {
        sources.insert(
            id.clone(),
            SourceBinding {
                source: s.as_ref(),
                reference: GitRef::branch(&args.branch),
                verifier: None,
            },
        );
    }
    // a dry run waits for nothing: no health checks run, and the clock
    // stands still at the current time (OpenPGP key expiry is checked then)
    let clock = VirtualClock::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let keys = KeysFromSecret::new();
    let ctx = FleetContext {
        sources,
        verifiers: Some(&keys),
        renderer: &renderer,
        applier: &cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    let report = ctx.reconcile(&options).await.map_err(|e| e.to_string())?;
    if let Some(k) = &args.kustomization {
        if report.get(k).is_none() {
            return Err(format!("Kustomization {k} not found in {}", args.path));
        }
    }
    let mut differs = false;
    let mut errors = Vec::new();
    for r in &report.results {
        if args.kustomization.as_ref().is_some_and(|k| *k != r.key) {
            continue;
        }
        if !r.ready {
            errors.push(format!(
                "Kustomization/{}: {}: {}",
                r.key, r.reason, r.message
            ));
            continue;
        }
        let desired: BTreeMap<ObjectId, &driftless::Object> =
            r.objects.iter().map(|o| (o.id(), o)).collect();
        for e in &r.changes.entries {
            let word = match e.action {
                Action::Created => "created",
                Action::Configured => "drifted",
                Action::Deleted => "deleted",
                Action::Unchanged | Action::Skipped => continue,
            };
            differs = true;
            outln!("► {} {word}", e.subject);
            if e.action != Action::Configured {
                continue;
            }
            let live = cluster.get(&e.id).await.map_err(|e| e.to_string())?;
            let Some(want) = desired.get(&e.id) else {
                continue;
            };
            // what the cluster would hold: a server-side dry-run apply
            let dry = ApplyOptions {
                dry_run: true,
                ..ApplyOptions::default()
            };
            let after = cluster.apply(want, &dry).await.map_err(|e| e.to_string())?;
            out!("{}", unified(live.as_ref(), Some(&after), &e.subject));
        }
    }
    for e in &errors {
        errln!("✗ {e}");
    }
    if !errors.is_empty() {
        return Err(format!(
            "{} Kustomization(s) could not be diffed",
            errors.len()
        ));
    }
    Ok(differs)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match futures::executor::block_on(run(args)) {
        Ok(false) => cli::exit(cli::SUCCESS),
        Ok(true) => cli::exit(cli::NOT_READY),
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
