//! Overlay merging: strategic merge patch and JSON 6902.
//!
//! The strategic merge follows kustomize (kyaml `merge2` with list
//! prepending): maps merge key by key, `null` deletes, lists of a known
//! type merge by their `patchMergeKey` with the patch's items first, lists
//! of primitives with `patchStrategy: merge` are unioned, and every other
//! list is replaced. `$patch: delete`, `$patch: replace` and `$patch: merge`
//! are honoured on maps and list items. Kinds the [`MergeSchema`] does not
//! know merge as a JSON merge patch (lists replaced). Like kustomize, the
//! directives `$setElementOrder`, `$retainKeys` and
//! `$deleteFromPrimitiveList` are not interpreted: they are kept as fields.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::schema::merge::{ListStrategy, MergeSchema, SchemaCursor};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A `$patch` directive with an unknown value.
    #[error("field {field}: unknown $patch directive {value:?}")]
    UnknownDirective {
        /// Where the directive was found.
        field: String,
        /// The directive's value.
        value: String,
    },
    /// A JSON 6902 patch document is malformed.
    #[error("invalid JSON 6902 patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON 6902 operation failed.
    #[error("JSON 6902 patch failed: {0}")]
    JsonPatchFailed(String),
    /// A JSON 6902 operation would write more nodes than were left.
    #[error("JSON 6902 operation '/{0}' writes more nodes than the budget has left")]
    TooManyNodes(usize),
}

/// Applies a strategic merge patch to `target` using the merge keys for
/// `group`/`kind` from `schema`. Returns `None` when the patch deletes the
/// whole object (`$patch: delete` at the top).
pub fn strategic_merge(
    target: &Value,
    patch: &Value,
    schema: &MergeSchema,
    group: &str,
    kind: &str,
) -> Result<Option<Value>, MergeError> {
    let cursor = schema.cursor(group, kind);
    merge_value(Some(target.clone()), patch, cursor, "", Mode::Kustomize)
}

/// Like [`strategic_merge`], but consumes the target (no copy is made).
pub fn strategic_merge_owned(
    target: Value,
    patch: &Value,
    schema: &MergeSchema,
    group: &str,
    kind: &str,
) -> Result<Option<Value>, MergeError> {
    let cursor = schema.cursor(group, kind);
    merge_value(Some(target), patch, cursor, "", Mode::Kustomize)
}

/// Which strategic merge flavour to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// kustomize v5 (kyaml `merge2`): new list items first, the directives
    /// `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList` kept
    /// as plain fields.
    Kustomize,
    /// The Kubernetes API server: new list items last, and those three
    /// directives interpreted.
    Kubernetes,
}

/// Applies a strategic merge patch with the Kubernetes API server's
/// semantics (as `kubectl patch --type strategic` does): merge keys from
/// `schema`, new list items appended, and `$setElementOrder/<list>`,
/// `$retainKeys` and `$deleteFromPrimitiveList/<list>` interpreted.
/// Returns `None` when the patch deletes the object.
pub fn strategic_merge_kubernetes(
    target: &Value,
    patch: &Value,
    schema: &MergeSchema,
    group: &str,
    kind: &str,
) -> Result<Option<Value>, MergeError> {
    let cursor = schema.cursor(group, kind);
    merge_value(Some(target.clone()), patch, cursor, "", Mode::Kubernetes)
}

/// Applies a strategic merge patch to `target` with no schema, i.e. as a
/// JSON merge patch that also honours `$patch` directives.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Option<Value>, MergeError> {
    let schema = MergeSchema::default();
    merge_value(
        Some(target.clone()),
        patch,
        SchemaCursor::none(&schema),
        "",
        Mode::Kustomize,
    )
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn directive<'a>(m: &'a Map<String, Value>, path: &str) -> Result<Option<&'a str>, MergeError> {
    match m.get("$patch") {
        None => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "delete" | "replace" | "merge" => Ok(Some(s.as_str())),
            other => Err(MergeError::UnknownDirective {
                field: path.to_string(),
                value: other.to_string(),
            }),
        },
        Some(other) => Err(MergeError::UnknownDirective {
            field: path.to_string(),
            value: other.to_string(),
        }),
    }
}

