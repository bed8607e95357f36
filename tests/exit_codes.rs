//! One exit-code contract for every example, checked by running the built
//! example binaries:
//!
//! - 0: success (`diff`: in sync);
//! - 1: the run finished but something is not Ready, `diff` found
//!   differences, `verify` refused the signature;
//! - 2: an error before or outside reconciling (bad flags, an unreadable
//!   repository, state or file, a corrupt state).
//!
//! And output into a pipe whose reader has gone (`… | head`) never panics:
//! the example stops writing and exits with the code of its run.

#[path = "git_support/mod.rs"]
mod git_support;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use git_support::{git, keygen, require, Scratch};
use support::{copy_dir, demo_fleet, demo_tenant_source, edit_file, example, run_example};
use support::{stderr, stdout};

/// Runs an example with a stdout whose reader has already gone, as
/// `example | head` once head has exited: every write fails with EPIPE.
fn run_into_closed_pipe(name: &str, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(example(name))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("the example runs")
}

/// `out` exited with `code`, and did not panic.
#[track_caller]
fn assert_code(out: &Output, code: i32) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn every_example_exits_2_on_a_bad_flag() {
    for name in [
        "reconcile",
        "diff",
        "tree",
        "build",
        "verify",
        "image_update",
        "serve",
    ] {
        let out = run_example(name, &["--no-such-flag"]);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("--no-such-flag"),
            "{name}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn reconcile_exits_0_ready_1_not_ready_2_on_errors() {
    let fleet = demo_fleet();
    let repo = fleet.path().to_str().unwrap();
    let tenant = demo_tenant_source(repo);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let st = state.to_str().unwrap();

    // a path with nothing there: the run finishes, the root is not Ready;
    // the path is named once, and the run leaves no state folder behind
    let out = run_example(
        "reconcile",
        &[
            "--repo",
            repo,
            "--state",
            st,
            &tenant,
            "--path",
            "clusters/nope",
        ],
    );
    assert_code(&out, 1);
    assert!(
        stdout(&out).contains("BuildFailed: clusters/nope: no such file or directory\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        !state.exists(),
        "a run that wrote nothing created the state folder"
    );

    // an error before reconciling: exit 2, and no state folder either
    let out = run_example(
        "reconcile",
        &["--repo", repo, "--state", st, &tenant, "--timeout", "soon"],
    );
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    assert!(!state.exists());
    let out = run_example("reconcile", &["--repo", "/no/such/fleet", "--state", st]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("/no/such/fleet"), "{}", stderr(&out));
    assert!(!state.exists());

    // Ready, printed into a pipe nobody reads: exit 0, no panic
    let out = run_into_closed_pipe("reconcile", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 0);
    assert!(state.join("cluster.yaml").is_file());

    // a Kustomization that is not Ready after a good run: exit 1
    edit_file(
        &fleet.path().join("clusters/production/apps.yaml"),
        "dependsOn:",
        "dependsOn",
    );
    let out = run_example("reconcile", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("clusters/production/apps.yaml"),
        "{}",
        stderr(&out)
    );

    // a corrupt state: exit 2, naming the file
    std::fs::write(state.join("cluster.yaml"), "resourceVersion: [\n").unwrap();
    let out = run_example("reconcile", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("cluster.yaml"), "{}", stderr(&out));
}

#[test]
fn diff_and_tree_exit_with_their_codes_into_a_closed_pipe() {
    let fleet = demo_fleet();
    let repo = fleet.path().to_str().unwrap();
    let tenant = demo_tenant_source(repo);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().to_str().unwrap();

    // no state folder: exit 2 for both
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    assert_code(&run_example("tree", &["--state", missing]), 2);
    assert_code(
        &run_example("diff", &["--repo", repo, "--state", missing, &tenant]),
        2,
    );

    let out = run_example("reconcile", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 0);
    assert_code(&run_into_closed_pipe("tree", &["--state", st]), 0);
    // a Kustomization never reconciled: exit 2
    let out = run_example("tree", &["--state", st, "nope"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("Kustomization/flux-system/nope"),
        "{}",
        stderr(&out)
    );

    // differences, printed into a pipe nobody reads: still exit 1
    edit_file(
        &fleet
            .path()
            .join("apps/overlays/production/app1/deployment-patch.yaml"),
        "replicas: 5",
        "replicas: 4",
    );
    let out = run_example("diff", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 1);
    assert!(
        stdout(&out).contains("► Deployment/apps/app1 drifted"),
        "{}",
        stdout(&out)
    );
    let out = run_into_closed_pipe("diff", &["--repo", repo, "--state", st, &tenant]);
    assert_code(&out, 1);
}

#[test]
fn build_exits_0_or_2_and_names_the_folder() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet/apps/base");
    assert_code(&run_example("build", &[base]), 0);
    assert_code(&run_into_closed_pipe("build", &[base]), 0);

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    let out = run_example("build", &[empty]);
    assert_code(&out, 2);
    assert_eq!(
        stderr(&out),
        format!("error: {empty}: unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory\n")
    );
    let out = run_example("build", &[&format!("{empty}/nope")]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains(&format!("{empty}/nope")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_exits_0_verified_1_refused_2_on_errors_and_reads_main() {
    require("git");
    let s = Scratch::new();
    let repo = s.init_repo("repo");
    git(&repo, &s.home(), &["config", "gpg.format", "ssh"]);
    let key = s.path().join("signer");
    keygen(&key, "ed25519");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let allowed = s.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("signer@example.org {}\n", public.join(" ")),
    )
    .unwrap();
    std::fs::write(repo.join("a.yaml"), "a: 1\n").unwrap();
    git(&repo, &s.home(), &["add", "-A"]);
    let signing_key = format!("user.signingkey={}", key.display());
    git(
        &repo,
        &s.home(),
        &["-c", &signing_key, "commit", "-q", "-S", "-m", "signed"],
    );
    let url = repo.to_str().unwrap();
    let allowed = allowed.to_str().unwrap();
    let cache = s.path().join("cache");
    let cache = cache.to_str().unwrap();
    let args = [
        "--repo",
        url,
        "--allowed-signers",
        allowed,
        "--cache-dir",
        cache,
    ];

    // `--ref` defaults to main, the only branch
    let out = run_into_closed_pipe("verify", &args);
    assert_code(&out, 0);
    let out = run_example("verify", &args);
    assert_code(&out, 0);
    assert!(
        stdout(&out).starts_with("verified main@sha1:"),
        "{}",
        stdout(&out)
    );

    // an unsigned head: fetched, and refused
    git(
        &repo,
        &s.home(),
        &["commit", "-q", "--allow-empty", "-m", "unsigned"],
    );
    let out = run_example("verify", &args);
    assert_code(&out, 1);
    assert!(
        stderr(&out).starts_with("refusing main@sha1:"),
        "{}",
        stderr(&out)
    );

    // no such repository, no such keys file: errors
    let out = run_example(
        "verify",
        &[
            "--repo",
            "/no/such/repo",
            "--allowed-signers",
            allowed,
            "--cache-dir",
            cache,
        ],
    );
    assert_code(&out, 2);
    let out = run_example(
        "verify",
        &[
            "--repo",
            url,
            "--allowed-signers",
            "/no/such/file",
            "--cache-dir",
            cache,
        ],
    );
    assert_code(&out, 2);
    assert!(stderr(&out).contains("/no/such/file"), "{}", stderr(&out));
}

/// A remote holding the image fixture's seed on `main`.
fn image_remote(s: &Scratch) -> String {
    let work = s.init_repo("fleet");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image/seed"),
        &work,
    );
    git(&work, &s.home(), &["add", "-A"]);
    git(&work, &s.home(), &["commit", "-q", "-m", "seed"]);
    let bare = s.path().join("fleet.git");
    git(
        s.path(),
        &s.home(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    format!("file://{}", bare.display())
}

#[test]
fn image_update_exits_2_when_a_policy_chooses_nothing() {
    require("git");
    let s = Scratch::new();
    let remote = image_remote(&s);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image");
    let app1 = fixtures.join("seed/apps/base/app1");
    let policies = s.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::copy(app1.join("image-policy.yaml"), policies.join("policy.yaml")).unwrap();
    std::fs::copy(
        app1.join("image-repository.yaml"),
        policies.join("repo.yaml"),
    )
    .unwrap();
    let tags = fixtures.join("tags.yaml");
    let run = |policies: &Path, tags: &Path| {
        let home = s.home();
        let out = Command::new(example("image_update"))
            .args(["--repo", &remote, "--path", "apps/base/app1"])
            .arg("--policies")
            .arg(policies)
            .arg("--tags")
            .arg(tags)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("the example runs");
        out
    };

    // the good case: 0
    let out = run(&policies, &tags);
    assert_code(&out, 0);

    // the tags file is missing
    let missing = s.path().join("no-tags.yaml");
    let out = run(&policies, &missing);
    assert_code(&out, 2);
    assert!(!stdout(&out).contains("no updates"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("policy flux-system:app1 chose no image")
            && stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );

    // no tag in the policy's range
    let narrow = s.path().join("narrow.yaml");
    std::fs::write(&narrow, "ghcr.io/organization/app1:\n  - v0.1.0\n").unwrap();
    let out = run(&policies, &narrow);
    assert_code(&out, 2);
    assert!(!stdout(&out).contains("no updates"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("flux-system:app1"),
        "{}",
        stderr(&out)
    );

    // the policy's ImageRepository is not there
    std::fs::remove_file(policies.join("repo.yaml")).unwrap();
    let out = run(&policies, &tags);
    assert_code(&out, 2);
    assert!(!stdout(&out).contains("no updates"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("ImageRepository flux-system/app1 not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_and_bench_tree_exit_2_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let kubeconfig = dir.path().join("kc");
    let out = run_example(
        "serve",
        &[
            "--state",
            file.to_str().unwrap(),
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ],
    );
    assert_code(&out, 2);
    assert!(stderr(&out).contains("a-file"), "{}", stderr(&out));

    let tree = dir.path().join("tree");
    let tree = tree.to_str().unwrap();
    let out = run_example("bench_tree", &[tree, "many"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("\"many\""), "{}", stderr(&out));
    assert_code(&run_example("bench_tree", &[tree, "1"]), 0);
    assert!(Path::new(tree).is_dir());
}
