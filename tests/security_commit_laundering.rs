//! Issue 17, H9: a signed commit must not launder unsigned ones beneath it.
//!
//! An attacker pushes an unsigned commit (refused by a verifier in mode
//! `Head`); a trusted bot (image automation) then commits, signed, on top
//! of it, and `Head` accepts the new head. Two controls stop it:
//!
//! - `VerifyMode::AllCommitsSinceLastApplied` checks every commit between
//!   the revision applied last and the new head (`git rev-list A..C`);
//! - `Automation::run_verified` (and `image_update --allowed-signers`)
//!   refuses to commit on top of a head the fleet's verifier rejects.
//!
//! Keys are made by ssh-keygen, commits signed by git, and every verdict is
//! compared with `git verify-commit`.
#![cfg(all(feature = "image-automation", feature = "ssh-verify"))]

#[path = "git_support/mod.rs"]
mod git_support;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use driftless::image::automation::{
    Automation, AutomationError, CommitSigner, CommitTime, SshSigner,
};
use driftless::image::LatestImage;
use driftless::source::{
    FetchError, FetchRequest, GitRef, GitSource, Snapshot, Source, SourceError,
};
use driftless::verify::{SshVerifier, Verdict, Verifier, VerifyError, VerifyMode};
use git_support::*;
use support::{run_example, stderr, stdout};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app1\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/org/app1:v1.0.0 # {\"$imagepolicy\": \"flux-system:app1\"}\n";
const BINDING: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: attacker\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n  - kind: User\n    name: mallory\n";

struct Env {
    s: Scratch,
    repo: PathBuf,
    human: PathBuf,
    bot: PathBuf,
    allowed: PathBuf,
}

impl Env {
    fn new() -> Self {
        require("git");
        require("ssh-keygen");
        let s = Scratch::new();
        let repo = s.init_repo("fleet");
        let (human, bot) = (s.path().join("human"), s.path().join("bot"));
        keygen(&human, "ed25519");
        keygen(&bot, "ed25519");
        let line = |who: &str, key: &Path| {
            let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            let public: Vec<&str> = public.split_whitespace().take(2).collect();
            format!("{who} {}\n", public.join(" "))
        };
        let allowed = s.path().join("allowed_signers");
        std::fs::write(
            &allowed,
            line("ada@example.org", &human) + &line("fluxcdbot@example.org", &bot),
        )
        .unwrap();
        git(&repo, &s.home(), &["config", "gpg.format", "ssh"]);
        git(
            &repo,
            &s.home(),
            &[
                "config",
                "gpg.ssh.allowedSignersFile",
                allowed.to_str().unwrap(),
            ],
        );
        Env {
            s,
            repo,
            human,
            bot,
            allowed,
        }
    }

    /// Commits `files` on the checked-out branch, signed with `key` or not.
    fn commit(&self, files: &[(&str, &str)], msg: &str, key: Option<&Path>) -> String {
        for (f, body) in files {
            let p = self.repo.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        self.git(&["add", "-A"]);
        match key {
            Some(k) => self.git(&[
                "-c",
                &format!("user.signingkey={}", k.display()),
                "commit",
                "-q",
                "-S",
                "-m",
                msg,
            ]),
            None => self.git(&["commit", "-q", "-m", msg]),
        };
        self.git(&["rev-parse", "HEAD"])
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.repo, &self.s.home(), args)
    }

    /// `git verify-commit`'s verdict.
    fn git_verifies(&self, commit: &str) -> bool {
        git_env(&self.repo, &self.s.home(), &[], &["verify-commit", commit])
            .status
            .success()
    }

    fn verifier(&self, mode: VerifyMode) -> SshVerifier {
        SshVerifier::from_file(&self.allowed, mode).unwrap()
    }

    fn source(&self) -> GitSource {
        GitSource::new(self.repo.to_str().unwrap())
            .unwrap()
            .with_cache_dir(self.s.path().join("cache"))
    }

    fn fetch(
        &self,
        last_applied: Option<&str>,
        verifier: &dyn Verifier,
    ) -> Result<String, FetchError> {
        let request = FetchRequest::new(GitRef::branch("main"))
            .with_last_applied(last_applied.map(str::to_string));
        block(self.source().fetch_verified(&request, verifier)).map(|v| v.revision.to_string())
    }
}

/// Accepts everything, recording the history it was given.
struct Recording(Mutex<Vec<Vec<String>>>);

