//! Post-build variable substitution, as Flux's `spec.postBuild` does it.
//!
//! Each object is written as YAML, variables are replaced in the text, and
//! the text is parsed back, exactly as kustomize-controller does with
//! envsubst. Only the braced form `${var}` is replaced; `$var` stays as it is,
//! and `$${var}` is an escape that prints `${var}`.
//!
//! Supported forms: `${var}`, `${var:=default}`, `${var:-default}`,
//! `${var=default}`, `${var-default}`, `${#var}`, `${var:offset}`,
//! `${var:offset:length}`, `${var/from/to}`, `${var//from/to}`,
//! `${var#prefix}`, `${var%suffix}`, `${var^}`, `${var^^}`, `${var,}` and
//! `${var,,}`.

use std::collections::BTreeMap;

use crate::object::Object;
use crate::render::{RenderError, Rendered};
use crate::yaml;

/// The annotation that turns substitution off for one object.
pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// A substitution failure, naming the object and the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject}: {message}")]
#[non_exhaustive]
pub struct SubstituteError {
    /// `Kind/ns/name` of the object.
    pub subject: String,
    /// What went wrong.
    pub message: String,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Checks variable names against Flux's rule `^[_[:alpha:]][_[:alpha:][:digit:]]*$`.
pub fn check_names(vars: &BTreeMap<String, String>) -> Result<(), String> {
    match vars.keys().find(|k| !valid_name(k)) {
        Some(k) => Err(format!(
            "'{k}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
        )),
        None => Ok(()),
    }
}

/// Replaces variables in `text`. With `strict`, a variable that is not set
/// and has no default is an error.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$${") {
            // $${var} prints ${var}
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = find_close(body_start) else {
            return Err(format!(
                "unclosed variable expression {:?}",
                truncate(after)
            ));
        };
        let expr = &body_start[..end];
        out.push_str(&evaluate(expr, vars, strict)?);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(40).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}

/// The index of the `}` closing an expression, allowing nested `${...}` in
/// defaults.
fn find_close(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn evaluate(expr: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, String> {
    if let Some(name) = expr.strip_prefix('#') {
        if valid_name(name) {
            return Ok(lookup(name, vars, strict)?.chars().count().to_string());
        }
    }
    let name_len = expr
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(expr.len());
    let name = &expr[..name_len];
    if !valid_name(name) {
        return Err(format!("invalid variable expression ${{{expr}}}"));
    }
    let op = &expr[name_len..];
    let value = vars.get(name);
    let default = |d: &str| substitute(d, vars, strict);
    if op.is_empty() {
        return lookup(name, vars, strict);
    }
    if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        return match value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => default(d),
        };
    }
    if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
        return match value {
            Some(v) => Ok(v.clone()),
            None => default(d),
        };
    }
    let v = lookup(name, vars, strict)?;
    if let Some(args) = op.strip_prefix(':') {
        let mut parts = args.splitn(2, ':');
        let chars: Vec<char> = v.chars().collect();
        let offset: i64 = parts
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .map_err(|_| format!("invalid offset in ${{{expr}}}"))?;
        let start = if offset < 0 {
            chars.len().saturating_sub(offset.unsigned_abs() as usize)
        } else {
            (offset as usize).min(chars.len())
        };
        let end = match parts.next() {
            Some(l) => {
                let len: usize = l
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid length in ${{{expr}}}"))?;
                (start + len).min(chars.len())
            }
            None => chars.len(),
        };
        return Ok(chars[start..end].iter().collect());
    }
    if let Some(args) = op.strip_prefix("//") {
        let (from, to) = args.split_once('/').unwrap_or((args, ""));
        return Ok(if from.is_empty() {
            v
        } else {
            v.replace(from, to)
        });
    }
    if let Some(args) = op.strip_prefix('/') {
        let (from, to) = args.split_once('/').unwrap_or((args, ""));
        return Ok(if from.is_empty() {
            v
        } else {
            v.replacen(from, to, 1)
        });
    }
    if let Some(p) = op.strip_prefix("##").or_else(|| op.strip_prefix('#')) {
        return Ok(v.strip_prefix(p).map(str::to_string).unwrap_or(v));
    }
    if let Some(p) = op.strip_prefix("%%").or_else(|| op.strip_prefix('%')) {
        return Ok(v.strip_suffix(p).map(str::to_string).unwrap_or(v));
    }
    match op {
        "^^" => Ok(v.to_uppercase()),
        ",," => Ok(v.to_lowercase()),
        "^" => Ok(first_char(&v, char::to_uppercase)),
        "," => Ok(first_char(&v, char::to_lowercase)),
        _ => Err(format!("unsupported variable expression ${{{expr}}}")),
    }
}

