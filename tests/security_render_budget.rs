//! A build counts the nodes it creates, not only those it parses (issue
//! 17, M2): a diamond of kustomizations that doubles its objects at each
//! level, a JSON 6902 patch whose every `copy` doubles the object, and
//! replacements or strategic-merge patches that copy a subtree again and
//! again all stop at `Limits::max_build_nodes` with an error naming the
//! kustomization or the patch, before the work (and the memory) is spent.

use std::path::Path;
use std::process::Command;

use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::DirSource;
use driftless::yaml::{self, Limits};

fn write(root: &Path, files: &[(String, String)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn options(max_build_nodes: usize) -> KustomizeOptions {
    KustomizeOptions {
        limits: Limits {
            max_build_nodes,
            ..Limits::default()
        },
        ..KustomizeOptions::default()
    }
}

fn ours(dir: &Path, path: &str, opts: &KustomizeOptions) -> Result<Vec<serde_json::Value>, String> {
    let tree = DirSource::new(dir).read_tree().map_err(|e| e.to_string())?;
    build(&tree, path, opts)
        .map(|r| r.objects.into_iter().map(|o| o.into_value()).collect())
        .map_err(|e| e.to_string())
}

/// `kubectl kustomize dir`: the oracle for builds within the budget.
fn kubectl(dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this test and could not be run: {e}"));
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml::load_documents(
        "kubectl",
        &String::from_utf8(out.stdout).unwrap(),
        &Limits::default(),
    )
    .unwrap()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: x\n";

/// `levels` levels of folders `a<i>` and `b<i>`, each including both
/// folders of the next level under its own name prefix; the last level
/// holds one ConfigMap. The root ends with 2^levels ConfigMaps.
fn diamond(levels: usize) -> Vec<(String, String)> {
    let mut files = vec![(
        "root/kustomization.yaml".to_string(),
        "resources:\n- ../a0\n- ../b0\n".to_string(),
    )];
    for i in 0..levels {
        for side in ["a", "b"] {
            let k = if i + 1 == levels {
                format!("namePrefix: {side}-\nresources:\n- ../leaf\n")
            } else {
                format!(
                    "namePrefix: {side}-\nresources:\n- ../a{n}\n- ../b{n}\n",
                    n = i + 1
                )
            };
            files.push((format!("{side}{i}/kustomization.yaml"), k));
        }
    }
    files.push((
        "leaf/kustomization.yaml".to_string(),
        "resources:\n- cm.yaml\n".to_string(),
    ));
    files.push(("leaf/cm.yaml".to_string(), CM.to_string()));
    files
}

#[test]
fn a_diamond_of_kustomizations_hits_the_budget_naming_the_kustomization() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &diamond(11));
    // 2^11 ConfigMaps: each counted at every level it passes
    let e = ours(dir.path(), "root", &options(20_000)).unwrap_err();
    assert!(
        e.contains("/kustomization.yaml: ConfigMap/") && e.contains(": field resources: "),
        "{e}"
    );
    assert!(
        e.contains("the build creates more than 20000 nodes (max_build_nodes)"),
        "{e}"
    );
    // a small diamond fits, and builds as kubectl builds it
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &diamond(3));
    let got = ours(dir.path(), "root", &options(20_000)).unwrap();
    assert_eq!(got.len(), 8);
    assert_eq!(got, kubectl(&dir.path().join("root")));
}

/// The 16 levels (65,536 ConfigMaps at the root; 17 s and 467 MB
/// before) stop at the default budget.
#[test]
fn sixteen_levels_stop_at_the_default_budget() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &diamond(16));
    let e = ours(dir.path(), "root", &KustomizeOptions::default()).unwrap_err();
    assert!(
        e.contains("the build creates more than 4000000 nodes"),
        "{e}"
    );
}

/// `copy` from an object's `/data` into `/data/k<i>`, twenty times: each
/// operation doubles the ConfigMap (a million entries, then a million
/// times more with forty).
fn doubling_ops(n: usize) -> String {
    (0..n)
        .map(|i| format!("    - {{op: copy, from: /data, path: /data/k{i}}}\n"))
        .collect()
}

