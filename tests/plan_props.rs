//! The planner against a naive model of itself: for any desired set, live
//! state and previous inventory, the plan's actions, apply order, prune
//! list and inventory are those that plain sorts and map lookups give.
//!
//! The ids are drawn to stress the planner's fast paths: namespaces and
//! names that share long prefixes (its sort keys hold 16 bytes), names that
//! are prefixes of one another, unlisted kinds, cluster-scoped kinds,
//! previous inventories out of order, and live maps far larger than the
//! desired set.

use std::collections::{BTreeMap, BTreeSet};

use driftless::plan::{apply_order, plan, Action, Inventory, InventoryEntry, PlanOptions};
use driftless::schema::Schema;
use driftless::{Object, ObjectId};
use proptest::prelude::*;
use serde_json::json;

const NAMESPACES: &[&str] = &[
    "a",
    "a-b",
    "a.b",
    "ab",
    "team-with-a-long-name",
    "team-with-a-long-name-2",
    "team-with-a-long-name-10",
];

const NAMES: &[&str] = &[
    "x",
    "x-1",
    "x1",
    "web",
    "a-name-longer-than-sixteen-bytes",
    "a-name-longer-than-sixteen-bytes-2",
    "a-name-longer-than-sixteen",
];

/// (apiVersion, kind, namespaced)
const KINDS: &[(&str, &str, bool)] = &[
    ("v1", "ConfigMap", true),
    ("v1", "Namespace", false),
    ("apps/v1", "Deployment", true),
    ("example.com/v1", "Widget", true),
    ("example.com/v1", "Gadget", false),
    ("other.example.com/v1", "Widget", true),
    ("storage.k8s.io/v1", "StorageClass", false),
];

fn object(kind: usize, ns: usize, name: usize, value: u8) -> Object {
    let (api_version, kind, namespaced) = KINDS[kind % KINDS.len()];
    let mut metadata = json!({"name": NAMES[name % NAMES.len()]});
    if namespaced {
        metadata["namespace"] = json!(NAMESPACES[ns % NAMESPACES.len()]);
    }
    Object::new(
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
        "data": {"value": value}}),
    )
    .expect("valid")
}

/// One object of the scenario and where it is: in Git, live (and how), in
/// the previous inventory.
#[derive(Clone, Debug)]
struct Case {
    kind: usize,
    ns: usize,
    name: usize,
    desired: bool,
    /// 0: absent, 1: the same as Git, 2: drifted
    live: u8,
    previous: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..KINDS.len(),
        0..NAMESPACES.len(),
        0..NAMES.len(),
        any::<bool>(),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(kind, ns, name, desired, live, previous)| Case {
            kind,
            ns,
            name,
            desired,
            live,
            previous,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_agrees_with_a_naive_model(
        cases in proptest::collection::vec(case(), 0..40),
        extra_live in 0usize..60,
        shuffle_seed in any::<u64>(),
        unsorted_previous in any::<bool>(),
    ) {
        let schema = Schema::kubernetes();
        let mut desired: Vec<Object> = Vec::new();
        let mut live: BTreeMap<ObjectId, Object> = BTreeMap::new();
        let mut previous: Vec<InventoryEntry> = Vec::new();
        let mut seen = BTreeSet::new();
        for c in &cases {
            let o = object(c.kind, c.ns, c.name, 1);
            if !seen.insert(o.id()) {
                continue;
            }
            if c.desired {
                desired.push(o.clone());
            }
            match c.live {
                1 => { live.insert(o.id(), o.clone()); }
                2 => { live.insert(o.id(), object(c.kind, c.ns, c.name, 2)); }
                _ => {}
            }
            if c.previous {
                previous.push(InventoryEntry { id: o.id().to_string(), v: o.version().to_string() });
            }
        }
        // live objects nobody asked about (the lookup path when many)
        for i in 0..extra_live {
            let o = Object::new(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("other-{i}"), "namespace": "zz"}})).expect("valid");
            live.insert(o.id(), o);
        }
        // the input order must not matter
        let mut state = shuffle_seed | 1;
        for i in (1..desired.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            desired.swap(i, (state % (i as u64 + 1)) as usize);
        }
        if unsorted_previous {
            previous.reverse();
        } else {
            previous.sort();
        }
        let previous = Inventory { entries: previous };

        let p = plan(&desired, &live, &previous, &schema, &PlanOptions::default()).expect("plan");

        // actions and apply order: stage, then Flux's kind order and the id
        let mut want: Vec<(ObjectId, Action)> = desired
            .iter()
            .map(|o| {
                let action = match live.get(&o.id()) {
                    None => Action::Created,
                    Some(l) if l == o => Action::Unchanged,
                    Some(_) => Action::Configured,
                };
                (o.id(), action)
            })
            .collect();
        want.sort_by(|(a, _), (b, _)| {
            schema.stage(&a.group, &a.kind)
                .cmp(&schema.stage(&b.group, &b.kind))
                .then_with(|| apply_order(&schema, a, b))
        });
        let got: Vec<(ObjectId, Action)> = p
            .stages
            .iter()
            .flat_map(|s| s.changes.iter())
            .map(|c| (c.id.clone(), c.action))
            .collect();
        prop_assert_eq!(&got, &want);
        for s in &p.stages {
            for c in &s.changes {
                prop_assert_eq!(s.stage, schema.stage(&c.id.group, &c.id.kind));
            }
        }

        // prunes: previous minus desired, still live, in reverse apply order
        let desired_ids: BTreeSet<ObjectId> = desired.iter().map(Object::id).collect();
        let mut want_prune: Vec<ObjectId> = previous
            .ids()
            .unwrap()
            .into_iter()
            .filter(|id| !desired_ids.contains(id) && live.contains_key(id))
            .collect();
        want_prune.sort_by(|a, b| apply_order(&schema, b, a));
        let got_prune: Vec<ObjectId> = p.prune.iter().map(|c| c.id.clone()).collect();
        prop_assert_eq!(got_prune, want_prune);
        prop_assert!(p.prune.iter().all(|c| c.action == Action::Deleted));

        // the inventory: every desired object, sorted as strings
        prop_assert_eq!(&p.inventory, &Inventory::from_objects(desired.iter()));

        // the same plan, byte for byte, from the reversed input
        let mut reversed = desired.clone();
        reversed.reverse();
        let q = plan(&reversed, &live, &previous, &schema, &PlanOptions::default()).expect("plan");
        prop_assert_eq!(p.to_json(), q.to_json());
    }
}
