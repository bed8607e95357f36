//! [`MemoryCluster`]: the embedded default [`Applier`], a small API server.
//!
//! It behaves the way a Kubernetes API server does for the calls GitOps
//! makes, not like a map:
//!
//! - namespaced objects need their Namespace (`namespaces "x" not found`);
//!   custom kinds need their CRD (`no matches for kind "X" in version
//!   "g/v"`); cluster-scoped objects lose any namespace they carry;
//! - `metadata.uid`, `resourceVersion` (a cluster-wide counter) and
//!   `generation` (bumped only when something other than metadata and status
//!   changes) move only on a real change; an apply that changes nothing
//!   writes nothing;
//! - server-side apply with field ownership per field manager, recorded in
//!   `metadata.managedFields` in Kubernetes' `FieldsV1` format; conflicts
//!   with other managers fail unless forced; fields a manager stops applying
//!   are removed unless another manager owns them;
//! - [`MemoryCluster::edit`] is `kubectl edit` (an `Update` by another
//!   manager), so a forced re-apply shows the edit as drift and takes it back;
//! - immutable fields (from [`Schema::immutable_fields`]) are rejected with
//!   the API server's message;
//! - a simulated controller writes status after each rollout (Deployments,
//!   StatefulSets, DaemonSets, ReplicaSets, Jobs, Pods, Services,
//!   Namespaces, PVCs, CRDs); see [`MemoryCluster::set_rollout`] and
//!   [`MemoryCluster::set_status`] to make objects unhealthy;
//! - RBAC is enforced for impersonated identities
//!   ([`ApplyOptions::impersonate`]), escalation prevention included; no
//!   identity means cluster-admin;
//! - dry-run runs every check and persists nothing.
//!
//! The cluster starts as a cluster bootstrapped with Flux does: the
//! namespaces `default`, `kube-system`, `kube-public`, `kube-node-lease` and
//! `flux-system`, Flux's CRDs (source, kustomize, helm, image and
//! notification toolkits), and the `cluster-admin` ClusterRole.
//!
//! [`MemoryCluster::open`] persists the state to a folder (one YAML file per
//! object, one per inventory, and `cluster.yaml` with the counters), each
//! written atomically (see [`Durability`]), at a path whose parts are
//! encoded so that no name or kind can leave the folder. A writer holds the
//! folder's advisory lock while it lives; [`MemoryCluster::open_read_only`]
//! loads a snapshot under a shared lock. A file edited by hand is the
//! live state on the next open. The core reads no clock: time is set with
//! [`MemoryCluster::set_now`] and starts at 2024-01-01T00:00:00Z.
//!
//! `docs/memory-cluster.md` describes the behaviour and the state folder in
//! full.
//!
//! ```
//! use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
//! use driftless::Object;
//! # futures::executor::block_on(async {
//! let cluster = MemoryCluster::new();
//! let cm = Object::new(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "default"},
//!     "data": {"mode": "fast"},
//! })).unwrap();
//! let live = cluster.apply(&cm, &ApplyOptions::default()).await.unwrap();
//! assert_eq!(live.pointer("/metadata/managedFields/0/manager").unwrap(), "kustomize-controller");
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::apply::{Applier, ApplyError, ApplyOptions, Causes};
use crate::object::{Object, ObjectId};
use crate::plan::Inventory;
use crate::schema::{Schema, Scope};

mod apply;
mod fields;
mod rbac;
#[cfg(feature = "serve")]
pub mod serve;
mod state;
mod status;
mod store;
mod validate;
#[cfg(feature = "serve")]
mod write;

use apply::metadata_mut;
pub(crate) use status::rfc3339;
use store::Store;

/// 2024-01-01T00:00:00Z, the clock's starting point.
pub const DEFAULT_NOW: i64 = 1_704_067_200;

/// How a simulated controller rolls an object out (see
/// [`MemoryCluster::set_rollout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// The rollout finishes: all replicas ready, the Job complete.
    Complete,
    /// The rollout never finishes: no replica becomes ready, the Job stays
    /// active. Health checks time out.
    Progressing,
    /// The rollout fails: the Deployment exceeds its progress deadline, the
    /// Job exceeds its backoff limit. Health checks fail early.
    Failed,
}

/// How hard a persisted cluster's writes try to survive a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write is fsynced (file and folder) before it counts: the state
    /// survives a crash of the machine. The default.
    #[default]
    PowerLoss,
    /// Writes are atomic renames without fsync: the state survives a crash
    /// of the process, not of the machine. Much faster; meant for tests.
    Process,
}

