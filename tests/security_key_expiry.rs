//! Issue 17, H1: an OpenPGP key that has expired by now is refused in every
//! path (the library, `KeysFromSecret` in the fleet, the reconcile and
//! verify examples), whatever time the signature claims: the signer chooses
//! that time (`gpg --faked-system-time`). Keys are made by gpg, commits
//! signed by git, and `git verify-commit` is the oracle.

#[path = "git_support/mod.rs"]
mod git_support;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, KeysFromSecret, NoEvents, SourceBinding, VirtualClock,
};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{GitRef, GitSource, Source};
use driftless::verify::{OpenPgpVerifier, Verifier, VerifyError, VerifyMode};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use git_support::*;
use support::{run_example, stderr, stdout};

/// 2020-01-01: the expired key is made then.
const MADE: i64 = 1_577_836_800;
/// 2020-06-01: the time the signer claims (and fakes for gpg).
const SIGNED: i64 = 1_590_969_600;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Env {
    s: Scratch,
    repo: PathBuf,
    sign_home: PathBuf,
}

impl Env {
    fn new() -> Self {
        require("git");
        let s = Scratch::new();
        let repo = s.init_repo("fleet");
        let sign_home = gpg_home(&s.path().join("gnupg-sign"));
        Env { s, repo, sign_home }
    }

    /// A key made at `made` (with gpg's clock faked) that expires at the
    /// end of `expires` (gpg's `YYYY-MM-DD` or a period such as `1d`).
    fn genkey(&self, uid: &str, made: i64, expires: &str) -> String {
        gpg(
            &self.sign_home,
            &[
                "--faked-system-time",
                &format!("{made}!"),
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign",
                expires,
            ],
        );
        gpg_fingerprint(&self.sign_home, uid)
    }

    fn export(&self, fpr: &str) -> String {
        gpg(&self.sign_home, &["--armor", "--export", fpr])
    }

    /// Writes a one-object cluster folder and commits it, signed by `key`
    /// with gpg's clock (and the commit's dates) at `at`.
    fn commit(&self, branch: &str, key: &str, at: i64) -> String {
        let home = self.s.home();
        git(&self.repo, &home, &["checkout", "-q", "-B", branch]);
        let dir = self.repo.join("clusters/production");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cm.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {branch}\n  namespace: default\n"),
        )
        .unwrap();
        git(&self.repo, &home, &["add", "-A"]);
        let wrapper = gpg_at(self.s.path(), &format!("gpg-at-{at}"), at);
        let date = format!("{at} +0000");
        let out = git_env(
            &self.repo,
            &home,
            &[
                ("GNUPGHOME", self.sign_home.to_str().unwrap()),
                ("GIT_COMMITTER_DATE", &date),
                ("GIT_AUTHOR_DATE", &date),
            ],
            &[
                "-c",
                &format!("gpg.program={}", wrapper.display()),
                "-c",
                &format!("user.signingkey={key}"),
                "commit",
                "-q",
                "-S",
                "-m",
                branch,
            ],
        );
        assert!(
            out.status.success(),
            "commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(&self.repo, &home, &["rev-parse", "HEAD"])
    }

