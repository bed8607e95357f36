//! Shared helpers for the pipeline, fleet and example tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use driftless::diff::normalize;
use driftless::Object;
use serde_json::Value;

/// The bundled demo fleet.
pub const DEMO_FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");

/// Copies a folder recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A temp copy of the demo fleet.
pub fn demo_fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(DEMO_FLEET), dir.path());
    dir
}

/// The `--local-sources` flag the examples need for a copy of the demo
/// fleet in `fleet`: its tenant's own GitRepository (`team-a/team-a`, in
/// `tenants/team-a/flux.yaml`) reads the same folder.
pub fn demo_tenant_source(fleet: &str) -> String {
    format!("--local-sources=GitRepository/team-a/team-a={fleet}")
}

/// A temp copy of a fixture under `tests/fixtures/fleet/<case>`.
pub fn fixture(case: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fleet")
        .join(case);
    copy_dir(&from, dir.path());
    dir
}

/// Replaces `from` by `to` in a file, checking that `from` is there.
pub fn edit_file(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}:\n{text}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A new ingress-nginx controller version in a copy of a seed-layout
/// fleet (`infrastructure/base/ingress-nginx/controller.yaml`): a new
/// revision, and a new Deployment generation that rolls out again.
pub fn bump_ingress_controller(repo: &Path) {
    edit_file(
        &repo.join("infrastructure/base/ingress-nginx/controller.yaml"),
        "controller:v1.9.4",
        "controller:v1.9.5",
    );
}

/// Objects without server bookkeeping, as a comparable value.
pub fn comparable(objects: &[Object]) -> Vec<Value> {
    objects.iter().map(|o| normalize(o).into_value()).collect()
}

/// `target/<profile>` of the running test binary (`.../deps/<test>` → `..`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary under target/<profile>/deps")
        .to_path_buf()
}

/// The path of an example binary, (re)built once per test process with
/// `cargo build --example <name>` into the same target folder, so the
/// binary is never stale (a no-op when `cargo test` already built it).
pub fn example(name: &str) -> PathBuf {
    let path = target_profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_profile_dir()
            .parent()
            .expect("target folder")
            .to_path_buf();
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", target);
        if target_profile_dir().file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// Runs an example binary.
pub fn run_example(name: &str, args: &[&str]) -> Output {
    Command::new(example(name))
        .args(args)
        .output()
        .expect("the example runs")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
