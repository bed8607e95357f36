//! Scheduling a fleet as kustomize-controller and source-controller do:
//! each Kustomization again after `spec.interval` (after
//! `spec.retryInterval` when it failed, after the dependency requeue when
//! its dependencies were not ready), each GitRepository polled once per its
//! own `spec.interval`, and a new revision triggering every Kustomization
//! that reads it. Time is the injected [`Clock`](super::Clock).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    reason, root_key, root_kustomization, Artifact, FleetContext, FleetError, FleetOptions,
    FleetReport, FleetState, KustomizationResult,
};
use crate::fleet::events::{Event, InvolvedObject, Severity};
use crate::flux::{parse_duration, GitRepository, Kustomization};
use crate::object::{Object, ObjectId};

/// The shortest wait between two reconciles of one Kustomization, so that a
/// zero interval cannot spin the loop at one instant.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of a [`Scheduler`] beyond the [`FleetOptions`] of each pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// How soon a Kustomization held back by its dependencies
    /// (DependencyNotReady) is tried again: Flux's `--requeue-dependency`,
    /// 30s by default. Every wait is at least 1s, so that a zero interval
    /// cannot spin the loop at one instant.
    pub dependency_requeue: Duration,
    /// How often a source is polled when its GitRepository object is not
    /// known (neither rendered by the fleet nor in the cluster): 1m, the
    /// interval `flux bootstrap` writes.
    pub source_interval: Duration,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions {
            dependency_requeue: Duration::from_secs(30),
            source_interval: Duration::from_secs(60),
        }
    }
}

/// One reconcile run by the [`Scheduler`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    /// When it started, on the injected clock (time since the epoch).
    pub at: Duration,
    /// Its outcome.
    pub result: KustomizationResult,
}

/// Reconciles a fleet over time, as Flux's controllers would, keeping its
/// state between calls to [`Scheduler::run_until`] (so the Git repository
/// or the cluster may change between calls).
///
/// - After a Ready reconcile a Kustomization is next due at the end of the run plus
///   `spec.interval`; after a failure (BuildFailed, HealthCheckFailed,
///   ArtifactFailed, PruneFailed, ...) at its end plus
///   `spec.retryInterval` (which defaults to `spec.interval`); after
///   DependencyNotReady at its end plus
///   [`ScheduleOptions::dependency_requeue`]. The root Kustomization uses the
///   interval the cluster folder declares for it (10m when it declares none).
/// - A dependency must be Ready and, when it reads the same source, have
///   applied that source's current revision (`dependency '<ns/name>'
///   revision is not up to date` otherwise).
/// - Each source is fetched at most once per its GitRepository's
///   `spec.interval`; every Kustomization reuses that artifact until the
///   next poll. A poll that finds a new revision makes every Kustomization
///   reading that source (root included) due at once. A failed poll keeps
///   the last artifact, as source-controller does, and emits an Error event
///   for the GitRepository. A suspended GitRepository is not polled.
/// - A suspended Kustomization reports Suspended once and is not scheduled
///   again until its spec changes (a parent renders it anew); a new or
///   changed Kustomization is due at once; one no longer rendered leaves
///   the schedule, and its parent's prune garbage-collects what it applied
///   when it has `spec.prune` (Flux's finalizer).
/// - Wake-ups happen in due-time order; Kustomizations due at the same time
///   run in dependency order, then by `ns/name`. Identical inputs give
///   identical runs.
pub struct Scheduler<'c, 'a> {
    ctx: &'c FleetContext<'a>,
    options: FleetOptions,
    schedule: ScheduleOptions,
    state: FleetState,
    /// When each scheduled Kustomization (root included) is next due.
    next_due: BTreeMap<String, Duration>,
    /// When each fetched source is next polled.
    next_poll: BTreeMap<ObjectId, Duration>,
    /// The latest result of each Kustomization, in first-run order.
    latest: Vec<KustomizationResult>,
}

impl<'c, 'a> Scheduler<'c, 'a> {
    /// A scheduler over `ctx`'s fleet. The root Kustomization is due at the
    /// clock's current time; nothing runs before [`Scheduler::run_until`].
    pub fn new(
        ctx: &'c FleetContext<'a>,
        options: FleetOptions,
        schedule: ScheduleOptions,
    ) -> Self {
        let next_due = BTreeMap::from([(root_key(&options), ctx.clock.now())]);
        Scheduler {
            ctx,
            options,
            schedule,
            state: FleetState::default(),
            next_due,
            next_poll: BTreeMap::new(),
            latest: Vec::new(),
        }
    }

