//! The reconcile pipeline: fetch → verify → render → diff → plan → dry-run →
//! apply (staged) → prune → record the inventory.
//!
//! Each stage runs only when every earlier stage succeeded. Every object is
//! dry-run before the first real write. Before the first write the recorded
//! inventory is widened to everything that may exist afterwards, so a fault
//! in the middle of an apply loses nothing and a rerun converges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use tracing::{debug_span, info};

use crate::apply::{Applier, ApplyError, ApplyOptions};
use crate::diff::FieldChange;
use crate::object::{Object, ObjectId, Revision};
use crate::plan::{self, Action, Plan, PlanError, PlanOptions};
use crate::render::{RenderError, Renderer};
use crate::schema::{crd_group_kind, Schema};
use crate::source::{FetchError, FetchRequest, GitRef, Source, SourceError};
use crate::verify::{Verdict, Verifier, VerifyError};

/// One line of a change set: an object and what happened to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeSetEntry {
    /// The object.
    pub id: ObjectId,
    /// `Kind/ns/name`.
    pub subject: String,
    /// What happened.
    pub action: Action,
    /// For configured objects, the fields that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<FieldChange>,
    /// For skipped objects, why (e.g. the Kustomization that owns an
    /// object left out of a prune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Display for ChangeSetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.subject, self.action)
    }
}

/// What a run did (or, in a dry run, would do), in execution order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// The entries in execution order.
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    /// How many entries have `action`.
    pub fn count(&self, action: Action) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }

    /// The summary line: `N created, N configured, N unchanged, N deleted, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} configured, {} unchanged, {} deleted, {} skipped",
            self.count(Action::Created),
            self.count(Action::Configured),
            self.count(Action::Unchanged),
            self.count(Action::Deleted),
            self.count(Action::Skipped)
        )
    }

    fn from_plan(plan: &Plan) -> ChangeSet {
        ChangeSet {
            entries: plan.changes().map(entry).collect(),
        }
    }
}

impl fmt::Display for ChangeSet {
    /// One line per object, field changes indented under configured ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
            for d in &e.drift {
                writeln!(f, "  {d}")?;
            }
        }
        Ok(())
    }
}

/// Settings of one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// The folder to render, relative to the source root.
    pub path: String,
    /// Which revision to fetch.
    pub reference: GitRef,
    /// The commit (or revision) applied last, for a verifier in mode
    /// [`VerifyMode::AllCommitsSinceLastApplied`](crate::verify::VerifyMode::AllCommitsSinceLastApplied).
    pub last_applied: Option<String>,
    /// The key the inventory is recorded under (Flux: `<ns>/<name>` of the
    /// Kustomization).
    pub owner: String,
    /// Plan settings (prune, force, field manager).
    pub plan: PlanOptions,
    /// Plan and dry-run only; write nothing.
    pub dry_run: bool,
    /// The identity to impersonate (Flux's `serviceAccountName`), as
    /// `system:serviceaccount:<ns>:<name>`.
    pub impersonate: Option<String>,
    /// Policy gates run on the rendered set before any read or write;
    /// an `Enforce` violation stops the run with [`ReconcileError::Policy`].
    pub policies: crate::policy::PolicySet,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            path: ".".to_string(),
            reference: GitRef::default(),
            last_applied: None,
            owner: "flux-system/flux-system".to_string(),
            plan: PlanOptions::default(),
            dry_run: false,
            impersonate: None,
            policies: crate::policy::PolicySet::default(),
        }
    }
}

/// The outcome of a successful reconcile.
#[derive(Clone, Debug)]
pub struct ReconcileReport {
    /// The revision that was reconciled.
    pub revision: Revision,
    /// Who signed it.
    pub verdict: Verdict,
    /// The plan that was carried out.
    pub plan: Plan,
    /// What happened, in execution order.
    pub changes: ChangeSet,
    /// Render warnings (deprecations and the like).
    pub warnings: Vec<String>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// A plan made against the live state, with what it was made from;
/// nothing has been written (see [`Reconciler::plan_objects`]).
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// The revision being reconciled.
    pub revision: Revision,
    /// Who signed it.
    pub verdict: Verdict,
    /// The desired objects.
    pub desired: Vec<Object>,
    /// Render and policy warnings.
    pub warnings: Vec<String>,
    /// The inventory recorded before this run.
    pub previous: plan::Inventory,
    /// The live objects of everything desired or previously owned.
    pub live: BTreeMap<ObjectId, Object>,
    /// The plan.
    pub plan: Plan,
}