/// Why a state folder could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing a state file failed.
    #[error("cluster state file {}: {message}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// A state file is not what driftless wrote (or a person broke it while
    /// editing). Nothing is reset: fix or remove the file.
    #[error("corrupt cluster state file {}: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the object and field when known.
        message: String,
    },
    /// Another process holds the state folder: a writer excludes every
    /// other opener, readers exclude writers. Nobody waits; retry later.
    #[error("cluster state {} is locked: {message}", .path.display())]
    Locked {
        /// The state folder.
        path: PathBuf,
        /// Who holds it (a writer's pid when known).
        message: String,
    },
    /// An object id that has no place in the state folder (an empty kind
    /// or name). The API server's validation refuses such objects first.
    #[error("cannot store {subject} in the cluster state: {message}")]
    InvalidId {
        /// `Kind/ns/name`.
        subject: String,
        /// Why.
        message: String,
    },
}

impl StateError {
    /// True when the same call may succeed later: the folder is locked by
    /// another process, or the file system failed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Locked { .. } | StateError::Io { .. })
    }
}

/// The host's rollout decision (see [`MemoryCluster::set_rollout`]).
type RolloutFn = Arc<dyn Fn(&Object) -> Rollout + Send + Sync>;

/// Everything the cluster holds, behind the [`MemoryCluster`]'s mutex.
///
/// The methods live by verb: `state.rs` (lookups, authorization, commit,
/// delete), `apply.rs` (server-side apply and update), `validate.rs`.
struct State {
    /// The host's schema (built-ins and kinds the host registered).
    base_schema: Schema,
    /// `base_schema` plus the kinds of the CRD objects the cluster holds.
    schema: Schema,
    objects: BTreeMap<ObjectId, Value>,
    /// The ids of the RBAC objects, for authorization.
    rbac: BTreeSet<ObjectId>,
    inventories: BTreeMap<String, Inventory>,
    rv: u64,
    uids: u64,
    now: i64,
    store: Option<Store>,
    /// The folder of a cluster opened with [`MemoryCluster::open_read_only`]:
    /// every write is refused.
    read_only: Option<PathBuf>,
    rollout: Option<RolloutFn>,
}

/// The embedded API server. See the [module documentation](self).
///
/// `Send + Sync`; all state lives in the value (a mutex inside).
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryCluster");
        if let Ok(s) = self.state.lock() {
            d.field("objects", &s.objects.len())
                .field("resource_version", &s.rv)
                .field("persisted", &s.store.is_some());
        }
        d.finish_non_exhaustive()
    }
}

impl Default for MemoryCluster {
    fn default() -> Self {
        MemoryCluster::new()
    }
}

/// The result of checking a write, before it is committed.
struct Prepared {
    id: ObjectId,
    value: Value,
    changed: bool,
    created: bool,
}

/// An [`ApplyError::Invalid`] for `subject`.
fn invalid(subject: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        subject: subject.to_string(),
        message: message.into(),
        causes: Causes::default(),
    }
}

/// A storage failure: retryable, unless the id has no place in the store.
fn unavailable(subject: &str, e: StateError) -> ApplyError {
    match e {
        StateError::InvalidId { .. } => invalid(subject, e.to_string()),
        e => ApplyError::Unavailable {
            subject: subject.to_string(),
            message: e.to_string(),
        },
    }
}

/// A write to a cluster opened read-only.
fn read_only(subject: &str, dir: &FsPath) -> ApplyError {
    ApplyError::Forbidden {
        subject: subject.to_string(),
        message: format!(
            "the cluster state {} is open read-only: nothing is written",
            dir.display()
        ),
    }
}

