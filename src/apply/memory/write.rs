//! Writes other than server-side apply, as the API server's create, update
//! and status endpoints make them: a create (POST) and an update (PUT, or a
//! merge, JSON or strategic merge patch) record an `Update` entry for their
//! manager with the fields they set or changed; a write to the status
//! subresource changes only `status`, recorded with `subresource: status`.
//! Authorization for callers with explicit groups (impersonation headers)
//! lives here too.

use serde_json::{json, Value};

use super::apply::{metadata_mut, strip_for_fields, uid_for, SYSTEM_METADATA};
use super::fields::{self, Entry, FieldSet};
use super::validate::check_string_maps;
use super::{invalid, rbac, status, Prepared, State};
use crate::apply::ApplyError;
use crate::object::{Object, ObjectId};

impl Entry {
    /// True when this entry belongs to `manager` with `operation` on
    /// `subresource` (`None`: the main resource).
    pub(crate) fn is_at(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// Who makes a request: a user and its groups. Members of `system:masters`
/// may do anything, as the API server's privileged-group authorizer
/// decides before RBAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The user name, e.g. `system:serviceaccount:team-a:deployer`.
    pub(crate) user: String,
    /// The groups, `system:authenticated` included.
    pub(crate) groups: Vec<String>,
}

impl Caller {
    /// The cluster's administrator: `system:masters`.
    pub(crate) fn admin(user: &str) -> Caller {
        Caller {
            user: user.to_string(),
            groups: vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
        }
    }

