//! SshVerifier against `git verify-commit` / `git verify-tag` with the same
//! allowed-signers file, for keys made by ssh-keygen and commits signed by git.
#![cfg(all(feature = "git", feature = "ssh-verify"))]

mod git_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use driftless::source::{GitRef, GitSource, Snapshot, Source};
use driftless::verify::{SshVerifier, Verifier, VerifyError, VerifyMode};
use git_support::*;

struct Env {
    s: Scratch,
    repo: PathBuf,
}

impl Env {
    fn new() -> Self {
        require("git");
        require("ssh-keygen");
        let s = Scratch::new();
        let repo = s.init_repo("repo");
        git(&repo, &s.home(), &["config", "gpg.format", "ssh"]);
        Env { s, repo }
    }

    fn key(&self, name: &str, kind: &str) -> (PathBuf, String) {
        let p = self.s.path().join(name);
        keygen(&p, kind);
        let pubkey = std::fs::read_to_string(p.with_extension("pub")).unwrap();
        let pubkey = pubkey
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        (p, pubkey)
    }

    /// A commit signed with `key` (or unsigned), on a new branch `branch`.
    fn signed_commit(&self, branch: &str, key: Option<&Path>) -> String {
        let home = self.s.home();
        git(&self.repo, &home, &["checkout", "-q", "-B", branch]);
        std::fs::write(self.repo.join(format!("{branch}.yaml")), "a: 1\n").unwrap();
        git(&self.repo, &home, &["add", "-A"]);
        match key {
            Some(k) => git(
                &self.repo,
                &home,
                &[
                    "-c",
                    &format!("user.signingkey={}", k.display()),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    branch,
                ],
            ),
            None => git(&self.repo, &home, &["commit", "-q", "-m", branch]),
        };
        git(&self.repo, &home, &["rev-parse", "HEAD"])
    }

    /// Rewrites commit `id` with another message, keeping its gpgsig; puts it on `branch`.
    fn tamper(&self, id: &str, branch: &str) -> String {
        let home = self.s.home();
        let raw = git(&self.repo, &home, &["cat-file", "commit", id]) + "\n";
        let edited = raw.replacen("\n\n", "\n\nTAMPERED ", 1);
        assert!(
            edited.contains("gpgsig"),
            "the commit should carry a signature"
        );
        let file = self.s.path().join("tampered");
        std::fs::write(&file, edited).unwrap();
        let new = git(
            &self.repo,
            &home,
            &["hash-object", "-t", "commit", "-w", file.to_str().unwrap()],
        );
        git(
            &self.repo,
            &home,
            &["update-ref", &format!("refs/heads/{branch}"), &new],
        );
        new
    }

    fn git_verify(&self, what: &str, id: &str, allowed: &Path) -> bool {
        git_env(
            &self.repo,
            &self.s.home(),
            &[],
            &[
                "-c",
                &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
                what,
                id,
            ],
        )
        .status
        .success()
    }

    fn snapshot(&self, r: GitRef) -> Snapshot {
        let src = GitSource::new(self.repo.to_str().unwrap()).unwrap();
        block(src.fetch(&r)).unwrap()
    }

    fn allowed(&self, name: &str, lines: &[String]) -> PathBuf {
        let p = self.s.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    }
}

fn verdict(allowed: &Path, snap: &Snapshot, mode: VerifyMode) -> Result<String, VerifyError> {
    let v = SshVerifier::from_file(allowed, mode).unwrap();
    v.verify(snap)
        .map(|v| format!("{} {}", v.principal, v.fingerprint))
}

