//! Just enough of Kubernetes' protobuf encoding to read the request bodies
//! kubectl's typed clients send: the `k8s\0` envelope (`runtime.Unknown`)
//! and the messages of the access reviews (`kubectl auth can-i`,
//! `auth whoami`) and of the objects `kubectl create namespace | configmap
//! | secret | serviceaccount` make. Each message is described by a table of
//! its fields, turned into the JSON the rest of the server reads. Answers
//! are JSON, which clients accept.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// How a field is encoded and what it becomes in JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    Msg(&'static [Field]),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`.
    MapBytes,
    /// `metav1.Time` (seconds since the epoch, field 1).
    Time,
}

/// One field of a message: number, JSON name, type, repeated.
#[derive(Clone, Copy)]
struct Field(u64, &'static str, Ty, bool);

const OBJECT_META: &[Field] = &[
    Field(1, "name", Ty::Str, false),
    Field(2, "generateName", Ty::Str, false),
    Field(3, "namespace", Ty::Str, false),
    Field(5, "uid", Ty::Str, false),
    Field(6, "resourceVersion", Ty::Str, false),
    Field(7, "generation", Ty::Int, false),
    Field(8, "creationTimestamp", Ty::Time, false),
    Field(11, "labels", Ty::MapStr, false),
    Field(12, "annotations", Ty::MapStr, false),
    Field(14, "finalizers", Ty::Str, true),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    Field(1, "namespace", Ty::Str, false),
    Field(2, "verb", Ty::Str, false),
    Field(3, "group", Ty::Str, false),
    Field(4, "version", Ty::Str, false),
    Field(5, "resource", Ty::Str, false),
    Field(6, "subresource", Ty::Str, false),
    Field(7, "name", Ty::Str, false),
];

const NON_RESOURCE_ATTRIBUTES: &[Field] = &[
    Field(1, "path", Ty::Str, false),
    Field(2, "verb", Ty::Str, false),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(
        2,
        "spec",
        Ty::Msg(&[
            Field(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES), false),
            Field(
                2,
                "nonResourceAttributes",
                Ty::Msg(NON_RESOURCE_ATTRIBUTES),
                false,
            ),
        ]),
        false,
    ),
];

const SUBJECT_ACCESS_REVIEW: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(
        2,
        "spec",
        Ty::Msg(&[
            Field(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES), false),
            Field(
                2,
                "nonResourceAttributes",
                Ty::Msg(NON_RESOURCE_ATTRIBUTES),
                false,
            ),
            Field(3, "user", Ty::Str, false),
            Field(4, "groups", Ty::Str, true),
            Field(6, "uid", Ty::Str, false),
        ]),
        false,
    ),
];

const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(
        2,
        "spec",
        Ty::Msg(&[Field(1, "namespace", Ty::Str, false)]),
        false,
    ),
];

const SELF_SUBJECT_REVIEW: &[Field] = &[Field(1, "metadata", Ty::Msg(OBJECT_META), false)];

const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(
        2,
        "spec",
        Ty::Msg(&[Field(1, "finalizers", Ty::Str, true)]),
        false,
    ),
];

const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(2, "data", Ty::MapStr, false),
    Field(3, "binaryData", Ty::MapBytes, false),
    Field(4, "immutable", Ty::Bool, false),
];

const SECRET: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(2, "data", Ty::MapBytes, false),
    Field(3, "type", Ty::Str, false),
    Field(4, "stringData", Ty::MapStr, false),
    Field(5, "immutable", Ty::Bool, false),
];

const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META), false),
    Field(
        3,
        "imagePullSecrets",
        Ty::Msg(&[Field(1, "name", Ty::Str, false)]),
        true,
    ),
    Field(4, "automountServiceAccountToken", Ty::Bool, false),
];

/// The messages this module reads, by `apiVersion` and kind.
const MESSAGES: &[(&str, &str, &[Field])] = &[
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        SELF_SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SubjectAccessReview",
        SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "LocalSubjectAccessReview",
        SUBJECT_ACCESS_REVIEW,
    ),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
        SELF_SUBJECT_RULES_REVIEW,
    ),
    (
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        SELF_SUBJECT_REVIEW,
    ),
    ("v1", "Namespace", NAMESPACE),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "Secret", SECRET),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
];

