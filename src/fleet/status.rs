//! The status kustomize-controller writes on a Kustomization after each
//! reconcile: the Ready condition, `lastAppliedRevision`,
//! `lastAttemptedRevision`, `observedGeneration` and the inventory.

use serde_json::{json, Map, Value};

use super::{reason, KustomizationResult};
use crate::object::Object;

/// The status `live` (the Kustomization as the cluster holds it) gets for
/// `result`, at `now` (seconds since the Unix epoch on the fleet's clock).
///
/// As Flux does: the Ready condition's `lastTransitionTime` moves only when
/// its status changes; `lastAppliedRevision` stays the last one applied
/// when this run applied nothing; `lastAttemptedRevision` stays when the
/// run did not get as far as the source; the inventory is what the cluster
/// records after the run.
pub(super) fn kustomization_status(live: &Object, result: &KustomizationResult, now: i64) -> Value {
    let v = live.value();
    let previous = |field: &str| {
        v.pointer(&format!("/status/{field}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let generation = v
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status = if result.ready { "True" } else { "False" };
    let ready = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let transition = match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => c
            .get("lastTransitionTime")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| crate::apply::memory::rfc3339(now));
    let mut out = Map::new();
    out.insert(
        "conditions".into(),
        json!([{
            "type": "Ready",
            "status": status,
            "reason": result.reason,
            "message": result.message,
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }]),
    );
    // sorted by id, as the inventory keeps them
    let entries: Vec<Value> = result
        .inventory
        .entries
        .iter()
        .map(|e| json!({"id": e.id, "v": e.v}))
        .collect();
    out.insert("inventory".into(), json!({ "entries": entries }));
    let applied = result
        .last_applied_revision
        .clone()
        .or_else(|| previous("lastAppliedRevision"));
    if let Some(r) = applied {
        out.insert("lastAppliedRevision".into(), Value::String(r));
    }
    let attempted = result
        .last_attempted_revision
        .clone()
        .or_else(|| previous("lastAttemptedRevision"));
    if let Some(r) = attempted {
        out.insert("lastAttemptedRevision".into(), Value::String(r));
    }
    out.insert("observedGeneration".into(), json!(generation));
    Value::Object(out)
}

/// True for a result whose status Flux leaves alone: a suspended
/// Kustomization keeps the status it had.
pub(super) fn keeps_status(result: &KustomizationResult) -> bool {
    result.reason == reason::SUSPENDED
}