/// Merges `patch` into `dest` (absent when `None`). `None` result: delete.
fn merge_value(
    dest: Option<Value>,
    patch: &Value,
    cursor: SchemaCursor<'_>,
    path: &str,
    mode: Mode,
) -> Result<Option<Value>, MergeError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(pm) => {
            match directive(pm, path)? {
                Some("delete") => return Ok(None),
                Some("replace") => {
                    let mut out = Map::new();
                    for (k, v) in pm {
                        if k == "$patch" {
                            continue;
                        }
                        let (_, c) = cursor.field(k);
                        if let Some(v) = merge_value(None, v, c, &join(path, k), mode)? {
                            out.insert(k.clone(), v);
                        }
                    }
                    return Ok(Some(Value::Object(out)));
                }
                _ => {}
            }
            let mut out = match dest {
                Some(Value::Object(dm)) => dm,
                _ => Map::new(),
            };
            for (k, pv) in pm {
                if k == "$patch" {
                    continue;
                }
                if mode == Mode::Kubernetes
                    && (k == "$retainKeys"
                        || k.starts_with("$setElementOrder/")
                        || k.starts_with("$deleteFromPrimitiveList/"))
                {
                    continue;
                }
                let (list, c) = cursor.field(k);
                let p = join(path, k);
                let cur = out.remove(k);
                let merged = match pv {
                    Value::Array(items) => {
                        merge_list(cur, items, list, c, &p, mode)?.map(Value::Array)
                    }
                    _ => merge_value(cur, pv, c, &p, mode)?,
                };
                match merged {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            if mode == Mode::Kubernetes {
                kubernetes_directives(pm, &mut out, cursor);
            }
            Ok(Some(Value::Object(out)))
        }
        Value::Array(items) => {
            merge_list(dest, items, None, cursor, path, mode).map(|o| o.map(Value::Array))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn scalar_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn clean_items(
    items: &[Value],
    cursor: SchemaCursor<'_>,
    path: &str,
    mode: Mode,
) -> Result<Vec<Value>, MergeError> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match it {
            Value::Object(m) => {
                if directive(m, path)?.is_some() && m.len() == 1 {
                    continue;
                }
                if let Some(v) = merge_value(None, it, cursor, path, mode)? {
                    out.push(v);
                }
            }
            Value::Array(inner) => out.push(Value::Array(clean_items(inner, cursor, path, mode)?)),
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

fn merge_list(
    dest: Option<Value>,
    items: &[Value],
    strategy: Option<&ListStrategy>,
    cursor: SchemaCursor<'_>,
    path: &str,
    mode: Mode,
) -> Result<Option<Vec<Value>>, MergeError> {
    // `- $patch: replace` anywhere in the list replaces it with the rest.
    let replace = items.iter().any(|i| {
        i.as_object()
            .and_then(|m| m.get("$patch"))
            .and_then(Value::as_str)
            == Some("replace")
    });
    let keyed = matches!(strategy, Some(ListStrategy::MergeByKey(_)));
    let dest_items = match dest {
        Some(Value::Array(d)) if !replace => d,
        // a new keyed list is walked item by item; any other list is
        // copied as written, directives and nulls included (kyaml does so)
        _ if keyed => return Ok(Some(clean_items(items, cursor, path, mode)?)),
        _ if matches!(strategy, Some(ListStrategy::MergePrimitives)) => {
            let mut out: Vec<Value> = Vec::new();
            for v in items {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return Ok(Some(out));
        }
        _ => return Ok(Some(items.to_vec())),
    };
    match strategy {
        Some(ListStrategy::MergeByKey(k)) => {
            let all_maps =
                items.iter().all(|i| i.is_object()) && dest_items.iter().all(|i| i.is_object());
            if !all_maps {
                return Ok(Some(items.to_vec()));
            }
            merge_keyed(dest_items, items, k, cursor, path, mode).map(Some)
        }
        Some(ListStrategy::MergePrimitives) => {
            let mut out: Vec<Value> = Vec::new();
            let ordered: Vec<&Value> = if mode == Mode::Kubernetes {
                dest_items.iter().chain(items.iter()).collect()
            } else {
                items.iter().chain(dest_items.iter()).collect()
            };
            for v in ordered {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Some(out))
        }
        _ => Ok(Some(items.to_vec())),
    }
}

fn merge_keyed(
    dest: Vec<Value>,
    patch: &[Value],
    key: &str,
    cursor: SchemaCursor<'_>,
    path: &str,
    mode: Mode,
) -> Result<Vec<Value>, MergeError> {
    // Order: the patch's keys first, in patch order, then the rest of dest.
    let mut order: Vec<String> = Vec::new();
    let mut keyless: Vec<Value> = Vec::new();
    let ordered: Vec<&Value> = if mode == Mode::Kubernetes {
        dest.iter().chain(patch.iter()).collect()
    } else {
        patch.iter().chain(dest.iter()).collect()
    };
    for it in ordered {
        match it.get(key).and_then(scalar_key) {
            Some(k) if !order.contains(&k) => order.push(k),
            Some(_) => {}
            None => {}
        }
    }
    // dest items by key (first wins, like a lookup would)
    let mut by_key: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for it in dest {
        match it.get(key).and_then(scalar_key) {
            Some(k) => {
                by_key.entry(k).or_insert(it);
            }
            None => keyless.push(it),
        }
    }
    let mut out = Vec::with_capacity(order.len() + keyless.len());
    for k in &order {
        let d = by_key.remove(k);
        let p = patch
            .iter()
            .find(|i| i.get(key).and_then(scalar_key).as_deref() == Some(k.as_str()));
        match (d, p) {
            (Some(d), None) => out.push(d),
            (d, Some(p)) => {
                if let Some(v) = merge_value(d, p, cursor, path, mode)? {
                    out.push(v);
                }
            }
            (None, None) => {}
        }
    }
    // Patch items without the key (other than directives) are added as is.
    for it in patch {
        if it.get(key).and_then(scalar_key).is_none() {
            if let Some(m) = it.as_object() {
                if m.contains_key("$patch") {
                    continue;
                }
            }
            if let Some(v) = merge_value(None, it, cursor, path, mode)? {
                out.push(v);
            }
        }
    }
    out.extend(keyless);
    Ok(out)
}

/// `$retainKeys`, `$setElementOrder/<list>` and
/// `$deleteFromPrimitiveList/<list>` of one patch map, applied to its merge
/// result.
fn kubernetes_directives(
    pm: &Map<String, Value>,
    out: &mut Map<String, Value>,
    cursor: SchemaCursor<'_>,
) {
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (out.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
        }
    }
    for (k, v) in pm {
        let Some(field) = k.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let Value::Array(order) = v else { continue };
        let key = match cursor.field(field).0 {
            Some(ListStrategy::MergeByKey(k)) => Some(k.clone()),
            _ => None,
        };
        let ident = |x: &Value| -> Option<String> {
            match &key {
                Some(k) => x.get(k).and_then(scalar_key),
                None => scalar_key(x),
            }
        };
        let wanted: Vec<String> = order.iter().filter_map(ident).collect();
        if let Some(Value::Array(list)) = out.get_mut(field) {
            let mut items = std::mem::take(list);
            let mut sorted = Vec::with_capacity(items.len());
            for w in &wanted {
                if let Some(pos) = items
                    .iter()
                    .position(|x| ident(x).as_deref() == Some(w.as_str()))
                {
                    sorted.push(items.remove(pos));
                }
            }
            sorted.extend(items);
            *list = sorted;
        }
    }
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
}

/// Applies a JSON 6902 patch (a list of operations) to `target`.
pub fn json6902(target: &mut Value, ops: &Value) -> Result<(), MergeError> {
    apply_json6902(target, &parse_json6902(ops)?)
}

/// Reads a list of JSON 6902 operations once, to apply it to many objects.
pub fn parse_json6902(ops: &Value) -> Result<json_patch::Patch, MergeError> {
    json_patch::Patch::deserialize(ops).map_err(|e| MergeError::InvalidJsonPatch(e.to_string()))
}

/// Applies parsed JSON 6902 operations; on failure `target` is unchanged.
pub fn apply_json6902(target: &mut Value, patch: &json_patch::Patch) -> Result<(), MergeError> {
    json_patch::patch(target, &patch.0).map_err(|e| MergeError::JsonPatchFailed(e.to_string()))
}

/// Applies parsed JSON 6902 operations one at a time, taking the nodes
/// each one writes (the value of an `add` or a `replace`, the subtree a
/// `copy` duplicates) from `budget` before it runs: a patch whose every
/// `copy` doubles the document stops when the budget is spent, not when
/// memory is. On failure `target` may hold the operations before the one
/// that failed (the caller drops it).
pub fn apply_json6902_within(
    target: &mut Value,
    patch: &json_patch::Patch,
    budget: &mut usize,
) -> Result<(), MergeError> {
    use json_patch::PatchOperation;
    for (i, op) in patch.0.iter().enumerate() {
        let cost = match op {
            PatchOperation::Add(a) => nodes_up_to(&a.value, *budget),
            PatchOperation::Replace(r) => nodes_up_to(&r.value, *budget),
            PatchOperation::Copy(c) => target
                .pointer(c.from.as_str())
                .map_or(0, |v| nodes_up_to(v, *budget)),
            _ => 0,
        };
        if cost > *budget {
            return Err(MergeError::TooManyNodes(i));
        }
        *budget -= cost;
        json_patch::patch(target, std::slice::from_ref(op)).map_err(|mut e| {
            e.operation = i;
            MergeError::JsonPatchFailed(e.to_string())
        })?;
    }
    Ok(())
}

/// The nodes of `v` (every value, container or scalar), counted no further
/// than `cap + 1`, so that the walk costs no more than the budget it
/// checks.
pub(crate) fn nodes_up_to(v: &Value, cap: usize) -> usize {
    let mut n = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        if n > cap {
            return n;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json6902_within_a_budget() {
        let ops = json!([
            {"op": "add", "path": "/a", "value": [1, 2]},
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "copy", "from": "", "path": "/c"}
        ]);
        let patch = parse_json6902(&ops).unwrap();
        let mut doc = json!({});
        let mut budget = 100;
        apply_json6902_within(&mut doc, &patch, &mut budget).unwrap();
        // 3 + 3 + the whole document (1 + 3 + 3)
        assert_eq!(budget, 100 - 13);
        let mut doc = json!({});
        let mut budget = 12;
        let e = apply_json6902_within(&mut doc, &patch, &mut budget).unwrap_err();
        assert_eq!(e, MergeError::TooManyNodes(2));
        // failures keep the operation's index
        let ops = json!([{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/x"}]);
        let e = apply_json6902_within(&mut json!({}), &parse_json6902(&ops).unwrap(), &mut 10)
            .unwrap_err();
        assert!(e.to_string().contains("operation '/1'"), "{e}");
    }

    #[test]
    fn containers_merge_by_name_patch_first() {
        let s = MergeSchema::kubernetes();
        let base = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "c"}, {"name": "a", "image": "a2"}]}}}});
        let out = strategic_merge(&base, &patch, &s, "apps", "Deployment")
            .unwrap()
            .unwrap();
        let names: Vec<_> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "a2"
        );
    }

    #[test]
    fn unknown_kind_replaces_lists_and_null_deletes() {
        let s = MergeSchema::kubernetes();
        let base = json!({"spec": {"items": [{"name": "a"}], "x": 1, "y": 2}});
        let patch = json!({"spec": {"items": [{"name": "b"}], "x": null}});
        let out = strategic_merge(&base, &patch, &s, "example.com", "Foo")
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"spec": {"items": [{"name": "b"}], "y": 2}}));
    }

    #[test]
    fn delete_directive_on_item_and_top() {
        let s = MergeSchema::kubernetes();
        let base = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        let out = strategic_merge(&base, &patch, &s, "", "Pod")
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"spec": {"containers": [{"name": "b"}]}}));
        let gone = strategic_merge(&base, &json!({"$patch": "delete"}), &s, "", "Pod").unwrap();
        assert!(gone.is_none());
    }

    #[test]
    fn kubernetes_flavour_interprets_directives() {
        let s = MergeSchema::kubernetes();
        let base = json!({"metadata": {"finalizers": ["a", "b", "c"]},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]},
            "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                     "containers": [{"name": "c"}],
                     "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = strategic_merge_kubernetes(&base, &patch, &s, "", "Pod")
            .unwrap()
            .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // new items go last without an explicit order
        let out = strategic_merge_kubernetes(
            &base,
            &json!({"spec": {"containers": [{"name": "z"}]}}),
            &s,
            "",
            "Pod",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b"}, {"name": "z"}])
        );
    }

    #[test]
    fn json6902_ops() {
        let mut v = json!({"a": [1, 2]});
        json6902(&mut v, &json!([{"op": "add", "path": "/a/-", "value": 3}])).unwrap();
        assert_eq!(v, json!({"a": [1, 2, 3]}));
        assert!(json6902(&mut v, &json!([{"op": "remove", "path": "/zz"}])).is_err());
    }
}
