//! Fetch benchmarks:
//! - a no-op fetch of an unchanged remote over file:// and local http
//!   (goal: under 50 ms);
//! - a shallow clone of a 10,000-file repository, against
//!   `git clone --depth 1` of the same repository in the same run;
//! - reading deeply nested trees (`deep/1000`, `deep/4000`: a file in each
//!   of 1,000 or 4,000 nested folders, the pack already cached): the time
//!   follows the total length of the paths, which grows with the square of
//!   the depth here, as `git ls-tree -r`'s own output does (issue 17, L4:
//!   20 s at depth 4,000 before; 1.7 s after, and 52 ms for
//!   `git ls-tree -r`, so still about 30 times git), against
//!   `git ls-tree -r` of the same tree.

#[path = "../tests/git_support/mod.rs"]
mod git_support;

use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use driftless::source::{GitLimits, GitRef, GitSource, Source};
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

/// A repository whose `main` holds a file in each of `depth` nested
/// folders (`a/f.yaml`, `a/a/f.yaml`, ...), made with `git fast-import`,
/// served with git's depth limit raised.
fn deep_repo(s: &Scratch, depth: usize) -> std::path::PathBuf {
    use std::io::Write;
    let repo = s.init_repo(&format!("deep{depth}"));
    let mut stream = String::from(
        "commit refs/heads/main\ncommitter Ada <ada@example.org> 1700000000 +0000\ndata 4\ndeep\n",
    );
    let mut path = String::new();
    for i in 0..depth {
        if !path.is_empty() {
            path.push('/');
        }
        path.push('a');
        let body = format!("x: {i}\n");
        stream.push_str(&format!(
            "M 100644 inline {path}/f.yaml\ndata {}\n{body}",
            body.len()
        ));
    }
    let mut child = git_cmd(&repo, &s.home())
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git(&repo, &s.home(), &["config", "core.maxTreeDepth", "100000"]);
    repo
}

fn bench_deep(c: &mut Criterion) {
    let s = Scratch::new();
    let mut g = c.benchmark_group("deep");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let main = GitRef::branch("main");
    for depth in [1000, 4000] {
        let repo = deep_repo(&s, depth);
        let url = format!("file://{}", repo.display());
        let cache = s.path().join(format!("cache-deep{depth}"));
        let limits = GitLimits {
            max_depth: 4096,
            ..GitLimits::default()
        };
        // a new source each time: the pack is cached, the tree is read
        let read = || {
            let src = GitSource::new(&url)
                .unwrap()
                .with_cache_dir(&cache)
                .with_limits(limits);
            let snap = block(src.fetch(&main)).unwrap();
            assert_eq!(snap.tree.len(), depth);
        };
        read();
        g.bench_function(format!("driftless/{depth}"), |b| b.iter(read));
        g.bench_function(format!("git-ls-tree/{depth}"), |b| {
            b.iter(|| {
                let out = git(
                    &repo,
                    &s.home(),
                    &["-c", "core.maxTreeDepth=100000", "ls-tree", "-r", "main"],
                );
                assert_eq!(out.lines().count(), depth);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_deep);
criterion_main!(benches);
