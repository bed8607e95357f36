//! Issue 13: a fleet's dry run (`reconcile --dry-run`, `diff`) goes through
//! a copy-on-write overlay of the cluster, so later Kustomizations see what
//! earlier ones would create: a tenant's namespace and RoleBindings, a
//! CRD's kind. The cluster itself is never written.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use driftless::apply::MemoryCluster;
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, NoEvents, SourceBinding, VirtualClock,
};
use driftless::flux::SOURCE_GROUP;
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef};
use driftless::ObjectId;
use futures::executor::block_on;
use support::*;

const START: Duration = Duration::from_secs(1_700_000_000);

/// Every file under `dir` with its bytes (empty when `dir` is absent).
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
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Runs the fleet in `repo` (cluster folder `path`) against `cluster`; the
/// demo tenant's source reads the same folder.
fn run(repo: &Path, path: &str, cluster: &MemoryCluster, dry_run: bool) -> FleetReport {
    let source = DirSource::new(repo);
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let options = FleetOptions {
        cluster_path: path.to_string(),
        dry_run,
        ..FleetOptions::default()
    };
    let mut sources = BTreeMap::new();
    for id in [
        options.root_source.clone(),
        ObjectId::new(SOURCE_GROUP, "GitRepository", "team-a", "team-a"),
    ] {
        let binding = SourceBinding {
            source: &source,
            reference: GitRef::branch("main"),
            verifier: None,
        };
        sources.insert(id, binding);
    }
    let clock = VirtualClock::new(START);
    let ctx = FleetContext {
        sources,
        verifiers: None,
        renderer: &renderer,
        applier: cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    block_on(ctx.reconcile(&options)).unwrap()
}

/// Per Kustomization: Ready, the reason and every change (`subject action`).
fn outline(report: &FleetReport) -> Vec<(String, bool, String, Vec<String>)> {
    report
        .results
        .iter()
        .map(|r| {
            let changes = r
                .changes
                .entries
                .iter()
                .map(|e| format!("{} {}", e.subject, e.action))
                .collect();
            (r.key.clone(), r.ready, r.reason.clone(), changes)
        })
        .collect()
}

/// On a fresh cluster, the dry run of the demo fleet used to fail for the
/// tenants (`namespaces "team-a"` forbidden/not found: the Namespace and
/// the RoleBinding the tenant acts through come from an earlier
/// Kustomization) and for infrastructure (the platform's ServiceAccount is
/// bound by the root). Through the overlay it reports exactly what a real
/// run on a fresh cluster does, and the state folder stays byte-identical.
#[test]
fn the_dry_run_of_a_fleet_on_a_fresh_cluster_reports_what_a_real_run_does() {
    let state = tempfile::tempdir().unwrap();
    let cluster = MemoryCluster::open(state.path()).unwrap();
    let before = files(state.path());
    let rv = cluster.resource_version();
    let dry = run(Path::new(DEMO_FLEET), "clusters/production", &cluster, true);
    assert!(dry.all_ready(), "{:#?}", outline(&dry));
    assert_eq!(files(state.path()), before, "nothing written to the state");
    assert_eq!(cluster.resource_version(), rv);
    assert!(cluster
        .object(&ObjectId::new("", "Namespace", "", "team-a"))
        .is_none());
    let tenant = dry.get("team-a/team-a").expect("the tenant ran");
    assert!(
        tenant.message.starts_with("Dry-run of revision"),
        "{}",
        tenant.message
    );

    let real = run(
        Path::new(DEMO_FLEET),
        "clusters/production",
        &MemoryCluster::new(),
        false,
    );
    assert!(real.all_ready(), "{:#?}", outline(&real));
    assert_eq!(outline(&dry), outline(&real));
    assert!(outline(&dry).iter().any(|(k, _, _, c)| k == "team-a/team-a"
        && c.contains(&"Deployment/team-a/web created".to_string())));
}

/// A CRD and a namespace created by one Kustomization; a custom object of
/// that kind in that namespace applied by a later one.
fn crd_fleet(dir: &Path) {
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let ks = |name: &str, extra: &str| {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./{name}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}"
        )
    };
    write("clusters/c/crds.yaml", &ks("crds", ""));
    write(
        "clusters/c/widgets.yaml",
        &ks("widgets", "  dependsOn:\n    - name: crds\n"),
    );
    write(
        "crds/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
",
    );
    write(
        "widgets/widget.yaml",
        "apiVersion: example.com/v1
kind: Widget
metadata:
  name: blue
  namespace: shop
spec:
  color: blue
",
    );
}

