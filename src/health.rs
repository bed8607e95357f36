//! Health of live objects by kstatus rules, as Flux's health checks use them.
//!
//! Pure functions over live objects: the caller reads the objects (through
//! an `Applier`) and decides how long to wait, on its own clock.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::Object;

/// kstatus' status of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// The object has reached its desired state.
    Current,
    /// The object is progressing towards it.
    InProgress,
    /// The object failed and will not progress without a change.
    Failed,
    /// The object does not exist.
    NotFound,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Current => "Current",
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::NotFound => "NotFound",
        })
    }
}

/// A status with kstatus' message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// Why, in kstatus' words.
    pub message: String,
}

impl Health {
    fn new(status: Status, message: impl Into<String>) -> Self {
        Health {
            status,
            message: message.into(),
        }
    }
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(v: &Value, kind: &str, status: &str) -> bool {
    condition(v, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn condition_message(v: &Value, kind: &str) -> String {
    condition(v, kind)
        .and_then(|c| c.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The status of a live object, or [`Status::NotFound`] for `None`.
pub fn health(live: Option<&Object>) -> Health {
    let Some(obj) = live else {
        return Health::new(Status::NotFound, "Resource not found");
    };
    let v = obj.value();
    // generation not yet observed
    if let (Some(generation), Some(observed)) = (
        int(v, "/metadata/generation"),
        int(v, "/status/observedGeneration"),
    ) {
        if observed < generation {
            return Health::new(
                Status::InProgress,
                format!(
                    "{} generation is {generation}, but latest observed generation is {observed}",
                    obj.kind()
                ),
            );
        }
    }
    if condition_is(v, "Stalled", "True") {
        return Health::new(Status::Failed, condition_message(v, "Stalled"));
    }
    if condition_is(v, "Reconciling", "True") {
        return Health::new(Status::InProgress, condition_message(v, "Reconciling"));
    }
    match (obj.group(), obj.kind()) {
        ("apps", "Deployment") => deployment(v),
        ("apps", "StatefulSet") => statefulset(v),
        ("apps", "DaemonSet") => daemonset(v),
        ("apps", "ReplicaSet") => replicas(v, "ReplicaSet"),
        ("batch", "Job") => job(v),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(v),
        ("", "Namespace") => match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Terminating") => Health::new(Status::InProgress, "Namespace is terminating"),
            _ => Health::new(Status::Current, "Resource is current"),
        },
        ("", "PersistentVolumeClaim") => match v.pointer("/status/phase").and_then(Value::as_str) {
            Some("Bound") => Health::new(Status::Current, "PVC is Bound"),
            _ => Health::new(Status::InProgress, "PVC is not Bound"),
        },
        ("", "Pod") => pod(v),
        _ => generic(v),
    }
}

fn generic(v: &Value) -> Health {
    match condition(v, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
    {
        Some("True") | None => Health::new(Status::Current, "Resource is Ready"),
        Some(_) => {
            let msg = condition_message(v, "Ready");
            Health::new(
                Status::InProgress,
                if msg.is_empty() {
                    "Resource is not Ready".to_string()
                } else {
                    msg
                },
            )
        }
    }
}

fn deployment(v: &Value) -> Health {
    if let Some(c) = condition(v, "Progressing") {
        if c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
            return Health::new(Status::Failed, "Progress deadline exceeded");
        }
    }
    if v.pointer("/status").is_none() {
        return Health::new(Status::InProgress, "Deployment has no status yet");
    }
    let want = int(v, "/spec/replicas").unwrap_or(1);
    let updated = int(v, "/status/updatedReplicas").unwrap_or(0);
    let ready = int(v, "/status/readyReplicas").unwrap_or(0);
    let available = int(v, "/status/availableReplicas").unwrap_or(0);
    let total = int(v, "/status/replicas").unwrap_or(0);
    if updated < want {
        return Health::new(Status::InProgress, format!("Updated: {updated}/{want}"));
    }
    if total > updated {
        return Health::new(
            Status::InProgress,
            format!("Pending termination: {}", total - updated),
        );
    }
    if available < want {
        return Health::new(Status::InProgress, format!("Available: {available}/{want}"));
    }
    if ready < want {
        return Health::new(Status::InProgress, format!("Ready: {ready}/{want}"));
    }
    if condition_is(v, "Available", "False") {
        return Health::new(Status::InProgress, "Deployment not Available");
    }
    Health::new(
        Status::Current,
        format!("Deployment is available. Replicas: {total}"),
    )
}

fn statefulset(v: &Value) -> Health {
    let want = int(v, "/spec/replicas").unwrap_or(1);
    let ready = int(v, "/status/readyReplicas").unwrap_or(0);
    let current = int(v, "/status/currentReplicas").unwrap_or(0);
    if ready < want {
        return Health::new(Status::InProgress, format!("Ready: {ready}/{want}"));
    }
    if current < want {
        return Health::new(Status::InProgress, format!("Current: {current}/{want}"));
    }
    let cur = v.pointer("/status/currentRevision").and_then(Value::as_str);
    let upd = v.pointer("/status/updateRevision").and_then(Value::as_str);
    if cur != upd {
        return Health::new(Status::InProgress, "Waiting for rolling update to complete");
    }
    Health::new(
        Status::Current,
        format!("All replicas scheduled as expected. Replicas: {want}"),
    )
}

fn daemonset(v: &Value) -> Health {
    let desired = int(v, "/status/desiredNumberScheduled").unwrap_or(-1);
    if desired < 0 {
        return Health::new(Status::InProgress, "Missing .status.desiredNumberScheduled");
    }
    for (field, what) in [
        ("/status/updatedNumberScheduled", "Updated"),
        ("/status/numberAvailable", "Available"),
        ("/status/numberReady", "Ready"),
    ] {
        let n = int(v, field).unwrap_or(0);
        if n < desired {
            return Health::new(Status::InProgress, format!("{what}: {n}/{desired}"));
        }
    }
    Health::new(
        Status::Current,
        format!("All replicas scheduled as expected. Replicas: {desired}"),
    )
}

fn replicas(v: &Value, kind: &str) -> Health {
    let want = int(v, "/spec/replicas").unwrap_or(1);
    let ready = int(v, "/status/readyReplicas").unwrap_or(0);
    if ready < want {
        return Health::new(Status::InProgress, format!("Ready: {ready}/{want}"));
    }
    Health::new(
        Status::Current,
        format!("{kind} is available. Replicas: {want}"),
    )
}

fn job(v: &Value) -> Health {
    if condition_is(v, "Failed", "True") {
        return Health::new(
            Status::Failed,
            format!(
                "Job Failed. failed: {}",
                int(v, "/status/failed").unwrap_or(0)
            ),
        );
    }
    if condition_is(v, "Complete", "True") {
        return Health::new(Status::Current, "Job Completed");
    }
    Health::new(Status::InProgress, "Job in progress")
}

fn crd(v: &Value) -> Health {
    if condition_is(v, "NamesAccepted", "False") {
        return Health::new(Status::Failed, condition_message(v, "NamesAccepted"));
    }
    if condition_is(v, "Established", "True") {
        return Health::new(Status::Current, "CRD is established");
    }
    Health::new(Status::InProgress, "CRD is not established")
}

fn pod(v: &Value) -> Health {
    match v.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Health::new(Status::Current, "Pod has completed successfully"),
        Some("Failed") => Health::new(Status::Failed, "Pod has completed, but not successfully"),
        Some("Running") if condition_is(v, "Ready", "True") => {
            Health::new(Status::Current, "Pod is Ready")
        }
        _ => Health::new(Status::InProgress, "Pod is not Ready"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        Object::new(v).unwrap()
    }

    #[test]
    fn deployment_rules() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "generation": 2},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(health(Some(&obj(d.clone()))).status, Status::InProgress);
        d["status"]["observedGeneration"] = json!(2);
        assert_eq!(health(Some(&obj(d.clone()))).status, Status::Current);
        d["status"]["readyReplicas"] = json!(1);
        assert_eq!(health(Some(&obj(d.clone()))).message, "Ready: 1/2");
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(health(Some(&obj(d))).status, Status::Failed);
        assert_eq!(health(None).status, Status::NotFound);
    }

    #[test]
    fn job_crd_and_generic() {
        let job = obj(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "status": {"conditions": [{"type": "Failed", "status": "True"}], "failed": 3}}),
        );
        assert_eq!(health(Some(&job)).status, Status::Failed);
        let crd = obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "c"},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}}),
        );
        assert_eq!(health(Some(&crd)).status, Status::Current);
        let hr = obj(
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "h"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "message": "install retries exhausted"}]}}),
        );
        assert_eq!(
            health(Some(&hr)),
            Health::new(Status::InProgress, "install retries exhausted")
        );
        let cm = obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert_eq!(health(Some(&cm)).status, Status::Current);
    }
}
