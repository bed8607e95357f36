//! Issue 17, H10: inventory ids round-trip every valid name, and the
//! planner never drops an inventory entry silently.
//!
//! RBAC names are path segments: they may hold `_` and `:`. Before the
//! fix, `ObjectId` parsing refused inventory ids whose name held `_`, and
//! the planner dropped them (`filter_map(… .ok())`): a ClusterRole named
//! `team_reader` was recorded, and never pruned once it left Git.
//! Ids are Flux's (`<namespace>_<name>_<group>_<Kind>`, a `:` in the name
//! written `__`, as fluxcd/cli-utils writes it) for every name Flux can
//! record; a `_` in a name, which Flux's format cannot hold, is `%5F`.

use std::path::Path;

use driftless::apply::{Applier, MemoryCluster};
use driftless::pipeline::{ReconcileOptions, Reconciler};
use driftless::plan::{Action, Inventory, InventoryEntry};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::source::DirSource;
use driftless::verify::danger::NoVerification;
use driftless::ObjectId;
use futures::executor::block_on;
use proptest::prelude::*;

const RBAC: &str = "rbac.authorization.k8s.io";
const OWNER: &str = "flux-system/rbac";

fn reconcile(
    folder: &Path,
    cluster: &MemoryCluster,
) -> Result<driftless::pipeline::ReconcileReport, driftless::pipeline::ReconcileError> {
    let source = DirSource::new(folder);
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier: cluster,
        schema: cluster.schema(),
    };
    block_on(r.reconcile(&ReconcileOptions {
        owner: OWNER.to_string(),
        ..ReconcileOptions::default()
    }))
}

fn cluster_role(name: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: '{name}'\nrules:\n  - apiGroups: ['']\n    resources: [configmaps]\n    verbs: [get]\n"
    )
}

fn role_binding(name: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: '{name}'\n  namespace: default\nsubjects:\n  - kind: ServiceAccount\n    name: default\n    namespace: default\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: 'team_reader'\n"
    )
}

/// The RBAC names of the test: `_`, `:`, both, a doubled `_` that Flux
/// would read as `:`, and `_:` / `:_`, which Flux's format cannot tell
/// apart.
const NAMES: &[&str] = &["team_reader", "a__b", "x_:y", "x:_y"];

#[test]
fn rbac_names_with_underscores_and_colons_are_recorded_and_pruned() {
    let folder = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, String)> = NAMES
        .iter()
        .map(|n| (format!("role-{}.yaml", files_name(n)), cluster_role(n)))
        .collect();
    files.push(("binding.yaml".into(), role_binding("ci:deploy_bot")));
    for (p, text) in &files {
        std::fs::write(folder.path().join(p), text).unwrap();
    }
    let cluster = MemoryCluster::new();
    let report = reconcile(folder.path(), &cluster).unwrap();
    assert_eq!(report.changes.count(Action::Created), NAMES.len() + 1);

    // recorded as Flux records them where Flux can: `:` as `__`
    let inventory = block_on(cluster.read_inventory(OWNER)).unwrap().unwrap();
    let recorded: Vec<&str> = inventory.entries.iter().map(|e| e.id.as_str()).collect();
    assert!(
        recorded.contains(&"default_ci__deploy%5Fbot_rbac.authorization.k8s.io_RoleBinding"),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&"_team%5Freader_rbac.authorization.k8s.io_ClusterRole"),
        "{recorded:?}"
    );
    // and every entry reads back as the object it records
    let ids = inventory.ids().unwrap();
    for n in NAMES {
        assert!(
            ids.contains(&ObjectId::new(RBAC, "ClusterRole", "", n)),
            "{n}"
        );
    }

    // everything leaves Git: everything is pruned
    for (p, _) in &files {
        std::fs::remove_file(folder.path().join(p)).unwrap();
    }
    std::fs::write(
        folder.path().join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: left\n  namespace: default\n",
    )
    .unwrap();
    let report = reconcile(folder.path(), &cluster).unwrap();
    let mut deleted: Vec<String> = report
        .changes
        .entries
        .iter()
        .filter(|e| e.action == Action::Deleted)
        .map(|e| e.subject.clone())
        .collect();
    deleted.sort();
    let mut want: Vec<String> = NAMES.iter().map(|n| format!("ClusterRole/{n}")).collect();
    want.push("RoleBinding/default/ci:deploy_bot".into());
    want.sort();
    assert_eq!(deleted, want);
    for n in NAMES {
        assert!(cluster
            .object(&ObjectId::new(RBAC, "ClusterRole", "", n))
            .is_none());
    }
}

