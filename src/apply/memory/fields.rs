//! Server-side-apply field sets, in Kubernetes' `FieldsV1` format.
//!
//! A field set is a set of paths. A path element is a field name (`f:name`)
//! or an item of an associative list, named by its key fields
//! (`k:{"name":"app"}`). Leaves (scalars, atomic lists, empty maps) and
//! list items are members; granular maps are not, exactly as
//! structured-merge-diff builds the set of an applied configuration.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pe {
    /// A field of a map: `f:<name>`.
    Field(String),
    /// An item of an associative list: `k:<compact JSON of the key fields>`.
    Key(String),
}

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => format!("k:{k}"),
        }
    }

    fn decode(s: &str) -> Result<Pe, String> {
        if let Some(f) = s.strip_prefix("f:") {
            return Ok(Pe::Field(f.to_string()));
        }
        if let Some(k) = s.strip_prefix("k:") {
            let v: Value = serde_json::from_str(k)
                .map_err(|e| format!("invalid key path element {s:?}: {e}"))?;
            if !v.is_object() {
                return Err(format!("invalid key path element {s:?}: not a JSON object"));
            }
            return Ok(Pe::Key(v.to_string()));
        }
        Err(format!(
            "unsupported path element {s:?} (only f: and k: elements are supported)"
        ))
    }
}

/// A path from the object's root.
pub(crate) type Path = Vec<Pe>;

/// A path as structured-merge-diff prints it: `.spec.containers[name="app"].image`.
pub(crate) fn path_string(path: &[Pe]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            Pe::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Pe::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
        }
    }
    out
}

/// A set of member paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(pub(crate) BTreeSet<Path>);

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }

    /// True when `p` or one of its descendants is a member.
    pub(crate) fn covers(&self, p: &Path) -> bool {
        self.0
            .range(p.clone()..)
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    /// Removes `p` and every descendant of `p`.
    pub(crate) fn remove_tree(&mut self, p: &Path) {
        let doomed: Vec<Path> = self
            .0
            .range(p.clone()..)
            .take_while(|q| q.starts_with(p))
            .cloned()
            .collect();
        for q in doomed {
            self.0.remove(&q);
        }
    }

    /// Encodes the set as a `fieldsV1` value.
    pub(crate) fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for pe in path {
                node = node.children.entry(pe.encode()).or_default();
            }
            node.member = true;
        }
        fn emit(node: &Node) -> Value {
            let mut m = Map::new();
            if node.member && !node.children.is_empty() {
                m.insert(".".to_string(), Value::Object(Map::new()));
            }
            for (k, child) in &node.children {
                m.insert(k.clone(), emit(child));
            }
            Value::Object(m)
        }
        emit(&root)
    }

    /// Decodes a `fieldsV1` value.
    pub(crate) fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        fn walk(
            v: &Value,
            path: &mut Path,
            out: &mut BTreeSet<Path>,
            depth: usize,
        ) -> Result<(), String> {
            if depth > 512 {
                return Err("fieldsV1 is nested too deeply".to_string());
            }
            let m = v
                .as_object()
                .ok_or_else(|| format!("fieldsV1 at {:?} is not a map", path_string(path)))?;
            if m.is_empty() && !path.is_empty() {
                out.insert(path.clone());
            }
            for (k, child) in m {
                if k == "." {
                    if !path.is_empty() {
                        out.insert(path.clone());
                    }
                    continue;
                }
                path.push(Pe::decode(k)?);
                walk(child, path, out, depth + 1)?;
                path.pop();
            }
            Ok(())
        }
        let mut out = BTreeSet::new();
        walk(v, &mut Vec::new(), &mut out, 0)?;
        Ok(FieldSet(out))
    }
}

