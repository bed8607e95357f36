//! The allowed-signers parser must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = driftless::verify::allowed_signers::AllowedSigners::parse(text, "fuzz");
    }
});
