//! Issue 13: a typo never deletes anything. A file that does not parse
//! fails the run, names the file and writes nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::*;

/// Every file under `dir` with its bytes, for byte-for-byte comparisons of
/// a persisted state folder.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The repro of issue 13: in a copy of the demo fleet, after one good
/// reconcile, the colon after `dependsOn` is dropped in
/// `clusters/production/apps.yaml` (a folder without a kustomization).
/// The next reconcile used to exit 0 and delete the apps Kustomization and
/// its objects. Now it is not Ready (BuildFailed), names the file and the
/// line, and the state folder is byte-identical.
#[test]
fn a_dropped_colon_in_a_generated_folder_fails_the_build_and_deletes_nothing() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];

    let out = run_example("reconcile", &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let before = files(Path::new(&st));
    assert!(before.keys().any(|f| f.contains("Deployment/apps/app1")));

    edit_file(
        &fleet.path().join("clusters/production/apps.yaml"),
        "dependsOn:",
        "dependsOn",
    );
    let out = run_example("reconcile", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("Kustomization/flux-system/flux-system")
            && o.contains("Ready=False BuildFailed: clusters/production/apps.yaml:"),
        "{o}"
    );
    assert!(
        e.contains("clusters/production/apps.yaml:"),
        "the error names the file and the line: {e}"
    );
    assert!(!o.contains(" deleted\n"), "nothing is deleted: {o}");
    assert_eq!(
        files(Path::new(&st)),
        before,
        "the state is byte-identical after a failed build"
    );
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  k: v\n")
}

/// The prune guard in the library: a plan that would delete more than
/// `PlanOptions::max_prune` allows stops before any write, names what it
/// would have deleted and how to allow it; within the limit it prunes.
#[test]
fn the_prune_guard_stops_a_plan_that_deletes_too_much_before_any_write() {
    use driftless::apply::{Applier, MemoryCluster};
    use driftless::pipeline::{ReconcileError, ReconcileOptions, Reconciler};
    use driftless::plan::{Action, MaxPrune, PlanOptions};
    use driftless::render::kustomize::{Kustomize, KustomizeOptions};
    use driftless::schema::Schema;
    use driftless::source::DirSource;
    use driftless::verify::danger::NoVerification;
    use futures::executor::block_on;

    let repo = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c", "d"] {
        std::fs::write(repo.path().join(format!("{n}.yaml")), cm(n)).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let cluster = MemoryCluster::open(state.path()).unwrap();
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let source = DirSource::new(repo.path());
    let reconciler = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier: &cluster,
        schema: Schema::kubernetes(),
    };
    let with = |limit: Option<MaxPrune>| ReconcileOptions {
        path: ".".into(),
        owner: "default/app".into(),
        plan: PlanOptions {
            max_prune: limit,
            ..PlanOptions::default()
        },
        ..ReconcileOptions::default()
    };
    block_on(reconciler.reconcile(&with(Some(MaxPrune::Percent(50))))).unwrap();
    for n in ["b", "c", "d"] {
        std::fs::remove_file(repo.path().join(format!("{n}.yaml"))).unwrap();
    }
    let before = files(state.path());
    for limit in [
        MaxPrune::Percent(50),
        MaxPrune::Percent(74),
        MaxPrune::Count(2),
    ] {
        for dry_run in [false, true] {
            let mut options = with(Some(limit));
            options.dry_run = dry_run;
            let err = block_on(reconciler.reconcile(&options)).unwrap_err();
            let ReconcileError::PruneLimit(e) = &err else {
                panic!("{limit}: {err}");
            };
            assert_eq!(
                e.would_delete,
                [
                    "ConfigMap/default/d",
                    "ConfigMap/default/c",
                    "ConfigMap/default/b"
                ]
            );
            assert_eq!(e.inventory, 4);
            let m = err.to_string();
            assert!(m.contains("would delete 3 of 4 inventory entries"), "{m}");
            assert!(m.contains("--max-prune 3"), "{m}");
            assert!(m.contains("--max-prune 100%"), "{m}");
            assert_eq!(files(state.path()), before, "{limit}: nothing written");
        }
    }
    // within the limit (75% of 4 is 3), it prunes
    let report = block_on(reconciler.reconcile(&with(Some(MaxPrune::Percent(75))))).unwrap();
    assert_eq!(report.changes.count(Action::Deleted), 3);
    let inv = block_on(cluster.read_inventory("default/app"))
        .unwrap()
        .unwrap();
    assert_eq!(inv.entries.len(), 1);
    // the library default (no limit) prunes anything, as Flux does
    std::fs::remove_file(repo.path().join("a.yaml")).unwrap();
    std::fs::write(repo.path().join("e.yaml"), cm("e")).unwrap();
    let report = block_on(reconciler.reconcile(&with(None))).unwrap();
    assert_eq!(report.changes.count(Action::Deleted), 1);
}

