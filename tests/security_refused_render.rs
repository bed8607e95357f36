//! Issue 17, C2(b) and H4: the objects of a render that failed or was
//! refused never exist for anyone, not for discovery, policies or later
//! Kustomizations. Before the fix, the failure paths returned the rendered
//! objects and the fleet read them as live: a refused tenant render still
//! created its nested Kustomizations (which then ran), and its refused
//! ClusterPolicy blocked every other tenant.

mod support;
mod tenancy_support;

use driftless::apply::{Applier, MemoryCluster};
use driftless::fleet::FleetOptions;
use support::fixture;
use tenancy_support::*;

/// team-a's render adds its own ClusterRoleBinding (refused by the tenant
/// boundary) next to the nested Kustomization that names no identity.
fn refuse_team_a(repo: &std::path::Path) {
    write(
        repo,
        &[(
            "tenants/team-a/apps/escalate.yaml",
            &std::fs::read_to_string(repo.join("tenants/team-a/nested/escalate.yaml")).unwrap(),
        )],
    );
}

#[test]
fn a_refused_tenant_render_creates_no_kustomization() {
    let repo = fixture("tenancy");
    refuse_team_a(repo.path());
    let cluster = MemoryCluster::new();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    let team_a = result(&report, "team-a/team-a");
    assert!(!team_a.ready);
    assert!(
        team_a.message.contains("policy tenant-boundary"),
        "{}",
        team_a.message
    );
    // the Kustomization it declared was never discovered, so never ran
    assert!(
        report.get("team-a/nested").is_none(),
        "{:?}",
        order(&report)
    );
    assert!(cluster.object(&cluster_admin_binding()).is_none());
    assert!(cluster
        .object(&id(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "team-a",
            "nested"
        ))
        .is_none());
    assert_ready(&report, "team-b/team-b");

    // nor when the nested one is harmless: nothing of a refused render
    // exists
    std::fs::remove_file(repo.path().join("tenants/team-a/nested/escalate.yaml")).unwrap();
    write(
        repo.path(),
        &[(
            "tenants/team-a/nested/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n  namespace: team-a\n",
        )],
    );
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert!(
        report.get("team-a/nested").is_none(),
        "{:?}",
        order(&report)
    );
    assert!(cluster
        .object(&id("", "ConfigMap", "team-a", "nested"))
        .is_none());

    // once team-a's render is accepted, the nested Kustomization exists
    // and runs
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/escalate.yaml")).unwrap();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "team-a/nested");
    assert!(cluster
        .object(&id("", "ConfigMap", "team-a", "nested"))
        .is_some());
}

