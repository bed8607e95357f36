//! [`MemoryCluster`]: the embedded default [`Applier`], a small API server.
//!
//! It behaves the way a Kubernetes API server does for the calls GitOps
//! makes, not like a map:
//!
//! - namespaced objects need their Namespace (`namespaces "x" not found`);
//!   custom kinds need their CRD (`no matches for kind "X" in version
//!   "g/v"`); cluster-scoped objects lose any namespace they carry;
//! - `metadata.uid`, `resourceVersion` (a cluster-wide counter) and
//!   `generation` (bumped only when something other than metadata and status
//!   changes) move only on a real change; an apply that changes nothing
//!   writes nothing;
//! - server-side apply with field ownership per field manager, recorded in
//!   `metadata.managedFields` in Kubernetes' `FieldsV1` format; conflicts
//!   with other managers fail unless forced; fields a manager stops applying
//!   are removed unless another manager owns them;
//! - [`MemoryCluster::edit`] is `kubectl edit` (an `Update` by another
//!   manager), so a forced re-apply shows the edit as drift and takes it back;
//! - immutable fields (from [`Schema::immutable_fields`]) are rejected with
//!   the API server's message;
//! - a simulated controller writes status after each rollout (Deployments,
//!   StatefulSets, DaemonSets, Jobs, Namespaces, PVCs, CRDs); see
//!   [`MemoryCluster::set_rollout`] and [`MemoryCluster::set_status`] to make
//!   objects unhealthy;
//! - RBAC is enforced for impersonated identities
//!   ([`ApplyOptions::impersonate`]); no identity means cluster-admin;
//! - dry-run runs every check and persists nothing.
//!
//! The cluster starts as a cluster bootstrapped with Flux does: the
//! namespaces `default`, `kube-system`, `kube-public`, `kube-node-lease` and
//! `flux-system`, Flux's CRDs (source, kustomize, helm, image and
//! notification toolkits), and the `cluster-admin` ClusterRole.
//!
//! [`MemoryCluster::open`] persists the state to a folder (one YAML file per
//! object, one per inventory, and `cluster.yaml` with the counters), each
//! written atomically. A file edited by hand is the live state on the next
//! open. The core reads no clock: time is set with
//! [`MemoryCluster::set_now`] and starts at 2024-01-01T00:00:00Z.
//!
//! ```
//! use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
//! use driftless::Object;
//! # futures::executor::block_on(async {
//! let cluster = MemoryCluster::new();
//! let cm = Object::new(serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "default"},
//!     "data": {"mode": "fast"},
//! })).unwrap();
//! let live = cluster.apply(&cm, &ApplyOptions::default()).await.unwrap();
//! assert_eq!(live.pointer("/metadata/managedFields/0/manager").unwrap(), "kustomize-controller");
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::apply::{Applier, ApplyError, ApplyOptions};
use crate::object::{Object, ObjectId};
use crate::plan::Inventory;
use crate::schema::{crd_group_kind, Schema, Scope};

mod fields;
mod rbac;
mod status;
mod store;

use fields::{Entry, FieldSet, Leaf};
use store::{Meta, Store};

/// 2024-01-01T00:00:00Z, the clock's starting point.
pub const DEFAULT_NOW: i64 = 1_704_067_200;

/// How a simulated controller rolls an object out (see
/// [`MemoryCluster::set_rollout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollout {
    /// The rollout finishes: all replicas ready, the Job complete.
    Complete,
    /// The rollout never finishes: no replica becomes ready, the Job stays
    /// active. Health checks time out.
    Progressing,
    /// The rollout fails: the Deployment exceeds its progress deadline, the
    /// Job exceeds its backoff limit. Health checks fail early.
    Failed,
}

/// Why a state folder could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing a state file failed.
    #[error("cluster state file {}: {message}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// A state file is not what driftless wrote (or a person broke it while
    /// editing). Nothing is reset: fix or remove the file.
    #[error("corrupt cluster state file {}: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the object and field when known.
        message: String,
    },
}

type RolloutFn = Arc<dyn Fn(&Object) -> Rollout + Send + Sync>;

