//! [`Overlay`]: a copy-on-write overlay of a cluster, for a dry run of many
//! steps.
//!
//! A server-side dry run checks one object against the cluster as it is. A
//! fleet is many steps: the Kustomization that makes a tenant creates its
//! Namespace, the RoleBinding its ServiceAccount acts through and the CRDs
//! its kinds need, and only then does the tenant's own Kustomization run.
//! Dry-run against the cluster, the second step fails on what the first
//! one would have created (`namespaces "team-a" not found`), so a diff of a
//! pull request that adds a tenant could not be made (`flux diff` has the
//! same limit).
//!
//! An overlay starts as the cluster is when it is made. Writes through it
//! (applies, deletes, inventories, status) land in the overlay only, and
//! every later read or check through it sees them: a Namespace created in
//! the overlay exists for the objects applied after it, a CRD makes its
//! kind known, a RoleBinding grants what it grants. The cluster it was made
//! from is never written (a persisted state folder stays byte-identical).
//!
//! [`Applier::overlay`] makes one; [`crate::fleet::FleetContext::reconcile`]
//! runs a dry run ([`crate::fleet::FleetOptions::dry_run`]) through one.
//!
//! ```
//! use driftless::apply::{Applier, ApplyOptions, MemoryCluster, Overlay};
//! use driftless::{Object, ObjectId};
//! # futures::executor::block_on(async {
//! let cluster = MemoryCluster::new();
//! let overlay = Overlay::of(&cluster).unwrap();
//! let ns = Object::new(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
//! })).unwrap();
//! let cm = Object::new(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "team-a"},
//! })).unwrap();
//! let opts = ApplyOptions::default();
//! // against the cluster itself, the namespace is missing
//! assert!(cluster.apply(&cm, &ApplyOptions { dry_run: true, ..opts.clone() }).await.is_err());
//! overlay.apply(&ns, &opts).await.unwrap();
//! overlay.apply(&cm, &opts).await.unwrap();
//! let id = ObjectId::new("", "ConfigMap", "team-a", "settings");
//! assert!(overlay.get(&id).await.unwrap().is_some());
//! assert!(cluster.get(&id).await.unwrap().is_none()); // never written
//! # });
//! ```

use serde_json::Value;

use crate::apply::{Applier, ApplyError, ApplyOptions, MemoryCluster};
use crate::object::{Object, ObjectId};
use crate::plan::Inventory;
use crate::schema::Scope;

/// A copy-on-write overlay of a [`MemoryCluster`]. See the
/// [module documentation](self).
///
/// It behaves as the cluster it was made from does (validation, server-side
/// apply, RBAC for impersonated identities, simulated controllers, the
/// clock), and `dry_run` keeps its meaning: a dry run through the overlay
/// writes nothing, not even to the overlay. Nothing is persisted.
#[derive(Debug)]
pub struct Overlay {
    layer: MemoryCluster,
}

impl Overlay {
    /// An overlay of `base` as it is now. Later writes to `base` are not
    /// seen through the overlay.
    pub fn of(base: &MemoryCluster) -> Result<Overlay, ApplyError> {
        Ok(Overlay {
            layer: base.copy_in_memory()?,
        })
    }

    /// The overlay's state, as an in-memory cluster: what the cluster would
    /// hold after the writes made through the overlay.
    pub fn cluster(&self) -> &MemoryCluster {
        &self.layer
    }
}

#[async_trait::async_trait]
impl Applier for Overlay {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        self.layer.get(id).await
    }

    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        self.layer.apply(object, options).await
    }

    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
        self.layer.delete(id, options).await
    }

    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError> {
        self.layer.read_inventory(owner).await
    }

    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        self.layer.write_inventory(owner, inventory).await
    }

    async fn update_status(&self, id: &ObjectId, status: &Value) -> Result<Object, ApplyError> {
        self.layer.update_status(id, status).await
    }

    async fn list(&self, group: &str, kind: &str) -> Result<Vec<Object>, ApplyError> {
        self.layer.list(group, kind).await
    }

    async fn list_namespace(&self, namespace: &str) -> Result<Vec<Object>, ApplyError> {
        self.layer.list_namespace(namespace).await
    }

    async fn scope(&self, group: &str, kind: &str) -> Result<Option<Scope>, ApplyError> {
        self.layer.scope(group, kind).await
    }

    fn overlay(&self) -> Result<Option<Box<dyn Applier>>, ApplyError> {
        self.layer.overlay()
    }
}
