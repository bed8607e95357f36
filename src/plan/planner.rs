//! Making a plan: classify every object, order the stages, list the prunes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Action, Inventory, InventoryEntry};
use crate::diff::{self, FieldChange};
use crate::object::{Head, Object, ObjectId};
use crate::schema::{Schema, Stage};

/// Flux's per-object annotations.
pub mod annotations {
    /// `ssa: Override|Merge|IfNotPresent|Ignore`.
    pub const SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
    /// `prune: disabled` keeps an object when it leaves Git.
    pub const PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";
    /// `reconcile: disabled` leaves an object alone.
    pub const RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
    /// `force: enabled` recreates an object whose immutable fields changed.
    pub const FORCE: &str = "kustomize.toolkit.fluxcd.io/force";
    /// Flux's owner label: the name of the Kustomization that applied the
    /// object (a label, not an annotation).
    pub const OWNER_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
    /// Flux's owner label: the namespace of that Kustomization.
    pub const OWNER_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
}

/// The Kustomization whose owner labels ([`annotations::OWNER_NAME`] and
/// [`annotations::OWNER_NAMESPACE`]) a live object carries, as
/// `<namespace>/<name>`; `None` when it carries neither.
pub fn labelled_owner(object: &Object) -> Option<String> {
    let name = object.label(annotations::OWNER_NAME);
    let namespace = object.label(annotations::OWNER_NAMESPACE);
    if name.is_none() && namespace.is_none() {
        return None;
    }
    Some(format!(
        "{}/{}",
        namespace.unwrap_or_default(),
        name.unwrap_or_default()
    ))
}

/// How server-side apply treats one object (`kustomize.toolkit.fluxcd.io/ssa`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SsaPolicy {
    /// Take back every field Git sets (the default).
    #[default]
    Override,
    /// Keep values that other managers set on fields Git also sets.
    Merge,
    /// Create the object only when it does not exist.
    IfNotPresent,
    /// Never apply the object.
    Ignore,
}

impl SsaPolicy {
    /// The policy an object's annotation asks for (case-insensitive, as Flux).
    pub fn of(object: &Object) -> SsaPolicy {
        object
            .annotation(annotations::SSA)
            .map_or(SsaPolicy::Override, SsaPolicy::parse)
    }

    /// The policy an annotation value names (case-insensitive, as Flux);
    /// unknown values mean [`SsaPolicy::Override`].
    pub fn parse(value: &str) -> SsaPolicy {
        if value.eq_ignore_ascii_case("merge") {
            SsaPolicy::Merge
        } else if value.eq_ignore_ascii_case("ifnotpresent") {
            SsaPolicy::IfNotPresent
        } else if value.eq_ignore_ascii_case("ignore") {
            SsaPolicy::Ignore
        } else {
            SsaPolicy::Override
        }
    }
}

/// Settings of the planner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Delete objects that left Git (Flux's `spec.prune`).
    pub prune: bool,
    /// Recreate objects whose immutable fields changed (Flux's `spec.force`).
    pub force: bool,
    /// The field manager whose earlier applies define ownership.
    pub field_manager: String,
    /// The prune guard: the most a run may delete, as a count or a share
    /// of the inventory (see [`MaxPrune`](super::MaxPrune)). `None` (the
    /// default, as in Flux) allows any prune. Checked by the pipeline
    /// before any write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prune: Option<super::MaxPrune>,
    /// The owner labels the reconciler sets on everything it applies, as
    /// `<namespace>/<name>` of its Kustomization (the fleet sets them;
    /// `None`, the default, when nothing is labelled). When set, prune
    /// follows fluxcd/pkg ssa's delete path: a live object whose owner
    /// labels do not name this owner (another Kustomization adopted it, or
    /// the labels are gone) is skipped and leaves the inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How many threads may classify objects (large plans only; the plan
    /// is the same for any value). Defaults to the machine's parallelism.
    #[serde(skip, default = "default_parallelism")]
    pub parallelism: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            prune: true,
            force: false,
            field_manager: "kustomize-controller".to_string(),
            max_prune: None,
            owner: None,
            parallelism: default_parallelism(),
        }
    }
}

fn default_parallelism() -> usize {
    crate::par::available()
}

/// One planned step for one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    /// The object.
    pub id: ObjectId,
    /// What the step does.
    pub action: Action,
    /// For `Configured`: the fields that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<FieldChange>,
    /// The object is deleted and created again (immutable field change with force).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recreate: bool,
    /// Why the object is skipped, for `Skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The objects of one apply stage, in apply order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStage {
    /// Which stage.
    pub stage: Stage,
    /// The steps, ordered by Flux's kind order, then namespace and name.
    pub changes: Vec<PlannedChange>,
}