struct State {
    /// The host's schema (built-ins and kinds the host registered).
    base_schema: Schema,
    /// `base_schema` plus the kinds of the CRD objects the cluster holds.
    schema: Schema,
    objects: BTreeMap<ObjectId, Value>,
    /// The ids of the RBAC objects, for authorization.
    rbac: BTreeSet<ObjectId>,
    inventories: BTreeMap<String, Inventory>,
    rv: u64,
    uids: u64,
    now: i64,
    store: Option<Store>,
    rollout: Option<RolloutFn>,
}

/// The embedded API server. See the [module documentation](self).
///
/// `Send + Sync`; all state lives in the value (a mutex inside).
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MemoryCluster");
        if let Ok(s) = self.state.lock() {
            d.field("objects", &s.objects.len())
                .field("resource_version", &s.rv)
                .field("persisted", &s.store.is_some());
        }
        d.finish_non_exhaustive()
    }
}

impl Default for MemoryCluster {
    fn default() -> Self {
        MemoryCluster::new()
    }
}

/// The result of checking a write, before it is committed.
struct Prepared {
    id: ObjectId,
    value: Value,
    changed: bool,
    created: bool,
}

fn invalid(subject: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        subject: subject.to_string(),
        message: message.into(),
    }
}

fn unavailable(subject: &str, e: StateError) -> ApplyError {
    ApplyError::Unavailable {
        subject: subject.to_string(),
        message: e.to_string(),
    }
}

/// `Kind.group` as the API server names a kind in validation messages.
fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// Core kinds whose strategy sets `metadata.generation`, and the rest.
fn tracks_generation(group: &str, kind: &str) -> bool {
    match group {
        "" => kind == "ReplicationController",
        rbac::RBAC_GROUP => false,
        _ => true,
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Name validation as the API server does it for the kind.
fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), String> {
    for bad in ["/", "%"] {
        if name.contains(bad) {
            return Err(format!(
                "metadata.name: Invalid value: {name:?}: may not contain '{bad}'"
            ));
        }
    }
    if name == "." || name == ".." {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: may not be '{name}'"
        ));
    }
    if group == rbac::RBAC_GROUP {
        return Ok(());
    }
    if kind == "Namespace" && group.is_empty() {
        if !is_dns_label(name) {
            return Err(format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ));
        }
    } else if !is_dns_subdomain(name) {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
    }
    Ok(())
}

/// `/spec/clusterIPs/0` → `spec.clusterIPs[0]`.
fn pointer_to_field(ptr: &str) -> String {
    let mut out = String::new();
    for seg in ptr.split('/').skip(1) {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Sets the value at a JSON pointer whose parent exists.
fn set_pointer(v: &mut Value, ptr: &str, new: Value) {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, new);
        }
        Some(Value::Array(a)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = new;
            }
        }
        _ => {}
    }
}

