//! The shared vocabulary: [`Object`], [`ObjectId`] and [`Revision`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Kubernetes object, held as a JSON value with typed accessors.
///
/// An `Object` always has a string `apiVersion`, `kind` and `metadata.name`;
/// [`Object::new`] checks that. Everything else is free-form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Object {
    value: Value,
}

/// Why a value is not a valid Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// The document is not a mapping.
    #[error("object is not a mapping")]
    NotAMapping,
    /// A required field is missing or not a string.
    #[error("object {subject} is missing the field `{field}`")]
    MissingField {
        /// What is known of the object (`Kind/name`, or `<unknown>`).
        subject: String,
        /// The dotted path of the missing field.
        field: &'static str,
    },
    /// An inventory id that does not have four `_`-separated parts, or
    /// holds an escape it does not define (see [`ObjectId::inventory_id`]).
    #[error("invalid object id {0:?}: expected <namespace>_<name>_<group>_<Kind>")]
    InvalidId(String),
}

impl TryFrom<Value> for Object {
    type Error = ObjectError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Object::new(value)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        o.value
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Checks what [`Object::new`] checks (a mapping with `apiVersion`, `kind`
/// and `metadata.name` strings, and a string `metadata.namespace` when set)
/// without taking the value.
pub fn check_value(value: &Value) -> Result<(), ObjectError> {
    if !value.is_object() {
        return Err(ObjectError::NotAMapping);
    }
    let kind = str_at(value, &["kind"]).filter(|k| !k.is_empty());
    let name = str_at(value, &["metadata", "name"]).filter(|n| !n.is_empty());
    let fail = |field: &'static str| {
        let subject = match (kind, name) {
            (Some(k), Some(n)) => format!("{k}/{n}"),
            (Some(k), None) => k.to_string(),
            (None, Some(n)) => format!("<unknown kind>/{n}"),
            (None, None) => "<unknown>".to_string(),
        };
        Err(ObjectError::MissingField { subject, field })
    };
    if kind.is_none() {
        return fail("kind");
    }
    if str_at(value, &["apiVersion"])
        .filter(|a| !a.is_empty())
        .is_none()
    {
        return fail("apiVersion");
    }
    if name.is_none() {
        return fail("metadata.name");
    }
    if let Some(ns) = value.get("metadata").and_then(|m| m.get("namespace")) {
        if !ns.is_string() && !ns.is_null() {
            return fail("metadata.namespace");
        }
    }
    Ok(())
}

impl Object {
    /// Wraps a value, checking `apiVersion`, `kind` and `metadata.name`.
    pub fn new(value: Value) -> Result<Self, ObjectError> {
        check_value(&value)?;
        Ok(Object { value })
    }

    /// The whole object as a JSON value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Mutable access to the whole value.
    ///
    /// Callers must keep `apiVersion`, `kind` and `metadata.name` strings.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    /// Unwraps the value.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(&self) -> &str {
        str_at(&self.value, &["apiVersion"]).unwrap_or_default()
    }

    /// The API group: the part of `apiVersion` before `/`, empty for core.
    pub fn group(&self) -> &str {
        group_of(self.api_version())
    }

    /// The API version without the group, e.g. `v1`.
    pub fn version(&self) -> &str {
        version_of(self.api_version())
    }

    /// `kind`, e.g. `Deployment`.
    pub fn kind(&self) -> &str {
        str_at(&self.value, &["kind"]).unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"]).unwrap_or_default()
    }

    /// `metadata.namespace`, empty when unset.
    pub fn namespace(&self) -> &str {
        str_at(&self.value, &["metadata", "namespace"]).unwrap_or_default()
    }

