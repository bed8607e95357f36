//! Issue 5 acceptance: Flux repositories reconciled as Flux does, on
//! fixtures that copy the seed article's layout and objects
//! (`tests/fixtures/fleet/<case>`), the embedded cluster, and a virtual clock.

#[path = "git_support/mod.rs"]
mod git_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use driftless::apply::memory::Rollout;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{
    Clock, FleetContext, FleetOptions, FleetReport, KeysFromSecret, Metrics, RecordingSink,
    Severity, SourceBinding, VirtualClock, NAMESPACE_LABEL, NAME_LABEL,
};
use driftless::flux::SOURCE_GROUP;
use driftless::plan::Action;
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef, GitSource, Source};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use support::*;

const START: Duration = Duration::from_secs(1_700_000_000);

struct Run<'a> {
    source: &'a dyn Source,
    cluster: &'a MemoryCluster,
    clock: &'a VirtualClock,
    events: &'a RecordingSink,
    metrics: Option<&'a Metrics>,
    verifiers: bool,
}

impl Run<'_> {
    fn go(&self, options: &FleetOptions) -> FleetReport {
        let renderer = Kustomize::new(KustomizeOptions {
            flux: true,
            ..KustomizeOptions::default()
        });
        let mut sources = BTreeMap::new();
        sources.insert(
            options.root_source.clone(),
            SourceBinding {
                source: self.source,
                reference: GitRef::branch("main"),
                verifier: None,
            },
        );
        // the demo fleet's tenant builds from a GitRepository of its own
        // namespace, whose files are in the same folder
        sources.insert(
            id(SOURCE_GROUP, "GitRepository", "team-a", "team-a"),
            SourceBinding {
                source: self.source,
                reference: GitRef::branch("main"),
                verifier: None,
            },
        );
        let keys = KeysFromSecret::new();
        let ctx = FleetContext {
            sources,
            verifiers: if self.verifiers { Some(&keys) } else { None },
            renderer: &renderer,
            applier: self.cluster,
            clock: self.clock,
            events: self.events,
            metrics: self.metrics,
            schema: Schema::kubernetes(),
        };
        block_on(ctx.reconcile(options)).unwrap()
    }
}

fn fleet(path: &Path, cluster: &MemoryCluster, clock: &VirtualClock) -> FleetReport {
    fleet_with(path, cluster, clock, &FleetOptions::default())
}

fn fleet_with(
    path: &Path,
    cluster: &MemoryCluster,
    clock: &VirtualClock,
    options: &FleetOptions,
) -> FleetReport {
    let source = DirSource::new(path);
    let events = RecordingSink::default();
    Run {
        source: &source,
        cluster,
        clock,
        events: &events,
        metrics: None,
        verifiers: false,
    }
    .go(options)
}

fn order(report: &FleetReport) -> Vec<(&str, bool, &str)> {
    report
        .results
        .iter()
        .map(|r| (r.key.as_str(), r.ready, r.reason.as_str()))
        .collect()
}

fn result<'a>(report: &'a FleetReport, key: &str) -> &'a driftless::fleet::KustomizationResult {
    report
        .get(key)
        .unwrap_or_else(|| panic!("no result for {key}: {:?}", order(report)))
}

fn id(group: &str, kind: &str, ns: &str, name: &str) -> ObjectId {
    ObjectId::new(group, kind, ns, name)
}

const SUCCEEDED: &str = "ReconciliationSucceeded";

