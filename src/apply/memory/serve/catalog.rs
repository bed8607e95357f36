//! The resources the server serves, and the discovery and OpenAPI documents
//! that describe them.
//!
//! The catalog is built from what the cluster serves: every built-in kind of
//! the schema in every version of its group (as the embedded cluster accepts
//! it), the kinds of the CRDs the cluster holds in their served versions,
//! and the review resources that are only ever created
//! (`selfsubjectaccessreviews`, ...). A resource the catalog does not know is
//! a `404 page not found`, as an API server answers for an unregistered
//! path.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::super::rbac;
use super::super::validate::BUILTIN_VERSIONS;
use super::super::State;
use crate::schema::Scope;

/// The verbs of a stored resource. Watch is not served.
const STORED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
];

/// The verbs of the status subresource.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// What kubectl needs to know of a built-in resource beyond its kind:
/// `(group, Kind, resource, short names, categories, subresources)`.
type Known = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// Short names, categories and subresources of the built-in resources, as
/// Kubernetes 1.32 lists them in discovery.
const KNOWN: &[Known] = &[
    ("", "ConfigMap", "configmaps", &["cm"], &[], &[]),
    ("", "Endpoints", "endpoints", &["ep"], &[], &[]),
    ("", "Event", "events", &["ev"], &[], &[]),
    ("", "LimitRange", "limitranges", &["limits"], &[], &[]),
    ("", "Namespace", "namespaces", &["ns"], &[], &["status"]),
    ("", "Node", "nodes", &["no"], &[], &["status"]),
    (
        "",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["pvc"],
        &[],
        &["status"],
    ),
    (
        "",
        "PersistentVolume",
        "persistentvolumes",
        &["pv"],
        &[],
        &["status"],
    ),
    ("", "Pod", "pods", &["po"], &["all"], &["status"]),
    ("", "PodTemplate", "podtemplates", &[], &[], &[]),
    (
        "",
        "ReplicationController",
        "replicationcontrollers",
        &["rc"],
        &["all"],
        &["status"],
    ),
    (
        "",
        "ResourceQuota",
        "resourcequotas",
        &["quota"],
        &[],
        &["status"],
    ),
    ("", "Secret", "secrets", &[], &[], &[]),
    ("", "ServiceAccount", "serviceaccounts", &["sa"], &[], &[]),
    ("", "Service", "services", &["svc"], &["all"], &["status"]),
    (
        "",
        "ComponentStatus",
        "componentstatuses",
        &["cs"],
        &[],
        &[],
    ),
    (
        "apps",
        "ControllerRevision",
        "controllerrevisions",
        &[],
        &[],
        &[],
    ),
    (
        "apps",
        "DaemonSet",
        "daemonsets",
        &["ds"],
        &["all"],
        &["status"],
    ),
    (
        "apps",
        "Deployment",
        "deployments",
        &["deploy"],
        &["all"],
        &["status"],
    ),
    (
        "apps",
        "ReplicaSet",
        "replicasets",
        &["rs"],
        &["all"],
        &["status"],
    ),
    (
        "apps",
        "StatefulSet",
        "statefulsets",
        &["sts"],
        &["all"],
        &["status"],
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        &["hpa"],
        &["all"],
        &["status"],
    ),
    (
        "batch",
        "CronJob",
        "cronjobs",
        &["cj"],
        &["all"],
        &["status"],
    ),
    ("batch", "Job", "jobs", &[], &["all"], &["status"]),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        &[],
        &["status"],
    ),
    (
        "networking.k8s.io",
        "Ingress",
        "ingresses",
        &["ing"],
        &[],
        &["status"],
    ),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        &["netpol"],
        &[],
        &[],
    ),
    (
        "storage.k8s.io",
        "StorageClass",
        "storageclasses",
        &["sc"],
        &[],
        &[],
    ),
    (
        "storage.k8s.io",
        "VolumeAttachment",
        "volumeattachments",
        &[],
        &[],
        &["status"],
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        &["pc"],
        &[],
        &[],
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        &["api-extensions"],
        &["status"],
    ),
    (
        "apiregistration.k8s.io",
        "APIService",
        "apiservices",
        &[],
        &["api-extensions"],
        &["status"],
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        &[],
        &["api-extensions"],
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        &[],
        &["api-extensions"],
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        &[],
        &["api-extensions"],
        &["status"],
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        &[],
        &["api-extensions"],
        &[],
    ),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        &["csr"],
        &[],
        &["status"],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        "flowschemas",
        &[],
        &[],
        &["status"],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        &[],
        &[],
        &["status"],
    ),
];

