//! The Kustomizations of a reconciled fleet and their inventories as a tree,
//! in the spirit of `flux tree kustomization`.
//!
//! ```text
//! cargo run --example reconcile -- --state ./state
//! cargo run --example tree -- --state ./state                 # from flux-system/flux-system
//! cargo run --example tree -- --state ./state apps            # flux-system/apps
//! ```
//!
//! Reads the embedded cluster's state folder only (no Git, no rendering):
//! each Kustomization's `status.inventory` (as the fleet writes it, and as
//! `flux tree` reads it; the recorded inventory for one without a status),
//! recursing into the Kustomizations it lists. Exit code 0, or 2 with a message on stderr
//! (no state folder, a corrupt one, a Kustomization never reconciled).

#[macro_use]
mod cli;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use driftless::apply::{Applier, MemoryCluster};
use driftless::flux::KUSTOMIZE_GROUP;
use driftless::plan::Inventory;
use driftless::ObjectId;

#[derive(Parser)]
#[command(about = "Print a Kustomization and its inventory as a tree")]
struct Args {
    /// The Kustomization's name.
    #[arg(default_value = "flux-system")]
    name: String,
    /// The Kustomization's namespace.
    #[arg(long, short = 'n', default_value = "flux-system")]
    namespace: String,
    /// The embedded cluster's state folder (as written by the reconcile example).
    #[arg(long, default_value = "./.driftless-state")]
    state: PathBuf,
}

struct Printer<'a> {
    cluster: &'a MemoryCluster,
    seen: BTreeSet<String>,
    out: String,
}

/// The inventory of the Kustomization `key` (`ns/name`): its
/// `status.inventory`, as `flux tree` reads it, else the one the cluster
/// records for it (a Kustomization with no status: the root, when the
/// cluster folder does not declare it).
async fn inventory(cluster: &MemoryCluster, key: &str) -> Result<Option<Inventory>, String> {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    let id = ObjectId::new(KUSTOMIZE_GROUP, "Kustomization", ns, name);
    let live = cluster.get(&id).await.map_err(|e| e.to_string())?;
    if let Some(status) = live.as_ref().and_then(|o| o.pointer("/status/inventory")) {
        return serde_json::from_value(status.clone())
            .map(Some)
            .map_err(|e| format!("{}: status.inventory: {e}", id.subject()));
    }
    cluster.read_inventory(key).await.map_err(|e| e.to_string())
}

impl Printer<'_> {
    async fn children(&mut self, key: &str, prefix: &str) -> Result<(), String> {
        let inventory = inventory(self.cluster, key).await?.unwrap_or_default();
        let ids = inventory
            .ids()
            .map_err(|e| format!("inventory {key}: {e}"))?;
        for (i, id) in ids.iter().enumerate() {
            let last = i + 1 == ids.len();
            let (branch, indent) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            self.out
                .push_str(&format!("{prefix}{branch}{}\n", id.subject()));
            if id.group == KUSTOMIZE_GROUP && id.kind == "Kustomization" {
                let child = format!("{}/{}", id.namespace, id.name);
                // the root lists itself; print each Kustomization's inventory once
                if self.seen.insert(child.clone()) {
                    Box::pin(self.children(&child, &format!("{prefix}{indent}"))).await?;
                }
            }
        }
        Ok(())
    }
}

async fn run(args: Args) -> Result<String, String> {
    if !args.state.is_dir() {
        return Err(format!(
            "--state {}: no such folder (run the reconcile example first)",
            args.state.display()
        ));
    }
    // A snapshot taken under a shared lock: never disturbs a running
    // reconcile, and fails at once (naming the folder) while one writes.
    let cluster = MemoryCluster::open_read_only(&args.state).map_err(|e| e.to_string())?;
    let key = format!("{}/{}", args.namespace, args.name);
    let id = ObjectId::new(
        KUSTOMIZE_GROUP,
        "Kustomization",
        &args.namespace,
        &args.name,
    );
    let has_inventory = inventory(&cluster, &key).await?.is_some();
    if !has_inventory {
        return Err(format!(
            "{} has no inventory in {} (not reconciled yet?)",
            id.subject(),
            args.state.display()
        ));
    }
    let mut p = Printer {
        cluster: &cluster,
        seen: BTreeSet::from([key.clone()]),
        out: format!("{}\n", id.subject()),
    };
    p.children(&key, "").await?;
    Ok(p.out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match futures::executor::block_on(run(args)) {
        Ok(text) => {
            out!("{text}");
            cli::exit(cli::SUCCESS)
        }
        Err(e) => {
            errln!("error: {e}");
            cli::exit(cli::ERROR)
        }
    }
}
