//! The kustomization loader and the whole build: the input is a
//! kustomization file; a small fixed set of resources sits next to it.
#![no_main]

use driftless::render::kustomize::{build, parse_kustomization, KustomizeOptions};
use driftless::source::Tree;
use libfuzzer_sys::fuzz_target;

const DEP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: nginx\n";
const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_kustomization("kustomization.yaml", text);
    let mut tree = Tree::new();
    let _ = tree.insert_file("app/kustomization.yaml", text.as_bytes().to_vec());
    let _ = tree.insert_file("app/dep.yaml", DEP.as_bytes().to_vec());
    let _ = tree.insert_file("app/cm.yaml", CM.as_bytes().to_vec());
    let _ = tree.insert_file("app/base/kustomization.yaml", &b"resources: [../dep.yaml]\n"[..]);
    let _ = tree.insert_file("app/p.yaml", CM.as_bytes().to_vec());
    let _ = build(&tree, "app", &KustomizeOptions::default());
    let _ = build(&tree, "app", &KustomizeOptions::flux());
});
