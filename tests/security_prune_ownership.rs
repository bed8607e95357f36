//! Issue 17, C4: prune honours Flux's owner labels.
//!
//! The repro, on a Git repository made with the git CLI and
//! reconciled into the embedded cluster: Kustomization `apps-b` owns
//! `Namespace/data`; `database` (dependsOn `apps-b`) owns
//! `ConfigMap/data/db-config`. A commit moves `ns.yaml` from `b/` to `a/`.
//! Before the fix, one run had `apps-a` configure `Namespace/data`, `apps-b`
//! delete it (and with it the ConfigMap), and `database` fail with
//! `namespaces "data" not found`.
//!
//! As fluxcd/pkg ssa's delete path does, a live object whose
//! `kustomize.toolkit.fluxcd.io/name` and `/namespace` labels name another
//! Kustomization is not deleted; and a Namespace that holds objects of
//! another Kustomization is never deleted, the objects are reported.

#[path = "git_support/mod.rs"]
mod git_support;
mod tenancy_support;

use std::path::PathBuf;

use driftless::apply::MemoryCluster;
use driftless::fleet::{FleetOptions, FleetReport, NAMESPACE_LABEL, NAME_LABEL};
use driftless::plan::Action;
use driftless::source::GitSource;
use tenancy_support::{assert_ready, id, order, reconcile_source, result};

const GOTK_SYNC: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m
  ref:
    branch: main
  url: ssh://git@github.com/organization/flux-infrastructure
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m
  path: ./clusters/production
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
";

fn kustomization(name: &str, path: &str, depends_on: Option<&str>) -> String {
    let deps = depends_on
        .map(|d| format!("  dependsOn:\n    - name: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{deps}"
    )
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: data\n";

fn config_map(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  key: value\n"
    )
}

/// The repository of the repro, at its first commit.
struct Repo {
    scratch: git_support::Scratch,
    path: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let scratch = git_support::Scratch::new();
        let path = scratch.init_repo("fleet");
        let files = [
            (
                "clusters/production/flux-system/gotk-sync.yaml",
                GOTK_SYNC.to_string(),
            ),
            (
                "clusters/production/apps.yaml",
                [
                    kustomization("apps-a", "./a", None),
                    kustomization("apps-b", "./b", None),
                    kustomization("database", "./db", Some("apps-b")),
                ]
                .join("---\n"),
            ),
            ("a/app.yaml", config_map("default", "app-a")),
            ("b/app.yaml", config_map("default", "app-b")),
            ("b/ns.yaml", NAMESPACE.to_string()),
            ("db/db-config.yaml", config_map("data", "db-config")),
        ];
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        scratch.commit(&path, &files, "apps-a, apps-b and database");
        Repo { scratch, path }
    }

    fn git(&self, args: &[&str]) {
        git_support::git(&self.path, &self.scratch.home(), args);
    }

    fn commit(&self, message: &str) {
        self.scratch.commit(&self.path, &[], message);
    }

    /// One fleet run over the repository's `main`, fetched anew.
    fn reconcile(&self, cluster: &MemoryCluster) -> FleetReport {
        let source = GitSource::new(&format!("file://{}", self.path.display())).unwrap();
        reconcile_source(&source, cluster, &FleetOptions::default(), &[])
    }
}

fn data_namespace() -> driftless::ObjectId {
    id("", "Namespace", "", "data")
}

fn db_config() -> driftless::ObjectId {
    id("", "ConfigMap", "data", "db-config")
}

/// The Kustomization the live object's owner labels name.
fn owner(cluster: &MemoryCluster, object: &driftless::ObjectId) -> String {
    let o = cluster
        .object(object)
        .unwrap_or_else(|| panic!("{} is gone", object.subject()));
    format!(
        "{}/{}",
        o.label(NAMESPACE_LABEL).unwrap_or_default(),
        o.label(NAME_LABEL).unwrap_or_default()
    )
}

fn action_of(report: &FleetReport, key: &str, object: &driftless::ObjectId) -> Option<Action> {
    result(report, key)
        .changes
        .entries
        .iter()
        .find(|e| e.id == *object)
        .map(|e| e.action)
}

