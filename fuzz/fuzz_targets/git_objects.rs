//! Splitting signatures off commit and tag objects must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (payload, sig) = driftless::source::git::split_commit_signature(data);
    assert!(payload.len() <= data.len());
    let _ = sig;
    let (payload, _) = driftless::source::git::split_tag_signature(data);
    assert!(payload.len() <= data.len());
});