impl MemoryCluster {
    fn from_state(state: State) -> Self {
        MemoryCluster {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, ApplyError> {
        self.state.lock().map_err(|_| ApplyError::Unavailable {
            subject: "MemoryCluster".into(),
            message: "the cluster state lock is poisoned (a thread panicked while holding it)"
                .into(),
        })
    }

    /// Applies the bootstrap objects to a state.
    fn bootstrap(state: &mut State) -> Result<(), ApplyError> {
        for v in status::bootstrap_objects() {
            let object = Object::new(v).map_err(|e| invalid("bootstrap", e.to_string()))?;
            let manager = if object.kind() == "CustomResourceDefinition" {
                "flux"
            } else {
                "kube-apiserver"
            };
            let opts = ApplyOptions {
                field_manager: manager.into(),
                ..ApplyOptions::default()
            };
            let p = state.prepare_apply(&object, &opts)?;
            state.commit(p)?;
        }
        Ok(())
    }

    /// An in-memory cluster, bootstrapped as a Flux cluster (see the
    /// [module documentation](self)). Nothing is persisted.
    pub fn new() -> Self {
        let mut state = State::empty(DEFAULT_NOW);
        // Bootstrapping an in-memory state cannot fail: the objects are
        // fixed and valid, and nothing is written to disk.
        let _ = Self::bootstrap(&mut state);
        Self::from_state(state)
    }

    /// An in-memory cluster holding nothing at all: no namespaces, no CRDs,
    /// no RBAC objects.
    pub fn bare() -> Self {
        Self::from_state(State::empty(DEFAULT_NOW))
    }

    /// Opens (or creates) a cluster persisted in `dir`, for writing.
    ///
    /// An empty or absent folder starts a bootstrapped cluster and writes it
    /// out. Otherwise the folder's state is loaded: hand edits to object
    /// files are the live state. A file that cannot be read is an error
    /// naming it; nothing is ever reset silently.
    ///
    /// The cluster holds the folder's exclusive lock (`<dir>/lock`) until it
    /// is dropped: a second writer, or a reader, fails at once with
    /// [`StateError::Locked`] instead of interleaving with this one.
    pub fn open(dir: impl AsRef<FsPath>) -> Result<Self, StateError> {
        Self::open_with(dir, Durability::PowerLoss)
    }

    /// [`MemoryCluster::open`] with a choice of [`Durability`].
    pub fn open_with(dir: impl AsRef<FsPath>, durability: Durability) -> Result<Self, StateError> {
        let dir = dir.as_ref();
        let (store, loaded) = Store::open(dir, durability == Durability::PowerLoss)?;
        let mut state = State::empty(DEFAULT_NOW);
        match loaded {
            None => {
                store.write_meta(&state.meta())?;
                state.store = Some(store);
                Self::bootstrap(&mut state).map_err(|e| StateError::Io {
                    path: dir.to_path_buf(),
                    message: format!("bootstrapping the cluster: {e}"),
                })?;
            }
            Some(loaded) => {
                state.load(dir, loaded)?;
                state.store = Some(store);
            }
        }
        Ok(Self::from_state(state))
    }

    /// Loads the cluster persisted in `dir` for reading: a snapshot taken
    /// under a shared lock, released before this returns, so it never
    /// blocks a writer for longer than the load. Fails at once with
    /// [`StateError::Locked`] while a writer holds the folder. Nothing is
    /// written (temporary files of a writer are left alone), and every
    /// later write is refused (`Forbidden`); dry-runs work. An absent or
    /// empty folder reads as a freshly bootstrapped cluster and is not
    /// created.
    pub fn open_read_only(dir: impl AsRef<FsPath>) -> Result<Self, StateError> {
        let dir = dir.as_ref();
        let mut state = State::empty(DEFAULT_NOW);
        match Store::read(dir)? {
            None => {
                // Bootstrapping in memory cannot fail (see `new`).
                let _ = Self::bootstrap(&mut state);
            }
            Some(loaded) => state.load(dir, loaded)?,
        }
        state.read_only = Some(dir.to_path_buf());
        Ok(Self::from_state(state))
    }

    /// The folder this cluster persists to, if any.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.lock().ok().and_then(|s| {
            s.store
                .as_ref()
                .map(|st| st.dir().to_path_buf())
                .or_else(|| s.read_only.clone())
        })
    }

    /// Sets the clock (seconds since the Unix epoch) used for
    /// `creationTimestamp`, managed-field times and status conditions.
    pub fn set_now(&self, unix_seconds: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.now = unix_seconds;
        }
    }

    /// The clock, in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.state.lock().map(|s| s.now).unwrap_or(DEFAULT_NOW)
    }

    /// The cluster-wide resourceVersion counter (the version of the last
    /// write).
    pub fn resource_version(&self) -> u64 {
        self.state.lock().map(|s| s.rv).unwrap_or(0)
    }

    /// Registers a custom kind as the host knows it, without a CRD object
    /// (as if its CRD had been installed out of band). Returns false when
    /// `crd` is not a well-formed CRD. Host registrations are not persisted.
    pub fn register_crd(&self, crd: &Object) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if !s.base_schema.register_crd(crd) {
            return false;
        }
        s.rebuild_schema();
        true
    }

    /// The schema the cluster validates with: built-in kinds, the kinds the
    /// host registered and those of the CRD objects it holds.
    pub fn schema(&self) -> Schema {
        self.state
            .lock()
            .map(|s| s.schema.clone())
            .unwrap_or_default()
    }

    /// Every object, ordered by id.
    pub fn objects(&self) -> Vec<Object> {
        self.state
            .lock()
            .map(|s| {
                s.objects
                    .values()
                    .filter_map(|v| Object::new(v.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One object, `None` when absent (the synchronous form of
    /// [`Applier::get`]).
    pub fn object(&self, id: &ObjectId) -> Option<Object> {
        let s = self.state.lock().ok()?;
        let id = s.normalize(id);
        s.objects.get(&id).and_then(|v| Object::new(v.clone()).ok())
    }

    /// Changes a live object the way `kubectl edit` does: an `Update` by
    /// `manager`, who becomes the owner of every field the edit changes
    /// (other managers lose them). Status and system metadata cannot be
    /// changed this way (see [`MemoryCluster::set_status`]).
    pub fn edit(
        &self,
        id: &ObjectId,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let p = s.prepare_update(id, manager, f)?;
        s.commit(p)
    }

    /// Replaces an object's status, as its controller would through the
    /// status subresource. Later rollouts (a new generation) recompute it.
    pub fn set_status(&self, id: &ObjectId, status: Value) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let id = s.normalize(id);
        let live = s
            .objects
            .get(&id)
            .ok_or_else(|| ApplyError::NotFound {
                subject: id.subject(),
            })?
            .clone();
        let mut v = live.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), status);
        }
        let changed = v != live;
        if changed {
            let rv = s.rv.saturating_add(1);
            metadata_mut(&mut v).insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        s.commit(Prepared {
            id,
            value: v,
            changed,
            created: false,
        })
    }

    /// Decides how simulated controllers roll objects out, e.g. "Deployments
    /// whose image ends in `:broken` never become ready". Applies to every
    /// later rollout (a new object or a new generation). Not persisted.
    pub fn set_rollout(&self, f: impl Fn(&Object) -> Rollout + Send + Sync + 'static) {
        if let Ok(mut s) = self.state.lock() {
            s.rollout = Some(Arc::new(f));
        }
    }

    /// Every rollout completes again (the default).
    pub fn clear_rollout(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rollout = None;
        }
    }

    /// A copy of this cluster in memory (objects, inventories, counters,
    /// schema, clock, rollout decision), writable and never persisted: the
    /// layer of an [`Overlay`](crate::apply::Overlay).
    pub(crate) fn copy_in_memory(&self) -> Result<MemoryCluster, ApplyError> {
        let s = self.lock()?;
        Ok(Self::from_state(State {
            base_schema: s.base_schema.clone(),
            schema: s.schema.clone(),
            objects: s.objects.clone(),
            rbac: s.rbac.clone(),
            inventories: s.inventories.clone(),
            rv: s.rv,
            uids: s.uids,
            now: s.now,
            store: None,
            read_only: None,
            rollout: s.rollout.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Applier for MemoryCluster {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        let s = self.lock()?;
        let id = s.normalize(id);
        match s.objects.get(&id) {
            Some(v) => Object::new(v.clone())
                .map(Some)
                .map_err(|e| invalid(&id.subject(), e.to_string())),
            None => Ok(None),
        }
    }

    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let p = s.prepare_apply(object, options)?;
        if let Some(user) = &options.impersonate {
            s.check_escalation(user, &p)?;
        }
        if options.dry_run {
            let subject = p.id.subject();
            return Object::new(s.dry_run_value(p, false))
                .map_err(|e| invalid(&subject, e.to_string()));
        }
        s.commit(p)
    }

    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
        let mut s = self.lock()?;
        s.delete(id, options)
    }

    async fn update_status(&self, id: &ObjectId, status: &Value) -> Result<Object, ApplyError> {
        self.set_status(id, status.clone())
    }

    async fn list(&self, group: &str, kind: &str) -> Result<Vec<Object>, ApplyError> {
        let s = self.lock()?;
        s.objects
            .iter()
            .filter(|(id, _)| id.group == group && id.kind == kind)
            .map(|(id, v)| {
                Object::new(v.clone()).map_err(|e| invalid(&id.subject(), e.to_string()))
            })
            .collect()
    }

    async fn list_namespace(&self, namespace: &str) -> Result<Vec<Object>, ApplyError> {
        let s = self.lock()?;
        s.objects
            .iter()
            .filter(|(id, _)| id.namespace == namespace)
            .map(|(id, v)| {
                Object::new(v.clone()).map_err(|e| invalid(&id.subject(), e.to_string()))
            })
            .collect()
    }

    async fn scope(&self, group: &str, kind: &str) -> Result<Option<Scope>, ApplyError> {
        let s = self.lock()?;
        Ok(s.schema
            .is_known(group, kind)
            .then(|| s.schema.scope(group, kind)))
    }

    fn overlay(&self) -> Result<Option<Box<dyn Applier>>, ApplyError> {
        Ok(Some(Box::new(crate::apply::Overlay::of(self)?)))
    }

    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError> {
        let s = self.lock()?;
        Ok(s.inventories.get(owner).cloned())
    }

    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        let mut s = self.lock()?;
        if s.inventories.get(owner) == Some(inventory) {
            return Ok(());
        }
        if let Some(dir) = &s.read_only {
            return Err(read_only(&format!("inventory {owner}"), dir));
        }
        if let Some(store) = &s.store {
            store
                .write_inventory(owner, inventory)
                .map_err(|e| unavailable(&format!("inventory {owner}"), e))?;
        }
        s.inventories.insert(owner.to_string(), inventory.clone());
        Ok(())
    }
}
