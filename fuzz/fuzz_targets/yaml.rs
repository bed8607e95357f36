//! The YAML loader: any input is either documents or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = driftless::yaml::load_documents("fuzz", text, &Default::default()) {
        let _ = driftless::yaml::to_multi_doc(docs.iter());
    }
});
