//! Layering a Flux Kustomization's own fields onto the folder it builds, as
//! kustomize-controller's generator does.
//!
//! When the folder has a kustomization file, its `namespace`, `namePrefix`
//! and `nameSuffix` are replaced by the Kustomization's `targetNamespace`,
//! `namePrefix` and `nameSuffix`, and its `patches`, `images` and
//! `components` are extended. When it has none, one is generated first: every
//! YAML file becomes a resource (one that does not decode as Kubernetes
//! objects fails the build, naming the file and the line), a subfolder with
//! its own kustomization file becomes a single resource, and any other
//! subfolder is searched recursively.

use serde_json::{Map, Value};

use crate::flux::KustomizationSpec;
use crate::render::kustomize::{
    flux_generated_resources, KustomizeOptions, KUSTOMIZATION_FILE_NAMES,
};
use crate::render::RenderError;
use crate::source::{join_path, Tree};
use crate::yaml;

/// The file names kustomize accepts, in its order of preference.
pub const KUSTOMIZATION_FILES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn kustomization_file(tree: &Tree, dir: &str) -> Option<String> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|f| {
            if dir.is_empty() {
                f.to_string()
            } else {
                format!("{dir}/{f}")
            }
        })
        .find(|p| tree.is_file(p))
}

/// The kustomization Flux generates for a folder without one (see
/// [`flux_generated_resources`]).
pub fn generate_kustomization(tree: &Tree, dir: &str) -> Result<Value, RenderError> {
    let resources = flux_generated_resources(tree, dir, &KustomizeOptions::flux())?;
    let mut m = Map::new();
    m.insert(
        "apiVersion".into(),
        "kustomize.config.k8s.io/v1beta1".into(),
    );
    m.insert("kind".into(), "Kustomization".into());
    m.insert(
        "resources".into(),
        Value::Array(resources.into_iter().map(Value::String).collect()),
    );
    Ok(Value::Object(m))
}

fn has_overlay(spec: &KustomizationSpec) -> bool {
    spec.target_namespace.is_some()
        || spec.name_prefix.is_some()
        || spec.name_suffix.is_some()
        || !spec.patches.is_empty()
        || !spec.images.is_empty()
        || !spec.components.is_empty()
}

fn extend(m: &mut Map<String, Value>, field: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    let entry = m
        .entry(field.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    if let Value::Array(a) = entry {
        a.extend(items);
    }
}

/// Returns `tree` with the Kustomization's fields layered onto the folder
/// `path`. The tree is unchanged when the Kustomization sets none of them.
pub fn apply_overlay(
    tree: &Tree,
    path: &str,
    spec: &KustomizationSpec,
) -> Result<Tree, RenderError> {
    let dir = join_path("", path).map_err(|e| RenderError::new(path, e.to_string()))?;
    if !has_overlay(spec) {
        return Ok(tree.clone());
    }
    if !tree.is_dir(&dir) {
        return Err(RenderError::new(path, "kustomization path not found"));
    }
    let (file, mut k) = match kustomization_file(tree, &dir) {
        Some(f) => {
            let text = std::str::from_utf8(
                tree.read(&f)
                    .map_err(|e| RenderError::new(&f, e.to_string()))?,
            )
            .map_err(|_| RenderError::new(&f, "file is not UTF-8"))?;
            let v: Value =
                yaml::from_str(&f, text).map_err(|e| RenderError::new(&f, e.to_string()))?;
            (f, v)
        }
        None => {
            let f = if dir.is_empty() {
                "kustomization.yaml".to_string()
            } else {
                format!("{dir}/kustomization.yaml")
            };
            (f, generate_kustomization(tree, &dir)?)
        }
    };
    let Some(m) = k.as_object_mut() else {
        return Err(RenderError::new(&file, "kustomization is not a mapping"));
    };
    if let Some(ns) = &spec.target_namespace {
        m.insert("namespace".into(), Value::String(ns.clone()));
    }
    if let Some(p) = &spec.name_prefix {
        m.insert("namePrefix".into(), Value::String(p.clone()));
    }
    if let Some(s) = &spec.name_suffix {
        m.insert("nameSuffix".into(), Value::String(s.clone()));
    }
    extend(m, "patches", spec.patches.iter().map(to_value).collect());
    extend(m, "images", spec.images.iter().map(to_value).collect());
    extend(
        m,
        "components",
        spec.components
            .iter()
            .map(|c| Value::String(c.clone()))
            .collect(),
    );
    let mut out = tree.clone();
    // the generated file replaces any other spelling of the file name
    for f in KUSTOMIZATION_FILE_NAMES {
        let p = if dir.is_empty() {
            f.to_string()
        } else {
            format!("{dir}/{f}")
        };
        out.remove(&p);
    }
    out.insert_file(&file, yaml::to_string(&k).into_bytes())
        .map_err(|e| RenderError::new(&file, e.to_string()))?;
    Ok(out)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> KustomizationSpec {
        let mut base = serde_json::json!({"interval": "1m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "x"}});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn generates_and_layers() {
        let mut t = Tree::new();
        t.insert_file(
            "apps/a.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n".to_vec(),
        )
        .unwrap();
        t.insert_file(
            "apps/sub/b.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n".to_vec(),
        )
        .unwrap();
        t.insert_file("apps/kust/kustomization.yaml", b"resources: []\n".to_vec())
            .unwrap();
        let g = generate_kustomization(&t, "apps").unwrap();
        // a YAML file that is not Kubernetes objects fails, as in Flux
        let mut bad = t.clone();
        bad.insert_file("apps/notes.yaml", b"just: data\n".to_vec())
            .unwrap();
        let e = generate_kustomization(&bad, "apps").unwrap_err();
        assert_eq!(e.file, "apps/notes.yaml:1");
        assert_eq!(
            g["resources"],
            serde_json::json!(["a.yaml", "kust", "sub/b.yaml"])
        );
        let out = apply_overlay(&t, "./apps", &spec(serde_json::json!({"targetNamespace": "team-a", "images": [{"name": "x", "newTag": "2"}]}))).unwrap();
        let k: Value = yaml::from_str(
            "k",
            std::str::from_utf8(out.read("apps/kustomization.yaml").unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(k["namespace"], "team-a");
        assert_eq!(k["images"][0]["newTag"], "2");
        // nothing to layer: the tree is unchanged
        assert_eq!(
            apply_overlay(&t, "apps", &spec(serde_json::json!({}))).unwrap(),
            t
        );
    }
}
