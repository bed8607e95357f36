//! Strategic merge patch over arbitrary base and patch documents: the
//! input is two YAML documents separated by `---`.
#![no_main]

use driftless::render::merge::{merge_patch, strategic_merge};
use driftless::schema::merge::MergeSchema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = driftless::yaml::load_documents("fuzz", text, &Default::default()) else {
        return;
    };
    let (Some(base), Some(patch)) = (docs.first(), docs.get(1)) else {
        return;
    };
    let schema = MergeSchema::kubernetes();
    for (g, k) in [("apps", "Deployment"), ("", "Service"), ("batch", "CronJob"), ("x", "Custom")] {
        if let Ok(Some(once)) = strategic_merge(base, patch, &schema, g, k) {
            let _ = strategic_merge(&once, patch, &schema, g, k);
        }
    }
    let _ = merge_patch(base, patch);
});
