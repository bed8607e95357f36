//! Issue 17, C2(a) and L1: a tenant cannot reach more than its own rights
//! through the Kustomizations it creates, nor through `targetNamespace`.
//!
//! The fixture `tests/fixtures/fleet/tenancy` is the seed article's
//! tenants layout; team-a's repository folder declares a Kustomization
//! `team-a/nested` that names no `serviceAccountName` and holds a
//! ClusterRoleBinding of team-a's ServiceAccount to `cluster-admin`. Before
//! the fix it ran with the reconciler's full identity and the binding was
//! applied.

mod support;
mod tenancy_support;

use driftless::apply::MemoryCluster;
use driftless::fleet::FleetOptions;
use driftless::ObjectId;
use support::{edit_file, fixture, run_example, stderr, stdout};
use tenancy_support::*;

const NESTED: &str = "team-a/nested";

#[test]
fn a_kustomization_created_by_a_tenant_acts_as_the_tenant() {
    let repo = fixture("tenancy");
    let cluster = MemoryCluster::new();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    for key in ["flux-system/tenants", "team-a/team-a", "team-b/team-b"] {
        assert_ready(&report, key);
    }
    // the nested Kustomization ran, as a tenant: its ClusterRoleBinding is
    // refused before any API call, and nothing of it was written
    let nested = result(&report, NESTED);
    assert!(!nested.ready);
    assert!(
        nested.message.contains(
            "ClusterRoleBinding/team-a-cluster-admin: policy tenant-boundary: tenant Kustomization/team-a/nested may not create the cluster-scoped kind ClusterRoleBinding"
        ),
        "{}",
        nested.message
    );
    assert!(cluster.object(&cluster_admin_binding()).is_none());

    // it impersonates team-a's ServiceAccount, not the reconciler: with
    // team-a's Role narrowed to Deployments, a ConfigMap in its own
    // namespace is refused by the cluster's RBAC, naming the identity
    std::fs::remove_file(repo.path().join("tenants/team-a/nested/escalate.yaml")).unwrap();
    write(
        repo.path(),
        &[(
            "tenants/team-a/nested/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n  namespace: team-a\n",
        )],
    );
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, NESTED);
    let cm = id("", "ConfigMap", "team-a", "nested");
    assert!(cluster.object(&cm).is_some());
    edit_file(
        &repo.path().join("tenants/team-a/rbac.yaml"),
        "  - apiGroups: [\"*\"]\n    resources: [\"*\"]\n    verbs: [\"*\"]\n",
        "  - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"*\"]\n",
    );
    edit_file(
        &repo.path().join("tenants/team-a/nested/cm.yaml"),
        "name: nested",
        "name: nested-2",
    );
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    let nested = result(&report, NESTED);
    assert!(!nested.ready, "{}", nested.message);
    assert!(
        nested
            .message
            .contains("User \"system:serviceaccount:team-a:team-a-reconciler\" cannot"),
        "{}",
        nested.message
    );
    assert!(cluster
        .object(&id("", "ConfigMap", "team-a", "nested-2"))
        .is_none());
}

/// A chain of Kustomizations, each created by the one before and naming no
/// identity, never climbs back to the reconciler's: at every depth the
/// ClusterRoleBinding is refused.
#[test]
fn nested_kustomizations_inherit_the_tenant_at_every_depth() {
    for depth in 1..=4 {
        let repo = fixture("tenancy");
        // team-a/apps -> nested-1 -> ... -> nested-<depth>, whose folder
        // holds the ClusterRoleBinding
        std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
        for level in 1..=depth {
            let here = if level == 1 {
                "tenants/team-a/apps".to_string()
            } else {
                format!("tenants/team-a/level-{}", level - 1)
            };
            let target = if level == depth {
                "./tenants/team-a/nested".to_string()
            } else {
                format!("./tenants/team-a/level-{level}")
            };
            write(
                repo.path(),
                &[(
                    &format!("{here}/nested-{level}.yaml"),
                    &format!(
                        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: nested-{level}\n  namespace: team-a\nspec:\n  interval: 10m\n  path: {target}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n"
                    ),
                )],
            );
        }
        let cluster = MemoryCluster::new();
        let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
        for level in 1..depth {
            assert_ready(&report, &format!("team-a/nested-{level}"));
        }
        let last = result(&report, &format!("team-a/nested-{depth}"));
        assert!(!last.ready, "depth {depth}: {}", last.message);
        assert!(
            last.message.contains("policy tenant-boundary"),
            "{}",
            last.message
        );
        assert!(
            cluster.object(&cluster_admin_binding()).is_none(),
            "depth {depth}"
        );
    }
}

