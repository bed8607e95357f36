//! Fetch benchmarks:
//! - a no-op fetch of an unchanged remote over file:// and local http
//!   (goal: under 50 ms);
//! - a shallow clone of a 10,000-file repository, against
//!   `git clone --depth 1` of the same repository in the same run.

#[path = "../tests/git_support/mod.rs"]
mod git_support;

use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use driftless::source::{GitRef, GitSource, Source};
use git_support::*;

fn bench(c: &mut Criterion) {
    let s = Scratch::new();
    let repo = s.init_repo("srv/repo");
    // 10,000 files in 100 folders
    for d in 0..100 {
        let dir = repo.join(format!("apps/app{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(
                dir.join(format!("cm{f:03}.yaml")),
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{d}-{f}\ndata:\n  k: \"{}\"\n", d * 100 + f),
            )
            .unwrap();
        }
    }
    s.commit(&repo, &[], "ten thousand files");
    let bare = s.path().join("srv/repo.git");
    git(
        s.path(),
        &s.home(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let file_url = format!("file://{}", bare.display());
    let main = GitRef::branch("main");

    let mut g = c.benchmark_group("fetch");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    // no-op over file://
    let src = GitSource::new(&file_url)
        .unwrap()
        .with_cache_dir(s.path().join("cache-file"));
    block(src.fetch(&main)).unwrap();
    g.bench_function("noop/file", |b| b.iter(|| block(src.fetch(&main)).unwrap()));

    // no-op over local http
    let server = HttpServer::start(bare.parent().unwrap(), HttpAuth::None);
    let src = GitSource::new(&server.url("repo.git"))
        .unwrap()
        .with_cache_dir(s.path().join("cache-http"));
    block(src.fetch(&main)).unwrap();
    g.bench_function("noop/http", |b| b.iter(|| block(src.fetch(&main)).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("clone-10k");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("driftless/shallow-file", |b| {
        b.iter(|| {
            let src = GitSource::new(&file_url).unwrap();
            let snap = block(src.fetch(&main)).unwrap();
            assert_eq!(snap.tree.len(), 10_000);
        })
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    g.bench_function("git-clone-depth1/file", |b| {
        b.iter(|| {
            let dest = s.path().join(format!(
                "clone{}",
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let out = Command::new("git")
                .args([
                    "-c",
                    "advice.detachedHead=false",
                    "clone",
                    "-q",
                    "--depth",
                    "1",
                    &file_url,
                ])
                .arg(&dest)
                .env("HOME", s.home())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success());
            std::fs::remove_dir_all(&dest).unwrap();
        })
    });
    g.bench_function("git-clone-depth1-bare/file", |b| {
        b.iter(|| {
            let dest = s.path().join(format!(
                "bare{}",
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let out = Command::new("git")
                .args(["clone", "-q", "--bare", "--depth", "1", &file_url])
                .arg(&dest)
                .env("HOME", s.home())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success());
            std::fs::remove_dir_all(&dest).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
