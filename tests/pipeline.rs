//! The reconcile pipeline end to end on the bundled demo fleet, as a user
//! drives it: a folder source, the kustomize renderer in Flux mode, and the
//! embedded cluster persisted to a state folder.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use driftless::apply::memory::Durability;
use driftless::apply::{Applier, FailingApplier, MemoryCluster};
use driftless::pipeline::{ReconcileError, ReconcileOptions, ReconcileReport, Reconciler};
use driftless::plan::{Action, Inventory};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::render::Renderer;
use driftless::source::{DirSource, GitRef, Source};
use driftless::verify::{danger::NoVerification, Verified};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use support::*;

const PATH: &str = "apps/overlays/production";
const OWNER: &str = "flux-system/apps";

fn renderer() -> Kustomize {
    Kustomize::new(KustomizeOptions {
        flux: true,
        ..KustomizeOptions::default()
    })
}

fn options() -> ReconcileOptions {
    ReconcileOptions {
        path: PATH.to_string(),
        owner: OWNER.to_string(),
        ..ReconcileOptions::default()
    }
}

fn open(state: &Path) -> MemoryCluster {
    MemoryCluster::open_with(state, Durability::Process).unwrap()
}

fn reconcile(
    fleet: &Path,
    applier: &dyn Applier,
    options: &ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    let source = DirSource::new(fleet);
    let renderer = renderer();
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier,
        schema: MemoryCluster::new().schema(),
    };
    block_on(r.reconcile(options))
}

/// The objects the renderer makes of the folder, with namespaces defaulted.
fn rendered(fleet: &Path) -> Vec<Object> {
    let snapshot = block_on(DirSource::new(fleet).fetch(&GitRef::default())).unwrap();
    let verified = Verified::check(snapshot, &NoVerification).unwrap();
    let mut objects = renderer().render(&verified, PATH).unwrap().objects;
    driftless::pipeline::default_namespaces(&mut objects, &MemoryCluster::new().schema());
    objects
}

fn actions(report: &ReconcileReport) -> Vec<(String, Action)> {
    report
        .changes
        .entries
        .iter()
        .map(|e| (e.subject.clone(), e.action))
        .collect()
}

fn subject_with(report: &ReconcileReport, action: Action) -> Vec<String> {
    report
        .changes
        .entries
        .iter()
        .filter(|e| e.action == action)
        .map(|e| e.subject.clone())
        .collect()
}

fn config_map_name(fleet: &Path) -> String {
    rendered(fleet)
        .iter()
        .find(|o| o.kind() == "ConfigMap")
        .map(|o| o.name().to_string())
        .unwrap()
}

fn objects_of(cluster: &MemoryCluster, ids: &BTreeSet<ObjectId>) -> Vec<Object> {
    ids.iter().filter_map(|id| cluster.object(id)).collect()
}