    /// Runs whatever is due up to `until` (time since the epoch on the
    /// injected clock, inclusive), sleeping on the clock between wake-ups,
    /// then sleeps until `until`. Returns the runs in the order they
    /// started. A later call continues where this one stopped.
    pub async fn run_until(&mut self, until: Duration) -> Result<Vec<ScheduledRun>, FleetError> {
        if !self.ctx.sources.contains_key(&self.options.root_source) {
            return Err(FleetError::NoRootSource(self.options.root_source.subject()));
        }
        let mut runs = Vec::new();
        while let Some(next) = self.next_wake() {
            if next > until {
                break;
            }
            let now = self.ctx.clock.now();
            if next > now {
                self.ctx.clock.sleep(next - now).await;
            }
            runs.extend(self.wake().await?);
        }
        let now = self.ctx.clock.now();
        if until > now {
            self.ctx.clock.sleep(until - now).await;
        }
        Ok(runs)
    }

    /// When the next Kustomization is due or the next source poll is, if
    /// anything is scheduled.
    pub fn next_wake(&self) -> Option<Duration> {
        self.next_due
            .values()
            .chain(self.next_poll.values())
            .min()
            .copied()
    }

    /// When the Kustomization `ns/name` is next due; `None` when it is not
    /// scheduled (unknown, removed, or suspended).
    pub fn next_due(&self, key: &str) -> Option<Duration> {
        self.next_due.get(key).copied()
    }

    /// The latest result of every Kustomization still in the fleet, root
    /// first, then in the order they first ran; invalid Kustomization
    /// objects last, as BuildFailed.
    pub fn report(&self) -> FleetReport {
        let mut results = self.latest.clone();
        results.extend(self.state.build_errors.iter().cloned());
        FleetReport { results }
    }

    /// One wake-up: poll the sources that are due, then one pass over the
    /// Kustomizations that are due, and schedule each again.
    async fn wake(&mut self) -> Result<Vec<ScheduledRun>, FleetError> {
        let now = self.ctx.clock.now();
        self.poll_sources(now).await;
        let root_key = root_key(&self.options);
        let mut due: BTreeSet<String> = self
            .next_due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let root = due.remove(&root_key).then(|| {
            root_kustomization(
                &root_key,
                &self.options.root_source,
                &self.options.cluster_path,
            )
        });
        let runs = self
            .ctx
            .pass(&mut self.state, &self.options, root.as_ref(), due)
            .await?;

        // Kustomizations no longer rendered leave the schedule
        let discovered = &self.state.discovered;
        self.next_due
            .retain(|k, _| *k == root_key || discovered.contains_key(k));
        self.latest
            .retain(|r| r.key == root_key || discovered.contains_key(&r.key));
        let respecified = std::mem::take(&mut self.state.respecified);
        let mut scheduled = Vec::with_capacity(runs.len());
        for (at, result) in runs {
            self.reschedule(at, &result);
            match self.latest.iter_mut().find(|r| r.key == result.key) {
                Some(r) => *r = result.clone(),
                None => self.latest.push(result.clone()),
            }
            scheduled.push(ScheduledRun { at, result });
        }
        // a spec that changed after its Kustomization ran in this pass
        // (Flux: a new generation) is reconciled at once
        let now = self.ctx.clock.now();
        for key in respecified {
            if self.state.discovered.contains_key(&key) {
                self.next_due.insert(key, now);
            }
        }
        self.refresh_polls().await;
        Ok(scheduled)
    }

