//! `replacements`: copy a field of one object into fields of others, with
//! kyaml's field paths (`spec.containers.[name=app].image`, `*`).

use serde_json::{Map, Value};

use super::model::{FieldOptions, Replacement, ReplacementEntry, Selector};
use super::patch::Sel;
use super::{Acc, Builder};
use crate::render::RenderError;

/// Splits a kyaml field path on dots outside brackets.
pub(crate) fn split_field_path(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in p.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn seg_matches_item(seg: &str, item: &Value) -> Option<bool> {
    let inner = seg.strip_prefix('[')?.strip_suffix(']')?;
    let (k, v) = inner.split_once('=')?;
    if k.is_empty() {
        return Some(match item {
            Value::String(s) => s == v,
            other => scalar_string(other).as_deref() == Some(v),
        });
    }
    Some(match item.get(k) {
        Some(Value::String(s)) => s == v,
        Some(other) => scalar_string(other).as_deref() == Some(v),
        None => false,
    })
}

/// Collects mutable references to every node at `path`; with `create`,
/// creates missing map fields (and `[k=v]` items) on the way.
pub(crate) fn lookup_mut<'v>(
    v: &'v mut Value,
    path: &[String],
    create: bool,
    out: &mut Vec<&'v mut Value>,
) {
    let Some((seg, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    if seg == "*" {
        match v {
            Value::Array(items) => {
                for it in items {
                    lookup_mut(it, rest, create, out);
                }
            }
            Value::Object(m) => {
                for (_, it) in m.iter_mut() {
                    lookup_mut(it, rest, create, out);
                }
            }
            _ => {}
        }
        return;
    }
    if seg.starts_with('[') {
        if let Value::Array(items) = v {
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, it)| seg_matches_item(seg, it) == Some(true))
                .map(|(i, _)| i)
                .collect();
            if hits.is_empty() {
                if !create {
                    return;
                }
                if let Some((k, val)) = seg
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.split_once('='))
                {
                    if !k.is_empty() {
                        let mut m = Map::new();
                        m.insert(k.to_string(), Value::String(val.to_string()));
                        items.push(Value::Object(m));
                        if let Some(last) = items.last_mut() {
                            lookup_mut(last, rest, create, out);
                        }
                    }
                }
                return;
            }
            for (i, it) in items.iter_mut().enumerate() {
                if hits.contains(&i) {
                    lookup_mut(it, rest, create, out);
                }
            }
        }
        return;
    }
    match v {
        Value::Array(items) => {
            if let Ok(i) = seg.parse::<usize>() {
                if let Some(it) = items.get_mut(i) {
                    lookup_mut(it, rest, create, out);
                }
            }
        }
        Value::Object(m) => {
            if !m.contains_key(seg.as_str()) || m.get(seg.as_str()).is_some_and(Value::is_null) {
                if !create {
                    return;
                }
                m.insert(seg.clone(), Value::Object(Map::new()));
            }
            if let Some(next) = m.get_mut(seg.as_str()) {
                lookup_mut(next, rest, create, out);
            }
        }
        Value::Null if create => {
            *v = Value::Object(Map::new());
            lookup_mut(v, path, create, out);
        }
        _ => {}
    }
}

