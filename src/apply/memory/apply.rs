//! Server-side apply and update: merging, field ownership, conflicts,
//! immutability, generation and the simulated controllers' status.

use serde_json::{Map, Value};

use super::fields::{self, Entry, FieldSet, Leaf};
use super::validate::{
    check_immutable_data, check_string_maps, fold_string_data, invalid_object, pointer_to_field,
    qualified_kind, set_pointer, validate_crd,
};
use super::{invalid, rbac, status, Prepared, State};
use crate::apply::{ApplyError, ApplyOptions, Cause, Causes};
use crate::object::{Object, ObjectId};

/// Core kinds whose strategy sets `metadata.generation`, and the rest.
pub(super) fn tracks_generation(group: &str, kind: &str) -> bool {
    match group {
        "" => kind == "ReplicationController",
        rbac::RBAC_GROUP => false,
        _ => true,
    }
}

/// Metadata the server owns; it is never part of a field set.
pub(super) const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// An object without what is never owned by a field manager: apiVersion,
/// kind, status and system metadata.
pub(super) fn strip_for_fields(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("status");
        let empty_meta = match m.get_mut("metadata").and_then(Value::as_object_mut) {
            Some(md) => {
                for f in SYSTEM_METADATA {
                    md.remove(*f);
                }
                md.is_empty()
            }
            None => false,
        };
        if empty_meta {
            m.remove("metadata");
        }
    }
    out
}

/// Removes `null` map values: an applied `null` means "not set".
pub(super) fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// True when two objects differ only in metadata and status.
pub(super) fn same_spec(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    fn spec(m: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        m.iter()
            .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
    }
    spec(a).eq(spec(b))
}

/// The uid of the `n`-th object created: deterministic, UUID-shaped.
pub(super) fn uid_for(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// The counter behind a uid made by [`uid_for`].
pub(super) fn uid_number(uid: &str) -> Option<u64> {
    uid.strip_prefix("00000000-0000-4000-8000-")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}

/// `metadata` as a map, created when absent.
pub(super) fn metadata_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    if let Value::Object(root) = v {
        let md = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !md.is_object() {
            *md = Value::Object(Map::new());
        }
        if let Value::Object(m) = md {
            return m;
        }
    }
    unreachable!("the value and its metadata were made maps above")
}

/// How the API server names a manager in conflict messages
/// (apimachinery's `printManager`): `"name"`, `with subresource "status"`,
/// and `using <apiVersion>` for Update managers.
fn print_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if e.operation == "Update" {
        s.push_str(&format!(" using {}", e.api_version));
    }
    s
}

/// The manager identifier structured-merge-diff sorts conflicts by: the
/// entry's JSON without fields and time, and without the apiVersion of
/// Apply entries.
fn manager_identifier(e: &Entry) -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut s = format!(
        "{{\"manager\":{},\"operation\":{}",
        q(&e.manager),
        q(&e.operation)
    );
    if e.operation != "Apply" && !e.api_version.is_empty() {
        s.push_str(&format!(",\"apiVersion\":{}", q(&e.api_version)));
    }
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(",\"subresource\":{}", q(sub)));
    }
    s.push('}');
    s
}