#[test]
fn create_noop_drift_revert_and_prune() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let desired = rendered(fleet.path());
    let cm = config_map_name(fleet.path());

    // create, in Flux's order: Namespace first, then kinds by Flux's order
    let cluster = open(state.path());
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(
        actions(&report),
        vec![
            ("Namespace/apps".to_string(), Action::Created),
            (format!("ConfigMap/apps/{cm}"), Action::Created),
            ("Service/apps/app1".to_string(), Action::Created),
            ("Deployment/apps/app1".to_string(), Action::Created),
            ("Deployment/apps/app2".to_string(), Action::Created),
            ("ImagePolicy/flux-system/app1".to_string(), Action::Created),
            (
                "ImageRepository/flux-system/app1".to_string(),
                Action::Created
            ),
        ],
        "{}",
        report.changes
    );
    assert_eq!(
        report.changes.summary(),
        "7 created, 0 configured, 0 unchanged, 0 deleted, 0 skipped"
    );
    for o in &desired {
        let live = cluster.object(&o.id()).expect("created");
        assert_eq!(live.label("team"), o.label("team"), "{}", o.id().subject());
    }
    let app1 = ObjectId::new("apps", "Deployment", "apps", "app1");
    assert_eq!(
        cluster.object(&app1).unwrap().pointer("/spec/replicas"),
        Some(&serde_json::json!(5))
    );
    assert_eq!(
        block_on(cluster.read_inventory(OWNER)).unwrap(),
        Some(Inventory::from_objects(desired.iter()))
    );
    drop(cluster);

    // no-op: a new process sees the persisted state; nothing is written
    let cluster = open(state.path());
    let rv = cluster.resource_version();
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(
        report.changes.summary(),
        "0 created, 0 configured, 7 unchanged, 0 deleted, 0 skipped"
    );
    assert!(report.plan.is_noop());
    assert_eq!(cluster.resource_version(), rv, "a no-op wrote something");

    // drift made with kubectl edit is seen and taken back
    cluster
        .edit(&app1, "kubectl-edit", |v| {
            v["spec"]["replicas"] = serde_json::json!(1);
            v["spec"]["template"]["spec"]["containers"][0]["image"] =
                serde_json::json!("ghcr.io/organization/app1:hotfix");
        })
        .unwrap();
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(
        subject_with(&report, Action::Configured),
        vec!["Deployment/apps/app1"]
    );
    let entry = report
        .changes
        .entries
        .iter()
        .find(|e| e.action == Action::Configured)
        .unwrap();
    let drift: Vec<String> = entry.drift.iter().map(ToString::to_string).collect();
    assert_eq!(
        drift,
        vec![
            ".spec.replicas: 1 -> 5",
            ".spec.template.spec.containers[name=app1].image: \"ghcr.io/organization/app1:hotfix\" -> \"ghcr.io/organization/app1:v1.2.0\"",
        ]
    );
    let live = cluster.object(&app1).unwrap();
    assert_eq!(live.pointer("/spec/replicas"), Some(&serde_json::json!(5)));
    assert_eq!(
        live.pointer("/spec/template/spec/containers/0/image"),
        Some(&serde_json::json!("ghcr.io/organization/app1:v1.2.0"))
    );
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(report.changes.count(Action::Unchanged), 7);
    drop(cluster);

    // a hand edit of a state file is the live state on the next open
    let file = state.path().join("objects/core/Service/apps/app1.yaml");
    edit_file(&file, "targetPort: 8080", "targetPort: 9999");
    let cluster = open(state.path());
    let service = ObjectId::new("", "Service", "apps", "app1");
    assert_eq!(
        cluster
            .object(&service)
            .unwrap()
            .pointer("/spec/ports/0/targetPort"),
        Some(&serde_json::json!(9999))
    );
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(
        subject_with(&report, Action::Configured),
        vec!["Service/apps/app1"]
    );
    drop(cluster);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("targetPort: 8080"), "{text}");
    assert!(!text.contains("9999"), "{text}");

    // prune: a manifest removed from Git is deleted, and leaves the inventory
    let base = fleet.path().join("apps/base/kustomization.yaml");
    edit_file(&base, "  - app2\n", "");
    std::fs::remove_dir_all(fleet.path().join("apps/base/app2")).unwrap();
    let cluster = open(state.path());
    let report = reconcile(fleet.path(), &cluster, &options()).unwrap();
    assert_eq!(
        subject_with(&report, Action::Deleted),
        vec!["Deployment/apps/app2"]
    );
    assert_eq!(
        report.changes.summary(),
        "0 created, 0 configured, 6 unchanged, 1 deleted, 0 skipped"
    );
    let app2 = ObjectId::new("apps", "Deployment", "apps", "app2");
    assert!(cluster.object(&app2).is_none());
    let inventory = block_on(cluster.read_inventory(OWNER)).unwrap().unwrap();
    assert!(!inventory.contains(&app2));
    assert_eq!(inventory.entries.len(), 6);
    drop(cluster);
    assert!(!state
        .path()
        .join("objects/apps/Deployment/apps/app2.yaml")
        .exists());
}

#[test]
fn dry_run_writes_nothing_and_no_prune_skips() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let cluster = open(state.path());
    let rv = cluster.resource_version();
    let dry = ReconcileOptions {
        dry_run: true,
        ..options()
    };
    let report = reconcile(fleet.path(), &cluster, &dry).unwrap();
    assert!(report.dry_run);
    assert_eq!(report.changes.count(Action::Created), 7);
    assert_eq!(cluster.resource_version(), rv);
    assert_eq!(block_on(cluster.read_inventory(OWNER)).unwrap(), None);

    reconcile(fleet.path(), &cluster, &options()).unwrap();
    edit_file(
        &fleet.path().join("apps/base/kustomization.yaml"),
        "  - app2\n",
        "",
    );
    let mut keep = options();
    keep.plan.prune = false;
    let report = reconcile(fleet.path(), &cluster, &keep).unwrap();
    assert_eq!(
        subject_with(&report, Action::Skipped),
        vec!["Deployment/apps/app2"]
    );
    let app2 = ObjectId::new("apps", "Deployment", "apps", "app2");
    assert!(cluster.object(&app2).is_some());
}

