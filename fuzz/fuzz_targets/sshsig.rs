//! SSHSIG parsing and checking must never panic: input is `signature\0payload`.
#![no_main]
use driftless::verify::{SignedObject, SshVerifier, VerifyMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sig, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut armored = b"-----BEGIN SSH SIGNATURE-----\n".to_vec();
    armored.extend_from_slice(sig);
    let v = SshVerifier::from_allowed_signers("", "fuzz", VerifyMode::Head).unwrap();
    for s in [sig, armored.as_slice()] {
        let _ = v.check_object(&SignedObject {
            what: "commit",
            id: "0",
            payload,
            signature: Some(s),
            time: 0,
        });
    }
});
