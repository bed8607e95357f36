//! Reconciling a Flux repository as Flux does: the cluster folder renders to
//! GitRepository and Kustomization objects, and each Kustomization is then
//! reconciled in dependency order, like Flux's bootstrap chain.
//!
//! The root Kustomization (`flux-system/flux-system`, the one that points at
//! the cluster folder) is reconciled once, first. Every Kustomization found
//! in what it (or any later one) applies is reconciled after its
//! `dependsOn` are Ready at the same source revision.
//!
//! [`FleetContext::reconcile`] runs that pass once; [`Scheduler`] runs the
//! same pass over time on the injected [`Clock`], by each Kustomization's
//! `interval` and `retryInterval` and each source's poll interval.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info_span;

use crate::apply::Applier;
use crate::flux::substitute::{check_names, substitute_rendered};
use crate::flux::{format_duration, GitRepository, Kustomization, SOURCE_GROUP};
use crate::health::{health, Status};
use crate::object::{Object, ObjectId};
use crate::pipeline::{
    default_namespaces, ChangeSet, ReconcileError, ReconcileOptions, Reconciler,
};
use crate::plan::{Action, Inventory, PlanOptions};
use crate::render::Renderer;
use crate::schema::Schema;
use crate::source::{FetchRequest, GitRef, Snapshot, Source};
use crate::verify::{danger::NoVerification, Verified, Verifier};

mod clock;
mod dag;
mod events;
#[cfg(all(feature = "ssh-verify", feature = "openpgp"))]
mod keys;
#[cfg(feature = "metrics")]
mod metrics;
mod overlay;
mod schedule;
mod status;

pub use clock::{Clock, VirtualClock};
pub use dag::{topological_order, DagError};
pub use events::{Event, EventSink, InvolvedObject, NoEvents, RecordingSink, Severity};
#[cfg(all(feature = "ssh-verify", feature = "openpgp"))]
pub use keys::KeysFromSecret;
#[cfg(feature = "metrics")]
pub use metrics::Metrics;

/// Prometheus metrics need the `metrics` feature. Without it no `Metrics`
/// value can exist, so [`FleetContext::metrics`] is always `None`, and a
/// host's `metrics: None` compiles with and without the feature.
#[cfg(not(feature = "metrics"))]
#[derive(Debug)]
pub enum Metrics {}
pub use overlay::apply_overlay;
pub use schedule::{ScheduleOptions, ScheduledRun, Scheduler};

/// Flux's owner labels, set on every applied object.
pub const NAME_LABEL: &str = crate::plan::annotations::OWNER_NAME;
/// See [`NAME_LABEL`].
pub const NAMESPACE_LABEL: &str = crate::plan::annotations::OWNER_NAMESPACE;

/// Flux's Ready reasons.
pub mod reason {
    /// Applied and healthy.
    pub const SUCCEEDED: &str = "ReconciliationSucceeded";
    /// Apply or plan failed.
    pub const FAILED: &str = "ReconciliationFailed";
    /// Render or substitution failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// Health checks failed or timed out.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// A dependency is not Ready.
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// The source could not be fetched or verified.
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// Deleting pruned objects failed.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// The plan would prune more than the prune guard allows
    /// ([`PlanOptions::max_prune`](crate::plan::PlanOptions::max_prune));
    /// nothing was applied. driftless's own reason: Flux has no prune guard.
    pub const PRUNE_LIMIT_EXCEEDED: &str = "PruneLimitExceeded";
    /// `spec.suspend` is set.
    pub const SUSPENDED: &str = "Suspended";
    /// A reference the host does not permit (a cross-namespace source
    /// under [`FleetOptions::no_cross_namespace_refs`](super::FleetOptions)).
    pub const ACCESS_DENIED: &str = "AccessDenied";
}

/// A source of the fleet, with the verifier its GitRepository asks for.
pub struct SourceBinding<'a> {
    /// Where the revision comes from.
    pub source: &'a dyn Source,
    /// The reference to fetch.
    pub reference: GitRef,
    /// Who must have signed it. `None` uses the GitRepository's `verify`
    /// through [`FleetContext::verifiers`], or no check when it has none.
    pub verifier: Option<&'a dyn Verifier>,
}

/// Builds verifiers from the Secret a GitRepository's `spec.verify` names.
pub trait VerifierFactory: Send + Sync {
    /// A verifier for `repository`, whose trusted keys are in `secret`,
    /// for one check at `now` (seconds since the Unix epoch on the fleet's
    /// [`Clock`]): keys that have expired by then must be refused.
    fn verifier(
        &self,
        repository: &GitRepository,
        secret: &Object,
        now: i64,
    ) -> Result<Box<dyn Verifier>, String>;
}

/// The policy gates of one Kustomization: Kyverno policies from two
/// sources, those rendered by the Kustomizations applied so far in the
/// pass (they stand for what a dry run did not write) and `live_policies`,
/// those in the cluster (read through the Applier before every
/// Kustomization, the root included, so a policy is enforced for
/// Kustomizations that run before the one that renders it); and the
/// tenant boundary when it runs as a tenant (see [`Identity`]), confined to
/// its own namespace (never the tenant-writable `targetNamespace`).
fn fleet_policies(
    k: &Kustomization,
    identity: &Identity,
    known_objects: &[Object],
    live_policies: Vec<Object>,
    schema: &Schema,
) -> crate::policy::PolicySet {
    let mut set = crate::policy::PolicySet::default();
    let mut policies: Vec<Object> = known_objects
        .iter()
        .filter(|o| crate::policy::is_kyverno_policy(o))
        .cloned()
        .collect();
    let rendered: BTreeSet<ObjectId> = policies.iter().map(Object::id).collect();
    policies.extend(
        live_policies
            .into_iter()
            .filter(|o| crate::policy::is_kyverno_policy(o) && !rendered.contains(&o.id())),
    );
    set.push(crate::policy::Kyverno::new(policies));
    if identity.tenant {
        set.push(crate::policy::TenantBoundary {
            namespace: k.metadata.namespace.clone(),
            tenant: format!("Kustomization/{}", k.key()),
            schema: schema.clone(),
        });
    }
    set
}

/// Who a Kustomization acts as, and whether it is a tenant.
///
/// - `spec.serviceAccountName` names a ServiceAccount of the
///   Kustomization's own namespace to impersonate.
/// - Else [`FleetOptions::default_service_account`] (Flux's
///   `--default-service-account`) names one, in the same namespace.
/// - Else the Kustomization inherits the identity of the Kustomization
///   that rendered it: one created by a tenant never acts with more than
///   the tenant's rights.
/// - Else it acts as the host (the Applier's own identity), as the root
///   does.
///
/// A Kustomization that impersonates an identity outside the fleet's own
/// namespace (the root's, `flux-system`, where only the platform's
/// Kustomizations can put one) is a tenant: the tenant boundary confines
/// what it renders to its own namespace. Kustomizations of the fleet's
/// namespace are the platform's and may name a cluster-wide identity
/// (Flux's lockdown gives them `serviceAccountName: kustomize-controller`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Identity {
    /// The impersonated user, `system:serviceaccount:<ns>:<name>`; `None`
    /// for the host's own identity.
    user: Option<String>,
    /// Confined to its own namespace by the tenant boundary.
    tenant: bool,
}

/// The ServiceAccount user a Kustomization names itself, or that the host's
/// default service account gives it.
fn own_identity(k: &Kustomization, options: &FleetOptions) -> Option<String> {
    let named = k
        .spec
        .service_account_name
        .as_deref()
        .filter(|sa| !sa.is_empty());
    let default = options
        .default_service_account
        .as_deref()
        .filter(|sa| !sa.is_empty());
    named
        .or(default)
        .map(|sa| format!("system:serviceaccount:{}:{sa}", k.metadata.namespace))
}

/// The identity of `k`, whose creator (the Kustomization that rendered it)
/// acts as `parent` (`None`: the host).
fn identity_for(k: &Kustomization, parent: Option<String>, options: &FleetOptions) -> Identity {
    let user = own_identity(k, options).or(parent);
    let tenant = user.is_some() && k.metadata.namespace != options.root_source.namespace;
    Identity { user, tenant }
}

/// Everything a fleet reconcile needs from the host.
pub struct FleetContext<'a> {
    /// Sources by GitRepository id (Flux's `--local-sources` mapping).
    pub sources: BTreeMap<ObjectId, SourceBinding<'a>>,
    /// Builds verifiers for GitRepositories with `spec.verify`.
    pub verifiers: Option<&'a dyn VerifierFactory>,
    /// Renders folders (Flux mode: auto-generated kustomizations).
    pub renderer: &'a dyn Renderer,
    /// The cluster.
    pub applier: &'a dyn Applier,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Where events go.
    pub events: &'a dyn EventSink,
    /// Metrics, when the host collects them (always `None` without the
    /// `metrics` feature).
    pub metrics: Option<&'a Metrics>,
    /// Type knowledge.
    pub schema: Schema,
}