/// Resources that are only ever created, answered at once and never
/// stored: `(group, version, Kind, resource, namespaced)`.
pub(super) const REVIEWS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
    ),
];

/// One served resource in one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Resource {
    pub(super) group: String,
    pub(super) version: String,
    /// The plural, lowercase: `deployments`.
    pub(super) plural: String,
    pub(super) singular: String,
    pub(super) kind: String,
    pub(super) namespaced: bool,
    pub(super) short_names: Vec<String>,
    pub(super) categories: Vec<String>,
    /// `status` (the scale subresource is not served).
    pub(super) subresources: Vec<String>,
    /// A review: created, answered, never stored.
    pub(super) review: bool,
    /// A CRD's `additionalPrinterColumns` for this version; `None` for
    /// built-in kinds.
    pub(super) printer_columns: Option<Vec<Value>>,
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub(super) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The verbs discovery lists.
    pub(super) fn verbs(&self) -> Vec<&'static str> {
        if self.review {
            vec!["create"]
        } else {
            STORED_VERBS.to_vec()
        }
    }

    /// `deployments.apps`, or `configmaps`: the resource as error messages
    /// and RBAC name it.
    pub(super) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Every served resource, by `(group, version)`, in discovery order.
#[derive(Clone, Debug, Default)]
pub(super) struct Catalog {
    /// `(group, version)` → resources, sorted by plural.
    pub(super) versions: BTreeMap<(String, String), Vec<Resource>>,
}

