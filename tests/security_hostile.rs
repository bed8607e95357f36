//! Hostile repositories are contained: each attack is a clear error naming
//! the file, within the bounds of `driftless::yaml::Limits`.

use std::path::Path;

use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::DirSource;
use driftless::yaml::Limits;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn build_err(root: &Path, opts: &KustomizeOptions) -> String {
    let tree = match DirSource::new(root).read_tree() {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    build(&tree, "app", opts).unwrap_err().to_string()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

#[test]
fn parent_and_absolute_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "app/kustomization.yaml",
            "resources: [../../../etc/passwd]\n",
        )],
    );
    let e = build_err(dir.path(), &KustomizeOptions::flux());
    assert!(e.contains("app/kustomization.yaml"), "{e}");
    write(
        dir.path(),
        &[("app/kustomization.yaml", "resources: [/etc/passwd]\n")],
    );
    let e = build_err(dir.path(), &KustomizeOptions::flux());
    assert!(e.contains("app/kustomization.yaml"), "{e}");
    assert!(!e.contains("root:x:0"), "{e}");
}

#[test]
fn generator_files_outside_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "app/kustomization.yaml",
            "configMapGenerator:\n- name: g\n  files: [../../../../etc/hostname]\n",
        )],
    );
    let e = build_err(dir.path(), &KustomizeOptions::flux());
    assert!(e.contains("app/kustomization.yaml"), "{e}");
    assert!(e.contains("configMapGenerator"), "{e}");
}

#[cfg(unix)]
#[test]
fn symlinked_folder_out_of_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[("app/kustomization.yaml", "resources: [etc]\n")],
    );
    std::os::unix::fs::symlink("/etc", dir.path().join("app/etc")).unwrap();
    let e = build_err(dir.path(), &KustomizeOptions::flux());
    assert!(e.contains("app/etc"), "{e}");
}

#[test]
fn kustomization_cycles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [../b]\n"),
            ("b/kustomization.yaml", "resources: [../app]\n"),
        ],
    );
    let e = build_err(dir.path(), &KustomizeOptions::flux());
    assert!(e.contains("cycle detected"), "{e}");
}

#[test]
fn deep_kustomization_chains_hit_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![(
        "app/kustomization.yaml".to_string(),
        "resources: [../k0]\n".to_string(),
    )];
    for i in 0..20 {
        files.push((
            format!("k{i}/kustomization.yaml"),
            format!("resources: [../k{}]\n", i + 1),
        ));
    }
    files.push((
        "k20/kustomization.yaml".to_string(),
        "resources: [cm.yaml]\n".to_string(),
    ));
    files.push(("k20/cm.yaml".to_string(), CM.to_string()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write(dir.path(), &refs);
    let tree = DirSource::new(dir.path()).read_tree().unwrap();
    assert!(build(&tree, "app", &KustomizeOptions::flux()).is_ok());
    let opts = KustomizeOptions {
        limits: Limits {
            max_kustomization_depth: 10,
            ..Limits::default()
        },
        ..KustomizeOptions::flux()
    };
    let e = build(&tree, "app", &opts).unwrap_err().to_string();
    assert!(e.contains("nested too deeply"), "{e}");
}

#[test]
fn huge_files_many_documents_and_deep_nesting_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 64 * 1024,
        max_documents: 100,
        max_depth: 32,
        ..Limits::default()
    };
    let opts = KustomizeOptions {
        limits,
        ..KustomizeOptions::flux()
    };
    // huge file
    let big = format!("{CM}data:\n  a: \"{}\"\n", "x".repeat(100 * 1024));
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [big.yaml]\n"),
            ("app/big.yaml", &big),
        ],
    );
    let e = build_err(dir.path(), &opts);
    assert!(
        e.contains("app/big.yaml") && e.contains("larger than"),
        "{e}"
    );
    // many documents
    let many: String = (0..200)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
        .collect();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [many.yaml]\n"),
            ("app/many.yaml", &many),
        ],
    );
    let e = build_err(dir.path(), &opts);
    assert!(
        e.contains("app/many.yaml") && e.contains("documents"),
        "{e}"
    );
    // deep nesting
    let deep = format!("{CM}data:\n  a: {}{}\n", "[".repeat(100), "]".repeat(100));
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [deep.yaml]\n"),
            ("app/deep.yaml", &deep),
        ],
    );
    let e = build_err(dir.path(), &opts);
    assert!(e.contains("app/deep.yaml"), "{e}");
}