/// A deterministic plan: staged applies, then prunes, then the new inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Apply stages in order; empty stages are left out.
    pub stages: Vec<PlanStage>,
    /// Objects in the previous inventory but not in Git, in delete order
    /// (the reverse of apply order). `Deleted`, or `Skipped` when pruning is
    /// off or disabled for the object.
    pub prune: Vec<PlannedChange>,
    /// The inventory to record after a successful run.
    pub inventory: Inventory,
}

impl Plan {
    /// Every step in execution order: stages, then prunes.
    pub fn changes(&self) -> impl Iterator<Item = &PlannedChange> {
        self.stages
            .iter()
            .flat_map(|s| s.changes.iter())
            .chain(self.prune.iter())
    }

    /// How many steps have each action.
    pub fn count(&self, action: Action) -> usize {
        self.changes().filter(|c| c.action == action).count()
    }

    /// True when applying the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.changes()
            .all(|c| matches!(c.action, Action::Unchanged | Action::Skipped))
    }

    /// The plan as pretty JSON; identical inputs give identical bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Two desired objects share an id.
    #[error("duplicate object {subject} in the desired set (id {id})")]
    DuplicateId {
        /// `Kind/ns/name`.
        subject: String,
        /// The inventory id.
        id: String,
    },
    /// An immutable field changed and force is off.
    #[error("{subject}: field {field} is immutable; set kustomize.toolkit.fluxcd.io/force: enabled (or the force option) to recreate the object")]
    Immutable {
        /// `Kind/ns/name`.
        subject: String,
        /// The dotted field path.
        field: String,
    },
    /// A namespaced object names no namespace the cluster has or Git creates.
    #[error("{subject}: namespaces \"{namespace}\" not found")]
    MissingNamespace {
        /// `Kind/ns/name`.
        subject: String,
        /// The missing namespace.
        namespace: String,
    },
    /// An entry of the previous inventory is not an object id (see
    /// [`ObjectId::inventory_id`]); nothing is planned rather than the
    /// entry dropped, which would leave its object unpruned for good.
    #[error("the inventory holds {id:?}, which is not an object id: expected <namespace>_<name>_<group>_<Kind>")]
    InvalidInventoryId {
        /// The entry as recorded.
        id: String,
    },
    /// A custom kind whose CRD neither the cluster nor Git provides.
    #[error("{subject}: no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind {
        /// `Kind/ns/name`.
        subject: String,
        /// The kind.
        kind: String,
        /// The apiVersion.
        api_version: String,
    },
}

/// Orders ids as Flux applies them: kind order (unlisted kinds last, by
/// kind name), then namespace and name.
pub fn apply_order(schema: &Schema, a: &ObjectId, b: &ObjectId) -> std::cmp::Ordering {
    order_key(schema, a).cmp(&order_key(schema, b))
}

fn order_key<'a>(schema: &Schema, id: &'a ObjectId) -> (usize, &'a str, &'a str, &'a str, &'a str) {
    (
        schema.kind_rank(&id.kind),
        &id.kind,
        &id.namespace,
        &id.name,
        &id.group,
    )
}

