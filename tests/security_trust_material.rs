//! Issue 17, C1: trust material (verification keys, and the Secret that
//! holds them) comes only from the host or from objects live in the cluster
//! before a revision is verified, never from the revision being verified.
//!
//! Every repository here is made with the git CLI and signed with keys made
//! by ssh-keygen; `git verify-commit` with the same allowed signers is the
//! oracle for who signed what.

#[path = "git_support/mod.rs"]
mod git_support;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, KeysFromSecret, NoEvents, SourceBinding, VirtualClock,
};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{GitRef, GitSource, Snapshot, Source, SourceError};
use driftless::verify::{SshVerifier, Verifier, VerifyMode};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use git_support::{git, git_cmd, keygen, Scratch};
use support::{run_example, stderr, stdout};

const ROOT: &str = "flux-system/flux-system";

/// Who signs a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signer {
    Trusted,
    Attacker,
    Unsigned,
}

/// Which Secret the GitRepository in the commit names in `spec.verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RenderedVerify {
    None,
    /// `git-keys`, the name of the real verification Secret.
    RealName,
    /// `attacker-keys`, a Secret only the commit holds.
    OwnName,
}

/// The GitRepository live in the cluster before the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiveRepository {
    Absent,
    WithoutVerify,
    /// `spec.verify.secretRef: git-keys`.
    VerifiesWithRealKeys,
    /// `spec.verify.secretRef: attacker-keys` (a Secret that is not live).
    VerifiesWithMissingSecret,
}

struct Keys {
    scratch: Scratch,
    trusted: PathBuf,
    attacker: PathBuf,
    /// allowed_signers trusting the trusted key.
    trusted_signers: String,
    /// allowed_signers trusting the attacker's key.
    attacker_signers: String,
}

fn signers_line(key: &Path) -> String {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut parts = public.split_whitespace();
    format!(
        "ada@example.org namespaces=\"git\" {} {}\n",
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

impl Keys {
    fn new() -> Self {
        let scratch = Scratch::new();
        let trusted = scratch.path().join("trusted");
        keygen(&trusted, "ed25519");
        let attacker = scratch.path().join("attacker");
        keygen(&attacker, "ed25519");
        Keys {
            trusted_signers: signers_line(&trusted),
            attacker_signers: signers_line(&attacker),
            scratch,
            trusted,
            attacker,
        }
    }

    fn allowed_signers_file(&self) -> PathBuf {
        let f = self.scratch.path().join("allowed_signers");
        std::fs::write(&f, &self.trusted_signers).unwrap();
        f
    }

    /// The oracle: does `git verify-commit` accept `commit` with the
    /// trusted allowed signers?
    fn git_verifies(&self, repo: &Path, commit: &str) -> bool {
        git_cmd(repo, &self.scratch.home())
            .args([
                "-c",
                &format!(
                    "gpg.ssh.allowedSignersFile={}",
                    self.allowed_signers_file().display()
                ),
                "verify-commit",
                commit,
            ])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Commits everything in `repo` on a new branch `branch`.
    fn commit(&self, repo: &Path, branch: &str, signer: Signer) -> String {
        let home = self.scratch.home();
        git(repo, &home, &["checkout", "-q", "-B", branch]);
        git(repo, &home, &["add", "-A"]);
        let mut args: Vec<String> = Vec::new();
        let key = match signer {
            Signer::Trusted => Some(&self.trusted),
            Signer::Attacker => Some(&self.attacker),
            Signer::Unsigned => None,
        };
        if let Some(k) = key {
            args.extend([
                "-c".into(),
                "gpg.format=ssh".into(),
                "-c".into(),
                format!("user.signingkey={}", k.display()),
            ]);
        }
        args.extend(["commit", "-q", "--allow-empty", "-m", branch].map(String::from));
        if key.is_some() {
            args.push("-S".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        git(repo, &home, &refs);
        git(repo, &home, &["rev-parse", "HEAD"])
    }
}

fn git_repository(verify_secret: Option<&str>, branch: &str) -> String {
    let verify = match verify_secret {
        Some(s) => format!("  verify:\n    mode: HEAD\n    secretRef:\n      name: {s}\n"),
        None => String::new(),
    };
    format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 1m\n  ref:\n    branch: {branch}\n  url: ssh://git@example.org/fleet\n{verify}"
    )
}

fn secret(name: &str, allowed_signers: &str) -> Object {
    Object::new(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "flux-system"},
        "data": {"allowed_signers":
            base64::engine::general_purpose::STANDARD.encode(allowed_signers)},
    }))
    .unwrap()
}

/// Writes the attacker's cluster folder: the GitRepository, a `kind: List`
/// carrying Secrets with the attacker's allowed signers under both names,
/// and the payload (a ClusterRoleBinding to cluster-admin).
fn write_tree(repo: &Path, verify: RenderedVerify, attacker_signers: &str) {
    let dir = repo.join("clusters/production");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = match verify {
        RenderedVerify::None => None,
        RenderedVerify::RealName => Some("git-keys"),
        RenderedVerify::OwnName => Some("attacker-keys"),
    };
    std::fs::write(dir.join("repo.yaml"), git_repository(name, "main")).unwrap();
    let items: Vec<serde_json::Value> = ["git-keys", "attacker-keys"]
        .iter()
        .map(|n| secret(n, attacker_signers).into_value())
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(dir.join("keys.yaml"), serde_json::to_string(&list).unwrap()).unwrap();
    std::fs::write(
        dir.join("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [ns.yaml, repo.yaml, keys.yaml, crb.yaml]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("crb.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: take-over\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: mallory}]\n",
    )
    .unwrap();
}

