//! One writer at a time in a state folder, and readers never disturb it.
//!
//! Issue 17, L2: there was no lock on the embedded cluster's state folder.
//! A read-only `tree` during a reconcile deleted the writer's temporary
//! files and failed it, and two writers handed out the same uids and
//! resourceVersions. Now a writer holds an exclusive advisory lock on
//! `<state>/lock` for as long as its cluster lives, a reader takes a shared
//! lock while it loads, and neither waits: the loser fails at once with an
//! error naming the folder (and a writer's pid).

mod support;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};

use driftless::apply::memory::{Durability, StateError};
use driftless::apply::{Applier, ApplyError, ApplyOptions, MemoryCluster};
use driftless::Object;
use futures::executor::block_on;
use serde_json::json;
use support::{demo_fleet, demo_tenant_source, run_example, stderr, stdout};

fn configmap(name: &str) -> Object {
    Object::new(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"a": "1"},
    }))
    .unwrap()
}

/// Every file below `dir` with its bytes, `lock` aside.
/// Retries a `Locked` open for up to ten seconds. Once the holder has
/// closed the folder, the lock can still live on for an instant in a child
/// process that another test of this binary is spawning: a forked child
/// holds every open descriptor until its `exec` closes them
/// (close-on-exec), and `flock` locks belong to the shared descriptor.
/// `Locked` is retryable for exactly this; the test must not race it.
fn retry_locked<T>(open: impl Fn() -> Result<T, StateError>) -> T {
    for _ in 0..200 {
        match open() {
            Err(StateError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other.unwrap(),
        }
    }
    open().unwrap()
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p != root.join("lock") {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The case with real processes: while this process writes, the
/// `tree` example (a reader) and the `reconcile` example (a second writer)
/// fail at once, naming the folder and this process, and leave the
/// writer's files (a temporary file in flight included) alone. Once the
/// writer is gone, both work.
#[test]
fn other_processes_fail_at_once_while_a_writer_holds_the_folder() {
    let state = tempfile::tempdir().unwrap();
    let st = state.path().display().to_string();
    let writer = MemoryCluster::open_with(state.path(), Durability::Process).unwrap();
    block_on(writer.apply(&configmap("settings"), &ApplyOptions::default())).unwrap();
    let in_flight = state
        .path()
        .join("objects/core/ConfigMap/default/.driftless-tmp-1-0");
    fs::write(&in_flight, "apiVersion: v1\nkind: Config").unwrap();
    let before = snapshot(state.path());
    let locked = format!(
        "error: cluster state {st} is locked: another process (pid {}) has it open for writing; retry when it is done",
        std::process::id()
    );

    let out = run_example("tree", &["--state", &st]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim(), locked);

    let fleet = demo_fleet();
    let repo = fleet.path().display().to_string();
    let tenant = demo_tenant_source(&repo);
    let reconcile = [
        "--repo",
        repo.as_str(),
        "--state",
        st.as_str(),
        tenant.as_str(),
    ];
    let out = run_example("reconcile", &reconcile);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains(&locked), "{}", stderr(&out));
    assert_eq!(snapshot(state.path()), before);
    assert!(in_flight.exists());

    // The writer goes on undisturbed, then leaves.
    block_on(writer.apply(&configmap("more"), &ApplyOptions::default())).unwrap();
    drop(writer);
    let out = run_example("reconcile", &reconcile);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run_example("tree", &["--state", &st]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("Kustomization/flux-system/flux-system\n"));
}

/// Writers racing for one folder (threads, real files): exactly one wins;
/// the others fail at once with a retryable `Locked`. Readers share the
/// folder with each other, and hold it only while they load.
#[test]
fn one_writer_wins_and_readers_share() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let start = Arc::new(Barrier::new(4));
    let tried = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (path, start, tried) = (path.clone(), start.clone(), tried.clone());
            std::thread::spawn(move || {
                start.wait();
                let result = MemoryCluster::open_with(&path, Durability::Process);
                // Hold the winner until everyone has tried.
                tried.wait();
                result.map(|_| ())
            })
        })
        .collect();
    let results: Vec<Result<(), StateError>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(err, StateError::Locked { path: p, .. } if p == &path),
            "{err}"
        );
        assert!(err.is_retryable());
    }

    // Two readers at once; a writer right after they loaded.
    let r1 = retry_locked(|| MemoryCluster::open_read_only(&path));
    let r2 = retry_locked(|| MemoryCluster::open_read_only(&path));
    let w = retry_locked(|| MemoryCluster::open_with(&path, Durability::Process));
    block_on(w.apply(&configmap("new"), &ApplyOptions::default())).unwrap();
    // While the writer lives, a reader fails at once.
    let err = MemoryCluster::open_read_only(&path).unwrap_err();
    assert!(err.to_string().contains("has it open for writing"), "{err}");
    drop(w);
    // The readers kept their snapshot; a new reader sees the write.
    assert!(r1.object(&configmap("new").id()).is_none());
    assert!(r2.object(&configmap("new").id()).is_none());
    let r3 = retry_locked(|| MemoryCluster::open_read_only(&path));
    assert!(r3.object(&configmap("new").id()).is_some());
}

/// A cluster opened read-only refuses every write and writes nothing
/// (dry-runs still work); an absent folder reads as a fresh cluster and is
/// not created.
#[test]
fn a_read_only_cluster_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    drop(MemoryCluster::open_with(dir.path(), Durability::Process).unwrap());
    let before = snapshot(dir.path());
    let r = retry_locked(|| MemoryCluster::open_read_only(dir.path()));
    let dry = ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    };
    block_on(r.apply(&configmap("x"), &dry)).unwrap();
    let err = block_on(r.apply(&configmap("x"), &ApplyOptions::default())).unwrap_err();
    assert!(
        matches!(&err, ApplyError::Forbidden { message, .. } if message.contains("is open read-only")),
        "{err}"
    );
    assert!(!err.is_retryable());
    let ns = driftless::ObjectId::new("", "Namespace", "", "kube-node-lease");
    assert!(block_on(r.delete(&ns, &ApplyOptions::default())).is_err());
    assert!(r.object(&ns).is_some());
    assert_eq!(snapshot(dir.path()), before);

    let absent = dir.path().join("not-yet");
    let fresh = MemoryCluster::open_read_only(&absent).unwrap();
    assert!(fresh.object(&ns).is_some());
    assert!(!absent.exists());
}
