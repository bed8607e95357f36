//! The cluster's state: lookups, authorization, commits and deletes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use std::path::Path;

use super::apply::uid_number;
use super::store::{self, Loaded, Meta};
use super::validate::{invalid_object, namespace_errors, validate_name, BUILTIN_VERSIONS};
use super::{fields, invalid, rbac, read_only, unavailable, Prepared, Rollout, State, StateError};
use crate::apply::{ApplyError, ApplyOptions};
use crate::object::{Object, ObjectId};
use crate::schema::{crd_group_kind, Schema, Scope};

impl State {
    /// An empty state (no objects) with the clock at `now`.
    pub(super) fn empty(now: i64) -> State {
        State {
            base_schema: Schema::kubernetes(),
            schema: Schema::kubernetes(),
            objects: BTreeMap::new(),
            rbac: BTreeSet::new(),
            inventories: BTreeMap::new(),
            rv: 0,
            uids: 0,
            now,
            store: None,
            read_only: None,
            rollout: None,
        }
    }

    /// Takes the objects, inventories and counters of a state folder
    /// (`dir`), checking what the cluster relies on: readable
    /// `managedFields` and decimal resourceVersions.
    pub(super) fn load(&mut self, dir: &Path, loaded: Loaded) -> Result<(), StateError> {
        self.rv = loaded.meta.resource_version;
        self.uids = loaded.meta.uid_counter;
        for (id, v) in &loaded.objects {
            let path = store::object_path(dir, id)?;
            fields::parse_managed_fields(v).map_err(|m| StateError::Corrupt {
                path: path.clone(),
                message: format!("{}: {m}", id.subject()),
            })?;
            if let Some(rv) = v.pointer("/metadata/resourceVersion") {
                let n = rv
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| StateError::Corrupt {
                        path: path.clone(),
                        message: format!(
                            "{}: metadata.resourceVersion: not a decimal string: {rv}",
                            id.subject()
                        ),
                    })?;
                self.rv = self.rv.max(n);
            }
            if let Some(n) = v
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .and_then(uid_number)
            {
                self.uids = self.uids.max(n);
            }
            if rbac::is_rbac_kind(&id.group, &id.kind) {
                self.rbac.insert(id.clone());
            }
        }
        self.objects = loaded.objects;
        self.inventories = loaded.inventories;
        self.rebuild_schema();
        Ok(())
    }

    /// The counters as `cluster.yaml` records them.
    pub(super) fn meta(&self) -> Meta {
        Meta {
            format: store::FORMAT.to_string(),
            resource_version: self.rv,
            uid_counter: self.uids,
        }
    }

    /// The host's schema plus the kinds of the CRD objects held.
    pub(super) fn rebuild_schema(&mut self) {
        let mut schema = self.base_schema.clone();
        for (id, v) in &self.objects {
            if id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition" {
                if let Ok(o) = Object::new(v.clone()) {
                    schema.register_crd(&o);
                }
            }
        }
        self.schema = schema;
    }

    /// The id as the server stores it: no namespace for cluster-scoped
    /// kinds, `default` for namespaced objects that name none.
    pub(super) fn normalize(&self, id: &ObjectId) -> ObjectId {
        let mut id = id.clone();
        match self.schema.scope(&id.group, &id.kind) {
            Scope::Cluster => id.namespace.clear(),
            Scope::Namespaced if id.namespace.is_empty() => id.namespace = "default".into(),
            Scope::Namespaced => {}
        }
        id
    }

    /// The name check of the kind's validation (`ValidateObjectMeta`); a
    /// CRD's name is checked with the rest of it (`validate_crd`).
    pub(super) fn check_name(&self, id: &ObjectId) -> Result<(), ApplyError> {
        if id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition" {
            return Ok(());
        }
        validate_name(&id.group, &id.kind, &id.name).map_err(|errs| invalid_object(id, &errs))
    }

    /// A namespaced object's Namespace exists (`namespaces "x" not found`,
    /// as the API server's admission answers first) and has a valid name
    /// (only a hand-edited state file can hold one that does not).
    pub(super) fn check_namespace(&self, id: &ObjectId) -> Result<(), ApplyError> {
        if id.namespace.is_empty() {
            return Ok(());
        }
        let ns = ObjectId::new("", "Namespace", "", &id.namespace);
        if !self.objects.contains_key(&ns) {
            return Err(invalid(
                &id.subject(),
                format!("namespaces \"{}\" not found", id.namespace),
            ));
        }
        let errs = namespace_errors(&id.namespace);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid_object(id, &errs))
        }
    }

    /// The resource name (plural) of a kind.
    pub(super) fn resource_of(&self, group: &str, kind: &str) -> String {
        for (gk, ck) in self.schema.custom_kinds() {
            if gk.group == group && gk.kind == kind {
                if let Some(plural) = ck.crd_name.strip_suffix(&format!(".{group}")) {
                    return plural.to_string();
                }
            }
        }
        rbac::plural_of(kind)
    }

    /// Checks one verb on one object for an impersonated identity.
    pub(super) fn authorize(
        &self,
        user: &str,
        verb: &str,
        id: &ObjectId,
    ) -> Result<(), ApplyError> {
        let resource = self.resource_of(&id.group, &id.kind);
        let req = rbac::Request {
            verb,
            group: &id.group,
            resource: &resource,
            namespace: &id.namespace,
            name: &id.name,
        };
        let info = rbac::UserInfo::from_name(user);
        if rbac::allowed(&self.objects, &self.rbac, &info, &req) {
            Ok(())
        } else {
            Err(ApplyError::Forbidden {
                subject: id.subject(),
                message: rbac::forbidden_message(&info, &req),
            })
        }
    }

    /// The API server's RBAC escalation prevention: a Role may only grant
    /// what its author holds (or may `escalate`), a binding may only bind a
    /// role whose permissions its author holds (or may `bind`).
    pub(super) fn check_escalation(&self, user: &str, p: &Prepared) -> Result<(), ApplyError> {
        self.check_escalation_of(&rbac::UserInfo::from_name(user), p)
    }

    /// [`State::check_escalation`] for a user with explicit groups.
    pub(super) fn check_escalation_of(
        &self,
        info: &rbac::UserInfo,
        p: &Prepared,
    ) -> Result<(), ApplyError> {
        let id = &p.id;
        if !p.changed || !rbac::is_rbac_kind(&id.group, &id.kind) {
            return Ok(());
        }
        let resource = rbac::plural_of(&id.kind);
        let forbidden = |msg: String| ApplyError::Forbidden {
            subject: id.subject(),
            message: format!(
                "{resource}.{} \"{}\" is forbidden: {msg}",
                rbac::RBAC_GROUP,
                id.name
            ),
        };
        let rules = match id.kind.as_str() {
            "Role" | "ClusterRole" => {
                let req = rbac::Request {
                    verb: "escalate",
                    group: rbac::RBAC_GROUP,
                    resource: &resource,
                    namespace: &id.namespace,
                    name: &id.name,
                };
                if rbac::allowed(&self.objects, &self.rbac, info, &req) {
                    return Ok(());
                }
                p.value
                    .get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            _ => {
                let role_ref = p.value.get("roleRef").cloned().unwrap_or(Value::Null);
                let ref_resource = match role_ref["kind"].as_str() {
                    Some("ClusterRole") => "clusterroles",
                    _ => "roles",
                };
                let req = rbac::Request {
                    verb: "bind",
                    group: rbac::RBAC_GROUP,
                    resource: ref_resource,
                    namespace: &id.namespace,
                    name: role_ref["name"].as_str().unwrap_or_default(),
                };
                if rbac::allowed(&self.objects, &self.rbac, info, &req) {
                    return Ok(());
                }
                rbac::referenced_rules(&self.objects, &self.rbac, &role_ref, &id.namespace)
                    .map_err(|m| invalid(&id.subject(), m))?
            }
        };
        match rbac::escalation(&self.objects, &self.rbac, info, &id.namespace, &rules) {
            Some(msg) => Err(forbidden(msg)),
            None => Ok(()),
        }
    }

    /// True when the API server serves `group/version` `kind`: built-in
    /// groups serve the versions of Kubernetes 1.32; other groups need a
    /// CRD (or a kind the host registered).
    pub(super) fn serves(&self, group: &str, version: &str, kind: &str) -> bool {
        if let Some((_, versions)) = BUILTIN_VERSIONS.iter().find(|(g, _)| *g == group) {
            if versions.contains(&version) && self.schema.is_known(group, kind) {
                return true;
            }
        }
        self.schema.custom_kinds().any(|(gk, ck)| {
            gk.group == group
                && gk.kind == kind
                && (ck.versions.is_empty() || ck.versions.contains(version))
        })
    }

    /// How the host wants this object rolled out (default: complete).
    pub(super) fn rollout_of(&self, v: &Value) -> Rollout {
        match &self.rollout {
            Some(f) => Object::new(v.clone()).map_or(Rollout::Complete, |o| f(&o)),
            None => Rollout::Complete,
        }
    }

    /// What a dry run of a prepared write returns: the object as it would
    /// be stored, but with the live resourceVersion (none for a create), and
    /// the live status unless the write is to the status itself: nothing is
    /// stored, so no new version exists and no controller acts on it.
    pub(super) fn dry_run_value(&self, p: Prepared, status_write: bool) -> Value {
        let live = self.objects.get(&p.id);
        let mut v = p.value;
        if !status_write {
            if let Some(m) = v.as_object_mut() {
                match live.and_then(|l| l.get("status")) {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
        }
        if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            match live.and_then(|l| l.pointer("/metadata/resourceVersion")) {
                Some(rv) => md.insert("resourceVersion".into(), rv.clone()),
                None => md.remove("resourceVersion"),
            };
        }
        v
    }

    /// Persists and records a prepared write.
    pub(super) fn commit(&mut self, p: Prepared) -> Result<Object, ApplyError> {
        let subject = p.id.subject();
        if let (true, Some(dir)) = (p.changed, &self.read_only) {
            return Err(read_only(&subject, dir));
        }
        if p.changed {
            // The counters need no write here: the object file carries its
            // resourceVersion and uid, and opening takes the maximum.
            // `cluster.yaml` is written when a delete takes objects away.
            if let Some(store) = &self.store {
                store
                    .write_object(&p.id, &p.value)
                    .map_err(|e| unavailable(&subject, e))?;
            }
            self.rv = self.rv.saturating_add(1);
            if p.created {
                self.uids = self.uids.saturating_add(1);
            }
            let is_crd =
                p.id.group == "apiextensions.k8s.io" && p.id.kind == "CustomResourceDefinition";
            if rbac::is_rbac_kind(&p.id.group, &p.id.kind) {
                self.rbac.insert(p.id.clone());
            }
            self.objects.insert(p.id.clone(), p.value.clone());
            if is_crd {
                self.rebuild_schema();
            }
        }
        Object::new(p.value).map_err(|e| invalid(&subject, e.to_string()))
    }

    /// Deletes an object and what it holds (a Namespace's objects, a CRD's
    /// custom objects).
    pub(super) fn delete(&mut self, id: &ObjectId, opts: &ApplyOptions) -> Result<(), ApplyError> {
        let id = self.normalize(id);
        let subject = id.subject();
        if let Some(user) = &opts.impersonate {
            self.authorize(user, "delete", &id)?;
        }
        let Some(live) = self.objects.get(&id) else {
            return Ok(());
        };
        if id.group.is_empty()
            && id.kind == "Namespace"
            && matches!(id.name.as_str(), "default" | "kube-system" | "kube-public")
        {
            return Err(ApplyError::Forbidden {
                subject,
                message: format!(
                    "namespaces \"{}\" is forbidden: this namespace may not be deleted",
                    id.name
                ),
            });
        }
        if opts.dry_run {
            return Ok(());
        }
        if let Some(dir) = &self.read_only {
            return Err(read_only(&subject, dir));
        }
        // Deleting a Namespace deletes what it holds; deleting a CRD deletes
        // its custom objects.
        let crd_kind = Object::new(live.clone())
            .ok()
            .and_then(|o| crd_group_kind(&o));
        let mut doomed: Vec<ObjectId> = self
            .objects
            .keys()
            .filter(|o| {
                (id.group.is_empty() && id.kind == "Namespace" && o.namespace == id.name)
                    || crd_kind
                        .as_ref()
                        .is_some_and(|gk| gk.group == o.group && gk.kind == o.kind)
            })
            .cloned()
            .collect();
        doomed.push(id.clone());
        if let Some(store) = &self.store {
            let meta = Meta {
                resource_version: self.rv.saturating_add(1),
                ..self.meta()
            };
            store
                .write_meta(&meta)
                .map_err(|e| unavailable(&subject, e))?;
        }
        self.rv = self.rv.saturating_add(1);
        for d in &doomed {
            if let Some(store) = &self.store {
                store
                    .delete_object(d)
                    .map_err(|e| unavailable(&d.subject(), e))?;
            }
            self.objects.remove(d);
            self.rbac.remove(d);
        }
        if crd_kind.is_some() {
            self.rebuild_schema();
        }
        Ok(())
    }
}
