//! Kubernetes type knowledge as one explicit value.
//!
//! Render (strategic merge, the namespace transformer), plan (apply order)
//! and the embedded cluster (scope, immutability) all read the same
//! [`Schema`]. There is no process-global: a host that knows more types
//! (CRDs, OpenAPI merge keys) builds its own value and passes it in.

use std::collections::{BTreeMap, BTreeSet};

use crate::object::Object;

pub mod merge;

/// Whether a kind lives in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Namespaced objects need their Namespace.
    Namespaced,
    /// Cluster-scoped objects have no namespace.
    Cluster,
}

/// A kind known by group and kind name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKind {
    /// API group, empty for core.
    pub group: String,
    /// Kind.
    pub kind: String,
}

impl GroupKind {
    /// Builds a group/kind pair.
    pub fn new(group: &str, kind: &str) -> Self {
        GroupKind {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }
}

/// What is known of a custom kind registered through a CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomKind {
    /// Its scope.
    pub scope: Scope,
    /// The versions the CRD serves.
    pub versions: BTreeSet<String>,
    /// The CRD's name (`<plural>.<group>`).
    pub crd_name: String,
}

/// The type knowledge shared by render, plan and the embedded cluster.
#[derive(Clone, Debug)]
pub struct Schema {
    builtin_scope: BTreeMap<GroupKind, Scope>,
    custom: BTreeMap<GroupKind, CustomKind>,
    immutable: BTreeMap<GroupKind, Vec<&'static str>>,
    kind_rank: BTreeMap<&'static str, usize>,
    /// Patch merge keys and strategies for strategic merge patch.
    pub merge: merge::MergeSchema,
}

/// Built-in cluster-scoped kinds.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("policy", "PodSecurityPolicy"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("snapshot.storage.k8s.io", "VolumeSnapshotClass"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// Built-in namespaced kinds (so a missing CRD can be told from a built-in).
const NAMESPACED: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("", "PersistentVolumeClaim"),
    ("", "Endpoints"),
    ("", "Event"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("apps", "ControllerRevision"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("coordination.k8s.io", "Lease"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("events.k8s.io", "Event"),
    ("storage.k8s.io", "CSIStorageCapacity"),
];

/// Fields that cannot change once an object exists, as JSON pointers.
const IMMUTABLE: &[(&str, &str, &[&str])] = &[
    ("apps", "Deployment", &["/spec/selector"]),
    ("apps", "ReplicaSet", &["/spec/selector"]),
    ("apps", "DaemonSet", &["/spec/selector"]),
    (
        "apps",
        "StatefulSet",
        &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ],
    ),
    (
        "batch",
        "Job",
        &["/spec/selector", "/spec/template", "/spec/completionMode"],
    ),
    (
        "",
        "Service",
        &[
            "/spec/clusterIP",
            "/spec/clusterIPs/0",
            "/spec/ipFamilies/0",
        ],
    ),
    (
        "",
        "PersistentVolumeClaim",
        &[
            "/spec/storageClassName",
            "/spec/accessModes",
            "/spec/volumeName",
            "/spec/selector",
            "/spec/volumeMode",
        ],
    ),
    ("", "PersistentVolume", &["/spec/volumeMode"]),
    ("rbac.authorization.k8s.io", "RoleBinding", &["/roleRef"]),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        &["/roleRef"],
    ),
    (
        "storage.k8s.io",
        "StorageClass",
        &[
            "/provisioner",
            "/parameters",
            "/reclaimPolicy",
            "/volumeBindingMode",
        ],
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &["/spec/scope"],
    ),
];

/// Flux's apply order for kinds (from fluxcd/pkg/ssa, itself after Helm).
/// Kinds not listed sort after these, alphabetically.
const KIND_ORDER: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The apply stage an object belongs to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// CustomResourceDefinitions, Namespaces and ClusterRoles.
    ClusterDefinitions,
    /// Kinds whose name ends in `Class` (StorageClass, IngressClass, ...).
    ClassDefinitions,
    /// Everything else.
    Resources,
}

impl Default for Schema {
    fn default() -> Self {
        Schema::kubernetes()
    }
}

impl Schema {
    /// The built-in Kubernetes types; no custom kinds registered.
    pub fn kubernetes() -> Self {
        let mut builtin_scope = BTreeMap::new();
        for (g, k) in CLUSTER_SCOPED {
            builtin_scope.insert(GroupKind::new(g, k), Scope::Cluster);
        }
        for (g, k) in NAMESPACED {
            builtin_scope.insert(GroupKind::new(g, k), Scope::Namespaced);
        }
        let immutable = IMMUTABLE
            .iter()
            .map(|(g, k, f)| (GroupKind::new(g, k), f.to_vec()))
            .collect();
        Schema {
            builtin_scope,
            custom: BTreeMap::new(),
            immutable,
            kind_rank: KIND_ORDER
                .iter()
                .enumerate()
                .map(|(i, k)| (*k, i))
                .collect(),
            merge: merge::MergeSchema::kubernetes(),
        }
    }

    /// Registers a custom kind, as applying its CRD would.
    pub fn register_custom(&mut self, gk: GroupKind, kind: CustomKind) {
        self.custom.insert(gk, kind);
    }