    /// Sets `metadata.name`.
    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.to_string()));
    }

    /// Sets `metadata.namespace`; an empty string removes it.
    pub fn set_namespace(&mut self, ns: &str) {
        let md = self.metadata_mut();
        if ns.is_empty() {
            md.remove("namespace");
        } else {
            md.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }

    /// `metadata` as a map (created when absent).
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        if !self.value.is_object() {
            // only reachable when a caller replaced the whole value through value_mut
            self.value = Value::Object(Map::new());
        }
        let Value::Object(root) = &mut self.value else {
            unreachable!("made an object above")
        };
        let md = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !md.is_object() {
            *md = Value::Object(Map::new());
        }
        md.as_object_mut().expect("just made an object")
    }

    fn string_map(&self, field: &str) -> Vec<(&str, &str)> {
        self.value
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `metadata.labels`, sorted by key.
    pub fn labels(&self) -> Vec<(&str, &str)> {
        self.string_map("labels")
    }

    /// `metadata.annotations`, sorted by key.
    pub fn annotations(&self) -> Vec<(&str, &str)> {
        self.string_map("annotations")
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        str_at(&self.value, &["metadata", "labels", key])
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        str_at(&self.value, &["metadata", "annotations", key])
    }

    /// Sets one entry of `metadata.<field>` (labels or annotations).
    pub fn set_metadata_entry(&mut self, field: &str, key: &str, value: &str) {
        let md = self.metadata_mut();
        let m = md
            .entry(field.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !m.is_object() {
            *m = Value::Object(Map::new());
        }
        m.as_object_mut()
            .expect("just made an object")
            .insert(key.to_string(), Value::String(value.to_string()));
    }

    /// The object's identity.
    pub fn id(&self) -> ObjectId {
        self.head().id()
    }

    /// The fields the planner reads of every object, found in one pass
    /// over the top level and one over `metadata` (lookups would search
    /// each map once per field).
    pub(crate) fn head(&self) -> Head<'_> {
        let mut head = Head::default();
        let Some(root) = self.value.as_object() else {
            return head;
        };
        // keys iterate in order: nothing the head needs sorts after "metadata"
        let sorted = maps_are_sorted();
        for (k, v) in root {
            match k.as_str() {
                "apiVersion" => head.api_version = v.as_str().unwrap_or_default(),
                "kind" => head.kind = v.as_str().unwrap_or_default(),
                "metadata" => {
                    head.metadata = v.as_object();
                    if sorted {
                        break;
                    }
                }
                _ => {}
            }
        }
        for (k, v) in head.metadata.into_iter().flatten() {
            match k.as_str() {
                "annotations" => head.annotations = v.as_object(),
                "managedFields" => head.managed_fields = v.as_array(),
                "name" => head.name = v.as_str().unwrap_or_default(),
                "namespace" => {
                    head.namespace = v.as_str().unwrap_or_default();
                    if sorted {
                        break;
                    }
                }
                _ => {}
            }
        }
        head
    }

    /// A field by JSON pointer (`/spec/replicas`).
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        pointer_get(&self.value, pointer)
    }
}

/// [`Value::pointer`] without its allocations: a JSON pointer (RFC 6901,
/// `~0` and `~1` escapes) resolved against `value`. Tokens without escapes,
/// the common case, are looked up as they are.
pub fn pointer_get<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').try_fold(value, |cur, token| {
        let unescaped;
        let token = if token.contains('~') {
            unescaped = token.replace("~1", "/").replace("~0", "~");
            unescaped.as_str()
        } else {
            token
        };
        match cur {
            Value::Object(m) => m.get(token),
            Value::Array(a) => {
                let leading_zero = token.len() > 1 && token.starts_with('0');
                if leading_zero || token.starts_with('+') {
                    return None;
                }
                a.get(token.parse::<usize>().ok()?)
            }
            _ => None,
        }
    })
}

/// True when maps iterate in key order, serde_json's default. Its
/// `preserve_order` feature, which any crate in a program may turn on,
/// keeps insertion order instead; readers that rely on key order then fall
/// back to lookups or full passes.
pub(crate) fn maps_are_sorted() -> bool {
    #[cfg(test)]
    if ASSUME_UNSORTED.with(std::cell::Cell::get) {
        return false;
    }
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".to_string(), Value::Null);
        m.insert("a".to_string(), Value::Null);
        m.keys().next().is_some_and(|k| k == "a")
    })
}

#[cfg(test)]
thread_local! {
    /// Makes [`maps_are_sorted`] answer no on this thread, so tests can run
    /// the fallbacks.
    pub(crate) static ASSUME_UNSORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What [`Object::head`] reads: the identity fields, and the metadata maps
/// the planner and the differ consult. Absent fields are empty.
#[derive(Clone, Copy, Default)]
pub(crate) struct Head<'o> {
    pub(crate) api_version: &'o str,
    pub(crate) kind: &'o str,
    pub(crate) name: &'o str,
    pub(crate) namespace: &'o str,
    pub(crate) metadata: Option<&'o Map<String, Value>>,
    pub(crate) annotations: Option<&'o Map<String, Value>>,
    pub(crate) managed_fields: Option<&'o Vec<Value>>,
}

