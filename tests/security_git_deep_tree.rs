//! Issue 17, L4: deeply nested Git trees. A tree is read iteratively, each
//! tree object once and each path built once from its parent's, so the time
//! follows the total length of the paths read, which grows with the square
//! of the depth for a file in every folder, as `git ls-tree -r`'s output
//! does (figures in `benches/fetch.rs`, `deep/*`), up to
//! git's `core.maxTreeDepth` (2048: git refuses deeper trees itself):
//! deeper is refused, naming the folder; a host that raises the limit reads
//! deeper trees whole.
//! Repositories are made with `git fast-import`; git's own listing
//! (`git ls-tree -r`) is the oracle for what is read.
#![cfg(feature = "git")]

mod git_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use driftless::source::{GitLimits, GitRef, GitSource, Source};
use git_support::*;

/// A repository whose `main` holds `a/f.yaml`, `a/a/f.yaml`, ... down to
/// `depth` folders.
fn deep_repo(s: &Scratch, depth: usize) -> PathBuf {
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
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import");
    repo
}

/// What `git ls-tree -r` lists (with git's depth limit raised).
fn listed(s: &Scratch, repo: &Path) -> Vec<String> {
    git(
        repo,
        &s.home(),
        &[
            "-c",
            "core.maxTreeDepth=100000",
            "ls-tree",
            "-r",
            "--name-only",
            "main",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn fetch(
    repo: &Path,
    max_depth: usize,
) -> Result<driftless::source::Snapshot, driftless::source::SourceError> {
    block(
        GitSource::new(repo.to_str().unwrap())
            .unwrap()
            .with_limits(GitLimits {
                max_depth,
                ..GitLimits::default()
            })
            .fetch(&GitRef::branch("main")),
    )
}

#[test]
fn a_tree_as_deep_as_git_allows_is_read_whole() {
    let s = Scratch::new();
    let repo = deep_repo(&s, 2048);
    // git reads it with its default limit
    let by_git: Vec<String> = git(&repo, &s.home(), &["ls-tree", "-r", "--name-only", "main"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(by_git.len(), 2048);
    let snap = block(
        GitSource::new(repo.to_str().unwrap())
            .unwrap()
            .fetch(&GitRef::branch("main")),
    )
    .unwrap();
    let read: Vec<&str> = snap.tree.entries().map(|(p, _)| p).collect();
    assert_eq!(read, by_git);
}

#[test]
fn a_tree_4000_folders_deep_is_refused_by_default_and_read_whole_when_allowed() {
    let s = Scratch::new();
    let repo = deep_repo(&s, 4000);
    // git's own default refuses it; the server here allows it
    assert!(!git_env(&repo, &s.home(), &[], &["ls-tree", "-r", "main"])
        .status
        .success());
    git(&repo, &s.home(), &["config", "core.maxTreeDepth", "100000"]);
    let err = fetch(&repo, GitLimits::default().max_depth).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: folders nest deeper than 2048 levels (git's core.maxTreeDepth)",
            vec!["a"; 2049].join("/")
        )
    );
    let snap = fetch(&repo, 4096).unwrap();
    let read: Vec<&str> = snap.tree.entries().map(|(p, _)| p).collect();
    assert_eq!(read, listed(&s, &repo));
    let deepest = format!("{}/f.yaml", vec!["a"; 4000].join("/"));
    assert_eq!(snap.tree.read(&deepest).unwrap(), b"x: 3999\n");
}
#[test]
fn folders_nested_deeper_than_the_limit_are_refused() {
    let s = Scratch::new();
    let repo = deep_repo(&s, 300);
    let source = |max_depth| {
        GitSource::new(repo.to_str().unwrap())
            .unwrap()
            .with_limits(GitLimits {
                max_depth,
                ..GitLimits::default()
            })
    };
    assert_eq!(
        block(source(300).fetch(&GitRef::branch("main")))
            .unwrap()
            .tree
            .len(),
        300
    );
    let err = block(source(299).fetch(&GitRef::branch("main"))).unwrap_err();
    let folder = vec!["a"; 300].join("/");
    assert_eq!(
        err.to_string(),
        format!("{folder}: folders nest deeper than 299 levels (git's core.maxTreeDepth)")
    );
    // the default is git's 2048
    assert_eq!(GitLimits::default().max_depth, 2048);
}
