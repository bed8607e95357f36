//! Issue 5: `interval`, `retryInterval`, the dependency requeue and source
//! polls, scheduled as kustomize-controller and source-controller do, on a
//! virtual clock (no sleeps), with the seed fixture copied to a temp folder
//! and edited between `run_until` calls.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use driftless::apply::memory::Rollout;
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{
    Clock, FleetContext, FleetOptions, RecordingSink, ScheduleOptions, ScheduledRun, Scheduler,
    SourceBinding, VirtualClock,
};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef, Snapshot, Source, SourceError};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use support::*;

const START: Duration = Duration::from_secs(1_700_000_000);
const OK: &str = "ReconciliationSucceeded";
const NOT_READY: &str = "DependencyNotReady";
const ROOT: &str = "flux-system/flux-system";
const INFRA: &str = "flux-system/infrastructure";
const TENANTS: &str = "flux-system/tenants";
const APPS: &str = "flux-system/apps";
const TEAM_A: &str = "team-a/team-a";
const INFRA_FILE: &str = "clusters/production/infrastructure.yaml";
const APPS_FILE: &str = "clusters/production/apps.yaml";

/// A folder source that counts its fetches (the source polls).
struct CountingSource {
    inner: DirSource,
    fetches: AtomicUsize,
}

#[async_trait::async_trait]
impl Source for CountingSource {
    async fn fetch(&self, reference: &GitRef) -> Result<Snapshot, SourceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(reference).await
    }
}

/// A fleet on the virtual clock: the repository folder, the embedded
/// cluster, and what the context borrows.
struct Fleet {
    source: CountingSource,
    renderer: Kustomize,
    cluster: MemoryCluster,
    clock: VirtualClock,
    events: RecordingSink,
}

impl Fleet {
    fn new(repo: &Path) -> Self {
        Fleet {
            source: CountingSource {
                inner: DirSource::new(repo),
                fetches: AtomicUsize::new(0),
            },
            renderer: Kustomize::new(KustomizeOptions {
                flux: true,
                ..KustomizeOptions::default()
            }),
            cluster: MemoryCluster::new(),
            clock: VirtualClock::new(START),
            events: RecordingSink::default(),
        }
    }

    fn ctx(&self) -> FleetContext<'_> {
        let options = FleetOptions::default();
        let mut sources = std::collections::BTreeMap::new();
        sources.insert(
            options.root_source,
            SourceBinding {
                source: &self.source,
                reference: GitRef::branch("main"),
                verifier: None,
            },
        );
        FleetContext {
            sources,
            verifiers: None,
            renderer: &self.renderer,
            applier: &self.cluster,
            clock: &self.clock,
            events: &self.events,
            metrics: None,
            schema: Schema::kubernetes(),
        }
    }

    fn fetches(&self) -> usize {
        self.source.fetches.load(Ordering::SeqCst)
    }
}

fn scheduler<'c, 'a>(ctx: &'c FleetContext<'a>) -> Scheduler<'c, 'a> {
    Scheduler::new(ctx, FleetOptions::default(), ScheduleOptions::default())
}

/// Runs `body` with a scheduler over a temp copy of the seed fixture,
/// after `edits` (file, text, replacement) to the copy.
fn on_seed(edits: &[(&str, &str, &str)], body: impl FnOnce(&Path, &Fleet, &mut Scheduler<'_, '_>)) {
    let repo = fixture("seed");
    for (file, from, to) in edits {
        edit_file(&repo.path().join(file), from, to);
    }
    let fleet = Fleet::new(repo.path());
    let ctx = fleet.ctx();
    let mut s = scheduler(&ctx);
    body(repo.path(), &fleet, &mut s);
}

fn secs(s: u64) -> Duration {
    START + Duration::from_secs(s)
}

fn run(s: &mut Scheduler<'_, '_>, until: u64) -> Vec<ScheduledRun> {
    block_on(s.run_until(secs(until))).unwrap()
}