impl Head<'_> {
    /// The API group (empty for core).
    pub(crate) fn group(&self) -> &str {
        group_of(self.api_version)
    }

    /// The API version without the group.
    pub(crate) fn version(&self) -> &str {
        version_of(self.api_version)
    }

    /// The object's id.
    pub(crate) fn id(&self) -> ObjectId {
        ObjectId {
            group: self.group().to_string(),
            kind: self.kind.to_string(),
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
        }
    }
}

/// The version part of an `apiVersion` (`apps/v1` → `v1`, `v1` → `v1`).
fn version_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(_, v)| v)
        .unwrap_or(api_version)
}

/// The group part of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The identity of an object: group, kind, namespace and name.
///
/// `Display` writes Flux's inventory id, `<ns>_<name>_<group>_<Kind>`, and
/// [`FromStr`] parses it back. [`ObjectId::subject`] gives the
/// human form `Kind/ns/name`. Ids order by namespace, name, group, kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// API group; empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
}

impl ObjectId {
    /// Flux's inventory id, `<ns>_<name>_<group>_<Kind>` (the `Display`
    /// form), as fluxcd/cli-utils' `ObjMetadata` writes it: a `:` in the
    /// name (RBAC names may hold one) is written `__`.
    ///
    /// Flux's format has limits, which this one lifts without changing
    /// the id of any object Flux can record:
    ///
    /// - A name holding `_` (RBAC names may) cannot be told from the
    ///   separators or from a transcoded `:` (`a__b` and `a:b`, `a_:b` and
    ///   `a:_b` read the same), so Flux's parser refuses it ("too many
    ///   fields") and Flux cannot record such an object at all. Here a `_`
    ///   in any part is written `%5F`.
    /// - `%`, which no valid name, namespace, group or kind holds, is
    ///   written `%25`, so every id, valid or not, reads back as itself.
    ///
    /// Namespaces, groups and kinds never hold `_` once validated, so for
    /// every object the API server accepts, ids are Flux's, except names
    /// holding `_`, which only driftless can read back.
    pub fn inventory_id(&self) -> String {
        let mut s = String::with_capacity(
            self.namespace.len() + self.name.len() + self.group.len() + self.kind.len() + 3,
        );
        for (i, part) in [&self.namespace, &self.name, &self.group, &self.kind]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                s.push('_');
            }
            for c in part.chars() {
                match c {
                    '%' => s.push_str("%25"),
                    '_' => s.push_str("%5F"),
                    ':' if i == 1 => s.push_str("__"),
                    c => s.push(c),
                }
            }
        }
        s
    }

    /// Builds an id.
    pub fn new(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ObjectId {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The subject as Flux prints it: `Kind/ns/name`, or `Kind/name` when
    /// cluster-scoped.
    pub fn subject(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inventory_id())
    }
}

impl FromStr for ObjectId {
    type Err = ObjectError;

    /// Parses `<ns>_<name>_<group>_<Kind>` as fluxcd/cli-utils'
    /// `ParseObjMetadata` does: the namespace up to the first `_`, the
    /// kind after the last, the group before that, the name in between,
    /// with `__` read as `:`. A `_` left in the name is an error, as in
    /// Flux; `%5F` and `%25` (see [`ObjectId::inventory_id`]) are read
    /// back as `_` and `%`, and any other `%` is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ObjectError::InvalidId(s.to_string());
        let (namespace, rest) = s.split_once('_').ok_or_else(invalid)?;
        let (rest, kind) = rest.rsplit_once('_').ok_or_else(invalid)?;
        let (name, group) = rest.rsplit_once('_').ok_or_else(invalid)?;
        let name = name.replace("__", ":");
        if name.contains('_') {
            return Err(invalid());
        }
        let decode = |part: &str| -> Result<String, ObjectError> {
            let mut out = String::with_capacity(part.len());
            let mut rest = part;
            while let Some(at) = rest.find('%') {
                out.push_str(&rest[..at]);
                let escape = rest.get(at..at + 3);
                out.push(match escape {
                    Some("%25") => '%',
                    Some("%5F") => '_',
                    _ => return Err(invalid()),
                });
                rest = &rest[at + 3..];
            }
            out.push_str(rest);
            Ok(out)
        };
        let id = ObjectId {
            namespace: decode(namespace)?,
            name: decode(&name)?,
            group: decode(group)?,
            kind: decode(kind)?,
        };
        if id.name.is_empty() || id.kind.is_empty() {
            return Err(invalid());
        }
        Ok(id)
    }
}