/// Settings of a fleet run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetOptions {
    /// The cluster folder, e.g. `clusters/production`.
    pub cluster_path: String,
    /// The root GitRepository (Flux: `flux-system/flux-system`).
    pub root_source: ObjectId,
    /// Caps every Kustomization's timeout (for quick trials).
    pub max_timeout: Option<Duration>,
    /// How often health checks poll.
    pub poll_interval: Duration,
    /// Plan and dry-run only.
    pub dry_run: bool,
    /// An undefined variable without a default is an error.
    pub strict_substitution: bool,
    /// When false, nothing is pruned whatever `spec.prune` says.
    pub allow_prune: bool,
    /// The prune guard for every Kustomization (see
    /// [`PlanOptions::max_prune`]): the deletions of one run, the
    /// inventories its deleted Kustomizations garbage-collect included.
    /// `None` (the default, as in Flux) allows any prune.
    pub max_prune: Option<crate::plan::MaxPrune>,
    /// Refuse Git revisions that no verifier checked (no host verifier and
    /// no `spec.verify`), instead of reconciling them unverified as Flux does.
    pub require_signed: bool,
    /// Flux's `--default-service-account`: a Kustomization that names no
    /// `spec.serviceAccountName` impersonates this ServiceAccount of its own
    /// namespace, so a Kustomization someone forgot to give an identity
    /// gets no rights instead of the host's. `None` (Flux's default): it
    /// inherits the identity of the Kustomization that rendered it, which
    /// is the host's for the platform's Kustomizations. Platform
    /// Kustomizations that need cluster-wide rights then name one (Flux's
    /// lockdown: `serviceAccountName: kustomize-controller`). The root
    /// always acts as the host.
    pub default_service_account: Option<String>,
    /// Flux's `--no-cross-namespace-refs`: a Kustomization may only build
    /// from a source in its own namespace; any other `spec.sourceRef` fails
    /// with reason `AccessDenied` before anything is fetched. `dependsOn`
    /// may still name Kustomizations of other namespaces (as in Flux, it
    /// reads only their Ready status); `spec.decryption.secretRef` and
    /// `spec.postBuild.substituteFrom` have no namespace field and always
    /// read the Kustomization's own namespace. `false` (Flux's default):
    /// the host permits cross-namespace source references.
    pub no_cross_namespace_refs: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            cluster_path: "clusters/production".to_string(),
            root_source: ObjectId::new(SOURCE_GROUP, "GitRepository", "flux-system", "flux-system"),
            max_timeout: None,
            poll_interval: Duration::from_secs(2),
            dry_run: false,
            strict_substitution: false,
            allow_prune: true,
            max_prune: None,
            require_signed: false,
            default_service_account: None,
            no_cross_namespace_refs: false,
        }
    }
}

/// The outcome of one Kustomization, in Flux's status terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationResult {
    /// `<namespace>/<name>`.
    pub key: String,
    /// The Ready condition.
    pub ready: bool,
    /// Flux's reason (see [`reason`]).
    pub reason: String,
    /// Flux's message.
    pub message: String,
    /// The revision applied, when the reconcile succeeded.
    pub last_applied_revision: Option<String>,
    /// The revision attempted.
    pub last_attempted_revision: Option<String>,
    /// The inventory after the run.
    pub inventory: Inventory,
    /// What happened to each object.
    pub changes: ChangeSet,
    /// How long the reconcile took on the injected clock.
    #[serde(skip)]
    pub duration: Duration,
    /// The objects the Kustomization built (overlay, substitution and owner
    /// labels included), as they were planned; empty when the build failed.
    /// For diffs (see `examples/diff.rs`).
    #[serde(skip)]
    pub objects: Vec<Object>,
}

/// The outcome of a fleet run, in the order Kustomizations were reconciled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    /// One entry per Kustomization.
    pub results: Vec<KustomizationResult>,
}

impl FleetReport {
    /// True when every Kustomization is Ready.
    pub fn all_ready(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.ready)
    }

    /// The result for `ns/name`.
    pub fn get(&self, key: &str) -> Option<&KustomizationResult> {
        self.results.iter().find(|r| r.key == key)
    }
}

/// Why a fleet could not run at all (per-Kustomization failures are results).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The root source is not mapped.
    #[error("no source mapped for {0}")]
    NoRootSource(String),
    /// The dependency graph is broken.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// The overlay of the cluster a dry run goes through could not be made
    /// (see [`Applier::overlay`]).
    #[error("making the dry run's overlay of the cluster: {0}")]
    Overlay(crate::apply::ApplyError),
}

struct Outcome {
    result: KustomizationResult,
    /// What the Kustomization made live: its whole rendered set once every
    /// object was applied (or, in a dry run, would have been), even when a
    /// health check or a prune failed after. `None` when the render failed,
    /// was refused, or was applied only in part: nothing of it exists for
    /// discovery, policies or later Kustomizations, which keep seeing what
    /// it applied last.
    applied: Option<Vec<Object>>,
    events: Vec<Event>,
}

/// A fetched (and verified) source revision, reused by every Kustomization
/// that reads the source until the source's next poll.
#[derive(Clone)]
struct Artifact {
    result: Result<Verified<Snapshot>, String>,
    /// When it was fetched, on the injected clock.
    fetched_at: Duration,
}

impl Artifact {
    fn revision(&self) -> Option<String> {
        self.result.as_ref().ok().map(|s| s.revision.to_string())
    }
}

type Artifacts = BTreeMap<ObjectId, Artifact>;

/// What dependents see of a Kustomization: Ready, and at which revision of
/// which source.
#[derive(Clone)]
struct DependencyStatus {
    ready: bool,
    revision: Option<String>,
    source: ObjectId,
}

/// What a fleet remembers between passes: one pass for
/// [`FleetContext::reconcile`], many for [`Scheduler`].
#[derive(Default)]
struct FleetState {
    artifacts: Artifacts,
    /// What each Kustomization rendered last (root included), in the order
    /// they first ran.
    rendered: Vec<(String, Vec<Object>)>,
    /// Everything in `rendered`, in that order: the objects that stand for
    /// the live ones (GitRepositories, verify Secrets, CRDs, policies).
    known: Vec<Object>,
    /// The Kustomizations found in what was rendered (root excluded).
    discovered: BTreeMap<String, Kustomization>,
    /// The Kustomization that rendered each discovered one (its creator,
    /// whose identity it inherits).
    parents: BTreeMap<String, String>,
    /// The root Kustomization as the cluster folder declares it.
    declared_root: Option<Kustomization>,
    /// Kustomization objects that do not parse, as BuildFailed results.
    build_errors: Vec<KustomizationResult>,
    /// Readiness as dependents see it.
    status: BTreeMap<String, DependencyStatus>,
    /// Kustomizations whose spec changed after they ran in the current pass.
    respecified: BTreeSet<String>,
    /// The applier is an overlay made for a dry run (see
    /// [`FleetContext::reconcile`]): writes go through as in a real run,
    /// health checks do not run, and results read as a dry run's.
    scratch: bool,
}

impl FleetState {
    /// Records what `key` rendered: appended when it is new (as in a
    /// one-shot pass), the known objects rebuilt when it replaces an entry.
    fn set_rendered(&mut self, key: &str, objects: Vec<Object>) {
        match self.rendered.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => {
                entry.1 = objects;
                self.rebuild_known();
            }
            None => {
                self.known.extend(objects.iter().cloned());
                self.rendered.push((key.to_string(), objects));
            }
        }
    }

    /// The identity of the discovered Kustomization `key`: its own, else
    /// inherited down the chain of creators from the root (the host).
    fn identity(&self, key: &str, options: &FleetOptions) -> Identity {
        let root = root_key(options);
        let mut chain: Vec<&Kustomization> = Vec::new();
        let mut at = key;
        while at != root && chain.len() <= self.discovered.len() {
            let Some(k) = self.discovered.get(at) else {
                break;
            };
            chain.push(k);
            match self.parents.get(at) {
                Some(p) => at = p,
                None => break,
            }
        }
        chain.iter().rev().fold(Identity::default(), |parent, k| {
            identity_for(k, parent.user, options)
        })
    }

    /// The GitRepository objects that may configure how `source` is
    /// fetched and verified: those rendered from *other* sources' revisions.
    /// A revision never configures its own verification (a commit could
    /// otherwise name the keys that sign it); for the root, and for any
    /// source rendered only by itself, the live object counts.
    fn repositories_for(&self, source: &ObjectId, options: &FleetOptions) -> Vec<Object> {
        let root_key = root_key(options);
        self.rendered
            .iter()
            .filter(|(key, _)| {
                let from = if *key == root_key {
                    Some(options.root_source.clone())
                } else {
                    self.discovered.get(key).map(Kustomization::source_id)
                };
                from.is_some_and(|from| from != *source)
            })
            .flat_map(|(_, objects)| objects.iter())
            .filter(|o| o.kind() == "GitRepository" && o.id() == *source)
            .cloned()
            .collect()
    }

    fn rebuild_known(&mut self) {
        self.known = self
            .rendered
            .iter()
            .flat_map(|(_, objects)| objects.iter().cloned())
            .collect();
    }
}

