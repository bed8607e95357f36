//! kustomize's built-in transformer configuration: which fields each
//! transformer touches, and where names refer to other objects.

use super::fieldspec::Fs;

/// `(path, group, version, kind, create)`.
type Row = (&'static str, &'static str, &'static str, &'static str, bool);

const METADATA_LABELS: &[Row] = &[
    ("metadata/labels", "", "", "", true),
    (
        "spec/template/metadata/labels",
        "",
        "v1",
        "ReplicationController",
        true,
    ),
    ("spec/template/metadata/labels", "", "", "Deployment", true),
    ("spec/template/metadata/labels", "", "", "ReplicaSet", true),
    ("spec/template/metadata/labels", "", "", "DaemonSet", true),
    (
        "spec/template/metadata/labels",
        "apps",
        "",
        "StatefulSet",
        true,
    ),
    (
        "spec/volumeClaimTemplates[]/metadata/labels",
        "apps",
        "",
        "StatefulSet",
        true,
    ),
    ("spec/template/metadata/labels", "batch", "", "Job", true),
    (
        "spec/jobTemplate/metadata/labels",
        "batch",
        "",
        "CronJob",
        true,
    ),
    (
        "spec/jobTemplate/spec/template/metadata/labels",
        "batch",
        "",
        "CronJob",
        true,
    ),
];

const SELECTORS: &[Row] = &[
    ("spec/selector", "", "v1", "Service", true),
    ("spec/selector", "", "v1", "ReplicationController", true),
    ("spec/selector/matchLabels", "", "", "Deployment", true),
    ("spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", "apps", "", "Deployment", false),
    ("spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", "apps", "", "Deployment", false),
    ("spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", "apps", "", "Deployment", false),
    ("spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", "apps", "", "Deployment", false),
    ("spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", "apps", "", "Deployment", false),
    ("spec/selector/matchLabels", "", "", "ReplicaSet", true),
    ("spec/selector/matchLabels", "", "", "DaemonSet", true),
    ("spec/selector/matchLabels", "apps", "", "StatefulSet", true),
    ("spec/volumeClaimTemplates[]/metadata/labels", "apps", "", "StatefulSet", true),
    ("spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", "apps", "", "StatefulSet", false),
    ("spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", "apps", "", "StatefulSet", false),
    ("spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", "apps", "", "StatefulSet", false),
    ("spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", "apps", "", "StatefulSet", false),
    ("spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", "apps", "", "StatefulSet", false),
    ("spec/selector/matchLabels", "batch", "", "Job", false),
    ("spec/jobTemplate/spec/selector/matchLabels", "batch", "", "CronJob", false),
    ("spec/selector/matchLabels", "policy", "", "PodDisruptionBudget", false),
    ("spec/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy", false),
    ("spec/ingress/from/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy", false),
    ("spec/egress/to/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy", false),
];

const ANNOTATIONS: &[Row] = &[
    ("metadata/annotations", "", "", "", true),
    (
        "spec/template/metadata/annotations",
        "",
        "v1",
        "ReplicationController",
        true,
    ),
    (
        "spec/template/metadata/annotations",
        "",
        "",
        "Deployment",
        true,
    ),
    (
        "spec/template/metadata/annotations",
        "",
        "",
        "ReplicaSet",
        true,
    ),
    (
        "spec/template/metadata/annotations",
        "",
        "",
        "DaemonSet",
        true,
    ),
    (
        "spec/template/metadata/annotations",
        "",
        "",
        "StatefulSet",
        true,
    ),
    (
        "spec/template/metadata/annotations",
        "batch",
        "",
        "Job",
        true,
    ),
    (
        "spec/jobTemplate/metadata/annotations",
        "batch",
        "",
        "CronJob",
        true,
    ),
    (
        "spec/jobTemplate/spec/template/metadata/annotations",
        "batch",
        "",
        "CronJob",
        true,
    ),
];

const IMAGES: &[Row] = &[
    ("spec/volumes[]/image/reference", "", "", "", true),
    (
        "spec/template/spec/volumes[]/image/reference",
        "",
        "",
        "",
        true,
    ),
];

const REPLICAS: &[Row] = &[
    ("spec/replicas", "", "", "Deployment", true),
    ("spec/replicas", "", "", "ReplicationController", true),
    ("spec/replicas", "", "", "ReplicaSet", true),
    ("spec/replicas", "", "", "StatefulSet", true),
];

/// `metadata/labels` plus pod-template labels (labels with templates).
pub(crate) fn template_labels() -> Vec<Fs> {
    Fs::table(METADATA_LABELS)
}

/// Only `metadata/labels`.
pub(crate) fn metadata_labels() -> Vec<Fs> {
    Fs::table(&METADATA_LABELS[..1])
}

/// Everything commonLabels touches: metadata, templates and selectors.
pub(crate) fn common_labels() -> Vec<Fs> {
    let mut v = Fs::table(SELECTORS);
    v.extend(Fs::table(METADATA_LABELS));
    v
}

/// Everything commonAnnotations touches.
pub(crate) fn annotations() -> Vec<Fs> {
    Fs::table(ANNOTATIONS)
}

/// Image fields besides containers (which are found anywhere).
pub(crate) fn images() -> Vec<Fs> {
    Fs::table(IMAGES)
}

/// Replica count fields.
pub(crate) fn replicas() -> Vec<Fs> {
    Fs::table(REPLICAS)
}