/// The first node at `path`, read-only.
pub(crate) fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    let Some((seg, rest)) = path.split_first() else {
        return Some(v);
    };
    if seg.starts_with('[') {
        let items = v.as_array()?;
        let it = items
            .iter()
            .find(|it| seg_matches_item(seg, it) == Some(true))?;
        return lookup(it, rest);
    }
    match v {
        Value::Array(items) => lookup(items.get(seg.parse::<usize>().ok()?)?, rest),
        Value::Object(m) => lookup(m.get(seg.as_str())?, rest),
        _ => None,
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn part(value: &Value, opts: Option<&FieldOptions>, file: &str) -> Result<Value, RenderError> {
    let Some(o) = opts else {
        return Ok(value.clone());
    };
    let Some(d) = o.delimiter.as_deref().filter(|d| !d.is_empty()) else {
        return Ok(value.clone());
    };
    let s = scalar_string(value).ok_or_else(|| {
        RenderError::new(file, "delimiter option can only be used with scalar nodes")
            .with_field("replacements")
    })?;
    let parts: Vec<&str> = s.split(d).collect();
    let idx = o.index.unwrap_or(0);
    if idx < 0 || idx as usize >= parts.len() {
        return Err(RenderError::new(
            file,
            format!("options.index {idx} is out of bounds for value {s}"),
        )
        .with_field("replacements"));
    }
    Ok(Value::String(parts[idx as usize].to_string()))
}

fn set_part(target: &mut Value, value: &Value, opts: Option<&FieldOptions>) {
    if let Some(o) = opts {
        if let Some(d) = o.delimiter.as_deref().filter(|d| !d.is_empty()) {
            let cur = scalar_string(target).unwrap_or_default();
            let mut parts: Vec<String> = cur.split(d).map(str::to_string).collect();
            let idx = o.index.unwrap_or(0);
            let v = scalar_string(value).unwrap_or_default();
            if idx < 0 {
                parts.insert(0, v);
            } else if idx as usize >= parts.len() {
                parts.push(v);
            } else {
                parts[idx as usize] = v;
            }
            *target = Value::String(parts.join(d));
            return;
        }
    }
    *target = value.clone();
}

fn source_selector(s: &super::model::ReplacementSource) -> Selector {
    Selector {
        group: s.group.clone(),
        version: s.version.clone(),
        kind: s.kind.clone(),
        name: s.name.as_ref().map(|n| regex::escape(n)),
        namespace: s.namespace.as_ref().map(|n| regex::escape(n)),
        label_selector: None,
        annotation_selector: None,
    }
}

fn apply_one(
    b: &Builder<'_>,
    rep: &Replacement,
    file: &str,
    acc: &mut Acc,
) -> Result<(), RenderError> {
    let src = rep.source.as_ref().ok_or_else(|| {
        RenderError::new(file, "replacement has no source").with_field("replacements.source")
    })?;
    let ssel = source_selector(src);
    let picked = super::patch::select(b, &ssel, acc, file, "replacements.source")?;
    let i = match picked.as_slice() {
        [i] => *i,
        [] => {
            return Err(
                RenderError::new(file, format!("nothing selected by {}", describe(&ssel)))
                    .with_field("replacements.source"),
            )
        }
        _ => {
            return Err(RenderError::new(
                file,
                format!("multiple matches for selector {}", describe(&ssel)),
            )
            .with_field("replacements.source"))
        }
    };
    let fp = src
        .field_path
        .clone()
        .unwrap_or_else(|| "metadata.name".into());
    let path = split_field_path(&fp);
    let value = lookup(&acc.res[i].value, &path).cloned().ok_or_else(|| {
        RenderError::new(
            file,
            format!(
                "fieldPath `{fp}` is missing for replacement source {}",
                acc.res[i].id_string()
            ),
        )
        .with_object(acc.res[i].subject())
        .with_field("replacements.source.fieldPath")
    })?;
    let value = part(&value, src.options.as_ref(), file)?;
    // a Secret value SOPS decrypted stays sealed when copied whole into
    // another Secret value
    let sealed = match secret_value_path(&path) {
        Some((f, k)) if no_delimiter(src.options.as_ref()) => acc.res[i]
            .sealed
            .get(f, k)
            .filter(|s| **s == value)
            .cloned(),
        _ => None,
    };
    for t in &rep.targets {
        let Some(sel) = &t.select else {
            return Err(
                RenderError::new(file, "target must specify resources to select")
                    .with_field("replacements.targets.select"),
            );
        };
        let chosen = super::patch::select(b, sel, acc, file, "replacements.targets.select")?;
        let rejects: Vec<Sel<'_>> = t
            .reject
            .iter()
            .map(|r| {
                Sel::new(r).map_err(|e| {
                    RenderError::new(file, e).with_field("replacements.targets.reject")
                })
            })
            .collect::<Result<_, _>>()?;
        let create = t.options.as_ref().is_some_and(|o| o.create);
        for ti in chosen {
            let namespaced = b
                .schema
                .is_namespaced(acc.res[ti].group(), acc.res[ti].kind());
            if rejects.iter().any(|r| r.matches(&acc.res[ti], namespaced)) {
                continue;
            }
            let subject = acc.res[ti].subject();
            for fp in &t.field_paths {
                let path = split_field_path(fp);
                let mut nodes = Vec::new();
                lookup_mut(&mut acc.res[ti].value, &path, create, &mut nodes);
                if nodes.is_empty() {
                    return Err(RenderError::new(
                        file,
                        format!("unable to find field \"{fp}\" in replacement target"),
                    )
                    .with_object(subject.clone())
                    .with_field("replacements.targets.fieldPaths"));
                }
                // each field written takes a copy of the value
                let cost = crate::render::merge::nodes_up_to(&value, b.budget.left())
                    .saturating_mul(nodes.len());
                b.budget.charge(cost).map_err(|e| {
                    RenderError::new(file, e.message())
                        .with_object(subject.clone())
                        .with_field("replacements.targets.fieldPaths")
                })?;
                for n in nodes {
                    set_part(n, &value, t.options.as_ref());
                }
                if let (Some(v), Some((f, k))) = (&sealed, secret_value_path(&path)) {
                    if no_delimiter(t.options.as_ref()) {
                        acc.res[ti].sealed.insert(f, k, v.clone());
                    }
                }
            }
            let name = acc.res[ti].name().to_string();
            acc.res[ti].set_name(&name);
        }
    }
    Ok(())
}

/// `(field, key)` when `path` names one value of a Secret's `data` or
/// `stringData`.
fn secret_value_path(path: &[String]) -> Option<(&str, &str)> {
    match path {
        [f, k]
            if crate::sops::plaintext::SECRET_FIELDS.contains(&f.as_str())
                && !k.starts_with('[')
                && k != "*" =>
        {
            Some((f, k))
        }
        _ => None,
    }
}

fn no_delimiter(o: Option<&FieldOptions>) -> bool {
    o.and_then(|o| o.delimiter.as_deref())
        .is_none_or(str::is_empty)
}

fn describe(s: &Selector) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("group", &s.group),
        ("version", &s.version),
        ("kind", &s.kind),
        ("name", &s.name),
        ("namespace", &s.namespace),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(",")
}

