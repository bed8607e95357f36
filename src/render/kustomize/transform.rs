//! The built-in transformers: namespace, prefix and suffix, labels,
//! annotations, images and replicas. Each is one small function over the
//! resources of a build.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config;
use super::fieldspec::{visit, Fs};
use super::model::{Image, Replica};
use super::resource::Res;
use crate::render::RenderError;
use crate::schema::Schema;

/// Sets the namespace of every namespaced object, and of `default`
/// subjects in role bindings.
pub(crate) fn namespace(res: &mut [Res], ns: &str, schema: &Schema) {
    for r in res.iter_mut() {
        let (g, k) = (r.group().to_string(), r.kind().to_string());
        if schema.is_namespaced(&g, &k) {
            r.set_namespace(ns);
        } else if g.is_empty() && k == "Namespace" {
            // kustomize renames Namespace objects to the namespace
            r.set_name(ns);
        }
        if g == "apiregistration.k8s.io" && k == "APIService" {
            let nsv = Value::String(ns.to_string());
            let path = [
                "spec".to_string(),
                "service".to_string(),
                "namespace".to_string(),
            ];
            let _ = visit::<()>(&mut r.value, &path, Some(&nsv), &mut |v: &mut Value| {
                *v = Value::String(ns.to_string());
                Ok(())
            });
        }
        if g == "apiextensions.k8s.io" && k == "CustomResourceDefinition" {
            let path: Vec<String> = [
                "spec",
                "conversion",
                "webhook",
                "clientConfig",
                "service",
                "namespace",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let _ = visit::<()>(&mut r.value, &path, None, &mut |v: &mut Value| {
                *v = Value::String(ns.to_string());
                Ok(())
            });
        }
        if k == "RoleBinding" || k == "ClusterRoleBinding" {
            if let Some(Value::Array(subjects)) = r.value.get_mut("subjects") {
                for s in subjects {
                    if s.get("name").and_then(Value::as_str) == Some("default") {
                        if let Some(m) = s.as_object_mut() {
                            m.insert("namespace".into(), Value::String(ns.to_string()));
                        }
                    }
                }
            }
        }
    }
}

fn skips_prefix(r: &Res) -> bool {
    matches!(
        (r.group(), r.kind()),
        (_, "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (_, "Namespace")
    )
}

/// Adds a prefix and a suffix to every name.
pub(crate) fn prefix_suffix(res: &mut [Res], prefix: &str, suffix: &str) {
    for r in res.iter_mut() {
        if skips_prefix(r) {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", r.name());
        r.set_name(&name);
        if !prefix.is_empty() {
            r.prefixes.push(prefix.to_string());
        }
        if !suffix.is_empty() {
            r.suffixes.push(suffix.to_string());
        }
    }
}

/// Sets `pairs` as map entries at every field spec.
pub(crate) fn set_map_entries(
    res: &mut [Res],
    pairs: &BTreeMap<String, String>,
    specs: &[Fs],
) -> Result<(), RenderError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let empty = Value::Object(Map::new());
    for r in res.iter_mut() {
        let (kind, group, version) = (
            r.kind().to_string(),
            r.group().to_string(),
            r.version().to_string(),
        );
        for fs in specs {
            if !fs.applies_to(&kind, &group, &version) {
                continue;
            }
            let mut bad = false;
            visit::<()>(
                &mut r.value,
                &fs.path,
                if fs.create { Some(&empty) } else { None },
                &mut |v: &mut Value| {
                    if v.is_null() {
                        *v = Value::Object(Map::new());
                    }
                    let Some(m) = v.as_object_mut() else {
                        bad = true;
                        return Err(());
                    };
                    for (k, val) in pairs {
                        m.insert(k.clone(), Value::String(val.clone()));
                    }
                    Ok(())
                },
            )
            .ok();
            if bad {
                return Err(RenderError::new(r.file.clone(), "expected a map")
                    .with_object(r.subject())
                    .with_field(fs.path.join(".")));
            }
        }
    }
    Ok(())
}

/// The labels of commonLabels: metadata, templates and selectors.
pub(crate) fn common_labels(
    res: &mut [Res],
    pairs: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    set_map_entries(res, pairs, &config::common_labels())
}

/// kustomize's image name split: `(name, tag, digest)`.
pub(crate) fn split_image(image: &str) -> (String, String, String) {
    let (search, slash) = match image.find('/') {
        Some(i) if i > 0 => (&image[i..], i),
        _ => (image, 0),
    };
    let id = search.find('@');
    let ic = search.find(':');
    match (ic, id) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (ic, Some(id)) if ic.is_none_or(|c| id < c) => {
            let id = id + slash;
            (
                image[..id].to_string(),
                String::new(),
                image[id + 1..].to_string(),
            )
        }
        (Some(ic), Some(id)) => {
            let (ic, id) = (ic + slash, id + slash);
            (
                image[..ic].to_string(),
                image[ic + 1..id].to_string(),
                image[id + 1..].to_string(),
            )
        }
        (Some(ic), None) => {
            let ic = ic + slash;
            (
                image[..ic].to_string(),
                image[ic + 1..].to_string(),
                String::new(),
            )
        }
        (None, Some(_)) => (image.to_string(), String::new(), String::new()),
    }
}

fn image_matches(value: &str, re: &Option<regex::Regex>, name: &str) -> bool {
    match re {
        Some(re) => re.is_match(value),
        None => value == name,
    }
}

fn new_image(value: &str, img: &Image) -> String {
    let (mut name, mut tag, mut digest) = split_image(value);
    if let Some(n) = img.new_name.as_deref().filter(|s| !s.is_empty()) {
        name = n.to_string();
    }
    let nt = img.new_tag.as_deref().filter(|s| !s.is_empty());
    let dg = img.digest.as_deref().filter(|s| !s.is_empty());
    match (nt, dg) {
        (Some(t), Some(d)) => {
            tag = t.to_string();
            digest = d.to_string();
        }
        (Some(t), None) => {
            tag = t.to_string();
            digest.clear();
        }
        (None, Some(d)) => {
            tag.clear();
            digest = d.to_string();
        }
        (None, None) => {}
    }
    if let Some(s) = img.tag_suffix.as_deref().filter(|s| !s.is_empty()) {
        tag.push_str(s);
    }
    let mut out = name;
    if !tag.is_empty() {
        out.push(':');
        out.push_str(&tag);
    }
    if !digest.is_empty() {
        out.push('@');
        out.push_str(&digest);
    }
    out
}

fn update_containers(v: &mut Value, img: &Image, re: &Option<regex::Regex>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "containers" || k == "initContainers" {
                    if let Value::Array(items) = child {
                        for c in items.iter_mut() {
                            if let Some(Value::String(s)) = c.get_mut("image") {
                                if image_matches(s, re, &img.name) {
                                    *s = new_image(s, img);
                                }
                            }
                        }
                        continue;
                    }
                }
                update_containers(child, img, re);
            }
        }
        Value::Array(items) => {
            for it in items {
                update_containers(it, img, re);
            }
        }
        _ => {}
    }
}