fn crb() -> ObjectId {
    ObjectId::new(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "",
        "take-over",
    )
}

fn live_repository(cluster: &MemoryCluster, live: LiveRepository, branch: &str) {
    let verify = match live {
        LiveRepository::Absent => return,
        LiveRepository::WithoutVerify => None,
        LiveRepository::VerifiesWithRealKeys => Some("git-keys"),
        LiveRepository::VerifiesWithMissingSecret => Some("attacker-keys"),
    };
    let apply = |o: &Object| block_on(cluster.apply(o, &ApplyOptions::default())).unwrap();
    apply(
        &Object::new(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
        )
        .unwrap(),
    );
    let text = git_repository(verify, branch);
    let value: serde_json::Value = driftless::yaml::from_str("repo.yaml", &text).unwrap();
    apply(&Object::new(value).unwrap());
}

struct Case<'a> {
    source: &'a GitSource,
    cluster: &'a MemoryCluster,
    host_keys: Option<&'a dyn Verifier>,
    require_signed: bool,
}

fn reconcile(case: &Case<'_>) -> FleetReport {
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let options = FleetOptions {
        require_signed: case.require_signed,
        ..FleetOptions::default()
    };
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source: case.source,
            reference: GitRef::branch("main"),
            verifier: case.host_keys,
        },
    );
    let keys = KeysFromSecret::new();
    let clock = VirtualClock::new(Duration::from_secs(1_700_000_000));
    let ctx = FleetContext {
        sources,
        verifiers: Some(&keys),
        renderer: &renderer,
        applier: case.cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    block_on(ctx.reconcile(&options)).unwrap()
}

fn root(report: &FleetReport) -> &driftless::fleet::KustomizationResult {
    report.get(ROOT).expect("a result for the root")
}