fn fingerprint(pubfile: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubfile)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn commits_agree_with_git_for_every_key_type() {
    let e = Env::new();
    for kind in ["ed25519", "rsa", "ecdsa"] {
        let (trusted, trusted_pub) = e.key(&format!("trusted-{kind}"), kind);
        let (untrusted, _) = e.key(&format!("untrusted-{kind}"), kind);
        let allowed = e.allowed(
            &format!("allowed-{kind}"),
            &[format!("ada@example.org namespaces=\"git\" {trusted_pub}")],
        );
        let fp = fingerprint(&trusted.with_extension("pub"));

        // good
        let good = e.signed_commit(&format!("good-{kind}"), Some(&trusted));
        assert!(
            e.git_verify("verify-commit", &good, &allowed),
            "git accepts good ({kind})"
        );
        let snap = e.snapshot(GitRef::branch(&format!("good-{kind}")));
        assert_eq!(
            verdict(&allowed, &snap, VerifyMode::Head).unwrap(),
            format!("ada@example.org {fp}"),
            "{kind}"
        );

        // tampered: message edited, gpgsig kept
        let bad = e.tamper(&good, &format!("tampered-{kind}"));
        assert!(
            !e.git_verify("verify-commit", &bad, &allowed),
            "git refuses tampered ({kind})"
        );
        let snap = e.snapshot(GitRef::branch(&format!("tampered-{kind}")));
        assert!(
            matches!(
                verdict(&allowed, &snap, VerifyMode::Head),
                Err(VerifyError::BadSignature { .. })
            ),
            "{kind}"
        );

        // untrusted key
        let other = e.signed_commit(&format!("untrusted-{kind}"), Some(&untrusted));
        assert!(!e.git_verify("verify-commit", &other, &allowed));
        let snap = e.snapshot(GitRef::branch(&format!("untrusted-{kind}")));
        assert!(matches!(
            verdict(&allowed, &snap, VerifyMode::Head),
            Err(VerifyError::UntrustedKey { .. })
        ));
    }
}

#[test]
fn validity_windows_namespaces_and_unsigned_agree_with_git() {
    let e = Env::new();
    let (key, pubkey) = e.key("k", "ed25519");
    let good = e.signed_commit("main2", Some(&key));
    let snap = e.snapshot(GitRef::branch("main2"));
    // committer time is 1700000000 = 2023-11-14T22:13:20Z
    type Expect = Option<fn(&VerifyError) -> bool>;
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "expired",
            format!("ada@example.org valid-before=\"20230101\" {pubkey}"),
            Some(|e| matches!(e, VerifyError::ExpiredKey { .. })),
        ),
        (
            "not-yet-valid",
            format!("ada@example.org valid-after=\"20240101000000Z\" {pubkey}"),
            Some(|e| matches!(e, VerifyError::ExpiredKey { .. })),
        ),
        (
            "in-window",
            format!("ada@example.org valid-after=\"20230101\",valid-before=\"20240101\" {pubkey}"),
            None,
        ),
        (
            "ns-file-only",
            format!("ada@example.org namespaces=\"file\" {pubkey}"),
            Some(|e| matches!(e, VerifyError::UntrustedKey { .. })),
        ),
        (
            "ns-pattern",
            format!("ada@example.org namespaces=\"g*,file\" {pubkey}"),
            None,
        ),
        (
            "wildcard-principal",
            format!("*@example.org {pubkey}"),
            None,
        ),
    ];
    for (name, line, expect_err) in cases {
        let allowed = e.allowed(name, std::slice::from_ref(&line));
        let git_ok = e.git_verify("verify-commit", &good, &allowed);
        let ours = verdict(&allowed, &snap, VerifyMode::Head);
        assert_eq!(ours.is_ok(), git_ok, "{name}: ours {ours:?}, git {git_ok}");
        if let Some(check) = expect_err {
            assert!(check(ours.as_ref().unwrap_err()), "{name}: {ours:?}");
        }
    }

    // unsigned
    let allowed = e.allowed("plain", &[format!("ada@example.org {pubkey}")]);
    let plain = e.signed_commit("unsigned", None);
    assert!(!e.git_verify("verify-commit", &plain, &allowed));
    let snap = e.snapshot(GitRef::branch("unsigned"));
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::Head),
        Err(VerifyError::Unsigned { .. })
    ));

    // a signature made for another namespace, grafted into a commit
    let payload_file = e.s.path().join("payload");
    let raw = git(&e.repo, &e.s.home(), &["cat-file", "commit", &plain]) + "\n";
    std::fs::write(&payload_file, &raw).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(&key)
        .arg(&payload_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = std::fs::read_to_string(payload_file.with_extension("sig")).unwrap();
    let header = format!("gpgsig {}", sig.trim_end().replace('\n', "\n "));
    let (head, msg) = raw.split_once("\n\n").unwrap();
    let grafted = format!("{head}\n{header}\n\n{msg}");
    std::fs::write(e.s.path().join("grafted"), grafted).unwrap();
    let id = git(
        &e.repo,
        &e.s.home(),
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            e.s.path().join("grafted").to_str().unwrap(),
        ],
    );
    git(
        &e.repo,
        &e.s.home(),
        &["update-ref", "refs/heads/wrongns", &id],
    );
    assert!(!e.git_verify("verify-commit", &id, &allowed));
    let snap = e.snapshot(GitRef::branch("wrongns"));
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::Head),
        Err(VerifyError::WrongNamespace { namespace, .. }) if namespace == "file"
    ));
}