/// kustomize's pattern for an `images` entry's name (`IsImageMatched`).
pub(crate) fn image_pattern(name: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^{name}(@sha256)?(:[a-zA-Z0-9_.{{}}-]*)?$"))
}

/// Rewrites container images (anywhere in the object) and image volumes.
pub(crate) fn images(res: &mut [Res], images: &[Image]) {
    let specs = config::images();
    for img in images {
        // the builder refused a name that does not compile
        let re = image_pattern(&img.name).ok();
        for r in res.iter_mut() {
            update_containers(&mut r.value, img, &re);
            for fs in &specs {
                if !fs.applies(r) {
                    continue;
                }
                let _ = visit::<()>(&mut r.value, &fs.path, None, &mut |v: &mut Value| {
                    if let Value::String(s) = v {
                        if image_matches(s, &re, &img.name) {
                            *s = new_image(s, img);
                        }
                    }
                    Ok(())
                });
            }
        }
    }
}

/// Sets replica counts by object name.
pub(crate) fn replicas(
    res: &mut [Res],
    replicas: &[Replica],
    file: &str,
) -> Result<(), RenderError> {
    let specs = config::replicas();
    for rep in replicas {
        let mut found = false;
        for r in res.iter_mut() {
            if !r.names.iter().any(|n| n == &rep.name) {
                continue;
            }
            for fs in &specs {
                if !fs.applies(r) {
                    continue;
                }
                found = true;
                let count = Value::from(rep.count);
                let set = visit::<std::convert::Infallible>(
                    &mut r.value,
                    &fs.path,
                    Some(&count),
                    &mut |v: &mut Value| {
                        *v = Value::from(rep.count);
                        Ok(())
                    },
                );
                if let Err(never) = set {
                    match never {}
                }
            }
        }
        if !found {
            return Err(RenderError::new(
                file,
                format!(
                    "replicas: resource with name {} does not match a config with the following GVK [apps_v1_Deployment ~G_v1_ReplicationController apps_v1_ReplicaSet apps_v1_StatefulSet]",
                    rep.name
                ),
            )
            .with_field("replicas"));
        }
    }
    Ok(())
}
