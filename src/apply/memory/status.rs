//! What the cluster's controllers would write: the status of workloads,
//! Namespaces and CRDs, and the objects of a freshly bootstrapped cluster.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::Rollout;

/// Formats seconds since the Unix epoch as RFC 3339 in UTC
/// (`2024-01-01T00:00:00Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), Value::String(kind.into()));
    c.insert(
        "status".into(),
        Value::String(if status { "True" } else { "False" }.into()),
    );
    if !reason.is_empty() {
        c.insert("reason".into(), Value::String(reason.into()));
    }
    if !message.is_empty() {
        c.insert("message".into(), Value::String(message.into()));
    }
    c.insert("lastTransitionTime".into(), Value::String(now.into()));
    Value::Object(c)
}

/// A short stable hash of the pod template, standing in for the
/// pod-template-hash the controllers compute.
fn template_hash(obj: &Value) -> String {
    let text = obj
        .pointer("/spec/template")
        .map(Value::to_string)
        .unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

/// Inserts `key: n` unless `n` is zero (the API omits zero counts).
fn count(m: &mut Map<String, Value>, key: &str, n: i64) {
    if n != 0 {
        m.insert(key.to_string(), Value::from(n));
    }
}

/// The status a controller would report for `obj` after rolling out its
/// current generation, or `None` when no controller writes this kind's
/// status.
pub(crate) fn simulate(
    group: &str,
    kind: &str,
    obj: &Value,
    rollout: Rollout,
    now: &str,
) -> Option<Value> {
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut s = Map::new();
    match (group, kind) {
        ("apps", "Deployment") => {
            let r = replicas(obj);
            let rs = format!("{name}-{}", template_hash(obj));
            s.insert("observedGeneration".into(), Value::from(generation));
            count(&mut s, "replicas", r);
            count(&mut s, "updatedReplicas", r);
            let conditions = match rollout {
                Rollout::Complete => {
                    count(&mut s, "readyReplicas", r);
                    count(&mut s, "availableReplicas", r);
                    vec![
                        condition(
                            "Available",
                            true,
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability.",
                            now,
                        ),
                        condition(
                            "Progressing",
                            true,
                            "NewReplicaSetAvailable",
                            &format!("ReplicaSet \"{rs}\" has successfully progressed."),
                            now,
                        ),
                    ]
                }
                Rollout::Progressing | Rollout::Failed => {
                    count(&mut s, "unavailableReplicas", r);
                    let progressing = if rollout == Rollout::Failed {
                        condition(
                            "Progressing",
                            false,
                            "ProgressDeadlineExceeded",
                            &format!("ReplicaSet \"{rs}\" has timed out progressing."),
                            now,
                        )
                    } else {
                        condition(
                            "Progressing",
                            true,
                            "ReplicaSetUpdated",
                            &format!("ReplicaSet \"{rs}\" is progressing."),
                            now,
                        )
                    };
                    vec![
                        condition(
                            "Available",
                            false,
                            "MinimumReplicasUnavailable",
                            "Deployment does not have minimum availability.",
                            now,
                        ),
                        progressing,
                    ]
                }
            };
            s.insert("conditions".into(), Value::Array(conditions));
        }
        ("apps", "StatefulSet") => {
            let r = replicas(obj);
            let rev = format!("{name}-{}", template_hash(obj));
            s.insert("observedGeneration".into(), Value::from(generation));
            s.insert("replicas".into(), Value::from(r));
            count(&mut s, "currentReplicas", r);
            count(&mut s, "updatedReplicas", r);
            if rollout == Rollout::Complete {
                count(&mut s, "readyReplicas", r);
                count(&mut s, "availableReplicas", r);
            }
            s.insert("currentRevision".into(), Value::String(rev.clone()));
            s.insert("updateRevision".into(), Value::String(rev));
            s.insert("collisionCount".into(), Value::from(0));
        }
        ("apps", "DaemonSet") => {
            // One node, so one pod.
            s.insert("observedGeneration".into(), Value::from(generation));
            s.insert("desiredNumberScheduled".into(), Value::from(1));
            s.insert("currentNumberScheduled".into(), Value::from(1));
            s.insert("updatedNumberScheduled".into(), Value::from(1));
            s.insert("numberMisscheduled".into(), Value::from(0));
            if rollout == Rollout::Complete {
                s.insert("numberReady".into(), Value::from(1));
                s.insert("numberAvailable".into(), Value::from(1));
            } else {
                s.insert("numberReady".into(), Value::from(0));
                s.insert("numberUnavailable".into(), Value::from(1));
            }
        }
        ("batch", "Job") => {
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            s.insert("startTime".into(), Value::String(now.to_string()));
            match rollout {
                Rollout::Complete => {
                    s.insert("succeeded".into(), Value::from(completions));
                    s.insert("ready".into(), Value::from(0));
                    s.insert("completionTime".into(), Value::String(now.to_string()));
                    s.insert(
                        "conditions".into(),
                        json!([
                            condition(
                                "SuccessCriteriaMet",
                                true,
                                "CompletionsReached",
                                "Reached expected number of succeeded pods",
                                now
                            ),
                            condition(
                                "Complete",
                                true,
                                "CompletionsReached",
                                "Reached expected number of succeeded pods",
                                now
                            ),
                        ]),
                    );
                }
                Rollout::Progressing => {
                    s.insert("active".into(), Value::from(1));
                    s.insert("ready".into(), Value::from(0));
                }
                Rollout::Failed => {
                    let limit = obj
                        .pointer("/spec/backoffLimit")
                        .and_then(Value::as_i64)
                        .unwrap_or(6);
                    s.insert("failed".into(), Value::from(limit.saturating_add(1)));
                    s.insert("ready".into(), Value::from(0));
                    s.insert(
                        "conditions".into(),
                        json!([
                            condition(
                                "FailureTarget",
                                true,
                                "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit",
                                now
                            ),
                            condition(
                                "Failed",
                                true,
                                "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit",
                                now
                            ),
                        ]),
                    );
                }
            }
        }
        ("", "Namespace") => {
            s.insert("phase".into(), Value::String("Active".into()));
        }
        ("", "PersistentVolumeClaim") => {
            s.insert("phase".into(), Value::String("Bound".into()));
        }
        ("", "Service") => {
            // A load balancer gets an address (from TEST-NET-1, derived from
            // the name so it is stable); other types report an empty status.
            let lb = obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer");
            let ingress = if lb && rollout == Rollout::Complete {
                let n = Sha256::digest(name.as_bytes())
                    .first()
                    .copied()
                    .unwrap_or(0)
                    % 254
                    + 1;
                json!([{"ip": format!("192.0.2.{n}"), "ipMode": "VIP"}])
            } else {
                json!(null)
            };
            let mut balancer = Map::new();
            if !ingress.is_null() {
                balancer.insert("ingress".into(), ingress);
            }
            s.insert("loadBalancer".into(), Value::Object(balancer));
        }
        ("", "Pod") => {
            let (phase, ready) = match rollout {
                Rollout::Complete => ("Running", true),
                Rollout::Progressing => ("Pending", false),
                Rollout::Failed => ("Failed", false),
            };
            s.insert("phase".into(), Value::String(phase.into()));
            s.insert(
                "conditions".into(),
                json!([
                    condition("PodScheduled", true, "", "", now),
                    condition(
                        "Ready",
                        ready,
                        if ready { "" } else { "ContainersNotReady" },
                        "",
                        now
                    ),
                ]),
            );
        }
        ("apps", "ReplicaSet") => {
            let r = replicas(obj);
            s.insert("observedGeneration".into(), Value::from(generation));
            s.insert("replicas".into(), Value::from(r));
            count(&mut s, "fullyLabeledReplicas", r);
            if rollout == Rollout::Complete {
                count(&mut s, "readyReplicas", r);
                count(&mut s, "availableReplicas", r);
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let names = obj
                .pointer("/spec/names")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let stored: Vec<Value> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .filter_map(|v| v.get("name").cloned())
                        .collect()
                })
                .unwrap_or_default();
            s.insert("acceptedNames".into(), names);
            s.insert(
                "conditions".into(),
                json!([
                    condition(
                        "NamesAccepted",
                        true,
                        "NoConflicts",
                        "no conflicts found",
                        now
                    ),
                    condition(
                        "Established",
                        true,
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                        now
                    ),
                ]),
            );
            s.insert("storedVersions".into(), Value::Array(stored));
        }
        _ => return None,
    }
    Some(Value::Object(s))
}

