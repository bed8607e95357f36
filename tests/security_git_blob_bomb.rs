//! A Git blob bomb: a small commit whose tree names one large blob of zeros
//! many times. The signature is checked before the tree is read, and every
//! blob's size (and the tree's total) is checked from the object header
//! before the blob is read, so an unsigned bomb costs no more than its
//! commit, and a signed one never more than the limits.
//!
//! The allocations of the fetch are measured with a counting global
//! allocator; the repositories are made with the git CLI and the signatures
//! compared with `git verify-commit`.
#![cfg(all(feature = "git", feature = "ssh-verify"))]

mod git_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use driftless::source::{FetchError, FetchRequest, GitLimits, GitRef, GitSource, Source};
use driftless::verify::{SshVerifier, VerifyError, VerifyMode};
use git_support::*;

/// Counts the bytes allocated now and the most at any time.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size > layout.size() {
                let now = NOW.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One measurement at a time: the counters are process-wide.
static MEASURE: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result and how far the allocations grew above
/// where they were when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = NOW.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(start))
}

const MIB: usize = 1024 * 1024;
/// The blob: 8 MiB of zeros (8 KiB compressed).
const BLOB: usize = 8 * MIB;
/// How often the tree names it: 512 MiB of files once read.
const COPIES: usize = 64;

struct Bomb {
    s: Scratch,
    repo: PathBuf,
    allowed: String,
}

impl Bomb {
    fn new() -> Self {
        require("git");
        require("ssh-keygen");
        let s = Scratch::new();
        let repo = s.init_repo("repo");
        let key = s.path().join("signer");
        keygen(&key, "ed25519");
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        let allowed = format!("ada@example.org {}\n", public.join(" "));
        std::fs::write(s.path().join("allowed_signers"), &allowed).unwrap();
        git(&repo, &s.home(), &["config", "gpg.format", "ssh"]);
        git(
            &repo,
            &s.home(),
            &["config", "user.signingkey", key.to_str().unwrap()],
        );
        git(
            &repo,
            &s.home(),
            &[
                "config",
                "gpg.ssh.allowedSignersFile",
                s.path().join("allowed_signers").to_str().unwrap(),
            ],
        );
        Bomb { s, repo, allowed }
    }

