//! Properties of the strategic merge patch:
//! - applying the same patch twice equals applying it once;
//! - an empty patch is the identity;
//! - the result never depends on the order of map keys in the YAML input.

use driftless::render::merge::{strategic_merge, strategic_merge_kubernetes};
use driftless::schema::merge::MergeSchema;
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "spec",
    "template",
    "containers",
    "env",
    "ports",
    "name",
    "value",
    "image",
    "finalizers",
    "metadata",
    "labels",
    "a",
    "b",
    "volumes",
    "args",
];
const NAMES: &[&str] = &["app", "side", "init", "x"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (0i64..100).prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::String),
    ]
}

/// Items of a keyed list always carry their merge key (`name`), as valid
/// Kubernetes objects do; a few carry `$patch: delete`.
fn named_item(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(NAMES),
        prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(n, fields, delete)| {
            let mut m = Map::new();
            for (k, v) in fields {
                m.insert(k.to_string(), v);
            }
            m.insert("name".into(), Value::String(n.to_string()));
            if delete {
                m.insert("$patch".into(), Value::String("delete".into()));
            }
            Value::Object(m)
        })
}

fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![scalar(), Just(Value::Null)].boxed();
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
            prop::collection::vec(named_item(inner.clone().boxed()), 0..4).prop_map(|mut v| {
                // unique names, like a valid list
                let mut seen = std::collections::BTreeSet::new();
                v.retain(|i| seen.insert(i["name"].as_str().unwrap_or_default().to_string()));
                Value::Array(v)
            }),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
    .boxed()
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(KEYS), value(), 0..5).prop_map(|m| {
        let mut o: Map<String, Value> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        o.insert("apiVersion".into(), Value::String("apps/v1".into()));
        o.insert("kind".into(), Value::String("Deployment".into()));
        Value::Object(o)
    })
}

/// Emits YAML (flow style) with map keys in reverse or forward order.
fn emit(v: &Value, reverse: bool, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            if reverse {
                keys.reverse();
            }
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                emit(&m[*k], reverse, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit(x, reverse, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

fn parse(text: &str) -> Value {
    let docs = driftless::yaml::load_documents("prop.yaml", text, &Default::default()).unwrap();
    docs.into_iter().next().unwrap_or(Value::Null)
}

fn apply(base: &Value, patch: &Value, s: &MergeSchema, kind: &str) -> Option<Value> {
    strategic_merge(base, patch, s, "apps", kind).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_twice_equals_once(base in object(), patch in object(), known in any::<bool>()) {
        let s = MergeSchema::kubernetes();
        let kind = if known { "Deployment" } else { "Custom" };
        let once = apply(&base, &patch, &s, kind);
        let twice = once.as_ref().and_then(|o| apply(o, &patch, &s, kind));
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn kubernetes_flavour_applying_twice_equals_once(base in object(), patch in object()) {
        let s = MergeSchema::kubernetes();
        let once = strategic_merge_kubernetes(&base, &patch, &s, "apps", "Deployment").unwrap();
        let twice = once
            .as_ref()
            .and_then(|o| strategic_merge_kubernetes(o, &patch, &s, "apps", "Deployment").unwrap());
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn empty_patch_is_identity(base in object(), known in any::<bool>()) {
        let s = MergeSchema::kubernetes();
        let kind = if known { "Deployment" } else { "Custom" };
        let out = apply(&base, &Value::Object(Map::new()), &s, kind);
        prop_assert_eq!(out, Some(base));
    }

    #[test]
    fn key_order_does_not_matter(base in object(), patch in object()) {
        let s = MergeSchema::kubernetes();
        let (mut b1, mut b2, mut p1, mut p2) = (String::new(), String::new(), String::new(), String::new());
        emit(&base, false, &mut b1);
        emit(&base, true, &mut b2);
        emit(&patch, false, &mut p1);
        emit(&patch, true, &mut p2);
        let r1 = apply(&parse(&b1), &parse(&p1), &s, "Deployment");
        let r2 = apply(&parse(&b2), &parse(&p2), &s, "Deployment");
        prop_assert_eq!(r1, r2);
    }
}