/// (seconds since START, key, reason) of each run.
fn timeline(runs: &[ScheduledRun]) -> Vec<(u64, &str, &str)> {
    runs.iter()
        .map(|r| {
            (
                (r.at - START).as_secs(),
                r.result.key.as_str(),
                r.result.reason.as_str(),
            )
        })
        .collect()
}

fn revision(r: &ScheduledRun) -> &str {
    r.result
        .last_applied_revision
        .as_deref()
        .or(r.result.last_attempted_revision.as_deref())
        .unwrap_or("-")
}

fn id(group: &str, kind: &str, ns: &str, name: &str) -> ObjectId {
    ObjectId::new(group, kind, ns, name)
}

fn app1() -> ObjectId {
    id("apps", "Deployment", "apps", "app1")
}

fn all_at(t: u64, keys: &[&'static str]) -> Vec<(u64, &'static str, &'static str)> {
    keys.iter().map(|k| (t, *k, OK)).collect()
}

fn ingress_fails(cluster: &MemoryCluster) {
    cluster.set_rollout(|o: &Object| {
        if o.kind() == "Deployment" && o.name() == "ingress-nginx-controller" {
            Rollout::Failed
        } else {
            Rollout::Complete
        }
    });
}

#[test]
fn ready_kustomizations_run_again_after_their_interval_and_sources_are_polled_once_per_interval() {
    on_seed(&[], |_, fleet, s| {
        let runs = run(s, 630);
        // apps: interval 5m; the others (and the root, as gotk-sync.yaml
        // declares it): 10m. At 10m the due ones run in dependency order,
        // then by name.
        let mut expected = all_at(0, &[ROOT, INFRA, TENANTS, APPS, TEAM_A]);
        expected.push((300, APPS, OK));
        expected.extend(all_at(600, &[ROOT, INFRA, TENANTS, TEAM_A, APPS]));
        assert_eq!(timeline(&runs), expected);
        let first = revision(&runs[0]).to_string();
        assert!(first.starts_with("sha256:"), "{first}");
        assert!(runs.iter().all(|r| revision(r) == first));
        // the GitRepository (interval: 1m) is fetched once at 0, then
        // polled at 1m, 2m, ..., 10m; every Kustomization reuses its artifact
        assert_eq!(fleet.fetches(), 11);
        assert_eq!(fleet.clock.now(), secs(630), "run_until sleeps to the end");
        assert_eq!(s.next_due(APPS), Some(secs(900)));
        assert_eq!(s.next_due(ROOT), Some(secs(1200)));
        assert_eq!(s.next_wake(), Some(secs(660)), "the next source poll");
        assert!(s.report().all_ready());

        // a second call continues where the first stopped
        let more = run(s, 900);
        assert_eq!(timeline(&more), vec![(900, APPS, OK)]);
        // polls at 11m, 12m, 13m, 14m, 15m
        assert_eq!(fleet.fetches(), 16);
    });
}

#[test]
fn a_failing_dependency_retries_at_its_retry_interval_and_holds_its_dependents_every_30s() {
    let retry = (
        INFRA_FILE,
        "  timeout: 5m\n",
        "  timeout: 5m\n  retryInterval: 2m\n",
    );
    on_seed(&[retry], |repo, fleet, s| {
        ingress_fails(&fleet.cluster);
        let runs = run(s, 120);
        let hc = "HealthCheckFailed";
        assert_eq!(
            timeline(&runs),
            vec![
                (0, ROOT, OK),
                (0, INFRA, hc),
                (0, TENANTS, OK),
                (0, APPS, NOT_READY),
                (0, TEAM_A, OK),
                (30, APPS, NOT_READY),
                (60, APPS, NOT_READY),
                (90, APPS, NOT_READY),
                (120, INFRA, hc),
                (120, APPS, NOT_READY),
            ]
        );
        for r in runs.iter().filter(|r| r.result.key == APPS) {
            assert_eq!(
                r.result.message,
                "dependency 'flux-system/infrastructure' is not ready"
            );
        }
        assert_eq!(
            runs[1].result.message,
            "health check failed after 0s: failed early due to stalled resources: [Deployment/ingress-nginx/ingress-nginx-controller status: 'Failed']"
        );
        assert!(fleet.cluster.object(&app1()).is_none());
        assert_eq!(s.next_due(INFRA), Some(secs(240)));
        let old = revision(&runs[0]).to_string();

        // the fix is a new commit (a new controller version that rolls
        // out): picked up at the source's next poll (3m), which triggers
        // every Kustomization of the source at once, in dependency order
        fleet.cluster.clear_rollout();
        bump_ingress_controller(repo);
        let fixed = run(s, 180);
        let mut expected = vec![(150, APPS, NOT_READY)];
        expected.extend(all_at(180, &[ROOT, INFRA, TENANTS, TEAM_A, APPS]));
        assert_eq!(timeline(&fixed), expected);
        let new = revision(&fixed[1]).to_string();
        assert_ne!(new, old);
        assert!(fixed[1..].iter().all(|r| revision(r) == new));
        assert!(fleet.cluster.object(&app1()).is_some());
        assert!(s.report().all_ready());
        // Ready again: the interval, no longer the retry interval
        assert_eq!(s.next_due(INFRA), Some(secs(780)));
        assert_eq!(s.next_due(APPS), Some(secs(480)));
    });
}

#[test]
fn a_build_failure_retries_at_its_retry_interval_and_succeeds_once_fixed() {
    let late_vars = (
        APPS_FILE,
        "  interval: 5m\n",
        "  interval: 5m\n  retryInterval: 1m\n  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: late-vars\n",
    );
    on_seed(&[late_vars], |_, fleet, s| {
        let runs = run(s, 150);
        let bf = "BuildFailed";
        let mut expected = all_at(0, &[ROOT, INFRA, TENANTS]);
        expected.extend([
            (0, APPS, bf),
            (0, TEAM_A, OK),
            (60, APPS, bf),
            (120, APPS, bf),
        ]);
        assert_eq!(timeline(&runs), expected);
        assert_eq!(
            runs[3].result.message,
            "substitute from 'ConfigMap/flux-system/late-vars' error: ConfigMap \"late-vars\" not found"
        );
        // the fix is in the cluster: the same artifact builds at the next
        // retry
        let vars = Object::new(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "late-vars", "namespace": "flux-system"},
            "data": {"region": "eu"},
        }))
        .unwrap();
        block_on(fleet.cluster.apply(&vars, &ApplyOptions::default())).unwrap();
        let fixed = run(s, 180);
        assert_eq!(timeline(&fixed), vec![(180, APPS, OK)]);
        assert_eq!(revision(&fixed[0]), revision(&runs[0]));
        // Ready: next at +interval (5m), not +retryInterval
        let later = run(s, 480);
        assert_eq!(timeline(&later), vec![(480, APPS, OK)]);
    });
}