#[test]
fn the_seed_fleet_reconciles_in_dependency_order_with_events_and_metrics() {
    let repo = fixture("seed");
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let events = RecordingSink::default();
    let metrics = Metrics::new();
    let source = DirSource::new(repo.path());
    let run = Run {
        source: &source,
        cluster: &cluster,
        clock: &clock,
        events: &events,
        metrics: Some(&metrics),
        verifiers: false,
    };
    let report = run.go(&FleetOptions::default());
    assert_eq!(
        order(&report),
        vec![
            ("flux-system/flux-system", true, SUCCEEDED),
            ("flux-system/infrastructure", true, SUCCEEDED),
            ("flux-system/tenants", true, SUCCEEDED),
            ("flux-system/apps", true, SUCCEEDED),
            ("team-a/team-a", true, SUCCEEDED),
        ]
    );
    assert!(report.all_ready());
    let revision = report.results[0].last_applied_revision.clone().unwrap();
    for r in &report.results {
        assert_eq!(r.last_applied_revision.as_ref(), Some(&revision));
        assert_eq!(r.message, format!("Applied revision: {revision}"));
    }
    // the root applies the cluster folder only, once
    let root = result(&report, "flux-system/flux-system");
    let root_subjects: Vec<&str> = root
        .changes
        .entries
        .iter()
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(
        root_subjects,
        vec![
            "Namespace/flux-system",
            "GitRepository/flux-system/flux-system",
            "Kustomization/flux-system/apps",
            "Kustomization/flux-system/flux-system",
            "Kustomization/flux-system/infrastructure",
            "Kustomization/flux-system/tenants",
        ]
    );
    // each Kustomization owns what it applied, with Flux's owner labels
    let web = cluster
        .object(&id("apps", "Deployment", "team-a", "web"))
        .expect("the tenant's app is in its namespace");
    assert_eq!(web.label(NAME_LABEL), Some("team-a"));
    assert_eq!(web.label(NAMESPACE_LABEL), Some("team-a"));
    let app1 = cluster
        .object(&id("apps", "Deployment", "apps", "app1"))
        .unwrap();
    assert_eq!(app1.label(NAME_LABEL), Some("apps"));
    assert_eq!(app1.pointer("/spec/replicas"), Some(&serde_json::json!(5)));
    let inv = block_on(cluster.read_inventory("flux-system/infrastructure"))
        .unwrap()
        .unwrap();
    assert!(inv.contains(&id(
        "apps",
        "Deployment",
        "ingress-nginx",
        "ingress-nginx-controller"
    )));
    assert_eq!(result(&report, "flux-system/infrastructure").inventory, inv);

    // one event per Kustomization, in order, Flux's shape
    let ev = events.events();
    let seen: Vec<(String, Severity, String)> = ev
        .iter()
        .map(|e| {
            (
                format!(
                    "{}/{}/{}",
                    e.involved_object.kind, e.involved_object.namespace, e.involved_object.name
                ),
                e.severity,
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "Kustomization/flux-system/flux-system".to_string(),
                Severity::Info,
                SUCCEEDED.to_string()
            ),
            (
                "Kustomization/flux-system/infrastructure".to_string(),
                Severity::Info,
                SUCCEEDED.to_string()
            ),
            (
                "Kustomization/flux-system/tenants".to_string(),
                Severity::Info,
                SUCCEEDED.to_string()
            ),
            (
                "Kustomization/flux-system/apps".to_string(),
                Severity::Info,
                SUCCEEDED.to_string()
            ),
            (
                "Kustomization/team-a/team-a".to_string(),
                Severity::Info,
                SUCCEEDED.to_string()
            ),
        ]
    );
    assert!(ev.iter().all(|e| e.revision == revision));
    assert_eq!(
        ev[0].involved_object.api_version,
        "kustomize.toolkit.fluxcd.io/v1"
    );

    // metrics in the Prometheus text format
    let text = metrics.encode();
    for (ns, name) in [
        ("flux-system", "flux-system"),
        ("flux-system", "infrastructure"),
        ("flux-system", "apps"),
        ("team-a", "team-a"),
    ] {
        let count = format!(
            "gotk_reconcile_duration_seconds_count{{kind=\"Kustomization\",name=\"{name}\",namespace=\"{ns}\"}} 1"
        );
        assert!(text.contains(&count), "{count} missing in:\n{text}");
    }
    assert!(text.contains("# TYPE gotk_reconcile_duration_seconds histogram"));
    assert!(text.contains(
        "gotk_reconcile_condition{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",type=\"Ready\",status=\"True\"} 1"
    ), "{text}");

    // a second run changes nothing
    let again = run.go(&FleetOptions::default());
    assert!(again.all_ready());
    for r in &again.results {
        assert!(
            r.changes
                .entries
                .iter()
                .all(|e| e.action == Action::Unchanged),
            "{}: {}",
            r.key,
            r.changes
        );
    }
    assert!(metrics.encode().contains(
        "gotk_reconcile_duration_seconds_count{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\"} 2"
    ));
}

#[test]
fn the_demo_fleet_reconciles_in_dependency_order() {
    let repo = demo_fleet();
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    for cluster_path in ["clusters/production", "clusters/staging"] {
        let options = FleetOptions {
            cluster_path: cluster_path.to_string(),
            ..FleetOptions::default()
        };
        let report = fleet_with(repo.path(), &cluster, &clock, &options);
        let keys: Vec<&str> = report.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "flux-system/flux-system",
                "flux-system/infrastructure",
                "flux-system/tenants",
                "flux-system/apps",
                "team-a/team-a",
            ],
            "{cluster_path}"
        );
        assert!(report.all_ready(), "{cluster_path}: {:?}", order(&report));
    }
    // staging scaled app1 down to its overlay's value
    let app1 = cluster
        .object(&id("apps", "Deployment", "apps", "app1"))
        .unwrap();
    assert_eq!(app1.pointer("/spec/replicas"), Some(&serde_json::json!(1)));
}