/// Every id in `ids` that exists live is listed in the recorded inventory.
fn assert_inventory_covers(cluster: &MemoryCluster, ids: &BTreeSet<ObjectId>, n: usize) {
    let inventory = block_on(cluster.read_inventory(OWNER))
        .unwrap()
        .unwrap_or_default();
    for id in ids {
        if cluster.object(id).is_some() {
            assert!(
                inventory.contains(id),
                "fault at call {n}: {} exists but the inventory lost it: {inventory:?}",
                id.subject()
            );
        }
    }
}

/// The state a clean run leaves: the desired objects as stored, and the inventory.
fn clean_state(
    fleet: &Path,
    start: Option<&Path>,
) -> (Vec<serde_json::Value>, Option<Inventory>, usize) {
    let state = tempfile::tempdir().unwrap();
    if let Some(s) = start {
        copy_dir(s, state.path());
    }
    let counting = FailingApplier::new(open(state.path()), 0);
    reconcile(fleet, &counting, &options()).unwrap();
    let calls = counting.mutating_calls();
    let cluster = counting.into_inner();
    let ids: BTreeSet<ObjectId> = all_ids(fleet, start);
    (
        comparable(&objects_of(&cluster, &ids)),
        block_on(cluster.read_inventory(OWNER)).unwrap(),
        calls,
    )
}

/// The desired ids plus everything a starting state's inventory owns.
fn all_ids(fleet: &Path, start: Option<&Path>) -> BTreeSet<ObjectId> {
    let mut ids: BTreeSet<ObjectId> = rendered(fleet).iter().map(Object::id).collect();
    if let Some(s) = start {
        let c = open(s);
        if let Some(inv) = block_on(c.read_inventory(OWNER)).unwrap() {
            ids.extend(inv.ids().unwrap());
        }
    }
    ids
}

/// Runs the fleet with a failure injected at every mutating call, then
/// reruns without faults: the rerun converges to the clean run's state, and
/// in between the recorded inventory covers every object that exists.
fn fault_at_every_call(fleet: &Path, start: Option<&Path>) -> usize {
    let (want_objects, want_inventory, total) = clean_state(fleet, start);
    assert!(total >= 3, "too few mutating calls: {total}");
    let ids = all_ids(fleet, start);
    for n in 1..=total {
        let state = tempfile::tempdir().unwrap();
        if let Some(s) = start {
            copy_dir(s, state.path());
        }
        let failing = FailingApplier::new(open(state.path()), n);
        let err = match reconcile(fleet, &failing, &options()) {
            Ok(r) => panic!("fault at call {n} went unnoticed:\n{}", r.changes),
            Err(e) => e,
        };
        assert!(err.is_retryable(), "fault at call {n}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("injected failure at mutating call {n}")),
            "{err}"
        );
        drop(failing);
        // a new process after the crash
        let cluster = open(state.path());
        assert_inventory_covers(&cluster, &ids, n);
        let report = reconcile(fleet, &cluster, &options())
            .unwrap_or_else(|e| panic!("rerun after a fault at call {n} failed: {e}"));
        assert!(
            report.changes.count(Action::Created) + report.changes.count(Action::Configured) <= 7
        );
        assert_eq!(
            comparable(&objects_of(&cluster, &ids)),
            want_objects,
            "fault at call {n}: the rerun did not converge"
        );
        assert_eq!(
            block_on(cluster.read_inventory(OWNER)).unwrap(),
            want_inventory,
            "fault at call {n}"
        );
        let again = reconcile(fleet, &cluster, &options()).unwrap();
        assert!(
            again.plan.is_noop(),
            "fault at call {n}:\n{}",
            again.changes
        );
    }
    total
}

#[test]
fn a_fault_at_every_call_of_a_create_converges() {
    let fleet = demo_fleet();
    let total = fault_at_every_call(fleet.path(), None);
    // the widened inventory, seven applies, the final inventory
    assert_eq!(total, 9);
}