/// The API groups built into Kubernetes 1.32 and the versions they serve.
const BUILTIN_VERSIONS: &[(&str, &[&str])] = &[
    ("", &["v1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("apiextensions.k8s.io", &["v1"]),
    ("apiregistration.k8s.io", &["v1"]),
    ("apps", &["v1"]),
    ("autoscaling", &["v1", "v2"]),
    ("batch", &["v1"]),
    ("certificates.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("flowcontrol.apiserver.k8s.io", &["v1", "v1beta3"]),
    ("networking.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
];

/// Base64 (standard alphabet, padded), as Secret `data` holds values.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The API server keeps Secret `stringData` only as base64 `data`.
fn fold_string_data(v: &mut Value) {
    let Some(m) = v.as_object_mut() else {
        return;
    };
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(d) = data.as_object_mut() {
        for (k, val) in sd {
            let text = match val {
                Value::String(s) => s,
                other => other.to_string(),
            };
            d.insert(k, Value::String(base64(text.as_bytes())));
        }
    }
}

/// CRD names must be `<plural>.<group>`.
fn validate_crd(v: &Value) -> Result<(), String> {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = v.pointer("/spec/group").and_then(Value::as_str);
    let plural = v.pointer("/spec/names/plural").and_then(Value::as_str);
    let kind = v.pointer("/spec/names/kind").and_then(Value::as_str);
    let (Some(group), Some(plural), Some(_)) = (group, plural, kind) else {
        let missing = match (group, plural) {
            (None, _) => "spec.group",
            (_, None) => "spec.names.plural",
            _ => "spec.names.kind",
        };
        return Err(format!("{missing}: Required value"));
    };
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
        ));
    }
    Ok(())
}

/// Maps whose values must be strings: labels, annotations, ConfigMap and
/// Secret data. Anything else fails to decode in the API server.
fn check_string_maps(group: &str, kind: &str, v: &Value) -> Result<(), String> {
    let mut maps = vec!["/metadata/labels", "/metadata/annotations"];
    match (group, kind) {
        ("", "ConfigMap") => maps.extend(["/data", "/binaryData"]),
        ("", "Secret") => maps.extend(["/data", "/stringData"]),
        _ => {}
    }
    for ptr in maps {
        let Some(m) = v.pointer(ptr) else {
            continue;
        };
        let field = ptr.replace('/', ".");
        let Some(m) = m.as_object() else {
            return Err(format!("{field}: expected map, got {m}"));
        };
        for (k, x) in m {
            if !x.is_string() {
                return Err(format!("{field}.{k}: expected string, got {x}"));
            }
        }
    }
    Ok(())
}

/// Metadata the server owns; it is never part of a field set.
const SYSTEM_METADATA: &[&str] = &[
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
fn strip_for_fields(v: &Value) -> Value {
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
fn drop_nulls(v: &mut Value) {
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
fn same_spec(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    fn spec(m: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        m.iter()
            .filter(|(k, _)| k.as_str() != "metadata" && k.as_str() != "status")
    }
    spec(a).eq(spec(b))
}

fn uid_for(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn uid_number(uid: &str) -> Option<u64> {
    uid.strip_prefix("00000000-0000-4000-8000-")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}

fn metadata_mut(v: &mut Value) -> &mut Map<String, Value> {
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

impl State {
    fn empty(now: i64) -> State {
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
            rollout: None,
        }
    }

    fn meta(&self) -> Meta {
        Meta {
            format: store::FORMAT.to_string(),
            resource_version: self.rv,
            uid_counter: self.uids,
        }
    }

    fn rebuild_schema(&mut self) {
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
    fn normalize(&self, id: &ObjectId) -> ObjectId {
        let mut id = id.clone();
        match self.schema.scope(&id.group, &id.kind) {
            Scope::Cluster => id.namespace.clear(),
            Scope::Namespaced if id.namespace.is_empty() => id.namespace = "default".into(),
            Scope::Namespaced => {}
        }
        id
    }

    /// The resource name (plural) of a kind.
    fn resource_of(&self, group: &str, kind: &str) -> String {
        for (gk, ck) in self.schema.custom_kinds() {
            if gk.group == group && gk.kind == kind {
                if let Some(plural) = ck.crd_name.strip_suffix(&format!(".{group}")) {
                    return plural.to_string();
                }
            }
        }
        rbac::plural_of(kind)
    }

    fn authorize(&self, user: &str, verb: &str, id: &ObjectId) -> Result<(), ApplyError> {
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
    fn check_escalation(&self, user: &str, p: &Prepared) -> Result<(), ApplyError> {
        let id = &p.id;
        if !p.changed || !rbac::is_rbac_kind(&id.group, &id.kind) {
            return Ok(());
        }
        let info = rbac::UserInfo::from_name(user);
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
                if rbac::allowed(&self.objects, &self.rbac, &info, &req) {
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
                if rbac::allowed(&self.objects, &self.rbac, &info, &req) {
                    return Ok(());
                }
                rbac::referenced_rules(&self.objects, &role_ref, &id.namespace)
                    .map_err(|m| invalid(&id.subject(), m))?
            }
        };
        match rbac::escalation(&self.objects, &self.rbac, &info, &id.namespace, &rules) {
            Some(msg) => Err(forbidden(msg)),
            None => Ok(()),
        }
    }

    /// True when the API server serves `group/version` `kind`: built-in
    /// groups serve the versions of Kubernetes 1.32; other groups need a
    /// CRD (or a kind the host registered).
    fn serves(&self, group: &str, version: &str, kind: &str) -> bool {
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

    fn rollout_of(&self, v: &Value) -> Rollout {
        match &self.rollout {
            Some(f) => Object::new(v.clone()).map_or(Rollout::Complete, |o| f(&o)),
            None => Rollout::Complete,
        }
    }

    /// Server-side defaults and controller work after a write: the
    /// namespace name label, generation, status, resourceVersion.
    fn finish(
        &self,
        id: &ObjectId,
        mut v: Value,
        old: Option<&Value>,
        entries: &[Entry],
    ) -> Result<Prepared, ApplyError> {
        let subject = id.subject();
        if id.group.is_empty() && id.kind == "Secret" {
            fold_string_data(&mut v);
        }
        if id.group == "apiextensions.k8s.io" && id.kind == "CustomResourceDefinition" {
            validate_crd(&v).map_err(|m| {
                invalid(
                    &subject,
                    format!(
                        "CustomResourceDefinition.apiextensions.k8s.io \"{}\" is invalid: {m}",
                        id.name
                    ),
                )
            })?;
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
        // Immutable fields.
        if let Some(old) = old {
            for ptr in self.schema.immutable_fields(&id.group, &id.kind) {
                let Some(before) = old.pointer(ptr) else {
                    continue;
                };
                match v.pointer(ptr) {
                    Some(after) if after != before => {
                        return Err(invalid(
                            &subject,
                            format!(
                                "{} \"{}\" is invalid: {}: Invalid value: {}: field is immutable",
                                qualified_kind(&id.group, &id.kind),
                                id.name,
                                pointer_to_field(ptr),
                                after
                            ),
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
            (true, Some(g)) if spec_changed => Some(g + 1),
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
                Value::String((self.rv + 1).to_string()),
            );
        }
        Ok(Prepared {
            id: id.clone(),
            value: v,
            changed,
            created: old.is_none(),
        })
    }

    fn prepare_apply(&self, object: &Object, opts: &ApplyOptions) -> Result<Prepared, ApplyError> {
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
        validate_name(group, kind, &id.name).map_err(|m| {
            invalid(
                &subject,
                format!(
                    "{} \"{}\" is invalid: {m}",
                    qualified_kind(group, kind),
                    id.name
                ),
            )
        })?;
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
        if !id.namespace.is_empty() {
            let ns = ObjectId::new("", "Namespace", "", &id.namespace);
            if !self.objects.contains_key(&ns) {
                return Err(invalid(
                    &subject,
                    format!("namespaces \"{}\" not found", id.namespace),
                ));
            }
        }
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
                md.insert("uid".into(), Value::String(uid_for(self.uids + 1)));
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
                        return Err(ApplyError::Conflict {
                            subject,
                            message: conflict_message(&entries, &conflicts),
                        });
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

    fn prepare_update(
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

    /// Persists and records a prepared write.
    fn commit(&mut self, p: Prepared) -> Result<Object, ApplyError> {
        let subject = p.id.subject();
        if p.changed {
            // The counters need no write here: the object file carries its
            // resourceVersion and uid, and opening takes the maximum.
            // `cluster.yaml` is written when a delete takes objects away.
            if let Some(store) = &self.store {
                store
                    .write_object(&p.id, &p.value)
                    .map_err(|e| unavailable(&subject, e))?;
            }
            self.rv += 1;
            if p.created {
                self.uids += 1;
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

    fn delete(&mut self, id: &ObjectId, opts: &ApplyOptions) -> Result<(), ApplyError> {
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
                resource_version: self.rv + 1,
                ..self.meta()
            };
            store
                .write_meta(&meta)
                .map_err(|e| unavailable(&subject, e))?;
        }
        self.rv += 1;
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

fn conflict_message(entries: &[Entry], conflicts: &[(usize, Vec<fields::Path>)]) -> String {
    let total: usize = conflicts.iter().map(|(_, p)| p.len()).sum();
    let who = |i: usize| {
        entries
            .get(i)
            .map(|e| format!("{:?} using {}", e.manager, e.api_version))
            .unwrap_or_default()
    };
    let body = match conflicts {
        [(i, paths)] if paths.len() == 1 => format!(
            "conflict with {}: {}",
            who(*i),
            paths
                .first()
                .map(|p| fields::path_string(p))
                .unwrap_or_default()
        ),
        _ => conflicts
            .iter()
            .map(|(i, paths)| {
                let mut s = format!("conflicts with {}:", who(*i));
                for p in paths {
                    s.push_str(&format!("\n- {}", fields::path_string(p)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    format!(
        "Apply failed with {total} conflict{}: {body}",
        if total == 1 { "" } else { "s" }
    )
}

impl MemoryCluster {
    fn from_state(state: State) -> Self {
        MemoryCluster {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, ApplyError> {
        self.state.lock().map_err(|_| ApplyError::Unavailable {
            subject: "MemoryCluster".into(),
            message: "the cluster state lock is poisoned (a thread panicked while holding it)"
                .into(),
        })
    }

    /// Applies the bootstrap objects to a state.
    fn bootstrap(state: &mut State) -> Result<(), ApplyError> {
        for v in status::bootstrap_objects() {
            let object = Object::new(v).map_err(|e| invalid("bootstrap", e.to_string()))?;
            let manager = if object.kind() == "CustomResourceDefinition" {
                "flux"
            } else {
                "kube-apiserver"
            };
            let opts = ApplyOptions {
                field_manager: manager.into(),
                ..ApplyOptions::default()
            };
            let p = state.prepare_apply(&object, &opts)?;
            state.commit(p)?;
        }
        Ok(())
    }

    /// An in-memory cluster, bootstrapped as a Flux cluster (see the
    /// [module documentation](self)). Nothing is persisted.
    pub fn new() -> Self {
        let mut state = State::empty(DEFAULT_NOW);
        // Bootstrapping an in-memory state cannot fail: the objects are
        // fixed and valid, and nothing is written to disk.
        let _ = Self::bootstrap(&mut state);
        Self::from_state(state)
    }

    /// An in-memory cluster holding nothing at all: no namespaces, no CRDs,
    /// no RBAC objects.
    pub fn bare() -> Self {
        Self::from_state(State::empty(DEFAULT_NOW))
    }

    /// Opens (or creates) a cluster persisted in `dir`.
    ///
    /// An empty or absent folder starts a bootstrapped cluster and writes it
    /// out. Otherwise the folder's state is loaded: hand edits to object
    /// files are the live state. A file that cannot be read is an error
    /// naming it; nothing is ever reset silently.
    pub fn open(dir: impl AsRef<FsPath>) -> Result<Self, StateError> {
        let dir = dir.as_ref();
        let (store, loaded) = Store::open(dir)?;
        let mut state = State::empty(DEFAULT_NOW);
        match loaded {
            None => {
                store.write_meta(&state.meta())?;
                state.store = Some(store);
                Self::bootstrap(&mut state).map_err(|e| StateError::Io {
                    path: dir.to_path_buf(),
                    message: format!("bootstrapping the cluster: {e}"),
                })?;
            }
            Some(loaded) => {
                state.rv = loaded.meta.resource_version;
                state.uids = loaded.meta.uid_counter;
                for (id, v) in &loaded.objects {
                    let path = store.object_path(id);
                    fields::parse_managed_fields(v).map_err(|m| StateError::Corrupt {
                        path: path.clone(),
                        message: format!("{}: {m}", id.subject()),
                    })?;
                    if let Some(rv) = v.pointer("/metadata/resourceVersion") {
                        let n =
                            rv.as_str()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| StateError::Corrupt {
                                    path: path.clone(),
                                    message: format!(
                                        "{}: metadata.resourceVersion: not a decimal string: {rv}",
                                        id.subject()
                                    ),
                                })?;
                        state.rv = state.rv.max(n);
                    }
                    if let Some(n) = v
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .and_then(uid_number)
                    {
                        state.uids = state.uids.max(n);
                    }
                    if rbac::is_rbac_kind(&id.group, &id.kind) {
                        state.rbac.insert(id.clone());
                    }
                }
                state.objects = loaded.objects;
                state.inventories = loaded.inventories;
                state.store = Some(store);
                state.rebuild_schema();
            }
        }
        Ok(Self::from_state(state))
    }

    /// The folder this cluster persists to, if any.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.lock()
            .ok()
            .and_then(|s| s.store.as_ref().map(|st| st.dir().to_path_buf()))
    }

    /// Sets the clock (seconds since the Unix epoch) used for
    /// `creationTimestamp`, managed-field times and status conditions.
    pub fn set_now(&self, unix_seconds: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.now = unix_seconds;
        }
    }

    /// The clock, in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.state.lock().map(|s| s.now).unwrap_or(DEFAULT_NOW)
    }

    /// The cluster-wide resourceVersion counter (the version of the last
    /// write).
    pub fn resource_version(&self) -> u64 {
        self.state.lock().map(|s| s.rv).unwrap_or(0)
    }

    /// Registers a custom kind as the host knows it, without a CRD object
    /// (as if its CRD had been installed out of band). Returns false when
    /// `crd` is not a well-formed CRD. Host registrations are not persisted.
    pub fn register_crd(&self, crd: &Object) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if !s.base_schema.register_crd(crd) {
            return false;
        }
        s.rebuild_schema();
        true
    }

    /// The schema the cluster validates with: built-in kinds, the kinds the
    /// host registered and those of the CRD objects it holds.
    pub fn schema(&self) -> Schema {
        self.state
            .lock()
            .map(|s| s.schema.clone())
            .unwrap_or_default()
    }

    /// Every object, ordered by id.
    pub fn objects(&self) -> Vec<Object> {
        self.state
            .lock()
            .map(|s| {
                s.objects
                    .values()
                    .filter_map(|v| Object::new(v.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One object, `None` when absent (the synchronous form of
    /// [`Applier::get`]).
    pub fn object(&self, id: &ObjectId) -> Option<Object> {
        let s = self.state.lock().ok()?;
        let id = s.normalize(id);
        s.objects.get(&id).and_then(|v| Object::new(v.clone()).ok())
    }

    /// Changes a live object the way `kubectl edit` does: an `Update` by
    /// `manager`, who becomes the owner of every field the edit changes
    /// (other managers lose them). Status and system metadata cannot be
    /// changed this way (see [`MemoryCluster::set_status`]).
    pub fn edit(
        &self,
        id: &ObjectId,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let p = s.prepare_update(id, manager, f)?;
        s.commit(p)
    }

    /// Replaces an object's status, as its controller would through the
    /// status subresource. Later rollouts (a new generation) recompute it.
    pub fn set_status(&self, id: &ObjectId, status: Value) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let id = s.normalize(id);
        let live = s
            .objects
            .get(&id)
            .ok_or_else(|| ApplyError::NotFound {
                subject: id.subject(),
            })?
            .clone();
        let mut v = live.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), status);
        }
        let changed = v != live;
        if changed {
            let rv = s.rv + 1;
            metadata_mut(&mut v).insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        s.commit(Prepared {
            id,
            value: v,
            changed,
            created: false,
        })
    }

    /// Decides how simulated controllers roll objects out, e.g. "Deployments
    /// whose image ends in `:broken` never become ready". Applies to every
    /// later rollout (a new object or a new generation). Not persisted.
    pub fn set_rollout(&self, f: impl Fn(&Object) -> Rollout + Send + Sync + 'static) {
        if let Ok(mut s) = self.state.lock() {
            s.rollout = Some(Arc::new(f));
        }
    }

    /// Every rollout completes again (the default).
    pub fn clear_rollout(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rollout = None;
        }
    }
}

#[async_trait::async_trait]
impl Applier for MemoryCluster {
    async fn get(&self, id: &ObjectId) -> Result<Option<Object>, ApplyError> {
        let s = self.lock()?;
        let id = s.normalize(id);
        match s.objects.get(&id) {
            Some(v) => Object::new(v.clone())
                .map(Some)
                .map_err(|e| invalid(&id.subject(), e.to_string())),
            None => Ok(None),
        }
    }

    async fn apply(&self, object: &Object, options: &ApplyOptions) -> Result<Object, ApplyError> {
        let mut s = self.lock()?;
        let p = s.prepare_apply(object, options)?;
        if let Some(user) = &options.impersonate {
            s.check_escalation(user, &p)?;
        }
        if options.dry_run {
            let subject = p.id.subject();
            return Object::new(p.value).map_err(|e| invalid(&subject, e.to_string()));
        }
        s.commit(p)
    }

    async fn delete(&self, id: &ObjectId, options: &ApplyOptions) -> Result<(), ApplyError> {
        let mut s = self.lock()?;
        s.delete(id, options)
    }

    async fn update_status(&self, id: &ObjectId, status: &Value) -> Result<Object, ApplyError> {
        self.set_status(id, status.clone())
    }

    async fn read_inventory(&self, owner: &str) -> Result<Option<Inventory>, ApplyError> {
        let s = self.lock()?;
        Ok(s.inventories.get(owner).cloned())
    }

    async fn write_inventory(&self, owner: &str, inventory: &Inventory) -> Result<(), ApplyError> {
        let mut s = self.lock()?;
        if s.inventories.get(owner) == Some(inventory) {
            return Ok(());
        }
        if let Some(store) = &s.store {
            store
                .write_inventory(owner, inventory)
                .map_err(|e| unavailable(&format!("inventory {owner}"), e))?;
        }
        s.inventories.insert(owner.to_string(), inventory.clone());
        Ok(())
    }
}