    /// A commit on `branch` whose tree names a zero blob of `size` bytes
    /// `copies` times (`f00.yaml`, ...), signed or not.
    fn commit(&self, branch: &str, size: usize, copies: usize, signed: bool) -> String {
        let zeros = self.s.path().join(format!("zeros-{size}"));
        std::fs::write(&zeros, vec![0u8; size]).unwrap();
        let home = self.s.home();
        let blob = git(
            &self.repo,
            &home,
            &["hash-object", "-w", zeros.to_str().unwrap()],
        );
        let listing: String = (0..copies)
            .map(|i| format!("100644 blob {blob}\tf{i:02}.yaml\n"))
            .collect();
        let tree = {
            let mut c = git_cmd(&self.repo, &home);
            c.arg("mktree")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(listing.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let mut args = vec!["commit-tree", "-m", "bomb"];
        if signed {
            args.push("-S");
        }
        args.push(&tree);
        let commit = git(&self.repo, &home, &args);
        git(
            &self.repo,
            &home,
            &["update-ref", &format!("refs/heads/{branch}"), &commit],
        );
        // the oracle: git's verdict on the commit
        let verified = git_env(&self.repo, &home, &[], &["verify-commit", &commit])
            .status
            .success();
        assert_eq!(verified, signed, "git verify-commit on the {branch} bomb");
        commit
    }

    fn source(&self) -> GitSource {
        GitSource::new(self.repo.to_str().unwrap()).unwrap()
    }

    fn verifier(&self) -> SshVerifier {
        SshVerifier::from_allowed_signers(&self.allowed, "allowed_signers", VerifyMode::Head)
            .unwrap()
    }
}

/// The error of a fetch that must fail (its tree is never printed).
fn refused<T>(result: Result<T, FetchError>, what: &str) -> FetchError {
    match result {
        Ok(_) => panic!("expected a refusal: {what}"),
        Err(e) => e,
    }
}

fn request(branch: &str) -> FetchRequest {
    FetchRequest::new(GitRef::branch(branch))
}

#[test]
fn an_unsigned_blob_bomb_is_refused_before_its_tree_is_read() {
    let b = Bomb::new();
    let commit = b.commit("bomb", BLOB, COPIES, false);
    let _m = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let (result, peak) =
        peak_of(|| block(b.source().fetch_verified(&request("bomb"), &b.verifier())));
    match refused(result, "the unsigned commit") {
        FetchError::Verify(r) => match r.error {
            VerifyError::Unsigned { what, id } => {
                assert_eq!((what, id.as_str()), ("commit", commit.as_str()))
            }
            other => panic!("expected the commit to be refused as unsigned, got {other}"),
        },
        other => panic!("expected the unsigned commit to be refused, got {other}"),
    }
    // reading the tree would hold 64 x 8 MiB; receiving the pack inflates
    // the blob once
    assert!(
        peak < 4 * BLOB,
        "the refused fetch allocated {} MiB",
        peak / MIB
    );
}

#[test]
fn a_signed_blob_bomb_stops_at_the_file_and_tree_limits() {
    let b = Bomb::new();
    b.commit("bomb", BLOB, COPIES, true);
    let _m = MEASURE.lock().unwrap_or_else(|e| e.into_inner());

    // each file is bounded: the first copy is refused from its header
    let small = GitLimits {
        max_file_bytes: (BLOB - 1) as u64,
        ..GitLimits::default()
    };
    let (result, peak) = peak_of(|| {
        block(
            b.source()
                .with_limits(small)
                .fetch_verified(&request("bomb"), &b.verifier()),
        )
    });
    let err = refused(result, "a file over max_file_bytes");
    assert_eq!(
        err.to_string(),
        format!(
            "f00.yaml: file is {BLOB} bytes, more than the limit of {} bytes",
            BLOB - 1
        )
    );
    assert!(peak < 4 * BLOB, "allocated {} MiB", peak / MIB);

    // the whole tree is bounded: 64 copies of 8 MiB pass the file limit
    // but not a 100 MiB tree; the refusal comes at the 13th copy
    let tree = GitLimits {
        max_tree_bytes: 100 * MIB as u64,
        ..GitLimits::default()
    };
    let (result, peak) = peak_of(|| {
        block(
            b.source()
                .with_limits(tree)
                .fetch_verified(&request("bomb"), &b.verifier()),
        )
    });
    let err = refused(result, "a tree over max_tree_bytes");
    assert!(
        err.to_string()
            .starts_with("f12.yaml: the tree holds more than 104857600 bytes"),
        "{err}"
    );
    assert!(peak < 100 * MIB + 4 * BLOB, "allocated {} MiB", peak / MIB);

    // the defaults (64 MiB per file, 256 MiB per tree) stop it too
    let (result, peak) =
        peak_of(|| block(b.source().fetch_verified(&request("bomb"), &b.verifier())));
    let err = refused(result, "512 MiB of files");
    assert!(
        err.to_string()
            .contains("the tree holds more than 268435456 bytes"),
        "{err}"
    );
    assert!(peak < 256 * MIB + 4 * BLOB, "allocated {} MiB", peak / MIB);
}

#[test]
fn a_signed_tree_within_the_limits_is_read() {
    let b = Bomb::new();
    b.commit("fine", 1024, 3, true);
    let _m = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let v = block(b.source().fetch_verified(&request("fine"), &b.verifier())).unwrap();
    assert_eq!(v.verdict().principal, "ada@example.org");
    let files: Vec<&str> = v.tree.entries().map(|(p, _)| p).collect();
    assert_eq!(files, ["f00.yaml", "f01.yaml", "f02.yaml"]);
    assert_eq!(v.tree.read("f01.yaml").unwrap(), vec![0u8; 1024].as_slice());
    // the unverified fetch applies the same limits
    let err = block(
        b.source()
            .with_limits(GitLimits {
                max_file_bytes: 1000,
                ..GitLimits::default()
            })
            .fetch(&GitRef::branch("fine")),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "f00.yaml: file is 1024 bytes, more than the limit of 1000 bytes"
    );
}