impl Verifier for Recording {
    fn verify(&self, snapshot: &Snapshot) -> Result<Verdict, VerifyError> {
        let ids = snapshot
            .history
            .as_ref()
            .map(|h| h.commits.iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default();
        self.0.lock().unwrap().push(ids);
        Ok(Verdict {
            principal: String::new(),
            fingerprint: String::new(),
            mode: None,
        })
    }

    fn needs_history(&self) -> bool {
        true
    }
}

#[test]
fn every_commit_since_the_last_applied_one_must_be_signed() {
    let e = Env::new();
    let applied = e.commit(&[("apps/app.yaml", DEPLOYMENT)], "app", Some(&e.human));
    // the attacker's push, unsigned
    let attack = e.commit(&[("apps/rbac.yaml", BINDING)], "innocent", None);
    // the bot's signed commit on top
    let laundered = e.commit(
        &[("apps/app.yaml", &DEPLOYMENT.replace("v1.0.0", "v1.1.0"))],
        "Update app1",
        Some(&e.bot),
    );
    assert!(e.git_verifies(&applied));
    assert!(!e.git_verifies(&attack));
    assert!(e.git_verifies(&laundered));

    // mode Head (Flux's): the signed head vouches for what is beneath it
    let head = e.fetch(None, &e.verifier(VerifyMode::Head)).unwrap();
    assert_eq!(head, format!("main@sha1:{laundered}"));

    // the new mode lists what `git rev-list applied..head` lists ...
    let recording = Recording(Mutex::new(Vec::new()));
    e.fetch(Some(&applied), &recording).unwrap();
    let rev_list: Vec<String> = e
        .git(&["rev-list", &format!("{applied}..{laundered}")])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(recording.0.lock().unwrap()[0], rev_list);
    assert_eq!(rev_list, [laundered.clone(), attack.clone()]);

    // ... and refuses the unsigned commit among them, as git does
    let all = e.verifier(VerifyMode::AllCommitsSinceLastApplied);
    match e.fetch(Some(&applied), &all) {
        Err(FetchError::Verify(r)) => match r.error {
            VerifyError::Unsigned { what, id } => {
                assert_eq!((what, id.as_str()), ("commit", attack.as_str()))
            }
            other => {
                panic!("expected the attacker's commit to be refused as unsigned, got {other}")
            }
        },
        other => panic!("expected the attacker's commit to be refused, got {other:?}"),
    }
    // a revision as Flux writes it works as well
    match e.fetch(Some(&format!("main@sha1:{applied}")), &all) {
        Err(FetchError::Verify(r)) => assert!(
            matches!(r.error, VerifyError::Unsigned { .. }),
            "{}",
            r.error
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // nothing new since the head: the head alone
    assert_eq!(e.fetch(Some(&laundered), &all).unwrap(), head);
    // nothing applied yet: the head alone (documented)
    assert_eq!(e.fetch(None, &all).unwrap(), head);
    // a last applied commit the history does not hold cannot be trusted
    match e.fetch(Some(&"0".repeat(40)), &all) {
        Err(FetchError::Source(SourceError::RefNotFound(m))) => {
            assert!(m.contains("is not in the history fetched from"), "{m}")
        }
        other => panic!("expected an unknown last applied commit to fail, got {other:?}"),
    }
    // a verifier that needs the history refuses a snapshot without one
    let snap = block(e.source().fetch(&GitRef::branch("main"))).unwrap();
    assert!(matches!(
        all.verify(&snap),
        Err(VerifyError::NothingToVerify(_))
    ));
}

#[test]
fn an_unsigned_commit_merged_by_a_signed_merge_is_refused() {
    let e = Env::new();
    let applied = e.commit(&[("apps/app.yaml", DEPLOYMENT)], "app", Some(&e.human));
    e.git(&["checkout", "-q", "-b", "side"]);
    let side = e.commit(&[("apps/rbac.yaml", BINDING)], "side", None);
    e.git(&["checkout", "-q", "main"]);
    e.commit(
        &[("apps/other.yaml", "a: 1\n")],
        "main work",
        Some(&e.human),
    );
    e.git(&[
        "-c",
        &format!("user.signingkey={}", e.human.display()),
        "merge",
        "-q",
        "-S",
        "--no-ff",
        "-m",
        "merge side",
        "side",
    ]);
    let merge = e.git(&["rev-parse", "HEAD"]);
    assert!(e.git_verifies(&merge) && !e.git_verifies(&side));
    // a first fetch in mode Head leaves a shallow cache; the next one
    // deepens it to list the commits since
    e.fetch(None, &e.verifier(VerifyMode::Head)).unwrap();
    let all = e.verifier(VerifyMode::AllCommitsSinceLastApplied);
    match e.fetch(Some(&applied), &all) {
        Err(FetchError::Verify(r)) => match r.error {
            VerifyError::Unsigned { id, .. } => assert_eq!(id, side),
            other => panic!("expected the merged commit to be refused as unsigned, got {other}"),
        },
        other => panic!("expected the merged unsigned commit to be refused, got {other:?}"),
    }
}

const TIME: CommitTime = CommitTime {
    seconds: 1_780_000_000,
    offset_seconds: 0,
};

fn images() -> BTreeMap<String, LatestImage> {
    BTreeMap::from([(
        "flux-system:app1".to_string(),
        LatestImage {
            name: "ghcr.io/org/app1".into(),
            tag: "v1.1.0".into(),
            digest: None,
        },
    )])
}

#[test]
fn the_bot_does_not_commit_on_top_of_a_head_the_fleet_refuses() {
    let e = Env::new();
    let url = format!("file://{}", e.repo.display());
    e.commit(&[("apps/app.yaml", DEPLOYMENT)], "app", Some(&e.human));
    let attack = e.commit(&[("apps/rbac.yaml", BINDING)], "innocent", None);
    // the remote is a non-bare repository: let pushes update its branch
    e.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
    let bot = SshSigner::from_openssh(&std::fs::read_to_string(&e.bot).unwrap()).unwrap();
    let automation = |cache: &str| {
        let mut a = Automation::new(&url, "main", "apps", e.s.path().join(cache));
        a.push_branch = "main".into();
        a.push_to_checkout_branch = true;
        a.author_email = "fluxcdbot@example.org".into();
        a
    };
    let head = e.verifier(VerifyMode::Head);
    let err = automation("cache-a")
        .run_verified(&images(), TIME, Some(&bot as &dyn CommitSigner), &head)
        .expect_err("an unsigned head");
    match &err {
        AutomationError::UnverifiedBase { commit, reason, .. } => {
            assert_eq!(commit, &attack);
            assert!(matches!(**reason, VerifyError::Unsigned { .. }), "{reason}");
        }
        other => panic!("expected UnverifiedBase, got {other}"),
    }
    assert_eq!(e.git(&["rev-parse", "main"]), attack, "nothing was pushed");

    // the example, with the fleet's keys, refuses too (exit code 2)
    let policies = e.s.path().join("policies.yaml");
    std::fs::write(
        &policies,
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app1\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: app1\n  policy:\n    semver:\n      range: 1.x\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: app1\n  namespace: flux-system\nspec:\n  image: ghcr.io/org/app1\n  interval: 1m\n",
    )
    .unwrap();
    let tags = e.s.path().join("tags.yaml");
    std::fs::write(&tags, "ghcr.io/org/app1:\n  - v1.0.0\n  - v1.1.0\n").unwrap();
    let out = run_example(
        "image_update",
        &[
            "--repo",
            &url,
            "--branch",
            "main",
            "--push-branch",
            "main",
            "--path",
            "apps",
            "--policies",
            policies.to_str().unwrap(),
            "--tags",
            tags.to_str().unwrap(),
            "--signing-key",
            e.bot.to_str().unwrap(),
            "--allowed-signers",
            e.allowed.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("refusing to commit on top of {attack}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(e.git(&["rev-parse", "main"]), attack, "nothing was pushed");

    // once a human signs a fix on top, the bot updates, and git verifies
    // the bot's commit
    e.git(&["rm", "-q", "apps/rbac.yaml"]);
    let fixed = e.commit(&[], "revert", Some(&e.human));
    let outcome = automation("cache-b")
        .run_verified(&images(), TIME, Some(&bot as &dyn CommitSigner), &head)
        .expect("a signed head");
    let pushed = match outcome {
        driftless::image::automation::Outcome::Pushed(p) => p,
        other => panic!("expected a push, got {other:?}"),
    };
    assert_eq!(pushed.parent, fixed);
    assert!(e.git_verifies(&pushed.id));
}

#[test]
fn the_verify_example_checks_every_commit_since_last_applied() {
    let e = Env::new();
    let applied = e.commit(&[("apps/app.yaml", DEPLOYMENT)], "app", Some(&e.human));
    let attack = e.commit(&[("apps/rbac.yaml", BINDING)], "innocent", None);
    let laundered = e.commit(&[("apps/x.yaml", "a: 1\n")], "bot", Some(&e.bot));
    let url = format!("file://{}", e.repo.display());
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "--repo",
            url.as_str(),
            "--ref",
            "main",
            "--allowed-signers",
            e.allowed.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_example("verify", &args)
    };
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!(
        "verified main@sha1:{laundered} signed by fluxcdbot@example.org"
    )));
    let out = verify(&[
        "--mode",
        "all-commits-since-last-applied",
        "--last-applied",
        &applied,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("commit {attack} is not signed")),
        "{}",
        stderr(&out)
    );
    let out = verify(&["--last-applied", &applied]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
}
