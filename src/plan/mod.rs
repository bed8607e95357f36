//! Plans: what to create, update and prune, in which stages. Pure functions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::object::{ObjectError, ObjectId};

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

impl Inventory {
    /// An inventory of the given objects (sorted, duplicates removed).
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a crate::object::Object>) -> Self {
        let mut entries: Vec<InventoryEntry> = objects
            .into_iter()
            .map(|o| InventoryEntry {
                id: o.id().to_string(),
                v: o.version().to_string(),
            })
            .collect();
        entries.sort();
        entries.dedup_by(|a, b| a.id == b.id);
        Inventory { entries }
    }

    /// The ids, parsed. An entry that does not parse is an error naming
    /// it: an entry skipped here would never be pruned.
    pub fn ids(&self) -> Result<Vec<ObjectId>, ObjectError> {
        self.entries.iter().map(|e| e.id.parse()).collect()
    }

    /// True when the inventory records `id`.
    pub fn contains(&self, id: &ObjectId) -> bool {
        let s = id.to_string();
        self.entries.binary_search_by(|e| e.id.cmp(&s)).is_ok()
    }

    /// The union of two inventories (entries of `self` win on version).
    pub fn union(&self, other: &Inventory) -> Inventory {
        let mut entries = self.entries.clone();
        for e in &other.entries {
            if !entries.iter().any(|x| x.id == e.id) {
                entries.push(e.clone());
            }
        }
        entries.sort();
        entries.dedup_by(|a, b| a.id == b.id);
        Inventory { entries }
    }

    /// The entries of `self` whose id is not in `keep`.
    pub fn minus(&self, keep: &Inventory) -> Vec<InventoryEntry> {
        self.entries
            .iter()
            .filter(|e| keep.entries.binary_search_by(|k| k.id.cmp(&e.id)).is_err())
            .cloned()
            .collect()
    }
}

mod guard;
mod planner;

pub use guard::{check_prune, MaxPrune, MaxPruneError, PruneLimitError};

pub use planner::{
    annotations, apply_order, check_kinds, check_namespaces, labelled_owner, plan, Plan, PlanError,
    PlanOptions, PlanStage, PlannedChange, SsaPolicy,
};
