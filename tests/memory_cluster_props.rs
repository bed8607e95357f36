//! Properties of server-side apply with one field manager: the live object
//! depends only on the last applied configuration, never on history, and a
//! repeated apply changes nothing.

use driftless::apply::memory::Durability;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::plan::{plan, Action, Inventory, PlanOptions};
use driftless::schema::Schema;
use driftless::Object;
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn config(labels: &[(u8, u8)], replicas: Option<u8>, containers: &[(u8, u8, Vec<u8>)]) -> Object {
    let mut l = Map::new();
    for (k, v) in labels {
        l.insert(format!("l{k}"), json!(format!("v{v}")));
    }
    let mut spec = Map::new();
    if let Some(r) = replicas {
        spec.insert("replicas".into(), json!(r));
    }
    let mut seen = std::collections::BTreeSet::new();
    let cs: Vec<Value> = containers
        .iter()
        .filter(|(n, _, _)| seen.insert(*n))
        .map(|(n, image, env)| {
            let mut env_seen = std::collections::BTreeSet::new();
            let env: Vec<Value> = env
                .iter()
                .filter(|e| env_seen.insert(**e))
                .map(|e| json!({"name": format!("E{e}"), "value": "x"}))
                .collect();
            let mut c = json!({"name": format!("c{n}"), "image": format!("img:{image}")});
            if !env.is_empty() {
                c["env"] = Value::Array(env);
            }
            c
        })
        .collect();
    spec.insert("selector".into(), json!({"matchLabels": {"app": "p"}}));
    spec.insert(
        "template".into(),
        json!({"metadata": {"labels": {"app": "p"}}, "spec": {"containers": cs}}),
    );
    let mut md = json!({"name": "p", "namespace": "default"});
    if !l.is_empty() {
        md["labels"] = Value::Object(l);
    }
    Object::new(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md, "spec": spec}),
    )
    .expect("valid")
}

/// What the configuration controls: labels and spec.
fn content(o: &Object) -> Value {
    json!({
        "labels": o.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
        "spec": o.pointer("/spec").cloned().unwrap_or(Value::Null),
    })
}