#[test]
fn a_dependent_waits_until_its_dependency_applied_the_current_revision() {
    on_seed(&[], |repo, _, s| {
        let infra = repo.join(INFRA_FILE);
        let first = run(s, 30);
        assert_eq!(first.len(), 5);
        let rev0 = revision(&first[0]).to_string();

        // infrastructure is suspended in a new commit: it keeps its Ready
        // status at the old revision, so apps may not apply the new one
        edit_file(
            &infra,
            "  prune: true\n",
            "  prune: true\n  suspend: true\n",
        );
        let runs = run(s, 105);
        let stale = "dependency 'flux-system/infrastructure' revision is not up to date";
        assert_eq!(
            timeline(&runs),
            vec![
                (60, ROOT, OK),
                (60, INFRA, "Suspended"),
                (60, TENANTS, OK),
                (60, TEAM_A, OK),
                (60, APPS, NOT_READY),
                (90, APPS, NOT_READY),
            ]
        );
        let rev1 = revision(&runs[0]).to_string();
        assert_ne!(rev1, rev0);
        assert_eq!(runs[4].result.message, stale);
        assert_eq!(runs[5].result.message, stale);
        assert_eq!(s.next_due(INFRA), None, "a suspended one is not scheduled");

        // resumed in Git: the root renders the new spec, infrastructure
        // applies the current revision, and apps follows in the same wake-up
        edit_file(&infra, "  suspend: true\n", "  suspend: false\n");
        let resumed = run(s, 120);
        assert_eq!(
            timeline(&resumed),
            all_at(120, &[ROOT, INFRA, TENANTS, TEAM_A, APPS])
        );
        let rev2 = revision(&resumed[0]).to_string();
        assert!(rev2 != rev1 && rev2 != rev0);
        assert!(resumed.iter().all(|r| revision(r) == rev2));
    });
}