/// Flux's own CRDs: group, kind, plural, served versions (storage first).
const FLUX_CRDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "source.toolkit.fluxcd.io",
        "GitRepository",
        "gitrepositories",
        &["v1", "v1beta2"],
    ),
    (
        "source.toolkit.fluxcd.io",
        "OCIRepository",
        "ocirepositories",
        &["v1", "v1beta2"],
    ),
    (
        "source.toolkit.fluxcd.io",
        "HelmRepository",
        "helmrepositories",
        &["v1", "v1beta2"],
    ),
    (
        "source.toolkit.fluxcd.io",
        "HelmChart",
        "helmcharts",
        &["v1", "v1beta2"],
    ),
    (
        "source.toolkit.fluxcd.io",
        "Bucket",
        "buckets",
        &["v1", "v1beta2"],
    ),
    (
        "kustomize.toolkit.fluxcd.io",
        "Kustomization",
        "kustomizations",
        &["v1", "v1beta2"],
    ),
    (
        "helm.toolkit.fluxcd.io",
        "HelmRelease",
        "helmreleases",
        &["v2", "v2beta2", "v2beta1"],
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImageRepository",
        "imagerepositories",
        &["v1", "v1beta2", "v1beta1"],
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImagePolicy",
        "imagepolicies",
        &["v1", "v1beta2", "v1beta1"],
    ),
    (
        "image.toolkit.fluxcd.io",
        "ImageUpdateAutomation",
        "imageupdateautomations",
        &["v1", "v1beta2", "v1beta1"],
    ),
    (
        "notification.toolkit.fluxcd.io",
        "Alert",
        "alerts",
        &["v1beta3", "v1beta2"],
    ),
    (
        "notification.toolkit.fluxcd.io",
        "Provider",
        "providers",
        &["v1beta3", "v1beta2"],
    ),
    (
        "notification.toolkit.fluxcd.io",
        "Receiver",
        "receivers",
        &["v1", "v1beta2"],
    ),
];