/// Applies every replacement of a kustomization, in order.
pub(crate) fn apply_all(
    b: &Builder<'_>,
    dir: &str,
    file: &str,
    entries: &[ReplacementEntry],
    acc: &mut Acc,
) -> Result<(), RenderError> {
    for e in entries {
        match (&e.path, &e.source) {
            (Some(p), None) if e.targets.is_empty() => {
                let full = b.file_path(dir, p, file, "replacements.path")?;
                let text = b.read_text(&full, file)?;
                let docs = crate::yaml::load_documents(&full, text, &b.opts.limits)
                    .map_err(|e| RenderError::new(&full, e.to_string()))?;
                for d in docs {
                    let items = match d {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for it in items {
                        let rep: Replacement = serde_json::from_value(it).map_err(|e| {
                            RenderError::new(&full, format!("invalid replacement: {e}"))
                        })?;
                        apply_one(b, &rep, &full, acc)?;
                    }
                }
            }
            (None, _) => {
                let rep = Replacement {
                    source: e.source.clone(),
                    targets: e.targets.clone(),
                };
                apply_one(b, &rep, file, acc)?;
            }
            _ => {
                return Err(RenderError::new(
                    file,
                    "a replacement has either a path or a source and targets",
                )
                .with_field("replacements"))
            }
        }
    }
    Ok(())
}
