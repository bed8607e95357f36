//! Unified text diffs of objects as YAML, for people to read.

use similar::TextDiff;

use crate::object::Object;
use crate::yaml;

/// A unified diff between the live and desired objects as YAML, with Secret
/// values masked. Empty when they render the same.
pub fn unified(live: Option<&Object>, desired: Option<&Object>, subject: &str) -> String {
    let render = |o: Option<&Object>| {
        o.map(|o| {
            let mut v = super::normalize(o).into_value();
            super::mask_secret(&mut v);
            yaml::to_string(&v)
        })
        .unwrap_or_default()
    };
    let (a, b) = (render(live), render(desired));
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{subject}"), &format!("git/{subject}"))
        .to_string()
}
