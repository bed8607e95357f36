//! The `Table` form of objects (`meta.k8s.io/v1`), which `kubectl get`
//! asks for and prints as is: the columns the API server's printers define
//! for the common built-in kinds, a CRD's `additionalPrinterColumns`, and
//! `Name`/`Created At` for everything else.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::catalog::Resource;

/// Kubernetes' `duration.HumanDuration`: `45s`, `5m10s`, `3h`, `12d`, `2y`.
pub(super) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time
/// (`2024-01-01T00:00:00Z`), as the cluster writes them.
pub(super) fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

struct Col {
    name: Cow<'static, str>,
    ty: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(name: &'static str, ty: &'static str, priority: u8) -> Col {
    Col {
        name: Cow::Borrowed(name),
        ty,
        format: "",
        priority,
        description: "",
    }
}

const NAME: Col = Col {
    name: Cow::Borrowed("Name"),
    ty: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
};

const AGE: Col = Col {
    name: Cow::Borrowed("Age"),
    ty: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
};

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn none_if_empty(x: String) -> String {
    if x.is_empty() {
        "<none>".to_string()
    } else {
        x
    }
}

/// `app=web,tier=front`, or `<none>`.
fn map_text(v: Option<&Value>) -> String {
    let text = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    none_if_empty(text)
}

fn selector_text(v: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
        for (k, x) in m {
            parts.push(format!("{k}={}", x.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = v.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = s(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match s(e, "/operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                op => format!("{key} {op}"),
            });
        }
    }
    none_if_empty(parts.join(","))
}

fn containers_and_images(o: &Value, template: &str) -> (String, String) {
    let containers = o
        .pointer(&format!("{template}/spec/containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn ports_text(o: &Value) -> String {
    let ports = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = n(p, "/port");
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    none_if_empty(parts.join(","))
}

/// The columns and the cells of one object, by kind.
fn builtin(r: &Resource, o: &Value, age: String) -> Option<(Vec<Col>, Vec<Value>)> {
    let name = json!(s(o, "/metadata/name"));
    let age = json!(age);
    Some(match (r.group.as_str(), r.kind.as_str()) {
        ("", "Namespace") => (
            vec![NAME, col("Status", "string", 0), AGE],
            vec![name, json!(s(o, "/status/phase")), age],
        ),
        ("", "ConfigMap") => (
            vec![NAME, col("Data", "string", 0), AGE],
            vec![
                name,
                json!(
                    o.get("data").and_then(Value::as_object).map_or(0, Map::len)
                        + o.get("binaryData")
                            .and_then(Value::as_object)
                            .map_or(0, Map::len)
                ),
                age,
            ],
        ),
        ("", "Secret") => (
            vec![
                NAME,
                col("Type", "string", 0),
                col("Data", "string", 0),
                AGE,
            ],
            vec![
                name,
                json!(s(o, "/type")),
                json!(o.get("data").and_then(Value::as_object).map_or(0, Map::len)),
                age,
            ],
        ),
        ("", "ServiceAccount") => (
            vec![NAME, col("Secrets", "string", 0), AGE],
            vec![
                name,
                json!(o
                    .get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)),
                age,
            ],
        ),
        ("", "Service") => {
            let ty = o
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let external = match ty {
                "ExternalName" => s(o, "/spec/externalName").to_string(),
                "LoadBalancer" => {
                    let ingress: Vec<&str> = o
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|i| {
                                    i.get("ip")
                                        .or_else(|| i.get("hostname"))
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if ingress.is_empty() {
                        "<pending>".to_string()
                    } else {
                        ingress.join(",")
                    }
                }
                _ => String::new(),
            };
            let cluster_ip = o
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            (
                vec![
                    NAME,
                    col("Type", "string", 0),
                    col("Cluster-IP", "string", 0),
                    col("External-IP", "string", 0),
                    col("Port(s)", "string", 0),
                    AGE,
                    col("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(ty),
                    json!(cluster_ip),
                    json!(none_if_empty(external)),
                    json!(ports_text(o)),
                    age,
                    json!(map_text(o.pointer("/spec/selector"))),
                ],
            )
        }
        ("", "Pod") => {
            let statuses = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
            let phase = o
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            (
                vec![
                    NAME,
                    col("Ready", "string", 0),
                    col("Status", "string", 0),
                    col("Restarts", "string", 0),
                    AGE,
                    col("IP", "string", 1),
                    col("Node", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(phase),
                    json!(restarts.to_string()),
                    age,
                    json!(none_if_empty(s(o, "/status/podIP").to_string())),
                    json!(none_if_empty(s(o, "/spec/nodeName").to_string())),
                ],
            )
        }
        ("", "PersistentVolumeClaim") => (
            vec![
                NAME,
                col("Status", "string", 0),
                col("Volume", "string", 0),
                col("Capacity", "string", 0),
                col("Access Modes", "string", 0),
                col("StorageClass", "string", 0),
                col("VolumeAttributesClass", "string", 0),
                AGE,
            ],
            vec![
                name,
                json!(s(o, "/status/phase")),
                json!(s(o, "/spec/volumeName")),
                json!(s(o, "/status/capacity/storage")),
                json!(access_modes(o.pointer("/status/accessModes"))),
                json!(s(o, "/spec/storageClassName")),
                json!(none_if_empty(
                    s(o, "/spec/volumeAttributesClassName").to_string()
                )),
                age,
            ],
        ),
        ("apps", "Deployment") => {
            let (containers, images) = containers_and_images(o, "/spec/template");
            (
                vec![
                    NAME,
                    col("Ready", "string", 0),
                    col("Up-to-date", "string", 0),
                    col("Available", "string", 0),
                    AGE,
                    col("Containers", "string", 1),
                    col("Images", "string", 1),
                    col("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    json!(n(o, "/status/updatedReplicas")),
                    json!(n(o, "/status/availableReplicas")),
                    age,
                    json!(containers),
                    json!(images),
                    json!(selector_text(
                        o.pointer("/spec/selector").unwrap_or(&Value::Null)
                    )),
                ],
            )
        }
        ("apps", "StatefulSet") => (
            vec![NAME, col("Ready", "string", 0), AGE],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                age,
            ],
        ),
        ("apps", "ReplicaSet") => (
            vec![
                NAME,
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                AGE,
            ],
            vec![
                name,
                json!(o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)),
                json!(n(o, "/status/replicas")),
                json!(n(o, "/status/readyReplicas")),
                age,
            ],
        ),
        ("apps", "DaemonSet") => (
            vec![
                NAME,
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                AGE,
            ],
            vec![
                name,
                json!(n(o, "/status/desiredNumberScheduled")),
                json!(n(o, "/status/currentNumberScheduled")),
                json!(n(o, "/status/numberReady")),
                json!(n(o, "/status/updatedNumberScheduled")),
                json!(n(o, "/status/numberAvailable")),
                json!(map_text(o.pointer("/spec/template/spec/nodeSelector"))),
                age,
            ],
        ),
        ("batch", "Job") => {
            let completions = o
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map_or_else(
                    || format!("{}/1 of {}", n(o, "/status/succeeded"), 1),
                    |c| format!("{}/{c}", n(o, "/status/succeeded")),
                );
            let complete = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter().find_map(|c| {
                        (s(c, "/status") == "True").then(|| s(c, "/type").to_string())
                    })
                })
                .unwrap_or_default();
            let status = match complete.as_deref() {
                Some("Complete") => "Complete",
                Some("Failed") => "Failed",
                Some("Suspended") => "Suspended",
                _ => "Running",
            };
            let duration = match (
                o.pointer("/status/startTime")
                    .and_then(Value::as_str)
                    .and_then(parse_time),
                o.pointer("/status/completionTime")
                    .and_then(Value::as_str)
                    .and_then(parse_time),
            ) {
                (Some(a), Some(b)) => human_duration(b - a),
                _ => String::new(),
            };
            (
                vec![
                    NAME,
                    col("Status", "string", 0),
                    col("Completions", "string", 0),
                    col("Duration", "string", 0),
                    AGE,
                ],
                vec![
                    name,
                    json!(status),
                    json!(completions),
                    json!(duration),
                    age,
                ],
            )
        }
        ("batch", "CronJob") => (
            vec![
                NAME,
                col("Schedule", "string", 0),
                col("Timezone", "string", 0),
                col("Suspend", "boolean", 0),
                col("Active", "integer", 0),
                col("Last Schedule", "string", 0),
                AGE,
            ],
            vec![
                name,
                json!(s(o, "/spec/schedule")),
                json!(none_if_empty(s(o, "/spec/timeZone").to_string())),
                json!(o
                    .pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)),
                json!(o
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)),
                json!("<none>"),
                age,
            ],
        ),
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = o
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .map(|rs| rs.iter().map(|r| s(r, "/host")).collect())
                .unwrap_or_default();
            let hosts = if hosts.is_empty() {
                "*".to_string()
            } else {
                hosts
                    .iter()
                    .map(|h| if h.is_empty() { "*" } else { h })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let tls = o
                .pointer("/spec/tls")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            (
                vec![
                    NAME,
                    col("Class", "string", 0),
                    col("Hosts", "string", 0),
                    col("Address", "string", 0),
                    col("Ports", "string", 0),
                    AGE,
                ],
                vec![
                    name,
                    json!(none_if_empty(s(o, "/spec/ingressClassName").to_string())),
                    json!(hosts),
                    json!(""),
                    json!(if tls { "80, 443" } else { "80" }),
                    age,
                ],
            )
        }
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![NAME, col("Pod-Selector", "string", 0), AGE],
            vec![
                name,
                json!(
                    selector_text(o.pointer("/spec/podSelector").unwrap_or(&Value::Null))
                        .replace("<none>", "")
                ),
                age,
            ],
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (
            vec![NAME, col("Role", "string", 0), AGE],
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                )),
                age,
            ],
        ),
        _ => return None,
    })
}