fn arb_config() -> impl Strategy<Value = Object> {
    (
        prop::collection::vec((0u8..3, 0u8..2), 0..3),
        prop::option::of(0u8..4),
        prop::collection::vec((0u8..3, 0u8..2, prop::collection::vec(0u8..3, 0..3)), 1..3),
    )
        .prop_map(|(l, r, c)| config(&l, r, &c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn live_state_depends_only_on_the_last_config(history in prop::collection::vec(arb_config(), 1..5)) {
        let opts = ApplyOptions::default();
        let c = MemoryCluster::new();
        let mut last = None;
        for cfg in &history {
            last = Some(block_on(c.apply(cfg, &opts)).expect("apply"));
        }
        let last = last.expect("one apply at least");
        let final_cfg = history.last().expect("non-empty");
        let fresh = block_on(MemoryCluster::new().apply(final_cfg, &opts)).expect("fresh apply");
        prop_assert_eq!(content(&last), content(&fresh));
        prop_assert_eq!(
            last.pointer("/metadata/managedFields/0/fieldsV1"),
            fresh.pointer("/metadata/managedFields/0/fieldsV1")
        );
        // Applying it again changes nothing.
        let rv = c.resource_version();
        let again = block_on(c.apply(final_cfg, &opts)).expect("re-apply");
        prop_assert_eq!(again, last);
        prop_assert_eq!(c.resource_version(), rv);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A `kubectl edit` of fields the configuration sets is drift: a forced
    /// re-apply restores exactly the configuration, and the editor owns
    /// nothing afterwards.
    #[test]
    fn forced_apply_takes_back_edits(cfg in arb_config(), new_image in 0u8..5, new_replicas in 0u8..9) {
        let opts = ApplyOptions::default();
        let c = MemoryCluster::new();
        let applied = block_on(c.apply(&cfg, &opts)).expect("apply");
        let edited = c
            .edit(&cfg.id(), "kubectl-edit", |v| {
                v["spec"]["template"]["spec"]["containers"][0]["image"] = json!(format!("edited:{new_image}"));
                if v["spec"].get("replicas").is_some() {
                    v["spec"]["replicas"] = json!(new_replicas);
                }
                if let Some(labels) = v["metadata"].get_mut("labels").and_then(Value::as_object_mut) {
                    for l in labels.values_mut() {
                        *l = json!("edited");
                    }
                }
            })
            .expect("edit");
        prop_assert_ne!(content(&edited), content(&applied));
        let back = block_on(c.apply(&cfg, &opts)).expect("forced re-apply");
        prop_assert_eq!(content(&back), content(&applied));
        let managers: Vec<Value> = back
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|e| e["manager"].clone()).collect())
            .unwrap_or_default();
        prop_assert_eq!(managers, vec![json!("kustomize-controller")]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The planner, reading the live object's `managedFields`, calls it
    /// configured exactly when a forced apply of the new configuration
    /// would change it (the embedded cluster's dry run is the oracle):
    /// fields Git changed or dropped, and fields another manager edited.
    #[test]
    fn plan_sees_drift_exactly_when_an_apply_would_change_the_object(
        old in arb_config(),
        other in arb_config(),
        drop_from_old in prop::option::of(0usize..6),
        edit in any::<bool>(),
        new_image in 0u8..5,
    ) {
        // the new configuration: another one, or the old one with one field
        // dropped (only the managed-field set shows that drift)
        let new = match drop_from_old {
            None => other,
            Some(n) => without_one_field(&old, n),
        };
        let opts = ApplyOptions::default();
        let c = MemoryCluster::new();
        block_on(c.apply(&old, &opts)).expect("apply");
        if edit {
            c.edit(&old.id(), "kubectl-edit", |v| {
                v["spec"]["template"]["spec"]["containers"][0]["image"] =
                    json!(format!("edited:{new_image}"));
            })
            .expect("edit");
        }
        let live = block_on(c.get(&new.id())).expect("get").expect("exists");
        let dry_run = ApplyOptions { dry_run: true, ..ApplyOptions::default() };
        let would_be = block_on(c.apply(&new, &dry_run)).expect("dry run");
        let live_map = std::collections::BTreeMap::from([(live.id(), live.clone())]);
        let p = plan(
            std::slice::from_ref(&new),
            &live_map,
            &Inventory::from_objects([&new]),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .expect("plan");
        let change = &p.stages[0].changes[0];
        prop_assert_eq!(
            change.action == Action::Configured,
            content(&would_be) != content(&live),
            "drift {:?}\nlive {}\nwould be {}",
            change.drift,
            content(&live),
            content(&would_be)
        );
        if change.action != Action::Configured {
            prop_assert_eq!(change.action, Action::Unchanged);
        }
    }
}

/// `o` without one of the fields a configuration may drop, chosen by `n`:
/// a label, the replicas, an env var, a port, a whole container, or the
/// image.
fn without_one_field(o: &Object, n: usize) -> Object {
    let mut v = o.value().clone();
    let containers = &mut v["spec"]["template"]["spec"]["containers"];
    match n {
        0 => {
            if let Some(labels) = v["metadata"]
                .get_mut("labels")
                .and_then(Value::as_object_mut)
            {
                let first = labels.keys().next().cloned();
                first.map(|k| labels.remove(&k));
            }
        }
        1 => {
            v["spec"].as_object_mut().map(|s| s.remove("replicas"));
        }
        2 => {
            containers[0]
                .get_mut("env")
                .and_then(Value::as_array_mut)
                .map(Vec::pop);
        }
        3 => {
            containers[0].as_object_mut().map(|c| c.remove("env"));
        }
        4 => {
            if containers.as_array().is_some_and(|c| c.len() > 1) {
                containers.as_array_mut().map(Vec::pop);
            }
        }
        _ => {
            containers[0].as_object_mut().map(|c| c.remove("image"));
        }
    }
    Object::new(v).expect("still valid")
}

/// Arbitrary JSON, biased towards the shapes the cluster looks into
/// (associative lists, label maps).
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("name".to_string()),
            Just("containers".to_string()),
            Just("ports".to_string()),
            Just("port".to_string()),
            Just("protocol".to_string()),
            Just("env".to_string()),
            Just("containerPort".to_string()),
            Just("selector".to_string()),
            "[a-z]{1,3}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No input panics: arbitrary specs, labels and edits give objects or
    /// errors, and whatever was stored can be applied over again.
    #[test]
    fn arbitrary_input_never_panics(
        spec1 in arb_json(),
        spec2 in arb_json(),
        labels in arb_json(),
        kind in prop_oneof![Just("Deployment"), Just("Service"), Just("ConfigMap"), Just("Secret"), Just("Job")],
    ) {
        let api = match kind { "Deployment" => "apps/v1", "Job" => "batch/v1", _ => "v1" };
        let make = |spec: &Value| {
            Object::new(json!({
                "apiVersion": api, "kind": kind,
                "metadata": {"name": "x", "namespace": "default", "labels": labels.clone()},
                "spec": spec, "data": spec,
            }))
            .expect("valid shape")
        };
        let c = MemoryCluster::new();
        let opts = ApplyOptions::default();
        let first = block_on(c.apply(&make(&spec1), &opts));
        let _ = block_on(c.apply(&make(&spec2), &ApplyOptions { field_manager: "other".into(), force_conflicts: false, ..ApplyOptions::default() }));
        let _ = c.edit(&make(&spec1).id(), "kubectl-edit", |v| v["spec"] = spec2.clone());
        let _ = block_on(c.apply(&make(&spec1), &opts));
        if let (Ok(_), Some(live)) = (first, c.object(&make(&spec1).id())) {
            // What was accepted once is accepted again over whatever others did.
            let again = block_on(c.apply(&make(&spec1), &opts));
            prop_assert!(again.is_ok(), "{:?} over {}", again, live.value());
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Apply(u8, Vec<(u8, u8)>),
    Edit(u8, u8),
    Delete(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, prop::collection::vec((0u8..3, 0u8..3), 0..3)).prop_map(|(n, d)| Op::Apply(n, d)),
        (0u8..3, 0u8..3).prop_map(|(n, v)| Op::Edit(n, v)),
        (0u8..3).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A persisted cluster reopened holds exactly what the running one held,
    /// and keeps counting from where it stopped.
    #[test]
    fn reopened_state_equals_running_state(ops in prop::collection::vec(arb_op(), 1..8)) {
        let dir = tempfile::tempdir().expect("tempdir");
        // Process durability: same files and renames, no fsync (fast).
        let c = MemoryCluster::open_with(dir.path(), Durability::Process).expect("open");
        let opts = ApplyOptions::default();
        let mut seen_uids = Vec::new();
        let cm = |n: u8, data: &[(u8, u8)]| {
            let d: Map<String, Value> = data.iter().map(|(k, v)| (format!("k{k}"), json!(format!("v{v}")))).collect();
            Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{n}"), "namespace": "default"}, "data": d}))
                .expect("valid")
        };
        for op in &ops {
            match op {
                Op::Apply(n, d) => {
                    let live = block_on(c.apply(&cm(*n, d), &opts)).expect("apply");
                    seen_uids.push(live.pointer("/metadata/uid").cloned().expect("uid"));
                }
                Op::Edit(n, v) => { let _ = c.edit(&cm(*n, &[]).id(), "kubectl-edit", |o| o["data"]["k0"] = json!(format!("e{v}"))); }
                Op::Delete(n) => block_on(c.delete(&cm(*n, &[]).id(), &opts)).expect("delete"),
            }
        }
        let objects = c.objects();
        let rv = c.resource_version();
        drop(c);
        let reopened = MemoryCluster::open_with(dir.path(), Durability::Process).expect("reopen");
        prop_assert_eq!(reopened.objects(), objects.clone());
        prop_assert!(reopened.resource_version() >= rv);
        let next = block_on(reopened.apply(&cm(7, &[(1, 1)]), &opts)).expect("apply after reopen");
        let next_rv: u64 = next.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).expect("rv");
        prop_assert!(next_rv > rv);
        // uids are never reused, not even those of deleted objects.
        let uid = next.pointer("/metadata/uid").expect("uid");
        prop_assert!(!seen_uids.contains(uid));
    }
}