fn ingress_rollout(cluster: &MemoryCluster, rollout: Rollout) {
    cluster.set_rollout(move |o: &Object| {
        if o.kind() == "Deployment" && o.name() == "ingress-nginx-controller" {
            rollout
        } else {
            Rollout::Complete
        }
    });
}

#[test]
fn a_health_check_that_times_out_holds_apps_back_until_fixed() {
    let repo = fixture("seed");
    let cluster = MemoryCluster::new();
    ingress_rollout(&cluster, Rollout::Progressing);
    let clock = VirtualClock::new(START);
    let source = DirSource::new(repo.path());
    let events = RecordingSink::default();
    let run = Run {
        source: &source,
        cluster: &cluster,
        clock: &clock,
        events: &events,
        metrics: None,
        verifiers: false,
    };
    let report = run.go(&FleetOptions::default());
    let infra = result(&report, "flux-system/infrastructure");
    assert!(!infra.ready);
    assert_eq!(infra.reason, "HealthCheckFailed");
    assert_eq!(
        infra.message,
        "health check failed after 5m0s: timeout waiting for: [Deployment/ingress-nginx/ingress-nginx-controller status: 'InProgress']"
    );
    // the timeout (spec.timeout: 5m) passed on the virtual clock only
    assert_eq!(clock.now() - START, Duration::from_secs(300));
    assert_eq!(infra.duration, Duration::from_secs(300));
    let apps = result(&report, "flux-system/apps");
    assert_eq!(
        (apps.ready, apps.reason.as_str(), apps.message.as_str()),
        (
            false,
            "DependencyNotReady",
            "dependency 'flux-system/infrastructure' is not ready"
        )
    );
    assert!(apps.changes.entries.is_empty());
    assert!(cluster.object(&id("", "Namespace", "", "apps")).is_none());
    // independent branches are not held back
    assert!(result(&report, "flux-system/tenants").ready);
    let ev = events.events();
    let apps_event = ev
        .iter()
        .find(|e| e.involved_object.name == "apps")
        .unwrap();
    assert_eq!(apps_event.severity, Severity::Error);
    assert_eq!(apps_event.reason, "DependencyNotReady");
    assert!(!report.all_ready());

    // --timeout caps every Kustomization's timeout
    let before = clock.now();
    let capped = run.go(&FleetOptions {
        max_timeout: Some(Duration::from_secs(30)),
        ..FleetOptions::default()
    });
    assert!(result(&capped, "flux-system/infrastructure")
        .message
        .starts_with("health check failed after 30s: timeout waiting for: ["));
    assert_eq!(clock.now() - before, Duration::from_secs(30));

    // fixing it in Git (a new controller version, which rolls out) lets the
    // next reconcile through
    cluster.clear_rollout();
    bump_ingress_controller(repo.path());
    let fixed = run.go(&FleetOptions::default());
    assert!(fixed.all_ready(), "{:?}", order(&fixed));
    let apps = result(&fixed, "flux-system/apps");
    assert_eq!(apps.reason, SUCCEEDED);
    assert_eq!(apps.changes.count(Action::Created), 2);
    assert!(cluster
        .object(&id("apps", "Deployment", "apps", "app1"))
        .is_some());
}

#[test]
fn a_failed_rollout_fails_the_health_check_early() {
    let repo = fixture("seed");
    let cluster = MemoryCluster::new();
    ingress_rollout(&cluster, Rollout::Failed);
    let clock = VirtualClock::new(START);
    let report = fleet(repo.path(), &cluster, &clock);
    let infra = result(&report, "flux-system/infrastructure");
    assert_eq!(infra.reason, "HealthCheckFailed");
    assert_eq!(
        infra.message,
        "health check failed after 0s: failed early due to stalled resources: [Deployment/ingress-nginx/ingress-nginx-controller status: 'Failed']"
    );
    assert_eq!(clock.now(), START, "failing early waits for nothing");
    assert_eq!(
        result(&report, "flux-system/apps").reason,
        "DependencyNotReady"
    );
}

