//! OpenPgpVerifier against `git verify-commit` / `git verify-tag` with the
//! same trusted keys imported into a GNUPGHOME, for keys made by
//! `gpg --batch` and commits signed by git.
#![cfg(all(feature = "git", feature = "openpgp"))]

mod git_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use driftless::source::{GitRef, GitSource, Snapshot, Source};
use driftless::verify::{OpenPgpVerifier, Verifier, VerifyError, VerifyMode};
use git_support::*;

struct Env {
    s: Scratch,
    repo: PathBuf,
    sign_home: PathBuf,
    /// The faked-time gpg wrapper for the expired key.
    past_gpg: PathBuf,
}

const PAST: &str = "1590969600"; // 2020-06-01T00:00:00Z

impl Env {
    fn new() -> Self {
        require("git");
        require("gpg");
        let s = Scratch::new();
        let repo = s.init_repo("repo");
        let sign_home = s.path().join("gnupg-sign");
        std::fs::create_dir_all(&sign_home).unwrap();
        let mut perm = std::fs::metadata(&sign_home).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o700);
        std::fs::set_permissions(&sign_home, perm).unwrap();
        let past_gpg = s.path().join("gpg-past");
        std::fs::write(
            &past_gpg,
            format!(
                "#!/bin/sh\nexec {} --faked-system-time {PAST}! \"$@\"\n",
                require("gpg").display()
            ),
        )
        .unwrap();
        let mut perm = std::fs::metadata(&past_gpg).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&past_gpg, perm).unwrap();
        Env {
            s,
            repo,
            sign_home,
            past_gpg,
        }
    }

    fn genkey(&self, uid: &str, algo: &str) -> String {
        gpg(
            &self.sign_home,
            &["--quick-gen-key", uid, algo, "sign", "never"],
        );
        gpg_fingerprint(&self.sign_home, uid)
    }

    /// A key created in 2020 that expired at the end of 2020.
    fn genkey_expired(&self, uid: &str) -> String {
        gpg(
            &self.sign_home,
            &[
                "--faked-system-time",
                "1577836800!",
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign",
                "2020-12-31",
            ],
        );
        gpg_fingerprint(&self.sign_home, uid)
    }

    fn export(&self, fpr: &str) -> Vec<u8> {
        gpg(&self.sign_home, &["--armor", "--export", fpr]).into_bytes()
    }

    fn commit(&self, branch: &str, key: Option<&str>, past: bool) -> String {
        let home = self.s.home();
        git(&self.repo, &home, &["checkout", "-q", "-B", branch]);
        std::fs::write(self.repo.join(format!("{branch}.yaml")), "a: 1\n").unwrap();
        git(&self.repo, &home, &["add", "-A"]);
        let gnupg = self.sign_home.to_str().unwrap().to_string();
        let date = if past {
            format!("{PAST} +0000")
        } else {
            "1700000000 +0000".into()
        };
        let mut args: Vec<String> = vec![];
        if past {
            args.extend([
                "-c".into(),
                format!("gpg.program={}", self.past_gpg.display()),
            ]);
        }
        match key {
            Some(k) => args.extend([
                "-c".into(),
                format!("user.signingkey={k}"),
                "commit".into(),
                "-q".into(),
                "-S".into(),
            ]),
            None => args.extend(["commit".into(), "-q".into()]),
        }
        args.extend(["-m".into(), branch.into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = git_env(
            &self.repo,
            &home,
            &[
                ("GNUPGHOME", &gnupg),
                ("GIT_COMMITTER_DATE", &date),
                ("GIT_AUTHOR_DATE", &date),
            ],
            &refs,
        );
        assert!(
            out.status.success(),
            "commit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(&self.repo, &home, &["rev-parse", "HEAD"])
    }

    fn tamper(&self, id: &str, branch: &str) -> String {
        let home = self.s.home();
        let raw = git(&self.repo, &home, &["cat-file", "commit", id]) + "\n";
        let edited = raw.replacen("\n\n", "\n\nTAMPERED ", 1);
        assert!(edited.contains("gpgsig"));
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

    /// A GNUPGHOME holding exactly `keys` (armored), as the trust set for git.
    fn verify_home(&self, name: &str, keys: &[&[u8]]) -> PathBuf {
        let h = self.s.path().join(name);
        std::fs::create_dir_all(&h).unwrap();
        let mut perm = std::fs::metadata(&h).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o700);
        std::fs::set_permissions(&h, perm).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let f = h.join(format!("k{i}.asc"));
            std::fs::write(&f, k).unwrap();
            gpg(&h, &["--import", f.to_str().unwrap()]);
        }
        h
    }

    fn git_verify(&self, home: &Path, what: &str, id: &str) -> bool {
        let out = git_env(
            &self.repo,
            &self.s.home(),
            &[("GNUPGHOME", home.to_str().unwrap())],
            &[what, id],
        );
        out.status.success()
    }

    fn snapshot(&self, r: GitRef) -> Snapshot {
        let src = GitSource::new(self.repo.to_str().unwrap()).unwrap();
        block(src.fetch(&r)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // stop the gpg-agent that signing started for this GNUPGHOME
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.sign_home)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ours(
    keys: &[&[u8]],
    snap: &Snapshot,
    mode: VerifyMode,
) -> Result<(String, String), VerifyError> {
    let named: Vec<(&str, &[u8])> = keys.iter().map(|k| ("key.asc", *k)).collect();
    let v = OpenPgpVerifier::from_armored(&named, mode, now).unwrap();
    v.verify(snap).map(|v| (v.principal, v.fingerprint))
}

#[test]
fn commits_agree_with_git_for_ed25519_and_rsa() {
    let e = Env::new();
    let stranger = e.genkey("Eve <eve@example.org>", "ed25519");
    for (uid, algo) in [
        ("Ada <ada@example.org>", "ed25519"),
        ("Bob <bob@example.org>", "rsa2048"),
    ] {
        let fpr = e.genkey(uid, algo);
        let pubkey = e.export(&fpr);
        let home = e.verify_home(&format!("v-{algo}"), &[&pubkey]);

        let good = e.commit(&format!("good-{algo}"), Some(&fpr), false);
        assert!(
            e.git_verify(&home, "verify-commit", &good),
            "git accepts ({algo})"
        );
        let snap = e.snapshot(GitRef::branch(&format!("good-{algo}")));
        assert_eq!(
            ours(&[&pubkey], &snap, VerifyMode::Head).unwrap(),
            (uid.to_string(), fpr.clone())
        );

        let bad = e.tamper(&good, &format!("tampered-{algo}"));
        assert!(!e.git_verify(&home, "verify-commit", &bad));
        let snap = e.snapshot(GitRef::branch(&format!("tampered-{algo}")));
        assert!(matches!(
            ours(&[&pubkey], &snap, VerifyMode::Head),
            Err(VerifyError::BadSignature { .. })
        ));

        let other = e.commit(&format!("untrusted-{algo}"), Some(&stranger), false);
        assert!(!e.git_verify(&home, "verify-commit", &other));
        let snap = e.snapshot(GitRef::branch(&format!("untrusted-{algo}")));
        assert!(matches!(
            ours(&[&pubkey], &snap, VerifyMode::Head),
            Err(VerifyError::UntrustedKey { .. })
        ));

        let plain = e.commit(&format!("unsigned-{algo}"), None, false);
        assert!(!e.git_verify(&home, "verify-commit", &plain));
        let snap = e.snapshot(GitRef::branch(&format!("unsigned-{algo}")));
        assert!(matches!(
            ours(&[&pubkey], &snap, VerifyMode::Head),
            Err(VerifyError::Unsigned { .. })
        ));
    }
}

#[test]
fn expired_and_revoked_keys_agree_with_git() {
    let e = Env::new();
    // expired: made and used in 2020, expired at the end of 2020
    let old = e.genkey_expired("Old <old@example.org>");
    let old_pub = e.export(&old);
    let home = e.verify_home("v-old", &[&old_pub]);
    let c = e.commit("expired", Some(&old), true);
    assert!(
        !e.git_verify(&home, "verify-commit", &c),
        "gpg reports EXPKEYSIG"
    );
    let snap = e.snapshot(GitRef::branch("expired"));
    assert!(matches!(
        ours(&[&old_pub], &snap, VerifyMode::Head),
        Err(VerifyError::ExpiredKey { .. })
    ));

    // revoked: the key plus its revocation certificate
    let fpr = e.genkey("Rev <rev@example.org>", "ed25519");
    let c = e.commit("revoked", Some(&fpr), false);
    let rev =
        std::fs::read_to_string(e.sign_home.join(format!("openpgp-revocs.d/{fpr}.rev"))).unwrap();
    let rev = rev.replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    );
    let pubkey = e.export(&fpr);
    let home = e.verify_home("v-rev", &[&pubkey, rev.as_bytes()]);
    let revoked_pub = gpg(&home, &["--armor", "--export", &fpr]).into_bytes();
    assert!(
        !e.git_verify(&home, "verify-commit", &c),
        "gpg reports REVKEYSIG"
    );
    let snap = e.snapshot(GitRef::branch("revoked"));
    assert!(matches!(
        ours(&[&revoked_pub], &snap, VerifyMode::Head),
        Err(VerifyError::ExpiredKey { .. })
    ));
    // without the revocation, the same commit verifies for both
    let home2 = e.verify_home("v-rev2", &[&pubkey]);
    assert!(e.git_verify(&home2, "verify-commit", &c));
    assert!(ours(&[&pubkey], &snap, VerifyMode::Head).is_ok());
}

#[test]
fn signed_tags_agree_with_git() {
    let e = Env::new();
    let fpr = e.genkey("Ada <ada@example.org>", "ed25519");
    let pubkey = e.export(&fpr);
    let home = e.verify_home("v", &[&pubkey]);
    e.commit("main2", Some(&fpr), false);
    let out = git_env(
        &e.repo,
        &e.s.home(),
        &[("GNUPGHOME", e.sign_home.to_str().unwrap())],
        &[
            "-c",
            &format!("user.signingkey={fpr}"),
            "tag",
            "-s",
            "-m",
            "release",
            "v1.0.0",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(e.git_verify(&home, "verify-tag", "v1.0.0"));
    let snap = e.snapshot(GitRef {
        tag: Some("v1.0.0".into()),
        ..GitRef::default()
    });
    assert!(ours(&[&pubkey], &snap, VerifyMode::Tag).is_ok());
    assert!(ours(&[&pubkey], &snap, VerifyMode::TagAndHead).is_ok());
}

#[test]
fn keys_are_read_from_a_directory() {
    let e = Env::new();
    let fpr = e.genkey("Ada <ada@example.org>", "ed25519");
    let dir = e.s.path().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ada.asc"), e.export(&fpr)).unwrap();
    assert!(OpenPgpVerifier::from_dir(&dir, VerifyMode::Head, now).is_ok());
    std::fs::write(dir.join("junk.asc"), "not a key").unwrap();
    let err = OpenPgpVerifier::from_dir(&dir, VerifyMode::Head, now).unwrap_err();
    assert!(err.to_string().contains("junk.asc"), "{err}");
}