#[test]
fn a_first_run_does_not_trust_keys_its_own_commit_supplies() {
    // the repro: a commit signed by the attacker's key carries a
    // GitRepository whose verify names `git-keys`, and a `kind: List`
    // with Secret `git-keys` holding the attacker's allowed signers
    let keys = Keys::new();
    let repo = keys.scratch.init_repo("fleet");
    write_tree(&repo, RenderedVerify::RealName, &keys.attacker_signers);
    let commit = keys.commit(&repo, "main", Signer::Attacker);
    assert!(!keys.git_verifies(&repo, &commit), "git refuses the commit");
    let url = format!("file://{}", repo.display());

    // the reconcile example, as in the report (plaintext Secrets allowed
    // where the commit keeps them, so only the trust rule stands between
    // the commit and the cluster)
    let state = keys.scratch.path().join("state");
    let out = run_example(
        "reconcile",
        &[
            "--repo",
            &url,
            "--path",
            "clusters/production",
            "--state",
            state.to_str().unwrap(),
            "--allow-plaintext-secrets",
            "clusters/production",
        ],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("refusing to reconcile unverified revision")
            && stderr(&out).contains("no trusted keys"),
        "{}",
        stderr(&out)
    );
    let cluster = MemoryCluster::open(&state).unwrap();
    assert!(block_on(cluster.get(&crb())).unwrap().is_none());
    assert!(
        block_on(cluster.get(&ObjectId::new("", "Secret", "flux-system", "git-keys")))
            .unwrap()
            .is_none()
    );

    // the library, reconciling unverified revisions as Flux does: the
    // commit's own spec.verify demands a check it cannot configure
    let cluster = MemoryCluster::new();
    let source = GitSource::new(&url).unwrap();
    let report = reconcile(&Case {
        source: &source,
        cluster: &cluster,
        host_keys: None,
        require_signed: false,
    });
    let r = root(&report);
    assert_eq!(r.reason, "ArtifactFailed");
    assert!(
        r.message.contains("Secret/flux-system/git-keys")
            && r.message
                .contains("a revision cannot choose the keys that verify it"),
        "{}",
        r.message
    );
    assert!(block_on(cluster.get(&crb())).unwrap().is_none());
}

#[test]
fn a_commit_cannot_point_verification_at_a_secret_of_its_own() {
    // the variant: the real Secret is live, the commit names its own
    let keys = Keys::new();
    let repo = keys.scratch.init_repo("fleet");
    write_tree(&repo, RenderedVerify::OwnName, &keys.attacker_signers);
    let commit = keys.commit(&repo, "main", Signer::Attacker);
    assert!(!keys.git_verifies(&repo, &commit));
    let source = GitSource::new(&format!("file://{}", repo.display())).unwrap();
    for require_signed in [false, true] {
        let cluster = MemoryCluster::new();
        block_on(cluster.apply(
            &secret("git-keys", &keys.trusted_signers),
            &ApplyOptions::default(),
        ))
        .unwrap();
        let report = reconcile(&Case {
            source: &source,
            cluster: &cluster,
            host_keys: None,
            require_signed,
        });
        let r = root(&report);
        assert_eq!(r.reason, "ArtifactFailed", "{}", r.message);
        assert!(block_on(cluster.get(&crb())).unwrap().is_none());
        assert!(block_on(cluster.get(&ObjectId::new(
            "",
            "Secret",
            "flux-system",
            "attacker-keys"
        )))
        .unwrap()
        .is_none());
    }
}

#[test]
fn a_verify_secret_that_is_not_live_fails_closed_naming_it() {
    // the live GitRepository asks for `git-keys`, which is not in the
    // cluster; the commit carries a Secret of that name
    let keys = Keys::new();
    let repo = keys.scratch.init_repo("fleet");
    write_tree(&repo, RenderedVerify::RealName, &keys.attacker_signers);
    keys.commit(&repo, "main", Signer::Attacker);
    let source = GitSource::new(&format!("file://{}", repo.display())).unwrap();
    let cluster = MemoryCluster::new();
    live_repository(&cluster, LiveRepository::VerifiesWithRealKeys, "main");
    let report = reconcile(&Case {
        source: &source,
        cluster: &cluster,
        host_keys: None,
        require_signed: true,
    });
    let r = root(&report);
    assert_eq!(r.reason, "ArtifactFailed");
    assert_eq!(
        r.message,
        "GitRepository/flux-system/flux-system requires signature verification with the keys of Secret/flux-system/git-keys, which is not in the cluster (verification keys are read only from live Secrets)"
    );
    assert!(block_on(cluster.get(&crb())).unwrap().is_none());
}