#[test]
fn a_fault_at_every_call_of_an_update_with_prune_converges() {
    let fleet = demo_fleet();
    let start = tempfile::tempdir().unwrap();
    reconcile(fleet.path(), &open(start.path()), &options()).unwrap();
    // the next revision changes one object, adds one and removes one
    edit_file(
        &fleet
            .path()
            .join("apps/overlays/production/app1/deployment-patch.yaml"),
        "replicas: 5",
        "replicas: 4",
    );
    edit_file(
        &fleet.path().join("apps/base/kustomization.yaml"),
        "  - app2\n",
        "  - extra.yaml\n",
    );
    std::fs::write(
        fleet.path().join("apps/base/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: apps\ndata:\n  k: v\n",
    )
    .unwrap();
    let total = fault_at_every_call(fleet.path(), Some(start.path()));
    // widened inventory, configure app1, create extra, delete app2, final inventory
    assert_eq!(total, 5);
}

#[test]
fn the_plan_is_byte_stable_across_runs_and_input_orders() {
    let fleet = demo_fleet();
    let plan_of = |objects: Vec<Object>, cluster: &MemoryCluster| {
        let source = DirSource::new(fleet.path());
        let renderer = renderer();
        let r = Reconciler {
            source: &source,
            verifier: &NoVerification,
            renderer: &renderer,
            applier: cluster,
            schema: cluster.schema(),
        };
        let dry = ReconcileOptions {
            dry_run: true,
            ..options()
        };
        let report = block_on(r.reconcile_objects(
            driftless::Revision::named("main", &"0".repeat(40)),
            skipped(),
            objects,
            Vec::new(),
            &dry,
        ))
        .unwrap();
        report.plan.to_json()
    };
    let objects = rendered(fleet.path());
    let fresh = MemoryCluster::new();
    let first = plan_of(objects.clone(), &fresh);
    let mut reversed = objects.clone();
    reversed.reverse();
    let mut rotated = objects.clone();
    rotated.rotate_left(3);
    assert_eq!(plan_of(reversed, &fresh), first);
    assert_eq!(plan_of(rotated, &MemoryCluster::new()), first);
    // through the whole pipeline, twice, on two clusters
    let a = reconcile(fleet.path(), &MemoryCluster::new(), &dry_options()).unwrap();
    let b = reconcile(fleet.path(), &MemoryCluster::new(), &dry_options()).unwrap();
    assert_eq!(a.plan.to_json(), first);
    assert_eq!(b.plan.to_json(), first);
    // the stages in the JSON are Flux's: Namespace first
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["stages"][0]["changes"][0]["id"]["kind"], "Namespace");

    // after an apply and some drift, the plan is still the same bytes each time
    let state = tempfile::tempdir().unwrap();
    let cluster = open(state.path());
    reconcile(fleet.path(), &cluster, &options()).unwrap();
    let app1 = ObjectId::new("apps", "Deployment", "apps", "app1");
    cluster
        .edit(&app1, "kubectl-edit", |v| v["spec"]["replicas"] = 2.into())
        .unwrap();
    drop(cluster);
    let p1 = reconcile(fleet.path(), &open(state.path()), &dry_options())
        .unwrap()
        .plan
        .to_json();
    let p2 = reconcile(fleet.path(), &open(state.path()), &dry_options())
        .unwrap()
        .plan
        .to_json();
    assert_eq!(p1, p2);
    assert!(p1.contains("\"configured\""), "{p1}");
}

fn skipped() -> driftless::verify::Verdict {
    driftless::verify::Verdict {
        principal: String::new(),
        fingerprint: String::new(),
        mode: None,
    }
}

fn dry_options() -> ReconcileOptions {
    ReconcileOptions {
        dry_run: true,
        ..options()
    }
}

