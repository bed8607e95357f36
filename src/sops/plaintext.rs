//! The plaintext-Secret rule: no Secret value reaches a cluster from
//! plaintext in Git.
//!
//! The rule runs once, on the final objects of a build: after every
//! generator, patch, replacement and transformer, after `List` expansion,
//! and (in the fleet) after Flux's post-build substitution. A value of a
//! Secret's `data` or `stringData` passes only when it is exactly a value
//! SOPS decrypted for that object at that key ([`Sealed`]), when it is
//! empty (nothing to hide), or when the object came from a path the host
//! allows. Everything else is a render error naming the file, the Secret
//! and the field, never the value.
//!
//! The renderer records, for every object it builds, the file it came from
//! and the values SOPS decrypted for it ([`Origin`]); the record travels
//! with the objects in [`SecretProvenance`], so a later step that rewrites
//! them (post-build substitution) re-runs the same check on its output.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::object::Object;
use crate::render::RenderError;

/// The fields of a Secret that hold its values.
pub const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];

/// The values of one SOPS document, by path (map keys from the root; like
/// SOPS, sequence indices are not part of a path), split by whether SOPS
/// encrypted them. Empty strings and nulls are in neither set: they hold
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentValues {
    /// Values that were ciphertext in the file.
    pub encrypted: BTreeSet<Vec<String>>,
    /// Values the file holds in clear (`encrypted_regex`,
    /// `unencrypted_suffix` and the like left them out).
    pub clear: BTreeSet<Vec<String>>,
}

/// A decrypted SOPS file: the plaintext and which of its values SOPS had
/// encrypted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext, in the file's format.
    pub text: String,
    /// One entry per document of `text`, in order (one for JSON, dotenv
    /// and ini files).
    pub documents: Vec<DocumentValues>,
}

impl Decrypted {
    /// True when SOPS encrypted every non-empty value of the file. Map keys
    /// are never encrypted by SOPS and do not count.
    pub fn fully_encrypted(&self) -> bool {
        self.documents.iter().all(|d| d.clear.is_empty())
    }
}

/// The values of one object that came from SOPS ciphertext: by field
/// (`data` or `stringData`) and key, the value as it was decrypted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sealed {
    values: BTreeMap<(String, String), Value>,
}

impl Sealed {
    /// The sealed values of object `doc`, a document of a decrypted file
    /// whose values are described by `paths`; `prefix` is the object's path
    /// in the document (`["items"]` for an item of a `List`).
    pub fn from_document(doc: &Value, prefix: &[String], paths: &DocumentValues) -> Sealed {
        let mut sealed = Sealed::default();
        for field in SECRET_FIELDS {
            let Some(map) = doc.get(field).and_then(Value::as_object) else {
                continue;
            };
            for (key, v) in map {
                let mut path = prefix.to_vec();
                path.push(field.to_string());
                path.push(key.clone());
                if paths.encrypted.contains(&path) {
                    sealed.insert(field, key, v.clone());
                }
            }
        }
        sealed
    }

    /// Records `value` at `field`.`key` as decrypted by SOPS.
    pub fn insert(&mut self, field: &str, key: &str, value: Value) {
        self.values
            .insert((field.to_string(), key.to_string()), value);
    }

    /// The value SOPS decrypted at `field`.`key`, if any.
    pub fn get(&self, field: &str, key: &str) -> Option<&Value> {
        self.values.get(&(field.to_string(), key.to_string()))
    }

    /// True when no value is sealed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds `other`'s values, replacing those at the same field and key.
    pub fn extend(&mut self, other: Sealed) {
        self.values.extend(other.values);
    }

    /// The sealed values: `(field, key)` and the value.
    pub fn iter(&self) -> impl Iterator<Item = (&(String, String), &Value)> {
        self.values.iter()
    }

    /// Rewrites every entry with `f`, which returns the new key and value.
    pub fn try_map<E>(
        self,
        mut f: impl FnMut(&str, String, Value) -> Result<(String, Value), E>,
    ) -> Result<Sealed, E> {
        let mut values = BTreeMap::new();
        for ((field, key), v) in self.values {
            let (key, v) = f(&field, key, v)?;
            values.insert((field, key), v);
        }
        Ok(Sealed { values })
    }
}

/// Where one rendered object came from, as the plaintext-Secret rule needs
/// to know it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// The file it was read from, or the kustomization of its generator.
    pub file: String,
    /// Its values that SOPS decrypted.
    pub sealed: Sealed,
    /// True when the object was read from a SOPS-encrypted file.
    pub from_sops: bool,
}

/// The plaintext-Secret rule as a renderer applied it, with the origin of
/// every object it rendered, so that a step rewriting the objects later
/// (Flux's post-build substitution) can run the same check on its output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretProvenance {
    /// True when plaintext Secret values are refused.
    pub refuse: bool,
    /// Files or folders (relative to the source root) whose Secrets may
    /// hold plaintext all the same.
    pub allow: Vec<String>,
    /// One entry per rendered object, in the same order; empty when the
    /// rule is not in force.
    pub origins: Vec<Origin>,
}