    /// A folder holding `armored` (for `--openpgp-keys`) and a GNUPGHOME
    /// with it imported (for git).
    fn trust(&self, name: &str, armored: &str) -> (PathBuf, PathBuf) {
        let dir = self.s.path().join(format!("{name}-keys"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key.asc"), armored).unwrap();
        let home = gpg_home(&self.s.path().join(format!("{name}-gnupg")));
        gpg(&home, &["--import", dir.join("key.asc").to_str().unwrap()]);
        (dir, home)
    }

    /// The oracle: `git verify-commit` with `home`'s keys, gpg's clock at
    /// `at` (None: the real time).
    fn git_verifies(&self, home: &Path, commit: &str, at: Option<i64>) -> bool {
        let mut args: Vec<String> = Vec::new();
        if let Some(at) = at {
            let wrapper = gpg_at(self.s.path(), &format!("gpg-verify-at-{at}"), at);
            args.extend(["-c".into(), format!("gpg.program={}", wrapper.display())]);
        }
        args.extend(["verify-commit".into(), commit.into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        git_env(
            &self.repo,
            &self.s.home(),
            &[("GNUPGHOME", home.to_str().unwrap())],
            &refs,
        )
        .status
        .success()
    }

    fn url(&self) -> String {
        format!("file://{}", self.repo.display())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        gpg_stop_agent(&self.sign_home);
    }
}

fn configmap(name: &str) -> ObjectId {
    ObjectId::new("", "ConfigMap", "default", name)
}

#[test]
fn the_reconcile_example_refuses_a_key_that_expired_before_now() {
    let e = Env::new();
    let fpr = e.genkey("Old <old@example.org>", MADE, "2020-12-31");
    let (keys, home) = e.trust("old", &e.export(&fpr));
    let commit = e.commit("main", &fpr, SIGNED);
    // gpg (and so git) refuses: EXPKEYSIG, the key has expired by now
    assert!(!e.git_verifies(&home, &commit, None));
    // ... though it was valid at the time the signature claims
    assert!(e.git_verifies(&home, &commit, Some(SIGNED + 86_400)));

    let url = e.url();
    let verify = run_example(
        "verify",
        &[
            "--repo",
            &url,
            "--ref",
            "main",
            "--openpgp-keys",
            keys.to_str().unwrap(),
        ],
    );
    assert_ne!(verify.status.code(), Some(0), "{}", stdout(&verify));
    assert!(stderr(&verify).contains("not valid"), "{}", stderr(&verify));

    let state = e.s.path().join("state");
    let out = run_example(
        "reconcile",
        &[
            "--repo",
            &url,
            "--path",
            "clusters/production",
            "--state",
            state.to_str().unwrap(),
            "--openpgp-keys",
            keys.to_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "is signed by key {fpr}, which is not valid: the key expired at"
        )),
        "{}",
        stderr(&out)
    );
    let cluster = MemoryCluster::open(&state).unwrap();
    assert!(block_on(cluster.get(&configmap("main"))).unwrap().is_none());
}

fn fleet(source: &dyn Source, cluster: &MemoryCluster, at: i64) -> FleetReport {
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let options = FleetOptions {
        require_signed: true,
        ..FleetOptions::default()
    };
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source,
            reference: GitRef::branch("main"),
            verifier: None,
        },
    );
    let keys = KeysFromSecret::new();
    let clock = VirtualClock::new(Duration::from_secs(at as u64));
    let ctx = FleetContext {
        sources,
        verifiers: Some(&keys),
        renderer: &renderer,
        applier: cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    block_on(ctx.reconcile(&options)).unwrap()
}

/// A cluster where the GitRepository verifies with the Secret holding
/// `armored`, as after `flux bootstrap`.
fn bootstrapped(armored: &str) -> MemoryCluster {
    let cluster = MemoryCluster::new();
    let apply = |v: serde_json::Value| {
        block_on(cluster.apply(&Object::new(v).unwrap(), &ApplyOptions::default())).unwrap();
    };
    apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "flux-system"}}));
    apply(
        serde_json::json!({"apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {"interval": "1m", "url": "ssh://git@example.org/fleet",
            "ref": {"branch": "main"},
            "verify": {"mode": "HEAD", "secretRef": {"name": "pgp-keys"}}}}),
    );
    apply(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pgp-keys", "namespace": "flux-system"},
        "data": {"key.asc": base64::engine::general_purpose::STANDARD.encode(armored)}}));
    cluster
}

#[test]
fn keys_from_a_secret_are_checked_at_the_fleet_clock() {
    let e = Env::new();
    let fpr = e.genkey("Old <old@example.org>", MADE, "2020-12-31");
    let armored = e.export(&fpr);
    let (_, home) = e.trust("old", &armored);
    let commit = e.commit("main", &fpr, SIGNED);
    assert!(!e.git_verifies(&home, &commit, None));
    let source = GitSource::new(&e.url()).unwrap();

    // the fleet's clock is after the expiry: refused, nothing applied
    let cluster = bootstrapped(&armored);
    let report = fleet(&source, &cluster, 1_700_000_000);
    let root = report.get("flux-system/flux-system").unwrap();
    assert_eq!(root.reason, "ArtifactFailed");
    assert!(
        root.message.contains("the key expired at") && root.message.contains(&fpr),
        "{}",
        root.message
    );
    assert!(block_on(cluster.get(&configmap("main"))).unwrap().is_none());

    // at a time the key was valid, as gpg says then, the same commit is
    // applied: the clock is what decides
    assert!(e.git_verifies(&home, &commit, Some(SIGNED + 86_400)));
    let cluster = bootstrapped(&armored);
    let report = fleet(&source, &cluster, SIGNED + 86_400);
    assert!(
        report.all_ready(),
        "{}",
        report.get("flux-system/flux-system").unwrap().message
    );
    assert!(block_on(cluster.get(&configmap("main"))).unwrap().is_some());
}

#[test]
fn a_long_lived_verifier_sees_its_keys_expire() {
    // a key made now that expires in a day; one verifier, built once, with
    // the host's clock read at each check
    let e = Env::new();
    let made = now();
    let fpr = e.genkey("Day <day@example.org>", made, "1d");
    let armored = e.export(&fpr);
    let (_, home) = e.trust("day", &armored);
    let commit = e.commit("main", &fpr, made);
    let snapshot = block_on(
        GitSource::new(&e.url())
            .unwrap()
            .fetch(&GitRef::branch("main")),
    )
    .unwrap();

    let time = Arc::new(AtomicI64::new(made));
    let clock = {
        let time = time.clone();
        move || time.load(Ordering::SeqCst)
    };
    let verifier =
        OpenPgpVerifier::from_armored(&[("day.asc", armored.as_bytes())], VerifyMode::Head, clock)
            .unwrap();
    for (at, git_accepts) in [(made + 60, true), (made + 3 * 86_400, false)] {
        assert_eq!(e.git_verifies(&home, &commit, Some(at)), git_accepts);
        time.store(at, Ordering::SeqCst);
        match verifier.verify(&snapshot) {
            Ok(v) => {
                assert!(git_accepts, "accepted at {at}");
                assert_eq!(v.fingerprint, fpr);
            }
            Err(VerifyError::ExpiredKey { fingerprint, .. }) => {
                assert!(!git_accepts, "refused at {at}");
                assert_eq!(fingerprint, fpr);
            }
            Err(other) => panic!("{other}"),
        }
    }
}