/// The key fields that make a list associative, by the list's field name,
/// in order of preference (Kubernetes' `listMapKey`s for the common lists).
fn key_candidates(field: &str) -> &'static [&'static [&'static str]] {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => &[&["name"]],
        "volumeMounts" => &[&["mountPath"]],
        "volumeDevices" => &[&["devicePath"]],
        // Container ports, then Service ports.
        "ports" => &[&["containerPort", "protocol"], &["port", "protocol"]],
        "ownerReferences" => &[&["uid"]],
        "hostAliases" => &[&["ip"]],
        "topologySpreadConstraints" => &[&["topologyKey", "whenUnsatisfiable"]],
        _ => &[],
    }
}

/// The default of a key field the item may omit: the API server keys items
/// by the defaulted value (`protocol` is `TCP` unless set).
fn key_default(field: &str) -> Option<Value> {
    match field {
        "protocol" => Some(Value::String("TCP".to_string())),
        _ => None,
    }
}

fn is_scalar(v: &Value) -> bool {
    v.is_string() || v.is_number() || v.is_boolean()
}

/// The key fields of a list, when it is associative: the list's field name
/// is a known associative list and every item is a map holding each key as
/// a scalar (or a key with a default).
pub(crate) fn list_key(field: &str, items: &[Value]) -> Option<&'static [&'static str]> {
    if items.is_empty() {
        return None;
    }
    key_candidates(field).iter().copied().find(|keys| {
        items.iter().all(|i| {
            i.is_object()
                && keys.iter().all(|k| match i.get(*k) {
                    Some(v) => is_scalar(v),
                    None => key_default(k).is_some(),
                })
        })
    })
}

/// The compact JSON naming an item by its (defaulted) key fields.
fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for key in keys {
        if let Some(k) = item.get(*key).cloned().or_else(|| key_default(key)) {
            m.insert((*key).to_string(), k);
        }
    }
    Value::Object(m).to_string()
}

/// What a member path holds: a value (a leaf) or an item of a list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Leaf {
    /// A scalar, an atomic list or an empty map.
    Value(Value),
    /// An item of an associative list (its fields are members of their own).
    Item,
}

/// Every member path of a value (a stripped object), with what it holds.
pub(crate) fn collect(v: &Value) -> Result<BTreeMap<Path, Leaf>, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = v.as_object() {
        walk_map(m, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

fn walk_map(
    m: &Map<String, Value>,
    path: &mut Path,
    out: &mut BTreeMap<Path, Leaf>,
) -> Result<(), String> {
    for (k, child) in m {
        path.push(Pe::Field(k.clone()));
        match child {
            Value::Object(cm) if !cm.is_empty() => walk_map(cm, path, out)?,
            Value::Array(items) if list_key(k, items).is_some() => {
                let key = list_key(k, items).unwrap_or_default();
                let mut seen = BTreeSet::new();
                for item in items {
                    let ik = item_key(item, key);
                    if !seen.insert(ik.clone()) {
                        let shown = path_string(&[Pe::Key(ik)]);
                        return Err(format!(
                            "{}: duplicate entries for key {shown}",
                            path_string(path)
                        ));
                    }
                    path.push(Pe::Key(ik));
                    out.insert(path.clone(), Leaf::Item);
                    if let Some(im) = item.as_object() {
                        walk_map(im, path, out)?;
                    }
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone(), Leaf::Value(child.clone()));
            }
        }
        path.pop();
    }
    Ok(())
}

fn find_item(items: &[Value], key_json: &str) -> Option<usize> {
    let key: Map<String, Value> = serde_json::from_str(key_json).ok()?;
    items.iter().position(|i| {
        key.iter().all(|(k, v)| match i.get(k) {
            Some(iv) => iv == v,
            None => key_default(k).is_some_and(|d| &d == v),
        })
    })
}

/// The value at a path.
pub(crate) fn lookup<'a>(v: &'a Value, path: &[Pe]) -> Option<&'a Value> {
    let mut cur = v;
    for pe in path {
        cur = match pe {
            Pe::Field(f) => cur.get(f)?,
            Pe::Key(k) => {
                let items = cur.as_array()?;
                items.get(find_item(items, k)?)?
            }
        };
    }
    Some(cur)
}