/// True when `path` is one of `allow`, or inside one of them.
pub fn path_allowed(allow: &[String], path: &str) -> bool {
    allow.iter().any(|a| {
        let a = a.trim_end_matches('/');
        !a.is_empty() && (path == a || path.starts_with(&format!("{a}/")))
    })
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

impl SecretProvenance {
    /// Checks `objects` (the rendered objects, in the order they were
    /// rendered, possibly rewritten since) against the rule: every
    /// non-empty value of a Secret's `data` and `stringData` must be the
    /// value SOPS decrypted for it, unless the object comes from an allowed
    /// path. The error names the file, the Secret and the field, never
    /// the value.
    pub fn check(&self, objects: &[Object]) -> Result<(), RenderError> {
        if !self.refuse {
            return Ok(());
        }
        let none = Origin::default();
        for (i, o) in objects.iter().enumerate() {
            if o.kind() != "Secret" || !o.group().is_empty() {
                continue;
            }
            let origin = self.origins.get(i).unwrap_or(&none);
            if path_allowed(&self.allow, &origin.file) {
                continue;
            }
            for field in SECRET_FIELDS {
                let entries: Vec<(String, &Value)> = match o.value().get(field) {
                    None => continue,
                    Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
                    Some(v) => vec![(String::new(), v)],
                };
                for (key, v) in entries {
                    if is_empty_value(v) {
                        continue;
                    }
                    let why = match origin.sealed.get(field, &key) {
                        Some(s) if s == v => continue,
                        Some(_) => "the value is not the one SOPS decrypted: a patch, replacement or substitution set it from plaintext",
                        None if origin.from_sops => "SOPS left this value unencrypted (the file's encrypted_regex, unencrypted_suffix or the like exclude it): encrypt it, or allow this path",
                        None => "its values are not SOPS-encrypted (encrypt the file with sops, or allow this path)",
                    };
                    let field = if key.is_empty() {
                        field.to_string()
                    } else {
                        format!("{field}.{key}")
                    };
                    return Err(RenderError::new(
                        origin.file.clone(),
                        format!("plaintext Secret: {why}"),
                    )
                    .with_object(o.id().subject())
                    .with_field(field));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(data: Value) -> Object {
        let mut v = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}});
        if let (Some(o), Some(d)) = (v.as_object_mut(), data.as_object()) {
            for (k, x) in d {
                o.insert(k.clone(), x.clone());
            }
        }
        Object::new(v).unwrap()
    }

    fn rule(origins: Vec<Origin>) -> SecretProvenance {
        SecretProvenance {
            refuse: true,
            allow: vec!["ok/".to_string()],
            origins,
        }
    }

    #[test]
    fn empty_values_and_other_kinds_pass() {
        let p = rule(vec![Origin::default(), Origin::default()]);
        let empty = secret(json!({"data": {"a": "", "b": null}, "stringData": {}}));
        let cm = Object::new(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"password": "x"}}))
        .unwrap();
        p.check(&[empty, cm]).unwrap();
        // a Secret of another API group is not a Kubernetes Secret
        let other = Object::new(json!({"apiVersion": "example.com/v1", "kind": "Secret",
            "metadata": {"name": "c"}, "data": {"password": "x"}}))
        .unwrap();
        p.check(&[other]).unwrap();
    }

    #[test]
    fn sealed_values_pass_only_unchanged() {
        let mut sealed = Sealed::default();
        sealed.insert("stringData", "password", json!("s3cret"));
        let origin = Origin {
            file: "app/s.yaml".into(),
            sealed,
            from_sops: true,
        };
        let p = rule(vec![origin]);
        p.check(&[secret(json!({"stringData": {"password": "s3cret"}}))])
            .unwrap();
        let e = p
            .check(&[secret(json!({"stringData": {"password": "other"}}))])
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stringData.password"));
        assert!(e.message.contains("not the one SOPS decrypted"), "{e}");
        // the same value under data is not the sealed one
        let e = p
            .check(&[secret(json!({"data": {"password": "s3cret"}}))])
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data.password"));
        assert!(e.message.contains("left this value unencrypted"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn allowed_paths_and_the_rule_off() {
        let plain = secret(json!({"stringData": {"password": "x"}}));
        let p = rule(vec![Origin {
            file: "ok/s.yaml".into(),
            ..Origin::default()
        }]);
        p.check(std::slice::from_ref(&plain)).unwrap();
        let p = rule(vec![Origin {
            file: "okay/s.yaml".into(),
            ..Origin::default()
        }]);
        let e = p.check(std::slice::from_ref(&plain)).unwrap_err();
        assert_eq!(e.file, "okay/s.yaml");
        assert_eq!(e.object.as_deref(), Some("Secret/n/s"));
        SecretProvenance::default().check(&[plain]).unwrap();
    }

    #[test]
    fn a_data_field_that_is_not_a_map_is_a_value() {
        let p = rule(vec![Origin::default()]);
        let e = p
            .check(&[secret(json!({"stringData": "password"}))])
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stringData"));
    }
}
