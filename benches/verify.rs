//! Verify one signed commit (goal: under 1 ms), SSH ed25519 and OpenPGP ed25519.
//! The commit is signed by git with keys made by ssh-keygen and gpg.

#[path = "../tests/git_support/mod.rs"]
mod git_support;

use criterion::{criterion_group, criterion_main, Criterion};
use driftless::source::{GitRef, GitSource, Source};
use driftless::verify::{OpenPgpVerifier, SshVerifier, Verifier, VerifyMode};
use git_support::*;

fn bench(c: &mut Criterion) {
    let s = Scratch::new();
    let repo = s.init_repo("repo");
    let home = s.home();

    // SSH
    let key = s.path().join("k");
    keygen(&key, "ed25519");
    git(&repo, &home, &["config", "gpg.format", "ssh"]);
    std::fs::write(repo.join("a.yaml"), "a: 1\n").unwrap();
    git(&repo, &home, &["add", "-A"]);
    git(
        &repo,
        &home,
        &[
            "-c",
            &format!("user.signingkey={}", key.display()),
            "commit",
            "-q",
            "-S",
            "-m",
            "ssh",
        ],
    );
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = format!(
        "ada@example.org {}\n",
        pubkey
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let src = GitSource::new(repo.to_str().unwrap()).unwrap();
    let snap = block(src.fetch(&GitRef::branch("main"))).unwrap();
    let ssh = SshVerifier::from_allowed_signers(&allowed, "allowed", VerifyMode::Head).unwrap();
    assert!(ssh.verify(&snap).is_ok());
    c.bench_function("verify/ssh-ed25519-commit", |b| {
        b.iter(|| ssh.verify(&snap).unwrap())
    });

    // OpenPGP
    let gnupg = s.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    let gpg = |args: &[&str]| {
        let out = std::process::Command::new(require("gpg"))
            .env("GNUPGHOME", &gnupg)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "Ada <ada@example.org>",
        "ed25519",
        "sign",
        "never",
    ]);
    let armored = gpg(&["--armor", "--export", "ada@example.org"]);
    git(&repo, &home, &["config", "gpg.format", "openpgp"]);
    let out = git_env(
        &repo,
        &home,
        &[("GNUPGHOME", gnupg.to_str().unwrap())],
        &[
            "-c",
            "user.signingkey=ada@example.org",
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            "pgp",
        ],
    );
    assert!(out.status.success());
    let src = GitSource::new(repo.to_str().unwrap()).unwrap();
    let snap = block(src.fetch(&GitRef::branch("main"))).unwrap();
    let pgp =
        OpenPgpVerifier::from_armored(&[("ada.asc", &armored)], VerifyMode::Head, 1_700_000_000)
            .unwrap();
    assert!(pgp.verify(&snap).is_ok());
    c.bench_function("verify/openpgp-ed25519-commit", |b| {
        b.iter(|| pgp.verify(&snap).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
