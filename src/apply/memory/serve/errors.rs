//! `Status` bodies shaped as the API server's: `kind: Status`, `status:
//! Failure`, `reason`, `code`, `message` and `details` (name, group, kind,
//! causes).

use serde_json::{json, Map, Value};

use super::catalog::Resource;
use crate::apply::{ApplyError, Cause};

/// A failed request: the HTTP code and the `Status` body.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Failure {
    pub(super) code: u16,
    pub(super) body: Value,
}

/// The prefix of the messages of conversion failures on the apply path,
/// which the API server answers with a 500 and no reason.
pub(crate) const CONVERSION_FAILURE: &str = "failed to convert new object";

/// The prefixes of the messages of typed-object failures of server-side
/// apply, which the API server answers with a 500 and no reason.
const TYPED_FAILURES: &[&str] = &[
    CONVERSION_FAILURE,
    "failed to create typed patch object",
    "failed to create typed live object",
];

fn causes_json(causes: &[Cause]) -> Vec<Value> {
    causes
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("reason".into(), json!(c.reason));
            m.insert("message".into(), json!(c.message));
            m.insert("field".into(), json!(c.field));
            Value::Object(m)
        })
        .collect()
}

/// A Status with the given parts; `details` is left out when empty.
pub(super) fn status(
    code: u16,
    reason: &str,
    message: &str,
    details: Map<String, Value>,
) -> Failure {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if !reason.is_empty() {
        m.insert("reason".into(), json!(reason));
    }
    if !details.is_empty() {
        m.insert("details".into(), Value::Object(details));
    }
    m.insert("code".into(), json!(code));
    Failure {
        code,
        body: Value::Object(m),
    }
}

/// `details` naming an object by resource (`{name, group, kind:
/// <resource>}`), as NotFound, Conflict, Forbidden and AlreadyExists do.
pub(super) fn resource_details(r: Option<&Resource>, name: &str) -> Map<String, Value> {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if let Some(r) = r {
        if !r.group.is_empty() {
            d.insert("group".into(), json!(r.group));
        }
        d.insert("kind".into(), json!(r.plural));
    }
    d
}

/// `404 NotFound`: `deployments.apps "web" not found`.
pub(super) fn not_found(r: &Resource, name: &str) -> Failure {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", r.qualified()),
        resource_details(Some(r), name),
    )
}

/// `404 NotFound` for a missing namespace.
pub(super) fn namespace_not_found(ns: &str) -> Failure {
    let mut d = Map::new();
    d.insert("name".into(), json!(ns));
    d.insert("kind".into(), json!("namespaces"));
    status(
        404,
        "NotFound",
        &format!("namespaces \"{ns}\" not found"),
        d,
    )
}

/// `400 BadRequest`.
pub(super) fn bad_request(message: &str) -> Failure {
    status(400, "BadRequest", message, Map::new())
}

/// `405 MethodNotAllowed`.
pub(super) fn method_not_allowed(message: &str) -> Failure {
    status(405, "MethodNotAllowed", message, Map::new())
}

/// `415 UnsupportedMediaType`.
pub(super) fn unsupported_media_type() -> Failure {
    status(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        Map::new(),
    )
}

/// `401 Unauthorized`.
pub(super) fn unauthorized() -> Failure {
    status(401, "Unauthorized", "Unauthorized", Map::new())
}

/// The Status of an error of the embedded cluster, for a request on
/// resource `r` and object `name`.
pub(super) fn from_apply_error(e: &ApplyError, r: &Resource, name: &str) -> Failure {
    match e {
        ApplyError::Invalid {
            message, causes, ..
        } => {
            if TYPED_FAILURES.iter().any(|p| message.starts_with(p)) {
                return status(500, "", message, Map::new());
            }
            if let Some(ns) = message
                .strip_prefix("namespaces \"")
                .and_then(|m| m.strip_suffix("\" not found"))
            {
                return namespace_not_found(ns);
            }
            let mut d = Map::new();
            d.insert("name".into(), json!(name));
            if !r.group.is_empty() {
                d.insert("group".into(), json!(r.group));
            }
            d.insert("kind".into(), json!(r.kind));
            if !causes.is_empty() {
                d.insert("causes".into(), Value::Array(causes_json(causes)));
            }
            status(422, "Invalid", message, d)
        }
        ApplyError::Conflict {
            message, causes, ..
        } => {
            if !causes.is_empty() {
                let mut d = Map::new();
                d.insert("causes".into(), Value::Array(causes_json(causes)));
                return status(409, "Conflict", message, d);
            }
            if message.ends_with("already exists") {
                return status(
                    409,
                    "AlreadyExists",
                    message,
                    resource_details(Some(r), name),
                );
            }
            status(409, "Conflict", message, resource_details(Some(r), name))
        }
        ApplyError::Forbidden { message, .. } => {
            status(403, "Forbidden", message, resource_details(Some(r), name))
        }
        ApplyError::NotFound { .. } => not_found(r, name),
        ApplyError::Unavailable { message, .. } => {
            status(503, "ServiceUnavailable", message, Map::new())
        }
    }
}
