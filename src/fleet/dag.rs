//! `dependsOn` as a DAG: missing dependencies and cycles are clear errors.

use std::collections::{BTreeMap, BTreeSet};

/// A problem with the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DagError {
    /// A Kustomization depends on one that does not exist.
    #[error("{dependent}: dependency '{dependency}' not found")]
    Missing {
        /// `ns/name` of the dependent.
        dependent: String,
        /// `ns/name` of the missing dependency.
        dependency: String,
    },
    /// The dependencies form a cycle.
    #[error("circular dependency detected: {}", .cycle.join(" -> "))]
    Cycle {
        /// The keys along the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// Orders nodes so that every node comes after its dependencies. Nodes with
/// no order between them are sorted by key, so the result is deterministic.
///
/// `deps` maps each node key to the keys it depends on.
pub fn topological_order(deps: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, DagError> {
    for (k, ds) in deps {
        if let Some(d) = ds.iter().find(|d| !deps.contains_key(*d)) {
            return Err(DagError::Missing {
                dependent: k.clone(),
                dependency: d.clone(),
            });
        }
    }
    if let Some(cycle) = find_cycle(deps) {
        return Err(DagError::Cycle { cycle });
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(deps.len());
    while order.len() < deps.len() {
        let ready: Vec<&String> = deps
            .iter()
            .filter(|(k, ds)| {
                !done.contains(k.as_str()) && ds.iter().all(|d| done.contains(d.as_str()))
            })
            .map(|(k, _)| k)
            .collect();
        for k in ready {
            done.insert(k);
            order.push(k.clone());
        }
    }
    Ok(order)
}

fn find_cycle(deps: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in deps.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // iterative DFS with an explicit path
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start, Mark::Visiting);
        while let Some((node, next)) = path.last().copied() {
            let children = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if next < children.len() {
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                let child = children[next].as_str();
                match marks.get(child) {
                    Some(Mark::Visiting) => {
                        let pos = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[pos..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(child.to_string());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child, Mark::Visiting);
                        path.push((child, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(k, ds)| (k.to_string(), ds.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn orders_and_detects_problems() {
        let order = topological_order(&g(&[
            ("fs/apps", &["fs/infra"]),
            ("fs/infra", &[]),
            ("fs/tenants", &[]),
        ]))
        .unwrap();
        assert_eq!(order, vec!["fs/infra", "fs/tenants", "fs/apps"]);
        let err = topological_order(&g(&[("fs/apps", &["fs/nope"])])).unwrap_err();
        assert_eq!(err.to_string(), "fs/apps: dependency 'fs/nope' not found");
        let err =
            topological_order(&g(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "circular dependency detected: a -> b -> c -> a"
        );
    }
}