fn access_modes(v: Option<&Value>) -> String {
    let modes: Vec<&str> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect()
        })
        .unwrap_or_default();
    modes.join(",")
}

/// Evaluates a CRD printer column's simple JSONPath (`.spec.replicas`,
/// `.status.conditions[?(@.type=="Ready")].status`).
fn json_path(o: &Value, path: &str) -> Option<Value> {
    let mut cur = o.clone();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let (field, after) = r.split_at(end);
            cur = cur.get(field)?.clone();
            rest = after;
        } else if let Some(r) = rest.strip_prefix("[?(@.") {
            let close = r.find(")]")?;
            let (cond, after) = r.split_at(close);
            let (field, value) = cond.split_once("==")?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            cur = cur
                .as_array()?
                .iter()
                .find(|i| i.get(field.trim()).and_then(Value::as_str) == Some(value))?
                .clone();
            rest = after.get(2..)?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let idx: usize = r.get(..close)?.trim().parse().ok()?;
            cur = cur.as_array()?.get(idx)?.clone();
            rest = r.get(close + 1..)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

/// One row's cells and the table's columns.
fn row(r: &Resource, o: &Value, now: i64) -> (Vec<Col>, Vec<Value>) {
    let created = o
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    let age = created
        .and_then(parse_time)
        .map_or_else(|| "<unknown>".to_string(), |t| human_duration(now - t));
    if let Some(columns) = &r.printer_columns {
        let mut cols = vec![NAME];
        let mut cells = vec![json!(s(o, "/metadata/name"))];
        let extra: Vec<(Col, Value)> = if columns.is_empty() {
            vec![(AGE, json!(age))]
        } else {
            columns
                .iter()
                .map(|c| {
                    let ty = match c.get("type").and_then(Value::as_str).unwrap_or("string") {
                        "integer" => "integer",
                        "number" => "number",
                        "boolean" => "boolean",
                        "date" => "date",
                        _ => "string",
                    };
                    let value = c
                        .get("jsonPath")
                        .and_then(Value::as_str)
                        .and_then(|p| json_path(o, p));
                    let cell = match (ty, value) {
                        ("date", Some(Value::String(t))) => {
                            parse_time(&t).map_or(json!(t), |t| json!(human_duration(now - t)))
                        }
                        (_, Some(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_)))) => v,
                        (_, Some(other)) => json!(other.to_string()),
                        (_, None) => Value::Null,
                    };
                    let name = Cow::Owned(
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    );
                    let priority = c.get("priority").and_then(Value::as_u64).unwrap_or(0) as u8;
                    (
                        Col {
                            name,
                            ty: if ty == "date" { "string" } else { ty },
                            format: "",
                            priority,
                            description: "",
                        },
                        cell,
                    )
                })
                .collect()
        };
        for (c, v) in extra {
            cols.push(c);
            cells.push(v);
        }
        return (cols, cells);
    }
    match builtin(r, o, age) {
        Some(x) => x,
        None => (
            vec![
                NAME,
                Col {
                    name: Cow::Borrowed("Created At"),
                    ty: "date",
                    format: "",
                    priority: 0,
                    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
                },
            ],
            vec![json!(s(o, "/metadata/name")), json!(created.unwrap_or_default())],
        ),
    }
}