/// Checks that every namespace the desired objects need exists live or is
/// created by the desired set, so that an apply never fails halfway on a
/// missing namespace. Namespaced objects without a namespace need `default`.
pub fn check_namespaces(
    desired: &[Object],
    live_namespaces: &BTreeSet<String>,
    schema: &Schema,
) -> Result<(), PlanError> {
    let mut namespaces = live_namespaces.clone();
    let mut schema_after = schema.clone();
    for o in desired {
        if o.group().is_empty() && o.kind() == "Namespace" {
            namespaces.insert(o.name().to_string());
        }
        schema_after.register_crd(o);
    }
    for o in desired {
        if schema_after.is_namespaced(o.group(), o.kind()) {
            let ns = if o.namespace().is_empty() {
                "default"
            } else {
                o.namespace()
            };
            if !namespaces.contains(ns) {
                return Err(PlanError::MissingNamespace {
                    subject: o.id().subject(),
                    namespace: ns.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Checks that every kind is built in, registered in `schema`, or defined by
/// a CRD in the desired set. Use it when `schema` knows the cluster's CRDs.
pub fn check_kinds(desired: &[Object], schema: &Schema) -> Result<(), PlanError> {
    let mut schema_after = schema.clone();
    for o in desired {
        schema_after.register_crd(o);
    }
    for o in desired {
        if !schema_after.serves(o.group(), o.version(), o.kind()) {
            return Err(PlanError::UnknownKind {
                subject: o.id().subject(),
                kind: o.kind().to_string(),
                api_version: o.api_version().to_string(),
            });
        }
    }
    Ok(())
}

/// Flux's per-object annotations, read once per object.
#[derive(Clone, Copy, Default)]
struct Flags {
    reconcile_disabled: bool,
    prune_disabled: bool,
    force: bool,
    ssa: SsaPolicy,
}

impl Flags {
    fn of(object: &Object) -> Flags {
        Flags::from_annotations(object.head().annotations)
    }

    fn from_annotations(annotations: Option<&serde_json::Map<String, serde_json::Value>>) -> Flags {
        let Some(ann) = annotations else {
            return Flags::default();
        };
        let get = |key: &str| ann.get(key).and_then(serde_json::Value::as_str);
        let is = |key: &str, want: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case(want));
        Flags {
            reconcile_disabled: is(annotations::RECONCILE, "disabled"),
            prune_disabled: is(annotations::PRUNE, "disabled"),
            force: is(annotations::FORCE, "enabled"),
            ssa: get(annotations::SSA).map_or(SsaPolicy::Override, SsaPolicy::parse),
        }
    }
}

/// Makes the plan. Pure: the same inputs give the same plan, byte for byte.
///
/// - `desired`: the rendered objects (any order);
/// - `live`: the live objects for every desired id and every id of the
///   previous inventory that exists (absent ids are simply missing);
/// - `previous`: the inventory recorded by the last run.
///
/// Every desired object is read once, in input order (the order its memory
/// was most likely allocated in), for its id, annotations, live
/// counterpart and drift; large inputs are split over up to
/// `options.parallelism` threads. The results are then ordered by id, so
/// the plan, and the error returned when several objects fail, do not
/// depend on the input order or on the thread count.
pub fn plan(
    desired: &[Object],
    live: &BTreeMap<ObjectId, Object>,
    previous: &Inventory,
    schema: &Schema,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let threads = if desired.len() >= PARALLEL_MIN {
        options.parallelism
    } else {
        1
    };
    // Every object, in input order: its id, annotations, live counterpart
    // and classification, read while its memory is in cache.
    let index = LiveIndex::new(
        live,
        desired.len(),
        if live.len() >= PARALLEL_MIN {
            threads
        } else {
            1
        },
    );
    let chunk = if threads > 1 { CHUNK } else { desired.len() };
    let runs = crate::par::in_chunks(desired, threads, chunk, |_, chunk| {
        let mut scratch = diff::Scratch::default();
        let mut kinds = KindCache::default();
        chunk
            .iter()
            .map(|o| Classified::of(o, &index, schema, &mut kinds, options, &mut scratch))
            .collect::<Vec<Classified>>()
    });
    let mut classified: Vec<Classified> = crate::par::concat(runs);

    // Two orders: by id (namespace, name, group, kind), for duplicates, the
    // first failure and ties in the apply order; and by the ids as strings,
    // Flux's inventory order. They are independent, so they are sorted side
    // by side.
    let (by_id, by_string) = crate::par::join(
        threads,
        || sort_by_id(&classified),
        || sort_by_string(&classified),
    );
    if let Some(w) = by_id
        .windows(2)
        .find(|w| classified[w[0] as usize].id == classified[w[1] as usize].id)
    {
        let id = &classified[w[0] as usize].id;
        return Err(PlanError::DuplicateId {
            subject: id.subject(),
            id: id.to_string(),
        });
    }
    // the first failure by id, whatever the input order and thread count
    for &i in &by_id {
        if let Some(Err(e)) = &classified[i as usize].outcome {
            return Err(e.clone());
        }
    }

    let mut prune_ids = prune_candidates(previous, &by_string, &classified, live)?;
    let mut entries: Vec<InventoryEntry> = Vec::with_capacity(by_string.len());
    for &i in &by_string {
        let c = &mut classified[i as usize];
        if c.keep {
            entries.push(InventoryEntry {
                id: std::mem::take(&mut c.inventory_id),
                v: std::mem::take(&mut c.version),
            });
        }
    }

    // Flux's apply order: stage, kind order, then namespace, name and group.
    // Listed kinds have ranks of their own; unlisted ones share the last
    // rank and order by name. Objects go into one group per kind, in id
    // order, so no sort is needed.
    let unlisted = schema.kind_rank("");
    let mut groups: BTreeMap<(Stage, usize, Option<&str>), Vec<u32>> = BTreeMap::new();
    for &i in &by_id {
        let c = &classified[i as usize];
        let kind = (c.rank == unlisted).then_some(c.id.kind.as_str());
        groups.entry((c.stage, c.rank, kind)).or_default().push(i);
    }
    let apply_order: Vec<(Stage, u32)> = groups
        .into_iter()
        .flat_map(|((stage, _, _), members)| members.into_iter().map(move |i| (stage, i)))
        .collect();
    let mut stages: Vec<PlanStage> = Vec::new();
    for (n, &(stage, i)) in apply_order.iter().enumerate() {
        let c = &mut classified[i as usize];
        let Some(Ok(outcome)) = c.outcome.take() else {
            continue;
        };
        let change = PlannedChange {
            id: std::mem::replace(&mut c.id, ObjectId::new("", "", "", "")),
            action: outcome.action,
            drift: outcome.drift,
            recreate: outcome.recreate,
            reason: outcome.reason,
        };
        match stages.last_mut() {
            Some(last) if last.stage == stage => last.changes.push(change),
            _ => {
                let len = apply_order[n..].iter().take_while(|a| a.0 == stage).count();
                let mut changes = Vec::with_capacity(len);
                changes.push(change);
                stages.push(PlanStage { stage, changes });
            }
        }
    }

    prune_ids.sort_by(|a, b| order_key(schema, b).cmp(&order_key(schema, a)));
    let prune = prune_ids
        .into_iter()
        .filter_map(|id| {
            let live = live.get(&id)?;
            let flags = Flags::of(live);
            let reason = if !options.prune {
                Some("prune is off".to_string())
            } else if flags.prune_disabled {
                Some(format!("{}: disabled", annotations::PRUNE))
            } else if flags.reconcile_disabled {
                Some(format!("{}: disabled", annotations::RECONCILE))
            } else {
                options
                    .owner
                    .as_ref()
                    .and_then(|owner| match labelled_owner(live) {
                        Some(other) if other == *owner => None,
                        Some(other) => Some(format!("owned by Kustomization {other}")),
                        None => Some(format!("not labelled as owned by Kustomization {owner}")),
                    })
            };
            Some(PlannedChange {
                action: if reason.is_some() {
                    Action::Skipped
                } else {
                    Action::Deleted
                },
                id,
                drift: Vec::new(),
                recreate: false,
                reason,
            })
        })
        .collect();
    Ok(Plan {
        stages,
        prune,
        inventory: Inventory { entries },
    })
}

/// Below this many objects, planning stays on the calling thread.
const PARALLEL_MIN: usize = 2_000;

/// Objects per unit of work for the threads: small enough to even out
/// threads the machine slows, large enough to keep each thread's memory
/// accesses in input order.
const CHUNK: usize = 256;

/// The first 16 bytes of `s`, zero-padded, as two big-endian numbers:
/// when two prefixes differ, they order as the strings do (equal prefixes
/// say nothing, so callers then compare the strings).
fn prefix16(s: &str) -> (u64, u64) {
    let mut buf = [0u8; 16];
    let n = s.len().min(16);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    let (hi, lo) = buf.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    (word(hi), word(lo))
}

/// A string's [`prefix16`] and its length, capped at 17. Keys order as
/// their strings do, and equal keys mean equal strings unless both are
/// capped (longer than 16 bytes).
fn short_key(s: &str) -> (u64, u64, u8) {
    let (hi, lo) = prefix16(s);
    (hi, lo, s.len().min(17) as u8)
}

/// A sort key for an id, compared without touching the id's strings in
/// the common case.
#[derive(Clone, Copy)]
struct IdKey {
    namespace: (u64, u64, u8),
    name: (u64, u64, u8),
}

impl IdKey {
    fn of(id: &ObjectId) -> IdKey {
        IdKey {
            namespace: short_key(&id.namespace),
            name: short_key(&id.name),
        }
    }

    /// Orders as `ObjectId` does; `full` compares the ids themselves where
    /// the keys cannot tell (long shared prefixes, or the same namespace
    /// and name).
    fn cmp(&self, other: &IdKey, full: impl FnOnce() -> std::cmp::Ordering) -> std::cmp::Ordering {
        use std::cmp::Ordering::Equal;
        match self.namespace.cmp(&other.namespace) {
            Equal if self.namespace.2 <= 16 => match self.name.cmp(&other.name) {
                Equal => full(),
                order => order,
            },
            Equal => full(),
            order => order,
        }
    }
}

/// `classified` by id, sorted on [`IdKey`]s (the indices move, the keys
/// stay put).
fn sort_by_id(classified: &[Classified]) -> Vec<u32> {
    let keys: Vec<IdKey> = classified.iter().map(|c| IdKey::of(&c.id)).collect();
    let mut order: Vec<u32> = (0..classified.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        keys[a].cmp(&keys[b], || classified[a].id.cmp(&classified[b].id))
    });
    order
}

/// `classified` by inventory id (a string), as Flux sorts an inventory
/// (distinct ids have distinct inventory ids; the last tie-break keeps the
/// order total all the same).
fn sort_by_string(classified: &[Classified]) -> Vec<u32> {
    let keys: Vec<(u64, u64)> = classified
        .iter()
        .map(|c| prefix16(&c.inventory_id))
        .collect();
    let mut order: Vec<u32> = (0..classified.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        let (x, y) = (&classified[a], &classified[b]);
        keys[a]
            .cmp(&keys[b])
            .then_with(|| x.inventory_id.cmp(&y.inventory_id))
            .then_with(|| x.id.cmp(&y.id))
    });
    order
}

/// The ids of the previous inventory that left Git and still exist live;
/// an entry that does not parse is an error.
/// `by_string` orders `classified` by inventory id, so a sorted inventory
/// (the usual case) is matched by a merge join; one found out of order is
/// matched by lookups instead.
fn prune_candidates(
    previous: &Inventory,
    by_string: &[u32],
    classified: &[Classified],
    live: &BTreeMap<ObjectId, Object>,
) -> Result<Vec<ObjectId>, PlanError> {
    let desired_id = |i: &u32| classified[*i as usize].inventory_id.as_str();
    let merged = || {
        let mut rest = by_string.iter().peekable();
        let mut last: Option<&str> = None;
        let mut gone = Vec::new();
        for e in &previous.entries {
            if last.is_some_and(|l| l > e.id.as_str()) {
                return None;
            }
            last = Some(&e.id);
            while rest.next_if(|i| desired_id(i) < e.id.as_str()).is_some() {}
            if rest.peek().is_none_or(|i| desired_id(i) != e.id.as_str()) {
                gone.push(e);
            }
        }
        Some(gone)
    };
    let gone = merged().unwrap_or_else(|| {
        previous
            .entries
            .iter()
            .filter(|e| {
                by_string
                    .binary_search_by(|i| desired_id(i).cmp(e.id.as_str()))
                    .is_err()
            })
            .collect()
    });
    let mut ids = Vec::with_capacity(gone.len());
    for e in gone {
        let id: ObjectId =
            e.id.parse()
                .map_err(|_| PlanError::InvalidInventoryId { id: e.id.clone() })?;
        if live.contains_key(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One desired object, read once: its id, what ordering and the inventory
/// need, and its classification (or why it cannot be planned).
struct Classified {
    id: ObjectId,
    inventory_id: String,
    version: String,
    stage: Stage,
    rank: usize,
    keep: bool,
    /// How the object compares with its live counterpart; taken when the
    /// plan is assembled.
    outcome: Option<Result<Outcome, PlanError>>,
}

/// A planned step without its id.
struct Outcome {
    action: Action,
    drift: Vec<FieldChange>,
    recreate: bool,
    reason: Option<String>,
}

impl Classified {
    fn of<'d, 'l>(
        o: &'d Object,
        live: &LiveIndex<'l>,
        schema: &Schema,
        kinds: &mut KindCache<'d>,
        options: &PlanOptions,
        scratch: &mut diff::Scratch<'l>,
    ) -> Classified {
        let head = o.head();
        let (stage, rank) = kinds.get(schema, &head);
        let id = head.id();
        let flags = Flags::from_annotations(head.annotations);
        let live = live.get(&id);
        let outcome = classify(o, &head, flags, live, schema, options, scratch);
        Classified {
            inventory_id: id.inventory_id(),
            version: head.version().to_string(),
            stage,
            rank,
            keep: flags.ssa != SsaPolicy::Ignore,
            outcome: Some(outcome),
            id,
        }
    }
}

/// The stage and kind rank of the kinds one thread has seen (a plan holds
/// few kinds, so a short list beats searching the schema per object).
#[derive(Default)]
struct KindCache<'d> {
    seen: Vec<(&'d str, &'d str, Stage, usize)>,
}

impl<'d> KindCache<'d> {
    fn get(&mut self, schema: &Schema, head: &Head<'d>) -> (Stage, usize) {
        let (api_version, kind) = (head.api_version, head.kind);
        if let Some(&(_, _, stage, rank)) = self
            .seen
            .iter()
            .find(|(a, k, _, _)| *k == kind && *a == api_version)
        {
            return (stage, rank);
        }
        let found = (schema.stage(head.group(), kind), schema.kind_rank(kind));
        if self.seen.len() < 64 {
            self.seen.push((api_version, kind, found.0, found.1));
        }
        found
    }
}

/// The live objects, found by id without touching their memory: a sorted
/// array of the ids' [`IdKey`]s (small enough to stay in cache), or plain
/// lookups when the live map is much larger than the desired set.
struct LiveIndex<'l> {
    live: &'l BTreeMap<ObjectId, Object>,
    keys: Vec<(IdKey, &'l ObjectId, &'l Object)>,
}

impl<'l> LiveIndex<'l> {
    /// The index for planning `desired` objects; the keys are read on up
    /// to `threads` threads.
    fn new(live: &'l BTreeMap<ObjectId, Object>, desired: usize, threads: usize) -> Self {
        if live.len() > 4 * desired {
            return LiveIndex {
                live,
                keys: Vec::new(),
            };
        }
        let mut entries: Vec<(&ObjectId, &Object)> = live.iter().collect();
        let runs = crate::par::in_runs(&mut entries, threads, |_, run| {
            run.iter()
                .map(|&(id, o)| (IdKey::of(id), id, o))
                .collect::<Vec<_>>()
        });
        LiveIndex {
            live,
            keys: crate::par::concat(runs),
        }
    }

    fn get(&self, id: &ObjectId) -> Option<&'l Object> {
        if self.keys.is_empty() {
            return self.live.get(id);
        }
        // the map is in `ObjectId` order, which the keys respect
        let want = IdKey::of(id);
        self.keys
            .binary_search_by(|(key, k, _)| key.cmp(&want, || (*k).cmp(id)))
            .ok()
            .map(|i| self.keys[i].2)
    }
}

fn classify<'l>(
    desired: &Object,
    head: &Head<'_>,
    flags: Flags,
    live: Option<&'l Object>,
    schema: &Schema,
    options: &PlanOptions,
    scratch: &mut diff::Scratch<'l>,
) -> Result<Outcome, PlanError> {
    let skip = |reason: String| Outcome {
        action: Action::Skipped,
        drift: Vec::new(),
        recreate: false,
        reason: Some(reason),
    };
    let live_head = live.map(Object::head);
    let live_flags = live_head.map(|h| Flags::from_annotations(h.annotations));
    if flags.reconcile_disabled || live_flags.is_some_and(|f| f.reconcile_disabled) {
        return Ok(skip(format!("{}: disabled", annotations::RECONCILE)));
    }
    let policy = flags.ssa;
    let (Some(live), Some(live_head)) = (live, live_head) else {
        if policy == SsaPolicy::Ignore {
            return Ok(skip(format!("{}: Ignore", annotations::SSA)));
        }
        return Ok(Outcome {
            action: Action::Created,
            drift: Vec::new(),
            recreate: false,
            reason: None,
        });
    };
    match policy {
        SsaPolicy::Ignore => return Ok(skip(format!("{}: Ignore", annotations::SSA))),
        SsaPolicy::IfNotPresent => return Ok(skip(format!("{}: IfNotPresent", annotations::SSA))),
        _ => {}
    }
    let mut drift = diff::diff_heads(
        desired,
        head,
        live,
        &live_head,
        &options.field_manager,
        scratch,
    );
    if policy == SsaPolicy::Merge {
        let foreign = foreign_paths(live, &options.field_manager);
        drift.retain(|c| c.desired.is_none() || !foreign.contains(&c.path));
    }
    if drift.is_empty() {
        return Ok(Outcome {
            action: Action::Unchanged,
            drift,
            recreate: false,
            reason: None,
        });
    }
    diff::mask_secret_drift(desired, &mut drift);
    let immutable = diff::immutable_changes(
        desired,
        &diff::normalize(live),
        schema.immutable_fields(head.group(), head.kind),
    );
    let recreate = !immutable.is_empty();
    if recreate && !(options.force || flags.force) {
        return Err(PlanError::Immutable {
            subject: head.id().subject(),
            field: immutable[0].clone(),
        });
    }
    Ok(Outcome {
        action: Action::Configured,
        drift,
        recreate,
        reason: None,
    })
}

fn foreign_paths(live: &Object, manager: &str) -> BTreeSet<String> {
    diff::managed_paths(live, |m, _| m != manager)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn obj(v: Value) -> Object {
        Object::new(v).unwrap()
    }

    fn ns(name: &str) -> Object {
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    }

    fn cm(ns: &str, name: &str, data: Value) -> Object {
        obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}),
        )
    }

    fn deploy(ns: &str, name: &str, app: &str) -> Object {
        obj(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": app}}}}),
        )
    }

    fn live_of(objs: &[Object]) -> BTreeMap<ObjectId, Object> {
        objs.iter().map(|o| (o.id(), o.clone())).collect()
    }

    #[test]
    fn stages_follow_flux_order_with_ties_by_namespace_and_name() {
        let crd = obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "names": {"kind": "Widget"}}}),
        );
        let sc = obj(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
        );
        let cr = obj(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
        );
        let desired = vec![
            deploy("b", "x", "x"),
            cm("b", "a", json!({})),
            cm("a", "z", json!({})),
            sc,
            ns("b"),
            crd,
            cr,
            ns("a"),
        ];
        let p = plan(
            &desired,
            &BTreeMap::new(),
            &Inventory::default(),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        let order: Vec<Vec<String>> = p
            .stages
            .iter()
            .map(|s| s.changes.iter().map(|c| c.id.subject()).collect())
            .collect();
        assert_eq!(
            order,
            vec![
                vec![
                    "CustomResourceDefinition/widgets.example.com",
                    "Namespace/a",
                    "Namespace/b",
                    "ClusterRole/r"
                ],
                vec!["StorageClass/fast"],
                vec!["ConfigMap/a/z", "ConfigMap/b/a", "Deployment/b/x"],
            ]
        );
        // byte-identical whatever the input order
        let mut reversed = desired.clone();
        reversed.reverse();
        let q = plan(
            &reversed,
            &BTreeMap::new(),
            &Inventory::default(),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.to_json(), q.to_json());
    }

    #[test]
    fn classifies_created_configured_unchanged_and_prunes() {
        let desired = vec![
            cm("a", "same", json!({"k": "v"})),
            cm("a", "changed", json!({"k": "new"})),
            cm("a", "new", json!({})),
        ];
        let live = live_of(&[
            cm("a", "same", json!({"k": "v"})),
            cm("a", "changed", json!({"k": "old"})),
            cm("a", "gone", json!({})),
        ]);
        let previous = Inventory::from_objects(live.values());
        let p = plan(
            &desired,
            &live,
            &previous,
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        let actions: Vec<(String, Action)> =
            p.changes().map(|c| (c.id.subject(), c.action)).collect();
        assert_eq!(
            actions,
            vec![
                ("ConfigMap/a/changed".into(), Action::Configured),
                ("ConfigMap/a/new".into(), Action::Created),
                ("ConfigMap/a/same".into(), Action::Unchanged),
                ("ConfigMap/a/gone".into(), Action::Deleted),
            ]
        );
        assert_eq!(p.stages[0].changes[0].drift[0].path, ".data.k");
        assert_eq!(p.inventory, Inventory::from_objects(desired.iter()));
        // prune off: skipped, not deleted
        let off = PlanOptions {
            prune: false,
            ..PlanOptions::default()
        };
        let p = plan(&desired, &live, &previous, &Schema::kubernetes(), &off).unwrap();
        assert_eq!(p.prune[0].action, Action::Skipped);
    }

    #[test]
    fn annotations_are_honoured() {
        let mut keep = cm("a", "keep", json!({}));
        keep.set_metadata_entry("annotations", annotations::PRUNE, "disabled");
        let mut frozen_live = cm("a", "frozen", json!({"k": "edited"}));
        frozen_live.set_metadata_entry("annotations", annotations::RECONCILE, "disabled");
        let mut once = cm("a", "once", json!({"k": "git"}));
        once.set_metadata_entry("annotations", annotations::SSA, "IfNotPresent");
        let mut ignored = cm("a", "ignored", json!({"k": "git"}));
        ignored.set_metadata_entry("annotations", annotations::SSA, "Ignore");
        let desired = vec![
            cm("a", "frozen", json!({"k": "git"})),
            once.clone(),
            ignored,
        ];
        let mut once_live = once.clone();
        once_live.value_mut()["data"]["k"] = json!("changed");
        let live = live_of(&[keep.clone(), frozen_live, once_live]);
        let previous = Inventory::from_objects([&keep]);
        let p = plan(
            &desired,
            &live,
            &previous,
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        let actions: Vec<(String, Action)> =
            p.changes().map(|c| (c.id.subject(), c.action)).collect();
        assert_eq!(
            actions,
            vec![
                ("ConfigMap/a/frozen".into(), Action::Skipped),
                ("ConfigMap/a/ignored".into(), Action::Skipped),
                ("ConfigMap/a/once".into(), Action::Skipped),
                ("ConfigMap/a/keep".into(), Action::Skipped),
            ]
        );
        assert!(!p
            .inventory
            .contains(&ObjectId::new("", "ConfigMap", "a", "ignored")));
    }

    #[test]
    fn prune_with_an_owner_skips_objects_another_owner_labels() {
        let labelled = |name: &str, owner: Option<(&str, &str)>| {
            let mut o = cm("a", name, json!({}));
            if let Some((ns, n)) = owner {
                o.set_metadata_entry("labels", annotations::OWNER_NAMESPACE, ns);
                o.set_metadata_entry("labels", annotations::OWNER_NAME, n);
            }
            o
        };
        let live = live_of(&[
            labelled("mine", Some(("flux-system", "apps"))),
            labelled("adopted", Some(("flux-system", "other"))),
            labelled("unlabelled", None),
        ]);
        let previous = Inventory::from_objects(live.values());
        let options = PlanOptions {
            owner: Some("flux-system/apps".to_string()),
            ..PlanOptions::default()
        };
        let p = plan(&[], &live, &previous, &Schema::kubernetes(), &options).unwrap();
        let prune: Vec<(String, Action, Option<&str>)> = p
            .prune
            .iter()
            .map(|c| (c.id.name.clone(), c.action, c.reason.as_deref()))
            .collect();
        assert_eq!(
            prune,
            vec![
                (
                    "unlabelled".to_string(),
                    Action::Skipped,
                    Some("not labelled as owned by Kustomization flux-system/apps")
                ),
                ("mine".to_string(), Action::Deleted, None),
                (
                    "adopted".to_string(),
                    Action::Skipped,
                    Some("owned by Kustomization flux-system/other")
                ),
            ]
        );
        assert!(p.inventory.entries.is_empty());
        // without an owner (nothing labelled), everything recorded is pruned
        let p = plan(
            &[],
            &live,
            &previous,
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.count(Action::Deleted), 3);
    }

    #[test]
    fn immutable_change_needs_force() {
        let live = live_of(&[deploy("a", "d", "old")]);
        let desired = vec![deploy("a", "d", "new")];
        let err = plan(
            &desired,
            &live,
            &Inventory::default(),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment/a/d: field spec.selector is immutable; set kustomize.toolkit.fluxcd.io/force: enabled (or the force option) to recreate the object"
        );
        let force = PlanOptions {
            force: true,
            ..PlanOptions::default()
        };
        let p = plan(
            &desired,
            &live,
            &Inventory::default(),
            &Schema::kubernetes(),
            &force,
        )
        .unwrap();
        assert!(p.stages[0].changes[0].recreate);
        let mut annotated = deploy("a", "d", "new");
        annotated.set_metadata_entry("annotations", annotations::FORCE, "enabled");
        let p = plan(
            &[annotated],
            &live,
            &Inventory::default(),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap();
        assert!(p.stages[0].changes[0].recreate);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = plan(
            &[ns("a"), ns("a")],
            &BTreeMap::new(),
            &Inventory::default(),
            &Schema::kubernetes(),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate object Namespace/a in the desired set (id _a__Namespace)"
        );
    }

    #[test]
    fn prerequisites_are_checked_at_plan_time() {
        let schema = Schema::kubernetes();
        let live: BTreeSet<String> = ["default".to_string()].into();
        let err = check_namespaces(&[cm("nope", "x", json!({}))], &live, &schema).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ConfigMap/nope/x: namespaces \"nope\" not found"
        );
        assert!(
            check_namespaces(&[ns("nope"), cm("nope", "x", json!({}))], &live, &schema).is_ok()
        );
        let widget = obj(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}}),
        );
        let err = check_kinds(std::slice::from_ref(&widget), &schema).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Widget/default/w: no matches for kind \"Widget\" in version \"example.com/v1\""
        );
        let crd = obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "names": {"kind": "Widget"}, "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true}]}}),
        );
        assert!(check_kinds(&[crd, widget], &schema).is_ok());
    }

    #[test]
    fn threads_do_not_change_the_plan_or_the_first_error() {
        let n = PARALLEL_MIN * 2 + 7;
        let mut desired = Vec::new();
        let mut live = BTreeMap::new();
        for i in 0..n {
            let o = cm(
                &format!("ns-{}", i % 13),
                &format!("cm-{i}"),
                json!({"k": "v"}),
            );
            if i % 3 != 0 {
                let mut l = o.clone();
                if i % 7 == 0 {
                    l.value_mut()["data"]["k"] = json!("drift");
                }
                live.insert(l.id(), l);
            }
            desired.push(o);
        }
        let gone = cm("old", "gone", json!({}));
        live.insert(gone.id(), gone.clone());
        let previous = Inventory::from_objects(desired.iter().chain([&gone]));
        let schema = Schema::kubernetes();
        let mut options = PlanOptions {
            parallelism: 1,
            ..PlanOptions::default()
        };
        let one = plan(&desired, &live, &previous, &schema, &options).unwrap();
        assert_eq!(one.count(Action::Created), n.div_ceil(3));
        assert_eq!(one.count(Action::Deleted), 1);
        for threads in [2, 3, 8] {
            options.parallelism = threads;
            let many = plan(&desired, &live, &previous, &schema, &options).unwrap();
            assert_eq!(one.to_json(), many.to_json(), "{threads} threads");
        }
        // an immutable change in two objects: the error names the first by
        // id, whatever the input order and the thread count
        let job = |name: &str, image: &str| {
            obj(json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": "ns-1"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}))
        };
        for name in ["a-job", "z-job"] {
            let j = job(name, "old");
            live.insert(j.id(), j);
            desired.push(job(name, "new"));
        }
        let mut errors = Vec::new();
        for threads in [1, 2, 8] {
            options.parallelism = threads;
            errors.push(plan(&desired, &live, &previous, &schema, &options).unwrap_err());
            desired.reverse();
            errors.push(plan(&desired, &live, &previous, &schema, &options).unwrap_err());
        }
        assert!(
            errors[0].to_string().starts_with("Job/ns-1/a-job"),
            "{}",
            errors[0]
        );
        assert!(errors.iter().all(|e| *e == errors[0]));
    }
}