#[test]
fn moving_a_namespace_to_another_kustomization_keeps_it_and_its_objects() {
    let repo = Repo::new();
    let cluster = MemoryCluster::new();
    let report = repo.reconcile(&cluster);
    assert!(report.all_ready(), "{:?}", order(&report));
    assert_eq!(owner(&cluster, &data_namespace()), "flux-system/apps-b");

    // the commit of the repro: ns.yaml moves from b/ to a/
    repo.git(&["mv", "b/ns.yaml", "a/ns.yaml"]);
    repo.commit("Namespace data moves to apps-a");
    let report = repo.reconcile(&cluster);
    assert_eq!(
        order(&report),
        [
            ("flux-system/flux-system", true, "ReconciliationSucceeded"),
            ("flux-system/apps-a", true, "ReconciliationSucceeded"),
            ("flux-system/apps-b", true, "ReconciliationSucceeded"),
            ("flux-system/database", true, "ReconciliationSucceeded"),
        ]
    );
    // apps-a adopted the Namespace; apps-b left it alone, naming its owner
    assert_eq!(
        action_of(&report, "flux-system/apps-a", &data_namespace()),
        Some(Action::Configured)
    );
    let b = result(&report, "flux-system/apps-b");
    let skipped = b
        .changes
        .entries
        .iter()
        .find(|e| e.id == data_namespace())
        .expect("apps-b reports the Namespace it no longer owns");
    assert_eq!(skipped.action, Action::Skipped);
    assert_eq!(
        skipped.reason.as_deref(),
        Some("owned by Kustomization flux-system/apps-a")
    );
    assert!(!b.inventory.contains(&data_namespace()));
    assert!(result(&report, "flux-system/apps-a")
        .inventory
        .contains(&data_namespace()));
    // the Namespace and the database's ConfigMap are still there
    assert_eq!(owner(&cluster, &data_namespace()), "flux-system/apps-a");
    assert_eq!(owner(&cluster, &db_config()), "flux-system/database");

    // and the next run changes nothing
    let report = repo.reconcile(&cluster);
    assert!(report.all_ready(), "{:?}", order(&report));
    assert!(cluster.object(&db_config()).is_some());
}

#[test]
fn a_namespace_holding_another_kustomizations_objects_is_not_deleted() {
    let repo = Repo::new();
    let cluster = MemoryCluster::new();
    assert!(repo.reconcile(&cluster).all_ready());

    // apps-b drops the Namespace while database still has a ConfigMap in it
    repo.git(&["rm", "-q", "b/ns.yaml"]);
    repo.commit("apps-b no longer declares Namespace data");
    let report = repo.reconcile(&cluster);
    assert!(report.all_ready(), "{:?}", order(&report));
    let b = result(&report, "flux-system/apps-b");
    let kept = b
        .changes
        .entries
        .iter()
        .find(|e| e.id == data_namespace())
        .expect("apps-b reports the Namespace it kept");
    assert_eq!(kept.action, Action::Skipped);
    assert_eq!(
        kept.reason.as_deref(),
        Some("the namespace holds objects of other Kustomizations: ConfigMap/data/db-config (Kustomization flux-system/database)")
    );
    // still owned by apps-b, which prunes it once it holds nothing of others
    assert!(b.inventory.contains(&data_namespace()));
    assert!(cluster.object(&data_namespace()).is_some());
    assert!(cluster.object(&db_config()).is_some());
    assert_ready(&report, "flux-system/database");

    // database moves its ConfigMap out; apps-b runs before it (dependsOn),
    // so the Namespace goes one run later
    let moved = config_map("default", "db-config");
    std::fs::write(repo.path.join("db/db-config.yaml"), moved).unwrap();
    repo.commit("db-config moves to default");
    let report = repo.reconcile(&cluster);
    assert!(report.all_ready(), "{:?}", order(&report));
    assert_eq!(
        action_of(&report, "flux-system/database", &db_config()),
        Some(Action::Deleted)
    );
    assert!(cluster.object(&data_namespace()).is_some());
    let report = repo.reconcile(&cluster);
    assert!(report.all_ready(), "{:?}", order(&report));
    assert_eq!(
        action_of(&report, "flux-system/apps-b", &data_namespace()),
        Some(Action::Deleted)
    );
    assert!(cluster.object(&data_namespace()).is_none());
    assert!(!result(&report, "flux-system/apps-b")
        .inventory
        .contains(&data_namespace()));
}
