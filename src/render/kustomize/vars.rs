//! Legacy `vars`: `$(NAME)` in a fixed set of fields is replaced with a
//! field of another object, after all other transformations.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fieldspec::{visit, Fs};
use super::model::Var;
use super::resource::Res;
use crate::render::RenderError;

const POD_KINDS: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

fn var_refs() -> Vec<Fs> {
    let mut out = Vec::new();
    for (k, pre) in POD_KINDS {
        for s in [
            "containers/args",
            "containers/command",
            "containers/env/value",
            "initContainers/args",
            "initContainers/command",
            "initContainers/env/value",
            "volumes/nfs/server",
        ] {
            out.push(Fs::new(&format!("{pre}/{s}"), None, None, Some(k), false));
        }
    }
    for p in ["spec/rules/host", "spec/tls/hosts", "spec/tls/secretName"] {
        out.push(Fs::new(p, None, None, Some("Ingress"), false));
    }
    out.push(Fs::new("metadata/annotations", None, None, None, false));
    out
}

/// Expands `$(VAR)` the way Kubernetes does: `$$` escapes, unknown names
/// stay as written.
pub(crate) fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&s[i..i + 3 + end]),
                    }
                    i += 3 + end;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

fn var_path(p: &str) -> Vec<String> {
    // `spec.ports[0].port` → spec, ports, 0, port
    let mut out = Vec::new();
    for seg in super::replace::split_field_path(p) {
        let mut rest = seg.as_str();
        while let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(rest[..open].to_string());
            }
            let Some(close) = rest[open..].find(']') else {
                break;
            };
            out.push(rest[open + 1..open + close].to_string());
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

/// Resolves all vars over `res`.
pub(crate) fn resolve(res: &mut [Res], vars: &[(Var, String)]) -> Result<(), RenderError> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values = BTreeMap::new();
    for (v, file) in vars {
        let o = &v.objref;
        let (group, version) = match (&o.api_version, &o.group, &o.version) {
            (Some(av), _, _) => (
                crate::object::group_of(av).to_string(),
                Some(
                    av.rsplit_once('/')
                        .map(|(_, v)| v)
                        .unwrap_or(av)
                        .to_string(),
                ),
            ),
            (None, g, v) => (g.clone().unwrap_or_default(), v.clone()),
        };
        let m: Vec<&Res> = res
            .iter()
            .filter(|r| {
                o.kind.as_deref().is_none_or(|k| k == r.kind())
                    && o.name
                        .as_deref()
                        .is_none_or(|n| r.names.iter().any(|x| x == n))
                    && (group.is_empty() && o.api_version.is_none() || r.group() == group)
                    && version.as_deref().is_none_or(|v| v == r.version())
                    && o.namespace
                        .as_deref()
                        .is_none_or(|ns| r.namespaces.iter().any(|x| super::resource::ns_eq(x, ns)))
            })
            .collect();
        let r = match m.as_slice() {
            [r] => *r,
            [] => {
                return Err(RenderError::new(
                    file,
                    format!(
                        "var '{}' cannot be mapped to a field in the set of known resources",
                        v.name
                    ),
                )
                .with_field("vars"))
            }
            _ => {
                return Err(RenderError::new(
                    file,
                    format!(
                        "found {} resId matches for var '{}' (unable to disambiguate)",
                        m.len(),
                        v.name
                    ),
                )
                .with_field("vars"))
            }
        };
        let fp = v
            .fieldref
            .as_ref()
            .and_then(|f| f.fieldpath.clone())
            .unwrap_or_else(|| "metadata.name".into());
        let val = super::replace::lookup(&r.value, &var_path(&fp)).ok_or_else(|| {
            RenderError::new(
                file,
                format!(
                    "field specified in var '{}' ({fp}) not found in {}",
                    v.name,
                    r.subject()
                ),
            )
            .with_field("vars")
        })?;
        let s = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(RenderError::new(
                    file,
                    format!(
                        "var '{}' must refer to a scalar field, {fp} is not one",
                        v.name
                    ),
                )
                .with_field("vars"))
            }
        };
        values.insert(v.name.clone(), s);
    }
    let specs = var_refs();
    for r in res.iter_mut() {
        for fs in &specs {
            if !fs.applies(r) {
                continue;
            }
            let _ = visit::<()>(&mut r.value, &fs.path, None, &mut |v: &mut Value| {
                expand_in(v, &values);
                Ok(())
            });
        }
    }
    Ok(())
}

fn expand_in(v: &mut Value, vars: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => *s = expand(s, vars),
        Value::Object(m) => {
            for (_, x) in m.iter_mut() {
                if let Value::String(s) = x {
                    *s = expand(s, vars);
                }
            }
        }
        _ => {}
    }
}