#[test]
fn a_suspended_kustomization_is_never_applied() {
    let suspend = (
        APPS_FILE,
        "  prune: true\n",
        "  prune: true\n  suspend: true\n",
    );
    on_seed(&[suspend], |repo, fleet, s| {
        let runs = run(s, 90);
        let mut expected = all_at(0, &[ROOT, INFRA, TENANTS]);
        expected.extend([(0, APPS, "Suspended"), (0, TEAM_A, OK)]);
        assert_eq!(timeline(&runs), expected);
        // a new commit triggers the others, not the suspended one
        bump_ingress_controller(repo);
        let later = run(s, 660);
        assert_eq!(
            timeline(&later),
            all_at(120, &[ROOT, INFRA, TENANTS, TEAM_A])
        );
        assert!(fleet
            .cluster
            .object(&id("", "Namespace", "", "apps"))
            .is_none());
        assert!(fleet.cluster.object(&app1()).is_none());
        assert_eq!(s.next_due(APPS), None);
        assert_eq!(s.report().get(APPS).unwrap().reason, "Suspended");
    });
}

#[test]
fn a_kustomization_removed_from_git_leaves_the_schedule() {
    on_seed(&[], |repo, fleet, s| {
        assert_eq!(run(s, 30).len(), 5);
        std::fs::remove_file(repo.join("clusters/production/tenants.yaml")).unwrap();
        let runs = run(s, 600);
        // the poll at 1m finds the new revision; the root prunes tenants,
        // and tenants and what only it rendered (team-a) are not scheduled
        // again
        let mut expected = all_at(60, &[ROOT, INFRA, APPS]);
        expected.push((360, APPS, OK));
        assert_eq!(timeline(&runs), expected);
        assert_eq!(s.next_due(TENANTS), None);
        assert_eq!(s.next_due(TEAM_A), None);
        let report = s.report();
        let keys: Vec<&str> = report.results.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, vec![ROOT, INFRA, APPS]);
        let tenants = id(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization",
            "flux-system",
            "tenants",
        );
        assert!(fleet.cluster.object(&tenants).is_none());
    });
}

/// The failing-dependency scenario, as text: every run in order.
fn failing_fleet_runs() -> String {
    let mut text = String::new();
    on_seed(&[], |repo, fleet, s| {
        ingress_fails(&fleet.cluster);
        let mut runs = run(s, 200);
        fleet.cluster.clear_rollout();
        bump_ingress_controller(repo);
        runs.extend(run(s, 900));
        text = format!(
            "{}\n{:?}",
            serde_json::to_string_pretty(&runs).unwrap(),
            runs
        );
    });
    text
}

#[test]
fn identical_inputs_give_byte_identical_runs() {
    let a = failing_fleet_runs();
    let b = failing_fleet_runs();
    assert!(a.contains("DependencyNotReady") && a.contains("HealthCheckFailed"));
    assert_eq!(a, b);
}

