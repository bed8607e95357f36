//! Reading Kubernetes' `managedFields` (the `FieldsV1` format).

use std::fmt;

use serde_json::{Map, Value};

use crate::object::Object;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// A map field (`f:<name>`).
    Field(String),
    /// A list item chosen by its key fields (`k:{"name":"app"}`), kept as
    /// canonical JSON.
    Key(String),
    /// A set item chosen by its value (`v:"x"`), kept as canonical JSON.
    Value(String),
    /// A list item by position (`i:0`).
    Index(usize),
}

/// A path to one field, as recorded in `managedFields`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.0 {
            match seg {
                Segment::Field(n) => write!(f, ".{n}")?,
                Segment::Key(k) => {
                    let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                    write!(f, "[{}]", super::key_segment(&fields))?
                }
                Segment::Value(v) => write!(f, "[={v}]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl FieldPath {
    /// Finds the value at this path.
    pub fn lookup<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut cur = root;
        for seg in &self.0 {
            cur = match seg {
                Segment::Field(n) => cur.get(n)?,
                Segment::Index(i) => cur.get(*i)?,
                Segment::Key(k) => {
                    let want: Map<String, Value> = serde_json::from_str(k).ok()?;
                    cur.as_array()?
                        .iter()
                        .find(|item| want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))?
                }
                Segment::Value(v) => {
                    let want: Value = serde_json::from_str(v).ok()?;
                    cur.as_array()?.iter().find(|item| **item == want)?
                }
            };
        }
        Some(cur)
    }
}

fn decode(node: &Value, prefix: &mut Vec<Segment>, out: &mut Vec<FieldPath>) {
    let Some(map) = node.as_object() else {
        return;
    };
    let mut leaf = true;
    for (k, child) in map {
        if k == "." {
            out.push(FieldPath(prefix.clone()));
            continue;
        }
        let seg = if let Some(n) = k.strip_prefix("f:") {
            Segment::Field(n.to_string())
        } else if let Some(j) = k.strip_prefix("k:") {
            Segment::Key(j.to_string())
        } else if let Some(j) = k.strip_prefix("v:") {
            Segment::Value(j.to_string())
        } else if let Some(i) = k.strip_prefix("i:") {
            match i.parse() {
                Ok(i) => Segment::Index(i),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        leaf = false;
        prefix.push(seg);
        decode(child, prefix, out);
        prefix.pop();
    }
    if leaf && !prefix.is_empty() {
        out.push(FieldPath(prefix.clone()));
    }
}

/// The leaf fields that `manager` owns through server-side apply, read from
/// the live object's `metadata.managedFields`, sorted.
pub fn owned_paths(live: &Object, manager: &str) -> Vec<FieldPath> {
    managed_paths(live, |m, op| m == manager && op == "Apply")
}

/// The leaf fields recorded in `metadata.managedFields` for the entries
/// `select(manager, operation)` picks, sorted and unique.
pub fn managed_paths(live: &Object, select: impl Fn(&str, &str) -> bool) -> Vec<FieldPath> {
    let mut out = Vec::new();
    let Some(entries) = live
        .value()
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return out;
    };
    for e in entries {
        let manager = e.get("manager").and_then(Value::as_str).unwrap_or_default();
        let operation = e
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !select(manager, operation) {
            continue;
        }
        if let Some(f) = e.get("fieldsV1") {
            decode(f, &mut Vec::new(), &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_fields_v1() {
        let live = Object::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "managedFields": [{"manager": "m", "operation": "Apply", "fieldsV1": {
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}}}))
        .unwrap();
        let paths: Vec<String> = owned_paths(&live, "m")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            paths,
            vec![
                ".spec.replicas",
                ".spec.template.spec.containers[name=app]",
                ".spec.template.spec.containers[name=app].image",
                ".spec.template.spec.containers[name=app].name",
            ]
        );
        let p = &owned_paths(&live, "m")[2];
        assert_eq!(p.lookup(live.value()), Some(&json!("i")));
        assert!(owned_paths(&live, "other").is_empty());
    }
}