/// One name-reference rule: objects of `(group, kind)` are referred to at
/// `fs` (a field spec on the referrer).
#[derive(Clone, Debug)]
pub(crate) struct NameRef {
    pub group: String,
    pub kind: String,
    pub fs: Fs,
}

const POD_SPEC_KINDS: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("PodTemplate", "template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

const POD_SPEC_KINDS_B: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
];

/// kustomize's built-in name references.
pub(crate) fn name_refs() -> Vec<NameRef> {
    let mut out = Vec::new();
    let mut add = |group: &str, kind: &str, path: &str, rgroup: &str, rkind: &str| {
        out.push(NameRef {
            group: group.to_string(),
            kind: kind.to_string(),
            fs: Fs::new(
                path,
                if rgroup.is_empty() {
                    None
                } else {
                    Some(rgroup)
                },
                None,
                Some(rkind),
                false,
            ),
        })
    };
    for k in [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ] {
        add(
            "",
            k,
            "spec/scaleTargetRef/name",
            "",
            "HorizontalPodAutoscaler",
        );
    }
    let cm = [
        "volumes/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
        "volumes/projected/sources/configMap/name",
    ];
    for (k, pre) in POD_SPEC_KINDS {
        for s in cm {
            add("", "ConfigMap", &format!("{pre}/{s}"), "", k);
        }
    }
    add("", "ConfigMap", "rules/resourceNames", "", "Role");
    add("", "ConfigMap", "rules/resourceNames", "", "ClusterRole");
    add(
        "",
        "ConfigMap",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
        "",
        "Ingress",
    );
    let sec = [
        "volumes/secret/secretName",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
        "volumes/projected/sources/secret/name",
    ];
    for (k, pre) in POD_SPEC_KINDS {
        for s in sec {
            add("", "Secret", &format!("{pre}/{s}"), "", k);
        }
    }
    for p in [
        "spec/tls/secretName",
        "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
    ] {
        add("", "Secret", p, "", "Ingress");
    }
    add("", "Secret", "imagePullSecrets/name", "", "ServiceAccount");
    for p in [
        "secretName",
        "adminSecretName",
        "userSecretName",
        "secretRef",
    ] {
        add("", "Secret", &format!("parameters/{p}"), "", "StorageClass");
    }
    add("", "Secret", "rules/resourceNames", "", "Role");
    add("", "Secret", "rules/resourceNames", "", "ClusterRole");
    add(
        "",
        "Secret",
        "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
        "serving.knative.dev",
        "Service",
    );
    add(
        "",
        "Secret",
        "spec/azureFile/secretName",
        "",
        "PersistentVolume",
    );
    add("", "Service", "spec/serviceName", "apps", "StatefulSet");
    for p in [
        "spec/rules/http/paths/backend/serviceName",
        "spec/backend/serviceName",
        "spec/rules/http/paths/backend/service/name",
        "spec/defaultBackend/service/name",
    ] {
        add("", "Service", p, "", "Ingress");
    }
    add(
        "",
        "Service",
        "spec/service/name",
        "apiregistration.k8s.io",
        "APIService",
    );
    add(
        "",
        "Service",
        "webhooks/clientConfig/service",
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    );
    add(
        "",
        "Service",
        "webhooks/clientConfig/service",
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    );
    add(
        "",
        "Service",
        "spec/rules/backendRefs/name",
        "",
        "HTTPRoute",
    );
    let rbac = "rbac.authorization.k8s.io";
    add(rbac, "Role", "roleRef/name", rbac, "RoleBinding");
    add(rbac, "ClusterRole", "roleRef/name", rbac, "RoleBinding");
    add(
        rbac,
        "ClusterRole",
        "roleRef/name",
        rbac,
        "ClusterRoleBinding",
    );
    add("", "ServiceAccount", "subjects", rbac, "RoleBinding");
    add("", "ServiceAccount", "subjects", rbac, "ClusterRoleBinding");
    for (k, pre) in POD_SPEC_KINDS_B {
        add(
            "",
            "ServiceAccount",
            &format!("{pre}/serviceAccountName"),
            "",
            k,
        );
    }
    for (k, pre) in POD_SPEC_KINDS_B {
        add(
            "",
            "PersistentVolumeClaim",
            &format!("{pre}/volumes/persistentVolumeClaim/claimName"),
            "",
            k,
        );
    }
    add(
        "",
        "PersistentVolume",
        "spec/volumeName",
        "",
        "PersistentVolumeClaim",
    );
    add(
        "",
        "PersistentVolume",
        "rules/resourceNames",
        "",
        "ClusterRole",
    );
    let st = "storage.k8s.io";
    add(
        st,
        "StorageClass",
        "spec/storageClassName",
        "",
        "PersistentVolume",
    );
    add(
        st,
        "StorageClass",
        "spec/storageClassName",
        "",
        "PersistentVolumeClaim",
    );
    add(
        st,
        "StorageClass",
        "spec/volumeClaimTemplates/spec/storageClassName",
        "",
        "StatefulSet",
    );
    for (k, pre) in POD_SPEC_KINDS_B {
        add(
            "scheduling.k8s.io",
            "PriorityClass",
            &format!("{pre}/priorityClassName"),
            "",
            k,
        );
    }
    // kustomize's table spells this group `networking.k8s.io/v1`, which no
    // object has, so ingressClassName is never fixed up; we keep that.
    add(
        "networking.k8s.io/v1",
        "IngressClass",
        "spec/ingressClassName",
        "",
        "Ingress",
    );
    out
}
