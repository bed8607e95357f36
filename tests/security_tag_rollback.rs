//! Semver rollback: someone who may only push refs points a new tag ref
//! (`v1.2.0`) at an old signed annotated tag object (`v1.0.0`). git
//! verifies the signature (`git verify-tag v1.2.0` succeeds: git does not
//! compare the tag's name with the ref's), so a `semver: ">=1.0.0"` source
//! would deploy v1.0.0 believing it v1.2.0. GitSource compares the tag
//! object's `tag` header with the ref name and refuses a mismatch.
#![cfg(all(feature = "git", feature = "ssh-verify"))]

mod git_support;

use std::path::PathBuf;

use driftless::source::{FetchError, FetchRequest, GitRef, GitSource, Source, SourceError};
use driftless::verify::{SshVerifier, VerifyMode};
use git_support::*;

struct Repo {
    s: Scratch,
    repo: PathBuf,
    allowed: String,
}

impl Repo {
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
        let allowed_file = s.path().join("allowed_signers");
        std::fs::write(&allowed_file, &allowed).unwrap();
        for (k, v) in [
            ("gpg.format", "ssh"),
            ("user.signingkey", key.to_str().unwrap()),
            ("gpg.ssh.allowedSignersFile", allowed_file.to_str().unwrap()),
        ] {
            git(&repo, &s.home(), &["config", k, v]);
        }
        Repo { s, repo, allowed }
    }

    fn git(&self, args: &[&str]) -> String {
        git(&self.repo, &self.s.home(), args)
    }

    /// True when `git verify-tag` accepts the tag ref `name`.
    fn git_verifies_tag(&self, name: &str) -> bool {
        git_env(&self.repo, &self.s.home(), &[], &["verify-tag", name])
            .status
            .success()
    }

    fn source(&self) -> GitSource {
        GitSource::new(self.repo.to_str().unwrap()).unwrap()
    }

    fn fetch(&self, reference: GitRef) -> Result<String, FetchError> {
        let v =
            SshVerifier::from_allowed_signers(&self.allowed, "allowed_signers", VerifyMode::Tag)
                .unwrap();
        block(
            self.source()
                .fetch_verified(&FetchRequest::new(reference), &v),
        )
        .map(|s| {
            format!(
                "{} {}",
                s.revision,
                String::from_utf8_lossy(s.tree.read("app.yaml").unwrap())
            )
        })
    }
}

fn semver(range: &str) -> GitRef {
    GitRef {
        semver: Some(range.into()),
        ..GitRef::default()
    }
}

fn tag(name: &str) -> GitRef {
    GitRef {
        tag: Some(name.into()),
        ..GitRef::default()
    }
}

#[test]
fn a_tag_ref_moved_onto_an_older_signed_tag_is_refused() {
    let r = Repo::new();
    let s = &r.s;
    let old = s.commit(&r.repo, &[("app.yaml", "version: 1.0.0\n")], "v1.0.0");
    r.git(&["tag", "-s", "-m", "release 1.0.0", "v1.0.0"]);
    s.commit(&r.repo, &[("app.yaml", "version: 1.1.0\n")], "v1.1.0");
    r.git(&["tag", "-s", "-m", "release 1.1.0", "v1.1.0"]);
    assert!(r.git_verifies_tag("v1.0.0") && r.git_verifies_tag("v1.1.0"));

    // an honest repository: the highest version, verified
    let got = r.fetch(semver(">=1.0.0")).unwrap();
    assert!(got.starts_with("v1.1.0@sha1:"), "{got}");
    assert!(got.ends_with("version: 1.1.0\n"), "{got}");

    // the push-only attacker: refs/tags/v1.2.0 -> the tag object of v1.0.0
    let old_tag = r.git(&["rev-parse", "refs/tags/v1.0.0"]);
    assert_ne!(old_tag, old, "v1.0.0 is an annotated tag object");
    r.git(&["update-ref", "refs/tags/v1.2.0", &old_tag]);
    // git verifies it: the signature is good, and git does not compare names
    assert!(r.git_verifies_tag("v1.2.0"));
    assert_eq!(
        r.git(&["cat-file", "-p", "refs/tags/v1.2.0"])
            .lines()
            .find(|l| l.starts_with("tag ")),
        Some("tag v1.0.0")
    );

    let refused = |reference: GitRef| match r.fetch(reference) {
        Err(FetchError::Source(SourceError::Invalid(m))) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let expected = format!(
        "ref refs/tags/v1.2.0 of file://{} points to annotated tag {old_tag}, whose tag header names \"v1.0.0\": refusing a tag ref moved onto another tag's object",
        r.repo.display()
    );
    assert_eq!(refused(semver(">=1.0.0")), expected);
    assert_eq!(refused(tag("v1.2.0")), expected);
    assert_eq!(
        refused(GitRef {
            name: Some("refs/tags/v1.2.0".into()),
            ..GitRef::default()
        }),
        expected
    );
    // the unverified fetch refuses it too
    let err = block(r.source().fetch(&tag("v1.2.0"))).unwrap_err();
    assert_eq!(err.to_string(), format!("invalid source: {expected}"));

    // the genuine tags still verify
    let got = r.fetch(tag("v1.0.0")).unwrap();
    assert!(got.ends_with("version: 1.0.0\n"), "{got}");
    let got = r.fetch(semver("~1.1")).unwrap();
    assert!(got.ends_with("version: 1.1.0\n"), "{got}");
}
