//! GitSource against repositories made with the git CLI, served over
//! file://, `git http-backend` (with and without auth) and sshd.
#![cfg(feature = "git")]

mod git_support;

use std::path::{Path, PathBuf};

use driftless::source::{Entry, GitRef, GitSource, Source, SourceError};
use git_support::*;

fn branch(b: &str) -> GitRef {
    GitRef::branch(b)
}

/// A repository with a few commits, tags and a symlink.
struct Fixture {
    s: Scratch,
    repo: std::path::PathBuf,
    c1: String,
    c2: String,
}

/// Pushes a third commit (adding `deploy/new.yaml`) to the fixture's
/// remote from a fresh clone; returns its id.
fn push_third_commit(f: &Fixture) -> String {
    let work = f.s.path().join("work");
    git(
        f.s.path(),
        &f.s.home(),
        &[
            "clone",
            "-q",
            f.repo.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    let c3 = f.s.commit(&work, &[("deploy/new.yaml", "x: 1\n")], "third");
    git(&work, &f.s.home(), &["push", "-q", "origin", "main"]);
    c3
}

/// The one entry of a folder (the cache repository in a cache dir).
fn only_entry(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// How many pack files the cache repository holds.
fn pack_count(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pack")
        })
        .count()
}

fn fixture() -> Fixture {
    let s = Scratch::new();
    let repo = s.init_repo("src/repo");
    let c1 = s.commit(
        &repo,
        &[
            ("deploy/app.yaml", "kind: ConfigMap\n"),
            ("README.md", "hi\n"),
        ],
        "first",
    );
    s.commit(&repo, &[], "unused");
    git(&repo, &s.home(), &["tag", "v1.0.0", &c1]);
    git(
        &repo,
        &s.home(),
        &["tag", "-a", "-m", "release 1.1", "v1.1.0"],
    );
    std::os::unix::fs::symlink("../../etc/passwd", repo.join("evil")).unwrap();
    std::os::unix::fs::symlink("deploy/app.yaml", repo.join("link.yaml")).unwrap();
    let c2 = s.commit(
        &repo,
        &[
            ("deploy/app.yaml", "kind: ConfigMap\nv: 2\n"),
            ("logo.png", "png"),
            (".github/workflows/ci.yml", "on: push\n"),
        ],
        "second",
    );
    git(&repo, &s.home(), &["tag", "v2.0.0-rc.1"]);
    git(&repo, &s.home(), &["branch", "feature/x", &c1]);
    git(&repo, &s.home(), &["update-ref", "refs/pull/1/head", &c1]);
    // serve it bare, like a real remote
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
    git(&bare, &s.home(), &["update-ref", "refs/pull/1/head", &c1]);
    Fixture {
        s,
        repo: bare,
        c1,
        c2,
    }
}

#[test]
fn file_fetch_resolves_refs_like_flux() {
    require("git");
    let f = fixture();
    let cache = f.s.path().join("cache");
    let src = GitSource::new(f.repo.to_str().unwrap())
        .unwrap()
        .with_cache_dir(&cache);

    let snap = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(snap.revision.to_string(), format!("main@sha1:{}", f.c2));
    assert_eq!(
        snap.tree.read("deploy/app.yaml").unwrap(),
        b"kind: ConfigMap\nv: 2\n"
    );
    // defaults of .sourceignore: pictures and CI files are dropped
    assert!(snap.tree.read("logo.png").is_err());
    assert!(snap.tree.read(".github/workflows/ci.yml").is_err());
    // symlinks are recorded, never followed
    let entries: Vec<_> = snap
        .tree
        .entries()
        .map(|(p, e)| (p.to_string(), e.clone()))
        .collect();
    assert!(entries.contains(&(
        "evil".to_string(),
        Entry::Symlink("../../etc/passwd".into())
    )));
    assert!(snap.tree.read("evil").is_err());
    assert_eq!(
        snap.tree.read("link.yaml").unwrap(),
        b"kind: ConfigMap\nv: 2\n"
    );
    let commit = snap.commit.as_ref().unwrap();
    assert_eq!(commit.id, f.c2);
    assert_eq!(commit.committer_time, 1_700_000_000);
    assert!(snap.tag.is_none());

    // a lightweight tag
    let t = block(src.fetch(&GitRef {
        tag: Some("v1.0.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(t.revision.to_string(), format!("v1.0.0@sha1:{}", f.c1));
    assert!(t.tag.is_none());
    assert_eq!(
        t.tree.read("deploy/app.yaml").unwrap(),
        b"kind: ConfigMap\n"
    );

    // an annotated tag: revision names the peeled commit, TagInfo is filled
    let at = block(src.fetch(&GitRef {
        tag: Some("v1.1.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    let tag_commit = git(&f.repo, &f.s.home(), &["rev-parse", "v1.1.0^{commit}"]);
    let tag_obj = git(&f.repo, &f.s.home(), &["rev-parse", "v1.1.0"]);
    assert_eq!(at.revision.to_string(), format!("v1.1.0@sha1:{tag_commit}"));
    let ti = at.tag.as_ref().unwrap();
    assert_eq!(
        (ti.name.as_str(), ti.id.as_str()),
        ("v1.1.0", tag_obj.as_str())
    );
    assert_eq!(
        ti.signed_payload,
        git(&f.repo, &f.s.home(), &["cat-file", "tag", "v1.1.0"])
            .into_bytes()
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>()
    );

    // semver: the highest match; prereleases only when asked
    let sv = block(src.fetch(&GitRef {
        semver: Some(">=1.0.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(sv.revision.to_string(), format!("v1.1.0@sha1:{tag_commit}"));
    let pre = block(src.fetch(&GitRef {
        semver: Some(">=2.0.0-rc.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(
        pre.revision.to_string(),
        format!("v2.0.0-rc.1@sha1:{}", f.c2)
    );

    // a full ref name: Flux writes it whole
    let n = block(src.fetch(&GitRef {
        name: Some("refs/pull/1/head".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(
        n.revision.to_string(),
        format!("refs/pull/1/head@sha1:{}", f.c1)
    );

    // branch with a slash
    let fx = block(src.fetch(&branch("feature/x"))).unwrap();
    assert_eq!(fx.revision.to_string(), format!("feature/x@sha1:{}", f.c1));

    // a commit, alone and with a branch; commit wins over everything
    let c = block(src.fetch(&GitRef {
        commit: Some(f.c1.clone()),
        tag: Some("v1.1.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(c.revision.to_string(), format!("sha1:{}", f.c1));
    let cb = block(src.fetch(&GitRef {
        commit: Some(f.c1.clone()),
        branch: Some("main".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(cb.revision.to_string(), format!("main@sha1:{}", f.c1));

    // missing refs are clear errors
    assert!(matches!(
        block(src.fetch(&branch("nope"))),
        Err(SourceError::RefNotFound(_))
    ));
    assert!(matches!(
        block(src.fetch(&GitRef {
            semver: Some(">=9".into()),
            ..GitRef::default()
        })),
        Err(SourceError::RefNotFound(_))
    ));
}

#[test]
fn shallow_by_default_and_noop_fetch_transfers_nothing() {
    require("git");
    let f = fixture();
    let cache = f.s.path().join("cache");
    let src = GitSource::new(&format!("file://{}", f.repo.display()))
        .unwrap()
        .with_cache_dir(&cache);
    let a = block(src.fetch(&branch("main"))).unwrap();
    let cache_repo = only_entry(&cache);
    // shallow: only the tip commit is there
    let count = git(&cache_repo, &f.s.home(), &["rev-list", "--count", "--all"]);
    assert_eq!(count, "1", "cache should hold one commit (depth 1)");
    assert!(cache_repo.join("shallow").is_file());
    let packs = || pack_count(&cache_repo);
    let before = packs();
    let b = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(a, b);
    assert_eq!(packs(), before, "a no-op fetch must not receive a pack");
    // a fresh source over the same cache also transfers nothing
    let src2 = GitSource::new(f.repo.to_str().unwrap())
        .unwrap()
        .with_cache_dir(&cache);
    let c = block(src2.fetch(&branch("main"))).unwrap();
    assert_eq!(a, c);
    assert_eq!(packs(), before);
    // a new commit on the remote is fetched
    let c3 = push_third_commit(&f);
    let d = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(d.revision.to_string(), format!("main@sha1:{c3}"));
    assert_eq!(d.tree.read("deploy/new.yaml").unwrap(), b"x: 1\n");
    assert_eq!(packs(), before + 1);
}

#[test]
fn sourceignore_in_repo_replaces_defaults() {
    let s = Scratch::new();
    let repo = s.init_repo("r");
    s.commit(
        &repo,
        &[
            (".sourceignore", "*.txt\n"),
            ("a/notes.txt", "n"),
            ("a/pic.png", "p"),
            ("a/app.yaml", "k: v\n"),
            (".gitignore", "x\n"),
            ("sub/.sourceignore", "/drop/\n"),
            ("sub/drop/x.yaml", "x"),
            ("sub/keep/y.yaml", "y"),
        ],
        "m",
    );
    let src = GitSource::new(repo.to_str().unwrap()).unwrap();
    let snap = block(src.fetch(&branch("main"))).unwrap();
    let paths: Vec<&str> = snap.tree.entries().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        vec![
            ".sourceignore",
            "a/app.yaml",
            "a/pic.png",
            "sub/.sourceignore",
            "sub/keep/y.yaml"
        ]
    );
    let src = GitSource::new(repo.to_str().unwrap())
        .unwrap()
        .with_ignore("a/\n");
    let snap = block(src.fetch(&branch("main"))).unwrap();
    assert!(snap.tree.read("a/app.yaml").is_err());
}

#[test]
fn http_noop_fetch_is_one_request_and_fetches_stay_shallow() {
    use std::sync::atomic::Ordering;
    require("git");
    let f = fixture();
    let server = HttpServer::start(f.repo.parent().unwrap(), HttpAuth::None);
    let cache = f.s.path().join("cache");
    let src = GitSource::new(&server.url("repo.git"))
        .unwrap()
        .with_cache_dir(&cache);
    let a = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(a.revision.to_string(), format!("main@sha1:{}", f.c2));
    let cache_repo = only_entry(&cache);
    let count = || git(&cache_repo, &f.s.home(), &["rev-list", "--count", "--all"]);
    assert_eq!(count(), "1", "cache should hold one commit (depth 1)");
    assert!(cache_repo.join("shallow").is_file());
    let packs = || pack_count(&cache_repo);
    let before = packs();

    // the no-op: one request (the ref advertisement), no pack
    let n0 = server.requests.load(Ordering::Relaxed);
    let b = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(a, b);
    assert_eq!(server.requests.load(Ordering::Relaxed) - n0, 1);
    assert_eq!(packs(), before, "a no-op fetch must not receive a pack");
    // also from a fresh source over the same cache
    let src2 = GitSource::new(&server.url("repo.git"))
        .unwrap()
        .with_cache_dir(&cache);
    let n0 = server.requests.load(Ordering::Relaxed);
    assert_eq!(a, block(src2.fetch(&branch("main"))).unwrap());
    assert_eq!(server.requests.load(Ordering::Relaxed) - n0, 1);

    // an annotated tag and a semver range over http, shallow too
    let t = block(src.fetch(&GitRef {
        tag: Some("v1.1.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(t.tag.as_ref().unwrap().name, "v1.1.0");
    let v = block(src.fetch(&GitRef {
        semver: Some("~1.0".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(v.revision.to_string(), format!("v1.0.0@sha1:{}", f.c1));
    // a commit by id (not advertised as a tip)
    let middle = git(&f.repo, &f.s.home(), &["rev-parse", "v1.1.0^{commit}"]);
    let c = block(src.fetch(&GitRef {
        commit: Some(middle.clone()),
        ..GitRef::default()
    }))
    .unwrap();
    assert_eq!(c.revision.to_string(), format!("sha1:{middle}"));

    // a new commit on the remote is fetched, shallowly
    let c3 = push_third_commit(&f);
    let d = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(d.revision.to_string(), format!("main@sha1:{c3}"));
    assert_eq!(d.tree.read("deploy/new.yaml").unwrap(), b"x: 1\n");
    let shallow = std::fs::read_to_string(cache_repo.join("shallow")).unwrap();
    assert!(
        shallow.lines().any(|l| l == c3),
        "the new tip is fetched at depth 1: {shallow}"
    );
}

#[test]
fn http_fetch_and_https_with_auth_and_custom_ca() {
    require("git");
    let f = fixture();
    let root = f.repo.parent().unwrap();

    let open = HttpServer::start(root, HttpAuth::None);
    let src = GitSource::new(&open.url("repo.git"))
        .unwrap()
        .with_cache_dir(f.s.path().join("c1"));
    let snap = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(snap.revision.to_string(), format!("main@sha1:{}", f.c2));
    let at = block(src.fetch(&GitRef {
        semver: Some("1.x".into()),
        ..GitRef::default()
    }))
    .unwrap();
    assert!(at.tag.is_some());
    // credentials are never sent over plain http
    let plain = GitSource::new(&open.url("repo.git"))
        .unwrap()
        .with_basic_auth("u", "plain-secret");
    let err = block(plain.fetch(&branch("main"))).unwrap_err();
    assert!(matches!(err, SourceError::Invalid(_)), "{err}");
    assert!(!err.to_string().contains("plain-secret"));

    let pki = Pki::new(&f.s.path().join("pki"));
    let locked = HttpServer::start(root, HttpAuth::Basic("flux".into(), "p@ss-w0rd".into()));
    let tls = TlsProxy::start(&pki, locked.port);
    let url = tls.url("repo.git");
    let good = GitSource::new(&url)
        .unwrap()
        .with_basic_auth("flux", "p@ss-w0rd")
        .with_ca_file(&pki.ca_cert)
        .with_cache_dir(f.s.path().join("c2"));
    let snap = block(good.fetch(&branch("main"))).unwrap();
    assert_eq!(snap.revision.to_string(), format!("main@sha1:{}", f.c2));

    // the server's CA is not trusted without with_ca_file
    let untrusted = GitSource::new(&url)
        .unwrap()
        .with_basic_auth("flux", "p@ss-w0rd");
    assert!(matches!(
        block(untrusted.fetch(&branch("main"))),
        Err(SourceError::Transport { .. })
    ));

    let bad = GitSource::new(&url)
        .unwrap()
        .with_basic_auth("flux", "wrong-secret-xyz")
        .with_ca_file(&pki.ca_cert);
    let err = block(bad.fetch(&branch("main"))).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, SourceError::Transport { .. }), "{msg}");
    assert!(!msg.contains("wrong-secret-xyz"), "{msg}");
    let none = GitSource::new(&url).unwrap().with_ca_file(&pki.ca_cert);
    assert!(block(none.fetch(&branch("main"))).is_err());

    let bearer = HttpServer::start(root, HttpAuth::Bearer("tok-abc-123".into()));
    let tls2 = TlsProxy::start(&pki, bearer.port);
    let url = tls2.url("repo.git");
    let good = GitSource::new(&url)
        .unwrap()
        .with_bearer_token("tok-abc-123")
        .with_ca_file(&pki.ca_cert);
    assert!(block(good.fetch(&branch("main"))).is_ok());
    let bad = GitSource::new(&url)
        .unwrap()
        .with_bearer_token("tok-wrong-999")
        .with_ca_file(&pki.ca_cert);
    let err = block(bad.fetch(&branch("main"))).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("tok-wrong-999"), "{err}");
}

#[test]
fn ssh_fetch_with_deploy_key_and_pinned_host_key() {
    require("git");
    require("ssh");
    let f = fixture();
    let server = SshServer::start(&f.s.path().join("sshd"));
    let url = server.url(&f.repo);
    let src = GitSource::new(&url)
        .unwrap()
        .with_ssh_key(&server.deploy_key, &server.known_hosts)
        .with_cache_dir(f.s.path().join("c1"));
    let snap = block(src.fetch(&branch("main"))).unwrap();
    assert_eq!(snap.revision.to_string(), format!("main@sha1:{}", f.c2));
    assert_eq!(
        snap.tree.read("deploy/app.yaml").unwrap(),
        b"kind: ConfigMap\nv: 2\n"
    );

    // the wrong host key is refused, never trusted on first use
    let wrong = GitSource::new(&url)
        .unwrap()
        .with_ssh_key(&server.deploy_key, &server.wrong_known_hosts)
        .with_cache_dir(f.s.path().join("c2"));
    assert!(matches!(
        block(wrong.fetch(&branch("main"))),
        Err(SourceError::Transport { .. })
    ));
    // an empty known_hosts is refused too
    let empty = f.s.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let tofu = GitSource::new(&url)
        .unwrap()
        .with_ssh_key(&server.deploy_key, &empty)
        .with_cache_dir(f.s.path().join("c3"));
    assert!(block(tofu.fetch(&branch("main"))).is_err());
    // another key is not authorized
    let other = f.s.path().join("other_deploy");
    keygen(&other, "ed25519");
    let denied = GitSource::new(&url)
        .unwrap()
        .with_ssh_key(&other, &server.known_hosts)
        .with_cache_dir(f.s.path().join("c4"));
    assert!(block(denied.fetch(&branch("main"))).is_err());
}

#[test]
fn scp_style_urls_are_refused() {
    let err = GitSource::new("git@github.com:fluxcd/flux2.git").unwrap_err();
    assert!(err.to_string().contains("ssh://"), "{err}");
}