/// A source revision in Flux's notation.
///
/// - `main@sha1:<40 hex>` (a branch),
/// - `v1.2.3@sha1:<hex>` (a tag),
/// - `refs/heads/x@sha1:<hex>` (a full ref name),
/// - `sha1:<hex>` (a bare commit).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision {
    /// Branch, tag or ref name; `None` for a bare commit.
    pub name: Option<String>,
    /// Digest algorithm, `sha1` for Git today.
    pub algorithm: String,
    /// The commit id in lowercase hex.
    pub hash: String,
}

impl Revision {
    /// A revision for a named ref at a SHA-1 commit.
    pub fn named(name: &str, hash: &str) -> Self {
        Revision {
            name: Some(name.to_string()),
            algorithm: "sha1".to_string(),
            hash: hash.to_ascii_lowercase(),
        }
    }

    /// A bare commit revision, `sha1:<hex>`.
    pub fn commit(hash: &str) -> Self {
        Revision {
            name: None,
            algorithm: "sha1".to_string(),
            hash: hash.to_ascii_lowercase(),
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}@{}:{}", self.algorithm, self.hash),
            None => write!(f, "{}:{}", self.algorithm, self.hash),
        }
    }
}

impl FromStr for Revision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, digest) = match s.rsplit_once('@') {
            Some((n, d)) => (Some(n.to_string()), d),
            None => (None, s),
        };
        let (alg, hash) = digest
            .split_once(':')
            .ok_or_else(|| format!("invalid revision {s:?}: expected [<name>@]<algo>:<hex>"))?;
        if alg.is_empty() || hash.is_empty() || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid revision {s:?}: expected [<name>@]<algo>:<hex>"
            ));
        }
        Ok(Revision {
            name,
            algorithm: alg.to_string(),
            hash: hash.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pointer_agrees_with_serde_json() {
        let v = serde_json::json!({"a": {"b/c": [1, {"d~e": 2}], "": 3, "0": 4}, "l": [5, 6]});
        for p in [
            "",
            "/",
            "/a",
            "/a/b~1c",
            "/a/b~1c/1/d~0e",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/",
            "/a/0",
            "/l/1",
            "/l/2",
            "/l/-",
            "a",
            "/a/b~1c/1/d~0e/x",
            "/a/b~2c",
        ] {
            assert_eq!(super::pointer_get(&v, p), v.pointer(p), "{p}");
        }
    }
    use super::*;
    use serde_json::json;

    #[test]
    fn id_round_trips() {
        let id = ObjectId::new("apps", "Deployment", "apps", "app1");
        assert_eq!(id.to_string(), "apps_app1_apps_Deployment");
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        let ns = ObjectId::new("", "Namespace", "", "team-a");
        assert_eq!(ns.to_string(), "_team-a__Namespace");
        assert_eq!(ns.to_string().parse::<ObjectId>().unwrap(), ns);
        assert_eq!(ns.subject(), "Namespace/team-a");
        assert_eq!(id.subject(), "Deployment/apps/app1");
        assert!("a_b_c".parse::<ObjectId>().is_err());
        // RBAC names: `:` as Flux writes it, `_` escaped
        let rb = ObjectId::new(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "ns",
            "ci:deploy_bot",
        );
        assert_eq!(
            rb.to_string(),
            "ns_ci__deploy%5Fbot_rbac.authorization.k8s.io_RoleBinding"
        );
        assert_eq!(rb.to_string().parse::<ObjectId>().unwrap(), rb);
        // Flux's raw `_` and unknown escapes are refused
        assert!("_a_b_rbac.authorization.k8s.io_Role"
            .parse::<ObjectId>()
            .is_err());
        assert!("_a%41_g_K".parse::<ObjectId>().is_err());
    }

    #[test]
    fn object_requires_kind_and_name() {
        let err = Object::new(json!({"apiVersion": "v1", "metadata": {"name": "x"}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object <unknown kind>/x is missing the field `kind`"
        );
        let err = Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}))
            .unwrap_err();
        assert!(err.to_string().contains("metadata.name"));
        let o = Object::new(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "y"}})).unwrap();
        assert_eq!(o.group(), "apps");
        assert_eq!(o.version(), "v1");
        assert_eq!(o.id().subject(), "Deployment/y/x");
    }

    #[test]
    fn revision_forms() {
        let h = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            Revision::named("main", h).to_string(),
            format!("main@sha1:{h}")
        );
        assert_eq!(Revision::commit(h).to_string(), format!("sha1:{h}"));
        let r: Revision = format!("refs/heads/x@sha1:{h}").parse().unwrap();
        assert_eq!(r.name.as_deref(), Some("refs/heads/x"));
        assert!("main@sha1:zz".parse::<Revision>().is_err());
    }
}
