//! Flux API objects as serde types.
//!
//! `source.toolkit.fluxcd.io/v1` GitRepository and
//! `kustomize.toolkit.fluxcd.io/v1` Kustomization are typed here; unknown
//! or mistyped fields are errors that name the field, as the API server's
//! validation would. HelmRelease, HelmRepository and OCIRepository are
//! applied as plain objects.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::{Object, ObjectId};
use crate::source::GitRef;

mod duration;
pub mod substitute;

pub use duration::{format_duration, parse_duration};

/// The API group of Flux Kustomizations.
pub const KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io";
/// The API group of Flux sources.
pub const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";

/// A Flux object that does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject}: field {field}: {message}")]
#[non_exhaustive]
pub struct FluxObjectError {
    /// `Kind/ns/name`.
    pub subject: String,
    /// The dotted path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The metadata Flux objects need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A typed Flux object: metadata and spec (status is ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxObject<S> {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Metadata.
    pub metadata: Meta,
    /// The spec.
    pub spec: S,
}

impl<S: DeserializeOwned> FluxObject<S> {
    /// Reads a typed object from a generic one, naming the field on error.
    pub fn from_object(object: &Object) -> Result<Self, FluxObjectError> {
        let mut v = object.value().clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
            if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                md.retain(|k, _| {
                    matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations")
                });
            }
        }
        let subject = object.id().subject();
        serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            FluxObjectError {
                subject,
                field: if field == "." {
                    "<root>".to_string()
                } else {
                    field
                },
                message: crate::hint::unknown_field(&e.into_inner().to_string()),
            }
        })
    }
}

/// A reference to a Secret or ConfigMap by name, in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Name.
    pub name: String,
}

/// `GitRepository.spec.verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitVerification {
    /// `HEAD` (also `head`), `Tag` or `TagAndHEAD`.
    #[serde(default)]
    pub mode: crate::verify::VerifyMode,
    /// The Secret holding the trusted public keys.
    pub secret_ref: LocalObjectReference,
}

/// `GitRepository.spec.include[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepositoryInclude {
    /// The included repository.
    pub repository: LocalObjectReference,
    /// Path in the included repository.
    #[serde(default)]
    pub from_path: Option<String>,
    /// Path in this repository's artifact.
    #[serde(default)]
    pub to_path: Option<String>,
}

/// `source.toolkit.fluxcd.io/v1` GitRepository spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRepositorySpec {
    /// Repository URL (`ssh://`, `https://`, `http://`).
    pub url: String,
    /// Credentials Secret.
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
    /// Credentials provider (`generic`, `azure`, `github`).
    #[serde(default)]
    pub provider: Option<String>,
    /// How often to check for new revisions.
    pub interval: String,
    /// Timeout for Git operations.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Which revision.
    #[serde(default, rename = "ref")]
    pub reference: Option<GitRef>,
    /// Signature verification.
    #[serde(default)]
    pub verify: Option<GitVerification>,
    /// Proxy Secret.
    #[serde(default)]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    /// Extra `.sourceignore` patterns.
    #[serde(default)]
    pub ignore: Option<String>,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
    /// Fetch submodules.
    #[serde(default)]
    pub recurse_submodules: bool,
    /// Other GitRepositories to include.
    #[serde(default)]
    pub include: Vec<GitRepositoryInclude>,
    /// Sparse checkout folders.
    #[serde(default)]
    pub sparse_checkout: Vec<String>,
}

/// A reference to a source object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossNamespaceSourceReference {
    /// `apiVersion` of the source.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `GitRepository`, `OCIRepository` or `Bucket`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; defaults to the Kustomization's.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A dependency on another Kustomization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependencyReference {
    /// Name.
    pub name: String,
    /// Namespace; defaults to the dependent's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A CEL readiness expression (not evaluated; see docs).
    #[serde(default)]
    pub ready_expr: Option<String>,
}

/// A selector for patch targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchSelector {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (a regular expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (a regular expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Annotation selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
}

/// An inline patch with an optional target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// A strategic merge patch or a JSON 6902 patch, as YAML text.
    pub patch: String,
    /// The objects it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchSelector>,
}