#[test]
fn the_live_git_repository_decides_which_keys_verify_the_next_revision() {
    let keys = Keys::new();
    let repo = keys.scratch.init_repo("fleet");
    let cluster = MemoryCluster::new();
    live_repository(&cluster, LiveRepository::VerifiesWithRealKeys, "main");
    block_on(cluster.apply(
        &secret("git-keys", &keys.trusted_signers),
        &ApplyOptions::default(),
    ))
    .unwrap();
    let url = format!("file://{}", repo.display());

    // the attacker's commit redirects verification to its own Secret and
    // drops spec.verify in turn: the live spec still decides
    for (verify, signer) in [
        (RenderedVerify::OwnName, Signer::Attacker),
        (RenderedVerify::None, Signer::Unsigned),
    ] {
        write_tree(&repo, verify, &keys.attacker_signers);
        let commit = keys.commit(&repo, "main", signer);
        assert!(!keys.git_verifies(&repo, &commit));
        let report = reconcile(&Case {
            source: &GitSource::new(&url).unwrap(),
            cluster: &cluster,
            host_keys: None,
            require_signed: false,
        });
        assert_eq!(root(&report).reason, "ArtifactFailed", "{verify:?}");
        assert!(block_on(cluster.get(&crb())).unwrap().is_none());
    }

    // a commit the trusted key signed is applied, as git accepts it
    write_tree(&repo, RenderedVerify::RealName, &keys.attacker_signers);
    let commit = keys.commit(&repo, "main", Signer::Trusted);
    assert!(keys.git_verifies(&repo, &commit));
    let report = reconcile(&Case {
        source: &GitSource::new(&url).unwrap(),
        cluster: &cluster,
        host_keys: None,
        require_signed: true,
    });
    assert!(report.all_ready(), "{}", root(&report).message);
    assert!(block_on(cluster.get(&crb())).unwrap().is_some());
}

/// What the rule allows, as a model: a revision is applied only when a
/// key from the host, or from a Secret live before the run that the live
/// GitRepository names, signed it; an unverified revision only when the
/// host allows unverified revisions and the revision itself asks for no
/// verification.
fn expected_applied(
    signer: Signer,
    rendered: RenderedVerify,
    live: LiveRepository,
    live_secret: bool,
    host_keys: bool,
    require_signed: bool,
) -> bool {
    if host_keys {
        return signer == Signer::Trusted;
    }
    match live {
        LiveRepository::VerifiesWithRealKeys => live_secret && signer == Signer::Trusted,
        LiveRepository::VerifiesWithMissingSecret => false,
        LiveRepository::Absent | LiveRepository::WithoutVerify => {
            !require_signed && rendered == RenderedVerify::None
        }
    }
}

