//! Image update automation against real repositories and real git.
//!
//! Every test builds its remote with the git CLI, runs the automation, and
//! checks the result with git itself: `git show --numstat`, `git diff`,
//! `git cat-file`, and `git verify-commit` with an allowed-signers file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use driftless::image::automation::{
    Automation, AutomationError, CommitSigner, CommitTime, Outcome, SshSigner,
};
use driftless::image::{resolve, FileTags, ImageObjects, LatestImage, MemoryTags};
use driftless::source::{GitRef, GitSource, Source};
use driftless::verify::{SshVerifier, Verified, VerifyError, VerifyMode};
use futures::executor::block_on;

const BOT_EMAIL: &str = "fluxcdbot@users.noreply.github.com";
const TIME: CommitTime = CommitTime {
    seconds: 1_780_000_000,
    offset_seconds: 0,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        Env { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs git with an isolated configuration.
    fn git(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = Command::new("git")
            .current_dir(cwd)
            .env("HOME", self.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Human")
            .env("GIT_AUTHOR_EMAIL", "human@example.com")
            .env("GIT_COMMITTER_NAME", "Human")
            .env("GIT_COMMITTER_EMAIL", "human@example.com")
            .args(args)
            .output()
            .expect("git must be installed");
        out
    }

    fn git_ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.git(cwd, args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// A bare remote holding `files` on `main`, and its URL.
    fn remote(&self, files: &[(&str, Vec<u8>)]) -> String {
        let work = self.path("seed-work");
        std::fs::create_dir_all(&work).expect("work");
        self.git_ok(&work, &["init", "-q", "-b", "main"]);
        self.git_ok(&work, &["config", "core.autocrlf", "false"]);
        for (p, bytes) in files {
            let f = work.join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(&f, bytes).expect("write");
        }
        self.git_ok(&work, &["add", "-A"]);
        self.git_ok(&work, &["commit", "-q", "-m", "seed"]);
        let remote = self.path("remote.git");
        self.git_ok(
            self.dir.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().expect("utf8"),
                remote.to_str().expect("utf8"),
            ],
        );
        format!("file://{}", remote.display())
    }

    fn remote_dir(&self) -> PathBuf {
        self.path("remote.git")
    }

    fn branch_head(&self, branch: &str) -> Option<String> {
        let out = self.git(
            &self.remote_dir(),
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// An ed25519 key made by ssh-keygen; returns (private key text, public key line).
    fn keygen(&self, name: &str) -> (String, String) {
        let key = self.path(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let private = std::fs::read_to_string(&key).expect("key");
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        (private, public.trim().to_string())
    }

    /// `git verify-commit` with an allowed-signers file holding `pubkey`.
    fn verify_commit(&self, commit: &str, pubkey: &str) -> Output {
        let signers = self.path("allowed_signers");
        std::fs::write(
            &signers,
            format!("{BOT_EMAIL} namespaces=\"git\" {pubkey}\n"),
        )
        .expect("signers");
        self.git(
            &self.remote_dir(),
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("gpg.ssh.allowedSignersFile={}", signers.display()),
                "verify-commit",
                "-v",
                commit,
            ],
        )
    }
}

fn seed_files() -> Vec<(&'static str, Vec<u8>)> {
    let base = fixtures().join("seed/apps/base/app1");
    [
        "deployment.yaml",
        "image-policy.yaml",
        "image-repository.yaml",
        "image-update.yaml",
        "kustomization.yaml",
    ]
    .iter()
    .map(|f| {
        let rel: &'static str = match *f {
            "deployment.yaml" => "apps/base/app1/deployment.yaml",
            "image-policy.yaml" => "apps/base/app1/image-policy.yaml",
            "image-repository.yaml" => "apps/base/app1/image-repository.yaml",
            "image-update.yaml" => "apps/base/app1/image-update.yaml",
            _ => "apps/base/app1/kustomization.yaml",
        };
        (rel, std::fs::read(base.join(f)).expect("fixture"))
    })
    .collect()
}

fn seed_images() -> BTreeMap<String, LatestImage> {
    let objects =
        ImageObjects::read_path(&fixtures().join("seed/apps/base/app1")).expect("policies");
    let tags = FileTags::new(fixtures().join("tags.yaml"));
    let res = block_on(resolve(&objects, &tags)).expect("resolve");
    assert!(res.skipped.is_empty(), "{:?}", res.skipped);
    res.images
}

fn automation(env: &Env, url: &str) -> Automation {
    let mut a = Automation::new(url, "main", "./apps/base/app1", env.path("cache"));
    a.namespace = "flux-system".into();
    a.name = "app1".into();
    a.message_template = "Update app1 to {{range .Changed.Changes}}{{.NewValue}}{{end}}".into();
    a
}

#[test]
fn seed_app1_updates_to_newest_patch_signed_one_line_and_idempotent() {
    let env = Env::new();
    let url = env.remote(&seed_files());
    let main_before = env.branch_head("main").expect("main");
    let images = seed_images();
    assert_eq!(images["flux-system:app1"].tag, "v1.2.7");

    let (private, public) = env.keygen("bot");
    let signer = SshSigner::from_openssh(&private).expect("signer");
    let a = automation(&env, &url);
    let outcome = a
        .run(&images, TIME, Some(&signer as &dyn CommitSigner))
        .expect("run");
    let Outcome::Pushed(pushed) = outcome else {
        panic!("expected a commit, got {outcome:?}");
    };
    assert_eq!(
        pushed.revision,
        format!("flux-image-updates@sha1:{}", pushed.id)
    );
    assert_eq!(pushed.parent, main_before);
    assert_eq!(pushed.changes.len(), 1);
    let ch = &pushed.changes[0];
    assert_eq!(ch.file, "apps/base/app1/deployment.yaml");
    assert_eq!(ch.line, 19);
    assert_eq!(ch.old_value, "ghcr.io/organization/app1:v1.0.0");
    assert_eq!(ch.new_value, "ghcr.io/organization/app1:v1.2.7");
    assert_eq!(ch.setter, "flux-system:app1");
    assert_eq!(ch.object.kind, "Deployment");

    // The remote holds the commit on the push branch; main is untouched.
    assert_eq!(
        env.branch_head("flux-image-updates").as_deref(),
        Some(pushed.id.as_str())
    );
    assert_eq!(
        env.branch_head("main").as_deref(),
        Some(main_before.as_str())
    );

    // git: exactly one line changed in one file.
    let numstat = env.git_ok(
        &env.remote_dir(),
        &["show", "--numstat", "--format=", &pushed.id],
    );
    assert_eq!(numstat.trim(), "1\t1\tapps/base/app1/deployment.yaml");
    let diff = env.git_ok(
        &env.remote_dir(),
        &["diff", "-U0", &main_before, &pushed.id],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            "-          image: ghcr.io/organization/app1:v1.0.0 # {\"$imagepolicy\": \"flux-system:app1\"}",
            "+          image: ghcr.io/organization/app1:v1.2.7 # {\"$imagepolicy\": \"flux-system:app1\"}",
        ]
    );

    // Author, committer and message as configured.
    let meta = env.git_ok(
        &env.remote_dir(),
        &[
            "log",
            "-1",
            "--format=%an <%ae>|%cn <%ce>|%at|%B",
            &pushed.id,
        ],
    );
    assert_eq!(
        meta.trim_end(),
        format!(
            "fluxcdbot <{BOT_EMAIL}>|fluxcdbot <{BOT_EMAIL}>|{}|Update app1 to ghcr.io/organization/app1:v1.2.7",
            TIME.seconds
        )
    );

    // git verify-commit accepts the bot's signature with its key...
    let v = env.verify_commit(&pushed.id, &public);
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert!(v.status.success(), "verify-commit refused: {stderr}");
    assert!(
        stderr.contains(&format!("Good \"git\" signature for {BOT_EMAIL}")),
        "{stderr}"
    );
    // ...and refuses it when the allowed signers hold another key.
    let (_, other) = env.keygen("other");
    let v = env.verify_commit(&pushed.id, &other);
    assert!(
        !v.status.success(),
        "verify-commit must refuse an unknown key"
    );

    // Our own verifier agrees: a fleet whose GitRepository has `verify: head`
    // accepts the bot's commit from the push branch, and refuses it under
    // another trust set.
    let source = GitSource::new(&url).expect("source");
    let snapshot = block_on(source.fetch(&GitRef::branch("flux-image-updates")))
        .expect("fetch the push branch");
    assert_eq!(snapshot.revision.to_string(), pushed.revision);
    let trusted = SshVerifier::from_allowed_signers(
        &format!("{BOT_EMAIL} namespaces=\"git\" {public}\n"),
        "allowed_signers",
        VerifyMode::Head,
    )
    .expect("allowed signers");
    let verified =
        Verified::check(snapshot.clone(), &trusted).expect("our verifier accepts the bot's commit");
    assert_eq!(verified.verdict().principal, BOT_EMAIL);
    assert!(verified.verdict().fingerprint.starts_with("SHA256:"));
    let untrusted = SshVerifier::from_allowed_signers(
        &format!("{BOT_EMAIL} namespaces=\"git\" {other}\n"),
        "allowed_signers",
        VerifyMode::Head,
    )
    .expect("allowed signers");
    assert!(matches!(
        Verified::check(snapshot, &untrusted),
        Err(VerifyError::UntrustedKey { .. })
    ));

    // A second run with the same tags: no commit, no push.
    let again = a
        .run(&images, TIME, Some(&signer as &dyn CommitSigner))
        .expect("second run");
    assert_eq!(
        again,
        Outcome::NoUpdates {
            base: pushed.id.clone()
        }
    );
    assert_eq!(
        env.branch_head("flux-image-updates").as_deref(),
        Some(pushed.id.as_str())
    );
    let count = env.git_ok(
        &env.remote_dir(),
        &["rev-list", "--count", "flux-image-updates"],
    );
    assert_eq!(count.trim(), "2");
}

#[test]
fn filter_tags_orders_timestamps_numerically_and_keeps_crlf_and_comments() {
    let env = Env::new();
    let values: &[u8] = b"# app2 values: CRLF on purpose\r\nimage:\r\n  # the repository, set by the bot\r\n  repository: \"ghcr.io/organization/old-app2\" # {\"$imagepolicy\": \"flux-system:app2:name\"}\r\n  tag: 'main-4f2a1c9-1700000000'   # {\"$imagepolicy\": \"flux-system:app2:tag\"}\r\n  pullPolicy: IfNotPresent # keep me\r\n";
    let untouched: &[u8] =
        b"# no marker here\r\nimage: ghcr.io/organization/app2:main-4f2a1c9-1700000000\r\n";
    let url = env.remote(&[
        ("apps/app2/values.yaml", values.to_vec()),
        ("apps/app2/plain.yaml", untouched.to_vec()),
        (
            "apps/app2/policy.yaml",
            std::fs::read(fixtures().join("app2-policy.yaml")).expect("fixture"),
        ),
    ]);
    let mut objects = ImageObjects::default();
    let text = std::fs::read_to_string(fixtures().join("app2-policy.yaml")).expect("fixture");
    objects.add_file("app2-policy.yaml", &text).expect("policy");
    let tags_text = std::fs::read_to_string(fixtures().join("tags.yaml")).expect("tags");
    let tags = MemoryTags::from_yaml("tags.yaml", &tags_text).expect("tags");
    let res = block_on(resolve(&objects, &tags)).expect("resolve");
    // numerically 1700000500 > 1700000000 > 999; alphabetically "999" would win
    assert_eq!(
        res.images["flux-system:app2"].tag,
        "main-1b2c3d4-1700000500"
    );

    let mut a = Automation::new(&url, "main", "apps/app2", env.path("cache"));
    a.push_branch = "image-updates".into();
    let outcome = a.run(&res.images, TIME, None).expect("run");
    let Outcome::Pushed(pushed) = outcome else {
        panic!("expected a commit, got {outcome:?}");
    };
    assert_eq!(pushed.message, "Update from image update automation");
    assert_eq!(pushed.changes.len(), 2);
    let blob = env.git(
        &env.remote_dir(),
        &[
            "cat-file",
            "blob",
            &format!("{}:apps/app2/values.yaml", pushed.id),
        ],
    );
    let want = String::from_utf8_lossy(values)
        .replace(
            "\"ghcr.io/organization/old-app2\"",
            "\"ghcr.io/organization/app2\"",
        )
        .replace("'main-4f2a1c9-1700000000'", "'main-1b2c3d4-1700000500'");
    assert_eq!(String::from_utf8_lossy(&blob.stdout), want);
    let numstat = env.git_ok(
        &env.remote_dir(),
        &["show", "--numstat", "--format=", &pushed.id],
    );
    assert_eq!(numstat.trim(), "2\t2\tapps/app2/values.yaml");
    // unsigned, since no key was given
    let raw = env.git_ok(&env.remote_dir(), &["cat-file", "commit", &pushed.id]);
    assert!(!raw.contains("gpgsig"));
}

#[test]
fn a_refused_push_leaves_the_remote_untouched_and_says_why() {
    let env = Env::new();
    let url = env.remote(&seed_files());
    let hook = env.remote_dir().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'updates need review: push refused by policy' >&2\nexit 1\n",
    )
    .expect("hook");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .expect("chmod");
    assert!(status.success());
    let a = automation(&env, &url);
    let err = a
        .run(&seed_images(), TIME, None)
        .expect_err("push must fail");
    match &err {
        AutomationError::Push {
            branch, message, ..
        } => {
            assert_eq!(branch, "flux-image-updates");
            assert!(message.contains("push refused by policy"), "{message}");
        }
        other => panic!("expected a push error, got {other}"),
    }
    assert!(err.to_string().contains("remote left unchanged"));
    assert_eq!(env.branch_head("flux-image-updates"), None);
}

#[test]
fn the_reconciled_branch_is_pushed_only_on_request() {
    let env = Env::new();
    let url = env.remote(&seed_files());
    let before = env.branch_head("main").expect("main");
    let mut a = automation(&env, &url);
    a.push_branch = "main".into();
    let err = a.run(&seed_images(), TIME, None).expect_err("must refuse");
    assert!(
        matches!(err, AutomationError::PushToCheckoutBranch { .. }),
        "{err}"
    );
    assert_eq!(env.branch_head("main").as_deref(), Some(before.as_str()));

    a.push_to_checkout_branch = true;
    let Outcome::Pushed(p) = a.run(&seed_images(), TIME, None).expect("run") else {
        panic!("expected a commit");
    };
    assert_eq!(env.branch_head("main").as_deref(), Some(p.id.as_str()));
    assert_eq!(p.revision, format!("main@sha1:{}", p.id));
}

#[test]
fn missing_branch_and_bad_key_are_clear_errors() {
    let env = Env::new();
    let url = env.remote(&seed_files());
    let mut a = automation(&env, &url);
    a.branch = "does-not-exist".into();
    let err = a.run(&seed_images(), TIME, None).expect_err("no branch");
    assert!(
        matches!(err, AutomationError::BranchNotFound { .. }),
        "{err}"
    );

    let e = SshSigner::from_openssh("not a key").expect_err("bad key");
    assert!(e.to_string().starts_with("signing key"), "{e}");
    let key = env.path("rsa");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    let e = SshSigner::from_openssh(&std::fs::read_to_string(&key).expect("key"))
        .expect_err("rsa is refused");
    assert!(e.to_string().contains("ssh-ed25519"), "{e}");
}

#[cfg(feature = "openpgp")]
#[test]
fn openpgp_signed_commits_pass_git_verify_commit() {
    // The seed's command makes gpg's default key (RSA here); ed25519 too.
    // "subkey": a certify-only primary with a signing subkey.
    for algo in ["default", "ed25519", "subkey"] {
        openpgp_case(algo);
    }
}

#[cfg(feature = "openpgp")]
fn openpgp_case(algo: &str) {
    use driftless::image::automation::OpenPgpSigner;
    let env = Env::new();
    let url = env.remote(&seed_files());
    let gnupg = env.path("gnupg");
    std::fs::create_dir_all(&gnupg).expect("gnupg");
    let gpg = |home: &Path, args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--quiet"])
            .args(args)
            .output()
            .expect("gpg must be installed");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let _ = Command::new("chmod").arg("700").arg(&gnupg).status();
    let (key_algo, usage) = match algo {
        "default" => ("default", "default"),
        "subkey" => ("ed25519", "cert"),
        other => (other, "sign"),
    };
    gpg(
        &gnupg,
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("fluxcdbot <{BOT_EMAIL}>"),
            key_algo,
            usage,
            "1y",
        ],
    );
    let mut signing_fpr: Option<String> = None;
    if algo == "subkey" {
        let listing = gpg(&gnupg, &["--with-colons", "--list-keys", BOT_EMAIL]);
        let listing = String::from_utf8_lossy(&listing).to_string();
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| f.len() == 40))
            .expect("fingerprint")
            .to_string();
        gpg(
            &gnupg,
            &[
                "--passphrase",
                "",
                "--quick-add-key",
                &fpr,
                "ed25519",
                "sign",
                "1y",
            ],
        );
        let listing = gpg(&gnupg, &["--with-colons", "--list-keys", BOT_EMAIL]);
        signing_fpr = String::from_utf8_lossy(&listing)
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .filter_map(|l| l.split(':').find(|f| f.len() == 40))
            .nth(1)
            .map(str::to_string);
        assert!(signing_fpr.is_some(), "subkey fingerprint");
    }
    let secret = gpg(&gnupg, &["--armor", "--export-secret-keys", BOT_EMAIL]);
    let signer = OpenPgpSigner::from_armored(&String::from_utf8_lossy(&secret)).expect("signer");

    // gpg refuses signatures older than the key, so sign "now" (the host's clock).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let time = CommitTime {
        seconds: now + 5,
        offset_seconds: 3600,
    };
    let a = automation(&env, &url);
    let Outcome::Pushed(p) = a
        .run(&seed_images(), time, Some(&signer as &dyn CommitSigner))
        .expect("run")
    else {
        panic!("expected a commit");
    };
    let verify = |home: &Path| {
        Command::new("git")
            .current_dir(env.remote_dir())
            .env("HOME", env.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", home)
            .args(["verify-commit", "-v", &p.id])
            .output()
            .expect("git")
    };
    let ok = verify(&gnupg);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(
        ok.status.success(),
        "{algo}: verify-commit refused: {stderr}"
    );
    assert!(
        stderr.contains("Good signature from \"fluxcdbot"),
        "{stderr}"
    );
    if let Some(fpr) = &signing_fpr {
        // made by the signing subkey, not the certify-only primary
        assert!(
            stderr.contains(&format!("using EDDSA key {fpr}")),
            "{stderr}"
        );
    }
    // A keyring without the bot's key refuses it.
    let empty = env.path("gnupg-empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let _ = Command::new("chmod").arg("700").arg(&empty).status();
    assert!(!verify(&empty).status.success());
    for home in [&gnupg, &empty] {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[test]
fn the_seed_image_update_automation_object_drives_a_run() {
    use driftless::image::ImageUpdateAutomation;
    let env = Env::new();
    let url = env.remote(&seed_files());
    let text = std::fs::read_to_string(fixtures().join("seed/apps/base/app1/image-update.yaml"))
        .expect("fixture");
    let obj = ImageUpdateAutomation::from_yaml("image-update.yaml", &text)
        .expect("object")
        .remove(0);
    let objects =
        ImageObjects::read_path(&fixtures().join("seed/apps/base/app1")).expect("policies");
    let tags = FileTags::new(fixtures().join("tags.yaml"));
    let res = block_on(resolve(&obj.in_scope(&objects), &tags)).expect("resolve");

    // The seed's template uses `.NewTag`, which Flux's template data does
    // not have: a clear error, and nothing is pushed.
    let mut a = Automation::from_object(&obj, &url, env.path("cache")).expect("automation");
    assert_eq!(a.push_branch, "flux-image-updates");
    let err = a.run(&res.images, TIME, None).expect_err("template error");
    assert!(
        err.to_string().contains("can't evaluate field NewTag"),
        "{err}"
    );
    assert_eq!(env.branch_head("flux-image-updates"), None);

    // Flux's documented template, and push options reaching the server.
    env.git_ok(
        &env.remote_dir(),
        &["config", "receive.advertisePushOptions", "true"],
    );
    let hook = env.remote_dir().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"options: $GIT_PUSH_OPTION_COUNT $GIT_PUSH_OPTION_0\" > \"$GIT_DIR/push-options.txt\"\n",
    )
    .expect("hook");
    assert!(Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .expect("chmod")
        .success());
    a.push_options.insert("ci.skip".into(), String::new());
    a.message_template = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n  Changes:\n{{- range $_, $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n".into();
    let Outcome::Pushed(p) = a.run(&res.images, TIME, None).expect("run") else {
        panic!("expected a commit");
    };
    let body = env.git_ok(&env.remote_dir(), &["log", "-1", "--format=%B", &p.id]);
    assert_eq!(
        body.trim_end(),
        "Automated image update\n\nAutomation name: flux-system/app1\n\nFiles:\n- apps/base/app1/deployment.yaml\nObjects:\n- Deployment app1\n  Changes:\n    - ghcr.io/organization/app1:v1.0.0 -> ghcr.io/organization/app1:v1.2.7"
    );
    let seen =
        std::fs::read_to_string(env.remote_dir().join("push-options.txt")).expect("hook ran");
    assert_eq!(seen.trim(), "options: 1 ci.skip");
}

#[test]
fn a_push_that_lost_a_race_is_refused_and_the_other_writer_is_kept() {
    let env = Env::new();
    let url = env.remote(&seed_files());
    // history on main, so the shallow cache really is shallow
    let work = env.path("seed-work");
    for i in 0..3 {
        std::fs::write(work.join(format!("notes-{i}.txt")), format!("{i}\n")).expect("write");
        env.git_ok(&work, &["add", "-A"]);
        env.git_ok(&work, &["commit", "-q", "-m", &format!("note {i}")]);
    }
    env.git_ok(
        &work,
        &[
            "push",
            "-q",
            env.remote_dir().to_str().expect("utf8"),
            "main",
        ],
    );
    env.git_ok(
        &work,
        &[
            "push",
            "-q",
            env.remote_dir().to_str().expect("utf8"),
            "main:flux-image-updates",
        ],
    );

    let a = automation(&env, &url);
    let (_, push_head) = a.fetch().expect("fetch");
    let base = push_head.expect("push branch exists");
    let tree = a.read_tree(&base).expect("tree");
    let update = driftless::image::update_tree(&tree, &a.path, &seed_images()).expect("setters");
    assert_eq!(update.changes.len(), 1);
    let id = a
        .write_commit(&base, &update, "bot update", TIME, None)
        .expect("commit");

    // Meanwhile someone else pushes to the push branch.
    std::fs::write(work.join("human.txt"), "review notes\n").expect("write");
    env.git_ok(&work, &["add", "-A"]);
    env.git_ok(&work, &["commit", "-q", "-m", "human"]);
    env.git_ok(
        &work,
        &[
            "push",
            "-q",
            env.remote_dir().to_str().expect("utf8"),
            "HEAD:flux-image-updates",
        ],
    );
    let human = env.branch_head("flux-image-updates").expect("head");

    let err = a.push(&id).expect_err("non-fast-forward");
    assert!(matches!(err, AutomationError::Push { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("rejected"), "{err}");
    assert_eq!(env.branch_head("flux-image-updates"), Some(human.clone()));

    // The next run builds on the other writer's commit and succeeds.
    let Outcome::Pushed(p) = a.run(&seed_images(), TIME, None).expect("retry") else {
        panic!("expected a commit");
    };
    assert_eq!(p.parent, human);
    let shallow = env.git_ok(
        &env.path("cache"),
        &["rev-parse", "--is-shallow-repository"],
    );
    assert_eq!(shallow.trim(), "true");
}
