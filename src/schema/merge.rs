//! Merge keys and strategies for strategic merge patch, as an explicit
//! value (kustomize keeps these in a process-global; we do not).
//!
//! The schema is a small type graph: each known `group/Kind` names a root
//! type, each type lists its fields, and each field names the type of its
//! value (or of its list items) and, for lists, how they merge. A field the
//! schema does not know merges like a JSON merge patch (lists replaced),
//! which is also what happens to kinds with no schema at all.

use std::collections::BTreeMap;

/// How a list field merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// Items are matched by the value of this key and merged.
    MergeByKey(String),
    /// Items are a set of primitives, merged as a union.
    MergePrimitives,
    /// The patch replaces the list.
    Replace,
}

/// One field of a [`TypeDef`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FieldDef {
    /// The type of the field's value, or of its items for a list, or of the
    /// values for a map with free keys.
    pub type_name: Option<String>,
    /// For list fields, how the list merges; `None` means replace.
    pub list: Option<ListStrategy>,
}

/// An object type: its fields by name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TypeDef {
    /// Fields by JSON name.
    pub fields: BTreeMap<String, FieldDef>,
    /// When set, the type is a map with free keys whose values have this type.
    pub additional: Option<String>,
}

/// Merge strategies for a set of kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeSchema {
    /// `(group, Kind)` → root type name.
    pub kinds: BTreeMap<(String, String), String>,
    /// Type name → definition.
    pub types: BTreeMap<String, TypeDef>,
}

/// A position in a [`MergeSchema`]: the type of the value being merged.
#[derive(Clone, Copy, Debug)]
pub struct SchemaCursor<'a> {
    schema: &'a MergeSchema,
    ty: Option<&'a TypeDef>,
}

impl<'a> SchemaCursor<'a> {
    /// A cursor that knows nothing (every list is replaced).
    pub fn none(schema: &'a MergeSchema) -> Self {
        SchemaCursor { schema, ty: None }
    }

    /// True when the cursor points at a known type.
    pub fn is_known(&self) -> bool {
        self.ty.is_some()
    }

    /// The field `name` of the current type: its list strategy and a cursor
    /// on its value's (or items') type.
    pub fn field(&self, name: &str) -> (Option<&'a ListStrategy>, SchemaCursor<'a>) {
        let Some(ty) = self.ty else {
            return (None, SchemaCursor::none(self.schema));
        };
        if let Some(f) = ty.fields.get(name) {
            let next = f
                .type_name
                .as_deref()
                .and_then(|t| self.schema.types.get(t));
            return (
                f.list.as_ref(),
                SchemaCursor {
                    schema: self.schema,
                    ty: next,
                },
            );
        }
        if let Some(add) = &ty.additional {
            return (
                None,
                SchemaCursor {
                    schema: self.schema,
                    ty: self.schema.types.get(add),
                },
            );
        }
        (None, SchemaCursor::none(self.schema))
    }
}

fn f(ty: Option<&str>, list: Option<ListStrategy>) -> FieldDef {
    FieldDef {
        type_name: ty.map(str::to_string),
        list,
    }
}

fn key(k: &str) -> Option<ListStrategy> {
    Some(ListStrategy::MergeByKey(k.to_string()))
}

