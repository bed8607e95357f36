//! Issue 17, H3: Kyverno policies already live in the cluster are enforced
//! for every Kustomization: the root, and those that run before the
//! Kustomization that renders the policies.
//!
//! Before the fix, the fleet's Kyverno gate knew only the policies
//! rendered earlier in the same pass: the root (which runs first) and
//! `flux-system/apps` (which runs before `flux-system/policies`) applied
//! objects that a ClusterPolicy in force in the cluster refuses.

mod tenancy_support;

use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::FleetOptions;
use driftless::Object;
use futures::executor::block_on;
use tenancy_support::*;

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

fn kustomization(name: &str, path: &str) -> String {
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
    )
}

const REQUIRE_TEAM: &str = "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-team
spec:
  validationFailureAction: Enforce
  rules:
    - name: team-label
      match:
        any:
          - resources:
              kinds: [ConfigMap]
      validate:
        message: \"a ConfigMap needs a team label\"
        pattern:
          metadata:
            labels:
              team: \"?*\"
";

fn config_map(name: &str, team: bool) -> String {
    let labels = if team { "  labels:\n    team: a\n" } else { "" };
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n{labels}")
}

/// The Kyverno ClusterPolicy CRD, as a cluster with Kyverno has it.
fn kyverno_crd() -> Object {
    Object::new(serde_json::json!({
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

/// The root renders a ConfigMap and two Kustomizations: `apps` (a
/// ConfigMap) and `policies` (the ClusterPolicy), which runs after `apps`.
fn repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        &[
            ("clusters/production/flux-system/gotk-sync.yaml", GOTK_SYNC),
            (
                "clusters/production/kustomizations.yaml",
                &[
                    kustomization("apps", "./apps"),
                    kustomization("policies", "./policies"),
                ]
                .join("---\n"),
            ),
            ("clusters/production/root.yaml", &config_map("root", true)),
            ("apps/app.yaml", &config_map("app", true)),
            ("policies/require-team.yaml", REQUIRE_TEAM),
        ],
    );
    repo
}

fn cluster_with_kyverno() -> MemoryCluster {
    let cluster = MemoryCluster::new();
    block_on(cluster.apply(&kyverno_crd(), &ApplyOptions::default())).unwrap();
    cluster
}

fn team_label(cluster: &MemoryCluster, name: &str) -> Option<String> {
    cluster
        .object(&id("", "ConfigMap", "default", name))
        .and_then(|o| o.label("team").map(str::to_string))
}

#[test]
fn a_live_policy_binds_kustomizations_that_run_before_the_one_rendering_it() {
    let repo = repository();
    let cluster = cluster_with_kyverno();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert!(report.all_ready(), "{:?}", order(&report));
    assert!(cluster
        .object(&id("kyverno.io", "ClusterPolicy", "", "require-team"))
        .is_some());

    // apps drops the label; it runs before policies, whose ClusterPolicy
    // is live: refused, and nothing of it written
    write(repo.path(), &[("apps/app.yaml", &config_map("app", false))]);
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "flux-system/flux-system");
    assert_ready(&report, "flux-system/policies");
    let apps = result(&report, "flux-system/apps");
    assert!(!apps.ready);
    assert_eq!(
        apps.message,
        "policy check failed: 1 policy violation(s): ConfigMap/default/app: policy require-team/team-label: a ConfigMap needs a team label (field metadata.labels.team)",
        "{}",
        apps.message
    );
    assert_eq!(team_label(&cluster, "app").as_deref(), Some("a"));
}

#[test]
fn a_live_policy_binds_the_root() {
    let repo = repository();
    let cluster = cluster_with_kyverno();
    assert!(reconcile(repo.path(), &cluster, &FleetOptions::default()).all_ready());

    write(
        repo.path(),
        &[("clusters/production/root.yaml", &config_map("root", false))],
    );
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    let root = result(&report, "flux-system/flux-system");
    assert!(!root.ready);
    assert!(
        root.message
            .contains("ConfigMap/default/root: policy require-team/team-label"),
        "{}",
        root.message
    );
    assert_eq!(team_label(&cluster, "root").as_deref(), Some("a"));
}

/// A policy planted with kubectl, which no Kustomization renders, binds the
/// very first run.
#[test]
fn a_planted_policy_binds_the_first_run() {
    let repo = repository();
    std::fs::remove_file(repo.path().join("policies/require-team.yaml")).unwrap();
    write(
        repo.path(),
        &[("policies/other.yaml", &config_map("other", true))],
    );
    write(repo.path(), &[("apps/app.yaml", &config_map("app", false))]);
    let cluster = cluster_with_kyverno();
    let planted = Object::new(driftless::yaml::from_str("policy", REQUIRE_TEAM).unwrap()).unwrap();
    block_on(cluster.apply(&planted, &ApplyOptions::default())).unwrap();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "flux-system/flux-system");
    assert_ready(&report, "flux-system/policies");
    let apps = result(&report, "flux-system/apps");
    assert!(
        apps.message
            .contains("ConfigMap/default/app: policy require-team/team-label"),
        "{}",
        apps.message
    );
    assert!(cluster
        .object(&id("", "ConfigMap", "default", "app"))
        .is_none());
}

/// A backend that cannot list objects (the `Applier` trait's default), but
/// has discovery, cannot say which policies are in force: every
/// Kustomization fails, nothing is applied unchecked.
struct CannotList<'a>(&'a MemoryCluster);

#[async_trait::async_trait]
impl Applier for CannotList<'_> {
    async fn get(
        &self,
        id: &driftless::ObjectId,
    ) -> Result<Option<Object>, driftless::apply::ApplyError> {
        self.0.get(id).await
    }
    async fn apply(
        &self,
        object: &Object,
        options: &ApplyOptions,
    ) -> Result<Object, driftless::apply::ApplyError> {
        self.0.apply(object, options).await
    }
    async fn delete(
        &self,
        id: &driftless::ObjectId,
        options: &ApplyOptions,
    ) -> Result<(), driftless::apply::ApplyError> {
        self.0.delete(id, options).await
    }
    async fn read_inventory(
        &self,
        owner: &str,
    ) -> Result<Option<driftless::plan::Inventory>, driftless::apply::ApplyError> {
        self.0.read_inventory(owner).await
    }
    async fn write_inventory(
        &self,
        owner: &str,
        inventory: &driftless::plan::Inventory,
    ) -> Result<(), driftless::apply::ApplyError> {
        self.0.write_inventory(owner, inventory).await
    }
    async fn scope(
        &self,
        group: &str,
        kind: &str,
    ) -> Result<Option<driftless::schema::Scope>, driftless::apply::ApplyError> {
        self.0.scope(group, kind).await
    }
}

#[test]
fn a_backend_that_cannot_list_policies_applies_nothing() {
    let repo = repository();
    let cluster = cluster_with_kyverno();
    let rv = cluster.resource_version();
    let report = reconcile(repo.path(), &CannotList(&cluster), &FleetOptions::default());
    let root = result(&report, "flux-system/flux-system");
    assert!(!root.ready);
    assert_eq!(
        root.message,
        "reading the live Kyverno policies failed: ClusterPolicy.kyverno.io: this applier cannot list objects"
    );
    assert_eq!(cluster.resource_version(), rv);
}