    /// Schedules the next reconcile of `result.key` after a run at `at`.
    fn reschedule(&mut self, at: Duration, result: &KustomizationResult) {
        let root_key = root_key(&self.options);
        let root;
        let k: &Kustomization = if result.key == root_key {
            root = self.state.declared_root.clone().unwrap_or_else(|| {
                root_kustomization(
                    &root_key,
                    &self.options.root_source,
                    &self.options.cluster_path,
                )
            });
            &root
        } else {
            match self.state.discovered.get(&result.key) {
                Some(k) => k,
                None => {
                    self.next_due.remove(&result.key);
                    return;
                }
            }
        };
        let wait = match result.reason.as_str() {
            reason::SUSPENDED => {
                self.next_due.remove(&result.key);
                return;
            }
            reason::DEPENDENCY_NOT_READY => self.schedule.dependency_requeue,
            _ if result.ready => k.interval(),
            _ => k.retry_interval(),
        };
        // as controller-runtime's RequeueAfter: counted from the end of the
        // run (a health check may have waited)
        self.next_due.insert(
            result.key.clone(),
            at + result.duration + wait.max(MIN_INTERVAL),
        );
    }

    /// Fetches every source whose poll is due. A new revision makes every
    /// Kustomization that reads it due now.
    async fn poll_sources(&mut self, now: Duration) {
        let root_key = root_key(&self.options);
        let referenced: BTreeSet<ObjectId> = std::iter::once(self.options.root_source.clone())
            .chain(self.state.discovered.values().map(Kustomization::source_id))
            .collect();
        self.state.artifacts.retain(|id, _| referenced.contains(id));
        let due: Vec<ObjectId> = self
            .next_poll
            .iter()
            .filter(|(id, t)| **t <= now && self.state.artifacts.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            let Some(old) = self.state.artifacts.get(&id).cloned() else {
                continue;
            };
            let repositories = self.state.repositories_for(&id, &self.options);
            let fetched = self.ctx.fetch_uncached(&id, &repositories).await;
            let result = match (fetched, &old.result) {
                // source-controller keeps serving the last artifact
                (Err(e), Ok(_)) => {
                    self.source_failed(&id, &self.state.known, &old, e);
                    old.result.clone()
                }
                (fetched, _) => fetched,
            };
            let artifact = Artifact {
                result,
                fetched_at: now,
            };
            let changed = artifact.revision() != old.revision();
            self.state.artifacts.insert(id.clone(), artifact);
            if !changed {
                continue;
            }
            if id == self.options.root_source {
                self.next_due.insert(root_key.clone(), now);
            }
            for (key, k) in &self.state.discovered {
                if k.source_id() == id && !k.spec.suspend {
                    self.next_due.insert(key.clone(), now);
                }
            }
        }
    }

    /// Reports a failed poll as an Error event of the GitRepository.
    fn source_failed(&self, id: &ObjectId, known: &[Object], old: &Artifact, message: String) {
        let api_version = known
            .iter()
            .find(|o| o.id() == *id)
            .map(|o| o.api_version().to_string())
            .unwrap_or_else(|| format!("{}/v1", id.group));
        self.ctx.events.event(&Event {
            involved_object: InvolvedObject {
                api_version,
                kind: id.kind.clone(),
                namespace: id.namespace.clone(),
                name: id.name.clone(),
            },
            severity: Severity::Error,
            reason: reason::ARTIFACT_FAILED.to_string(),
            message,
            revision: old.revision().unwrap_or_default(),
            timestamp: self.ctx.clock.now().as_secs(),
        });
    }

    /// Recomputes when each fetched source is polled next.
    async fn refresh_polls(&mut self) {
        let mut next_poll = BTreeMap::new();
        for (id, artifact) in &self.state.artifacts {
            if let Some(interval) = self.source_interval(id, &self.state.known).await {
                next_poll.insert(id.clone(), artifact.fetched_at + interval.max(MIN_INTERVAL));
            }
        }
        self.next_poll = next_poll;
    }

    /// The GitRepository's `spec.interval` (from what the fleet renders, else
    /// from the cluster); `None` when it is suspended.
    async fn source_interval(&self, id: &ObjectId, known: &[Object]) -> Option<Duration> {
        let object = match known.iter().find(|o| o.id() == *id) {
            Some(o) => Some(o.clone()),
            None => self.ctx.applier.get(id).await.ok().flatten(),
        };
        let repository = object
            .filter(|o| o.kind() == "GitRepository")
            .and_then(|o| GitRepository::parse(&o).ok());
        match repository {
            Some(r) if r.spec.suspend => None,
            Some(r) => {
                Some(parse_duration(&r.spec.interval).unwrap_or(self.schedule.source_interval))
            }
            None => Some(self.schedule.source_interval),
        }
    }
}
