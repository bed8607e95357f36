//! The YAML depth check (run before the parser): it never panics, and it
//! never refuses a text that the parser reads into a value within the
//! limit. The first byte chooses the limit (1 to 8).
#![no_main]

use driftless::yaml::{backend, check_depth, Limits};
use libfuzzer_sys::fuzz_target;

/// The depth of a parsed value as the loader counts it: the root is 1,
/// each element, key and value one more than its collection.
fn depth(v: &backend::Value) -> usize {
    match v {
        backend::Value::Sequence(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        backend::Value::Mapping(map) => {
            1 + map
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        backend::Value::Tagged(t) => depth(&t.value),
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let max_depth = usize::from(first % 8) + 1;
    let limits = Limits {
        max_depth,
        ..Limits::default()
    };
    let refused = check_depth("fuzz", text, &limits).is_err();
    if !refused {
        return;
    }
    // a refused text holds a collection deeper than the limit: the parser
    // fails on it or reads a value that deep (its own limit is 128 levels)
    if let Ok(value) = backend::from_str::<backend::Value>(text) {
        assert!(
            depth(&value) > max_depth,
            "refused a text of depth {} under limit {max_depth}: {text:?}",
            depth(&value)
        );
    }
});