const DENY_ALL: &str = "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: deny-everything
spec:
  validationFailureAction: Enforce
  rules:
    - name: nothing-passes
      match:
        any:
          - resources:
              kinds: [\"*\"]
      validate:
        message: \"blocked by team-a\"
        pattern:
          metadata:
            labels:
              blocked-by-team-a: \"?*\"
";

#[test]
fn a_refused_cluster_policy_blocks_no_other_tenant() {
    let repo = fixture("tenancy");
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
    write(
        repo.path(),
        &[("tenants/team-a/apps/policy.yaml", DENY_ALL)],
    );
    let cluster = MemoryCluster::new();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    let team_a = result(&report, "team-a/team-a");
    assert!(!team_a.ready);
    assert!(
        team_a.message.contains(
            "/deny-everything: policy tenant-boundary: tenant Kustomization/team-a/team-a may"
        ),
        "{}",
        team_a.message
    );
    // team-b runs after team-a and is not held to team-a's refused policy
    assert_ready(&report, "team-b/team-b");
    assert!(cluster
        .object(&id("", "ConfigMap", "team-b", "settings"))
        .is_some());
}

/// The Kyverno ClusterPolicy CRD, as a cluster with Kyverno has it.
fn kyverno_crd() -> driftless::Object {
    driftless::Object::new(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterpolicies.kyverno.io"},
        "spec": {
            "group": "kyverno.io",
            "names": {"kind": "ClusterPolicy", "plural": "clusterpolicies",
                      "singular": "clusterpolicy", "listKind": "ClusterPolicyList"},
            "scope": "Cluster",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

/// How a render is stopped.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The tenant boundary refuses it (a tenant's ClusterPolicy).
    TenantBoundary,
    /// The cluster refuses the dry-run (a kind it does not know).
    DryRunRefused,
    /// A fault half-way through the apply.
    ApplyFault,
}

/// The class: whatever stops a render (the tenant boundary, the cluster
/// refusing the dry-run, a fault half-way through the apply), and whoever
/// rendered it (a tenant or the platform), its Kustomizations and policies
/// do not exist for the Kustomizations that run after it.
#[test]
fn nothing_of_a_failed_render_exists_for_later_kustomizations() {
    let cases = [
        (Failure::TenantBoundary, false),
        (Failure::DryRunRefused, false),
        (Failure::ApplyFault, false),
        (Failure::DryRunRefused, true),
        (Failure::ApplyFault, true),
    ];
    for (failure, platform) in cases {
        let case = format!("{failure:?}, platform: {platform}");
        let repo = fixture("tenancy");
        std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
        // the failing render: team-a's, or the platform's `flux-system/policies`
        let (dir, ns, key) = if platform {
            write(
                repo.path(),
                &[(
                    "clusters/production/policies.yaml",
                    "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: policies\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./policies\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
                )],
            );
            ("policies", "flux-system", "flux-system/policies")
        } else {
            ("tenants/team-a/apps", "team-a", "team-a/team-a")
        };
        let object = |kind: &str, api: &str, name: &str| {
            format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            )
        };
        // what the render holds: a Kustomization, whose folder holds a
        // ConfigMap, and (but for a tenant that fails otherwise) a
        // ClusterPolicy that would block every object without a label
        let mut files = vec![
            (
                format!("{dir}/spawned.yaml"),
                format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: spawned\n  namespace: {ns}\nspec:\n  interval: 10m\n  path: ./spawned\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n"),
            ),
            ("spawned/cm.yaml".to_string(), object("ConfigMap", "v1", "spawned")),
        ];
        if platform || matches!(failure, Failure::TenantBoundary) {
            files.push((format!("{dir}/policy.yaml"), DENY_ALL.to_string()));
        }
        match failure {
            Failure::TenantBoundary => {}
            Failure::DryRunRefused => files.push((
                format!("{dir}/widget.yaml"),
                object("Widget", "example.com/v1", "w"),
            )),
            Failure::ApplyFault => files.push((
                format!("{dir}/doomed.yaml"),
                object("ConfigMap", "v1", "doomed"),
            )),
        }
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        write(repo.path(), &files);
        let cluster = MemoryCluster::new();
        // the ClusterPolicy kind is known, so only the injected failure
        // stops the platform's render
        futures::executor::block_on(
            cluster.apply(&kyverno_crd(), &driftless::apply::ApplyOptions::default()),
        )
        .unwrap();
        let faulty = FailWritesOf {
            inner: &cluster,
            fail: id("", "ConfigMap", ns, "doomed"),
        };
        let report = reconcile(repo.path(), &faulty, &FleetOptions::default());
        let failed = result(&report, key);
        assert!(!failed.ready, "{case}: {}", failed.message);
        // its Kustomization never ran, its policy blocks nobody
        assert!(
            report.get(&format!("{ns}/spawned")).is_none(),
            "{case}: {:?}",
            order(&report)
        );
        assert!(
            cluster
                .object(&id("", "ConfigMap", ns, "spawned"))
                .is_none(),
            "{case}"
        );
        assert_ready(&report, "flux-system/tenants");
        assert_ready(&report, "team-b/team-b");
    }
}
