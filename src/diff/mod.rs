//! Diffing desired objects against live ones. Pure functions.
//!
//! Live objects carry server-owned noise (status, managedFields,
//! resourceVersion, ...). [`normalize`] removes it. [`diff_object`] then
//! compares the desired object with the live one the way server-side apply
//! sees it: every field the desired object sets must have the same value
//! live, and every field the field manager applied before but that is no
//! longer in Git is drift too (the apply would remove it). Fields that other
//! managers added and Git does not mention are not drift, as in Flux.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::object::{maps_are_sorted, Head, Object};

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
    if desired.is_empty() || !desired[0].is_object() {
        return None;
    }
    LIST_KEYS
        .iter()
        .copied()
        .find(|k| unique_key(desired, k) && unique_key(live, k))
}

fn scalar_at<'v>(item: &'v Value, key: &str) -> Option<&'v Value> {
    item.get(key).filter(|v| !v.is_object() && !v.is_array())
}

/// True when every item has a scalar `key` and no two items share its value.
fn unique_key(items: &[Value], key: &str) -> bool {
    const SMALL: usize = 16;
    if items.len() <= SMALL {
        // the common case (a few containers, ports, env vars): no allocation
        let mut seen: [&Value; SMALL] = [&Value::Null; SMALL];
        for (n, item) in items.iter().enumerate() {
            let Some(v) = scalar_at(item, key) else {
                return false;
            };
            if seen[..n].contains(&v) {
                return false;
            }
            seen[n] = v;
        }
        return true;
    }
    let mut seen = std::collections::BTreeSet::new();
    items
        .iter()
        .all(|i| scalar_at(i, key).is_some_and(|v| seen.insert(v.to_string())))
}

fn push_key_segment(path: &mut String, key: &str, value: &Value) {
    path.push('[');
    path.push_str(key);
    path.push('=');
    match value {
        Value::String(s) => path.push_str(s),
        other => path.push_str(&other.to_string()),
    }
    path.push(']');
}

/// Values equal as the API server would store them: numbers compare by value
/// (`1` and `1.0`), everything else structurally.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// The entries of `desired` with the entry of `live` under the same key,
/// if any. Both maps iterate in key order, so a [`Seek`] cursor over
/// `live` finds them in one pass: a merge join, no lookups.
struct Joined<'v> {
    desired: serde_json::map::Iter<'v>,
    live: Seek<'v>,
}

fn joined<'v>(desired: &'v Map<String, Value>, live: &'v Map<String, Value>) -> Joined<'v> {
    Joined {
        desired: desired.iter(),
        live: Seek::over(live),
    }
}

impl<'v> Iterator for Joined<'v> {
    type Item = (&'v String, &'v Value, Option<&'v Value>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (k, dv) = self.desired.next()?;
        Some((k, dv, self.live.get(k)))
    }
}

/// True when every field `desired` sets has the same value in `live`.
fn covers(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        // an explicit null in a config means "unset": covered when absent
        (Value::Object(d), Value::Object(l)) => joined(d, l).all(|(_, dv, lv)| match lv {
            Some(lv) => !dv.is_null() && covers(dv, lv),
            None => dv.is_null(),
        }),
        // Keyed or not, a list Git sets is covered only item by item in the
        // same order: for keyed lists the key is one of the fields `covers`
        // compares, so no key lookup is needed here.
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| covers(a, b))
        }
        (d, l) => equal(d, l),
    }
}

/// How a list item's key fields read in a path segment: `name=app`, or
/// `containerPort=80,protocol=TCP`.
fn key_segment(fields: &Map<String, Value>) -> String {
    let mut segment = String::new();
    for (n, (k, v)) in fields.iter().enumerate() {
        if n > 0 {
            segment.push(',');
        }
        segment.push_str(k);
        segment.push('=');
        match v {
            Value::String(s) => segment.push_str(s),
            other => segment.push_str(&other.to_string()),
        }
    }
    segment
}

