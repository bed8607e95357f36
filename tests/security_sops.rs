//! SOPS decryption against the real tool: sops 3.11 encrypts with an age
//! key from age-keygen; `sops -d` and driftless must agree, and tampered
//! files must be refused by both.

#![cfg(feature = "sops")]

mod sops_support;

use driftless::sops::{AgeIdentities, Format, SopsDecryptor};
use serde_json::Value;
use sops_support::{encrypt, keygen, sops_decrypt, AgeKey};

fn ours(key: &AgeKey) -> SopsDecryptor {
    let text = std::fs::read_to_string(&key.file).unwrap();
    SopsDecryptor::new(AgeIdentities::parse("keys.txt", &text).unwrap())
}

fn yaml_values(text: &str) -> Vec<Value> {
    driftless::yaml::load_documents("x", text, &Default::default()).unwrap()
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
type: Opaque
stringData:
  password: hunter2-s3cr3t
  port: 5432
  ratio: 1.5
  enabled: true
  empty: \"\"
  nothing: null
  list: [a, 1, false]
  nested:
    deep: value
";

#[test]
fn yaml_agrees_with_sops_default_and_encrypted_regex() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    for extra in [
        &[][..],
        &["--encrypted-regex", "^(data|stringData)$"][..],
        &["--unencrypted-suffix", "_plain"][..],
        &["--encrypted-suffix", "word"][..],
        &["--mac-only-encrypted", "--encrypted-regex", "^stringData$"][..],
    ] {
        let enc = encrypt(dir.path(), "s.yaml", SECRET, &key.recipient, extra);
        assert!(!enc.contains("hunter2-s3cr3t"));
        let theirs = sops_decrypt(dir.path(), "e.yaml", &enc, &key).unwrap();
        let mine = ours(&key)
            .decrypt_text("s.yaml", &enc, Format::Yaml)
            .unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(yaml_values(&mine), yaml_values(&theirs), "{extra:?}");
        assert_eq!(yaml_values(&mine), yaml_values(SECRET), "{extra:?}");
    }
}

#[test]
fn multi_document_yaml_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    let plain = "a: 1\nb: x\n---\nc: [1, 2]\nd: {e: f}\n";
    let enc = encrypt(dir.path(), "m.yaml", plain, &key.recipient, &[]);
    let theirs = sops_decrypt(dir.path(), "e.yaml", &enc, &key).unwrap();
    let mine = ours(&key)
        .decrypt_text("m.yaml", &enc, Format::Yaml)
        .unwrap();
    assert_eq!(yaml_values(&mine), yaml_values(&theirs));
}

#[test]
fn json_dotenv_ini_agree_with_sops() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    let json = "{\"user\": \"admin\", \"port\": 8080, \"tls\": {\"on\": true, \"ratio\": 0.25}}";
    let enc = encrypt(dir.path(), "s.json", json, &key.recipient, &[]);
    let theirs = sops_decrypt(dir.path(), "e.json", &enc, &key).unwrap();
    let mine = ours(&key)
        .decrypt_text("s.json", &enc, Format::Json)
        .unwrap();
    let t: Value = serde_json::from_str(&theirs).unwrap();
    let m: Value = serde_json::from_str(&mine).unwrap();
    assert_eq!(m, t);

    let env = "USER=admin\n# a comment\nPASSWORD=p@ss=word with spaces\nEMPTY=\n";
    let enc = encrypt(dir.path(), "s.env", env, &key.recipient, &[]);
    let theirs = sops_decrypt(dir.path(), "e.env", &enc, &key).unwrap();
    let mine = ours(&key)
        .decrypt_text("s.env", &enc, Format::Dotenv)
        .unwrap();
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(lines(&mine), lines(&theirs));

    let ini = "[db]\nuser = admin\npassword = s3cret\n\n[cache]\nttl = 30\n";
    let enc = encrypt(dir.path(), "s.ini", ini, &key.recipient, &[]);
    let theirs = sops_decrypt(dir.path(), "e.ini", &enc, &key).unwrap();
    let mine = ours(&key).decrypt_text("s.ini", &enc, Format::Ini).unwrap();
    let kv = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(kv(&mine), kv(&theirs));
}

#[test]
fn tampered_files_are_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    let enc = encrypt(
        dir.path(),
        "s.yaml",
        SECRET,
        &key.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    // a plaintext (unencrypted) value edited: only the MAC catches it
    let edited = enc.replace("namespace: apps", "namespace: other");
    assert_ne!(edited, enc);
    assert!(sops_decrypt(dir.path(), "e.yaml", &edited, &key).is_err());
    let err = ours(&key)
        .decrypt_text("s.yaml", &edited, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MAC mismatch"), "{err}");
    assert!(err.contains("s.yaml"), "{err}");

    // an encrypted value edited: GCM authentication fails
    let start = enc.find("password: ENC[AES256_GCM,data:").unwrap() + 31;
    let mut bytes = enc.clone().into_bytes();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(bytes).unwrap();
    assert!(sops_decrypt(dir.path(), "e.yaml", &edited, &key).is_err());
    let err = ours(&key)
        .decrypt_text("s.yaml", &edited, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stringData.password"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // a value moved to another key: the path is authenticated data
    let edited = enc.replacen("password:", "passwd:", 1);
    assert!(ours(&key)
        .decrypt_text("s.yaml", &edited, Format::Yaml)
        .is_err());

    // the MAC removed
    let edited: String = enc
        .lines()
        .filter(|l| !l.trim_start().starts_with("mac:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(ours(&key)
        .decrypt_text("s.yaml", &edited, Format::Yaml)
        .is_err());
}

#[test]
fn wrong_key_is_refused_without_secrets_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    let other = keygen(dir.path(), "other.txt");
    let enc = encrypt(dir.path(), "s.yaml", SECRET, &key.recipient, &[]);
    let err = ours(&other)
        .decrypt_text("s.yaml", &enc, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&key.recipient), "{err}");
    assert!(!err.contains("AGE-SECRET-KEY"), "{err}");
    let ids = format!("{:?}", ours(&other));
    assert!(!ids.contains("AGE-SECRET-KEY"), "{ids}");
}

#[test]
fn disabled_annotation_leaves_the_object_alone() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "key.txt");
    let plain = SECRET.replace(
        "  namespace: apps\n",
        "  namespace: apps\n  annotations:\n    kustomize.toolkit.fluxcd.io/decrypt: Disabled\n",
    );
    let enc = encrypt(
        dir.path(),
        "s.yaml",
        &plain,
        &key.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    let out = ours(&key)
        .decrypt_text("s.yaml", &enc, Format::Yaml)
        .unwrap();
    assert_eq!(out, enc);
}