/// Removes the value at a path; then removes maps and lists (below the top
/// level) that the removal left empty, as typed objects drop them. Returns true when something was removed.
pub(crate) fn remove(v: &mut Value, path: &[Pe]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let removed = {
        let Some(parent) = lookup_mut(v, parents) else {
            return false;
        };
        match last {
            Pe::Field(f) => parent.as_object_mut().and_then(|m| m.remove(f)).is_some(),
            Pe::Key(k) => match parent.as_array_mut() {
                Some(items) => match find_item(items, k) {
                    Some(idx) => {
                        items.remove(idx);
                        true
                    }
                    None => false,
                },
                None => false,
            },
        }
    };
    if removed {
        // Drop maps emptied by the removal, deepest first, keeping top-level fields.
        let mut depth = parents.len();
        while depth >= 2 {
            let prefix = &path[..depth];
            let empty = lookup(v, prefix).is_some_and(|x| match x {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            });
            if !empty || !matches!(prefix.last(), Some(Pe::Field(_))) {
                break;
            }
            let Some(parent) = lookup_mut(v, &prefix[..depth - 1]) else {
                break;
            };
            if let (Some(m), Some(Pe::Field(f))) = (parent.as_object_mut(), prefix.last()) {
                m.remove(f);
            }
            depth -= 1;
        }
    }
    removed
}

fn lookup_mut<'a>(v: &'a mut Value, path: &[Pe]) -> Option<&'a mut Value> {
    let mut cur = v;
    for pe in path {
        cur = match pe {
            Pe::Field(f) => cur.get_mut(f)?,
            Pe::Key(k) => {
                let idx = find_item(cur.as_array()?, k)?;
                cur.as_array_mut()?.get_mut(idx)?
            }
        };
    }
    Some(cur)
}

/// Merges an applied configuration into a live value: maps merge field by
/// field, associative lists item by item (configuration order first, then
/// the live items the configuration does not name), everything else is
/// replaced.
pub(crate) fn merge(live: &mut Value, config: &Value) {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) => {
            for (k, cv) in cm {
                match lm.get_mut(k) {
                    Some(lv) => merge_field(k, lv, cv),
                    None => {
                        lm.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (live, config) => *live = config.clone(),
    }
}

fn merge_field(field: &str, live: &mut Value, config: &Value) {
    match (&mut *live, config) {
        (Value::Object(_), Value::Object(_)) => merge(live, config),
        (Value::Array(litems), Value::Array(citems)) => {
            let (Some(ckey), Some(lkey)) = (list_key(field, citems), list_key(field, litems))
            else {
                *live = config.clone();
                return;
            };
            if ckey != lkey {
                *live = config.clone();
                return;
            }
            let mut rest: Vec<Option<Value>> = litems.drain(..).map(Some).collect();
            let mut out = Vec::with_capacity(rest.len().max(citems.len()));
            for citem in citems {
                let k = item_key(citem, ckey);
                let pos = rest
                    .iter()
                    .position(|l| l.as_ref().is_some_and(|l| item_key(l, lkey) == k));
                match pos.and_then(|p| rest.get_mut(p)).and_then(Option::take) {
                    Some(mut litem) => {
                        merge(&mut litem, citem);
                        out.push(litem);
                    }
                    None => out.push(citem.clone()),
                }
            }
            out.extend(rest.into_iter().flatten());
            *litems = out;
        }
        _ => *live = config.clone(),
    }
}

/// The changes between two values, for an update: paths added or changed,
/// and paths removed.
pub(crate) fn compare(
    old: &BTreeMap<Path, Leaf>,
    new: &BTreeMap<Path, Leaf>,
) -> (BTreeSet<Path>, BTreeSet<Path>) {
    let changed = new
        .iter()
        .filter(|(p, l)| old.get(*p) != Some(*l))
        .map(|(p, _)| p.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .cloned()
        .collect();
    (changed, removed)
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) set: FieldSet,
}

impl Entry {
    /// True when this entry belongs to `manager` with `operation` on the
    /// main resource.
    pub(crate) fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_none()
    }
}

/// Reads `metadata.managedFields` of a live object.
pub(crate) fn parse_managed_fields(obj: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = obj.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    if list.is_null() {
        return Ok(Vec::new());
    }
    let items = list
        .as_array()
        .ok_or("metadata.managedFields is not a list")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_string);
        let manager = field("manager").unwrap_or_default();
        let operation = field("operation")
            .ok_or_else(|| format!("metadata.managedFields[{i}].operation is missing"))?;
        if operation != "Apply" && operation != "Update" {
            return Err(format!(
                "metadata.managedFields[{i}].operation: Unsupported value: {operation:?}: supported values: \"Apply\", \"Update\""
            ));
        }
        if let Some(ft) = field("fieldsType") {
            if ft != "FieldsV1" {
                return Err(format!(
                    "metadata.managedFields[{i}].fieldsType: Unsupported value: {ft:?}: supported values: \"FieldsV1\""
                ));
            }
        }
        let set = match item.get("fieldsV1") {
            Some(v) => FieldSet::from_fields_v1(v)
                .map_err(|e| format!("metadata.managedFields[{i}].fieldsV1: {e}"))?,
            None => FieldSet::default(),
        };
        out.push(Entry {
            manager,
            operation,
            api_version: field("apiVersion").unwrap_or_default(),
            time: field("time"),
            subresource: field("subresource"),
            set,
        });
    }
    Ok(out)
}