/// The namespaces of a fresh cluster with Flux bootstrapped.
pub(crate) const BOOT_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "flux-system",
];

/// The objects of a freshly bootstrapped cluster, in creation order:
/// namespaces, Flux's CRDs, and the `cluster-admin` ClusterRole bound to
/// the `system:masters` group.
pub(crate) fn bootstrap_objects() -> Vec<Value> {
    let mut out = Vec::new();
    for ns in BOOT_NAMESPACES {
        out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    for (group, kind, plural, versions) in FLUX_CRDS {
        let component = group.split('.').next().unwrap_or_default();
        // The printer columns Flux's CRDs declare, so `kubectl get` shows
        // readiness as it does on a cluster running Flux.
        let columns = json!([
            {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            {"jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "name": "Ready", "type": "string"},
            {"jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "name": "Status", "type": "string"},
        ]);
        let versions: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "name": v,
                    "served": true,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                })
            })
            .collect();
        let short_names: &[&str] = match *kind {
            "GitRepository" => &["gitrepo"],
            "OCIRepository" => &["ocirepo"],
            "HelmRepository" => &["helmrepo"],
            "HelmChart" => &["hc"],
            "Kustomization" => &["ks"],
            "HelmRelease" => &["hr"],
            _ => &[],
        };
        out.push(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": format!("{plural}.{group}"),
                "labels": {
                    "app.kubernetes.io/component": format!("{component}-controller"),
                    "app.kubernetes.io/instance": "flux-system",
                    "app.kubernetes.io/part-of": "flux",
                },
            },
            "spec": {
                "group": group,
                "names": {
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": plural,
                    "singular": kind.to_ascii_lowercase(),
                    "shortNames": short_names,
                },
                "scope": "Namespaced",
                "versions": versions,
            },
        }));
    }
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    }));
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}],
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
    }
}