    /// True for members of `system:masters`.
    pub(crate) fn is_superuser(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    pub(crate) fn info(&self) -> rbac::UserInfo {
        rbac::UserInfo {
            name: self.user.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// The fields of a status value as a field set rooted at `status`.
fn status_leaves(
    status: Option<&Value>,
) -> Result<std::collections::BTreeMap<fields::Path, fields::Leaf>, String> {
    match status {
        Some(s) => fields::collect(&json!({ "status": s })),
        None => Ok(Default::default()),
    }
}

impl State {
    /// True when `caller` may `verb` the object (`subresource`: `status`,
    /// `scale`, ...). Forbidden errors read as the API server's.
    pub(crate) fn authorize_caller(
        &self,
        caller: &Caller,
        verb: &str,
        id: &ObjectId,
        resource: &str,
        subresource: Option<&str>,
    ) -> Result<(), ApplyError> {
        if caller.is_superuser() {
            return Ok(());
        }
        let full = match subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        let req = rbac::Request {
            verb,
            group: &id.group,
            resource: &full,
            namespace: &id.namespace,
            name: &id.name,
        };
        let info = caller.info();
        if rbac::allowed(&self.objects, &self.rbac, &info, &req) {
            Ok(())
        } else {
            Err(ApplyError::Forbidden {
                subject: id.subject(),
                message: rbac::forbidden_message(&info, &req),
            })
        }
    }

    /// True when the kind's objects keep `status` on create: custom kinds
    /// whose CRD version has no status subresource. Built-in kinds and
    /// custom kinds with a status subresource start without one.
    fn keeps_status_on_create(&self, object: &Object) -> bool {
        let Some((_, ck)) = self
            .schema
            .custom_kinds()
            .find(|(gk, _)| gk.group == object.group() && gk.kind == object.kind())
        else {
            return false;
        };
        let crd = self.objects.get(&ObjectId::new(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "",
            &ck.crd_name,
        ));
        let Some(versions) = crd
            .and_then(|c| c.pointer("/spec/versions"))
            .and_then(Value::as_array)
        else {
            return true;
        };
        !versions.iter().any(|v| {
            v.get("name").and_then(Value::as_str) == Some(object.version())
                && v.pointer("/subresources/status").is_some()
        })
    }

    /// A create (POST) of `object` by `manager`, checked but not
    /// committed. An object that exists is a `Conflict` (the API server's
    /// `AlreadyExists`).
    pub(crate) fn prepare_create(
        &self,
        object: &Object,
        manager: &str,
    ) -> Result<Prepared, ApplyError> {
        let (group, version, kind) = (object.group(), object.version(), object.kind());
        if !self.serves(group, version, kind) {
            return Err(invalid(
                &object.id().subject(),
                format!(
                    "no matches for kind \"{kind}\" in version \"{}\"",
                    object.api_version()
                ),
            ));
        }
        let id = self.normalize(&object.id());
        let subject = id.subject();
        self.check_name(&id)?;
        self.check_namespace(&id)?;
        if self.objects.contains_key(&id) {
            return Err(ApplyError::Conflict {
                subject,
                message: format!(
                    "{}{} \"{}\" already exists",
                    self.resource_of(group, kind),
                    if group.is_empty() {
                        String::new()
                    } else {
                        format!(".{group}")
                    },
                    id.name
                ),
                causes: Default::default(),
            });
        }
        let keep_status = self.keeps_status_on_create(object);
        let mut v = object.value().clone();
        super::apply::drop_nulls(&mut v);
        if let Some(m) = v.as_object_mut() {
            if !keep_status {
                m.remove("status");
            }
        }
        {
            let md = metadata_mut(&mut v);
            for f in SYSTEM_METADATA {
                md.remove(*f);
            }
            md.remove("generateName");
            md.insert("name".into(), Value::String(id.name.clone()));
            if !id.namespace.is_empty() {
                md.insert("namespace".into(), Value::String(id.namespace.clone()));
            }
        }
        let stripped = strip_for_fields(&v);
        let typed_error = |m: String| {
            invalid(
                &subject,
                format!(
                    "failed to create typed live object ({}; {}, Kind={kind}): {m}",
                    if id.namespace.is_empty() {
                        id.name.clone()
                    } else {
                        format!("{}/{}", id.namespace, id.name)
                    },
                    if group.is_empty() {
                        format!("/{version}")
                    } else {
                        format!("{group}/{version}")
                    }
                ),
            )
        };
        check_string_maps(group, kind, &stripped).map_err(typed_error)?;
        let leaves = fields::collect(&stripped).map_err(typed_error)?;
        let now = status::rfc3339(self.now);
        {
            let md = metadata_mut(&mut v);
            md.insert(
                "uid".into(),
                Value::String(uid_for(self.uids.saturating_add(1))),
            );
            md.insert("creationTimestamp".into(), Value::String(now.clone()));
        }
        let entries = vec![Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: object.api_version().to_string(),
            time: Some(now),
            subresource: None,
            set: FieldSet(leaves.keys().cloned().collect()),
        }];
        self.finish(&id, v, None, &entries)
    }

    /// An update (PUT, or a patch other than apply) of the main resource
    /// to `new` by `manager`, checked but not committed. Status and system
    /// metadata stay as they are live.
    pub(crate) fn prepare_replace(
        &self,
        id: &ObjectId,
        manager: &str,
        new: Value,
    ) -> Result<Prepared, ApplyError> {
        self.prepare_update(id, manager, move |v| *v = new)
    }

    /// A write of the status subresource by `manager` (an `Update` with
    /// `subresource: status`): only `status` changes. `None` removes it.
    pub(crate) fn prepare_status(
        &self,
        id: &ObjectId,
        manager: &str,
        api_version: &str,
        new_status: Option<Value>,
    ) -> Result<Prepared, ApplyError> {
        let id = self.normalize(id);
        let subject = id.subject();
        let live = self.objects.get(&id).ok_or_else(|| ApplyError::NotFound {
            subject: subject.clone(),
        })?;
        let mut v = live.clone();
        if let Some(m) = v.as_object_mut() {
            match &new_status {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        let old_leaves = status_leaves(live.get("status"))
            .map_err(|m| invalid(&subject, format!("live object: {m}")))?;
        let new_leaves = status_leaves(new_status.as_ref()).map_err(|m| invalid(&subject, m))?;
        let (changed, removed) = fields::compare(&old_leaves, &new_leaves);
        let mut entries = fields::parse_managed_fields(live)
            .map_err(|m| invalid(&subject, format!("live object: {m}")))?;
        let now = status::rfc3339(self.now);
        for e in entries.iter_mut() {
            if e.is_at(manager, "Update", Some("status")) {
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
            .find(|e| e.is_at(manager, "Update", Some("status")))
            .map(|e| e.set.clone())
            .unwrap_or_default();
        for p in &removed {
            mine.remove_tree(p);
        }
        mine.0.extend(changed.iter().cloned());
        match entries
            .iter_mut()
            .find(|e| e.is_at(manager, "Update", Some("status")))
        {
            Some(e) => {
                if e.set != mine {
                    e.time = Some(now.clone());
                }
                e.set = mine;
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: Some(now),
                subresource: Some("status".into()),
                set: mine,
            }),
        }
        let mut prepared = self.finish(&id, v, Some(live), &entries)?;
        // A status write never moves the generation.
        if let (Some(g), Some(md)) = (
            live.pointer("/metadata/generation").cloned(),
            prepared
                .value
                .get_mut("metadata")
                .and_then(Value::as_object_mut),
        ) {
            md.insert("generation".into(), g);
        }
        Ok(prepared)
    }
}