/// One field on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".to_string())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let value = match wire {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos.checked_add(len).ok_or("length overflows")?;
                let bytes = buf.get(pos..end).ok_or("truncated field")?;
                pos = end;
                Wire::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Wire::Fixed
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((number, value));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

fn decode_map(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(k)) => key = text(k)?,
            (2, Wire::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v))
            }
            (2, Wire::Bytes(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn decode_message(buf: &[u8], schema: &[Field], depth: usize) -> Result<Value, String> {
    if depth > 32 {
        return Err("message nested too deeply".to_string());
    }
    let mut out = Map::new();
    for (number, wire) in fields(buf)? {
        let Some(Field(_, name, ty, repeated)) = schema.iter().find(|f| f.0 == number).copied()
        else {
            continue;
        };
        let value = match (ty, wire) {
            (Ty::Str, Wire::Bytes(b)) => json!(text(b)?),
            (Ty::Bool, Wire::Varint(v)) => json!(v != 0),
            (Ty::Int, Wire::Varint(v)) => json!(v as i64),
            (Ty::Msg(inner), Wire::Bytes(b)) => decode_message(b, inner, depth + 1)?,
            (Ty::Time, Wire::Bytes(b)) => {
                let secs = fields(b)?
                    .into_iter()
                    .find_map(|(n, w)| match (n, w) {
                        (1, Wire::Varint(v)) => Some(v as i64),
                        _ => None,
                    })
                    .unwrap_or(0);
                json!(super::super::status::rfc3339(secs))
            }
            (Ty::MapStr | Ty::MapBytes, Wire::Bytes(b)) => {
                let (k, v) = decode_map(b, matches!(ty, Ty::MapBytes))?;
                let m = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            _ => return Err(format!("field {name} has an unexpected wire type")),
        };
        if repeated {
            let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
            if let Some(a) = list.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `k8s\0`-enveloped protobuf body into the object's JSON
/// (with `apiVersion` and `kind`). A message this module does not know is
/// an error naming it.
pub(super) fn decode(body: &[u8]) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or("the protobuf body lacks the k8s envelope")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, w) in fields(unknown)? {
        match (n, w) {
            (1, Wire::Bytes(tm)) => {
                for (m, w) in fields(tm)? {
                    match (m, w) {
                        (1, Wire::Bytes(b)) => api_version = text(b)?,
                        (2, Wire::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let Some((_, _, schema)) = MESSAGES
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
    else {
        return Err(format!(
            "{kind} ({api_version}) in protobuf is not supported by the embedded cluster; send it as JSON or YAML (kubectl create -f / apply)"
        ));
    };
    let mut v = decode_message(raw, schema, 0)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let mut attrs = field(1, b"team-a");
        attrs.extend(field(2, b"create"));
        attrs.extend(field(3, b"apps"));
        attrs.extend(field(5, b"deployments"));
        let spec = field(1, &attrs);
        let review = field(2, &spec);
        let mut tm = field(1, b"authorization.k8s.io/v1");
        tm.extend(field(2, b"SelfSubjectAccessReview"));
        let mut unknown = field(1, &tm);
        unknown.extend(field(2, &review));
        let mut body = b"k8s\0".to_vec();
        body.extend(unknown);
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {
                    "namespace": "team-a", "verb": "create", "group": "apps", "resource": "deployments",
                }},
            })
        );
    }

    #[test]
    fn decodes_maps_and_rejects_unknown_messages() {
        let mut meta = field(1, b"cfg");
        let mut entry = field(1, b"k");
        entry.extend(field(2, b"v"));
        meta.extend(field(11, &entry));
        let mut cm = field(1, &meta);
        cm.extend(field(2, &entry));
        let mut tm = field(1, b"v1");
        tm.extend(field(2, b"ConfigMap"));
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, &cm));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "labels": {"k": "v"}}, "data": {"k": "v"}})
        );
        assert!(decode(b"not protobuf").is_err());
        let mut tm = field(1, b"apps/v1");
        tm.extend(field(2, b"Deployment"));
        let mut body = b"k8s\0".to_vec();
        body.extend(field(1, &tm));
        assert!(decode(&body).unwrap_err().contains("Deployment (apps/v1)"));
        // Truncated input is an error, not a panic.
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
    }
}