impl PlannedRun {
    /// What the plan deletes (`Kind/ns/name`), in delete order.
    pub fn deletions(&self) -> Vec<String> {
        self.plan
            .prune
            .iter()
            .filter(|c| c.action == Action::Deleted)
            .map(|c| c.id.subject())
            .collect()
    }

    /// The prune guard (see [`plan::MaxPrune`]): this plan's deletions, plus
    /// every entry of `cascade` (the inventories that the deletion of a
    /// Kustomization garbage-collects), against the previous inventory
    /// plus those inventories. `None` allows anything.
    pub fn check_prune(
        &self,
        limit: Option<plan::MaxPrune>,
        cascade: &[(String, plan::Inventory)],
    ) -> Result<(), ReconcileError> {
        if limit.is_none() {
            return Ok(());
        }
        let mut would_delete = self.deletions();
        let mut inventory = self.previous.entries.len();
        for (_, inv) in cascade {
            inventory += inv.entries.len();
            would_delete.extend(inv.entries.iter().map(|e| {
                // an id that does not parse is shown as recorded
                e.id.parse::<ObjectId>()
                    .map(|id| id.subject())
                    .unwrap_or_else(|_| e.id.clone())
            }));
        }
        plan::check_prune(limit, would_delete, inventory).map_err(ReconcileError::PruneLimit)
    }
}

/// Why a reconcile stopped. Stages after the failing one did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Fetching the source failed.
    #[error("fetch failed: {0}")]
    Source(#[from] SourceError),
    /// The revision was refused; nothing was rendered.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// Rendering failed; nothing was applied.
    #[error("build failed: {0}")]
    Render(#[from] RenderError),
    /// No plan could be made; nothing was applied.
    #[error("plan failed: {0}")]
    Plan(#[from] PlanError),
    /// The plan would prune more than [`PlanOptions::max_prune`] allows;
    /// nothing was applied. Lists what would have been deleted.
    #[error("{0}")]
    PruneLimit(plan::PruneLimitError),
    /// A policy gate refused objects; nothing was applied. Lists every
    /// violation.
    #[error("policy check failed: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// Reading live state failed; nothing was applied.
    #[error("reading the cluster failed: {0}")]
    Read(ApplyError),
    /// A dry-run was refused; nothing was applied.
    #[error("dry-run failed: {0}")]
    DryRun(ApplyError),
    /// A real apply or delete failed midway. `done` lists what was carried
    /// out before it; the recorded inventory still covers every object.
    #[error("apply failed: {}", with_subject(subject, error))]
    Apply {
        /// `Kind/ns/name` of the object being written (or `inventory <owner>`).
        subject: String,
        /// The failing call.
        error: ApplyError,
        /// What was done before the failure.
        done: ChangeSet,
    },
    /// Deleting a pruned object failed. Everything else was applied; the
    /// recorded inventory still covers every object.
    #[error("prune failed: {}", with_subject(subject, error))]
    Prune {
        /// `Kind/ns/name` of the object being deleted.
        subject: String,
        /// The failing call.
        error: ApplyError,
        /// What was done before the failure.
        done: ChangeSet,
    },
}

/// The error's message, led by `subject` unless it already names it.
fn with_subject(subject: &str, error: &ApplyError) -> String {
    let message = error.to_string();
    if subject.is_empty() || message.starts_with(subject) {
        message
    } else {
        format!("{subject}: {message}")
    }
}

impl ReconcileError {
    /// True when running again later may succeed without a change in Git.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReconcileError::Source(e) => e.is_retryable(),
            ReconcileError::Read(e)
            | ReconcileError::DryRun(e)
            | ReconcileError::Apply { error: e, .. }
            | ReconcileError::Prune { error: e, .. } => e.is_retryable(),
            _ => false,
        }
    }
}

/// Fills in what the API server would: namespaced objects without a
/// namespace go to `default`; cluster-scoped objects carry none.
pub fn default_namespaces(objects: &mut [Object], schema: &Schema) {
    for o in objects {
        let namespaced = schema.is_namespaced(o.group(), o.kind());
        if namespaced && o.namespace().is_empty() {
            o.set_namespace("default");
        } else if !namespaced && !o.namespace().is_empty() {
            o.set_namespace("");
        }
    }
}