/// A `k:` key of `fieldsV1`, parsed: the fields that pick a list item, and
/// whether it keys a port list.
#[derive(Clone, Debug)]
struct ListKey {
    fields: Map<String, Value>,
    is_port: bool,
}

impl ListKey {
    /// Parses a key's JSON text (without `k:`); `None` unless it is a JSON
    /// object.
    fn parse(json: &str) -> Option<ListKey> {
        let fields: Map<String, Value> = serde_json::from_str(json).ok()?;
        let is_port = fields.contains_key("containerPort") || fields.contains_key("port");
        Some(ListKey { fields, is_port })
    }

    /// True when a list item has this key. Port lists (`containerPort` or
    /// `port` keys) are keyed by the defaulted protocol: the API server
    /// writes `"protocol":"TCP"` into the key of an item that omits it, so
    /// a missing protocol matches `TCP`, on either side.
    fn matches(&self, item: &Value) -> bool {
        let want = &self.fields;
        if !self.is_port {
            return want.iter().all(|(wk, wv)| item.get(wk) == Some(wv));
        }
        let tcp = |v: Option<&Value>| v.is_none_or(|p| p.as_str() == Some("TCP"));
        let same_protocol = match (want.get("protocol"), item.get("protocol")) {
            (w, i) if tcp(w) && tcp(i) => true,
            (w, i) => w == i,
        };
        same_protocol
            && want
                .iter()
                .filter(|(wk, _)| wk.as_str() != "protocol")
                .all(|(wk, wv)| item.get(wk) == Some(wv))
    }

    /// The item of `list` with this key.
    fn find<'v>(&self, list: Option<&'v Value>) -> Option<&'v Value> {
        list.and_then(Value::as_array)
            .and_then(|items| items.iter().find(|i| self.matches(i)))
    }
}

fn find_value<'v>(list: Option<&'v Value>, want: &Value) -> Option<&'v Value> {
    list.and_then(Value::as_array)
        .and_then(|items| items.iter().find(|i| *i == want))
}

/// A cursor over a map's entries in key order: looking up keys that come
/// in ascending order costs one pass over the map, not a search each.
struct Seek<'v> {
    map: Option<&'v Map<String, Value>>,
    entries: Option<serde_json::map::Iter<'v>>,
    next: Option<(&'v String, &'v Value)>,
}

impl<'v> Seek<'v> {
    /// A cursor over `value`'s entries; none when it is not a map.
    fn new(value: Option<&'v Value>) -> Self {
        let map = value.and_then(Value::as_object);
        let mut entries = map.filter(|_| maps_are_sorted()).map(|m| m.iter());
        let next = entries.as_mut().and_then(Iterator::next);
        Seek { map, entries, next }
    }

    /// A cursor over `map`'s entries.
    #[inline]
    fn over(map: &'v Map<String, Value>) -> Self {
        let mut entries = maps_are_sorted().then(|| map.iter());
        let next = entries.as_mut().and_then(Iterator::next);
        Seek {
            map: Some(map),
            entries,
            next,
        }
    }

