//! Applying to a cluster: the [`Applier`] trait and its options.

use serde::{Deserialize, Serialize};

use crate::object::{Object, ObjectId};
use crate::plan::Inventory;
use crate::schema::Scope;

pub mod faulty;
pub mod memory;
pub mod overlay;

pub use faulty::FailingApplier;
pub use memory::MemoryCluster;
pub use overlay::Overlay;

/// How one object is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// The server-side-apply field manager (Flux: `kustomize-controller`).
    pub field_manager: String,
    /// Validate and compute the result without persisting anything.
    pub dry_run: bool,
    /// Take ownership of fields owned by other managers (Flux always forces).
    pub force_conflicts: bool,
    /// The identity to impersonate, e.g.
    /// `system:serviceaccount:team-a:team-a-reconciler`; `None` means the
    /// applier's own (admin) identity.
    pub impersonate: Option<String>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            field_manager: "kustomize-controller".to_string(),
            dry_run: false,
            force_conflicts: true,
            impersonate: None,
        }
    }
}

/// One reason behind a refusal, as the API server lists it in a Status's
/// `details.causes`: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The machine-readable reason: `FieldValueInvalid`,
    /// `FieldValueRequired`, `FieldValueForbidden`, `FieldValueNotSupported`,
    /// `FieldManagerConflict`, ...
    pub reason: String,
    /// The field: `spec.selector` for validation, `.spec.replicas` (a
    /// structured-merge-diff path) for apply conflicts.
    pub field: String,
    /// What is wrong, without the field: `Invalid value: 0: must be
    /// greater than or equal to 1`, `conflict with "kubectl-edit"`.
    pub message: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The causes of a refusal ([`ApplyError::causes`]): a list of [`Cause`]s
/// behind one thin pointer, so that `ApplyError` and the errors holding it
/// stay small. Dereferences to `[Cause]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causes(
    // A Box<Vec> is one pointer wide; a Vec or a Box<[Cause]> would grow
    // every error that holds an ApplyError.
    #[allow(clippy::box_collection)] Option<Box<Vec<Cause>>>,
);

impl Causes {
    /// The given causes.
    pub fn new(causes: Vec<Cause>) -> Self {
        if causes.is_empty() {
            Causes(None)
        } else {
            Causes(Some(Box::new(causes)))
        }
    }
}

impl std::ops::Deref for Causes {
    type Target = [Cause];
    fn deref(&self) -> &[Cause] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl From<Vec<Cause>> for Causes {
    fn from(causes: Vec<Cause>) -> Self {
        Causes::new(causes)
    }
}

impl FromIterator<Cause> for Causes {
    fn from_iter<I: IntoIterator<Item = Cause>>(iter: I) -> Self {
        Causes::new(iter.into_iter().collect())
    }
}

/// Why a cluster call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The API server refused the object as invalid (schema, immutability,
    /// missing namespace, unknown kind). Not retryable without a change.
    #[error("{subject}: {message}")]
    Invalid {
        /// `Kind/ns/name`.
        subject: String,
        /// The server's message.
        message: String,
        /// The fields at fault, when the server named them.
        causes: Causes,
    },
    /// The identity may not perform the call.
    #[error("{subject}: {message}")]
    Forbidden {
        /// `Kind/ns/name`.
        subject: String,
        /// The server's message.
        message: String,
    },
    /// The write conflicts: fields owned by other field managers would
    /// change (server-side apply without force), or the object changed
    /// since the given resourceVersion. Not retryable as is.
    #[error("{subject}: {message}")]
    Conflict {
        /// `Kind/ns/name`.
        subject: String,
        /// The server's message.
        message: String,
        /// For apply conflicts, one `FieldManagerConflict` per field and
        /// manager; empty for a stale resourceVersion.
        causes: Causes,
    },
    /// The object does not exist.
    #[error("{subject}: not found")]
    NotFound {
        /// `Kind/ns/name`.
        subject: String,
    },
    /// A transient failure (connection, timeout, conflict, storage).
    #[error("{subject}: {message}")]
    Unavailable {
        /// `Kind/ns/name`, or the operation when no object is involved.
        subject: String,
        /// What went wrong.
        message: String,
    },
}

