//! One object in the build, with the history kustomize keeps for it.

use serde_json::{Map, Value};

use crate::object::group_of;

/// How a generated object combines with an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behavior {
    Create,
    Merge,
    Replace,
}

/// An object being built.
#[derive(Clone, Debug)]
pub(crate) struct Res {
    pub value: Value,
    /// Every name the object has had, original first.
    pub names: Vec<String>,
    /// Every namespace the object has had, original first.
    pub namespaces: Vec<String>,
    /// Prefixes and suffixes applied, outermost last.
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// Set on generated objects that still need their hash suffix.
    pub needs_hash: bool,
    pub behavior: Option<Behavior>,
    /// The file the object came from (for errors).
    pub file: String,
    /// Its `data`/`stringData` values that SOPS decrypted (the
    /// plaintext-Secret rule exempts these only).
    pub sealed: crate::sops::Sealed,
    /// True when it was read from a SOPS-encrypted file.
    pub from_sops: bool,
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl Res {
    pub fn new(value: Value, file: &str) -> Self {
        let name = str_at(&value, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let ns = str_at(&value, &["metadata", "namespace"])
            .unwrap_or_default()
            .to_string();
        Res {
            value,
            names: vec![name],
            namespaces: vec![ns],
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            needs_hash: false,
            behavior: None,
            file: file.to_string(),
            sealed: crate::sops::Sealed::default(),
            from_sops: false,
        }
    }

    pub fn api_version(&self) -> &str {
        str_at(&self.value, &["apiVersion"]).unwrap_or_default()
    }
    pub fn group(&self) -> &str {
        group_of(self.api_version())
    }
    pub fn version(&self) -> &str {
        let av = self.api_version();
        av.rsplit_once('/').map(|(_, v)| v).unwrap_or(av)
    }
    pub fn kind(&self) -> &str {
        str_at(&self.value, &["kind"]).unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"]).unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        str_at(&self.value, &["metadata", "namespace"]).unwrap_or_default()
    }
    pub fn org_name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or_default()
    }
    pub fn org_namespace(&self) -> &str {
        self.namespaces
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        if !self.value.is_object() {
            self.value = Value::Object(Map::new());
        }
        let root = match self.value.as_object_mut() {
            Some(r) => r,
            None => unreachable_map(),
        };
        let md = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !md.is_object() {
            *md = Value::Object(Map::new());
        }
        match md.as_object_mut() {
            Some(m) => m,
            None => unreachable_map(),
        }
    }

    /// Renames, recording the history.
    pub fn set_name(&mut self, name: &str) {
        if self.name() != name {
            self.metadata_mut()
                .insert("name".into(), Value::String(name.to_string()));
        }
        if self.names.last().map(String::as_str) != Some(name) {
            self.names.push(name.to_string());
        }
    }

    /// Moves to a namespace, recording the history.
    pub fn set_namespace(&mut self, ns: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(ns.to_string()));
        if self.namespaces.last().map(String::as_str) != Some(ns) {
            self.namespaces.push(ns.to_string());
        }
    }

    /// `Kind/ns/name` or `Kind/name`.
    pub fn subject(&self) -> String {
        if self.namespace().is_empty() {
            format!("{}/{}", self.kind(), self.name())
        } else {
            format!("{}/{}/{}", self.kind(), self.namespace(), self.name())
        }
    }

    /// kustomize's id string, used in messages: `Kind.version.group/name.ns`.
    pub fn id_string(&self) -> String {
        let g = self.group();
        let gv = if g.is_empty() {
            format!("{}.{}", self.kind(), self.version())
        } else {
            format!("{}.{}.{}", self.kind(), self.version(), g)
        };
        let ns = if self.namespace().is_empty() {
            "[noNs]".to_string()
        } else {
            self.namespace().to_string()
        };
        format!("{gv}/{}.{ns}", self.name())
    }
}

/// A map that was just made an object is an object; this keeps the code
/// free of `expect` while never being reached.
fn unreachable_map() -> ! {
    unreachable!("value was just set to an object")
}

/// True when two namespaces are the same, with "" meaning "default".
pub(crate) fn ns_eq(a: &str, b: &str) -> bool {
    let a = if a.is_empty() { "default" } else { a };
    let b = if b.is_empty() { "default" } else { b };
    a == b
}