#[test]
fn the_reconcile_example_watches_with_the_same_output() {
    let repo = demo_fleet();
    let once_state = tempfile::tempdir().unwrap();
    let watch_state = tempfile::tempdir().unwrap();
    let args = |state: &Path, extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--repo".to_string(),
            repo.path().display().to_string(),
            "--state".to_string(),
            state.display().to_string(),
            demo_tenant_source(&repo.path().display().to_string()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let example = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_example("reconcile", &args)
    };
    let once = example(args(once_state.path(), &[]));
    assert!(once.status.success(), "{}", stderr(&once));
    // `--for 0s`: the first wake-up (the whole fleet, as the one-shot run
    // reconciles it), printed in the same format, then stop
    let watched = example(args(watch_state.path(), &["--for", "0s"]));
    assert!(watched.status.success(), "{}", stderr(&watched));
    assert!(stdout(&once).contains("► Kustomization/team-a/team-a "));
    assert_eq!(stdout(&watched), stdout(&once));
    let bad = example(args(watch_state.path(), &["--for", "soon"]));
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--for"), "{}", stderr(&bad));
}

#[test]
fn a_failed_poll_keeps_the_last_artifact_and_reports_the_source() {
    on_seed(&[], |repo, fleet, s| {
        let first = run(s, 30);
        let rev0 = revision(&first[0]).to_string();
        // the repository goes away: every poll fails, the Kustomizations
        // go on with the artifact fetched before
        let away = repo.with_extension("away");
        std::fs::rename(repo, &away).unwrap();
        let runs = run(s, 300);
        std::fs::rename(&away, repo).unwrap();
        assert_eq!(timeline(&runs), vec![(300, APPS, OK)]);
        assert_eq!(revision(&runs[0]), rev0);
        let failed: Vec<(u64, String)> = fleet
            .events
            .events()
            .into_iter()
            .filter(|e| e.involved_object.kind == "GitRepository")
            .map(|e| {
                assert_eq!(e.involved_object.name, "flux-system");
                assert_eq!(e.severity, driftless::fleet::Severity::Error);
                assert_eq!(e.reason, "ArtifactFailed");
                assert_eq!(e.revision, rev0);
                (e.timestamp - START.as_secs(), e.message)
            })
            .collect();
        let times: Vec<u64> = failed.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![60, 120, 180, 240, 300]);
        assert!(!failed[0].1.is_empty());
        // back, at the same revision: nothing new to reconcile
        assert!(run(s, 420).is_empty());
        assert_eq!(fleet.fetches(), 8);
    });
}

/// As controller-runtime's RequeueAfter, the next run is counted from the
/// end of a run: a health check that times out after 1m with a retry
/// interval of 2m runs again 3m after it started, not 2m.
#[test]
fn the_next_run_counts_from_the_end_of_a_run_that_waited() {
    let retry = (
        INFRA_FILE,
        "  timeout: 5m\n",
        "  timeout: 1m\n  retryInterval: 2m\n",
    );
    on_seed(&[retry], |_, fleet, s| {
        fleet.cluster.set_rollout(|o: &Object| {
            if o.kind() == "Deployment" && o.name() == "ingress-nginx-controller" {
                Rollout::Progressing
            } else {
                Rollout::Complete
            }
        });
        let runs = run(s, 200);
        let infra: Vec<(u64, &str)> = timeline(&runs)
            .into_iter()
            .filter(|(_, k, _)| *k == INFRA)
            .map(|(at, _, reason)| (at, reason))
            .collect();
        assert_eq!(
            infra,
            vec![(0, "HealthCheckFailed"), (180, "HealthCheckFailed")]
        );
        assert!(runs
            .iter()
            .find(|r| r.result.key == INFRA)
            .is_some_and(|r| r.result.message.starts_with("health check failed after 1m")));
    });
}
