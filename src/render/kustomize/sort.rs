//! Output order: kustomize's legacy kind order, a custom legacy order, or
//! input order (`fifo`).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::model::SortOptions;
use super::resource::Res;
use crate::render::RenderError;

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn orders(first: &[String], last: &[String]) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    let n = first.len() as i64;
    for (i, k) in first.iter().enumerate() {
        m.insert(k.clone(), i as i64 - n);
    }
    for (i, k) in last.iter().enumerate() {
        m.insert(k.clone(), 1 + i as i64);
    }
    m
}

fn gvk_string(r: &Res) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(r.group(), "~G"),
        or(r.version(), "~V"),
        or(r.kind(), "~K")
    )
}

fn id_string(r: &Res) -> String {
    let ns = if r.namespace().is_empty() {
        "~X"
    } else {
        r.namespace()
    };
    format!("{}|{}|{}", gvk_string(r), ns, r.name())
}

/// Sorts in place.
pub(crate) fn sort(res: &mut Vec<Res>, opts: Option<&SortOptions>) -> Result<(), RenderError> {
    let (order, legacy) = match opts {
        None => ("legacy", None),
        Some(o) => (
            o.order.as_deref().unwrap_or("legacy"),
            o.legacy_sort_options.as_ref(),
        ),
    };
    match order {
        "fifo" => {
            if legacy.is_some() {
                return Err(RenderError::new(
                    "sortOptions",
                    "legacySortOptions must not be set when order is fifo",
                )
                .with_field("sortOptions.legacySortOptions"));
            }
            Ok(())
        }
        "legacy" => {
            let (first, last): (Vec<String>, Vec<String>) = match legacy {
                Some(l) => (l.order_first.clone(), l.order_last.clone()),
                None => (
                    ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
                    ORDER_LAST.iter().map(|s| s.to_string()).collect(),
                ),
            };
            let m = orders(&first, &last);
            let mut keyed: Vec<(i64, String, String, Res)> = std::mem::take(res)
                .into_iter()
                .map(|r| {
                    (
                        m.get(r.kind()).copied().unwrap_or(0),
                        gvk_string(&r),
                        id_string(&r),
                        r,
                    )
                })
                .collect();
            keyed.sort_by(|a, b| match a.0.cmp(&b.0) {
                Ordering::Equal => a.1.cmp(&b.1).then_with(|| a.2.cmp(&b.2)),
                o => o,
            });
            *res = keyed.into_iter().map(|k| k.3).collect();
            Ok(())
        }
        other => Err(RenderError::new(
            "sortOptions",
            format!("the field 'sortOptions.order' must be one of [fifo, legacy], got {other:?}"),
        )
        .with_field("sortOptions.order")),
    }
}