impl MergeSchema {
    /// The root cursor for a kind, or an unknown cursor when the kind has
    /// no schema (custom resources).
    pub fn cursor(&self, group: &str, kind: &str) -> SchemaCursor<'_> {
        let ty = self
            .kinds
            .get(&(group.to_string(), kind.to_string()))
            .and_then(|t| self.types.get(t));
        SchemaCursor { schema: self, ty }
    }

    /// True when the kind has a schema.
    pub fn knows(&self, group: &str, kind: &str) -> bool {
        self.kinds
            .contains_key(&(group.to_string(), kind.to_string()))
    }

    /// Adds (or replaces) a type definition.
    pub fn add_type(&mut self, name: &str, def: TypeDef) {
        self.types.insert(name.to_string(), def);
    }

    /// Maps a kind to a root type.
    pub fn add_kind(&mut self, group: &str, kind: &str, type_name: &str) {
        self.kinds
            .insert((group.to_string(), kind.to_string()), type_name.to_string());
    }

    fn def(&mut self, name: &str, fields: Vec<(&str, FieldDef)>) {
        let mut t = TypeDef::default();
        for (n, d) in fields {
            t.fields.insert(n.to_string(), d);
        }
        self.types.insert(name.to_string(), t);
    }

    /// The merge keys of the built-in Kubernetes types, as the Kubernetes
    /// API declares them (`patchMergeKey` / `patchStrategy`).
    pub fn kubernetes() -> Self {
        let mut s = MergeSchema::default();
        s.def(
            "ObjectMeta",
            vec![
                ("finalizers", f(None, Some(ListStrategy::MergePrimitives))),
                ("ownerReferences", f(None, key("uid"))),
            ],
        );
        s.def(
            "Container",
            vec![
                ("ports", f(None, key("containerPort"))),
                ("env", f(None, key("name"))),
                ("volumeMounts", f(None, key("mountPath"))),
                ("volumeDevices", f(None, key("devicePath"))),
            ],
        );
        s.def(
            "PodSpec",
            vec![
                ("containers", f(Some("Container"), key("name"))),
                ("initContainers", f(Some("Container"), key("name"))),
                ("ephemeralContainers", f(Some("Container"), key("name"))),
                ("volumes", f(None, key("name"))),
                ("imagePullSecrets", f(None, key("name"))),
                ("hostAliases", f(None, key("ip"))),
                ("topologySpreadConstraints", f(None, key("topologyKey"))),
                ("resourceClaims", f(None, key("name"))),
                ("schedulingGates", f(None, key("name"))),
            ],
        );
        s.def(
            "PodTemplateSpec",
            vec![
                ("metadata", f(Some("ObjectMeta"), None)),
                ("spec", f(Some("PodSpec"), None)),
            ],
        );
        s.def(
            "WorkloadSpec",
            vec![("template", f(Some("PodTemplateSpec"), None))],
        );
        s.def(
            "JobTemplateSpec",
            vec![
                ("metadata", f(Some("ObjectMeta"), None)),
                ("spec", f(Some("WorkloadSpec"), None)),
            ],
        );
        s.def(
            "CronJobSpec",
            vec![("jobTemplate", f(Some("JobTemplateSpec"), None))],
        );
        s.def("ServiceSpec", vec![("ports", f(None, key("port")))]);
        s.def(
            "StatusConditions",
            vec![("conditions", f(None, key("type")))],
        );
        let plain = |s: &mut MergeSchema, name: &str, extra: Vec<(&str, FieldDef)>| {
            let mut fields = vec![("metadata", f(Some("ObjectMeta"), None))];
            fields.extend(extra);
            s.def(name, fields);
        };
        plain(
            &mut s,
            "Workload",
            vec![
                ("spec", f(Some("WorkloadSpec"), None)),
                ("status", f(Some("StatusConditions"), None)),
            ],
        );
        plain(
            &mut s,
            "CronJob",
            vec![("spec", f(Some("CronJobSpec"), None))],
        );
        plain(&mut s, "Pod", vec![("spec", f(Some("PodSpec"), None))]);
        plain(
            &mut s,
            "PodTemplate",
            vec![("template", f(Some("PodTemplateSpec"), None))],
        );
        plain(
            &mut s,
            "Service",
            vec![("spec", f(Some("ServiceSpec"), None))],
        );
        plain(
            &mut s,
            "ServiceAccount",
            vec![("secrets", f(None, key("name")))],
        );
        plain(
            &mut s,
            "WebhookConfiguration",
            vec![("webhooks", f(None, key("name")))],
        );
        plain(&mut s, "Plain", vec![]);
        for (g, k) in [
            ("apps", "Deployment"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("apps", "ReplicaSet"),
            ("extensions", "Deployment"),
            ("extensions", "DaemonSet"),
            ("extensions", "ReplicaSet"),
            ("batch", "Job"),
            ("", "ReplicationController"),
        ] {
            s.add_kind(g, k, "Workload");
        }
        s.add_kind("batch", "CronJob", "CronJob");
        s.add_kind("", "Pod", "Pod");
        s.add_kind("", "PodTemplate", "PodTemplate");
        s.add_kind("", "Service", "Service");
        s.add_kind("", "ServiceAccount", "ServiceAccount");
        s.add_kind(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            "WebhookConfiguration",
        );
        s.add_kind(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            "WebhookConfiguration",
        );
        for (g, k) in crate::schema::merge::PLAIN_BUILTINS {
            s.add_kind(g, k, "Plain");
        }
        s
    }
}

/// Built-in kinds whose lists all replace but whose metadata merges.
pub const PLAIN_BUILTINS: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Namespace"),
    ("", "PersistentVolumeClaim"),
    ("", "PersistentVolume"),
    ("", "Endpoints"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "Node"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "IngressClass"),
    ("policy", "PodDisruptionBudget"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
];