/// An image override.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// The image name to match.
    pub name: String,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// New tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// Digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Labels and annotations added to every object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommonMetadata {
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A ConfigMap or Secret that provides substitution variables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Name, in the Kustomization's namespace.
    pub name: String,
    /// A missing object is not an error.
    #[serde(default)]
    pub optional: bool,
}

/// `spec.postBuild`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostBuild {
    /// Variables.
    #[serde(default)]
    pub substitute: BTreeMap<String, String>,
    /// Variables from ConfigMaps and Secrets (later entries win; inline
    /// `substitute` wins over all).
    #[serde(default)]
    pub substitute_from: Vec<SubstituteReference>,
}

/// An object to health-check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckReference {
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `spec.decryption`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decryption {
    /// `sops`.
    pub provider: String,
    /// The Secret holding the keys.
    #[serde(default)]
    pub secret_ref: Option<LocalObjectReference>,
}

/// `spec.kubeConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeConfigReference {
    /// Secret with a kubeconfig.
    #[serde(default)]
    pub secret_ref: Option<Value>,
    /// ConfigMap with a kubeconfig.
    #[serde(default)]
    pub config_map_ref: Option<Value>,
}

/// `kustomize.toolkit.fluxcd.io/v1` Kustomization spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizationSpec {
    /// The source to build from.
    pub source_ref: CrossNamespaceSourceReference,
    /// The folder in the source; defaults to its root.
    #[serde(default)]
    pub path: Option<String>,
    /// Delete objects that left Git.
    pub prune: bool,
    /// How often to reconcile.
    pub interval: String,
    /// How soon to retry after a failure (defaults to `interval`).
    #[serde(default)]
    pub retry_interval: Option<String>,
    /// Timeout for apply and health checks (defaults to `interval`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Kustomizations that must be Ready first.
    #[serde(default)]
    pub depends_on: Vec<DependencyReference>,
    /// Namespace set on every namespaced object.
    #[serde(default)]
    pub target_namespace: Option<String>,
    /// Prefix for every name.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Suffix for every name.
    #[serde(default)]
    pub name_suffix: Option<String>,
    /// Patches.
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// Image overrides.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Kustomize components.
    #[serde(default)]
    pub components: Vec<String>,
    /// Missing components are not an error.
    #[serde(default)]
    pub ignore_missing_components: bool,
    /// Labels and annotations for every object.
    #[serde(default)]
    pub common_metadata: Option<CommonMetadata>,
    /// Variable substitution.
    #[serde(default)]
    pub post_build: Option<PostBuild>,
    /// Objects to health-check.
    #[serde(default)]
    pub health_checks: Vec<HealthCheckReference>,
    /// CEL health expressions (not evaluated; see docs).
    #[serde(default)]
    pub health_check_exprs: Vec<Value>,
    /// Health-check every applied object.
    #[serde(default)]
    pub wait: bool,
    /// Recreate objects whose immutable fields changed.
    #[serde(default)]
    pub force: bool,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
    /// The ServiceAccount to impersonate.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Secret decryption.
    #[serde(default)]
    pub decryption: Option<Decryption>,
    /// A remote cluster.
    #[serde(default)]
    pub kube_config: Option<KubeConfigReference>,
    /// What happens to objects when the Kustomization is deleted.
    #[serde(default)]
    pub deletion_policy: Option<String>,
    /// Not in v1 but common in older repositories; refused with a clear message.
    #[serde(default, skip_serializing)]
    validation: Option<Value>,
}

/// A typed GitRepository.
pub type GitRepository = FluxObject<GitRepositorySpec>;
/// A typed Kustomization.
pub type Kustomization = FluxObject<KustomizationSpec>;