/// Composes the four plug-in points into the pipeline.
pub struct Reconciler<'a> {
    /// Where revisions come from.
    pub source: &'a dyn Source,
    /// Who must have signed them.
    pub verifier: &'a dyn Verifier,
    /// How folders become objects.
    pub renderer: &'a dyn Renderer,
    /// The cluster.
    pub applier: &'a dyn Applier,
    /// Type knowledge for ordering and immutability.
    pub schema: Schema,
}

impl Reconciler<'_> {
    /// Runs the whole pipeline once.
    pub async fn reconcile(
        &self,
        options: &ReconcileOptions,
    ) -> Result<ReconcileReport, ReconcileError> {
        // the signature is checked before the source reads the tree
        let verified = {
            let _s = debug_span!("fetch").entered();
            let request = FetchRequest::new(options.reference.clone())
                .with_last_applied(options.last_applied.clone());
            self.source
                .fetch_verified(&request, self.verifier)
                .await
                .map_err(|e| match e {
                    FetchError::Source(e) => ReconcileError::Source(e),
                    FetchError::Verify(r) => ReconcileError::Verify(r.error),
                })?
        };
        let rendered = {
            let _s = debug_span!("render", path = %options.path).entered();
            self.renderer.render(&verified, &options.path)?
        };
        let mut desired = rendered.objects;
        let mut schema = self.schema.clone();
        for o in desired
            .iter()
            .filter(|o| o.kind() == "CustomResourceDefinition")
        {
            schema.register_crd(o);
        }
        default_namespaces(&mut desired, &schema);
        self.reconcile_objects(
            verified.revision.clone(),
            verified.verdict().clone(),
            desired,
            rendered.warnings,
            options,
        )
        .await
    }

    /// Runs the pipeline from the plan stage on, for objects rendered
    /// elsewhere: [`Reconciler::plan_objects`], the prune guard
    /// ([`PlanOptions::max_prune`] over this plan's own deletions), then
    /// [`Reconciler::carry_out`].
    pub async fn reconcile_objects(
        &self,
        revision: Revision,
        verdict: Verdict,
        desired: Vec<Object>,
        warnings: Vec<String>,
        options: &ReconcileOptions,
    ) -> Result<ReconcileReport, ReconcileError> {
        let run = self
            .plan_objects(revision, verdict, desired, warnings, options)
            .await?;
        run.check_prune(options.plan.max_prune, &[])?;
        self.carry_out(run, options).await
    }

    /// The plan stage: policy gates, the previous inventory and the live
    /// objects read, namespaces checked, the plan made. Nothing is written;
    /// the prune guard is not checked yet (see [`PlannedRun::check_prune`]).
    pub async fn plan_objects(
        &self,
        revision: Revision,
        verdict: Verdict,
        desired: Vec<Object>,
        warnings: Vec<String>,
        options: &ReconcileOptions,
    ) -> Result<PlannedRun, ReconcileError> {
        let mut warnings = warnings;
        warnings.extend(options.policies.check(&desired)?);
        let previous = self
            .applier
            .read_inventory(&options.owner)
            .await
            .map_err(ReconcileError::Read)?
            .unwrap_or_default();

        // live state of everything desired or owned before
        let mut ids: BTreeSet<ObjectId> = desired.iter().map(Object::id).collect();
        ids.extend(previous.ids().map_err(|e| {
            ReconcileError::Read(ApplyError::Invalid {
                subject: format!("inventory {}", options.owner),
                message: e.to_string(),
                causes: Default::default(),
            })
        })?);
        let mut live = BTreeMap::new();
        for id in &ids {
            if let Some(o) = self.applier.get(id).await.map_err(ReconcileError::Read)? {
                live.insert(id.clone(), o);
            }
        }
        // namespaces are checked at plan time, before any call that writes
        let mut live_namespaces = BTreeSet::new();
        let wanted: BTreeSet<&str> = desired
            .iter()
            .map(Object::namespace)
            .filter(|n| !n.is_empty())
            .collect();
        for ns in wanted {
            let id = ObjectId::new("", "Namespace", "", ns);
            if live.contains_key(&id)
                || self
                    .applier
                    .get(&id)
                    .await
                    .map_err(ReconcileError::Read)?
                    .is_some()
            {
                live_namespaces.insert(ns.to_string());
            }
        }
        plan::check_namespaces(&desired, &live_namespaces, &self.schema)?;
        let mut plan = {
            let _s = debug_span!("plan", objects = desired.len()).entered();
            plan::plan(&desired, &live, &previous, &self.schema, &options.plan)?
        };
        warnings.extend(
            self.keep_shared_namespaces(&mut plan, &previous, &options.owner)
                .await?,
        );
        Ok(PlannedRun {
            revision,
            verdict,
            desired,
            warnings,
            previous,
            live,
            plan,
        })
    }

    /// Never deletes a Namespace that holds objects of another owner: a
    /// Namespace the plan prunes is listed through the Applier, and when
    /// any object in it carries owner labels (see [`plan::labelled_owner`])
    /// naming a Kustomization other than `owner`, the deletion, which
    /// would take those objects with it, becomes `Skipped` naming them,
    /// and the Namespace stays in the inventory so a later run prunes it
    /// once they are gone. Returns one warning per Namespace kept.
    async fn keep_shared_namespaces(
        &self,
        plan: &mut Plan,
        previous: &plan::Inventory,
        owner: &str,
    ) -> Result<Vec<String>, ReconcileError> {
        let mut warnings = Vec::new();
        for i in 0..plan.prune.len() {
            let c = &plan.prune[i];
            if c.action != Action::Deleted || !c.id.group.is_empty() || c.id.kind != "Namespace" {
                continue;
            }
            let held = self
                .applier
                .list_namespace(&c.id.name)
                .await
                .map_err(ReconcileError::Read)?;
            let others: Vec<String> = held
                .iter()
                .filter_map(|o| {
                    plan::labelled_owner(o)
                        .filter(|k| k != owner)
                        .map(|k| format!("{} (Kustomization {k})", o.id().subject()))
                })
                .collect();
            if others.is_empty() {
                continue;
            }
            let reason = format!(
                "the namespace holds objects of other Kustomizations: {}",
                others.join(", ")
            );
            warnings.push(format!("{} not deleted: {reason}", c.id.subject()));
            let inventory_id = c.id.inventory_id();
            let c = &mut plan.prune[i];
            c.action = Action::Skipped;
            c.reason = Some(reason);
            if let Some(e) = previous.entries.iter().find(|e| e.id == inventory_id) {
                let entries = &mut plan.inventory.entries;
                if let Err(at) = entries.binary_search_by(|x| x.id.cmp(&e.id)) {
                    entries.insert(at, e.clone());
                }
            }
        }
        Ok(warnings)
    }

    /// The dry-run stage of [`Reconciler::carry_out`] on its own: every
    /// write of the plan dry-run, except those that need a Namespace or a
    /// kind the plan itself creates (they are dry-run right before their
    /// stage, once it exists). Writes nothing. The fleet runs it before it
    /// garbage-collects the inventory of a Kustomization the plan deletes,
    /// so that nothing is deleted for a run whose own objects the cluster
    /// refuses.
    pub async fn dry_run_writes(
        &self,
        run: &PlannedRun,
        options: &ReconcileOptions,
    ) -> Result<(), ReconcileError> {
        let _s = debug_span!("dry-run").entered();
        let by_id: BTreeMap<ObjectId, &Object> = run.desired.iter().map(|o| (o.id(), o)).collect();
        let deferred = Deferred::of(&run.desired, &run.live);
        let apply_opts = dry_run_options(options);
        for c in run
            .plan
            .stages
            .iter()
            .flat_map(|s| &s.changes)
            .filter(|c| writes(c))
        {
            let obj = by_id[&c.id];
            if !c.recreate && !deferred.contains(obj) {
                self.applier
                    .apply(obj, &apply_opts)
                    .await
                    .map_err(ReconcileError::DryRun)?;
            }
        }
        Ok(())
    }

    /// Carries out a plan made by [`Reconciler::plan_objects`]: every write
    /// dry-run first ([`Reconciler::dry_run_writes`]), then (unless
    /// [`ReconcileOptions::dry_run`]) the inventory widened, the stages
    /// applied, the prunes deleted and the new inventory recorded.
    pub async fn carry_out(
        &self,
        run: PlannedRun,
        options: &ReconcileOptions,
    ) -> Result<ReconcileReport, ReconcileError> {
        self.dry_run_writes(&run, options).await?;
        let PlannedRun {
            revision,
            verdict,
            desired,
            warnings,
            previous,
            live,
            plan,
        } = run;
        let by_id: BTreeMap<ObjectId, &Object> = desired.iter().map(|o| (o.id(), o)).collect();
        let apply_opts = dry_run_options(options);
        let deferred = Deferred::of(&desired, &live);
        let deferred = |o: &Object| deferred.contains(o);

        let changes = ChangeSet::from_plan(&plan);
        if options.dry_run {
            return Ok(ReconcileReport {
                revision,
                verdict,
                plan,
                changes,
                warnings,
                dry_run: true,
            });
        }

        let write_opts = ApplyOptions {
            dry_run: false,
            ..apply_opts.clone()
        };
        let mut done = ChangeSet::default();
        let fail = |subject: String, error: ApplyError, done: &ChangeSet| ReconcileError::Apply {
            subject,
            error,
            done: done.clone(),
        };
        let inventory_subject = format!("inventory {}", options.owner);
        // everything that may exist after this run, recorded before any write
        let widened = previous.union(&plan.inventory);
        if !plan.is_noop() && widened != previous {
            self.applier
                .write_inventory(&options.owner, &widened)
                .await
                .map_err(|e| fail(inventory_subject.clone(), e, &done))?;
        }
        for stage in &plan.stages {
            let _s = debug_span!("apply", stage = ?stage.stage).entered();
            for c in stage.changes.iter().filter(|c| writes(c)) {
                let obj = by_id[&c.id];
                if deferred(obj) {
                    self.applier
                        .apply(obj, &apply_opts)
                        .await
                        .map_err(|e| fail(c.id.subject(), e, &done))?;
                }
            }
            for c in &stage.changes {
                if writes(c) {
                    let obj = by_id[&c.id];
                    if c.recreate {
                        self.applier
                            .delete(&c.id, &write_opts)
                            .await
                            .map_err(|e| fail(c.id.subject(), e, &done))?;
                    }
                    self.applier
                        .apply(obj, &write_opts)
                        .await
                        .map_err(|e| fail(c.id.subject(), e, &done))?;
                    info!(subject = %c.id.subject(), action = %c.action, "applied");
                }
                done.entries.push(entry(c));
            }
        }
        for c in &plan.prune {
            if c.action == Action::Deleted {
                let _s = debug_span!("prune").entered();
                self.applier
                    .delete(&c.id, &write_opts)
                    .await
                    .map_err(|error| ReconcileError::Prune {
                        subject: c.id.subject(),
                        error,
                        done: done.clone(),
                    })?;
                info!(subject = %c.id.subject(), "pruned");
            }
            done.entries.push(entry(c));
        }
        if plan.inventory != previous {
            self.applier
                .write_inventory(&options.owner, &plan.inventory)
                .await
                .map_err(|e| fail(inventory_subject.clone(), e, &done))?;
        }
        Ok(ReconcileReport {
            revision,
            verdict,
            plan,
            changes: done,
            warnings,
            dry_run: false,
        })
    }
}