    /// The value under `key`, which must be greater than the last key asked.
    #[inline]
    fn get(&mut self, key: &str) -> Option<&'v Value> {
        let Some(entries) = self.entries.as_mut() else {
            return self.map.and_then(|m| m.get(key));
        };
        while let Some((k, v)) = self.next {
            match k.as_str().cmp(key) {
                std::cmp::Ordering::Less => self.next = entries.next(),
                std::cmp::Ordering::Equal => {
                    self.next = entries.next();
                    return Some(v);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// Buffers for diffing many objects whose live counterparts all outlive
/// `'l`: the path being walked, the `fieldsV1` steps to it, and the `k:` keys of `fieldsV1` parsed so
/// far. The same few keys (`{"name":"app"}`) recur across the objects of a
/// plan, so each is parsed once.
#[derive(Default)]
pub(crate) struct Scratch<'l> {
    path: String,
    steps: Vec<Step<'l>>,
    keys: BTreeMap<&'l str, Option<ListKey>>,
}

/// At most this many parsed `k:` keys are kept; later ones are parsed on
/// each use.
const KEYS_KEPT: usize = 4096;

impl<'l> Scratch<'l> {
    /// The `k:` key with this JSON text (without `k:`), parsed once.
    fn list_key(&mut self, json: &'l str) -> Option<Cow<'_, ListKey>> {
        if !self.keys.contains_key(json) {
            let parsed = ListKey::parse(json);
            if self.keys.len() >= KEYS_KEPT {
                return parsed.map(Cow::Owned);
            }
            self.keys.insert(json, parsed);
        }
        self.keys.get(json)?.as_ref().map(Cow::Borrowed)
    }

    /// The value at the end of `steps` in `root`, if there is one.
    fn resolve(&mut self, root: &'l Value, steps: &[Step<'l>]) -> Option<&'l Value> {
        let mut cur = root;
        for step in steps {
            cur = match *step {
                Step::Field(name) => cur.get(name)?,
                Step::Key(json) => self.list_key(json)?.find(Some(cur))?,
                Step::Value(json) => {
                    find_value(Some(cur), &serde_json::from_str::<Value>(json).ok()?)?
                }
                Step::Index(i) => cur.get(i)?,
            };
        }
        Some(cur)
    }
}

struct Walker<'o, 'l> {
    path: String,
    out: &'o mut Vec<FieldChange>,
    keys: &'o mut Scratch<'l>,
}

impl<'l> Walker<'_, 'l> {
    fn change(&mut self, live: Option<&Value>, desired: Option<&Value>) {
        self.out.push(FieldChange {
            path: self.path.clone(),
            live: live.cloned(),
            desired: desired.cloned(),
        });
    }

    fn walk(&mut self, desired: &Value, live: Option<&Value>, root: bool) {
        match (desired, live) {
            (Value::Object(d), Some(Value::Object(l))) => {
                for (k, dv, lv) in joined(d, l) {
                    if root && k == "status" {
                        continue;
                    }
                    let len = self.path.len();
                    self.path.push('.');
                    self.path.push_str(k);
                    if dv.is_null() {
                        // an explicit null in a config means "unset"
                        if lv.is_some() {
                            self.change(lv, None);
                        }
                    } else if !lv.is_some_and(|lv| covers(dv, lv)) {
                        self.walk(dv, lv, false);
                    }
                    self.path.truncate(len);
                }
            }
            (Value::Array(d), Some(Value::Array(l))) => match list_key(d, l) {
                Some(key) => {
                    let mut matched = true;
                    for item in d {
                        let kv = &item[key];
                        let li = l.iter().find(|i| i.get(key) == Some(kv));
                        matched &= li.is_some();
                        if !li.is_some_and(|li| covers(item, li)) {
                            let len = self.path.len();
                            push_key_segment(&mut self.path, key, kv);
                            self.walk(item, li, false);
                            self.path.truncate(len);
                        }
                    }
                    // order and extra live items matter for a list Git fully owns
                    let order_differs = matched
                        && (l.len() != d.len()
                            || l.iter().zip(d).any(|(a, b)| a.get(key) != b.get(key)));
                    if order_differs {
                        self.change(live, Some(desired));
                    }
                }
                None => {
                    if !covers(desired, live.unwrap_or(&Value::Null)) {
                        self.change(live, Some(desired));
                    }
                }
            },
            (d, Some(l)) if equal(d, l) => {}
            (d, l) => self.change(l, Some(d)),
        }
    }

    /// Reports fields in the manager's `fieldsV1` set that `desired` no
    /// longer has but `live` still does. `fields` and `desired` are walked
    /// together; `steps` lead from the root to them, and the live object is
    /// read, and the path written, only where `desired` lacks a field.
    fn removed(
        &mut self,
        fields: &'l Value,
        desired: &Value,
        steps: &mut Vec<Step<'l>>,
        live: &'l Value,
        crd: bool,
    ) {
        let Some(map) = fields.as_object().filter(|m| !m.is_empty()) else {
            return;
        };
        let at_root = steps.is_empty();
        let in_metadata = matches!(steps.as_slice(), [Step::Field("metadata")]);
        // `f:` keys come in name order: a cursor finds their fields
        let mut desired_fields = Seek::new(Some(desired));
        for (k, child) in map {
            let (step, d) = if let Some(name) = k.strip_prefix("f:") {
                if at_root && !crd && name == "status" {
                    continue;
                }
                // bookkeeping metadata is never drift
                if in_metadata
                    && matches!(
                        name,
                        "managedFields"
                            | "resourceVersion"
                            | "uid"
                            | "generation"
                            | "creationTimestamp"
                    )
                {
                    continue;
                }
                (Step::Field(name), desired_fields.get(name))
            } else if let Some(json) = k.strip_prefix("k:") {
                let Some(key) = self.keys.list_key(json) else {
                    continue;
                };
                (Step::Key(json), key.find(Some(desired)))
            } else if let Some(json) = k.strip_prefix("v:") {
                let Ok(want) = serde_json::from_str::<Value>(json) else {
                    continue;
                };
                (Step::Value(json), find_value(Some(desired), &want))
            } else if let Some(i) = k.strip_prefix("i:") {
                let Ok(i) = i.parse::<usize>() else {
                    continue;
                };
                (Step::Index(i), desired.get(i))
            } else {
                continue;
            };
            steps.push(step);
            match d {
                None => {
                    if let Some(l) = self.keys.resolve(live, steps) {
                        let path = FieldPath(steps.iter().map(Step::segment).collect()).to_string();
                        self.out.push(FieldChange {
                            path,
                            live: Some(l.clone()),
                            desired: None,
                        });
                    }
                }
                // a field Git still sets: removed fields can only be below it
                Some(d) => {
                    let leaf = child
                        .as_object()
                        .is_none_or(|m| m.is_empty() || (m.len() == 1 && m.contains_key(".")));
                    if !leaf {
                        self.removed(child, d, steps, live, crd);
                    }
                }
            }
            steps.pop();
        }
    }
}

/// One step of a `fieldsV1` path: `f:<name>`, `k:<json>`, `v:<json>` or
/// `i:<index>`; a borrowed [`Segment`].
#[derive(Clone, Copy)]
enum Step<'l> {
    Field(&'l str),
    Key(&'l str),
    Value(&'l str),
    Index(usize),
}

impl Step<'_> {
    fn segment(&self) -> Segment {
        match *self {
            Step::Field(name) => Segment::Field(name.to_string()),
            Step::Key(json) => Segment::Key(json.to_string()),
            Step::Value(json) => Segment::Value(json.to_string()),
            Step::Index(i) => Segment::Index(i),
        }
    }
}

/// The drift between a desired object and its live counterpart.
///
/// `live` is the object as read from the cluster (normalization is implied:
/// server-owned fields never count); `field_manager` names the manager whose
/// earlier applies count (Flux: `kustomize-controller`). Returns the changes
/// sorted by path: fields Git sets that differ live, and fields the manager
/// applied before that Git no longer sets.
pub fn diff_object(desired: &Object, live: &Object, field_manager: &str) -> Vec<FieldChange> {
    diff_heads(
        desired,
        &desired.head(),
        live,
        &live.head(),
        field_manager,
        &mut Scratch::default(),
    )
}

/// [`diff_object`] for callers that have read both objects' heads already
/// and diff many objects with the same `scratch`.
pub(crate) fn diff_heads<'l>(
    desired: &Object,
    desired_head: &Head<'_>,
    live: &'l Object,
    live_head: &Head<'l>,
    field_manager: &str,
    scratch: &mut Scratch<'l>,
) -> Vec<FieldChange> {
    let folded = if desired_head.kind == "Secret" && desired_head.api_version == "v1" {
        fold_string_data(desired)
    } else {
        None
    };
    let desired = folded.as_ref().unwrap_or(desired);
    let mut out = Vec::new();
    let mut path = std::mem::take(&mut scratch.path);
    path.clear();
    let mut steps = std::mem::take(&mut scratch.steps);
    let mut w = Walker {
        path,
        out: &mut out,
        keys: scratch,
    };
    let crd = desired_head.kind == "CustomResourceDefinition";
    w.walk(desired.value(), Some(live.value()), !crd);
    for e in live_head.managed_fields.into_iter().flatten() {
        // one pass over the entry: fieldsV1 < manager < operation
        let (mut fields, mut manager, mut operation) = (None, None, None);
        for (k, v) in e.as_object().into_iter().flatten() {
            match k.as_str() {
                "fieldsV1" => fields = Some(v),
                "manager" => manager = v.as_str(),
                "operation" => {
                    operation = v.as_str();
                    if maps_are_sorted() {
                        break;
                    }
                }
                _ => {}
            }
        }
        if manager != Some(field_manager) || operation != Some("Apply") {
            continue;
        }
        if let Some(fields) = fields {
            w.removed(fields, desired.value(), &mut steps, live.value(), crd);
        }
    }
    let path = w.path;
    scratch.path = path;
    steps.clear();
    scratch.steps = steps;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// A v1 Secret's `stringData` folded into `data` (base64), as the API
/// server stores it and as Flux normalizes Secrets before comparing; `None`
/// when `desired` is not a Secret with `stringData`. `stringData` wins over
/// `data` on a shared key, as on the server.
pub fn fold_string_data(desired: &Object) -> Option<Object> {
    use base64::Engine;
    if desired.kind() != "Secret" || desired.api_version() != "v1" {
        return None;
    }
    let mut v = desired.value().clone();
    let root = v.as_object_mut()?;
    let Some(Value::Object(string_data)) = root.remove("stringData") else {
        return None;
    };
    let data = root
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (k, s) in string_data {
            let text = match s {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
    Object::new(v).ok()
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

/// Masks the values in field changes of a Secret's `data` and
/// `stringData`, so that plans, change sets and their JSON never carry
/// them. Changed values show as `*** (before)` / `*** (after)`, as
/// `flux diff` does.
pub fn mask_secret_drift(object: &Object, drift: &mut [FieldChange]) {
    if object.kind() != "Secret" || !object.group().is_empty() {
        return;
    }
    for c in drift {
        let secret_field = ["data", "stringData"].iter().any(|f| {
            let p = format!(".{f}");
            c.path == p
                || c.path.starts_with(&format!("{p}."))
                || c.path.starts_with(&format!("{p}["))
        });
        if secret_field {
            if c.live.is_some() {
                c.live = Some(Value::String("*** (before)".to_string()));
            }
            if c.desired.is_some() {
                c.desired = Some(Value::String("*** (after)".to_string()));
            }
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
    fn secret_string_data_compares_as_data() {
        use crate::apply::{Applier, ApplyOptions, MemoryCluster};
        let secret = obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"}, "stringData": {"password": "hunter2"}}));
        let cluster = MemoryCluster::new();
        let live =
            futures::executor::block_on(cluster.apply(&secret, &ApplyOptions::default())).unwrap();
        assert_eq!(live.value()["data"]["password"], "aHVudGVyMg==");
        assert_eq!(diff_object(&secret, &live, "kustomize-controller"), vec![]);
        let changed = obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"}, "stringData": {"password": "other"}}));
        let d = diff_object(&changed, &live, "kustomize-controller");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, ".data.password");
    }

    /// The embedded cluster keys port items by `containerPort`/`port` and
    /// the defaulted protocol (`"protocol":"TCP"`), as the API server does;
    /// a port Git dropped is drift, a port Git still has is not.
    #[test]
    fn port_keys_default_the_protocol() {
        use crate::apply::{Applier, ApplyOptions, MemoryCluster};
        let deploy = |ports: Value| {
            obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1", "ports": ports}]}}}}))
        };
        let service = |ports: Value| {
            obj(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": ports}}))
        };
        let cluster = MemoryCluster::new();
        let opts = ApplyOptions::default();
        let both_c = json!([{"containerPort": 80}, {"containerPort": 443}]);
        let one_c = json!([{"containerPort": 80}]);
        let both_s = json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]);
        let one_s = json!([{"port": 80, "targetPort": 8080}]);
        let live_d =
            futures::executor::block_on(cluster.apply(&deploy(both_c.clone()), &opts)).unwrap();
        let live_s =
            futures::executor::block_on(cluster.apply(&service(both_s.clone()), &opts)).unwrap();
        let key = live_d.value().to_string();
        assert!(
            key.contains(r#"k:{\"containerPort\":443,\"protocol\":\"TCP\"}"#),
            "{key}"
        );
        // unchanged: no drift in either direction
        assert_eq!(
            diff_object(&deploy(both_c), &live_d, "kustomize-controller"),
            vec![]
        );
        assert_eq!(
            diff_object(&service(both_s), &live_s, "kustomize-controller"),
            vec![]
        );
        // a dropped port is drift, reported as a removal of that item
        let d = diff_object(&deploy(one_c), &live_d, "kustomize-controller");
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert!(
            paths.contains(
                &".spec.template.spec.containers[name=web].ports[containerPort=443,protocol=TCP]"
            ),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.contains("containerPort=80,")),
            "{paths:?}"
        );
        let d = diff_object(&service(one_s), &live_s, "kustomize-controller");
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert!(
            paths.contains(&".spec.ports[port=443,protocol=TCP]"),
            "{paths:?}"
        );
        assert!(!paths.iter().any(|p| p.contains("port=80,")), "{paths:?}");
        // a UDP key never matches a port item without protocol (TCP)
        let want = ListKey::parse(r#"{"port":53,"protocol":"UDP"}"#).unwrap();
        assert_eq!(key_segment(&want.fields), "port=53,protocol=UDP");
        assert!(!want.matches(&json!({"port": 53})));
        assert!(want.matches(&json!({"port": 53, "protocol": "UDP"})));
        let want = ListKey::parse(r#"{"port":53}"#).unwrap();
        assert!(want.matches(&json!({"port": 53, "protocol": "TCP"})));
        assert!(!want.matches(&json!({"port": 53, "protocol": "UDP"})));
    }

    /// The merge joins over sorted maps and their fallbacks (for
    /// serde_json's `preserve_order`) find the same drift.
    #[test]
    fn key_order_fallbacks_find_the_same_drift() {
        let desired = obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "n", "labels": {"app": "a", "tier": "web"}},
            "spec": {"replicas": 2, "unset": null, "template": {"spec": {"containers": [
                {"name": "app", "image": "x:2", "ports": [{"containerPort": 80}]}]}}}}));
        let live = obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "n", "labels": {"app": "a", "added": "x"},
                "managedFields": [{"manager": "kustomize-controller", "operation": "Apply",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:old": {}}},
                    "f:spec": {"f:paused": {}, "f:replicas": {}}}}]},
            "spec": {"replicas": 3, "paused": true, "unset": 1, "template": {"spec": {"containers": [
                {"name": "app", "image": "x:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}));
        let sorted = diff_object(&desired, &live, "kustomize-controller");
        let paths: Vec<&str> = sorted.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels.tier",
                ".spec.paused",
                ".spec.replicas",
                ".spec.template.spec.containers[name=app].image",
                ".spec.unset"
            ]
        );
        crate::object::ASSUME_UNSORTED.with(|c| c.set(true));
        let fallback = diff_object(&desired, &live, "kustomize-controller");
        let head = live.head();
        crate::object::ASSUME_UNSORTED.with(|c| c.set(false));
        assert_eq!(fallback, sorted);
        assert_eq!(
            (head.name, head.namespace, head.kind),
            ("a", "n", "Deployment")
        );
        assert!(head.managed_fields.is_some());
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