/// A file name for an RBAC name (`:` is not portable in file names).
fn files_name(name: &str) -> String {
    name.replace(':', "-colon-")
}

#[test]
fn an_inventory_entry_that_is_not_an_id_fails_the_run_instead_of_being_dropped() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("role.yaml"), cluster_role("reader")).unwrap();
    let cluster = MemoryCluster::new();
    reconcile(folder.path(), &cluster).unwrap();
    let mut inventory = block_on(cluster.read_inventory(OWNER)).unwrap().unwrap();
    // a raw `_` in a name (what Flux writes for `team_reader`, and cannot
    // read back either)
    inventory.entries.push(InventoryEntry {
        id: "_team_reader_rbac.authorization.k8s.io_ClusterRole".into(),
        v: "v1".into(),
    });
    inventory.entries.sort();
    block_on(cluster.write_inventory(OWNER, &inventory)).unwrap();
    let rv = cluster.resource_version();
    std::fs::remove_file(folder.path().join("role.yaml")).unwrap();
    std::fs::write(folder.path().join("role.yaml"), cluster_role("other")).unwrap();
    let err = reconcile(folder.path(), &cluster).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading the cluster failed: inventory flux-system/rbac: invalid object id \"_team_reader_rbac.authorization.k8s.io_ClusterRole\": expected <namespace>_<name>_<group>_<Kind>"
    );
    // nothing was written: `reader` is neither pruned nor replaced
    assert_eq!(cluster.resource_version(), rv);
    assert!(cluster
        .object(&ObjectId::new(RBAC, "ClusterRole", "", "reader"))
        .is_some());

    // the planner on its own refuses it too, rather than skipping it
    let previous = Inventory {
        entries: vec![InventoryEntry {
            id: "no-separators".into(),
            v: "v1".into(),
        }],
    };
    let err = driftless::plan::plan(
        &[],
        &Default::default(),
        &previous,
        &driftless::schema::Schema::kubernetes(),
        &driftless::plan::PlanOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the inventory holds \"no-separators\", which is not an object id: expected <namespace>_<name>_<group>_<Kind>"
    );
}

/// DNS-1123 labels (namespaces) and subdomains (most names, groups).
fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?"
}

fn dns_subdomain() -> impl Strategy<Value = String> {
    proptest::collection::vec(dns_label(), 1..4).prop_map(|l| l.join("."))
}

/// RBAC names: path segments (anything but `/` and `%`, not `.` or `..`),
/// here drawn from the characters that matter to the id format.
fn rbac_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_:.@ -]{1,20}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn kind() -> impl Strategy<Value = String> {
    "[A-Z][a-zA-Z0-9]{0,12}"
}

proptest! {
    /// Every valid id reads back as itself; for names without `_`, the id
    /// is exactly Flux's.
    #[test]
    fn valid_ids_round_trip_in_flux_format(
        namespace in prop_oneof![Just(String::new()), dns_label()],
        rbac in any::<bool>(),
        dns_name in dns_subdomain(),
        rbac_name in rbac_name(),
        rbac_kind in prop::sample::select(vec!["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]),
        group in prop_oneof![Just(String::new()), dns_subdomain()],
        kind in kind(),
    ) {
        let id = if rbac {
            ObjectId::new(RBAC, rbac_kind, &namespace, &rbac_name)
        } else {
            ObjectId::new(&group, &kind, &namespace, &dns_name)
        };
        let text = id.to_string();
        prop_assert_eq!(text.parse::<ObjectId>().unwrap(), id.clone());
        if !id.name.contains('_') {
            let flux = format!(
                "{}_{}_{}_{}",
                id.namespace,
                id.name.replace(':', "__"),
                id.group,
                id.kind
            );
            prop_assert_eq!(text, flux);
        }
    }

    /// Any four strings (a name and a kind not empty) round-trip, and two
    /// different ids never share an inventory id.
    #[test]
    fn every_id_round_trips_and_ids_are_distinct(
        a in proptest::collection::vec("[a-z_:%5F.]{0,6}", 4),
        b in proptest::collection::vec("[a-z_:%5F.]{0,6}", 4),
    ) {
        let make = |p: &[String]| {
            ObjectId::new(&p[2], &format!("K{}", p[3]), &p[0], &format!("n{}", p[1]))
        };
        let (x, y) = (make(&a), make(&b));
        prop_assert_eq!(x.to_string().parse::<ObjectId>().unwrap(), x.clone());
        prop_assert_eq!(x == y, x.to_string() == y.to_string());
    }
}