/// L1: the tenant's namespace is the Kustomization's own, never the
/// tenant-writable `targetNamespace`. Even where team-a's ServiceAccount
/// was granted rights in team-b, the boundary keeps team-a in team-a.
#[test]
fn target_namespace_does_not_move_the_tenant_boundary() {
    let repo = fixture("tenancy");
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
    let cluster = MemoryCluster::new();
    assert_ready(
        &reconcile(repo.path(), &cluster, &FleetOptions::default()),
        "team-a/team-a",
    );
    // a platform mistake: team-a's ServiceAccount may also write in team-b
    write(
        repo.path(),
        &[(
            "tenants/team-b/team-a-access.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: team-a-access\n  namespace: team-b\nsubjects:\n  - kind: ServiceAccount\n    name: team-a-reconciler\n    namespace: team-a\nroleRef:\n  kind: Role\n  name: team-b-namespace-admin\n  apiGroup: rbac.authorization.k8s.io\n",
        )],
    );
    edit_file(
        &repo.path().join("tenants/team-b/kustomization.yaml"),
        "  - flux.yaml\n",
        "  - flux.yaml\n  - team-a-access.yaml\n",
    );
    edit_file(
        &repo.path().join("tenants/team-a/flux.yaml"),
        "  serviceAccountName: team-a-reconciler\n",
        "  serviceAccountName: team-a-reconciler\n  targetNamespace: team-b\n",
    );
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "flux-system/tenants");
    let tenant = result(&report, "team-a/team-a");
    assert!(!tenant.ready);
    assert!(
        tenant.message.contains(
            "ConfigMap/team-b/settings: policy tenant-boundary: tenant Kustomization/team-a/team-a may only create objects in namespace \"team-a\", not \"team-b\""
        ),
        "{}",
        tenant.message
    );
    // nothing of team-a's went to team-b
    assert!(tenant.changes.entries.is_empty(), "{:?}", tenant.changes);
}

/// Flux's `--default-service-account`: a Kustomization that names no
/// identity gets the default ServiceAccount of its namespace, not the
/// reconciler's; without the option the library keeps Flux's default.
#[test]
fn the_default_service_account_replaces_a_missing_one() {
    let repo = fixture("tenancy");
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
    // the platform forgot team-b's identity
    edit_file(
        &repo.path().join("tenants/team-b/flux.yaml"),
        "  serviceAccountName: team-b-reconciler\n",
        "",
    );
    write(
        repo.path(),
        &[(
            "tenants/team-b/apps/escalate.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: team-b-cluster-admin\nsubjects:\n  - kind: ServiceAccount\n    name: default\n    namespace: team-b\nroleRef:\n  kind: ClusterRole\n  name: cluster-admin\n  apiGroup: rbac.authorization.k8s.io\n",
        )],
    );
    let crb = id(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "",
        "team-b-cluster-admin",
    );
    // the platform's Kustomization names the controller's identity, as
    // Flux's lockdown has it do
    edit_file(
        &repo.path().join("clusters/production/tenants.yaml"),
        "  prune: true\n",
        "  prune: true\n  serviceAccountName: kustomize-controller\n",
    );
    let locked = FleetOptions {
        default_service_account: Some("default".to_string()),
        ..FleetOptions::default()
    };
    let cluster = MemoryCluster::new();
    let report = reconcile(repo.path(), &cluster, &locked);
    // the platform's Kustomization names its identity and is unaffected
    assert_ready(&report, "flux-system/tenants");
    assert_ready(&report, "team-a/team-a");
    let team_b = result(&report, "team-b/team-b");
    assert!(!team_b.ready);
    assert!(
        team_b.message.contains(
            "ClusterRoleBinding/team-b-cluster-admin: policy tenant-boundary: tenant Kustomization/team-b/team-b"
        ),
        "{}",
        team_b.message
    );
    assert!(cluster.object(&crb).is_none());
    // its namespaced objects are refused by the cluster: team-b's default
    // ServiceAccount has no rights
    std::fs::remove_file(repo.path().join("tenants/team-b/apps/escalate.yaml")).unwrap();
    let report = reconcile(repo.path(), &cluster, &locked);
    let team_b = result(&report, "team-b/team-b");
    assert!(!team_b.ready);
    assert!(
        team_b
            .message
            .contains("User \"system:serviceaccount:team-b:default\" cannot"),
        "{}",
        team_b.message
    );
    // a Kustomization of the platform's namespace that names no identity
    // gets flux-system's default ServiceAccount too
    edit_file(
        &repo.path().join("clusters/production/tenants.yaml"),
        "  serviceAccountName: kustomize-controller\n",
        "",
    );
    let fresh = MemoryCluster::new();
    let report = reconcile(repo.path(), &fresh, &locked);
    let tenants = result(&report, "flux-system/tenants");
    assert!(!tenants.ready);
    assert!(
        tenants
            .message
            .contains("User \"system:serviceaccount:flux-system:default\" cannot"),
        "{}",
        tenants.message
    );

    // without the option (Flux's default), a Kustomization the platform
    // creates without an identity acts as the platform's
    let report = reconcile(repo.path(), &fresh, &FleetOptions::default());
    assert_ready(&report, "team-b/team-b");
}