#[test]
fn a_tenant_cannot_grant_itself_cluster_admin() {
    let repo = fixture("escalation");
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let report = fleet(repo.path(), &cluster, &clock);
    let tenant = result(&report, "team-a/team-a");
    assert!(!tenant.ready);
    assert_eq!(tenant.reason, "ReconciliationFailed");
    // refused at plan time by the tenant boundary, before any API call
    assert!(
        tenant
            .message
            .contains("ClusterRoleBinding/team-a-cluster-admin: policy tenant-boundary"),
        "{}",
        tenant.message
    );
    // and the cluster's RBAC holds on its own: the impersonated identity may
    // not create it either (what the API server would answer to Flux)
    let crb = Object::new(
        serde_json::to_value(
            driftless::yaml::load_documents(
                "escalate.yaml",
                &std::fs::read_to_string(repo.path().join("tenants/team-a/apps/escalate.yaml"))
                    .unwrap(),
                &Default::default(),
            )
            .unwrap()[0]
                .clone(),
        )
        .unwrap(),
    )
    .unwrap();
    let denied = block_on(cluster.apply(
        &crb,
        &ApplyOptions {
            dry_run: true,
            impersonate: Some("system:serviceaccount:team-a:team-a-reconciler".into()),
            ..ApplyOptions::default()
        },
    ))
    .unwrap_err();
    let denied = denied.to_string();
    assert!(
        denied.contains("ClusterRoleBinding/team-a-cluster-admin"),
        "{denied}"
    );
    assert!(denied.contains("forbidden"), "{denied}");
    assert!(
        denied.contains("system:serviceaccount:team-a:team-a-reconciler"),
        "{denied}"
    );
    // refused at dry-run: nothing of the tenant's was written
    assert!(cluster
        .object(&id(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "",
            "team-a-cluster-admin"
        ))
        .is_none());
    assert!(cluster
        .object(&id("apps", "Deployment", "team-a", "web"))
        .is_none());
    // the rest of the fleet is fine
    for key in [
        "flux-system/flux-system",
        "flux-system/infrastructure",
        "flux-system/tenants",
        "flux-system/apps",
    ] {
        assert!(result(&report, key).ready, "{key}");
    }
    // without serviceAccountName, the controller's own identity applies it:
    // the seed's point about the namespace boundary being cosmetic
    edit_file(
        &repo.path().join("tenants/team-a/flux.yaml"),
        "  serviceAccountName: team-a-reconciler\n",
        "",
    );
    let report = fleet(repo.path(), &cluster, &clock);
    assert!(result(&report, "team-a/team-a").ready);
    assert!(cluster
        .object(&id(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "",
            "team-a-cluster-admin"
        ))
        .is_some());
}

fn settings(cluster: &MemoryCluster) -> serde_json::Value {
    cluster
        .object(&id("", "ConfigMap", "default", "podinfo-settings"))
        .expect("substituted name")
        .value()["data"]
        .clone()
}

#[test]
fn post_build_substitution_as_flux_does() {
    let repo = fixture("substitution");
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let report = fleet(repo.path(), &cluster, &clock);
    assert!(report.all_ready(), "{:?}", order(&report));
    assert_eq!(
        settings(&cluster),
        serde_json::json!({"env": "production", "region": "eu-west-1", "replicas": "2",
            "token": "none", "literal": "${cluster_env}"})
    );
    let raw = cluster
        .object(&id("", "ConfigMap", "default", "raw"))
        .unwrap();
    assert_eq!(raw.value()["data"]["text"], "${kept_as_is}");

    // the optional Secret, once it exists, is read through the Applier
    let secret = Object::new(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cluster-secrets", "namespace": "flux-system"},
        "data": {"token": "czNjcjN0"}}))
    .unwrap();
    block_on(cluster.apply(&secret, &ApplyOptions::default())).unwrap();
    let report = fleet(repo.path(), &cluster, &clock);
    assert!(report.all_ready());
    assert_eq!(settings(&cluster)["token"], "s3cr3t");
    let apps = result(&report, "flux-system/apps");
    let changed: Vec<String> = apps
        .changes
        .entries
        .iter()
        .filter(|e| e.action == Action::Configured)
        .map(|e| e.subject.clone())
        .collect();
    assert_eq!(changed, vec!["ConfigMap/default/podinfo-settings"]);

    // strict mode: an undefined variable without a default is an error
    std::fs::write(
        repo.path().join("apps/strict.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\n  namespace: default\ndata:\n  v: ${undefined_var}\n",
    )
    .unwrap();
    let strict = FleetOptions {
        strict_substitution: true,
        ..FleetOptions::default()
    };
    let report = fleet_with(repo.path(), &cluster, &clock, &strict);
    let apps = result(&report, "flux-system/apps");
    assert_eq!(apps.reason, "BuildFailed");
    assert_eq!(
        apps.message,
        "ConfigMap/default/strict: variable not set (strict mode): undefined_var"
    );
    assert!(cluster
        .object(&id("", "ConfigMap", "default", "strict"))
        .is_none());
    // not strict: the variable is empty, as envsubst leaves it
    let report = fleet(repo.path(), &cluster, &clock);
    assert!(report.all_ready());
    let strict_cm = cluster
        .object(&id("", "ConfigMap", "default", "strict"))
        .unwrap();
    assert_eq!(strict_cm.value()["data"]["v"], "");

    // a substituteFrom that is not optional must exist
    edit_file(
        &repo.path().join("clusters/production/apps.yaml"),
        "        optional: true\n",
        "",
    );
    block_on(cluster.delete(
        &id("", "Secret", "flux-system", "cluster-secrets"),
        &ApplyOptions::default(),
    ))
    .unwrap();
    let report = fleet(repo.path(), &cluster, &clock);
    let apps = result(&report, "flux-system/apps");
    assert_eq!(apps.reason, "BuildFailed");
    assert!(apps.message.contains("cluster-secrets"), "{}", apps.message);
    assert!(apps.message.contains("not found"), "{}", apps.message);
}