impl ApplyError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApplyError::Unavailable { .. })
    }

    /// The fields the server named as the causes (empty when none).
    pub fn causes(&self) -> &[Cause] {
        match self {
            ApplyError::Invalid { causes, .. } | ApplyError::Conflict { causes, .. } => causes,
            _ => &[],
        }
    }
}

/// A cluster backend: read live objects, dry-run, apply, delete, and keep the
/// inventory of what a reconciler owns.
#[async_trait::async_trait]
pub trait Applier: Send + Sync {
    /// Reads one live object, `None` when absent.
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError>;

    /// Server-side applies `object` and returns the resulting live object.
    /// With `dry_run`, nothing is persisted.
    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError>;

    /// Deletes one object. Deleting an absent object is not an error.
    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError>;

    /// Reads the inventory recorded under `owner` (e.g. `flux-system/apps`).
    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError>;

    /// Records the inventory under `owner`.
    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError>;

    /// Every live object of a kind (`group` empty for the core group), in
    /// every namespace, ordered by id. A kind the cluster does not serve
    /// lists nothing. Appliers that cannot list return
    /// [`ApplyError::Unavailable`] (the default): callers that need the
    /// list (live policies, the objects of a Namespace) then fail closed.
    async fn list(&self, group: &str, kind: &str) -> Result<Vec<Object>, ApplyError> {
        Err(ApplyError::Unavailable {
            subject: format!("{kind}.{group}"),
            message: "this applier cannot list objects".to_string(),
        })
    }

    /// Every live namespaced object in `namespace`, of every kind, ordered
    /// by id (what deleting the Namespace would delete with it). Appliers
    /// that cannot list return [`ApplyError::Unavailable`] (the default).
    async fn list_namespace(&self, namespace: &str) -> Result<Vec<Object>, ApplyError> {
        Err(ApplyError::Unavailable {
            subject: format!("Namespace/{namespace}"),
            message: "this applier cannot list objects".to_string(),
        })
    }

    /// The cluster's discovery: the scope of a kind it serves, `None` when
    /// it serves no such kind. Appliers without discovery return
    /// [`ApplyError::Unavailable`] (the default).
    async fn scope(&self, group: &str, kind: &str) -> Result<Option<Scope>, ApplyError> {
        Err(ApplyError::Unavailable {
            subject: format!("{kind}.{group}"),
            message: "this applier has no discovery".to_string(),
        })
    }

    /// Replaces the status of a live object through its status subresource,
    /// as its controller would (e.g. a Kustomization's Ready condition), and
    /// returns the resulting object. Appliers that cannot write status
    /// return [`ApplyError::Unavailable`] (the default). The fleet writes
    /// every Kustomization's status through it after each run; a failure
    /// there makes the run not Ready.
    async fn update_status(
        &self,
        id: &ObjectId,
        status: &serde_json::Value,
    ) -> Result<Object, ApplyError> {
        let _ = status;
        Err(ApplyError::Unavailable {
            subject: id.subject(),
            message: "this applier cannot write status".to_string(),
        })
    }

    /// A copy-on-write overlay of this cluster (see [`Overlay`]): writes
    /// through it land in the overlay only, every later read and check
    /// through it sees them, and this applier is never written. A fleet dry
    /// run reconciles through one, so that later Kustomizations see what
    /// earlier ones would create. `Ok(None)` (the default) when the applier
    /// cannot make one; a fleet dry run then checks each Kustomization
    /// against the cluster as it is.
    fn overlay(&self) -> Result<Option<Box<dyn Applier>>, ApplyError> {
        Ok(None)
    }
}
