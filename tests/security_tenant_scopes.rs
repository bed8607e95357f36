//! Issue 17, L1 (the scope part): the scope of a custom kind whose CRD is
//! not rendered in the pass comes from the cluster's discovery (the
//! Applier), never assumed namespaced.
//!
//! Before the fix, a tenant rendering an object of a cluster-scoped kind
//! installed out of band (`ClusterWidget`), with `metadata.namespace` set
//! to its own namespace, passed the tenant boundary, which took the kind
//! for namespaced; on a backend that does not check RBAC for the
//! impersonated identity, the cluster-scoped object was created.

mod support;
mod tenancy_support;

use driftless::apply::{Applier, ApplyError, ApplyOptions, MemoryCluster};
use driftless::fleet::FleetOptions;
use driftless::plan::Inventory;
use driftless::schema::Scope;
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use support::fixture;
use tenancy_support::*;

fn crd(kind: &str, plural: &str, scope: &str) -> Object {
    Object::new(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                      "listKind": format!("{kind}List")},
            "scope": scope,
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

/// The tenancy fixture with the CRDs of `ClusterWidget` (cluster-scoped)
/// and `Widget` (namespaced) installed in the cluster out of band, and
/// team-a rendering one object of each, both in its own namespace.
fn setup() -> (tempfile::TempDir, MemoryCluster) {
    let repo = fixture("tenancy");
    std::fs::remove_file(repo.path().join("tenants/team-a/apps/nested.yaml")).unwrap();
    write(
        repo.path(),
        &[(
            "tenants/team-a/apps/widgets.yaml",
            "apiVersion: example.com/v1\nkind: ClusterWidget\nmetadata:\n  name: team-a-widget\n  namespace: team-a\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: widget\n  namespace: team-a\n",
        )],
    );
    let cluster = MemoryCluster::new();
    for crd in [
        crd("ClusterWidget", "clusterwidgets", "Cluster"),
        crd("Widget", "widgets", "Namespaced"),
    ] {
        block_on(cluster.apply(&crd, &ApplyOptions::default())).unwrap();
    }
    (repo, cluster)
}

fn cluster_widget() -> ObjectId {
    id("example.com", "ClusterWidget", "", "team-a-widget")
}

#[test]
fn a_cluster_scoped_kind_known_only_to_the_cluster_is_refused_to_a_tenant() {
    let (repo, cluster) = setup();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "flux-system/tenants");
    let team_a = result(&report, "team-a/team-a");
    assert!(!team_a.ready);
    assert_eq!(
        team_a.message,
        "policy check failed: 1 policy violation(s): ClusterWidget/team-a-widget: policy tenant-boundary: tenant Kustomization/team-a/team-a may not create the cluster-scoped kind ClusterWidget"
    );
    assert!(cluster.object(&cluster_widget()).is_none());

    // the namespaced one is the tenant's to create
    std::fs::write(
        repo.path().join("tenants/team-a/apps/widgets.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: widget\n  namespace: team-a\n",
    )
    .unwrap();
    let report = reconcile(repo.path(), &cluster, &FleetOptions::default());
    assert_ready(&report, "team-a/team-a");
    assert!(cluster
        .object(&id("example.com", "Widget", "team-a", "widget"))
        .is_some());
}

/// The boundary holds for every backend, one that checks no RBAC for the
/// impersonated identity too: it is the boundary, not the cluster, that
/// refuses the object.
#[test]
fn the_boundary_holds_on_a_backend_without_rbac() {
    let (repo, cluster) = setup();
    let report = reconcile(repo.path(), &NoRbac(&cluster), &FleetOptions::default());
    let team_a = result(&report, "team-a/team-a");
    assert!(!team_a.ready);
    assert!(
        team_a.message.contains("policy tenant-boundary"),
        "{}",
        team_a.message
    );
    assert!(cluster.object(&cluster_widget()).is_none());
}

/// A backend that applies as the host whoever is impersonated (no RBAC
/// check of its own), with the embedded cluster's discovery.
struct NoRbac<'a>(&'a MemoryCluster);

#[async_trait::async_trait]
impl Applier for NoRbac<'_> {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        self.0.get(id).await
    }
    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        let options = ApplyOptions {
            impersonate: None,
            ..options.clone()
        };
        self.0.apply(object, &options).await
    }
    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
        self.0.delete(id, options).await
    }
    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError> {
        self.0.read_inventory(owner).await
    }
    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        self.0.write_inventory(owner, inventory).await
    }
    async fn list(&self, group: &str, kind: &str) -> Result<Vec<Object>, ApplyError> {
        self.0.list(group, kind).await
    }
    async fn list_namespace(&self, namespace: &str) -> Result<Vec<Object>, ApplyError> {
        self.0.list_namespace(namespace).await
    }
    async fn scope(&self, group: &str, kind: &str) -> Result<Option<Scope>, ApplyError> {
        self.0.scope(group, kind).await
    }
}
