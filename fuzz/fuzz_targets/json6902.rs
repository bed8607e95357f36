//! JSON 6902 application: a target document and a list of operations,
//! as two YAML documents separated by `---`.
#![no_main]

use driftless::render::merge::json6902;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = driftless::yaml::load_documents("fuzz", text, &Default::default()) else {
        return;
    };
    let (Some(target), Some(ops)) = (docs.first(), docs.get(1)) else {
        return;
    };
    let mut t = target.clone();
    let _ = json6902(&mut t, ops);
});