#[test]
fn bad_input_errors_name_the_object() {
    // an object without a kind
    let fleet = demo_fleet();
    std::fs::write(
        fleet.path().join("apps/base/app2/broken.yaml"),
        "apiVersion: v1\nmetadata:\n  name: nameless-kind\n  namespace: apps\n",
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app2/kustomization.yaml"),
        "  - deployment.yaml\n",
        "  - deployment.yaml\n  - broken.yaml\n",
    );
    let cluster = MemoryCluster::new();
    let err = reconcile(fleet.path(), &cluster, &options()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ReconcileError::Render(_)), "{msg}");
    assert!(msg.contains("broken.yaml"), "{msg}");
    assert!(msg.contains("nameless-kind"), "{msg}");
    assert!(msg.contains("kind"), "{msg}");
    assert_eq!(cluster.objects(), MemoryCluster::new().objects());

    // an object without a name
    std::fs::write(
        fleet.path().join("apps/base/app2/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: apps\n",
    )
    .unwrap();
    let err = reconcile(fleet.path(), &cluster, &options()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("broken.yaml"), "{msg}");
    assert!(msg.contains("ConfigMap"), "{msg}");
    assert!(msg.contains("name"), "{msg}");

    // the same id twice in the desired set
    let fleet = demo_fleet();
    let mut objects = rendered(fleet.path());
    let dup = objects
        .iter()
        .find(|o| o.kind() == "Service")
        .unwrap()
        .clone();
    objects.push(dup);
    let source = DirSource::new(fleet.path());
    let renderer = renderer();
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier: &cluster,
        schema: cluster.schema(),
    };
    let err = block_on(r.reconcile_objects(
        driftless::Revision::named("main", &"0".repeat(40)),
        skipped(),
        objects,
        Vec::new(),
        &options(),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan failed: duplicate object Service/apps/app1 in the desired set (id apps_app1__Service)"
    );
    assert_eq!(cluster.objects(), MemoryCluster::new().objects());

    // the renderer refuses the same id from two files, naming it
    std::fs::write(
        fleet.path().join("apps/base/app2/again.yaml"),
        std::fs::read_to_string(fleet.path().join("apps/base/app2/deployment.yaml")).unwrap(),
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app2/kustomization.yaml"),
        "  - deployment.yaml\n",
        "  - deployment.yaml\n  - again.yaml\n",
    );
    let err = reconcile(fleet.path(), &cluster, &options()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("app2"), "{msg}");
    assert!(msg.contains("Deployment"), "{msg}");

    // an Applier error in the middle of an apply names the object, and says
    // what was done before it
    let fleet = demo_fleet();
    let failing = FailingApplier::new(MemoryCluster::new(), 4);
    let err = reconcile(fleet.path(), &failing, &options()).unwrap_err();
    let ReconcileError::Apply { error, done, .. } = &err else {
        panic!("{err}")
    };
    // call 1 records the inventory; 2 and 3 are the Namespace and ConfigMap
    assert_eq!(
        err.to_string(),
        format!("apply failed: Service/apps/app1: injected failure at mutating call 4 (apply)")
    );
    assert!(error.is_retryable());
    assert_eq!(done.entries.len(), 2, "{done}");
    assert_eq!(done.entries[0].subject, "Namespace/apps");
}

// ------------------------------------------------------------ the example

/// The per-object lines a library run of the fleet produces: the oracle for
/// the example's output, with the options the example's defaults stand for
/// (Flux's multi-tenancy lockdown).
fn library_lines(fleet: &Path) -> Vec<String> {
    use driftless::fleet::{FleetContext, FleetOptions, NoEvents, SourceBinding, VirtualClock};
    let source = DirSource::new(fleet);
    let renderer = renderer();
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(std::time::Duration::from_secs(1_700_000_000));
    let options = FleetOptions {
        default_service_account: Some("default".to_string()),
        no_cross_namespace_refs: true,
        ..FleetOptions::default()
    };
    let mut sources = std::collections::BTreeMap::new();
    for id in [
        options.root_source.clone(),
        ObjectId::new(
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "team-a",
            "team-a",
        ),
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
        applier: &cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: driftless::schema::Schema::kubernetes(),
    };
    let report = block_on(ctx.reconcile(&options)).unwrap();
    report
        .results
        .iter()
        .flat_map(|r| {
            r.changes
                .entries
                .iter()
                .map(|e| format!("{} {}", e.subject, e.action))
        })
        .collect()
}

