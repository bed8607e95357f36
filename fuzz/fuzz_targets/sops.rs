//! The SOPS document parser: YAML, JSON, dotenv and ini documents with
//! their metadata, encrypted values and MAC. The first byte picks the
//! format. The identity is a throwaway key made for this target, so the
//! fuzzer exercises everything up to (and including) the age header and
//! every value parser; no input may panic.
#![no_main]

use driftless::sops::{AgeIdentities, Format, SopsDecryptor};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AGE-SECRET-KEY-17LR26V6JEZJAJTCPPY6TXYZX8K53AR6J2RFPASP7CYQKNJNADSUQPTPJZX";

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match first % 4 {
        0 => Format::Yaml,
        1 => Format::Json,
        2 => Format::Dotenv,
        _ => Format::Ini,
    };
    let Ok(ids) = AgeIdentities::parse("key", KEY) else {
        return;
    };
    let d = SopsDecryptor::new(ids);
    let _ = d.decrypt_text("fuzz", text, format);
    let _ = driftless::sops::is_encrypted("fuzz.yaml", text);
});
