//! Unified text diffs of objects as YAML, for people to read.

use serde_json::Value;
use similar::TextDiff;

use crate::object::Object;
use crate::yaml;

/// Masks the Secret values of a live/desired pair so that no value shows,
/// yet a changed value still shows as a change: equal values become
/// `*** (masked)` on both sides, differing ones `*** (before)` and
/// `*** (after)`, as `flux diff` marks them. `stringData` is compared after
/// folding it into `data`.
fn mask_pair(live: Option<&mut Value>, desired: Option<&mut Value>) {
    let is_secret = |v: &Value| {
        v.get("kind").and_then(Value::as_str) == Some("Secret")
            && v.get("apiVersion").and_then(Value::as_str) == Some("v1")
    };
    let (Some(l), Some(d)) = (live, desired) else {
        return;
    };
    if !is_secret(l) || !is_secret(d) {
        super::mask_secret(l);
        super::mask_secret(d);
        return;
    }
    for field in ["data", "stringData"] {
        let before = l.get(field).cloned();
        let after = d.get(field).cloned();
        let mask = |v: &mut Value, other: Option<&Value>, mark: &str| {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for (k, x) in m.iter_mut() {
                    let same = other.and_then(|o| o.get(k)) == Some(&*x);
                    *x = Value::String(if same {
                        "*** (masked)".to_string()
                    } else {
                        format!("*** ({mark})")
                    });
                }
            }
        };
        mask(l, after.as_ref(), "before");
        mask(d, before.as_ref(), "after");
    }
}

/// A unified diff between the live and desired objects as YAML, with Secret
/// values masked (a changed value shows as `*** (before)` / `*** (after)`).
/// Empty when they render the same.
pub fn unified(live: Option<&Object>, desired: Option<&Object>, subject: &str) -> String {
    let prepare = |o: Option<&Object>| {
        o.map(|o| {
            let o = super::fold_string_data(o).unwrap_or_else(|| o.clone());
            super::normalize(&o).into_value()
        })
    };
    let (mut l, mut d) = (prepare(live), prepare(desired));
    match (&mut l, &mut d) {
        (Some(a), Some(b)) => mask_pair(Some(a), Some(b)),
        (Some(a), None) => super::mask_secret(a),
        (None, Some(b)) => super::mask_secret(b),
        (None, None) => {}
    }
    let render = |v: &Option<Value>| v.as_ref().map(yaml::to_string).unwrap_or_default();
    let (a, b) = (render(&l), render(&d));
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{subject}"), &format!("git/{subject}"))
        .to_string()
}