/// The examples' prune guard covers the garbage collection of a deleted
/// Kustomization's inventory (Flux's finalizer): removing
/// `clusters/production/apps.yaml` deletes one of the root's entries (well
/// under half), but with it the 7 objects of the apps Kustomization. The default 50%
/// stops it before any write; `--max-prune 100%` allows it.
#[test]
fn the_reconcile_example_guards_prunes_through_garbage_collection() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];
    let out = run_example("reconcile", &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let before = files(Path::new(&st));

    std::fs::remove_file(fleet.path().join("clusters/production/apps.yaml")).unwrap();
    let out = run_example("reconcile", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("Kustomization/flux-system/flux-system")
            && o.contains(
                "Ready=False PruneLimitExceeded: prune limit exceeded: the plan would delete 8 of "
            )
            && o.contains("inventory entries, more than the limit 50% allows"),
        "{o}"
    );
    for subject in [
        "Kustomization/flux-system/apps",
        "Deployment/apps/app1",
        "Namespace/apps",
    ] {
        assert!(o.contains(subject), "{subject} is listed: {o}");
    }
    assert!(o.contains("--max-prune 100%"), "{o}");
    assert_eq!(files(Path::new(&st)), before, "nothing written");

    let mut allow = args.to_vec();
    allow.extend(["--max-prune", "100%"]);
    let out = run_example("reconcile", &allow);
    let o = stdout(&out);
    assert!(out.status.success(), "{o}{}", stderr(&out));
    assert!(o.contains("Deployment/apps/app1 deleted"), "{o}");
    assert!(o.contains("Kustomization/flux-system/apps deleted"), "{o}");

    // a limit that does not parse is a usage error
    let mut bad = args.to_vec();
    bad.extend(["--max-prune", "120%"]);
    let out = run_example("reconcile", &bad);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid prune limit"),
        "{}",
        stderr(&out)
    );
}

fn run_fleet(
    repo: &Path,
    applier: &dyn driftless::apply::Applier,
    options: &driftless::fleet::FleetOptions,
) -> driftless::fleet::FleetReport {
    use driftless::fleet::{FleetContext, NoEvents, SourceBinding, VirtualClock};
    use driftless::render::kustomize::{Kustomize, KustomizeOptions};
    use driftless::schema::Schema;
    use driftless::source::{DirSource, GitRef};
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let source = DirSource::new(repo);
    let clock = VirtualClock::new(std::time::Duration::from_secs(1_700_000_000));
    let mut sources = std::collections::BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source: &source,
            reference: GitRef::branch("main"),
            verifier: None,
        },
    );
    let ctx = FleetContext {
        sources,
        verifiers: None,
        renderer: &renderer,
        applier,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    futures::executor::block_on(ctx.reconcile(options)).unwrap()
}