impl Kustomization {
    /// Reads and validates a Kustomization object: kind, apiVersion, fields
    /// and durations.
    pub fn parse(object: &Object) -> Result<Self, FluxObjectError> {
        let bad = |field: &str, message: String| FluxObjectError {
            subject: object.id().subject(),
            field: field.to_string(),
            message,
        };
        if object.group() != KUSTOMIZE_GROUP || object.kind() != "Kustomization" {
            return Err(bad(
                "kind",
                "not a kustomize.toolkit.fluxcd.io Kustomization".into(),
            ));
        }
        if !matches!(object.version(), "v1" | "v1beta2") {
            return Err(bad(
                "apiVersion",
                format!("unsupported version {:?}", object.api_version()),
            ));
        }
        let k: Kustomization = FluxObject::from_object(object)?;
        if k.spec.validation.is_some() {
            return Err(bad(
                "spec.validation",
                "removed in kustomize.toolkit.fluxcd.io/v1".into(),
            ));
        }
        for (field, value) in [
            ("spec.interval", Some(&k.spec.interval)),
            ("spec.retryInterval", k.spec.retry_interval.as_ref()),
            ("spec.timeout", k.spec.timeout.as_ref()),
        ] {
            if let Some(v) = value {
                parse_duration(v).map_err(|e| bad(field, e))?;
            }
        }
        Ok(k)
    }

    /// `<namespace>/<name>`, the key Flux names it by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        parse_duration(&self.spec.interval).unwrap_or(Duration::from_secs(600))
    }

    /// The retry interval (defaults to the interval).
    pub fn retry_interval(&self) -> Duration {
        self.spec
            .retry_interval
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or_else(|| self.interval())
    }

    /// The timeout (defaults to the interval).
    pub fn timeout(&self) -> Duration {
        self.spec
            .timeout
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or_else(|| self.interval())
    }

    /// The source object this Kustomization builds from.
    pub fn source_id(&self) -> ObjectId {
        let r = &self.spec.source_ref;
        ObjectId::new(
            SOURCE_GROUP,
            &r.kind,
            r.namespace.as_deref().unwrap_or(&self.metadata.namespace),
            &r.name,
        )
    }

    /// The identity to impersonate, if any.
    pub fn impersonation(&self) -> Option<String> {
        self.spec
            .service_account_name
            .as_ref()
            .map(|sa| format!("system:serviceaccount:{}:{}", self.metadata.namespace, sa))
    }
}

impl GitRepository {
    /// Reads and validates a GitRepository object.
    pub fn parse(object: &Object) -> Result<Self, FluxObjectError> {
        let bad = |field: &str, message: String| FluxObjectError {
            subject: object.id().subject(),
            field: field.to_string(),
            message,
        };
        if object.group() != SOURCE_GROUP || object.kind() != "GitRepository" {
            return Err(bad(
                "kind",
                "not a source.toolkit.fluxcd.io GitRepository".into(),
            ));
        }
        let g: GitRepository = FluxObject::from_object(object)?;
        parse_duration(&g.spec.interval).map_err(|e| bad("spec.interval", e))?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ks(spec: Value) -> Object {
        Object::new(json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system", "uid": "x"}, "spec": spec, "status": {"x": 1}}))
        .unwrap()
    }

    #[test]
    fn parses_the_seed_kustomization() {
        let k = Kustomization::parse(&ks(json!({"interval": "5m", "path": "./apps/overlays/production", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "dependsOn": [{"name": "infrastructure"}]})))
        .unwrap();
        assert_eq!(k.key(), "flux-system/apps");
        assert_eq!(k.interval(), Duration::from_secs(300));
        assert_eq!(k.timeout(), Duration::from_secs(300));
        assert_eq!(
            k.source_id().to_string(),
            "flux-system_flux-system_source.toolkit.fluxcd.io_GitRepository"
        );
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let err = Kustomization::parse(&ks(json!({"interval": "5m", "prune": true, "pruen": true,
            "sourceRef": {"kind": "GitRepository", "name": "x"}})))
        .unwrap_err();
        assert_eq!(err.subject, "Kustomization/flux-system/apps");
        assert_eq!(err.field, "spec.pruen");
        assert!(err.message.contains("unknown field `pruen`"), "{err}");
        let err = Kustomization::parse(&ks(json!({"interval": "5m", "prune": "yes",
            "sourceRef": {"kind": "GitRepository", "name": "x"}})))
        .unwrap_err();
        assert_eq!(err.field, "spec.prune");
        let err = Kustomization::parse(&ks(json!({"interval": "five", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "x"}})))
        .unwrap_err();
        assert_eq!(err.field, "spec.interval");
        let err = Kustomization::parse(&ks(json!({"interval": "1m", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "x", "nmae": "y"}})))
        .unwrap_err();
        assert_eq!(err.field, "spec.sourceRef.nmae");
    }
}
