//! Plans: what to create, update and prune, in which stages. Pure functions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened, or will happen, to one object. Flux's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The object did not exist and is created.
    Created,
    /// The object existed and differs from Git.
    Configured,
    /// The object matches Git.
    Unchanged,
    /// The object is pruned.
    Deleted,
    /// The object is left alone (reconcile disabled, `ssa: Ignore`, prune disabled, ...).
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        })
    }
}

/// One entry of a Flux inventory: the object id and its API version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// The object id in Flux's `<ns>_<name>_<group>_<Kind>` form.
    pub id: String,
    /// The API version the object was applied with.
    pub v: String,
}

/// The objects a reconciler owns, sorted by id (as in a Kustomization's
/// `status.inventory`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The entries, sorted and unique.
    pub entries: Vec<InventoryEntry>,
}