#[test]
fn depends_on_cycles_and_missing_dependencies_are_errors() {
    let repo = fixture("dag");
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let report = fleet(repo.path(), &cluster, &clock);
    let a = result(&report, "flux-system/a");
    assert_eq!(a.reason, "DependencyNotReady");
    assert_eq!(
        a.message,
        "circular dependency detected: flux-system/a -> flux-system/b -> flux-system/a"
    );
    let b = result(&report, "flux-system/b");
    assert_eq!(b.reason, "DependencyNotReady");
    assert!(b.message.starts_with("circular dependency detected"));
    let c = result(&report, "flux-system/c");
    assert_eq!(
        (c.reason.as_str(), c.message.as_str()),
        (
            "DependencyNotReady",
            "dependency 'flux-system/missing' not found"
        )
    );
    // an independent Kustomization is not held back by the others
    let d = result(&report, "flux-system/d");
    assert!(d.ready, "{}: {}", d.reason, d.message);
    assert_eq!(report.results.len(), 5);
}

#[test]
fn unknown_and_mistyped_fields_are_named() {
    let repo = fixture("mistyped");
    let cluster = MemoryCluster::new();
    let clock = VirtualClock::new(START);
    let report = fleet(repo.path(), &cluster, &clock);
    let apps = result(&report, "flux-system/apps");
    assert_eq!(apps.reason, "BuildFailed");
    assert!(apps.message.contains("Kustomization/flux-system/apps"));
    assert!(apps.message.contains("spec.dependOn"), "{}", apps.message);
    assert!(apps.message.contains("unknown field"), "{}", apps.message);
    let infra = result(&report, "flux-system/infrastructure");
    assert_eq!(infra.reason, "BuildFailed");
    assert!(infra.message.contains("spec.prune"), "{}", infra.message);
    assert!(cluster
        .object(&id("", "ConfigMap", "default", "shared"))
        .is_none());
}

/// A Git repository made with the git CLI holding the `verify` fixture.
struct SignedRepo {
    scratch: git_support::Scratch,
    repo: std::path::PathBuf,
    key: std::path::PathBuf,
    allowed: std::path::PathBuf,
}

impl SignedRepo {
    fn new() -> Self {
        let scratch = git_support::Scratch::new();
        let repo = scratch.init_repo("fleet");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fleet/verify"),
            &repo,
        );
        let key = scratch.path().join("signing-key");
        git_support::keygen(&key, "ed25519");
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let mut parts = public.split_whitespace();
        let line = format!(
            "ada@example.org namespaces=\"git\" {} {}\n",
            parts.next().unwrap(),
            parts.next().unwrap()
        );
        let allowed = scratch.path().join("allowed_signers");
        std::fs::write(&allowed, &line).unwrap();
        SignedRepo {
            scratch,
            repo,
            key,
            allowed,
        }
    }

    fn commit(&self, signed_with: Option<&Path>, msg: &str) -> String {
        let home = self.scratch.home();
        git_support::git(&self.repo, &home, &["add", "-A"]);
        let mut args: Vec<String> = Vec::new();
        if let Some(k) = signed_with {
            args.extend([
                "-c".into(),
                "gpg.format=ssh".into(),
                "-c".into(),
                format!("user.signingkey={}", k.display()),
            ]);
        }
        args.extend([
            "commit".into(),
            "-q".into(),
            "--allow-empty".into(),
            "-m".into(),
            msg.into(),
        ]);
        if signed_with.is_some() {
            args.push("-S".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        git_support::git(&self.repo, &home, &refs);
        git_support::git(&self.repo, &home, &["rev-parse", "HEAD"])
    }

    /// The oracle: `git verify-commit` with the same allowed signers.
    fn git_verifies(&self, commit: &str) -> bool {
        git_support::git_cmd(&self.repo, &self.scratch.home())
            .args([
                "-c",
                &format!("gpg.ssh.allowedSignersFile={}", self.allowed.display()),
                "verify-commit",
                commit,
            ])
            .output()
            .unwrap()
            .status
            .success()
    }

    fn url(&self) -> String {
        format!("file://{}", self.repo.display())
    }

    /// The verification Secret, as the cluster holds it.
    fn secret(&self) -> Object {
        use base64::Engine;
        let text = std::fs::read_to_string(&self.allowed).unwrap();
        Object::new(serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "git-signing-keys", "namespace": "flux-system"},
            "data": {"allowed_signers": base64::engine::general_purpose::STANDARD.encode(text)}}))
        .unwrap()
    }
}