fn object_lines(out: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().collect();
    lines[..lines.len().saturating_sub(1)]
        .iter()
        .filter(|l| !l.starts_with('►') && !l.starts_with("  "))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn the_reconcile_example_as_a_user_runs_it() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];
    let out = run_example("reconcile", &args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let line_re = regex::Regex::new(
        r"^[A-Za-z]+/([a-z0-9.-]+/)?[a-z0-9.-]+ (created|configured|unchanged|deleted|skipped)$",
    )
    .unwrap();
    let objects = object_lines(&text);
    for l in &objects {
        assert!(line_re.is_match(l), "bad object line {l:?} in\n{text}");
    }
    // the same lines, in the same order, as the library reports
    assert_eq!(objects, library_lines(fleet.path()));
    let n = objects.len();
    assert!(n > 20, "{text}");
    // the bootstrapped cluster has the flux-system Namespace; Git adds labels
    assert_eq!(
        objects
            .iter()
            .filter(|l| !l.ends_with(" created"))
            .collect::<Vec<_>>(),
        vec!["Namespace/flux-system configured"]
    );
    assert!(
        text.contains("Namespace/flux-system configured\n  .metadata.labels.app.kubernetes.io/instance: <absent> -> \"flux-system\"\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "{} created, 1 configured, 0 unchanged, 0 deleted, 0 skipped",
            n - 1
        )
    );
    // one ► line per Kustomization, in dependency order, all Ready
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('►')).collect();
    assert_eq!(heads.len(), 5, "{text}");
    assert!(
        heads[0].starts_with("► Kustomization/flux-system/flux-system "),
        "{}",
        heads[0]
    );
    assert!(
        heads
            .iter()
            .all(|h| h.contains("Ready=True ReconciliationSucceeded")),
        "{text}"
    );

    // twice: everything unchanged
    let out = run_example("reconcile", &args);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).lines().last().unwrap(),
        format!("0 created, 0 configured, {n} unchanged, 0 deleted, 0 skipped")
    );

    // a hand edit in the state folder shows as configured, with its field diff, and is reverted
    let file = state.path().join("objects/apps/Deployment/apps/app1.yaml");
    edit_file(&file, "replicas: 5", "replicas: 1");
    let out = run_example("reconcile", &args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Deployment/apps/app1 configured\n  .spec.replicas: 1 -> 5\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "0 created, 1 configured, {} unchanged, 0 deleted, 0 skipped",
            n - 1
        )
    );
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(!after.contains("replicas: 1\n"), "{after}");

    // a manifest deleted from the repository is pruned
    edit_file(
        &fleet.path().join("apps/base/kustomization.yaml"),
        "  - app2\n",
        "",
    );
    let out = run_example("reconcile", &args);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\nDeployment/apps/app2 deleted\n"), "{text}");
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "0 created, 0 configured, {} unchanged, 1 deleted, 0 skipped",
            n - 1
        )
    );
    assert!(!state
        .path()
        .join("objects/apps/Deployment/apps/app2.yaml")
        .exists());

    // --dry-run writes nothing
    std::fs::write(
        fleet.path().join("apps/base/app1/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: apps\n",
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app1/kustomization.yaml"),
        "  - service.yaml\n",
        "  - service.yaml\n  - extra.yaml\n",
    );
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = run_example("reconcile", &dry);
    assert!(out.status.success());
    assert!(stdout(&out).contains("\nConfigMap/apps/extra created\n"));
    assert!(!state
        .path()
        .join("objects/core/ConfigMap/apps/extra.yaml")
        .exists());

    // an error: exit 2 and a clear message on stderr
    let missing = fleet.path().join("no-such-folder");
    let out = run_example(
        "reconcile",
        &["--repo", missing.to_str().unwrap(), "--state", st.as_str()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("no-such-folder"), "{err}");
    // a Kustomization that fails makes the exit code 1, naming it
    std::fs::write(
        fleet.path().join("apps/base/app1/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: apps\n",
    )
    .unwrap();
    let out = run_example("reconcile", &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Kustomization/flux-system/apps not ready: BuildFailed"),
        "{err}"
    );
    assert!(err.contains("extra.yaml"), "{err}");
}

/// An Applier whose writes of one object fail with an error that does not
/// name it (a dropped connection).
struct DropsConnection {
    inner: MemoryCluster,
    on: &'static str,
}

#[async_trait::async_trait]
impl Applier for DropsConnection {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, driftless::apply::ApplyError> {
        self.inner.get(id).await
    }
    async fn apply(
        &self,
        object: &Object,
        options: &driftless::apply::ApplyOptions,
    ) -> Result<Object, driftless::apply::ApplyError> {
        if !options.dry_run && object.name() == self.on {
            return Err(driftless::apply::ApplyError::Unavailable {
                subject: "https://127.0.0.1:6443".into(),
                message: "connection reset by peer".into(),
            });
        }
        self.inner.apply(object, options).await
    }
    async fn delete(
        &self,
        id: &ObjectId,
        options: &driftless::apply::ApplyOptions,
    ) -> Result<(), driftless::apply::ApplyError> {
        self.inner.delete(id, options).await
    }
    async fn read_inventory(
        &self,
        owner: &str,
    ) -> Result<Option<Inventory>, driftless::apply::ApplyError> {
        self.inner.read_inventory(owner).await
    }
    async fn write_inventory(
        &self,
        owner: &str,
        inventory: &Inventory,
    ) -> Result<(), driftless::apply::ApplyError> {
        self.inner.write_inventory(owner, inventory).await
    }
}

#[test]
fn an_applier_error_that_does_not_name_the_object_is_attributed() {
    let fleet = demo_fleet();
    let applier = DropsConnection {
        inner: MemoryCluster::new(),
        on: "app2",
    };
    let err = reconcile(fleet.path(), &applier, &options()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "apply failed: Deployment/apps/app2: https://127.0.0.1:6443: connection reset by peer"
    );
    assert!(err.is_retryable());
    // everything that may exist is owned, so the next run can converge
    let inventory = block_on(applier.inner.read_inventory(OWNER))
        .unwrap()
        .unwrap();
    assert_eq!(
        inventory,
        Inventory::from_objects(rendered(fleet.path()).iter())
    );
    let report = reconcile(fleet.path(), &applier.inner, &options()).unwrap();
    assert_eq!(
        subject_with(&report, Action::Created),
        vec![
            "Deployment/apps/app2",
            "ImagePolicy/flux-system/app1",
            "ImageRepository/flux-system/app1"
        ]
    );
}

/// `examples/reconcile.rs --repo <git URL>` refuses a revision nothing
/// verified, unless `--insecure-skip-verify` is given; with the signer's key
/// in `--allowed-signers` it reconciles.
#[test]
fn reconcile_example_refuses_an_unverified_git_revision() {
    let fleet = demo_fleet();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(fleet.path())
            .output()
            .expect("git must be installed");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "fleet"]);
    let url = format!("file://{}", fleet.path().display());
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_str().unwrap().to_string();

    let tenant = demo_tenant_source(&url);
    let out = run_example("reconcile", &["--repo", &url, "--state", &st, &tenant]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to reconcile unverified revision main@sha1:"),
        "{err}"
    );
    // nothing was applied
    assert!(!state.path().join("objects/apps").exists());

    let out = run_example(
        "reconcile",
        &[
            "--repo",
            &url,
            "--state",
            &st,
            &tenant,
            "--insecure-skip-verify",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Deployment/apps/app1 created"));

    // a signed head passes with the signer's key
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("id");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "t@example.com", "-f"])
        .arg(&private)
        .output()
        .unwrap();
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    let signers = keys.path().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("t@example.com namespaces=\"git\" {public}"),
    )
    .unwrap();
    git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", private.display()),
        "commit",
        "-q",
        "--allow-empty",
        "-S",
        "-m",
        "signed",
    ]);
    let out = run_example(
        "reconcile",
        &[
            "--repo",
            &url,
            "--state",
            &st,
            &tenant,
            "--allowed-signers",
            signers.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 created, 0 configured"),
        "{}",
        stdout(&out)
    );
}

/// The reconcile example refuses a plaintext Secret committed to the fleet,
/// naming the file and the object, and applies nothing of that
/// Kustomization; `--allow-plaintext-secrets <path>` lets it through.
#[test]
fn reconcile_example_refuses_plaintext_secrets() {
    let fleet = demo_fleet();
    std::fs::write(
        fleet.path().join("apps/base/app1/db-secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app1/kustomization.yaml"),
        "  - image-policy.yaml\n",
        "  - image-policy.yaml\n  - db-secret.yaml\n",
    );
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_str().unwrap().to_string();
    let repo = fleet.path().to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let out = run_example("reconcile", &["--repo", &repo, "--state", &st, &tenant]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Kustomization/flux-system/apps not ready: BuildFailed"),
        "{err}"
    );
    assert!(
        err.contains("db-secret.yaml") && err.contains("Secret/apps/db"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !stdout(&out).contains("hunter2"));
    assert!(!state.path().join("objects/core/Secret").exists());
    let out = run_example(
        "reconcile",
        &[
            "--repo",
            &repo,
            "--state",
            &st,
            &tenant,
            "--allow-plaintext-secrets",
            "apps/base/app1/db-secret.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Secret/apps/db created"));
}
