//! Properties of server-side apply with one field manager: the live object
//! depends only on the last applied configuration, never on history, and a
//! repeated apply changes nothing.

use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
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
