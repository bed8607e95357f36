//! Kyverno `validate.pattern` rules of ClusterPolicy objects, evaluated at
//! plan time. The subset the seed and common repositories use:
//! `match.resources.kinds` / `match.any[].resources.kinds` /
//! `match.all[].resources.kinds`, `exclude` by namespace, patterns with
//! `?*` / `*` wildcards and `|` alternatives, the `=(key)` equality anchor,
//! `message`, and `validationFailureAction` (or a rule's
//! `validate.failureAction`) `Enforce` or `Audit`.
//!
//! Rules this subset cannot evaluate (deny conditions, CEL, foreach,
//! preconditions, other anchors) produce an `Audit` violation saying so,
//! rather than passing silently.

use serde_json::Value;

use super::wildcard::wildcard;
use super::{Policy, Severity, Violation};
use crate::object::Object;

/// Evaluates the Kyverno ClusterPolicies found in the rendered set plus
/// `live` (policies already in the cluster, read through the Applier).
#[derive(Clone, Debug, Default)]
pub struct Kyverno {
    /// ClusterPolicies that are in force in the cluster already.
    pub live: Vec<Object>,
}

impl Kyverno {
    /// The gate with these live policies.
    pub fn new(live: Vec<Object>) -> Self {
        Kyverno { live }
    }
}

/// Kyverno's API group.
pub const KYVERNO_GROUP: &str = "kyverno.io";

/// True for a Kyverno ClusterPolicy (or namespaced Policy).
pub fn is_kyverno_policy(o: &Object) -> bool {
    o.group() == KYVERNO_GROUP && (o.kind() == "ClusterPolicy" || o.kind() == "Policy")
}

impl Policy for Kyverno {
    fn evaluate(&self, objects: &[Object]) -> Vec<Violation> {
        let mut policies: Vec<&Object> = objects.iter().filter(|o| is_kyverno_policy(o)).collect();
        for l in &self.live {
            if is_kyverno_policy(l) && !policies.iter().any(|p| p.id() == l.id()) {
                policies.push(l);
            }
        }
        let mut out = Vec::new();
        for p in policies {
            evaluate_policy(p, objects, &mut out);
        }
        out
    }
}

fn action(v: Option<&Value>) -> Option<Severity> {
    match v
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("enforce") => Some(Severity::Enforce),
        Some("audit") => Some(Severity::Audit),
        _ => None,
    }
}

fn evaluate_policy(p: &Object, objects: &[Object], out: &mut Vec<Violation>) {
    let spec = p.pointer("/spec");
    let default =
        action(spec.and_then(|s| s.get("validationFailureAction"))).unwrap_or(Severity::Audit);
    let rules = spec
        .and_then(|s| s.get("rules"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for rule in &rules {
        let Some(validate) = rule.get("validate") else {
            continue;
        };
        let rname = rule.get("name").and_then(Value::as_str).unwrap_or("rule");
        let policy = format!("{}/{rname}", p.name());
        let severity = action(validate.get("failureAction")).unwrap_or(default);
        let message = validate
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("validation error")
            .to_string();
        let Some(pattern) = validate.get("pattern") else {
            out.push(Violation {
                subject: p.id().subject(),
                policy,
                message: "only validate.pattern rules are evaluated at plan time; this rule is not"
                    .to_string(),
                severity: Severity::Audit,
            });
            continue;
        };
        for o in objects {
            if is_kyverno_policy(o)
                || !matches(rule.get("match"), o)
                || excluded(rule.get("exclude"), o)
            {
                continue;
            }
            if p.kind() == "Policy" && o.namespace() != p.namespace() {
                continue;
            }
            if let Err(path) = check(pattern, Some(o.value()), "") {
                out.push(Violation {
                    subject: o.id().subject(),
                    policy: policy.clone(),
                    message: format!("{message} (field {})", path.trim_start_matches('.')),
                    severity,
                });
            }
        }
    }
}

/// The `resources` blocks of a match/exclude: the block itself, or those
/// under `any` / `all`.
fn resource_blocks(m: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if let Some(r) = m.get("resources") {
        out.push(r);
    }
    for k in ["any", "all"] {
        if let Some(items) = m.get(k).and_then(Value::as_array) {
            out.extend(items.iter().filter_map(|i| i.get("resources")));
        }
    }
    out
}

fn kind_matches(pattern: &str, o: &Object) -> bool {
    // Kind, group/version/Kind or version/Kind
    let kind = pattern.rsplit('/').next().unwrap_or(pattern);
    wildcard(kind, o.kind())
}

fn matches(m: Option<&Value>, o: &Object) -> bool {
    let Some(m) = m else { return false };
    resource_blocks(m).iter().any(|r| {
        let kinds_ok = r.get("kinds").and_then(Value::as_array).is_some_and(|ks| {
            ks.iter()
                .filter_map(Value::as_str)
                .any(|k| kind_matches(k, o))
        });
        let ns_ok = match r.get("namespaces").and_then(Value::as_array) {
            Some(nss) => nss
                .iter()
                .filter_map(Value::as_str)
                .any(|n| wildcard(n, o.namespace())),
            None => true,
        };
        kinds_ok && ns_ok
    })
}

fn excluded(m: Option<&Value>, o: &Object) -> bool {
    let Some(m) = m else { return false };
    resource_blocks(m).iter().any(|r| {
        let ns = r
            .get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|nss| {
                nss.iter()
                    .filter_map(Value::as_str)
                    .any(|n| wildcard(n, o.namespace()))
            });
        let kinds = match r.get("kinds").and_then(Value::as_array) {
            Some(ks) => ks
                .iter()
                .filter_map(Value::as_str)
                .any(|k| kind_matches(k, o)),
            None => true,
        };
        ns && kinds
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks `value` against `pattern`; `Err(path)` names the first field
/// that does not match.
fn check(pattern: &Value, value: Option<&Value>, path: &str) -> Result<(), String> {
    match pattern {
        Value::Object(pm) => {
            let Some(Value::Object(vm)) = value else {
                return Err(path.to_string());
            };
            for (k, pv) in pm {
                // =(key): checked only when present
                if let Some(inner) = k.strip_prefix("=(").and_then(|k| k.strip_suffix(')')) {
                    if let Some(v) = vm.get(inner) {
                        check(pv, Some(v), &format!("{path}.{inner}"))?;
                    }
                    continue;
                }
                check(pv, vm.get(k.as_str()), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        Value::Array(pa) => {
            let Some(Value::Array(va)) = value else {
                return Err(path.to_string());
            };
            let Some(first) = pa.first() else {
                return Ok(());
            };
            for (i, v) in va.iter().enumerate() {
                check(first, Some(v), &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::String(ps) => {
            let text = value.and_then(scalar_string);
            let ok = ps.split('|').map(str::trim).any(|alt| match &text {
                Some(t) => wildcard(alt, t),
                // an absent field matches only `*`
                None => alt == "*",
            });
            if ok {
                Ok(())
            } else {
                Err(path.to_string())
            }
        }
        Value::Null => Ok(()),
        other => {
            if value.map(|v| v == other).unwrap_or(false) {
                Ok(())
            } else {
                Err(path.to_string())
            }
        }
    }
}
