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
    let mut unique: Vec<&String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    let shown = match unique.as_slice() {
        [one] => (*one).clone(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    ApplyError::Invalid {
        subject: id.subject(),
        message: format!(
            "{} {} is invalid: {shown}",
            qualified_kind(&id.group, &id.kind),
            go_quote(&id.name)
        ),
        causes: unique.iter().map(|e| cause_of(e)).collect(),
    }
}

/// How the API server validates a kind's `metadata.name`
/// (`k8s.io/apimachinery/pkg/api/validation` and each kind's strategy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NameRule {
    /// An RFC 1123 subdomain: most built-in kinds and every custom resource.
    Subdomain,
    /// An RFC 1123 label: Namespaces.
    Label,
    /// An RFC 1035 label: Services.
    Dns1035Label,
    /// A path segment (not `.` or `..`, no `/` or `%`): the RBAC kinds and
    /// CertificateSigningRequests.
    PathSegment,
}

/// The name rule of a kind.
pub(super) fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035Label,
        (rbac::RBAC_GROUP, "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding") => {
            NameRule::PathSegment
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// `MaxLenError` of apimachinery.
fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `RegexError` of apimachinery: the message, examples and the regex.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (");
    if !examples.is_empty() {
        out.push_str("e.g. ");
        for (i, e) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push_str(&format!("'{e}', "));
        }
    }
    out.push_str(&format!("regex used for validation is '{regex}')"));
    out
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, with no length limit.
fn matches_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// `IsDNS1123Label`: the reasons `s` is not an RFC 1123 label.
pub(super) fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !matches_label(s) {
        if matches_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// The subdomain regex (labels of any length joined by dots).
fn matches_subdomain(s: &str) -> bool {
    s.split('.').all(matches_label)
}

/// `IsDNS1123Subdomain`: the reasons `s` is not an RFC 1123 subdomain.
pub(super) fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len(253));
    }
    if !matches_subdomain(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label`: the reasons `s` is not an RFC 1035 label.
pub(super) fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len(63));
    }
    if !(matches_label(s) && s.as_bytes()[0].is_ascii_lowercase()) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
pub(super) fn path_segment_errors(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| s.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// A string as Go's `%q` prints it, as the API server quotes values in
/// its messages.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && (c.is_ascii_control()) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `field.Invalid(path, value, detail)` as the API server prints it.
pub(super) fn invalid_value(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {}: {detail}", go_quote(value))
}

/// `metadata.name` errors as the API server finds them for the kind:
/// the path-segment rules every name obeys (the server's storage key),
/// then the kind's own rule.
pub(super) fn name_errors(group: &str, kind: &str, name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec!["metadata.name: Required value: name or generateName is required".into()];
    }
    let mut reasons = path_segment_errors(name);
    if reasons.is_empty() {
        reasons = match name_rule(group, kind) {
            NameRule::Subdomain => dns1123_subdomain_errors(name),
            NameRule::Label => dns1123_label_errors(name),
            NameRule::Dns1035Label => dns1035_label_errors(name),
            NameRule::PathSegment => Vec::new(),
        };
    }
    reasons
        .iter()
        .map(|r| invalid_value("metadata.name", name, r))
        .collect()
}

/// `metadata.namespace` errors: a namespace is an RFC 1123 label.
pub(super) fn namespace_errors(namespace: &str) -> Vec<String> {
    dns1123_label_errors(namespace)
        .iter()
        .map(|r| invalid_value("metadata.namespace", namespace, r))
        .collect()
}

/// Name validation as the API server does it for the kind
/// (`ValidateObjectMeta`); `Err` holds the field errors.
pub(super) fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), Vec<String>> {
    let errs = name_errors(group, kind, name);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
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

/// `ValidateCustomResourceDefinition` of the apiextensions API server,
/// for what driftless relies on: `metadata.name` is `<plural>.<group>`,
/// the group a DNS subdomain with a dot, the scope, the version names and
/// the one storage version, and the names (`plural`, `singular`,
/// `shortNames` and `categories` RFC 1035 labels; `kind` and `listKind`
/// the same in mixed case). `Err` holds the field errors.
///
/// `singular` and `listKind` are defaulted first, as the v1 API does
/// (the lower-case kind, the kind + `List`).
pub(super) fn validate_crd(v: &Value) -> Result<(), Vec<String>> {
    let text = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).unwrap_or_default();
    let (name, group, scope) = (
        text("/metadata/name"),
        text("/spec/group"),
        text("/spec/scope"),
    );
    let (plural, kind) = (text("/spec/names/plural"), text("/spec/names/kind"));
    let singular = match text("/spec/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match text("/spec/names/listKind") {
        "" if !kind.is_empty() => format!("{kind}List"),
        s => s.to_string(),
    };
    let mut errs = Vec::new();
    let mut reasons = dns1123_subdomain_errors(name);
    if name != format!("{plural}.{group}") {
        reasons.push("must be spec.names.plural+\".\"+spec.group".into());
    }
    errs.extend(
        reasons
            .iter()
            .map(|r| invalid_value("metadata.name", name, r)),
    );
    if group.is_empty() {
        errs.push("spec.group: Required value".into());
    } else if let Some(reasons) = Some(dns1123_subdomain_errors(group)).filter(|r| !r.is_empty()) {
        errs.push(invalid_value("spec.group", group, &reasons.join(",")));
    } else if !group.contains('.') {
        errs.push(invalid_value(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    match scope {
        "" => errs.push("spec.scope: Required value".into()),
        "Cluster" | "Namespaced" => {}
        other => errs.push(format!(
            "spec.scope: Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
            go_quote(other)
        )),
    }
    let versions = v
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut storage = 0;
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let vname = version["name"].as_str().unwrap_or_default();
        let reasons = dns1035_label_errors(vname);
        if !reasons.is_empty() {
            errs.push(invalid_value(
                &format!("spec.versions[{i}].name"),
                vname,
                &reasons.join(","),
            ));
        }
        unique &= seen.insert(vname);
        if version["storage"].as_bool() == Some(true) {
            storage += 1;
        }
    }
    let all = Value::Array(versions.to_vec()).to_string();
    if !unique {
        errs.push(format!(
            "spec.versions: Invalid value: {all}: must contain unique version names"
        ));
    }
    if storage != 1 {
        errs.push(format!(
            "spec.versions: Invalid value: {all}: must have exactly one version marked as storage version"
        ));
    }
    for (field, value) in [
        ("plural", plural),
        ("singular", singular.as_str()),
        ("kind", kind),
        ("listKind", list_kind.as_str()),
    ] {
        if value.is_empty() {
            errs.push(format!("spec.names.{field}: Required value"));
        }
    }
    let label = |field: &str, value: &str, errs: &mut Vec<String>| {
        let reasons = dns1035_label_errors(value);
        if !reasons.is_empty() {
            errs.push(invalid_value(field, value, &reasons.join(",")));
        }
    };
    let list = |name: &str| -> Vec<String> {
        v.pointer(&format!("/spec/names/{name}"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    if !plural.is_empty() {
        label("spec.names.plural", plural, &mut errs);
    }
    if !singular.is_empty() {
        label("spec.names.singular", &singular, &mut errs);
    }
    for (field, value) in [("kind", kind), ("listKind", list_kind.as_str())] {
        let reasons = dns1035_label_errors(&value.to_lowercase());
        if !value.is_empty() && !reasons.is_empty() {
            errs.push(invalid_value(
                &format!("spec.names.{field}"),
                value,
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    reasons.join(",")
                ),
            ));
        }
    }
    for (i, short) in list("shortNames").iter().enumerate() {
        label(&format!("spec.names.shortNames[{i}]"), short, &mut errs);
    }
    if !kind.is_empty() && kind == list_kind {
        errs.push(invalid_value(
            "spec.names.listKind",
            &list_kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in list("categories").iter().enumerate() {
        label(&format!("spec.names.categories[{i}]"), category, &mut errs);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
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
