//! OpenPGP signature and key parsing must never panic: input is `signature\0key`.
#![no_main]
use driftless::verify::{OpenPgpVerifier, SignedObject, VerifyMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sig, key) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let _ = OpenPgpVerifier::from_armored(&[("fuzz.asc", key)], VerifyMode::Head, 1_700_000_000);
    let v = OpenPgpVerifier::from_armored(&[], VerifyMode::Head, 1_700_000_000).unwrap();
    let mut armored = b"-----BEGIN PGP SIGNATURE-----\n\n".to_vec();
    armored.extend_from_slice(sig);
    for s in [sig, armored.as_slice()] {
        let _ = v.check_object(&SignedObject {
            what: "commit",
            id: "0",
            payload: b"payload",
            signature: Some(s),
            time: 0,
        });
    }
});