#[test]
fn tags_and_modes_agree_with_git() {
    let e = Env::new();
    let (key, pubkey) = e.key("k", "ed25519");
    let allowed = e.allowed("allowed", &[format!("ada@example.org {pubkey}")]);
    let home = e.s.home();
    // unsigned commit, signed tag
    e.signed_commit("rel", None);
    git(
        &e.repo,
        &home,
        &[
            "-c",
            &format!("user.signingkey={}", key.display()),
            "tag",
            "-s",
            "-m",
            "v1",
            "v1.0.0",
        ],
    );
    assert!(e.git_verify("verify-tag", "v1.0.0", &allowed));
    let snap = e.snapshot(GitRef {
        tag: Some("v1.0.0".into()),
        ..GitRef::default()
    });
    assert!(verdict(&allowed, &snap, VerifyMode::Tag).is_ok());
    let head = git(&e.repo, &home, &["rev-parse", "HEAD"]);
    assert!(!e.git_verify("verify-commit", &head, &allowed));
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::Head),
        Err(VerifyError::Unsigned { .. })
    ));
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::TagAndHead),
        Err(VerifyError::Unsigned { what: "commit", .. })
    ));

    // signed commit, signed tag: TagAndHead passes
    e.signed_commit("rel2", Some(&key));
    git(
        &e.repo,
        &home,
        &[
            "-c",
            &format!("user.signingkey={}", key.display()),
            "tag",
            "-s",
            "-m",
            "v2",
            "v2.0.0",
        ],
    );
    let snap = e.snapshot(GitRef {
        semver: Some("^2".into()),
        ..GitRef::default()
    });
    assert!(verdict(&allowed, &snap, VerifyMode::TagAndHead).is_ok());

    // unsigned annotated tag
    git(&e.repo, &home, &["tag", "-a", "-m", "v3", "v3.0.0"]);
    assert!(!e.git_verify("verify-tag", "v3.0.0", &allowed));
    let snap = e.snapshot(GitRef {
        tag: Some("v3.0.0".into()),
        ..GitRef::default()
    });
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::Tag),
        Err(VerifyError::Unsigned { what: "tag", .. })
    ));
    // a branch has no tag to verify in Tag mode
    let snap = e.snapshot(GitRef::branch("rel2"));
    assert!(matches!(
        verdict(&allowed, &snap, VerifyMode::Tag),
        Err(VerifyError::NothingToVerify(_))
    ));
}

#[test]
fn malformed_allowed_signers_names_file_and_line() {
    let e = Env::new();
    let (_, pubkey) = e.key("k", "ed25519");
    let allowed = e.allowed(
        "bad",
        &[
            format!("a@x {pubkey}"),
            format!("b@x bogus-option {pubkey}"),
        ],
    );
    let err = SshVerifier::from_file(&allowed, VerifyMode::Head).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:2", allowed.display())), "{msg}");
}