/// How discovery changed the set of Kustomizations.
#[derive(Default)]
struct Discovery {
    /// New keys, and keys whose spec changed (Flux: a new generation).
    due: Vec<String>,
    /// Keys no longer rendered by anyone.
    removed: Vec<String>,
}

/// One result of a pass: when it started, and the result.
type Run = (Duration, KustomizationResult);

impl FleetContext<'_> {
    /// Reconciles the fleet once: the root, then every Kustomization in
    /// dependency order.
    ///
    /// A dry run ([`FleetOptions::dry_run`]) goes through an
    /// [`Overlay`](crate::apply::Overlay) of the cluster when the applier
    /// makes one ([`Applier::overlay`]): each Kustomization is applied,
    /// pruned and garbage-collected in the overlay, so later ones see what
    /// earlier ones would create (a tenant's Namespace and RoleBindings, a
    /// CRD's kind), and the cluster itself is never written. Health checks
    /// do not run in a dry run.
    pub async fn reconcile(&self, options: &FleetOptions) -> Result<FleetReport, FleetError> {
        if !self.sources.contains_key(&options.root_source) {
            return Err(FleetError::NoRootSource(options.root_source.subject()));
        }
        if options.dry_run {
            if let Some(overlay) = self.applier.overlay().map_err(FleetError::Overlay)? {
                let sources = self.sources.iter().map(|(id, b)| {
                    let b = SourceBinding {
                        source: b.source,
                        reference: b.reference.clone(),
                        verifier: b.verifier,
                    };
                    (id.clone(), b)
                });
                let scratch = FleetContext {
                    sources: sources.collect(),
                    verifiers: self.verifiers,
                    renderer: self.renderer,
                    applier: overlay.as_ref(),
                    clock: self.clock,
                    events: self.events,
                    metrics: self.metrics,
                    schema: self.schema.clone(),
                };
                return scratch.reconcile_once(options, true).await;
            }
        }
        self.reconcile_once(options, false).await
    }

    /// One pass from the root; `scratch`: the applier is an overlay made
    /// for this dry run, written to as if it were no dry run.
    async fn reconcile_once(
        &self,
        options: &FleetOptions,
        scratch: bool,
    ) -> Result<FleetReport, FleetError> {
        let mut state = FleetState {
            scratch,
            ..FleetState::default()
        };
        let root = root_kustomization(
            &root_key(options),
            &options.root_source,
            &options.cluster_path,
        );
        let runs = self
            .pass(&mut state, options, Some(&root), BTreeSet::new())
            .await?;
        let mut report = FleetReport {
            results: runs.into_iter().map(|(_, r)| r).collect(),
        };
        report.results.extend(state.build_errors);
        Ok(report)
    }

    /// One pass over the fleet: `root` first when given, then every key of
    /// `due` and every Kustomization discovered (or respecified) during the
    /// pass, in dependency order (ties by `ns/name`). Kustomizations not in
    /// the pass count with their latest status.
    async fn pass(
        &self,
        state: &mut FleetState,
        options: &FleetOptions,
        root: Option<&Kustomization>,
        due: BTreeSet<String>,
    ) -> Result<Vec<Run>, FleetError> {
        let root_key = root_key(options);
        let mut runs: Vec<Run> = Vec::new();
        let mut pending: BTreeSet<String> = due;
        let mut done: BTreeSet<String> = BTreeSet::new();
        state.respecified.clear();
        if let Some(root) = root {
            let at = self.clock.now();
            let repositories = state.repositories_for(&root.source_id(), options);
            let mut outcome = self
                .reconcile_one(
                    root,
                    &Identity::default(),
                    options,
                    &mut state.artifacts,
                    &state.known,
                    &repositories,
                    state.scratch,
                )
                .await;
            self.write_status(&mut outcome, options).await;
            self.record(state, options, at, outcome, &mut pending, &done, &mut runs);
            done.insert(root_key.clone());
        }
        loop {
            pending.retain(|k| state.discovered.contains_key(k));
            if pending.is_empty() {
                break;
            }
            // the graph of the Kustomizations still to run in this pass;
            // the others are satisfied edges
            let deps: BTreeMap<String, Vec<String>> = pending
                .iter()
                .map(|key| (key.clone(), dependency_keys(&state.discovered[key])))
                .collect();
            let graph: BTreeMap<String, Vec<String>> = deps
                .iter()
                .map(|(k, ds)| {
                    let ds = ds.iter().filter(|d| pending.contains(*d)).cloned();
                    (k.clone(), ds.collect())
                })
                .collect();
            let order = match topological_order(&graph) {
                Ok(order) => order,
                // a cycle is an error for its members only; their dependents
                // then wait on a dependency that is not ready, and
                // independent branches go on
                Err(DagError::Cycle { cycle }) => {
                    let message = DagError::Cycle {
                        cycle: cycle.clone(),
                    }
                    .to_string();
                    let members: BTreeSet<&String> = cycle.iter().collect();
                    for key in members {
                        self.not_ready(state, key, message.clone(), &mut runs);
                        pending.remove(key);
                        done.insert(key.clone());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let settled = |d: &String| {
                !pending.contains(d) && (*d == root_key || state.discovered.contains_key(d))
            };
            let batch: Vec<String> = order
                .into_iter()
                .filter(|k| deps[k].iter().all(settled))
                .collect();
            if batch.is_empty() {
                for key in std::mem::take(&mut pending) {
                    let missing = deps[&key]
                        .iter()
                        .find(|d| **d != root_key && !state.discovered.contains_key(*d));
                    let message = match missing {
                        Some(d) => format!("dependency '{d}' not found"),
                        None => "dependencies do not resolve".to_string(),
                    };
                    self.not_ready(state, &key, message, &mut runs);
                }
                break;
            }
            for key in batch {
                pending.remove(&key);
                let Some(k) = state.discovered.get(&key).cloned() else {
                    continue;
                };
                done.insert(key.clone());
                if let Some(message) = blocking_dependency(&k, state) {
                    self.not_ready(state, &key, message, &mut runs);
                    continue;
                }
                let at = self.clock.now();
                let identity = state.identity(&key, options);
                let repositories = state.repositories_for(&k.source_id(), options);
                let mut outcome = self
                    .reconcile_one(
                        &k,
                        &identity,
                        options,
                        &mut state.artifacts,
                        &state.known,
                        &repositories,
                        state.scratch,
                    )
                    .await;
                self.write_status(&mut outcome, options).await;
                self.record(state, options, at, outcome, &mut pending, &done, &mut runs);
            }
        }
        Ok(runs)
    }

    /// Records a reconcile: its rendered objects (which may add or remove
    /// Kustomizations), its status for dependents, events and metrics.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        state: &mut FleetState,
        options: &FleetOptions,
        at: Duration,
        outcome: Outcome,
        pending: &mut BTreeSet<String>,
        done: &BTreeSet<String>,
        runs: &mut Vec<Run>,
    ) {
        let key = outcome.result.key.clone();
        // a render that failed or was refused keeps what was applied before
        // (Flux deletes nothing then); its own objects never count
        if let Some(applied) = &outcome.applied {
            state.set_rendered(&key, applied.clone());
        }
        let discovery = self.rediscover(state, options);
        for k in discovery.due {
            if done.contains(&k) {
                state.respecified.insert(k);
            } else {
                pending.insert(k);
            }
        }
        for k in discovery.removed {
            pending.remove(&k);
        }
        // a suspended Kustomization keeps the status it had (Flux does not
        // touch the Ready condition of a suspended object)
        let suspended = outcome.result.reason == reason::SUSPENDED;
        if !(suspended && state.status.contains_key(&key)) {
            let source = match state.discovered.get(&key) {
                Some(k) => k.source_id(),
                None => options.root_source.clone(),
            };
            let r = &outcome.result;
            let revision = r
                .ready
                .then(|| {
                    r.last_applied_revision
                        .clone()
                        .or_else(|| r.last_attempted_revision.clone())
                })
                .flatten();
            state.status.insert(
                key,
                DependencyStatus {
                    ready: r.ready,
                    revision,
                    source,
                },
            );
        }
        let result = self.finish(outcome);
        runs.push((at, result));
    }

    /// Records a Kustomization held back by its dependencies.
    fn not_ready(&self, state: &mut FleetState, key: &str, message: String, runs: &mut Vec<Run>) {
        let at = self.clock.now();
        let r = failed(key, reason::DEPENDENCY_NOT_READY, message);
        if let Some(k) = state.discovered.get(key) {
            self.emit(k, &r);
            state.status.insert(
                key.to_string(),
                DependencyStatus {
                    ready: false,
                    revision: None,
                    source: k.source_id(),
                },
            );
        }
        runs.push((at, r));
    }

    /// Writes a run's result to the live Kustomization's status through
    /// [`Applier::update_status`], as kustomize-controller does after each
    /// reconcile (see [`status::kustomization_status`]), once the run has
    /// written to the cluster: it applied its objects (Ready, or
    /// HealthCheckFailed or PruneFailed after the apply), or some of them.
    ///
    /// A run that stopped before any write (BuildFailed, ArtifactFailed,
    /// PruneLimitExceeded, AccessDenied, DependencyNotReady, a refused
    /// dry-run) leaves the cluster byte-identical, its status included:
    /// driftless's fail-closed rule, where Flux would record Ready=False;
    /// the result and its event say why. Nothing is written in a dry run,
    /// for a suspended Kustomization (Flux leaves its status alone), or for
    /// one that is not live (the root, when the cluster folder does not
    /// declare it). A status that cannot be read or written makes the
    /// result not Ready, as a failed status patch fails Flux's reconcile.
    async fn write_status(&self, outcome: &mut Outcome, options: &FleetOptions) {
        let wrote = outcome.applied.is_some()
            || outcome.result.changes.entries.iter().any(|e| {
                matches!(
                    e.action,
                    Action::Created | Action::Configured | Action::Deleted
                )
            });
        let result = &mut outcome.result;
        if options.dry_run || !wrote || status::keeps_status(result) {
            return;
        }
        let Some((ns, name)) = result.key.split_once('/') else {
            return;
        };
        let id = ObjectId::new(crate::flux::KUSTOMIZE_GROUP, "Kustomization", ns, name);
        let written = match self.applier.get(&id).await {
            Ok(None) => return,
            Ok(Some(live)) => {
                let now = i64::try_from(self.clock.now().as_secs()).unwrap_or(i64::MAX);
                let status = status::kustomization_status(&live, result, now);
                self.applier.update_status(&id, &status).await.map(drop)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            result.ready = false;
            if result.reason == reason::SUCCEEDED {
                result.reason = reason::FAILED.to_string();
            }
            result.message = format!("{}; writing the status failed: {e}", result.message);
        }
    }

    fn finish(&self, outcome: Outcome) -> KustomizationResult {
        for e in &outcome.events {
            self.events.event(e);
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = self.metrics {
            let (ns, name) = outcome
                .result
                .key
                .split_once('/')
                .unwrap_or(("", &outcome.result.key));
            m.observe_duration("Kustomization", name, ns, outcome.result.duration);
            m.record_ready("Kustomization", name, ns, outcome.result.ready);
        }
        outcome.result
    }

    /// Recomputes the Kustomizations from what the root and each of them
    /// rendered last; invalid ones become BuildFailed results. A
    /// Kustomization no longer rendered by the root or a remaining parent
    /// leaves, and so do the ones only it rendered.
    fn rediscover(&self, state: &mut FleetState, options: &FleetOptions) -> Discovery {
        let root_key = root_key(options);
        let mut owners: BTreeSet<String> = BTreeSet::from([root_key.clone()]);
        loop {
            let mut discovered: BTreeMap<String, Kustomization> = BTreeMap::new();
            let mut parents: BTreeMap<String, String> = BTreeMap::new();
            let mut errors: Vec<KustomizationResult> = Vec::new();
            let mut declared_root = None;
            for (parent, rendered) in state.rendered.iter().filter(|(k, _)| owners.contains(k)) {
                for o in rendered.iter().filter(|o| {
                    o.kind() == "Kustomization" && o.group() == crate::flux::KUSTOMIZE_GROUP
                }) {
                    let key = format!("{}/{}", o.namespace(), o.name());
                    match Kustomization::parse(o) {
                        // the root Kustomization points back at the cluster
                        // folder: it is reconciled once per pass, never
                        // recursively
                        Ok(k) if is_root(&k, options) => {
                            declared_root.get_or_insert(k);
                        }
                        Ok(_) if key == *parent => {}
                        Ok(k) => {
                            if let std::collections::btree_map::Entry::Vacant(e) =
                                discovered.entry(key.clone())
                            {
                                e.insert(k);
                                parents.insert(key, parent.clone());
                            }
                        }
                        Err(e) => {
                            if !errors.iter().any(|r| r.key == key) {
                                errors.push(failed(&key, reason::BUILD_FAILED, e.to_string()));
                            }
                        }
                    }
                }
            }
            let next: BTreeSet<String> = std::iter::once(root_key.clone())
                .chain(discovered.keys().cloned())
                .collect();
            if next != owners {
                owners = next;
                continue;
            }
            let mut change = Discovery::default();
            for (key, k) in &discovered {
                if state
                    .discovered
                    .get(key)
                    .is_none_or(|old| old.spec != k.spec)
                {
                    change.due.push(key.clone());
                }
            }
            for key in state.discovered.keys() {
                if !discovered.contains_key(key) {
                    change.removed.push(key.clone());
                    state.status.remove(key);
                }
            }
            let before = state.rendered.len();
            state.rendered.retain(|(k, _)| owners.contains(k));
            if state.rendered.len() != before {
                state.rebuild_known();
            }
            state.discovered = discovered;
            state.parents = parents;
            state.build_errors = errors;
            if declared_root.is_some() {
                state.declared_root = declared_root;
            }
            return change;
        }
    }

    fn emit(&self, k: &Kustomization, r: &KustomizationResult) {
        self.events.event(&event_for(k, r, self.clock.now()));
    }

    async fn fetch(
        &self,
        id: &ObjectId,
        repositories: &[Object],
        artifacts: &mut Artifacts,
    ) -> Result<Verified<Snapshot>, String> {
        if let Some(a) = artifacts.get(id) {
            return a.result.clone();
        }
        let fetched_at = self.clock.now();
        let result = self.fetch_uncached(id, repositories).await;
        artifacts.insert(
            id.clone(),
            Artifact {
                result: result.clone(),
                fetched_at,
            },
        );
        result
    }

    /// Fetches and verifies `id`. How (the reference, `spec.verify`) comes
    /// from its GitRepository as the fleet trusts it: one of `repositories`
    /// (rendered from other sources' revisions, see
    /// [`FleetState::repositories_for`]), else the live object. Never from
    /// the revision being fetched.
    async fn fetch_uncached(
        &self,
        id: &ObjectId,
        repositories: &[Object],
    ) -> Result<Verified<Snapshot>, String> {
        let binding = self.sources.get(id).ok_or_else(|| {
            format!(
                "no source mapped for {} (use --local-sources)",
                id.subject()
            )
        })?;
        let repo_obj = match repositories.iter().find(|o| o.id() == *id) {
            Some(o) => Some(o.clone()),
            None => self.applier.get(id).await.map_err(|e| e.to_string())?,
        };
        let repo = match &repo_obj {
            Some(o) if o.kind() == "GitRepository" => {
                Some(GitRepository::parse(o).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let reference = repo
            .as_ref()
            .and_then(|r| r.spec.reference.clone())
            .unwrap_or_else(|| binding.reference.clone());
        let request = FetchRequest::new(reference);
        // the verifier is chosen before the fetch: the source checks the
        // signature before it reads the tree
        let from_secret: Box<dyn Verifier>;
        let verifier: &dyn Verifier = match (binding.verifier, repo.as_ref()) {
            (Some(v), _) => v,
            (None, Some(r)) if r.spec.verify.is_some() => {
                from_secret = self.verifier_from_secret(id, r).await?;
                from_secret.as_ref()
            }
            (None, _) => &NoVerification,
        };
        binding
            .source
            .fetch_verified(&request, verifier)
            .await
            .map_err(|e| match e {
                // the refusal alone, as the verifier words it
                crate::source::FetchError::Verify(r) => r.error.to_string(),
                other => other.to_string(),
            })
    }

    /// The verifier `repo.spec.verify` asks for, with the keys of the
    /// Secret it names, read from the cluster. Keys never come from what a
    /// revision renders: a Secret that is not live fails closed.
    async fn verifier_from_secret(
        &self,
        id: &ObjectId,
        repo: &GitRepository,
    ) -> Result<Box<dyn Verifier>, String> {
        let Some(verify) = &repo.spec.verify else {
            return Ok(Box::new(NoVerification));
        };
        let factory = self.verifiers.ok_or_else(|| {
            format!(
                "{} requires signature verification, but no verifier is configured",
                id.subject()
            )
        })?;
        let secret_id = ObjectId::new(
            "",
            "Secret",
            &repo.metadata.namespace,
            &verify.secret_ref.name,
        );
        let secret = self
            .applier
            .get(&secret_id)
            .await
            .map_err(|e| format!("{}: {e}", secret_id.subject()))?
            .ok_or_else(|| {
                format!(
                    "{} requires signature verification with the keys of {}, which is not in the cluster (verification keys are read only from live Secrets)",
                    id.subject(),
                    secret_id.subject()
                )
            })?;
        let now = i64::try_from(self.clock.now().as_secs()).unwrap_or(i64::MAX);
        factory.verifier(repo, &secret, now)
    }

    /// A revision that renders its own GitRepository with `spec.verify`
    /// demands verification, but cannot say how: the keys (and the Secret
    /// holding them) count only from the host or from the GitRepository the
    /// fleet trusted before the fetch (live, or rendered from another
    /// source). So when nothing verified the revision, a rendered
    /// `spec.verify` fails it closed, before anything is applied; the
    /// failure is recorded on the source's artifact, so every Kustomization
    /// reading it fails too.
    async fn verify_described_source(
        &self,
        k: &Kustomization,
        snapshot: &Verified<Snapshot>,
        rendered: &[Object],
        artifacts: &mut Artifacts,
    ) -> Result<(), String> {
        let id = k.source_id();
        let host_verifies = self.sources.get(&id).is_some_and(|b| b.verifier.is_some());
        if !snapshot.verdict().is_skipped() || host_verifies {
            return Ok(());
        }
        let Some(obj) = rendered
            .iter()
            .find(|o| o.id() == id && o.kind() == "GitRepository")
        else {
            return Ok(());
        };
        let repo = GitRepository::parse(obj).map_err(|e| e.to_string())?;
        let Some(verify) = &repo.spec.verify else {
            return Ok(());
        };
        let secret = ObjectId::new("", "Secret", &id.namespace, &verify.secret_ref.name);
        let message = format!(
            "{} in revision {} requires signature verification with the keys of {}, but nothing trusted verified the revision: a revision cannot choose the keys that verify it (give the host's trusted keys, or apply the GitRepository with spec.verify and the Secret first, as flux bootstrap does)",
            id.subject(),
            snapshot.revision,
            secret.subject()
        );
        let fetched_at = artifacts
            .get(&id)
            .map_or(self.clock.now(), |a| a.fetched_at);
        artifacts.insert(
            id,
            Artifact {
                result: Err(message.clone()),
                fetched_at,
            },
        );
        Err(message)
    }

    /// The live Kustomization objects listed in `inventory`. An entry that
    /// does not parse, or a read that fails, is an error: a Kustomization
    /// skipped here would never have its inventory garbage-collected.
    async fn live_kustomizations(
        &self,
        owner: &str,
        inventory: &Inventory,
    ) -> Result<Vec<Object>, ReconcileError> {
        let mut out = Vec::new();
        for e in &inventory.entries {
            let id = e.id.parse::<ObjectId>().map_err(|err| {
                ReconcileError::Read(crate::apply::ApplyError::Invalid {
                    subject: format!("inventory {owner}"),
                    message: format!("entry {:?}: {err}", e.id),
                    causes: Default::default(),
                })
            })?;
            if id.group != crate::flux::KUSTOMIZE_GROUP || id.kind != "Kustomization" {
                continue;
            }
            if let Some(o) = self.applier.get(&id).await.map_err(ReconcileError::Read)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// What Flux's finalizer garbage-collects when the Kustomizations
    /// `deleted` (of those in `owned`, the live ones a run starts from) are
    /// deleted: each one with `spec.prune` and not suspended, with its
    /// recorded inventory, nested Kustomizations first (post-order), as in
    /// a cluster, where a Kustomization's finalizer holds back the deletion
    /// of its namespace and of the RoleBindings its tenant acts through.
    async fn collectable(
        &self,
        deleted: &BTreeSet<ObjectId>,
        owned: &[Object],
        owner: &Identity,
        options: &FleetOptions,
    ) -> Result<Vec<(Kustomization, Identity, Inventory)>, ReconcileError> {
        // each acts as it did when it ran (its own identity, else its
        // creator's)
        let mut stack: Vec<(Object, bool, Option<String>)> = owned
            .iter()
            .filter(|o| deleted.contains(&o.id()))
            .rev()
            .map(|o| (o.clone(), false, owner.user.clone()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut order: Vec<(Kustomization, Identity, Inventory)> = Vec::new();
        let mut inventories: BTreeMap<String, Inventory> = BTreeMap::new();
        while let Some((live, expanded, parent)) = stack.pop() {
            let k = Kustomization::from_object(&live).map_err(|e| {
                ReconcileError::Read(crate::apply::ApplyError::Invalid {
                    subject: live.id().subject(),
                    message: format!("cannot garbage-collect its inventory: {e}"),
                    causes: Default::default(),
                })
            })?;
            if !k.spec.prune || k.spec.suspend {
                continue;
            }
            let identity = identity_for(&k, parent.clone(), options);
            let key = k.key();
            if expanded {
                let inventory = inventories.remove(&key).unwrap_or_default();
                order.push((k, identity, inventory));
                continue;
            }
            if !seen.insert(key.clone()) {
                continue;
            }
            stack.push((live, true, parent));
            let inventory = self
                .applier
                .read_inventory(&key)
                .await
                .map_err(ReconcileError::Read)?
                .unwrap_or_default();
            let nested = self.live_kustomizations(&key, &inventory).await?;
            inventories.insert(key, inventory);
            stack.extend(
                nested
                    .into_iter()
                    .rev()
                    .map(|o| (o, false, identity.user.clone())),
            );
        }
        Ok(order)
    }

    /// Flux's finalizer: the Kustomizations of `collectable` have the
    /// objects of their inventories deleted (each as it acted when it ran),
    /// in that order, before the run that deletes them: as in a cluster, a
    /// Kustomization object is gone only once its finalizer is done.
    /// Returns what was deleted; on a failure it stops there, with the
    /// message, and the rest of that inventory stays recorded (the run that
    /// would delete the Kustomization does not go ahead, so the next one
    /// tries again).
    async fn garbage_collect(
        &self,
        collectable: &[(Kustomization, Identity, Inventory)],
        reconciler: &Reconciler<'_>,
        snapshot: &Verified<Snapshot>,
    ) -> Result<ChangeSet, (ChangeSet, String)> {
        let mut out = ChangeSet::default();
        for (k, identity, _) in collectable {
            let key = k.key();
            let ropts = ReconcileOptions {
                path: k.spec.path.clone().unwrap_or_default(),
                reference: GitRef::default(),
                last_applied: None,
                owner: key.clone(),
                plan: PlanOptions {
                    prune: true,
                    owner: Some(key.clone()),
                    ..PlanOptions::default()
                },
                dry_run: false,
                impersonate: identity.user.clone(),
                policies: crate::policy::PolicySet::default(),
            };
            let run = reconciler
                .reconcile_objects(
                    snapshot.revision.clone(),
                    snapshot.verdict().clone(),
                    Vec::new(),
                    Vec::new(),
                    &ropts,
                )
                .await;
            match run {
                Ok(report) => out.entries.extend(report.changes.entries),
                Err(e) => {
                    if let ReconcileError::Prune { done, .. } | ReconcileError::Apply { done, .. } =
                        &e
                    {
                        out.entries.extend(done.entries.iter().cloned());
                    }
                    let message = format!("garbage collection of Kustomization/{key} failed: {e}");
                    return Err((out, message));
                }
            }
        }
        Ok(out)
    }

    /// Reconciles one Kustomization. `scratch`: see [`FleetState::scratch`].
    #[allow(clippy::too_many_arguments)]
    async fn reconcile_one(
        &self,
        k: &Kustomization,
        identity: &Identity,
        options: &FleetOptions,
        artifacts: &mut Artifacts,
        known_objects: &[Object],
        repositories: &[Object],
        scratch: bool,
    ) -> Outcome {
        // a dry run through an overlay writes to the overlay as a real run
        // would; any other dry run writes nothing
        let writes = !options.dry_run || scratch;
        let _span = info_span!("kustomization", key = %k.key()).entered();
        let start = self.clock.now();
        let key = k.key();
        let read = self.applier.read_inventory(&key).await;
        let mut result = failed(&key, reason::FAILED, String::new());
        // `live`: every object was applied (see `Outcome::applied`)
        let outcome = |mut result: KustomizationResult,
                       rendered: Vec<Object>,
                       live: bool,
                       clock: &dyn Clock| {
            result.duration = clock.now().saturating_sub(start);
            result.objects = rendered.clone();
            let events = vec![event_for(k, &result, clock.now())];
            Outcome {
                result,
                applied: live.then_some(rendered),
                events,
            }
        };
        // an inventory that cannot be read stops the run: an empty one in
        // its place would lose track of every object it records
        match read {
            Ok(previous) => result.inventory = previous.unwrap_or_default(),
            Err(e) => {
                result.message = format!("reading the inventory failed: {e}");
                return outcome(result, Vec::new(), false, self.clock);
            }
        }
        if k.spec.suspend {
            result.reason = reason::SUSPENDED.to_string();
            result.message = "Reconciliation is suspended".to_string();
            return outcome(result, Vec::new(), false, self.clock);
        }
        // Flux's --no-cross-namespace-refs, before anything is fetched
        let source_id = k.source_id();
        if options.no_cross_namespace_refs && source_id.namespace != k.metadata.namespace {
            result.reason = reason::ACCESS_DENIED.to_string();
            result.message = format!(
                "can't access '{}/{}/{}', cross-namespace references have been blocked",
                source_id.kind, source_id.namespace, source_id.name
            );
            return outcome(result, Vec::new(), false, self.clock);
        }
        // a Kustomization for another cluster is never applied to this one
        // (the fleet reconciles through its one Applier; a kubeconfig is
        // credentials it does not take from Git)
        if k.spec.kube_config.is_some() {
            result.message = format!(
                "spec.kubeConfig is not supported: {} targets a remote cluster, and the fleet applies only through its own Applier",
                k.key()
            );
            return outcome(result, Vec::new(), false, self.clock);
        }
        let snapshot = match self.fetch(&source_id, repositories, artifacts).await {
            Ok(s) => s,
            Err(e) => {
                result.reason = reason::ARTIFACT_FAILED.to_string();
                result.message = e;
                return outcome(result, Vec::new(), false, self.clock);
            }
        };
        let revision = snapshot.revision.to_string();
        result.last_attempted_revision = Some(revision.clone());
        // a Git revision nobody checked is refused when the host asks for
        // signed revisions (a plain folder carries no signature to check),
        // before its files are rendered: nothing in it can supply keys
        if options.require_signed && snapshot.verdict().is_skipped() && snapshot.commit.is_some() {
            result.reason = reason::ARTIFACT_FAILED.to_string();
            result.message = format!(
                "refusing to reconcile unverified revision {revision} of {}: no trusted keys (the host gave none, and no GitRepository with spec.verify was trusted before this revision: live in the cluster, or rendered from another source; a revision never names its own keys)",
                k.source_id().subject()
            );
            return outcome(result, Vec::new(), false, self.clock);
        }

        // build: the Kustomization's own fields layered as Flux's generator does
        let path = crate::source::join_path("", k.spec.path.as_deref().unwrap_or("./"))
            .unwrap_or_default();
        let secrets = match &k.spec.decryption {
            Some(d) => self.secret_rules(k, d).await.map(Some),
            None => Ok(None),
        };
        let built = secrets.and_then(|secrets| {
            apply_overlay(&snapshot.tree, &path, &k.spec)
                .map_err(|e| e.to_string())
                .and_then(|tree| {
                    let snap = snapshot.with_tree(tree);
                    match &secrets {
                        Some(rules) => self.renderer.render_with_secrets(&snap, &path, rules),
                        None => self.renderer.render(&snap, &path),
                    }
                    .map_err(|e| e.to_string())
                })
        });
        let rendered = match built {
            Ok(r) => r,
            Err(e) => {
                result.reason = reason::BUILD_FAILED.to_string();
                result.message = e;
                return outcome(result, Vec::new(), false, self.clock);
            }
        };
        if let Err(e) = self
            .verify_described_source(k, &snapshot, &rendered.objects, artifacts)
            .await
        {
            result.reason = reason::ARTIFACT_FAILED.to_string();
            result.message = e;
            return outcome(result, Vec::new(), false, self.clock);
        }
        let mut rendered = rendered;
        if let Some(cm) = &k.spec.common_metadata {
            for o in &mut rendered.objects {
                for (key, v) in &cm.labels {
                    o.set_metadata_entry("labels", key, v);
                }
                for (key, v) in &cm.annotations {
                    o.set_metadata_entry("annotations", key, v);
                }
            }
        }
        // post-build substitution, then the plaintext-Secret rule again on
        // its output (a variable may make a Secret or fill one)
        if let Some(pb) = &k.spec.post_build {
            match self.substitution_vars(k, pb).await {
                Ok(vars) => match substitute_rendered(rendered, &vars, options.strict_substitution)
                {
                    Ok(r) => rendered = r,
                    Err(e) => {
                        result.reason = reason::BUILD_FAILED.to_string();
                        result.message = e.to_string();
                        return outcome(result, Vec::new(), false, self.clock);
                    }
                },
                Err(e) => {
                    result.reason = reason::BUILD_FAILED.to_string();
                    result.message = e;
                    return outcome(result, Vec::new(), false, self.clock);
                }
            }
        }
        let mut objects = rendered.objects;
        for o in &mut objects {
            o.set_metadata_entry("labels", NAME_LABEL, &k.metadata.name);
            o.set_metadata_entry("labels", NAMESPACE_LABEL, &k.metadata.namespace);
        }
        // kinds whose CRDs this pass renders are scoped as their CRDs say;
        // the others as the cluster's discovery says (never assumed
        // namespaced: the tenant boundary and the namespace defaults read
        // the scope)
        let mut schema = self.schema.clone();
        for o in known_objects.iter().chain(objects.iter()) {
            if o.kind() == "CustomResourceDefinition" {
                schema.register_crd(o);
            }
        }
        if let Err(e) = self.discover_scopes(&objects, &mut schema).await {
            result.message = format!("reading the cluster's discovery failed: {e}");
            return outcome(result, Vec::new(), false, self.clock);
        }
        default_namespaces(&mut objects, &schema);

        // the policies in force in the cluster, read before every
        // Kustomization; a cluster that cannot say which are in force
        // fails the run (nothing applied unchecked)
        let live_policies = match self.live_policies().await {
            Ok(p) => p,
            Err(e) => {
                result.message = format!("reading the live Kyverno policies failed: {e}");
                return outcome(result, Vec::new(), false, self.clock);
            }
        };
        let reconciler = Reconciler {
            source: &NoSource,
            verifier: &NoVerification,
            renderer: self.renderer,
            applier: self.applier,
            schema: schema.clone(),
        };
        let ropts = ReconcileOptions {
            path: path.clone(),
            reference: GitRef::default(),
            last_applied: None,
            owner: key.clone(),
            plan: PlanOptions {
                prune: k.spec.prune && options.allow_prune,
                force: k.spec.force,
                max_prune: options.max_prune,
                owner: Some(key.clone()),
                ..PlanOptions::default()
            },
            dry_run: !writes,
            impersonate: identity.user.clone(),
            policies: fleet_policies(k, identity, known_objects, live_policies, &schema),
        };
        // the Kustomizations this one owned, as they are before the run: one
        // it prunes is deleted, and its finalizer garbage-collects first; the
        // prune guard counts those inventories too
        let mut collected = ChangeSet::default();
        // why the run below stopped: a pipeline error (with the Ready reason
        // when the error alone does not tell), or a failed garbage collection
        enum Stop {
            Run(ReconcileError, &'static str),
            Collect(String),
        }
        let applied = async {
            let failed_as = |reason: &'static str| move |e: ReconcileError| Stop::Run(e, reason);
            // a Kustomization that lists its own object (the root does) never
            // garbage-collects itself: its inventory is the one this run
            // reconciles, and pruning its object (renamed in Git) deletes
            // that object alone
            let owned: Vec<Object> = self
                .live_kustomizations(&key, &result.inventory)
                .await
                .map_err(failed_as(reason::FAILED))?
                .into_iter()
                .filter(|o| format!("{}/{}", o.namespace(), o.name()) != key)
                .collect();
            let run = reconciler
                .plan_objects(
                    snapshot.revision.clone(),
                    snapshot.verdict().clone(),
                    objects.clone(),
                    rendered.warnings,
                    &ropts,
                )
                .await
                .map_err(failed_as(reason::FAILED))?;
            let deleted: BTreeSet<ObjectId> = run
                .plan
                .prune
                .iter()
                .filter(|c| c.action == Action::Deleted)
                .map(|c| c.id.clone())
                .collect();
            let collectable = self
                .collectable(&deleted, &owned, identity, options)
                .await
                .map_err(failed_as(reason::PRUNE_FAILED))?;
            let cascade: Vec<(String, Inventory)> = collectable
                .iter()
                .map(|(k, _, inv)| (k.key(), inv.clone()))
                .collect();
            run.check_prune(ropts.plan.max_prune, &cascade)
                .map_err(failed_as(reason::PRUNE_LIMIT_EXCEEDED))?;
            // nothing is garbage-collected for a run whose own objects the
            // cluster refuses (as in Flux, where the prune that deletes a
            // Kustomization comes after the apply)
            if writes && !collectable.is_empty() {
                reconciler
                    .dry_run_writes(&run, &ropts)
                    .await
                    .map_err(failed_as(reason::FAILED))?;
            }
            if writes {
                match self
                    .garbage_collect(&collectable, &reconciler, &snapshot)
                    .await
                {
                    Ok(done) => collected = done,
                    Err((done, message)) => {
                        collected = done;
                        return Err(Stop::Collect(message));
                    }
                }
            }
            reconciler
                .carry_out(run, &ropts)
                .await
                .map_err(failed_as(reason::FAILED))
        }
        .await;
        let report = match applied {
            Ok(r) => r,
            Err(stop) => {
                // a prune fails after every object was applied; any other
                // error leaves the render refused or applied in part
                let (reason, message, changes, live) = match stop {
                    Stop::Collect(message) => {
                        (reason::PRUNE_FAILED, message, ChangeSet::default(), false)
                    }
                    Stop::Run(e, why) => {
                        let (reason, changes, live) = match &e {
                            ReconcileError::Prune { done, .. } => {
                                (reason::PRUNE_FAILED, done.clone(), true)
                            }
                            ReconcileError::Apply { done, .. } => {
                                (reason::FAILED, done.clone(), false)
                            }
                            ReconcileError::Render(_) => {
                                (reason::BUILD_FAILED, ChangeSet::default(), false)
                            }
                            _ => (why, ChangeSet::default(), false),
                        };
                        (reason, e.to_string(), changes, live)
                    }
                };
                result.reason = reason.to_string();
                result.message = message;
                result.changes = collected;
                result.changes.entries.extend(changes.entries);
                // what the cluster records now (the pipeline widened it
                // before any write); an error reading it keeps the inventory
                // read before the run, which covers everything but the
                // objects this run may have created
                match self.applier.read_inventory(&key).await {
                    Ok(inventory) => result.inventory = inventory.unwrap_or_default(),
                    Err(read) => {
                        result.message = format!(
                            "{}; reading the inventory afterwards failed: {read}",
                            result.message
                        )
                    }
                }
                return outcome(result, objects, live, self.clock);
            }
        };
        result.changes = collected;
        result
            .changes
            .entries
            .extend(report.changes.entries.iter().cloned());
        result.inventory = report.plan.inventory.clone();
        if options.dry_run {
            result.ready = true;
            result.reason = reason::SUCCEEDED.to_string();
            result.message = format!("Dry-run of revision: {revision}");
            return outcome(result, objects, true, self.clock);
        }

        // health checks, on the injected clock
        let mut checks: Vec<ObjectId> = k
            .spec
            .health_checks
            .iter()
            .map(|h| {
                let group = h
                    .api_version
                    .as_deref()
                    .map(crate::object::group_of)
                    .unwrap_or("");
                ObjectId::new(
                    group,
                    &h.kind,
                    h.namespace.as_deref().unwrap_or(&k.metadata.namespace),
                    &h.name,
                )
            })
            .collect();
        if k.spec.wait {
            checks.extend(objects.iter().map(Object::id));
        }
        checks.sort();
        checks.dedup();
        let timeout = match options.max_timeout {
            Some(cap) => k.timeout().min(cap),
            None => k.timeout(),
        };
        if let Err(message) = self
            .wait_healthy(&checks, timeout, options.poll_interval)
            .await
        {
            result.reason = reason::HEALTH_CHECK_FAILED.to_string();
            result.message = message;
            return outcome(result, objects, true, self.clock);
        }
        result.ready = true;
        result.reason = reason::SUCCEEDED.to_string();
        result.message = format!("Applied revision: {revision}");
        result.last_applied_revision = Some(revision);
        outcome(result, objects, true, self.clock)
    }

    /// Registers in `schema` the scope of every kind of `objects` it does
    /// not know (built in, or defined by a CRD rendered in the pass), as
    /// the cluster's discovery reports it through the Applier. Kinds the
    /// cluster does not serve stay unknown (the dry-run refuses them).
    async fn discover_scopes(
        &self,
        objects: &[Object],
        schema: &mut Schema,
    ) -> Result<(), crate::apply::ApplyError> {
        let unknown: BTreeSet<(&str, &str)> = objects
            .iter()
            .map(|o| (o.group(), o.kind()))
            .filter(|(group, kind)| !schema.is_known(group, kind))
            .collect();
        for (group, kind) in unknown {
            if let Some(scope) = self.applier.scope(group, kind).await? {
                schema.register_scope(crate::schema::GroupKind::new(group, kind), scope);
            }
        }
        Ok(())
    }

    /// The Kyverno policies live in the cluster (ClusterPolicies, and
    /// namespaced Policies, which bind their own namespace only).
    async fn live_policies(&self) -> Result<Vec<Object>, crate::apply::ApplyError> {
        let mut policies = self
            .applier
            .list(crate::policy::KYVERNO_GROUP, "ClusterPolicy")
            .await?;
        policies.extend(
            self.applier
                .list(crate::policy::KYVERNO_GROUP, "Policy")
                .await?,
        );
        Ok(policies)
    }

    /// Flux's `spec.decryption`: provider `sops`, the age identities in
    /// the `*.agekey` entries of the Secret `secretRef` names (read through
    /// the Applier, in the Kustomization's namespace).
    async fn secret_rules(
        &self,
        k: &Kustomization,
        d: &crate::flux::Decryption,
    ) -> Result<crate::sops::SecretRules, String> {
        if d.provider != "sops" {
            return Err(format!(
                "spec.decryption.provider {:?} is not supported (only sops)",
                d.provider
            ));
        }
        #[cfg(feature = "sops")]
        {
            let mut ids = crate::sops::AgeIdentities::default();
            if let Some(r) = &d.secret_ref {
                let id = ObjectId::new("", "Secret", &k.metadata.namespace, &r.name);
                let obj = self
                    .applier
                    .get(&id)
                    .await
                    .map_err(|e| format!("spec.decryption.secretRef: {e}"))?
                    .ok_or_else(|| {
                        format!("spec.decryption.secretRef: {} not found", id.subject())
                    })?;
                let mut entries: Vec<(String, String)> = Vec::new();
                if let Some(data) = obj.value().get("data").and_then(|v| v.as_object()) {
                    for (key, v) in data {
                        let text = v.as_str().and_then(decode_base64).ok_or_else(|| {
                            format!("{}: data.{key} is not valid base64", id.subject())
                        })?;
                        entries.push((key.clone(), text));
                    }
                }
                if let Some(data) = obj.value().get("stringData").and_then(|v| v.as_object()) {
                    for (key, v) in data {
                        entries.push((key.clone(), v.as_str().unwrap_or_default().to_string()));
                    }
                }
                for (key, text) in entries.iter().filter(|(k, _)| k.ends_with(".agekey")) {
                    let source = format!("{}: data.{key}", id.subject());
                    ids.extend(
                        crate::sops::AgeIdentities::parse(&source, text)
                            .map_err(|e| e.to_string())?,
                    );
                }
            }
            Ok(crate::sops::SecretRules {
                refuse_plaintext: false,
                allow_plaintext: Vec::new(),
                decryptor: Some(std::sync::Arc::new(crate::sops::SopsDecryptor::new(ids))),
            })
        }
        #[cfg(not(feature = "sops"))]
        {
            let _ = k;
            Err("spec.decryption needs driftless built with the `sops` feature".to_string())
        }
    }

    async fn substitution_vars(
        &self,
        k: &Kustomization,
        pb: &crate::flux::PostBuild,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut vars = BTreeMap::new();
        for r in &pb.substitute_from {
            let id = ObjectId::new("", &r.kind, &k.metadata.namespace, &r.name);
            if !matches!(r.kind.as_str(), "ConfigMap" | "Secret") {
                return Err(format!(
                    "substituteFrom kind {:?} is not ConfigMap or Secret",
                    r.kind
                ));
            }
            let obj = self
                .applier
                .get(&id)
                .await
                .map_err(|e| format!("substitute from '{}': {e}", id.subject()))?;
            let Some(obj) = obj else {
                if r.optional {
                    continue;
                }
                return Err(format!(
                    "substitute from '{}' error: {} \"{}\" not found",
                    id.subject(),
                    r.kind,
                    r.name
                ));
            };
            if let Some(data) = obj.value().get("data").and_then(|d| d.as_object()) {
                for (key, v) in data {
                    let Some(s) = v.as_str() else { continue };
                    let value = if r.kind == "Secret" {
                        decode_base64(s).ok_or_else(|| {
                            format!("{}: data.{key} is not valid base64", id.subject())
                        })?
                    } else {
                        s.to_string()
                    };
                    vars.insert(key.clone(), value);
                }
            }
            if let Some(data) = obj.value().get("stringData").and_then(|d| d.as_object()) {
                for (key, v) in data {
                    if let Some(s) = v.as_str() {
                        vars.insert(key.clone(), s.to_string());
                    }
                }
            }
        }
        vars.extend(pb.substitute.iter().map(|(a, b)| (a.clone(), b.clone())));
        check_names(&vars)?;
        Ok(vars)
    }

    async fn wait_healthy(
        &self,
        ids: &[ObjectId],
        timeout: Duration,
        poll: Duration,
    ) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let start = self.clock.now();
        loop {
            let mut pending = Vec::new();
            let mut failed_objs = Vec::new();
            for id in ids {
                let live = self.applier.get(id).await.map_err(|e| e.to_string())?;
                let h = health(live.as_ref());
                match h.status {
                    Status::Current => {}
                    Status::Failed => {
                        failed_objs.push(format!("{} status: '{}'", id.subject(), h.status))
                    }
                    _ => pending.push(format!("{} status: '{}'", id.subject(), h.status)),
                }
            }
            let elapsed = self.clock.now().saturating_sub(start);
            if !failed_objs.is_empty() {
                return Err(format!(
                    "health check failed after {}: failed early due to stalled resources: [{}]",
                    format_duration(elapsed),
                    failed_objs.join(", ")
                ));
            }
            if pending.is_empty() {
                return Ok(());
            }
            if elapsed >= timeout {
                return Err(format!(
                    "health check failed after {}: timeout waiting for: [{}]",
                    format_duration(elapsed),
                    pending.join(", ")
                ));
            }
            self.clock
                .sleep(poll.min(timeout - elapsed).max(Duration::from_millis(1)))
                .await;
        }
    }
}

/// A source for the pipeline's plan-onward entry point, which never fetches.
struct NoSource;

#[async_trait::async_trait]
impl Source for NoSource {
    async fn fetch(&self, _reference: &GitRef) -> Result<Snapshot, crate::source::SourceError> {
        Err(crate::source::SourceError::Invalid(
            "the fleet fetches sources itself".into(),
        ))
    }
}

fn decode_base64(s: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn failed(key: &str, reason: &str, message: String) -> KustomizationResult {
    KustomizationResult {
        key: key.to_string(),
        ready: false,
        reason: reason.to_string(),
        message,
        last_applied_revision: None,
        last_attempted_revision: None,
        inventory: Inventory::default(),
        changes: ChangeSet::default(),
        duration: Duration::ZERO,
        objects: Vec::new(),
    }
}

fn event_for(k: &Kustomization, r: &KustomizationResult, now: Duration) -> Event {
    Event {
        involved_object: InvolvedObject {
            api_version: k.api_version.clone(),
            kind: "Kustomization".to_string(),
            namespace: k.metadata.namespace.clone(),
            name: k.metadata.name.clone(),
        },
        severity: if r.ready {
            Severity::Info
        } else {
            Severity::Error
        },
        reason: r.reason.clone(),
        message: r.message.clone(),
        revision: r
            .last_applied_revision
            .clone()
            .or_else(|| r.last_attempted_revision.clone())
            .unwrap_or_default(),
        timestamp: now.as_secs(),
    }
}

/// Flux's dependency check: every dependency must be Ready and, when it
/// reads the same source as `k`, have applied that source's current
/// revision. Returns the DependencyNotReady message of the first one that
/// is not.
fn blocking_dependency(k: &Kustomization, state: &FleetState) -> Option<String> {
    let source = k.source_id();
    let current = state.artifacts.get(&source).and_then(Artifact::revision);
    for d in dependency_keys(k) {
        match state.status.get(&d) {
            Some(s) if s.ready => {
                if s.source == source && current.is_some() && s.revision != current {
                    return Some(format!("dependency '{d}' revision is not up to date"));
                }
            }
            _ => return Some(format!("dependency '{d}' is not ready")),
        }
    }
    None
}

/// `ns/name` of the root Kustomization (named after the root source, as
/// `flux bootstrap` names both `flux-system`).
fn root_key(options: &FleetOptions) -> String {
    format!(
        "{}/{}",
        options.root_source.namespace, options.root_source.name
    )
}

fn dependency_keys(k: &Kustomization) -> Vec<String> {
    k.spec
        .depends_on
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d.namespace.as_deref().unwrap_or(&k.metadata.namespace),
                d.name
            )
        })
        .collect()
}

fn is_root(k: &Kustomization, options: &FleetOptions) -> bool {
    let path =
        crate::source::join_path("", k.spec.path.as_deref().unwrap_or("./")).unwrap_or_default();
    let cluster = crate::source::join_path("", &options.cluster_path).unwrap_or_default();
    k.source_id() == options.root_source && path == cluster
}

fn root_kustomization(key: &str, source: &ObjectId, path: &str) -> Kustomization {
    let (ns, name) = key
        .split_once('/')
        .unwrap_or(("flux-system", "flux-system"));
    Kustomization {
        api_version: "kustomize.toolkit.fluxcd.io/v1".to_string(),
        kind: "Kustomization".to_string(),
        metadata: crate::flux::Meta {
            name: name.to_string(),
            namespace: ns.to_string(),
            ..Default::default()
        },
        spec: serde_json::from_value(serde_json::json!({
            "interval": "10m",
            "path": path,
            "prune": true,
            "sourceRef": {"kind": source.kind, "name": source.name, "namespace": source.namespace},
        }))
        .expect("a static Kustomization spec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kustomization(ns: &str, name: &str, sa: Option<&str>) -> Kustomization {
        let mut spec = serde_json::json!({
            "interval": "10m", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"},
        });
        if let Some(sa) = sa {
            spec["serviceAccountName"] = sa.into();
        }
        Kustomization::parse(
            &Object::new(serde_json::json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": ns}, "spec": spec,
            }))
            .unwrap(),
        )
        .unwrap()
    }

    proptest! {
        /// Along any chain of Kustomizations, each created by the one
        /// before, no Kustomization below one that impersonates acts as the
        /// host, each acts as its own ServiceAccount, the default one, or
        /// its nearest impersonating creator's, and every impersonating one
        /// outside the fleet's namespace is a tenant.
        #[test]
        fn no_kustomization_acts_with_more_than_its_creator(
            chain in proptest::collection::vec(
                (prop::sample::select(vec!["flux-system", "team-a", "team-b"]),
                 prop::option::of(prop::sample::select(vec!["sa", "kustomize-controller", ""]))),
                1..6),
            default in prop::option::of(prop::sample::select(vec!["default", ""])),
        ) {
            let options = FleetOptions {
                default_service_account: default.map(str::to_string),
                ..FleetOptions::default()
            };
            let mut state = FleetState::default();
            let mut parent = root_key(&options);
            for (i, (ns, sa)) in chain.iter().enumerate() {
                let k = kustomization(ns, &format!("k{i}"), *sa);
                state.discovered.insert(k.key(), k.clone());
                state.parents.insert(k.key(), parent.clone());
                parent = k.key();
            }
            let mut inherited: Option<String> = None;
            for (i, (ns, sa)) in chain.iter().enumerate() {
                let key = format!("{ns}/k{i}");
                let identity = state.identity(&key, &options);
                let own = sa
                    .filter(|s| !s.is_empty())
                    .or(default.filter(|d| !d.is_empty()))
                    .map(|s| format!("system:serviceaccount:{ns}:{s}"));
                let expected = own.or(inherited.clone());
                prop_assert_eq!(&identity.user, &expected, "{}", key);
                if inherited.is_some() {
                    prop_assert!(identity.user.is_some(), "{} acts as the host", key);
                }
                prop_assert_eq!(identity.tenant, identity.user.is_some() && *ns != "flux-system");
                inherited = identity.user;
            }
        }
    }
}
