//! Diffing desired objects against live ones. Pure functions.
//!
//! Live objects carry server-owned noise (status, managedFields,
//! resourceVersion, ...). [`normalize`] removes it. [`diff_object`] then
//! compares the desired object with the live one the way server-side apply
//! sees it: every field the desired object sets must have the same value
//! live, and every field the field manager applied before but that is no
//! longer in Git is drift too (the apply would remove it). Fields that other
//! managers added and Git does not mention are not drift, as in Flux.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::object::Object;

mod fields;
pub mod text;

pub use fields::{managed_paths, owned_paths, FieldPath, Segment};

/// Annotations that never count as part of the desired state.
pub const IGNORED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

/// Removes server-owned fields from a live object: `status` (kept on CRDs),
/// `metadata.managedFields`, `resourceVersion`, `uid`, `generation`,
/// `creationTimestamp`, `selfLink` and the last-applied annotations.
pub fn normalize(live: &Object) -> Object {
    let mut v = live.value().clone();
    if let Some(root) = v.as_object_mut() {
        if live.kind() != "CustomResourceDefinition" {
            root.remove("status");
        }
        if let Some(md) = root.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
                "selfLink",
            ] {
                md.remove(k);
            }
            let mut drop_annotations = false;
            if let Some(ann) = md.get_mut("annotations").and_then(Value::as_object_mut) {
                for k in IGNORED_ANNOTATIONS {
                    ann.remove(*k);
                }
                drop_annotations = ann.is_empty();
            }
            if drop_annotations {
                md.remove("annotations");
            }
        }
    }
    Object::new(v).unwrap_or_else(|_| live.clone())
}

/// One field that differs between Git and the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field path, e.g. `.spec.template.spec.containers[name=app].image`.
    pub path: String,
    /// The live value; `None` when the field is absent live.
    pub live: Option<Value>,
    /// The desired value; `None` when Git no longer sets the field.
    pub desired: Option<Value>,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| match v {
            None => "<absent>".to_string(),
            Some(v) => serde_json::to_string(v).unwrap_or_default(),
        };
        write!(
            f,
            "{}: {} -> {}",
            self.path,
            show(&self.live),
            show(&self.desired)
        )
    }
}

/// The keys that identify items of associative lists in built-in types, in
/// the order they are tried. Lists whose items all carry one of these keys,
/// with unique values, are compared item by item; other lists as a whole.
const LIST_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "mountPath",
    "devicePath",
    "ip",
    "topologyKey",
];

fn list_key(desired: &[Value], live: &[Value]) -> Option<&'static str> {
    LIST_KEYS.iter().copied().find(|k| {
        let unique = |items: &[Value]| {
            let mut seen = std::collections::BTreeSet::new();
            items.iter().all(|i| {
                i.get(k)
                    .is_some_and(|v| !v.is_object() && !v.is_array() && seen.insert(v.to_string()))
            })
        };
        !desired.is_empty() && unique(desired) && unique(live)
    })
}

fn key_segment(key: &str, value: &Value) -> String {
    match value {
        Value::String(s) => format!("[{key}={s}]"),
        other => format!("[{key}={other}]"),
    }
}

/// Values equal as the API server would store them: numbers compare by value
/// (`1` and `1.0`), everything else structurally.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn walk(path: &str, desired: &Value, live: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (desired, live) {
        (Value::Object(d), Some(Value::Object(l))) => {
            for (k, dv) in d {
                // an explicit null in a config means "unset"
                if dv.is_null() {
                    if let Some(lv) = l.get(k) {
                        out.push(FieldChange {
                            path: format!("{path}.{k}"),
                            live: Some(lv.clone()),
                            desired: None,
                        });
                    }
                    continue;
                }
                walk(&format!("{path}.{k}"), dv, l.get(k), out);
            }
        }
        (Value::Array(d), Some(Value::Array(l))) => match list_key(d, l) {
            Some(key) => {
                let mut matched = true;
                for item in d {
                    let kv = &item[key];
                    let seg = key_segment(key, kv);
                    let li = l.iter().find(|i| i.get(key) == Some(kv));
                    if li.is_none() {
                        matched = false;
                    }
                    walk(&format!("{path}{seg}"), item, li, out);
                }
                // order and extra live items matter for a list Git fully owns
                let order_differs = matched
                    && (l.len() != d.len()
                        || l.iter().zip(d).any(|(a, b)| a.get(key) != b.get(key)));
                if order_differs {
                    out.push(FieldChange {
                        path: path.to_string(),
                        live: Some(Value::Array(l.clone())),
                        desired: Some(Value::Array(d.clone())),
                    });
                }
            }
            None => {
                let same = d.len() == l.len()
                    && d.iter().zip(l).all(|(a, b)| {
                        let mut sub = Vec::new();
                        walk("", a, Some(b), &mut sub);
                        sub.is_empty() && (a.is_object() || equal(a, b))
                    });
                if !same {
                    out.push(FieldChange {
                        path: path.to_string(),
                        live: Some(Value::Array(l.clone())),
                        desired: Some(desired.clone()),
                    });
                }
            }
        },
        (d, Some(l)) if equal(d, l) => {}
        (d, l) => out.push(FieldChange {
            path: path.to_string(),
            live: l.cloned(),
            desired: Some(d.clone()),
        }),
    }
}

