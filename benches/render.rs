//! Render throughput on the workload: a production overlay over a
//! base of apps (Deployment, Service, ConfigMap each), at 4,000 and 400
//! resources, to check the time and its linear growth.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use driftless::render::kustomize::{build, KustomizeOptions};
use driftless::source::Tree;

#[path = "support/tree.rs"]
mod tree;

fn make_tree(apps: usize) -> Tree {
    let mut t = Tree::new();
    for (p, c) in tree::files(apps) {
        t.insert_file(&p, c.into_bytes()).expect("valid path");
    }
    t
}

fn bench(c: &mut Criterion) {
    // the default (the machine's parallelism) and one thread; the output's
    // drop is the caller's and is not timed
    for (group_name, parallelism) in [
        ("kustomize_build", KustomizeOptions::default().parallelism),
        ("kustomize_build_1thread", 1),
    ] {
        let opts = KustomizeOptions {
            parallelism,
            ..KustomizeOptions::default()
        };
        let mut g = c.benchmark_group(group_name);
        g.sample_size(10);
        for apps in [133usize, 1333] {
            let t = make_tree(apps);
            let n = build(&t, "production", &opts)
                .expect("builds")
                .objects
                .len();
            g.bench_with_input(BenchmarkId::new("resources", n), &t, |b, t| {
                b.iter_with_large_drop(|| build(t, "production", &opts).expect("builds"))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