#[test]
fn a_fleet_whose_git_repository_has_verify_refuses_an_unsigned_head() {
    let r = SignedRepo::new();
    let unsigned = r.commit(None, "unsigned");
    assert!(!r.git_verifies(&unsigned));
    let cluster = MemoryCluster::new();
    block_on(cluster.apply(&r.secret(), &ApplyOptions::default())).unwrap();
    let clock = VirtualClock::new(START);
    let events = RecordingSink::default();
    let fleet_run = |source: &GitSource| {
        Run {
            source,
            cluster: &cluster,
            clock: &clock,
            events: &events,
            metrics: None,
            verifiers: true,
        }
        .go(&FleetOptions::default())
    };
    let source = GitSource::new(&r.url()).unwrap();
    // first run: the GitRepository is only known from the fetched tree; its
    // verify demands a check, but a revision cannot name the keys that
    // verify it, so nothing is applied
    let report = fleet_run(&source);
    let root = result(&report, "flux-system/flux-system");
    assert_eq!(root.reason, "ArtifactFailed");
    assert!(
        root.message.contains(
            "requires signature verification with the keys of Secret/flux-system/git-signing-keys"
        ) && root.message.contains("a revision cannot choose the keys"),
        "{}",
        root.message
    );
    assert_eq!(report.results.len(), 1, "{:?}", order(&report));
    assert!(cluster
        .object(&id(
            "source.toolkit.fluxcd.io",
            "GitRepository",
            "flux-system",
            "flux-system"
        ))
        .is_none());
    assert!(cluster
        .object(&id("", "Namespace", "", "ingress-nginx"))
        .is_none());

    // bootstrap as `flux bootstrap` does: the GitRepository is applied to
    // the cluster first; from then on its live spec.verify decides
    let sync = std::fs::read_to_string(
        r.repo
            .join("clusters/production/flux-system/gotk-sync.yaml"),
    )
    .unwrap();
    let docs: Vec<serde_json::Value> = driftless::yaml::load_documents(
        "gotk-sync.yaml",
        &sync,
        &driftless::yaml::YamlLimits::default(),
    )
    .unwrap();
    for d in docs.into_iter().filter(|d| d["kind"] == "GitRepository") {
        block_on(cluster.apply(&Object::new(d).unwrap(), &ApplyOptions::default())).unwrap();
    }
    let report = fleet_run(&GitSource::new(&r.url()).unwrap());
    let root = result(&report, "flux-system/flux-system");
    assert_eq!(root.reason, "ArtifactFailed");
    assert_eq!(root.message, format!("commit {unsigned} is not signed"));
    assert!(cluster
        .object(&id("", "Namespace", "", "ingress-nginx"))
        .is_none());

    // signed with a trusted key: accepted, as git verify-commit accepts it
    let good = r.commit(Some(&r.key), "signed");
    assert!(r.git_verifies(&good));
    let report = fleet_run(&GitSource::new(&r.url()).unwrap());
    assert!(report.all_ready(), "{:?}", order(&report));
    assert_eq!(
        report.results[0].last_applied_revision.as_deref(),
        Some(format!("main@sha1:{good}").as_str())
    );

    // the GitRepository is now in the cluster: a later unsigned head is
    // refused for every Kustomization using it, and nothing changes
    let rv = cluster.resource_version();
    std::fs::write(
        r.repo.join("apps/base/app1/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: apps\n",
    )
    .unwrap();
    let unsigned = r.commit(None, "unsigned again");
    let report = fleet_run(&GitSource::new(&r.url()).unwrap());
    let root = result(&report, "flux-system/flux-system");
    assert_eq!(root.reason, "ArtifactFailed");
    assert_eq!(root.message, format!("commit {unsigned} is not signed"));
    assert_eq!(cluster.resource_version(), rv);

    // signed by a key the Secret does not trust: refused, as git refuses it
    let other = r.scratch.path().join("other-key");
    git_support::keygen(&other, "ed25519");
    let untrusted = r.commit(Some(&other), "untrusted");
    assert!(!r.git_verifies(&untrusted));
    let report = fleet_run(&GitSource::new(&r.url()).unwrap());
    let root = result(&report, "flux-system/flux-system");
    assert_eq!(root.reason, "ArtifactFailed");
    assert!(root.message.contains("untrusted key"), "{}", root.message);
}

// ------------------------------------------------------ diff and tree examples

#[test]
fn the_diff_example_reports_created_drifted_and_deleted() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().join("s");
    let st = st.to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let args = ["--repo", repo.as_str(), "--state", st.as_str(), &tenant];

    // no state yet: an error, exit 2
    let out = run_example("diff", &args);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("no such folder"), "{}", stderr(&out));

    // a Secret in Git, to check masking
    std::fs::write(
        fleet.path().join("apps/base/app1/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app1/kustomization.yaml"),
        "  - service.yaml\n",
        "  - service.yaml\n  - secret.yaml\n",
    );
    let mut allowed = args.to_vec();
    allowed.extend(["--allow-plaintext-secrets", "apps/base/app1/secret.yaml"]);
    let out = run_example("reconcile", &allowed);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // in sync: nothing printed, exit 0
    let out = run_example("diff", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // drift by hand in the cluster, a new manifest, a removed one
    let app1 = state
        .path()
        .join("s/objects/apps/Deployment/apps/app1.yaml");
    edit_file(&app1, "replicas: 5", "replicas: 1");
    edit_file(
        &state.path().join("s/objects/core/Secret/apps/db.yaml"),
        "password: aHVudGVyMg==",
        "password: Y2hhbmdlZC1ieS1oYW5k",
    );
    std::fs::write(
        fleet.path().join("apps/base/app1/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: apps\n",
    )
    .unwrap();
    edit_file(
        &fleet.path().join("apps/base/app1/kustomization.yaml"),
        "  - service.yaml\n",
        "  - service.yaml\n  - extra.yaml\n",
    );
    edit_file(
        &fleet.path().join("apps/base/kustomization.yaml"),
        "  - app2\n",
        "",
    );
    let before = std::fs::read_to_string(&app1).unwrap();
    let out = run_example("diff", &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('►')).collect();
    assert_eq!(
        heads,
        vec![
            "► Secret/apps/db drifted",
            "► ConfigMap/apps/extra created",
            "► Deployment/apps/app1 drifted",
            "► Deployment/apps/app2 deleted",
        ],
        "{text}"
    );
    assert!(
        text.contains("--- live/Deployment/apps/app1\n+++ git/Deployment/apps/app1\n"),
        "{text}"
    );
    assert!(
        text.contains("\n-  replicas: 1\n+  replicas: 5\n"),
        "{text}"
    );
    for secret in [
        "hunter2",
        "aHVudGVyMg==",
        "changed-by-hand",
        "Y2hhbmdlZC1ieS1oYW5k",
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(
        text.contains("-  password: '*** (before)'\n+  password: '*** (after)'\n"),
        "{text}"
    );
    // a diff writes nothing
    assert_eq!(std::fs::read_to_string(&app1).unwrap(), before);
    assert!(state
        .path()
        .join("s/objects/apps/Deployment/apps/app2.yaml")
        .exists());

    // only one Kustomization
    let mut one = args.to_vec();
    one.extend(["--kustomization", "flux-system/infrastructure"]);
    let out = run_example("diff", &one);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // a broken repository: exit 2, naming the problem
    let out = run_example(
        "diff",
        &["--repo", "/no/such/fleet", "--state", st.as_str()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/no/such/fleet"), "{}", stderr(&out));
}

#[test]
fn the_tree_example_prints_kustomizations_and_inventories() {
    let fleet = demo_fleet();
    let state = tempfile::tempdir().unwrap();
    let repo = fleet.path().to_str().unwrap().to_string();
    let st = state.path().to_str().unwrap().to_string();
    let tenant = demo_tenant_source(&repo);
    let out = run_example(
        "reconcile",
        &["--repo", repo.as_str(), "--state", st.as_str(), &tenant],
    );
    assert!(out.status.success());
    let out = run_example("tree", &["--state", st.as_str()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Kustomization/flux-system/flux-system");
    // (depth, subject) of every line
    let parsed: Vec<(usize, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let start = l.find(|c: char| c.is_ascii_alphabetic()).unwrap();
            let prefix: String = l[..start].chars().collect();
            (prefix.chars().count() / 4, &l[start..])
        })
        .collect();
    // the oracle: the inventories the reconcile recorded (read as the
    // example reads them, so that neither locks the other out)
    let cluster = MemoryCluster::open_read_only(state.path()).unwrap();
    let inventory = |key: &str| -> Vec<String> {
        block_on(cluster.read_inventory(key))
            .unwrap()
            .unwrap()
            .ids()
            .unwrap()
            .iter()
            .map(|i| i.subject())
            .collect()
    };
    let top: Vec<String> = parsed
        .iter()
        .filter(|(d, _)| *d == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    assert_eq!(top, inventory("flux-system/flux-system"), "{text}");
    for key in [
        "flux-system/apps",
        "flux-system/infrastructure",
        "flux-system/tenants",
    ] {
        let head = format!("Kustomization/{key}");
        let at = parsed
            .iter()
            .position(|(d, s)| *d == 1 && *s == head)
            .unwrap();
        let children: Vec<String> = parsed[at + 1..]
            .iter()
            .take_while(|(d, _)| *d >= 2)
            .filter(|(d, _)| *d == 2)
            .map(|(_, s)| s.to_string())
            .collect();
        assert_eq!(children, inventory(key), "{key}:\n{text}");
    }
    // the tenant's Kustomization is nested under tenants
    let team = parsed
        .iter()
        .position(|(_, s)| *s == "Kustomization/team-a/team-a")
        .unwrap();
    assert_eq!(parsed[team].0, 2);
    assert_eq!(parsed[team + 1], (3, "Deployment/team-a/web"));
    assert!(text.contains("├── ") && text.contains("└── ") && text.contains("│   "));

    let out = run_example("tree", &["--state", st.as_str(), "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Kustomization/flux-system/nope has no inventory"),
        "{}",
        stderr(&out)
    );
}

/// Removing a Kustomization from Git deletes its object (the parent prunes
/// it), and Flux's finalizer then deletes what it applied when it has
/// `spec.prune`: nested Kustomizations first (the tenant's objects, as the
/// tenant), then its own. Without `prune` the objects stay.
#[test]
fn a_kustomization_removed_from_git_garbage_collects_its_objects() {
    for prune in [true, false] {
        let repo = fixture("seed");
        let tenants = repo.path().join("clusters/production/tenants.yaml");
        if !prune {
            edit_file(&tenants, "prune: true", "prune: false");
        }
        let cluster = MemoryCluster::new();
        let clock = VirtualClock::new(START);
        let first = fleet(repo.path(), &cluster, &clock);
        assert!(first.all_ready(), "{:?}", order(&first));
        let tenant_objects: Vec<ObjectId> = ["flux-system/tenants", "team-a/team-a"]
            .iter()
            .flat_map(|k| result(&first, k).inventory.entries.clone())
            .map(|e| e.id.parse().unwrap())
            .collect();
        let web = id("apps", "Deployment", "team-a", "web");
        assert!(tenant_objects.contains(&web));
        assert!(tenant_objects.len() > 5, "{tenant_objects:?}");

        std::fs::remove_file(&tenants).unwrap();
        let second = fleet(repo.path(), &cluster, &clock);
        assert!(second.get("flux-system/tenants").is_none());
        assert!(second.get("team-a/team-a").is_none());
        let root = result(&second, "flux-system/flux-system");
        let deleted: Vec<&str> = root
            .changes
            .entries
            .iter()
            .filter(|e| e.action == Action::Deleted)
            .map(|e| e.subject.as_str())
            .collect();
        // everything else is untouched
        assert!(cluster
            .object(&id("apps", "Deployment", "apps", "app1"))
            .is_some());
        if prune {
            for o in &tenant_objects {
                assert!(cluster.object(o).is_none(), "{} is left", o.subject());
                assert!(deleted.contains(&o.subject().as_str()), "{deleted:?}");
            }
            // the tenant's objects go before the tenants' own (its
            // namespace and the RoleBinding it acts through)
            let pos = |s: &str| deleted.iter().position(|d| *d == s).unwrap();
            assert!(pos("Deployment/team-a/web") < pos("Namespace/team-a"));
            assert_eq!(
                block_on(cluster.read_inventory("team-a/team-a")).unwrap(),
                Some(Default::default())
            );
        } else {
            assert_eq!(deleted, vec!["Kustomization/flux-system/tenants"]);
            assert!(cluster.object(&web).is_some());
        }
    }
}