/// Flux's `--no-cross-namespace-refs`: a Kustomization may only build from
/// a source of its own namespace (reason AccessDenied, Flux's message);
/// `dependsOn` may still name another namespace, as in Flux.
#[test]
fn cross_namespace_sources_need_the_hosts_permission() {
    let repo = fixture("tenancy");
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
    // team-b has a GitRepository of its own, and waits for the platform
    write(
        repo.path(),
        &[(
            "tenants/team-b/source.yaml",
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: team-b\n  namespace: team-b\nspec:\n  interval: 1m\n  url: ssh://git@github.com/organization/team-b\n  ref:\n    branch: main\n",
        )],
    );
    edit_file(
        &repo.path().join("tenants/team-b/kustomization.yaml"),
        "  - flux.yaml\n",
        "  - flux.yaml\n  - source.yaml\n",
    );
    edit_file(
        &repo.path().join("tenants/team-b/flux.yaml"),
        "    name: flux-system\n    namespace: flux-system\n",
        "    name: team-b\n  dependsOn:\n    - name: tenants\n      namespace: flux-system\n",
    );
    let team_b_source = ObjectId::new(
        "source.toolkit.fluxcd.io",
        "GitRepository",
        "team-b",
        "team-b",
    );
    let options = FleetOptions {
        no_cross_namespace_refs: true,
        ..FleetOptions::default()
    };
    let cluster = MemoryCluster::new();
    let report = reconcile_with(
        repo.path(),
        &cluster,
        &options,
        std::slice::from_ref(&team_b_source),
    );
    assert_ready(&report, "flux-system/tenants");
    assert_ready(&report, "team-b/team-b");
    let team_a = result(&report, "team-a/team-a");
    assert!(!team_a.ready);
    assert_eq!(team_a.reason, "AccessDenied");
    assert_eq!(
        team_a.message,
        "can't access 'GitRepository/flux-system/flux-system', cross-namespace references have been blocked"
    );
    assert!(cluster
        .object(&id("", "ConfigMap", "team-a", "settings"))
        .is_none());

    // the host permits them (Flux's default)
    let report = reconcile_with(
        repo.path(),
        &cluster,
        &FleetOptions::default(),
        &[team_b_source],
    );
    assert_ready(&report, "team-a/team-a");
}

/// The examples run with both lockdowns on unless told otherwise.
#[test]
fn the_examples_default_to_the_lockdown() {
    let repo = fixture("tenancy");
    let state = tempfile::tempdir().unwrap();
    let path = repo.path().to_str().unwrap().to_string();
    let st = state.path().to_str().unwrap().to_string();
    let base = ["--repo", path.as_str(), "--state", st.as_str()];
    // the platform's Kustomization names no identity: flux-system's
    // default ServiceAccount has no rights
    let out = run_example("reconcile", &base);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Kustomization/flux-system/tenants not ready")
            && err.contains("User \"system:serviceaccount:flux-system:default\" cannot"),
        "{err}"
    );
    // it names the controller's: the tenants may not build from the
    // platform's source
    edit_file(
        &repo.path().join("clusters/production/tenants.yaml"),
        "  prune: true\n",
        "  prune: true\n  serviceAccountName: kustomize-controller\n",
    );
    let out = run_example("reconcile", &base);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Kustomization/team-a/team-a not ready: AccessDenied: can't access 'GitRepository/flux-system/flux-system', cross-namespace references have been blocked"),
        "{err}"
    );
    let out = run_example("diff", &base);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cross-namespace references have been blocked"),
        "{}",
        stderr(&out)
    );
    // both turned off: the tenant runs, and its nested Kustomization still
    // acts as the tenant
    let mut open = base.to_vec();
    open.extend([
        "--no-cross-namespace-refs=false",
        "--default-service-account=",
    ]);
    let out = run_example("reconcile", &open);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("► Kustomization/team-a/team-a ") && text.contains("Ready=True"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("Kustomization/team-a/nested not ready: ReconciliationFailed")
            && err.contains("policy tenant-boundary"),
        "{err}"
    );
    let cluster = MemoryCluster::open(state.path()).unwrap();
    assert!(cluster
        .object(&id("", "ConfigMap", "team-a", "settings"))
        .is_some());
    assert!(cluster.object(&cluster_admin_binding()).is_none());
}