/// Flux's finalizer: a Kustomization removed from Git is deleted only once
/// its inventory is garbage-collected. A fault in the middle of that is a
/// PruneFailed (it was only logged), the Kustomization object and the rest
/// of its inventory stay, and the next run finishes the job.
#[test]
fn a_garbage_collection_that_fails_keeps_the_kustomization_and_converges() {
    use driftless::apply::{FailingApplier, MemoryCluster};
    use driftless::fleet::FleetOptions;
    use driftless::ObjectId;

    let repo = fixture("seed");
    let state = tempfile::tempdir().unwrap();
    let options = FleetOptions::default();
    let first = run_fleet(
        repo.path(),
        &MemoryCluster::open(state.path()).unwrap(),
        &options,
    );
    assert!(first.all_ready());
    std::fs::remove_file(repo.path().join("clusters/production/tenants.yaml")).unwrap();
    let tenants = ObjectId::new(
        "kustomize.toolkit.fluxcd.io",
        "Kustomization",
        "flux-system",
        "tenants",
    );
    let web = ObjectId::new("apps", "Deployment", "team-a", "web");
    let mut seen = 0;
    for n in 1..40 {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(state.path(), copy.path());
        let failing = FailingApplier::new(MemoryCluster::open(copy.path()).unwrap(), n);
        let report = run_fleet(repo.path(), &failing, &options);
        let root = report.get("flux-system/flux-system").unwrap();
        if !root
            .message
            .starts_with("garbage collection of Kustomization/")
        {
            if seen > 0 {
                // past the garbage collection (it runs before the root's own writes)
                break;
            }
            continue;
        }
        seen += 1;
        assert_eq!(root.reason, "PruneFailed", "{n}: {}", root.message);
        assert!(!root.ready);
        // one writer at a time: the faulty run's cluster lets go first
        drop(failing);
        let cluster = MemoryCluster::open(copy.path()).unwrap();
        assert!(
            cluster.object(&tenants).is_some(),
            "{n}: the Kustomization stays until its objects are gone"
        );
        // the next run finishes the garbage collection
        let again = run_fleet(repo.path(), &cluster, &options);
        assert!(again.all_ready(), "{n}: {:?}", again.results);
        assert!(cluster.object(&tenants).is_none(), "{n}");
        assert!(cluster.object(&web).is_none(), "{n}");
    }
    assert!(seen >= 3, "faults hit the garbage collection {seen} times");
}

/// Found by tests/mutation.rs: a typo in the kind of a Kustomization in the
/// cluster folder (`Kstomization`) made the root's plan delete the
/// Kustomization `tenants`, whose inventory was garbage-collected (the
/// tenant's namespace, RBAC and workload deleted) before the root's own
/// objects were dry-run, and the dry-run then refused the unknown kind.
/// Now the dry-run comes first: the root fails (`no matches for kind`) and
/// nothing is deleted.
#[test]
fn an_unknown_kind_in_the_cluster_folder_deletes_nothing() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];
    let out = run_example("reconcile", &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let before = files(Path::new(&st));
    assert!(before.keys().any(|f| f.contains("Deployment/team-a/web")));

    edit_file(
        &fleet.path().join("clusters/production/tenants.yaml"),
        "kind: Kustomization",
        "kind: Kstomization",
    );
    // the prune guard would stop this one; without it, the dry-run must
    let out = run_example("reconcile", &[&args[..], &["--max-prune", "100%"]].concat());
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    assert!(
        o.contains("Kustomization/flux-system/flux-system")
            && o.contains("no matches for kind \"Kstomization\""),
        "{o}"
    );
    assert!(!o.contains(" deleted\n"), "nothing is deleted: {o}");
    assert_eq!(
        files(Path::new(&st)),
        before,
        "the state is byte-identical after a refused dry-run"
    );
}

/// Found by tests/mutation.rs: one character inserted in the root
/// Kustomization's name (`gotk-sync.yaml`: `f0lux-system`) made the root
/// prune its own Kustomization object, whose inventory (the root's, that
/// is, the whole fleet) was then garbage-collected: every object deleted.
/// A Kustomization never garbage-collects itself: the renamed object is
/// applied, the old one deleted, and nothing else.
#[test]
fn renaming_the_root_kustomization_does_not_collect_the_fleet() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = [
        "--repo",
        repo.as_str(),
        "--state",
        st.as_str(),
        &tenant,
        "--max-prune",
        "100%",
    ];
    let out = run_example("reconcile", &args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    edit_file(
        &fleet
            .path()
            .join("clusters/production/flux-system/gotk-sync.yaml"),
        "kind: Kustomization\nmetadata:\n  name: flux-system",
        "kind: Kustomization\nmetadata:\n  name: f0lux-system",
    );
    let out = run_example("reconcile", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    let deleted: Vec<&str> = o.lines().filter(|l| l.ends_with(" deleted")).collect();
    assert_eq!(
        deleted,
        ["Kustomization/flux-system/flux-system deleted"],
        "{o}{e}"
    );
    let after = files(Path::new(&st));
    for kept in ["Deployment/apps/app1", "Deployment/team-a/web"] {
        assert!(after.keys().any(|f| f.contains(kept)), "{kept}: {o}");
    }
}
