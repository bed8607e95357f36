//! The fleet writes each Kustomization's status to the cluster through
//! `Applier::update_status`, as kustomize-controller does: the Ready
//! condition, lastAppliedRevision, lastAttemptedRevision, observedGeneration
//! and the inventory. The state files and the tree example show it.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use driftless::apply::memory::Rollout;
use driftless::apply::{Applier, MemoryCluster};
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, NoEvents, SourceBinding, VirtualClock,
};
use driftless::flux::{KUSTOMIZE_GROUP, SOURCE_GROUP};
use driftless::plan::Inventory;
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef};
use driftless::ObjectId;
use futures::executor::block_on;
use serde_json::{json, Value};
use support::*;

const START: Duration = Duration::from_secs(1_700_000_000);

fn reconcile(
    fleet: &Path,
    cluster: &MemoryCluster,
    clock: &VirtualClock,
    options: &FleetOptions,
) -> FleetReport {
    let source = DirSource::new(fleet);
    let renderer = Kustomize::new(KustomizeOptions {
        flux: true,
        ..KustomizeOptions::default()
    });
    let mut sources = BTreeMap::new();
    for id in [
        options.root_source.clone(),
        ObjectId::new(SOURCE_GROUP, "GitRepository", "team-a", "team-a"),
    ] {
        sources.insert(
            id,
            SourceBinding {
                source: &source,
                reference: GitRef::branch("main"),
                verifier: None,
            },
        );
    }
    let ctx = FleetContext {
        sources,
        verifiers: None,
        renderer: &renderer,
        applier: cluster,
        clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    block_on(ctx.reconcile(options)).unwrap()
}

fn status(cluster: &MemoryCluster, key: &str) -> Value {
    let (ns, name) = key.split_once('/').unwrap();
    let id = ObjectId::new(KUSTOMIZE_GROUP, "Kustomization", ns, name);
    let live = block_on(cluster.get(&id))
        .unwrap()
        .expect("the Kustomization is live");
    live.pointer("/status").cloned().unwrap_or(Value::Null)
}

fn inventory_json(inventory: &Inventory) -> Value {
    let entries: Vec<Value> = inventory
        .entries
        .iter()
        .map(|e| json!({"id": e.id, "v": e.v}))
        .collect();
    json!({ "entries": entries })
}

#[test]
fn every_kustomization_carries_flux_status_after_a_run() {
    let fleet = demo_fleet();
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let report = reconcile(fleet.path(), &cluster, &clock, &FleetOptions::default());
    assert!(report.all_ready(), "{report:?}");
    let revision = report.results[0].last_applied_revision.clone().unwrap();
    for r in &report.results {
        let inventory = block_on(cluster.read_inventory(&r.key)).unwrap().unwrap();
        assert_eq!(inventory, r.inventory, "{}", r.key);
        assert_eq!(
            status(&cluster, &r.key),
            json!({
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "ReconciliationSucceeded",
                    "message": format!("Applied revision: {revision}"),
                    "observedGeneration": 1,
                    "lastTransitionTime": "2023-11-14T22:13:20Z",
                }],
                "inventory": inventory_json(&inventory),
                "lastAppliedRevision": revision,
                "lastAttemptedRevision": revision,
                "observedGeneration": 1,
            }),
            "{}",
            r.key
        );
    }

    // a run that changes nothing writes nothing, the status included
    let rv = cluster.resource_version();
    clock.advance(Duration::from_secs(600));
    let again = reconcile(fleet.path(), &cluster, &clock, &FleetOptions::default());
    assert!(again.all_ready());
    assert_eq!(cluster.resource_version(), rv);

    // a new ingress controller that fails its rollout: infrastructure
    // applies it, fails its health check, and says so at the new time; the
    // last applied revision stays, the attempted one moves
    bump_ingress_controller(fleet.path());
    cluster.set_rollout(|o| {
        if o.kind() == "Deployment" && o.name() == "ingress-nginx-controller" {
            Rollout::Failed
        } else {
            Rollout::Complete
        }
    });
    let apps_before = status(&cluster, "flux-system/apps");
    clock.advance(Duration::from_secs(600));
    let failed = reconcile(fleet.path(), &cluster, &clock, &FleetOptions::default());
    let infra = failed.get("flux-system/infrastructure").unwrap();
    assert_eq!(infra.reason, "HealthCheckFailed");
    let new_revision = infra.last_attempted_revision.clone().unwrap();
    assert_ne!(new_revision, revision);
    let s = status(&cluster, "flux-system/infrastructure");
    let ready = &s["conditions"][0];
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "HealthCheckFailed");
    assert_eq!(ready["message"], infra.message.as_str());
    assert_eq!(ready["lastTransitionTime"], "2023-11-14T22:33:20Z");
    assert_eq!(s["lastAppliedRevision"], revision.as_str());
    assert_eq!(s["lastAttemptedRevision"], new_revision.as_str());
    let inventory = block_on(cluster.read_inventory("flux-system/infrastructure"))
        .unwrap()
        .unwrap();
    assert_eq!(s["inventory"], inventory_json(&inventory));
    // one that stayed Ready keeps its transition time
    let root = status(&cluster, "flux-system/flux-system");
    assert_eq!(root["conditions"][0]["status"], "True");
    assert_eq!(
        root["conditions"][0]["lastTransitionTime"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(root["lastAppliedRevision"], new_revision.as_str());
    // apps waited on its dependency and wrote nothing, its status included
    assert_eq!(
        failed.get("flux-system/apps").unwrap().reason,
        "DependencyNotReady"
    );
    assert_eq!(status(&cluster, "flux-system/apps"), apps_before);
}

#[test]
fn a_run_that_stops_before_any_write_leaves_the_status_alone() {
    let fleet = demo_fleet();
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    assert!(reconcile(fleet.path(), &cluster, &clock, &FleetOptions::default()).all_ready());
    let before = status(&cluster, "flux-system/apps");
    // a build that fails writes nothing at all, fail closed, the status
    // included (Flux would record Ready=False there; the result says it)
    std::fs::write(fleet.path().join("apps/base/app1/broken.yaml"), "kind: [\n").unwrap();
    edit_file(
        &fleet.path().join("apps/base/app1/kustomization.yaml"),
        "  - service.yaml\n",
        "  - service.yaml\n  - broken.yaml\n",
    );
    clock.advance(Duration::from_secs(600));
    let broken = reconcile(fleet.path(), &cluster, &clock, &FleetOptions::default());
    assert_eq!(
        broken.get("flux-system/apps").unwrap().reason,
        "BuildFailed"
    );
    assert_eq!(status(&cluster, "flux-system/apps"), before);
}

#[test]
fn a_dry_run_writes_no_status() {
    let fleet = demo_fleet();
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let options = FleetOptions {
        dry_run: true,
        ..FleetOptions::default()
    };
    let rv = cluster.resource_version();
    reconcile(fleet.path(), &cluster, &clock, &options);
    assert_eq!(cluster.resource_version(), rv);
}

#[test]
fn the_state_files_and_the_tree_example_show_the_status() {
    let fleet = demo_fleet();
    let repo = fleet.path().to_str().unwrap();
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_str().unwrap();
    let out = run_example(
        "reconcile",
        &["--repo", repo, "--state", st, &demo_tenant_source(repo)],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let file = state
        .path()
        .join("objects/kustomize.toolkit.fluxcd.io/Kustomization/flux-system/apps.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nstatus:\n  conditions:\n"), "{text}");
    assert!(
        text.contains("    reason: ReconciliationSucceeded\n"),
        "{text}"
    );
    assert!(
        text.contains("    - id: apps_app1_apps_Deployment\n      v: v1\n"),
        "{text}"
    );
    assert!(text.contains("  lastAppliedRevision: sha256:"), "{text}");

    let out = run_example("tree", &["--state", st, "apps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("── Deployment/apps/app1\n"),
        "{}",
        stdout(&out)
    );
    // tree reads the status, as flux tree does: an entry taken out of it
    // by hand leaves the tree
    edit_file(
        &file,
        "    - id: apps_app1_apps_Deployment\n      v: v1\n",
        "",
    );
    let out = run_example("tree", &["--state", st, "apps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("Deployment/apps/app1\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("── Deployment/apps/app2\n"),
        "{}",
        stdout(&out)
    );
}
