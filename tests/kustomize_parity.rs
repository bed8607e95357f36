//! Differential suite: every case under `tests/fixtures/kustomize/<case>/`
//! is built by `kubectl kustomize` (the oracle) and by our renderer; the
//! parsed documents must be equal and in the same order, and where kubectl
//! fails we must fail too.
//!
//! Cases named `flux-*` are built in Flux mode. Their oracle is kubectl run
//! on a copy of the folder holding the kustomization that Flux's
//! kustomize-controller would write (computed here independently of the
//! renderer: every YAML file, subfolders with a kustomization as one
//! resource, other subfolders walked; a file that is not Kubernetes YAML
//! fails Flux's generator, and kubectl's build fails on it too).
//!
//! The suite fails (never skips) when kubectl is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::DirSource;
use serde_json::Value;

#[path = "../benches/support/tree.rs"]
mod bench_tree;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize")
}

fn kubectl(dir: &Path) -> Result<(Vec<Value>, String), String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this suite and could not be run: {e}"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let docs = driftless::yaml::load_documents("kubectl", &text, &Default::default())
        .map_err(|e| format!("cannot parse kubectl output: {e}"))?;
    Ok((docs, text))
}

fn ours(dir: &Path, flux: bool) -> Result<Vec<Value>, String> {
    let tree = DirSource::new(dir).read_tree().map_err(|e| e.to_string())?;
    let opts = KustomizeOptions {
        flux,
        ..KustomizeOptions::default()
    };
    build(&tree, "", &opts)
        .map(|r| r.objects.into_iter().map(|o| o.into_value()).collect())
        .map_err(|e| e.to_string())
}

const KFILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn has_kustomization(dir: &Path) -> bool {
    KFILES.iter().any(|f| dir.join(f).is_file())
}

/// Flux's generated kustomization, computed independently for the oracle.
fn flux_resources(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if has_kustomization(&p) {
                out.push(rel);
            } else {
                flux_resources(root, &p, out);
            }
            continue;
        }
        // every YAML file: Flux's generator fails on one that does not
        // decode as Kubernetes objects, and kubectl then fails on it too
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "yaml" || ext == "yml" {
            out.push(rel);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

fn oracle(case: &Path, flux: bool) -> Result<(Vec<Value>, String), String> {
    if !flux || has_kustomization(case) {
        return kubectl(case);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("root");
    copy_dir(case, &dst);
    let mut res = Vec::new();
    flux_resources(&dst, &dst, &mut res);
    let mut k = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for r in res {
        k.push_str(&format!("- {r}\n"));
    }
    std::fs::write(dst.join("kustomization.yaml"), k).unwrap();
    kubectl(&dst)
}

fn check(case: &Path) -> Option<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let flux = name.starts_with("flux-");
    let want = oracle(case, flux);
    let got = ours(case, flux);
    match (want, got) {
        (Ok((w, text)), Ok(g)) => {
            if w == g {
                // the printed form too, as `examples/build.rs` prints it
                let ours = driftless::render::kustomize::emit::documents(g.iter());
                if ours == text {
                    None
                } else {
                    let diff = similar::TextDiff::from_lines(&text, &ours)
                        .unified_diff()
                        .header("kubectl", "driftless")
                        .to_string();
                    Some(format!("{name}: same objects, printed differently\n{diff}"))
                }
            } else {
                let ws = driftless::yaml::to_multi_doc(w.iter());
                let gs = driftless::yaml::to_multi_doc(g.iter());
                let diff = similar::TextDiff::from_lines(&ws, &gs)
                    .unified_diff()
                    .header("kubectl", "driftless")
                    .to_string();
                Some(format!("{name}: output differs\n{diff}"))
            }
        }
        (Err(_), Err(_)) => None,
        (Ok(_), Err(e)) => Some(format!("{name}: kubectl succeeded but we failed: {e}")),
        (Err(e), Ok(_)) => Some(format!(
            "{name}: kubectl failed but we succeeded; kubectl said: {e}"
        )),
    }
}

#[test]
fn kubectl_kustomize_parity() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 150,
        "expected at least 150 cases, found {}",
        cases.len()
    );
    let queue = Mutex::new(cases.clone());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().pop();
                let Some(case) = next else { break };
                if let Some(f) = check(&case) {
                    failures.lock().unwrap().push(f);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    // the guide's case count stays true
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kustomize-parity.md"),
    )
    .unwrap()
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    let n = cases.len();
    for claim in [format!("({n} cases"), format!("{n} of {n} cases agree")] {
        assert!(
            doc.contains(&claim),
            "docs/kustomize-parity.md must say {claim:?} ({n} cases)"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree with kubectl kustomize:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Large folders are parsed on several threads: the output and the first
/// error (kubectl's: the first broken file in list order) must not depend
/// on the thread count.
#[test]
fn thread_count_changes_neither_output_nor_first_error() {
    let build_with = |case: &str, parallelism: usize| {
        let tree = DirSource::new(fixtures().join(case))
            .read_tree()
            .expect("fixture");
        let opts = KustomizeOptions {
            parallelism,
            ..KustomizeOptions::default()
        };
        build(&tree, "", &opts)
            .map(|r| {
                r.objects
                    .into_iter()
                    .map(|o| o.into_value())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string())
    };
    let one = build_with("many-files-parallel", 1).expect("builds");
    let (kubectl_docs, _) = kubectl(&fixtures().join("many-files-parallel")).expect("kubectl");
    assert_eq!(one.len(), 60);
    assert_eq!(
        one, kubectl_docs,
        "same documents in the same order as kubectl"
    );
    let kubectl_err = kubectl(&fixtures().join("err-many-files-bad-yaml")).unwrap_err();
    assert!(kubectl_err.contains("r07.yaml"), "{kubectl_err}");
    for threads in [2, 3, 8] {
        assert_eq!(build_with("many-files-parallel", threads).unwrap(), one);
        let err = build_with("err-many-files-bad-yaml", threads).unwrap_err();
        assert!(err.contains("r07.yaml"), "{threads} threads: {err}");
    }
}

/// The benchmark's overlay tree (namespace, prefix, labels with selectors,
/// annotations, images, replicas, a generator, SMP and JSON 6902 patches)
/// at 300 objects: large enough for the threaded paths (files parsed on
/// several threads, per-object transformers in blocks on several threads),
/// equal to kubectl for every thread count.
#[test]
fn large_overlay_matches_kubectl_for_every_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, contents) in bench_tree::files(100) {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    let dir = tmp.path().join("production");
    let (kubectl_docs, _) = kubectl(&dir).expect("kubectl builds the tree");
    assert_eq!(kubectl_docs.len(), 301);
    let tree = DirSource::new(tmp.path()).read_tree().unwrap();
    for parallelism in [1, 2, 3, 8] {
        let opts = KustomizeOptions {
            parallelism,
            ..KustomizeOptions::default()
        };
        let ours: Vec<Value> = build(&tree, "production", &opts)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.into_value())
            .collect();
        assert!(
            ours == kubectl_docs,
            "{parallelism} threads: the output differs from kubectl's"
        );
    }
}