/// A CRD created earlier in the same dry run makes its kind known to later
/// Kustomizations (it used to fail with `no matches for kind "Widget"`).
#[test]
fn a_crd_created_earlier_in_a_dry_run_makes_its_kind_known_to_later_kustomizations() {
    let repo = tempfile::tempdir().unwrap();
    crd_fleet(repo.path());
    let cluster = MemoryCluster::new();
    let rv = cluster.resource_version();
    let dry = run(repo.path(), "clusters/c", &cluster, true);
    assert!(dry.all_ready(), "{:#?}", outline(&dry));
    let widgets = dry.get("flux-system/widgets").expect("widgets ran");
    assert_eq!(
        outline(&dry).iter().find(|o| o.0 == widgets.key).unwrap().3,
        ["Widget/shop/blue created"]
    );
    assert_eq!(cluster.resource_version(), rv, "nothing written");
    assert!(cluster
        .object(&ObjectId::new("example.com", "Widget", "shop", "blue"))
        .is_none());
    let real = run(repo.path(), "clusters/c", &MemoryCluster::new(), false);
    assert_eq!(outline(&dry), outline(&real));
}

/// The examples on a fresh state: `reconcile --dry-run` succeeds (exit 0)
/// and creates no state folder; `diff` on an empty state folder lists what
/// would be created (exit 1) and fails for nothing.
#[test]
fn reconcile_dry_run_and_diff_on_a_fresh_state() {
    let fleet = demo_fleet();
    let repo = fleet.path().to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state");
    let st_s = st.to_str().unwrap().to_string();
    let args = ["--repo", repo.as_str(), "--state", st_s.as_str(), &tenant];

    let out = run_example("reconcile", &[&args[..], &["--dry-run"]].concat());
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert!(o.contains("► Kustomization/team-a/team-a"), "{o}");
    assert!(o.contains("Deployment/team-a/web created"), "{o}");
    assert!(!o.contains("Ready=False"), "{o}");
    assert!(!st.exists(), "a dry run creates no state folder");

    std::fs::create_dir(&st).unwrap();
    let out = run_example("diff", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "differences: {o}{e}");
    for line in [
        "► Namespace/team-a created",
        "► RoleBinding/team-a/team-a-reconciler created",
        "► Deployment/team-a/web created",
        "► ClusterPolicy/require-labels created",
        "► Deployment/apps/app1 created",
    ] {
        assert!(o.contains(line), "{line}: {o}");
    }
    assert!(!e.contains('✗'), "{e}");
    assert_eq!(files(&st), BTreeMap::new(), "diff writes nothing");
}

/// The CI diff of a pull request that adds a tenant: after a real
/// reconcile, a second tenant is added in Git. `diff` and `reconcile
/// --dry-run` show its namespace, RBAC and workload as created (they used
/// to fail on `namespaces "team-b" not found`), and the state is
/// byte-identical.
#[test]
fn the_diff_of_a_change_that_adds_a_tenant() {
    let fleet = demo_fleet();
    let repo = fleet.path().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state");
    let st_s = st.to_str().unwrap().to_string();
    let team_a = demo_tenant_source(&repo);
    let team_b = format!("--local-sources=GitRepository/team-b/team-b={repo}");
    let args = [
        "--repo",
        repo.as_str(),
        "--state",
        st_s.as_str(),
        &team_a,
        &team_b,
    ];
    let out = run_example("reconcile", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let before = files(&st);

    // tenants/team-b: team-a's folder with every name changed
    let from = fleet.path().join("tenants/team-a");
    let to = fleet.path().join("tenants/team-b");
    copy_dir(&from, &to);
    for f in [
        "namespace.yaml",
        "reconciler-sa.yaml",
        "netpol-default-deny.yaml",
        "rbac.yaml",
        "flux.yaml",
        "apps/web.yaml",
    ] {
        let p = to.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("team-a", "team-b")).unwrap();
    }
    edit_file(
        &fleet.path().join("tenants/kustomization.yaml"),
        "  - team-a\n",
        "  - team-a\n  - team-b\n",
    );

    let out = run_example("diff", &args);
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    for line in [
        "► Namespace/team-b created",
        "► RoleBinding/team-b/team-b-reconciler created",
        "► Kustomization/team-b/team-b created",
        "► Deployment/team-b/web created",
    ] {
        assert!(o.contains(line), "{line}: {o}");
    }
    assert!(!o.contains("team-a"), "team-a is unchanged: {o}");
    assert!(!e.contains('✗'), "{e}");

    let out = run_example("reconcile", &[&args[..], &["--dry-run"]].concat());
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert!(o.contains("Deployment/team-b/web created"), "{o}");
    assert_eq!(files(&st), before, "the state is byte-identical");
}