/// The `Table` of `objects` (all of resource `r`). `include` is the
/// request's `includeObject`: `None`, `Object` or (the default)
/// `Metadata`.
pub(super) fn table(
    r: &Resource,
    objects: &[Value],
    now: i64,
    include: &str,
    list_meta: Value,
) -> Value {
    let mut columns: Option<Vec<Col>> = None;
    let mut rows = Vec::new();
    for o in objects {
        let (cols, cells) = row(r, o, now);
        if columns.is_none() {
            columns = Some(cols);
        }
        let mut row = Map::new();
        row.insert("cells".into(), Value::Array(cells));
        match include {
            "None" => {}
            "Object" => {
                row.insert("object".into(), o.clone());
            }
            _ => {
                row.insert(
                    "object".into(),
                    json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    }),
                );
            }
        }
        rows.push(Value::Object(row));
    }
    let columns = columns.unwrap_or_else(|| row(r, &json!({"metadata": {}}), now).0);
    let defs: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_read_as_kubectls() {
        for (secs, want) in [
            (0, "0s"),
            (-1, "0s"),
            (-5, "<invalid>"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 300, "3h5m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (48 * 3600, "2d"),
            (10 * 86_400, "10d"),
            (3 * 365 * 86_400, "3y"),
            (3 * 365 * 86_400 + 86_400, "3y1d"),
            (9 * 365 * 86_400, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn times_parse_as_the_cluster_writes_them() {
        assert_eq!(parse_time("2024-01-01T00:00:00Z"), Some(1_704_067_200));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-03-01T12:30:15Z"), Some(951_913_815));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn printer_column_paths() {
        let o = json!({"spec": {"r": 3}, "status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True", "message": "ok"},
        ]}});
        assert_eq!(json_path(&o, ".spec.r"), Some(json!(3)));
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].message"),
            Some(json!("ok"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(json!("Reconciling"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }
}