#[test]
fn trust_comes_only_from_the_host_or_the_live_cluster() {
    let keys = Keys::new();
    let repo = keys.scratch.init_repo("fleet");
    let host_verifier =
        SshVerifier::from_allowed_signers(&keys.trusted_signers, "host", VerifyMode::Head).unwrap();
    // one branch per (tree, signer), fetched once with GitSource and
    // replayed to every run
    let mut sources: Vec<(RenderedVerify, Signer, Fetched)> = Vec::new();
    let url = format!("file://{}", repo.display());
    for rendered in [
        RenderedVerify::None,
        RenderedVerify::RealName,
        RenderedVerify::OwnName,
    ] {
        for signer in [Signer::Trusted, Signer::Attacker, Signer::Unsigned] {
            write_tree(&repo, rendered, &keys.attacker_signers);
            let branch = format!("{rendered:?}-{signer:?}").to_lowercase();
            let commit = keys.commit(&repo, &branch, signer);
            assert_eq!(
                keys.git_verifies(&repo, &commit),
                signer == Signer::Trusted,
                "{branch}"
            );
            git(
                &repo,
                &keys.scratch.home(),
                &["branch", "-q", "-f", &format!("case-{branch}"), &commit],
            );
            let snapshot = block_on(
                GitSource::new(&url)
                    .unwrap()
                    .fetch(&GitRef::branch(&format!("case-{branch}"))),
            )
            .unwrap();
            sources.push((rendered, signer, Fetched(snapshot)));
        }
    }
    let mut checked = 0;
    for (rendered, signer, source) in &sources {
        let branch = format!("case-{rendered:?}-{signer:?}").to_lowercase();
        for live in [
            LiveRepository::Absent,
            LiveRepository::WithoutVerify,
            LiveRepository::VerifiesWithRealKeys,
            LiveRepository::VerifiesWithMissingSecret,
        ] {
            for live_secret in [false, true] {
                for host_keys in [false, true] {
                    for require_signed in [false, true] {
                        let cluster = MemoryCluster::new();
                        live_repository(&cluster, live, &branch);
                        if live_secret {
                            block_on(cluster.apply(
                                &secret("git-keys", &keys.trusted_signers),
                                &ApplyOptions::default(),
                            ))
                            .unwrap();
                        }
                        let options = FleetOptions {
                            require_signed,
                            ..FleetOptions::default()
                        };
                        let report = reconcile_branch(
                            source,
                            &branch,
                            &cluster,
                            host_keys.then_some(&host_verifier as &dyn Verifier),
                            &options,
                        );
                        let applied = block_on(cluster.get(&crb())).unwrap().is_some();
                        let expected = expected_applied(
                            *signer,
                            *rendered,
                            live,
                            live_secret,
                            host_keys,
                            require_signed,
                        );
                        assert_eq!(
                            applied,
                            expected,
                            "signer {signer:?}, commit's verify {rendered:?}, live {live:?}, live Secret {live_secret}, host keys {host_keys}, require_signed {require_signed}: {}",
                            root(&report).message
                        );
                        assert_eq!(root(&report).ready, expected);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 9 * 4 * 2 * 2 * 2);
}

/// A source that replays one snapshot a real GitSource fetched.
struct Fetched(Snapshot);

#[async_trait::async_trait]
impl Source for Fetched {
    async fn fetch(&self, _reference: &GitRef) -> Result<Snapshot, SourceError> {
        Ok(self.0.clone())
    }
}

fn reconcile_branch(
    source: &dyn Source,
    branch: &str,
    cluster: &MemoryCluster,
    host_keys: Option<&dyn Verifier>,
    options: &FleetOptions,
) -> FleetReport {
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source,
            reference: GitRef::branch(branch),
            verifier: host_keys,
        },
    );
    let keys = KeysFromSecret::new();
    let clock = VirtualClock::new(Duration::from_secs(1_700_000_000));
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
    block_on(ctx.reconcile(options)).unwrap()
}

#[test]
fn a_kustomization_for_a_remote_cluster_is_refused_not_applied_here() {
    // spec.kubeConfig names credentials for another cluster: the fleet
    // applies through its one Applier, so it refuses instead of applying
    // the objects to this cluster
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "clusters/production/remote.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: remote\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./remote\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  kubeConfig:\n    secretRef:\n      name: prod-kubeconfig\n",
    );
    write(
        "remote/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: meant-elsewhere\n  namespace: default\n",
    );
    let source = driftless::source::DirSource::new(dir.path());
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let options = FleetOptions::default();
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source: &source,
            reference: GitRef::branch("main"),
            verifier: Some(&driftless::verify::danger::NoVerification),
        },
    );
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(Duration::from_secs(1_700_000_000));
    let ctx = FleetContext {
        sources,
        verifiers: None,
        renderer: &renderer,
        applier: &cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    let report = block_on(ctx.reconcile(&options)).unwrap();
    let remote = report.get("flux-system/remote").unwrap();
    assert!(!remote.ready);
    assert_eq!(
        remote.message,
        "spec.kubeConfig is not supported: flux-system/remote targets a remote cluster, and the fleet applies only through its own Applier"
    );
    assert!(block_on(cluster.get(&ObjectId::new(
        "",
        "ConfigMap",
        "default",
        "meant-elsewhere"
    )))
    .unwrap()
    .is_none());
}