/// The drift between a desired object and its live counterpart.
///
/// `live` is the object as read from the cluster (not yet normalized);
/// `field_manager` names the manager whose earlier applies count (Flux:
/// `kustomize-controller`). Returns the changes in a stable order: desired
/// fields in key order, then fields that Git dropped.
pub fn diff_object(desired: &Object, live: &Object, field_manager: &str) -> Vec<FieldChange> {
    let norm = normalize(live);
    let mut out = Vec::new();
    let mut d = desired.value().clone();
    // status is never part of what Flux applies
    if desired.kind() != "CustomResourceDefinition" {
        if let Some(m) = d.as_object_mut() {
            m.remove("status");
        }
    }
    walk("", &d, Some(norm.value()), &mut out);
    // fields this manager applied before that Git no longer sets
    for owned in owned_paths(live, field_manager) {
        if owned.lookup(&d).is_none() {
            if let Some(lv) = owned.lookup(norm.value()) {
                if owned.is_metadata_noise() {
                    continue;
                }
                out.push(FieldChange {
                    path: owned.to_string(),
                    live: Some(lv.clone()),
                    desired: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    // a dropped list item or map is reported once, not once per leaf
    let removed: Vec<String> = out
        .iter()
        .filter(|c| c.desired.is_none())
        .map(|c| c.path.clone())
        .collect();
    out.retain(|c| {
        c.desired.is_some()
            || !removed.iter().any(|r| {
                c.path.len() > r.len()
                    && c.path.starts_with(r.as_str())
                    && matches!(c.path.as_bytes()[r.len()], b'.' | b'[')
            })
    });
    out
}

/// The fields of `desired` covered by immutable-field rules whose values
/// differ from `live`, as dotted paths (`spec.selector`).
pub fn immutable_changes(desired: &Object, live: &Object, pointers: &[&str]) -> Vec<String> {
    pointers
        .iter()
        .filter_map(|p| {
            let d = desired.pointer(p)?;
            let l = live.pointer(p)?;
            (!equal(d, l)).then(|| p.trim_start_matches('/').replace('/', "."))
        })
        .collect()
}

/// Masks the values of a Secret's `data` and `stringData` so that they never
/// show in diffs, logs or plans. Equal values mask equally within one
/// change set; different values mask differently, as `flux diff` does.
pub fn mask_secret(value: &mut Value) {
    let is_secret = value.get("kind").and_then(Value::as_str) == Some("Secret")
        && value.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_secret {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(m) = value.get_mut(field).and_then(Value::as_object_mut) {
            mask_map(m);
        }
    }
}

fn mask_map(m: &mut Map<String, Value>) {
    for v in m.values_mut() {
        *v = Value::String("*** (masked)".to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::new(v).unwrap()
    }

    #[test]
    fn normalize_drops_server_fields() {
        let live = obj(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "1", "resourceVersion": "5", "generation": 2,
                "creationTimestamp": "x", "managedFields": [],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "status": {"x": 1}, "data": {"k": "v"}
        }));
        assert_eq!(
            normalize(&live).value(),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn drift_is_field_level_and_ignores_foreign_fields() {
        let desired = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}}),
        );
        let live = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labels": {"added": "by-kubectl"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "x:1", "imagePullPolicy": "Always"}]}}}}),
        );
        let d = diff_object(&desired, &live, "kustomize-controller");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, ".spec.replicas");
        assert_eq!(d[0].to_string(), ".spec.replicas: 3 -> 2");
        let same = diff_object(
            &desired,
            &obj(desired.value().clone()),
            "kustomize-controller",
        );
        assert!(same.is_empty());
    }

    #[test]
    fn dropped_owned_field_is_drift() {
        let desired = obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
        );
        let live = obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "managedFields": [{"manager": "kustomize-controller", "operation": "Apply",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}, "f:old": {}}}},
                {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:theirs": {}}}}]},
            "data": {"k": "v", "old": "gone", "theirs": "kept"}}));
        let d = diff_object(&desired, &live, "kustomize-controller");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, ".data.old");
        assert_eq!(d[0].desired, None);
    }

    #[test]
    fn immutable_fields_are_named() {
        let a = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"selector": {"matchLabels": {"app": "a"}}}}),
        );
        let b = obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"selector": {"matchLabels": {"app": "b"}}}}),
        );
        assert_eq!(
            immutable_changes(&a, &b, &["/spec/selector"]),
            vec!["spec.selector"]
        );
        assert!(immutable_changes(&a, &a, &["/spec/selector"]).is_empty());
    }
}