/// Kubernetes' version priority: GA before beta before alpha, higher
/// numbers first; versions not of that shape last, alphabetically.
pub(super) fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: u64 = rest.get(..digits)?.parse().ok()?;
        let tail = rest.get(digits..)?;
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((level, major, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Catalog {
    /// The catalog of what `state` serves now.
    pub(super) fn of(state: &State) -> Catalog {
        let mut out = Catalog::default();
        for (gk, scope) in state.schema.builtin_kinds() {
            let Some((_, versions)) = BUILTIN_VERSIONS.iter().find(|(g, _)| *g == gk.group) else {
                continue;
            };
            let known = KNOWN
                .iter()
                .find(|(g, k, ..)| *g == gk.group && *k == gk.kind);
            let (plural, short, categories, subresources) = match known {
                Some((_, _, plural, short, cats, subs)) => (
                    plural.to_string(),
                    short.iter().map(|s| s.to_string()).collect(),
                    cats.iter().map(|s| s.to_string()).collect(),
                    subs.iter().map(|s| s.to_string()).collect(),
                ),
                None => (
                    rbac::plural_of(&gk.kind),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                ),
            };
            for version in versions.iter() {
                out.add(Resource {
                    group: gk.group.clone(),
                    version: version.to_string(),
                    plural: plural.clone(),
                    singular: gk.kind.to_ascii_lowercase(),
                    kind: gk.kind.clone(),
                    namespaced: scope == Scope::Namespaced,
                    short_names: short.clone(),
                    categories: categories.clone(),
                    subresources: subresources.clone(),
                    review: false,
                    printer_columns: None,
                });
            }
        }
        for (group, version, kind, plural, namespaced) in REVIEWS {
            out.add(Resource {
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                singular: kind.to_ascii_lowercase(),
                kind: kind.to_string(),
                namespaced: *namespaced,
                short_names: Vec::new(),
                categories: Vec::new(),
                subresources: Vec::new(),
                review: true,
                printer_columns: None,
            });
        }
        for (id, crd) in &state.objects {
            if id.group != "apiextensions.k8s.io" || id.kind != "CustomResourceDefinition" {
                continue;
            }
            out.add_crd(crd);
        }
        out
    }

    fn add(&mut self, r: Resource) {
        let list = self
            .versions
            .entry((r.group.clone(), r.version.clone()))
            .or_default();
        match list.binary_search_by(|x| x.plural.cmp(&r.plural)) {
            Ok(i) => {
                if let Some(slot) = list.get_mut(i) {
                    *slot = r;
                }
            }
            Err(i) => list.insert(i, r),
        }
    }

    fn add_crd(&mut self, crd: &Value) {
        let spec = &crd["spec"];
        let (Some(group), Some(plural), Some(kind)) = (
            spec["group"].as_str(),
            spec["names"]["plural"].as_str(),
            spec["names"]["kind"].as_str(),
        ) else {
            return;
        };
        let singular = spec["names"]["singular"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map_or_else(|| kind.to_ascii_lowercase(), str::to_string);
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let Some(versions) = spec["versions"].as_array() else {
            return;
        };
        for v in versions {
            if v["served"].as_bool() == Some(false) {
                continue;
            }
            let Some(name) = v["name"].as_str() else {
                continue;
            };
            let mut subresources = Vec::new();
            if let Some(subs) = v["subresources"].as_object() {
                if subs.contains_key("status") {
                    subresources.push("status".to_string());
                }
            }
            self.add(Resource {
                group: group.to_string(),
                version: name.to_string(),
                plural: plural.to_string(),
                singular: singular.clone(),
                kind: kind.to_string(),
                namespaced,
                short_names: strings(&spec["names"]["shortNames"]),
                categories: strings(&spec["names"]["categories"]),
                subresources,
                review: false,
                printer_columns: Some(
                    v["additionalPrinterColumns"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                ),
            });
        }
    }

    /// The resource at `group/version/plural`.
    pub(super) fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.versions
            .get(&(group.to_string(), version.to_string()))?
            .iter()
            .find(|r| r.plural == plural)
    }

    /// The groups and their versions, core first, then groups by name;
    /// versions in priority order (the first is preferred).
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (g, v) in self.versions.keys() {
            by_group.entry(g.as_str()).or_default().push(v.clone());
        }
        by_group
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by(|a, b| compare_versions(a, b));
                (g.to_string(), vs)
            })
            .collect()
    }

    /// `APIVersions` for `/api`.
    pub(super) fn api_versions(&self, server: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
        })
    }

    /// `APIGroupList` for `/apis`.
    pub(super) fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                let preferred = versions.first().cloned().unwrap_or(Value::Null);
                json!({"name": g, "versions": versions, "preferredVersion": preferred})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `APIResourceList` for `/api/v1` or `/apis/<group>/<version>`, `None`
    /// when the group version is not served.
    pub(super) fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let list = self
            .versions
            .get(&(group.to_string(), version.to_string()))?;
        let mut resources = Vec::new();
        for r in list {
            let mut m = Map::new();
            m.insert("name".into(), json!(r.plural));
            m.insert("singularName".into(), json!(r.singular));
            m.insert("namespaced".into(), json!(r.namespaced));
            m.insert("kind".into(), json!(r.kind));
            m.insert("verbs".into(), json!(r.verbs()));
            if !r.short_names.is_empty() {
                m.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                m.insert("categories".into(), json!(r.categories));
            }
            resources.push(Value::Object(m));
            for sub in &r.subresources {
                let mut m = Map::new();
                m.insert("name".into(), json!(format!("{}/{sub}", r.plural)));
                m.insert("singularName".into(), json!(""));
                m.insert("namespaced".into(), json!(r.namespaced));
                m.insert("kind".into(), json!(r.kind));
                m.insert("verbs".into(), json!(SUBRESOURCE_VERBS));
                resources.push(Value::Object(m));
            }
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }

    /// The aggregated discovery document (`APIGroupDiscoveryList`,
    /// apidiscovery.k8s.io/v2) of the core group (`core`) or of the named
    /// groups.
    pub(super) fn aggregated(&self, core: bool) -> Value {
        let mut items = Vec::new();
        for (g, vs) in self.groups() {
            if g.is_empty() != core {
                continue;
            }
            let mut versions = Vec::new();
            for v in &vs {
                let Some(list) = self.versions.get(&(g.clone(), v.clone())) else {
                    continue;
                };
                let resources: Vec<Value> = list
                    .iter()
                    .map(|r| {
                        let mut m = Map::new();
                        m.insert("resource".into(), json!(r.plural));
                        m.insert(
                            "responseKind".into(),
                            json!({"group": r.group, "version": r.version, "kind": r.kind}),
                        );
                        m.insert(
                            "scope".into(),
                            json!(if r.namespaced { "Namespaced" } else { "Cluster" }),
                        );
                        m.insert("singularResource".into(), json!(r.singular));
                        m.insert("verbs".into(), json!(r.verbs()));
                        if !r.short_names.is_empty() {
                            m.insert("shortNames".into(), json!(r.short_names));
                        }
                        if !r.categories.is_empty() {
                            m.insert("categories".into(), json!(r.categories));
                        }
                        let subs: Vec<Value> = r
                            .subresources
                            .iter()
                            .map(|s| {
                                let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                                json!({"subresource": s, "responseKind": kind, "verbs": SUBRESOURCE_VERBS})
                            })
                            .collect();
                        if !subs.is_empty() {
                            m.insert("subresources".into(), Value::Array(subs));
                        }
                        Value::Object(m)
                    })
                    .collect();
                versions
                    .push(json!({"version": v, "resources": resources, "freshness": "Current"}));
            }
            let mut metadata = Map::new();
            metadata.insert("creationTimestamp".into(), Value::Null);
            if !g.is_empty() {
                metadata.insert("name".into(), json!(g));
            }
            items.push(json!({"metadata": metadata, "versions": versions}));
        }
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }

    /// The OpenAPI v3 document of one group version: a path per resource
    /// with its operations, each PATCH marked with the kind it patches and
    /// the `fieldValidation` parameter (kubectl reads this to decide that
    /// the server validates fields). Schemas are not published.
    pub(super) fn openapi_v3(&self, group: &str, version: &str) -> Option<Value> {
        let list = self
            .versions
            .get(&(group.to_string(), version.to_string()))?;
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let param = |name: &str, location: &str| json!({"name": name, "in": location, "schema": {"type": "string", "uniqueItems": true}});
        let mut paths = Map::new();
        for r in list {
            let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
            let op = |action: &str| {
                json!({
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [param("dryRun", "query"), param("fieldManager", "query"), param("fieldValidation", "query")],
                    "responses": {"200": {"description": "OK"}},
                })
            };
            let base = if r.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
            } else {
                format!("{prefix}/{}", r.plural)
            };
            if r.review {
                paths.insert(base, json!({"post": op("post")}));
                continue;
            }
            paths.insert(
                base.clone(),
                json!({"get": op("list"), "post": op("post"), "delete": op("deletecollection")}),
            );
            paths.insert(
                format!("{base}/{{name}}"),
                json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
            );
            for sub in &r.subresources {
                paths.insert(
                    format!("{base}/{{name}}/{sub}"),
                    json!({"get": op("get"), "put": op("put"), "patch": op("patch")}),
                );
            }
        }
        Some(json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": super::VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        }))
    }

    /// The OpenAPI v3 root: one entry per group version, with a hash of its
    /// document so clients cache it.
    pub(super) fn openapi_v3_root(&self) -> Value {
        let mut paths = Map::new();
        for (g, v) in self.versions.keys() {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let doc = self.openapi_v3(g, v).unwrap_or(Value::Null).to_string();
            let hash: String = Sha256::digest(doc.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
        json!({"paths": paths})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut vs = vec!["v1beta1", "v1", "v2alpha1", "v2", "foo", "v1beta2", "v10"];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            vs,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "foo"]
        );
    }

    #[test]
    fn known_plurals_follow_the_api_servers_guess() {
        for (_, kind, plural, ..) in KNOWN {
            assert_eq!(&rbac::plural_of(kind), plural, "{kind}");
        }
    }
}