/// A change that writes the object (creates or configures it).
fn writes(c: &plan::PlannedChange) -> bool {
    matches!(c.action, Action::Created | Action::Configured)
}

/// The options of a run's dry-run apply calls.
fn dry_run_options(options: &ReconcileOptions) -> ApplyOptions {
    ApplyOptions {
        field_manager: options.plan.field_manager.clone(),
        dry_run: true,
        force_conflicts: true,
        impersonate: options.impersonate.clone(),
    }
}

/// Prerequisites a plan creates itself: new Namespaces and the kinds of new
/// CRDs. Their dependents are dry-run right before their own stage, once
/// the prerequisites exist.
struct Deferred {
    namespaces: BTreeSet<String>,
    kinds: BTreeSet<(String, String)>,
}

impl Deferred {
    fn of(desired: &[Object], live: &BTreeMap<ObjectId, Object>) -> Deferred {
        let namespaces = desired
            .iter()
            .filter(|o| {
                o.kind() == "Namespace" && o.group().is_empty() && !live.contains_key(&o.id())
            })
            .map(|o| o.name().to_string())
            .collect();
        let kinds = desired
            .iter()
            .filter(|o| !live.contains_key(&o.id()))
            .filter_map(crd_group_kind)
            .map(|gk| (gk.group, gk.kind))
            .collect();
        Deferred { namespaces, kinds }
    }

    fn contains(&self, o: &Object) -> bool {
        self.namespaces.contains(o.namespace())
            || self
                .kinds
                .contains(&(o.group().to_string(), o.kind().to_string()))
    }
}

fn entry(c: &plan::PlannedChange) -> ChangeSetEntry {
    ChangeSetEntry {
        id: c.id.clone(),
        subject: c.id.subject(),
        action: c.action,
        drift: c.drift.clone(),
        reason: c.reason.clone(),
    }
}
