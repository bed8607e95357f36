//! `openapi` (custom merge keys) and `crds` (name references of custom
//! kinds), both read from OpenAPI definitions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::NameRef;
use super::fieldspec::Fs;
use super::{Acc, Builder};
use crate::render::RenderError;
use crate::schema::merge::{FieldDef, ListStrategy, TypeDef};

fn ref_name(v: &Value) -> Option<String> {
    v.get("$ref")
        .and_then(Value::as_str)
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
}

fn parse(file: &str, text: &str, b: &Builder<'_>) -> Result<Value, RenderError> {
    let docs = crate::yaml::load_documents(file, text, &b.opts.limits)
        .map_err(|e| RenderError::new(file, e.to_string()))?;
    docs.into_iter()
        .next()
        .ok_or_else(|| RenderError::new(file, "the OpenAPI document is empty"))
}

/// Loads `openapi: {path: file}` into the build's merge schema.
pub(crate) fn load(
    b: &mut Builder<'_>,
    dir: &str,
    file: &str,
    oa: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    for k in oa.keys() {
        if k != "path" && k != "version" {
            return Err(
                RenderError::new(file, format!("unknown openapi field {k:?}"))
                    .with_field("openapi"),
            );
        }
    }
    if let Some(v) = oa.get("version") {
        if v != "v1.21.2" && !v.is_empty() {
            return Err(
                RenderError::new(file, format!("unsupported openapi version {v:?}"))
                    .with_field("openapi.version"),
            );
        }
    }
    let Some(p) = oa.get("path") else {
        return Ok(());
    };
    let full = b.file_path(dir, p, file, "openapi.path")?;
    let text = b.read_text(&full, file)?;
    let doc = parse(&full, text, b)?;
    let Some(defs) = doc.get("definitions").and_then(Value::as_object) else {
        return Err(
            RenderError::new(&full, "an OpenAPI schema needs `definitions`")
                .with_field("definitions"),
        );
    };
    for (name, def) in defs {
        let mut t = TypeDef::default();
        if let Some(props) = def.get("properties").and_then(Value::as_object) {
            for (fname, prop) in props {
                let strategy = prop
                    .get("x-kubernetes-patch-strategy")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let key = prop
                    .get("x-kubernetes-patch-merge-key")
                    .and_then(Value::as_str);
                let items = prop.get("items");
                let type_name = ref_name(prop).or_else(|| items.and_then(ref_name));
                let list = if strategy.split(',').any(|s| s == "merge") {
                    match key {
                        Some(k) => Some(ListStrategy::MergeByKey(k.to_string())),
                        None => Some(ListStrategy::MergePrimitives),
                    }
                } else {
                    None
                };
                t.fields.insert(fname.clone(), FieldDef { type_name, list });
            }
        }
        if let Some(add) = def.get("additionalProperties").and_then(ref_name) {
            t.additional = Some(add);
        }
        b.schema.merge.add_type(name, t);
        if let Some(Value::Array(gvks)) = def.get("x-kubernetes-group-version-kind") {
            for g in gvks {
                let group = g.get("group").and_then(Value::as_str).unwrap_or_default();
                if let Some(kind) = g.get("kind").and_then(Value::as_str) {
                    b.schema.merge.add_kind(group, kind, name);
                }
            }
        }
    }
    Ok(())
}

/// Loads a `crds` file: OpenAPI definitions whose properties carry
/// `x-kubernetes-object-ref-kind` / `x-kubernetes-object-ref-name-key`.
pub(crate) fn load_crds(
    b: &mut Builder<'_>,
    file: &str,
    text: &str,
    acc: &mut Acc,
) -> Result<(), RenderError> {
    let doc = parse(file, text, b)?;
    let Some(defs) = doc.as_object() else {
        return Err(RenderError::new(
            file,
            "a crds file must map definition names to schemas",
        ));
    };
    for (name, def) in defs {
        let kind = name.rsplit('.').next().unwrap_or(name).to_string();
        let mut found = Vec::new();
        walk(def, defs, &mut Vec::new(), &mut found, 0);
        for (path, rkind, key) in found {
            let mut p = path.join("/");
            if !key.is_empty() {
                p.push('/');
                p.push_str(&key);
            }
            acc.refs.push(NameRef {
                group: String::new(),
                kind: rkind,
                fs: Fs::new(&p, None, None, Some(&kind), false),
            });
        }
    }
    Ok(())
}

fn walk(
    def: &Value,
    defs: &serde_json::Map<String, Value>,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String, String)>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let schema = def.get("Schema").unwrap_or(def);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, prop) in props {
        path.push(k.clone());
        if let Some(rk) = prop
            .get("x-kubernetes-object-ref-kind")
            .and_then(Value::as_str)
        {
            let key = prop
                .get("x-kubernetes-object-ref-name-key")
                .and_then(Value::as_str)
                .unwrap_or("name")
                .to_string();
            out.push((path.clone(), rk.to_string(), key));
        } else if let Some(r) = ref_name(prop).or_else(|| prop.get("items").and_then(ref_name)) {
            let target = defs
                .iter()
                .find(|(n, _)| n.rsplit('.').next() == Some(r.as_str()) || **n == r)
                .map(|(_, d)| d.clone());
            if let Some(d) = target {
                walk(&d, defs, path, out, depth + 1);
            }
        } else {
            walk(prop, defs, path, out, depth + 1);
        }
        path.pop();
    }
}