    /// Registers a kind as a cluster's discovery reports it: its scope, any
    /// version (for a kind whose CRD is not at hand). A kind already
    /// registered keeps what its CRD says.
    pub fn register_scope(&mut self, gk: GroupKind, scope: Scope) {
        if self.builtin_scope.contains_key(&gk) || self.custom.contains_key(&gk) {
            return;
        }
        self.custom.insert(
            gk,
            CustomKind {
                scope,
                versions: BTreeSet::new(),
                crd_name: String::new(),
            },
        );
    }

    /// Registers the kind a CRD object defines. Returns false when the object
    /// is not a well-formed CRD.
    pub fn register_crd(&mut self, crd: &Object) -> bool {
        let Some(gk) = crd_group_kind(crd) else {
            return false;
        };
        let spec = &crd.value()["spec"];
        let scope = match spec["scope"].as_str() {
            Some("Cluster") => Scope::Cluster,
            _ => Scope::Namespaced,
        };
        let versions = spec["versions"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .filter(|v| v["served"].as_bool().unwrap_or(true))
                    .filter_map(|v| v["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        self.register_custom(
            gk,
            CustomKind {
                scope,
                versions,
                crd_name: crd.name().to_string(),
            },
        );
        true
    }

    /// Forgets a custom kind (its CRD was deleted).
    pub fn unregister_custom(&mut self, gk: &GroupKind) {
        self.custom.remove(gk);
    }

    /// The built-in kinds and their scopes, ordered by group and kind.
    pub fn builtin_kinds(&self) -> impl Iterator<Item = (&GroupKind, Scope)> {
        self.builtin_scope.iter().map(|(gk, s)| (gk, *s))
    }

    /// The custom kinds registered so far.
    pub fn custom_kinds(&self) -> impl Iterator<Item = (&GroupKind, &CustomKind)> {
        self.custom.iter()
    }

    /// True when the kind is built in or registered.
    pub fn is_known(&self, group: &str, kind: &str) -> bool {
        let gk = GroupKind::new(group, kind);
        self.builtin_scope.contains_key(&gk) || self.custom.contains_key(&gk)
    }

    /// True when the version of a kind is served (built-in kinds: always).
    pub fn serves(&self, group: &str, version: &str, kind: &str) -> bool {
        let gk = GroupKind::new(group, kind);
        if self.builtin_scope.contains_key(&gk) {
            return true;
        }
        self.custom
            .get(&gk)
            .is_some_and(|c| c.versions.is_empty() || c.versions.contains(version))
    }

    /// The scope of a kind. Unknown kinds are taken as namespaced, which is
    /// what kustomize assumes too.
    pub fn scope(&self, group: &str, kind: &str) -> Scope {
        let gk = GroupKind::new(group, kind);
        if let Some(s) = self.builtin_scope.get(&gk) {
            return *s;
        }
        if let Some(c) = self.custom.get(&gk) {
            return c.scope;
        }
        // kustomize decides by kind alone for built-ins in other groups
        if CLUSTER_SCOPED.iter().any(|(_, k)| *k == kind) && group.ends_with("k8s.io") {
            return Scope::Cluster;
        }
        Scope::Namespaced
    }

    /// True when objects of this kind have a namespace.
    pub fn is_namespaced(&self, group: &str, kind: &str) -> bool {
        self.scope(group, kind) == Scope::Namespaced
    }

    /// The immutable fields of a kind, as JSON pointers.
    pub fn immutable_fields(&self, group: &str, kind: &str) -> &[&'static str] {
        self.immutable
            .get(&GroupKind::new(group, kind))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The apply stage of a kind, as Flux stages its applies.
    pub fn stage(&self, group: &str, kind: &str) -> Stage {
        match (group, kind) {
            ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "Namespace")
            | ("rbac.authorization.k8s.io", "ClusterRole") => Stage::ClusterDefinitions,
            (_, k) if k.ends_with("Class") => Stage::ClassDefinitions,
            _ => Stage::Resources,
        }
    }

    /// The rank of a kind in Flux's apply order; unlisted kinds rank last.
    pub fn kind_rank(&self, kind: &str) -> usize {
        self.kind_rank
            .get(kind)
            .copied()
            .unwrap_or(KIND_ORDER.len())
    }
}

/// The group and kind a CRD object defines.
pub fn crd_group_kind(crd: &Object) -> Option<GroupKind> {
    if crd.kind() != "CustomResourceDefinition" || crd.group() != "apiextensions.k8s.io" {
        return None;
    }
    let spec = &crd.value()["spec"];
    let group = spec["group"].as_str()?;
    let kind = spec["names"]["kind"].as_str()?;
    Some(GroupKind::new(group, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_order() {
        let s = Schema::kubernetes();
        assert_eq!(s.stage("", "Namespace"), Stage::ClusterDefinitions);
        assert_eq!(
            s.stage("storage.k8s.io", "StorageClass"),
            Stage::ClassDefinitions
        );
        assert_eq!(s.stage("apps", "Deployment"), Stage::Resources);
        assert!(s.kind_rank("Service") < s.kind_rank("Deployment"));
        assert!(s.kind_rank("Deployment") < s.kind_rank("SomeCustomKind"));
        assert!(!s.is_namespaced("", "Namespace"));
        assert!(s.is_namespaced("apps", "Deployment"));
        assert_eq!(
            s.immutable_fields("apps", "Deployment"),
            &["/spec/selector"]
        );
    }
}
