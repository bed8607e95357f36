//! [`FailingApplier`]: a testing aid that injects a failure at the N-th
//! mutating call of any [`Applier`].
//!
//! Use it to check that a pipeline loses nothing when the cluster fails in
//! the middle of an apply: run once with the failure at call 1, 2, 3, ...
//! and check that a rerun against the inner applier converges.
//!
//! ```
//! use driftless::apply::{Applier, ApplyError, ApplyOptions, FailingApplier, MemoryCluster};
//! use driftless::Object;
//! # futures::executor::block_on(async {
//! let cluster = FailingApplier::new(MemoryCluster::new(), 2);
//! let cm = |name: &str| Object::new(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": name, "namespace": "default"},
//! })).unwrap();
//! let opts = ApplyOptions::default();
//! assert!(cluster.apply(&cm("a"), &opts).await.is_ok());
//! let err = cluster.apply(&cm("b"), &opts).await.unwrap_err();
//! assert!(matches!(err, ApplyError::Unavailable { .. }));
//! assert!(cluster.apply(&cm("c"), &opts).await.is_ok()); // only call 2 fails
//! # });
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::apply::{Applier, ApplyError, ApplyOptions};
use crate::object::{Object, ObjectId};
use crate::plan::Inventory;

/// When the injected failures happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMode {
    /// Only the N-th mutating call fails; later calls go through.
    Once,
    /// The N-th mutating call and every one after it fail (the cluster went
    /// away).
    FromThenOn,
}

/// Wraps an [`Applier`] and fails with [`ApplyError::Unavailable`] at the
/// N-th mutating call (1-based). Mutating calls are `apply` without dry-run,
/// `delete` without dry-run, `write_inventory` and `update_status`; reads and dry-runs pass
/// through and are not counted. A failed call does not reach the inner
/// applier.
///
/// A testing aid, public so integration tests and hosts can use it.
#[derive(Debug)]
pub struct FailingApplier<A> {
    inner: A,
    fail_at: usize,
    mode: FailureMode,
    calls: AtomicUsize,
}

impl<A: Applier> FailingApplier<A> {
    /// Fails only the `fail_at`-th mutating call (1-based; 0 never fails).
    pub fn new(inner: A, fail_at: usize) -> Self {
        Self::with_mode(inner, fail_at, FailureMode::Once)
    }

    /// Fails the `fail_at`-th mutating call as `mode` says.
    pub fn with_mode(inner: A, fail_at: usize, mode: FailureMode) -> Self {
        FailingApplier {
            inner,
            fail_at,
            mode,
            calls: AtomicUsize::new(0),
        }
    }

    /// How many mutating calls were made so far (failed ones included).
    pub fn mutating_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The wrapped applier.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Unwraps the applier.
    pub fn into_inner(self) -> A {
        self.inner
    }

    /// Counts one mutating call; errs when it is to fail.
    fn count(&self, subject: &str, call: &str) -> Result<(), ApplyError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fails = self.fail_at != 0
            && match self.mode {
                FailureMode::Once => n == self.fail_at,
                FailureMode::FromThenOn => n >= self.fail_at,
            };
        if fails {
            return Err(ApplyError::Unavailable {
                subject: subject.to_string(),
                message: format!("injected failure at mutating call {n} ({call})"),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<A: Applier> Applier for FailingApplier<A> {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        self.inner.get(id).await
    }

    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        if !options.dry_run {
            self.count(&object.id().subject(), "apply")?;
        }
        self.inner.apply(object, options).await
    }

    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
        if !options.dry_run {
            self.count(&id.subject(), "delete")?;
        }
        self.inner.delete(id, options).await
    }

    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError> {
        self.inner.read_inventory(owner).await
    }

    async fn list(&self, group: &str, kind: &str) -> Result<Vec<Object>, ApplyError> {
        self.inner.list(group, kind).await
    }

    async fn list_namespace(&self, namespace: &str) -> Result<Vec<Object>, ApplyError> {
        self.inner.list_namespace(namespace).await
    }

    async fn scope(
        &self,
        group: &str,
        kind: &str,
    ) -> Result<Option<crate::schema::Scope>, ApplyError> {
        self.inner.scope(group, kind).await
    }

    async fn update_status(
        &self,
        id: &ObjectId,
        status: &serde_json::Value,
    ) -> Result<Object, ApplyError> {
        self.count(&id.subject(), "update_status")?;
        self.inner.update_status(id, status).await
    }

    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        self.count(&format!("inventory {owner}"), "write_inventory")?;
        self.inner.write_inventory(owner, inventory).await
    }
}
