//! Refusing hostile YAML: the issue's `d: [[[…]]]` with 200,000 levels
//! (400 KB) is refused by the depth check before the parser reads it
//! (issue 17, H7; it took 100 s before). `kubectl kustomize` refuses the
//! same file in about 0.08 s; `docs/security.md` has both figures.

use criterion::{criterion_group, criterion_main, Criterion};
use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::Tree;
use driftless::yaml::{load_documents, Limits};

/// The input: a ConfigMap whose value nests 200,000 flow
/// sequences.
fn deep_config_map(levels: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  d: {}{}\n",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

fn bench(c: &mut Criterion) {
    let text = deep_config_map(200_000);
    let mut tree = Tree::new();
    tree.insert_file("kustomization.yaml", b"resources:\n- deep.yaml\n".to_vec())
        .expect("valid path");
    tree.insert_file("deep.yaml", text.clone().into_bytes())
        .expect("valid path");
    let limits = Limits::default();
    let opts = KustomizeOptions::default();
    assert!(load_documents("deep.yaml", &text, &limits).is_err());
    assert!(build(&tree, "", &opts).is_err());

    let mut g = c.benchmark_group("yaml_refuse_200k_flow_levels");
    g.bench_function("load_documents", |b| {
        b.iter(|| load_documents("deep.yaml", &text, &limits).unwrap_err())
    });
    g.bench_function("kustomize_build", |b| {
        b.iter(|| build(&tree, "", &opts).unwrap_err())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
