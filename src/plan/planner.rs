//! Making a plan: classify every object, order the stages, list the prunes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Action, Inventory, InventoryEntry};
use crate::diff::{self, FieldChange};
use crate::object::{Object, ObjectId};
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
        match object
            .annotation(annotations::SSA)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("merge") => SsaPolicy::Merge,
            Some("ifnotpresent") => SsaPolicy::IfNotPresent,
            Some("ignore") => SsaPolicy::Ignore,
            _ => SsaPolicy::Override,
        }
    }
}

fn disabled(object: &Object, key: &str) -> bool {
    object
        .annotation(key)
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

fn force_enabled(object: &Object) -> bool {
    object
        .annotation(annotations::FORCE)
        .is_some_and(|v| v.eq_ignore_ascii_case("enabled"))
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
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            prune: true,
            force: false,
            field_manager: "kustomize-controller".to_string(),
        }
    }
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

/// Makes the plan. Pure: the same inputs give the same plan, byte for byte.
///
/// - `desired`: the rendered objects (any order);
/// - `live`: the live objects for every desired id and every id of the
///   previous inventory that exists (absent ids are simply missing);
/// - `previous`: the inventory recorded by the last run.
pub fn plan(
    desired: &[Object],
    live: &BTreeMap<ObjectId, Object>,
    previous: &Inventory,
    schema: &Schema,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let ids: Vec<ObjectId> = desired.iter().map(Object::id).collect();
    let mut sorted: Vec<&ObjectId> = ids.iter().collect();
    sorted.sort_unstable();
    // ids are unique from here on, so unstable sorts below stay deterministic
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(PlanError::DuplicateId {
            subject: w[0].subject(),
            id: w[0].to_string(),
        });
    }

    let mut by_stage: BTreeMap<Stage, Vec<(usize, PlannedChange)>> = BTreeMap::new();
    let mut entries = Vec::with_capacity(desired.len());
    let mut desired_ids = Vec::with_capacity(desired.len());
    for (o, id) in desired.iter().zip(&ids) {
        let change = classify(o, id, live.get(id), schema, options)?;
        let id_string = id.to_string();
        if SsaPolicy::of(o) != SsaPolicy::Ignore {
            entries.push(InventoryEntry {
                id: id_string.clone(),
                v: o.version().to_string(),
            });
        }
        desired_ids.push(id_string);
        let rank = schema.kind_rank(o.kind());
        by_stage
            .entry(schema.stage(o.group(), o.kind()))
            .or_default()
            .push((rank, change));
    }
    let stages = by_stage
        .into_iter()
        .map(|(stage, mut changes)| {
            changes.sort_unstable_by(|(ra, a), (rb, b)| {
                (ra, &a.id.kind, &a.id.namespace, &a.id.name, &a.id.group).cmp(&(
                    rb,
                    &b.id.kind,
                    &b.id.namespace,
                    &b.id.name,
                    &b.id.group,
                ))
            });
            PlanStage {
                stage,
                changes: changes.into_iter().map(|(_, c)| c).collect(),
            }
        })
        .collect();
    entries.sort_unstable();
    let inventory = Inventory { entries };
    desired_ids.sort_unstable();

    let mut prune_ids: Vec<ObjectId> = previous
        .entries
        .iter()
        .filter(|e| desired_ids.binary_search(&e.id).is_err())
        .filter_map(|e| e.id.parse().ok())
        .filter(|id| live.contains_key(id))
        .collect();
    prune_ids.sort_by(|a, b| order_key(schema, b).cmp(&order_key(schema, a)));
    let prune = prune_ids
        .into_iter()
        .map(|id| {
            let obj = &live[&id];
            let reason = if !options.prune {
                Some("prune is off".to_string())
            } else if disabled(obj, annotations::PRUNE) {
                Some(format!("{}: disabled", annotations::PRUNE))
            } else if disabled(obj, annotations::RECONCILE) {
                Some(format!("{}: disabled", annotations::RECONCILE))
            } else {
                None
            };
            PlannedChange {
                action: if reason.is_some() {
                    Action::Skipped
                } else {
                    Action::Deleted
                },
                id,
                drift: Vec::new(),
                recreate: false,
                reason,
            }
        })
        .collect();
    Ok(Plan {
        stages,
        prune,
        inventory,
    })
}

fn classify(
    desired: &Object,
    id: &ObjectId,
    live: Option<&Object>,
    schema: &Schema,
    options: &PlanOptions,
) -> Result<PlannedChange, PlanError> {
    let id = id.clone();
    let skip = |reason: String| PlannedChange {
        id: id.clone(),
        action: Action::Skipped,
        drift: Vec::new(),
        recreate: false,
        reason: Some(reason),
    };
    if disabled(desired, annotations::RECONCILE)
        || live.is_some_and(|l| disabled(l, annotations::RECONCILE))
    {
        return Ok(skip(format!("{}: disabled", annotations::RECONCILE)));
    }
    let policy = SsaPolicy::of(desired);
    let Some(live) = live else {
        if policy == SsaPolicy::Ignore {
            return Ok(skip(format!("{}: Ignore", annotations::SSA)));
        }
        return Ok(PlannedChange {
            id,
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
    let mut drift = diff::diff_object(desired, live, &options.field_manager);
    if policy == SsaPolicy::Merge {
        // values other managers set on shared fields are kept
        let foreign = foreign_paths(live, &options.field_manager);
        drift.retain(|c| c.desired.is_none() || !foreign.contains(&c.path));
    }
    diff::mask_secret_drift(desired, &mut drift);
    if drift.is_empty() {
        return Ok(PlannedChange {
            id,
            action: Action::Unchanged,
            drift,
            recreate: false,
            reason: None,
        });
    }
    let immutable = diff::immutable_changes(
        desired,
        &diff::normalize(live),
        schema.immutable_fields(desired.group(), desired.kind()),
    );
    let recreate = !immutable.is_empty();
    if recreate && !(options.force || force_enabled(desired)) {
        return Err(PlanError::Immutable {
            subject: id.subject(),
            field: immutable[0].clone(),
        });
    }
    Ok(PlannedChange {
        id,
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
}
