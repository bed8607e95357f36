//! Shared helpers of the tenancy and prune-ownership security tests: a
//! fleet reconciled from a fixture folder into the embedded cluster (or any
//! Applier) on a virtual clock, and an Applier that fails the writes of one
//! object.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use driftless::apply::{Applier, ApplyError, ApplyOptions};
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, KustomizationResult, NoEvents, SourceBinding,
    VirtualClock,
};
use driftless::plan::Inventory;
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::{Schema, Scope};
use driftless::source::{DirSource, GitRef, Source};
use driftless::{Object, ObjectId};
use futures::executor::block_on;

/// The virtual clock's start.
pub const START: Duration = Duration::from_secs(1_700_000_000);

/// Reconciles the fleet in `repo` (the root GitRepository
/// `flux-system/flux-system` and every GitRepository in `extra` mapped to
/// the folder) into `applier`, once.
pub fn reconcile_with(
    repo: &Path,
    applier: &dyn Applier,
    options: &FleetOptions,
    extra: &[ObjectId],
) -> FleetReport {
    reconcile_source(&DirSource::new(repo), applier, options, extra)
}

/// [`reconcile_with`] from any source (a Git repository, for instance),
/// fetching branch `main`.
pub fn reconcile_source(
    source: &dyn Source,
    applier: &dyn Applier,
    options: &FleetOptions,
    extra: &[ObjectId],
) -> FleetReport {
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let mut sources = BTreeMap::new();
    for id in std::iter::once(&options.root_source).chain(extra) {
        sources.insert(
            id.clone(),
            SourceBinding {
                source,
                reference: GitRef::branch("main"),
                verifier: Some(&driftless::verify::danger::NoVerification),
            },
        );
    }
    let clock = VirtualClock::new(START);
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
    block_on(ctx.reconcile(options)).expect("the fleet runs")
}

/// [`reconcile_with`] with no extra sources.
pub fn reconcile(repo: &Path, applier: &dyn Applier, options: &FleetOptions) -> FleetReport {
    reconcile_with(repo, applier, options, &[])
}

/// `(key, ready, reason)` of every result, in order.
pub fn order(report: &FleetReport) -> Vec<(&str, bool, &str)> {
    report
        .results
        .iter()
        .map(|r| (r.key.as_str(), r.ready, r.reason.as_str()))
        .collect()
}

/// The result for `key`; panics naming every result when there is none.
pub fn result<'a>(report: &'a FleetReport, key: &str) -> &'a KustomizationResult {
    report
        .get(key)
        .unwrap_or_else(|| panic!("no result for {key}: {:?}", order(report)))
}

/// Asserts `key` is Ready.
pub fn assert_ready(report: &FleetReport, key: &str) {
    let r = result(report, key);
    assert!(r.ready, "{key}: {} {}", r.reason, r.message);
}

/// An object id.
pub fn id(group: &str, kind: &str, ns: &str, name: &str) -> ObjectId {
    ObjectId::new(group, kind, ns, name)
}

/// The ClusterRoleBinding every escalation attempt of the `tenancy`
/// fixture creates.
pub fn cluster_admin_binding() -> ObjectId {
    id(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "",
        "team-a-cluster-admin",
    )
}

/// Writes `files` (path relative to `root`, text) into a fixture copy.
pub fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Wraps an Applier; every real (not dry-run) write of the object named
/// `fail` fails as a storage fault would, so an apply stops half-way.
pub struct FailWritesOf<'a> {
    /// The cluster.
    pub inner: &'a dyn Applier,
    /// The object whose writes fail.
    pub fail: ObjectId,
}

#[async_trait::async_trait]
impl Applier for FailWritesOf<'_> {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        self.inner.get(id).await
    }

    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        if !options.dry_run && object.id() == self.fail {
            return Err(ApplyError::Unavailable {
                subject: object.id().subject(),
                message: "injected storage fault".to_string(),
            });
        }
        self.inner.apply(object, options).await
    }

    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
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

    async fn scope(&self, group: &str, kind: &str) -> Result<Option<Scope>, ApplyError> {
        self.inner.scope(group, kind).await
    }

    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        self.inner.write_inventory(owner, inventory).await
    }

    async fn update_status(
        &self,
        id: &ObjectId,
        status: &serde_json::Value,
    ) -> Result<Object, ApplyError> {
        self.inner.update_status(id, status).await
    }
}
