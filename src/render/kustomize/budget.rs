//! The node budget of one build (`YamlLimits::max_build_nodes`).
//!
//! Parsing bounds each document; a build can still multiply what it
//! parsed: a kustomization graph where every folder includes the next two
//! (a diamond, kept apart by `namePrefix`) doubles its objects at each
//! level, and a JSON 6902 patch whose every `copy` duplicates the object it
//! patches doubles it with each operation. So a build counts the nodes it
//! creates: every object each time a kustomization takes it in (from a
//! file, a generator or another kustomization; with the names and
//! namespaces it has had, which the build keeps), every node a patch or a
//! replacement writes, and one node per kustomization built. The count
//! stops the build with an error naming the kustomization (or the patch)
//! where it went over, before the work is done.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::render::merge::nodes_up_to;

/// What one build may still create.
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

/// The budget ran out.
#[derive(Debug)]
pub(crate) struct Exceeded {
    pub max: usize,
}

impl Exceeded {
    /// The error message.
    pub fn message(&self) -> String {
        format!(
            "the build creates more than {} nodes (max_build_nodes): every object counts each \
             time a kustomization takes it in, and so does every node a patch or a replacement \
             writes",
            self.max
        )
    }
}

impl Budget {
    pub fn new(max: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// What is left.
    pub fn left(&self) -> usize {
        self.max.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// The error for a budget that ran out.
    pub fn exceeded(&self) -> Exceeded {
        Exceeded { max: self.max }
    }

    /// Takes `n` nodes.
    pub fn charge(&self, n: usize) -> Result<(), Exceeded> {
        let used = self.used.load(Ordering::Relaxed).saturating_add(n);
        self.used.store(used, Ordering::Relaxed);
        if used > self.max {
            return Err(Exceeded { max: self.max });
        }
        Ok(())
    }

    /// Takes the nodes of `v` (counting no further than what is left).
    pub fn charge_value(&self, v: &Value) -> Result<(), Exceeded> {
        self.charge(nodes_up_to(v, self.left()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_every_value_and_stops_past_the_cap() {
        let v = json!({"a": [1, 2, {"b": null}], "c": "x"});
        assert_eq!(nodes_up_to(&v, 100), 7);
        assert_eq!(nodes_up_to(&v, 3), 4);
        let b = Budget::new(10);
        assert!(b.charge_value(&v).is_ok());
        assert_eq!(b.left(), 3);
        assert!(b.charge_value(&v).is_err());
    }
}