#[test]
fn json6902_copy_doubling_hits_the_budget_naming_the_patch() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/cm.yaml".to_string(), CM.to_string()),
            (
                "app/kustomization.yaml".to_string(),
                format!(
                    "resources: [cm.yaml]\npatches:\n- target: {{kind: ConfigMap}}\n  patch: |\n{}",
                    doubling_ops(20)
                ),
            ),
        ],
    );
    let e = ours(dir.path(), "app", &options(10_000)).unwrap_err();
    assert!(
        e.starts_with("app/kustomization.yaml (patches[0]): ConfigMap/c: "),
        "{e}"
    );
    assert!(e.contains("more than 10000 nodes"), "{e}");
    // the legacy field goes the same way
    write(
        dir.path(),
        &[
            ("app/ops.yaml".to_string(), doubling_ops(20).replace("    - ", "- ")),
            (
                "app/kustomization.yaml".to_string(),
                "resources: [cm.yaml]\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: c}\n  path: ops.yaml\n"
                    .to_string(),
            ),
        ],
    );
    let e = ours(dir.path(), "app", &options(10_000)).unwrap_err();
    assert!(e.starts_with("app/ops.yaml: ConfigMap/c: "), "{e}");
    assert!(e.contains("more than 10000 nodes"), "{e}");
}

/// Operations run one at a time against the budget; within it they do
/// what kubectl does with them.
#[test]
fn json6902_within_the_budget_matches_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/cm.yaml".to_string(), CM.to_string()),
            (
                "app/kustomization.yaml".to_string(),
                format!(
                    "resources: [cm.yaml]\npatches:\n- target: {{kind: ConfigMap}}\n  patch: |\n{}{}",
                    doubling_ops(4),
                    "    - {op: add, path: /metadata/labels, value: {app: web}}\n    \
                     - {op: move, from: /data/k0, path: /data/moved}\n    \
                     - {op: replace, path: /data/a, value: z}\n    \
                     - {op: test, path: /data/a, value: z}\n    \
                     - {op: remove, path: /data/k1}\n"
                ),
            ),
        ],
    );
    let got = ours(dir.path(), "app", &options(10_000)).unwrap();
    assert_eq!(got, kubectl(&dir.path().join("app")));
    assert!(got[0]["data"]["k3"]["k2"].is_object());
}

/// A replacement copies its source into every field it selects: copying
/// a ConfigMap's `data` into a key of itself, twenty times, doubles it
/// each time.
#[test]
fn replacements_that_double_hit_the_budget() {
    let targets: String = (0..20)
        .map(|i| {
            format!(
                "- source: {{kind: ConfigMap, name: c, fieldPath: data}}\n  \
                 targets:\n  - select: {{kind: ConfigMap, name: c}}\n    \
                 fieldPaths: [data.k{i}]\n    options: {{create: true}}\n"
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/cm.yaml".to_string(), CM.to_string()),
            (
                "app/kustomization.yaml".to_string(),
                format!("resources: [cm.yaml]\nreplacements:\n{targets}"),
            ),
        ],
    );
    let e = ours(dir.path(), "app", &options(10_000)).unwrap_err();
    assert!(
        e.starts_with(
            "app/kustomization.yaml: ConfigMap/c: field replacements.targets.fieldPaths: "
        ),
        "{e}"
    );
    assert!(e.contains("more than 10000 nodes"), "{e}");
}

/// A strategic-merge patch is written into every object it selects.
#[test]
fn a_large_patch_over_many_objects_hits_the_budget() {
    let objects: String = (0..50)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
        .collect();
    let data: String = (0..500).map(|i| format!("      k{i}: v\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/cms.yaml".to_string(), objects),
            (
                "app/kustomization.yaml".to_string(),
                format!(
                    "resources: [cms.yaml]\npatches:\n- target: {{kind: ConfigMap}}\n  patch: |\n    \
                     apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: any\n    data:\n{data}"
                ),
            ),
        ],
    );
    let e = ours(dir.path(), "app", &options(10_000)).unwrap_err();
    assert!(
        e.starts_with("app/kustomization.yaml (patches[0]): ConfigMap/c"),
        "{e}"
    );
    assert!(e.contains("more than 10000 nodes"), "{e}");
    assert!(ours(dir.path(), "app", &options(100_000)).is_ok());
}
