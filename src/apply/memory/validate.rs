//! Validation the API server does before storing: names, served versions,
//! CRD names, typed maps, and the conversions it applies (Secret
//! `stringData`).

use serde_json::{Map, Value};

use super::rbac;
use crate::apply::{ApplyError, Cause};
use crate::object::ObjectId;

/// `Kind.group` as the API server names a kind in validation messages.
pub(super) fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// The cause reasons of Kubernetes' field error types, by the words their
/// messages start with (`field.ErrorType`'s strings).
const FIELD_ERROR_REASONS: &[(&str, &str)] = &[
    ("Invalid value", "FieldValueInvalid"),
    ("Required value", "FieldValueRequired"),
    ("Forbidden", "FieldValueForbidden"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Not found", "FieldValueNotFound"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Invalid type", "FieldValueTypeInvalid"),
    ("Internal error", "InternalError"),
];

/// The [`Cause`] of one field error as the API server prints it
/// (`spec.selector: Invalid value: {...}: field is immutable`): the field,
/// the rest as the message, and the reason its first words name.
pub(super) fn cause_of(error: &str) -> Cause {
    let (field, body) = match error.split_once(": ") {
        Some((f, b)) if !f.is_empty() && !f.contains(' ') => (f, b),
        _ => ("", error),
    };
    let reason = FIELD_ERROR_REASONS
        .iter()
        .find(|(words, _)| body.starts_with(words))
        .map_or("FieldValueInvalid", |(_, r)| r);
    Cause::new(reason, field, body)
}

/// The API server's `Kind.group "name" is invalid: ...` for field errors
/// (one error as is, several in brackets joined by `, `), with one cause
/// per error.
pub(super) fn invalid_object(id: &ObjectId, errors: &[String]) -> ApplyError {
    let shown = match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    ApplyError::Invalid {
        subject: id.subject(),
        message: format!(
            "{} \"{}\" is invalid: {shown}",
            qualified_kind(&id.group, &id.kind),
            id.name
        ),
        causes: errors.iter().map(|e| cause_of(e)).collect(),
    }
}

/// An RFC 1123 label.
pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 subdomain.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Name validation as the API server does it for the kind.
pub(super) fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), String> {
    for bad in ["/", "%"] {
        if name.contains(bad) {
            return Err(format!(
                "metadata.name: Invalid value: {name:?}: may not contain '{bad}'"
            ));
        }
    }
    if name == "." || name == ".." {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: may not be '{name}'"
        ));
    }
    if group == rbac::RBAC_GROUP {
        return Ok(());
    }
    if kind == "Namespace" && group.is_empty() {
        if !is_dns_label(name) {
            return Err(format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ));
        }
    } else if !is_dns_subdomain(name) {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
    }
    Ok(())
}

/// `/spec/clusterIPs/0` → `spec.clusterIPs[0]`.
pub(super) fn pointer_to_field(ptr: &str) -> String {
    let mut out = String::new();
    for seg in ptr.split('/').skip(1) {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Sets the value at a JSON pointer whose parent exists.
pub(super) fn set_pointer(v: &mut Value, ptr: &str, new: Value) {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, new);
        }
        Some(Value::Array(a)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = new;
            }
        }
        _ => {}
    }
}

/// The API groups built into Kubernetes 1.32 and the versions they serve.
pub(super) const BUILTIN_VERSIONS: &[(&str, &[&str])] = &[
    ("", &["v1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("apiextensions.k8s.io", &["v1"]),
    ("apiregistration.k8s.io", &["v1"]),
    ("apps", &["v1"]),
    ("autoscaling", &["v1", "v2"]),
    ("batch", &["v1"]),
    ("certificates.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("flowcontrol.apiserver.k8s.io", &["v1", "v1beta3"]),
    ("networking.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
];

/// Base64 (standard alphabet, padded), as Secret `data` holds values.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The API server keeps Secret `stringData` only as base64 `data`.
pub(super) fn fold_string_data(v: &mut Value) {
    let Some(m) = v.as_object_mut() else {
        return;
    };
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(d) = data.as_object_mut() {
        for (k, val) in sd {
            let text = match val {
                Value::String(s) => s,
                other => other.to_string(),
            };
            d.insert(k, Value::String(base64(text.as_bytes())));
        }
    }
}

/// CRD names must be `<plural>.<group>`.
pub(super) fn validate_crd(v: &Value) -> Result<(), String> {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = v.pointer("/spec/group").and_then(Value::as_str);
    let plural = v.pointer("/spec/names/plural").and_then(Value::as_str);
    let kind = v.pointer("/spec/names/kind").and_then(Value::as_str);
    let (Some(group), Some(plural), Some(_)) = (group, plural, kind) else {
        let missing = match (group, plural) {
            (None, _) => "spec.group",
            (_, None) => "spec.names.plural",
            _ => "spec.names.kind",
        };
        return Err(format!("{missing}: Required value"));
    };
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    Ok(())
}

/// Maps whose values must be strings: labels, annotations, ConfigMap and
/// Secret data. Anything else fails to decode in the API server.
pub(super) fn check_string_maps(group: &str, kind: &str, v: &Value) -> Result<(), String> {
    let mut maps = vec!["/metadata/labels", "/metadata/annotations"];
    match (group, kind) {
        ("", "ConfigMap") => maps.extend(["/data", "/binaryData"]),
        ("", "Secret") => maps.extend(["/data", "/stringData"]),
        _ => {}
    }
    for ptr in maps {
        let Some(m) = v.pointer(ptr) else {
            continue;
        };
        let field = ptr.replace('/', ".");
        let Some(m) = m.as_object() else {
            return Err(format!("{field}: expected map, got {m}"));
        };
        for (k, x) in m {
            if !x.is_string() {
                return Err(format!("{field}.{k}: expected string, got {x}"));
            }
        }
    }
    Ok(())
}

/// ConfigMaps and Secrets marked `immutable: true` keep their data (and the
/// mark); a Secret keeps its `type`.
pub(super) fn check_immutable_data(id: &ObjectId, old: &Value, new: &Value) -> Result<(), String> {
    if !id.group.is_empty() || !matches!(id.kind.as_str(), "ConfigMap" | "Secret") {
        return Ok(());
    }
    if id.kind == "Secret" {
        let (before, after) = (old.get("type"), new.get("type"));
        if before.is_some() && before != after {
            let shown = after.map(Value::to_string).unwrap_or_else(|| "\"\"".into());
            return Err(format!("type: Invalid value: {shown}: field is immutable"));
        }
    }
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Err("immutable: Forbidden: field is immutable when `immutable` is set".into());
    }
    for field in ["data", "binaryData"] {
        if old.get(field) != new.get(field) {
            return Err(format!(
                "{field}: Forbidden: field is immutable when `immutable` is set"
            ));
        }
    }
    Ok(())
}