/// The API server's apply conflict: the message, and one
/// `FieldManagerConflict` cause per field and manager (managers sorted as
/// the API server sorts them).
pub(super) fn conflict_error(
    subject: String,
    entries: &[Entry],
    conflicts: &[(usize, Vec<fields::Path>)],
) -> ApplyError {
    let mut sorted: Vec<(&Entry, &Vec<fields::Path>)> = conflicts
        .iter()
        .filter_map(|(i, paths)| entries.get(*i).map(|e| (e, paths)))
        .collect();
    sorted.sort_by_key(|(e, _)| manager_identifier(e));
    let total: usize = sorted.iter().map(|(_, p)| p.len()).sum();
    let causes = sorted
        .iter()
        .flat_map(|(e, paths)| {
            paths.iter().map(|p| {
                Cause::new(
                    "FieldManagerConflict",
                    &fields::path_string(p),
                    format!("conflict with {}", print_manager(e)),
                )
            })
        })
        .collect();
    let body = match sorted.as_slice() {
        [(e, paths)] if paths.len() == 1 => format!(
            "conflict with {}: {}",
            print_manager(e),
            paths
                .first()
                .map(|p| fields::path_string(p))
                .unwrap_or_default()
        ),
        _ => sorted
            .iter()
            .map(|(e, paths)| {
                let mut s = format!("conflicts with {}:", print_manager(e));
                for p in paths.iter() {
                    s.push_str(&format!("\n- {}", fields::path_string(p)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    ApplyError::Conflict {
        subject,
        message: format!(
            "Apply failed with {total} conflict{}: {body}",
            if total == 1 { "" } else { "s" }
        ),
        causes,
    }
}

impl State {
    /// Server-side defaults and controller work after a write: the
    /// namespace name label, generation, status, resourceVersion.
    pub(super) fn finish(
        &self,
        id: &ObjectId,
        mut v: Value,
        old: Option<&Value>,
        entries: &[Entry],
    ) -> Result<Prepared, ApplyError> {
        if id.group.is_empty() && id.kind == "Secret" {
            fold_string_data(&mut v);
        }
        if id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition" {
            validate_crd(&v).map_err(|errs| invalid_object(id, &errs))?;
        }
        if id.group.is_empty() && id.kind == "Namespace" {
            let md = metadata_mut(&mut v);
            let labels = md
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(l) = labels.as_object_mut() {
                l.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(id.name.clone()),
                );
            }
        }
        if let Some(old) = old {
            check_immutable_data(id, old, &v).map_err(|m| invalid_object(id, &[m]))?;
        }
        // Immutable fields.
        if let Some(old) = old {
            for ptr in self.schema.immutable_fields(&id.group, &id.kind) {
                let Some(before) = old.pointer(ptr) else {
                    continue;
                };
                match v.pointer(ptr) {
                    Some(after) if after != before => {
                        return Err(invalid_object(
                            id,
                            &[format!(
                                "{}: Invalid value: {after}: field is immutable",
                                pointer_to_field(ptr)
                            )],
                        ));
                    }
                    Some(_) => {}
                    None => set_pointer(&mut v, ptr, before.clone()),
                }
            }
        }
        let tracks = tracks_generation(&id.group, &id.kind);
        let old_generation = old
            .and_then(|o| o.pointer("/metadata/generation"))
            .and_then(Value::as_i64);
        let spec_changed = old.is_none_or(|o| !same_spec(o, &v));
        let generation = match (tracks, old_generation) {
            (false, _) => None,
            (true, None) => Some(1),
            (true, Some(g)) if spec_changed => Some(g.saturating_add(1)),
            (true, Some(g)) => Some(g),
        };
        if let Some(g) = generation {
            metadata_mut(&mut v).insert("generation".into(), Value::from(g));
        }
        // The controller rolls out every new generation (or a new object).
        let now = status::rfc3339(self.now);
        let core_with_status = id.group.is_empty()
            && matches!(
                id.kind.as_str(),
                "Namespace" | "Service" | "PersistentVolumeClaim" | "Pod"
            );
        let needs_status = old.is_none() || (spec_changed && (tracks || core_with_status));
        if needs_status {
            let rollout = self.rollout_of(&v);
            if let Some(st) = status::simulate(&id.group, &id.kind, &v, rollout, &now) {
                if let Some(m) = v.as_object_mut() {
                    m.insert("status".into(), st);
                }
            }
        }
        metadata_mut(&mut v).insert(
            "managedFields".into(),
            fields::encode_managed_fields(entries),
        );
        if metadata_mut(&mut v)
            .get("managedFields")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            metadata_mut(&mut v).remove("managedFields");
        }
        let changed = old != Some(&v);
        if changed {
            metadata_mut(&mut v).insert(
                "resourceVersion".into(),
                Value::String(self.rv.saturating_add(1).to_string()),
            );
        }
        Ok(Prepared {
            id: id.clone(),
            value: v,
            changed,
            created: old.is_none(),
        })
    }

    /// Server-side apply of `object` as `opts.field_manager`, checked but
    /// not committed.
    pub(super) fn prepare_apply(
        &self,
        object: &Object,
        opts: &ApplyOptions,
    ) -> Result<Prepared, ApplyError> {
        let (group, version, kind) = (object.group(), object.version(), object.kind());
        let raw_subject = object.id().subject();
        if !self.serves(group, version, kind) {
            return Err(invalid(
                &raw_subject,
                format!(
                    "no matches for kind \"{kind}\" in version \"{}\"",
                    object.api_version()
                ),
            ));
        }
        let id = self.normalize(&object.id());
        let subject = id.subject();
        self.check_name(&id)?;
        if opts.field_manager.is_empty() {
            return Err(invalid(
                &subject,
                "PATCH, field manager must be set for apply (fieldManager is required)",
            ));
        }
        let live = self.objects.get(&id);
        if let Some(user) = &opts.impersonate {
            self.authorize(user, "patch", &id)?;
            if live.is_none() {
                self.authorize(user, "create", &id)?;
            }
        }
        self.check_namespace(&id)?;
        let config = object.value();
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(invalid(&subject, "metadata.managedFields must be nil"));
        }
        if let Some(rv) = config
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            let live_rv = live
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str);
            if live_rv != Some(rv) {
                return Err(ApplyError::Conflict {
                    subject,
                    causes: Causes::default(),
                    message: format!(
                        "Operation cannot be fulfilled on {}{} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                        self.resource_of(group, kind),
                        if group.is_empty() { String::new() } else { format!(".{group}") },
                        id.name
                    ),
                });
            }
        }
        let mut applied = strip_for_fields(config);
        drop_nulls(&mut applied);
        let typed_error = |m: String| {
            let ns_name = if id.namespace.is_empty() {
                id.name.clone()
            } else {
                format!("{}/{}", id.namespace, id.name)
            };
            let gv = if group.is_empty() {
                format!("/{version}")
            } else {
                format!("{group}/{version}")
            };
            invalid(
                &subject,
                format!("failed to create typed patch object ({ns_name}; {gv}, Kind={kind}): {m}"),
            )
        };
        check_string_maps(group, kind, &applied).map_err(typed_error)?;
        let leaves = fields::collect(&applied).map_err(typed_error)?;
        let new_set = FieldSet(leaves.keys().cloned().collect());
        let now = status::rfc3339(self.now);
        let manager = opts.field_manager.as_str();
        let (value, entries) = match live {
            None => {
                let mut v = applied.clone();
                if !v.is_object() {
                    v = Value::Object(Map::new());
                }
                let md = metadata_mut(&mut v);
                md.insert("name".into(), Value::String(id.name.clone()));
                if !id.namespace.is_empty() {
                    md.insert("namespace".into(), Value::String(id.namespace.clone()));
                }
                md.insert(
                    "uid".into(),
                    Value::String(uid_for(self.uids.saturating_add(1))),
                );
                md.insert("creationTimestamp".into(), Value::String(now.clone()));
                let entries = vec![Entry {
                    manager: manager.to_string(),
                    operation: "Apply".into(),
                    api_version: object.api_version().to_string(),
                    time: Some(now.clone()),
                    subresource: None,
                    set: new_set,
                }];
                (v, entries)
            }
            Some(live) => {
                let mut entries = fields::parse_managed_fields(live)
                    .map_err(|m| invalid(&subject, format!("live object: {m}")))?;
                // Conflicts: fields another manager owns that this apply
                // sets to a different value.
                let mut conflicts: Vec<(usize, Vec<fields::Path>)> = Vec::new();
                for (i, e) in entries.iter().enumerate() {
                    if e.is(manager, "Apply") {
                        continue;
                    }
                    let paths: Vec<fields::Path> = leaves
                        .iter()
                        .filter_map(|(p, leaf)| match leaf {
                            Leaf::Value(cv) if e.set.contains(p) => {
                                (fields::lookup(live, p) != Some(cv)).then(|| p.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    if !paths.is_empty() {
                        conflicts.push((i, paths));
                    }
                }
                if !conflicts.is_empty() {
                    if !opts.force_conflicts {
                        return Err(conflict_error(subject, &entries, &conflicts));
                    }
                    for (i, paths) in &conflicts {
                        if let Some(e) = entries.get_mut(*i) {
                            for p in paths {
                                e.set.remove_tree(p);
                            }
                        }
                    }
                }
                let mut v = live.clone();
                if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    md.remove("managedFields");
                }
                fields::merge(&mut v, &applied);
                let previous = entries
                    .iter()
                    .find(|e| e.is(manager, "Apply"))
                    .map(|e| e.set.clone())
                    .unwrap_or_default();
                let others: Vec<&FieldSet> = entries
                    .iter()
                    .filter(|e| !e.is(manager, "Apply"))
                    .map(|e| &e.set)
                    .collect();
                for p in &previous.0 {
                    if new_set.covers(p) || others.iter().any(|o| o.covers(p)) {
                        continue;
                    }
                    fields::remove(&mut v, p);
                }
                match entries.iter_mut().find(|e| e.is(manager, "Apply")) {
                    Some(e) => {
                        if e.set != new_set || e.api_version != object.api_version() {
                            e.time = Some(now.clone());
                        }
                        e.set = new_set;
                        e.api_version = object.api_version().to_string();
                    }
                    None => entries.push(Entry {
                        manager: manager.to_string(),
                        operation: "Apply".into(),
                        api_version: object.api_version().to_string(),
                        time: Some(now.clone()),
                        subresource: None,
                        set: new_set,
                    }),
                }
                (v, entries)
            }
        };
        let mut value = value;
        if let Some(m) = value.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                Value::String(object.api_version().to_string()),
            );
            m.insert("kind".into(), Value::String(kind.to_string()));
        }
        self.finish(&id, value, live, &entries)
    }

    /// An update (`kubectl edit`) by `manager`, checked but not committed.
    pub(super) fn prepare_update(
        &self,
        id: &ObjectId,
        manager: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Prepared, ApplyError> {
        let id = self.normalize(id);
        let subject = id.subject();
        let live = self.objects.get(&id).ok_or_else(|| ApplyError::NotFound {
            subject: subject.clone(),
        })?;
        let mut v = live.clone();
        edit(&mut v);
        let edited = Object::new(v).map_err(|e| invalid(&subject, e.to_string()))?;
        let eid = self.normalize(&edited.id());
        if eid != id {
            return Err(invalid(
                &subject,
                format!(
                    "{} \"{}\" is invalid: the edit changed the object's identity to {}",
                    qualified_kind(&id.group, &id.kind),
                    id.name,
                    eid.subject()
                ),
            ));
        }
        if !self.serves(edited.group(), edited.version(), edited.kind()) {
            return Err(invalid(
                &subject,
                format!(
                    "no matches for kind \"{}\" in version \"{}\"",
                    edited.kind(),
                    edited.api_version()
                ),
            ));
        }
        let api_version = edited.api_version().to_string();
        let mut v = edited.into_value();
        // The main resource ignores status and system metadata.
        if let Some(m) = v.as_object_mut() {
            match live.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        {
            let md = metadata_mut(&mut v);
            for f in SYSTEM_METADATA {
                md.remove(*f);
            }
            if let Some(lmd) = live.get("metadata").and_then(Value::as_object) {
                for f in SYSTEM_METADATA {
                    if let Some(x) = lmd.get(*f) {
                        md.insert((*f).to_string(), x.clone());
                    }
                }
            }
            md.remove("managedFields");
        }
        let old_leaves = fields::collect(&strip_for_fields(live))
            .map_err(|m| invalid(&subject, format!("live object: {m}")))?;
        let new_leaves =
            fields::collect(&strip_for_fields(&v)).map_err(|m| invalid(&subject, m))?;
        let (changed, removed) = fields::compare(&old_leaves, &new_leaves);
        let mut entries = fields::parse_managed_fields(live)
            .map_err(|m| invalid(&subject, format!("live object: {m}")))?;
        let now = status::rfc3339(self.now);
        for e in entries.iter_mut() {
            if e.is(manager, "Update") {
                continue;
            }
            for p in changed.iter().chain(removed.iter()) {
                e.set.0.remove(p);
            }
            for p in &removed {
                e.set.remove_tree(p);
            }
        }
        let mut mine = entries
            .iter()
            .find(|e| e.is(manager, "Update"))
            .map(|e| e.set.clone())
            .unwrap_or_default();
        for p in &removed {
            mine.remove_tree(p);
        }
        mine.0.extend(changed.iter().cloned());
        match entries.iter_mut().find(|e| e.is(manager, "Update")) {
            Some(e) => {
                if e.set != mine {
                    e.time = Some(now.clone());
                }
                e.set = mine;
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version,
                time: Some(now),
                subresource: None,
                set: mine,
            }),
        }
        self.finish(&id, v, Some(live), &entries)
    }
}