/// Encodes entries as `metadata.managedFields`, in the API server's order
/// (operation, time, manager, subresource, apiVersion). Entries with empty
/// sets are dropped, as the API server drops them.
pub(crate) fn encode_managed_fields(entries: &[Entry]) -> Value {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
    sorted.sort_by(|p, q| {
        (
            &p.operation,
            &p.time,
            &p.manager,
            &p.subresource,
            &p.api_version,
        )
            .cmp(&(
                &q.operation,
                &q.time,
                &q.manager,
                &q.subresource,
                &q.api_version,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                m.insert("manager".into(), Value::String(e.manager.clone()));
                m.insert("operation".into(), Value::String(e.operation.clone()));
                if let Some(s) = &e.subresource {
                    m.insert("subresource".into(), Value::String(s.clone()));
                }
                if let Some(t) = &e.time {
                    m.insert("time".into(), Value::String(t.clone()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip_matches_kubernetes_format() {
        let obj = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}
                ]}}
            }
        });
        let leaves = collect(&obj).unwrap();
        let set = FieldSet(leaves.keys().cloned().collect());
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"app\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }
                    }}}
                }
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&v1).unwrap(), set);
    }

    #[test]
    fn merge_by_key_and_remove() {
        let mut live = json!({"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}
        ]}});
        merge(
            &mut live,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}),
        );
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "a", "image": "x"}]}})
        );
        let p = vec![
            Pe::Field("spec".into()),
            Pe::Field("containers".into()),
            Pe::Key("{\"name\":\"a\"}".into()),
        ];
        assert!(remove(&mut live, &p));
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "b", "image": "z"}]}})
        );
    }

    #[test]
    fn ports_are_keyed_by_port_and_defaulted_protocol() {
        let dns = json!({"spec": {"ports": [
            {"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}
        ]}});
        let leaves = collect(&dns).unwrap();
        assert!(leaves.contains_key(&vec![
            Pe::Field("spec".into()),
            Pe::Field("ports".into()),
            Pe::Key("{\"port\":53,\"protocol\":\"UDP\"}".into()),
        ]));
        let err =
            collect(&json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}))
                .unwrap_err();
        assert_eq!(
            err,
            ".spec.ports: duplicate entries for key [port=80,protocol=\"TCP\"]"
        );
        // A live item without protocol is the config's TCP item.
        let mut live = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        merge(
            &mut live,
            &json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
        );
        assert_eq!(
            live,
            json!({"spec": {"ports": [{"port": 80, "name": "http", "protocol": "TCP", "targetPort": 8080}]}})
        );
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let err =
            collect(&json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}})).unwrap_err();
        assert_eq!(
            err,
            ".spec.containers: duplicate entries for key [name=\"a\"]"
        );
    }
}