fn first_char<I: Iterator<Item = char>>(v: &str, f: impl Fn(char) -> I) -> String {
    let mut chars = v.chars();
    match chars.next() {
        Some(c) => f(c).chain(chars).collect(),
        None => String::new(),
    }
}

fn lookup(name: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, String> {
    match vars.get(name) {
        Some(v) => Ok(v.clone()),
        None if strict => Err(format!("variable not set (strict mode): {name}")),
        None => Ok(String::new()),
    }
}

/// Substitutes variables in every object that does not opt out with
/// `kustomize.toolkit.fluxcd.io/substitute: disabled`.
pub fn substitute_objects(
    objects: Vec<Object>,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<Vec<Object>, SubstituteError> {
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        out.push(substitute_object(o, vars, strict)?.0);
    }
    Ok(out)
}

/// Substitutes variables in the objects of a render, as
/// [`substitute_objects`] does, and then runs the render's
/// plaintext-Secret rule again on the result.
///
/// Flux substitutes after SOPS decryption, so a variable can turn a
/// ConfigMap into a Secret (`kind: ${KIND}`) or put a value from outside
/// SOPS into a Secret: the rule sees the substituted objects. In the
/// record of what SOPS decrypted, keys (clear in a SOPS file) are
/// substituted like the objects; a decrypted value stays sealed only when
/// substitution leaves it as it is, or changes it using nothing but its
/// own text (`$${x}` escapes, `${x:=default}` defaults of unset
/// variables): a variable's value is not ciphertext.
pub fn substitute_rendered(
    rendered: Rendered,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<Rendered, SubstituteFailure> {
    let Rendered {
        objects,
        warnings,
        mut secrets,
    } = rendered;
    let mut out = Vec::with_capacity(objects.len());
    let no_vars = BTreeMap::new();
    for (i, o) in objects.into_iter().enumerate() {
        let (o, changed) = substitute_object(o, vars, strict)?;
        if changed {
            if let Some(origin) = secrets.origins.get_mut(i) {
                let subject = o.id().subject();
                let sealed = std::mem::take(&mut origin.sealed);
                origin.sealed = sealed.try_map(|_, key, v| {
                    let key =
                        substitute(&key, vars, strict).map_err(|message| SubstituteError {
                            subject: subject.clone(),
                            message,
                        })?;
                    let v = match &v {
                        serde_json::Value::String(s) => substitute(s, &no_vars, true)
                            .map(serde_json::Value::String)
                            .unwrap_or(v),
                        _ => v,
                    };
                    Ok::<_, SubstituteError>((key, v))
                })?;
            }
        }
        out.push(o);
    }
    secrets.check(&out)?;
    Ok(Rendered {
        objects: out,
        warnings,
        secrets,
    })
}

/// Why [`substitute_rendered`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubstituteFailure {
    /// A variable could not be substituted.
    #[error(transparent)]
    Substitute(#[from] SubstituteError),
    /// The substituted objects break the plaintext-Secret rule.
    #[error(transparent)]
    Plaintext(#[from] RenderError),
}

/// One object, substituted; true when its text had variables to replace.
fn substitute_object(
    o: Object,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<(Object, bool), SubstituteError> {
    let subject = o.id().subject();
    let err = |message: String| SubstituteError {
        subject: subject.clone(),
        message,
    };
    if o.annotation(SUBSTITUTE_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
    {
        return Ok((o, false));
    }
    let text = yaml::to_string(o.value());
    if !text.contains("${") {
        return Ok((o, false));
    }
    let replaced = substitute(&text, vars, strict).map_err(err)?;
    let mut value: serde_json::Value =
        yaml::from_str(&subject, &replaced).map_err(|e| err(e.message))?;
    keep_string_maps(o.value(), &mut value, vars, strict).map_err(err)?;
    Ok((Object::new(value).map_err(|e| err(e.to_string()))?, true))
}

/// Fields that only hold strings. Flux substitutes in the YAML text, where a
/// value quoted in Git (`replicas: "${n}"`) stays a string; the build output
/// here no longer knows the quoting, so values of these maps that were
/// strings stay strings (`"2"`, not `2`), as the API server requires.
const STRING_MAPS: &[(&str, &[&str])] = &[
    ("", &["metadata", "labels"]),
    ("", &["metadata", "annotations"]),
    ("ConfigMap", &["data"]),
    ("Secret", &["stringData"]),
];

fn keep_string_maps(
    original: &serde_json::Value,
    value: &mut serde_json::Value,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<(), String> {
    let kind = original.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    for (only_kind, path) in STRING_MAPS {
        if !only_kind.is_empty() && *only_kind != kind {
            continue;
        }
        let Some(before) = path
            .iter()
            .try_fold(original, |v, p| v.get(*p))
            .and_then(|v| v.as_object())
        else {
            continue;
        };
        let Some(after) = path
            .iter()
            .try_fold(&mut *value, |v, p| v.get_mut(*p))
            .and_then(|v| v.as_object_mut())
        else {
            continue;
        };
        for (k, v) in before {
            let Some(text) = v.as_str() else { continue };
            let key = substitute(k, vars, strict)?;
            if let Some(slot) = after.get_mut(&key) {
                if !slot.is_string() {
                    *slot = serde_json::Value::String(substitute(text, vars, strict)?);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("cluster_env", "prod"),
            ("region", "eu-west-1"),
            ("empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn flux_syntax() {
        let v = vars();
        assert_eq!(
            substitute("env: ${cluster_env}", &v, false).unwrap(),
            "env: prod"
        );
        assert_eq!(
            substitute("r: ${missing:=us-east-1}", &v, true).unwrap(),
            "r: us-east-1"
        );
        assert_eq!(substitute("r: ${empty:=x}", &v, true).unwrap(), "r: x");
        assert_eq!(substitute("r: ${empty=x}", &v, true).unwrap(), "r: ");
        assert_eq!(
            substitute("keep: $${cluster_env} $cluster_env", &v, true).unwrap(),
            "keep: ${cluster_env} $cluster_env"
        );
        assert_eq!(substitute("${missing}", &v, false).unwrap(), "");
        assert_eq!(
            substitute("${missing}", &v, true).unwrap_err(),
            "variable not set (strict mode): missing"
        );
        assert_eq!(
            substitute(
                "${region:0:2} ${#region} ${region^^} ${region/-/_} ${region//-/_}",
                &v,
                true
            )
            .unwrap(),
            "eu 9 EU-WEST-1 eu_west-1 eu_west_1"
        );
        assert_eq!(
            substitute("${missing:=${region}}", &v, true).unwrap(),
            "eu-west-1"
        );
        assert!(substitute("${unclosed", &v, false).is_err());
        assert!(check_names(&[("bad-name".to_string(), String::new())].into()).is_err());
    }

    #[test]
    fn objects_opt_out_and_errors_name_them() {
        let cm = |ann: bool| {
            let mut v = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "${cluster_env}", "b": "${nope}"}});
            if ann {
                v["metadata"]["annotations"] =
                    serde_json::json!({SUBSTITUTE_ANNOTATION: "disabled"});
            }
            Object::new(v).unwrap()
        };
        let err = substitute_objects(vec![cm(false)], &vars(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ConfigMap/n/c: variable not set (strict mode): nope"
        );
        let out = substitute_objects(vec![cm(true)], &vars(), true).unwrap();
        assert_eq!(out[0].value()["data"]["a"], "${cluster_env}");
        let out = substitute_objects(vec![cm(false)], &vars(), false).unwrap();
        assert_eq!(out[0].value()["data"]["a"], "prod");
        assert_eq!(out[0].value()["data"]["b"], "");
        // string-only maps keep strings; other fields take the YAML type
        let mixed = Object::new(
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "labels": {"n": "${n:=2}"}},
            "spec": {"replicas": "${n:=2}"}}),
        )
        .unwrap();
        let out = substitute_objects(vec![mixed], &vars(), true).unwrap();
        assert_eq!(out[0].value()["metadata"]["labels"]["n"], "2");
        assert_eq!(out[0].value()["spec"]["replicas"], 2);
    }
}
