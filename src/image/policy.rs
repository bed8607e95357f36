//! `ImagePolicy` and `ImageRepository` objects (`image.toolkit.fluxcd.io`)
//! and the choice of the latest tag, with Flux's rules.
//!
//! The choice is pure: it takes the tags as a list and returns a tag. Where
//! the tags come from is the [`TagSource`](super::TagSource)'s business.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::semver::{parse_tag, Range};

/// The API group of the image objects.
pub const IMAGE_GROUP: &str = "image.toolkit.fluxcd.io";
/// API versions accepted for the image objects.
pub const IMAGE_API_VERSIONS: &[&str] = &[
    "image.toolkit.fluxcd.io/v1beta2",
    "image.toolkit.fluxcd.io/v1",
];
/// The `exclusionList` an ImageRepository gets when it sets none.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

/// Why an image object could not be read or a policy not evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The object is malformed: names the file, the object and the field.
    #[error("{file}: {kind} {object}: {field}: {message}")]
    Invalid {
        /// The file the object came from.
        file: String,
        /// `ImagePolicy` or `ImageRepository`.
        kind: String,
        /// `namespace/name` (or `?` when unknown).
        object: String,
        /// The field path, e.g. `spec.policy.semver.range`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No tag satisfies the policy.
    #[error("ImagePolicy {policy}: no tag of {image} satisfies the policy{}", detail(.reason))]
    NoMatch {
        /// `namespace/name` of the policy.
        policy: String,
        /// The image whose tags were considered.
        image: String,
        /// Why, when more can be said (e.g. a non-numeric tag).
        reason: Option<String>,
    },
}

fn detail(r: &Option<String>) -> String {
    r.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
}

/// Object metadata (the fields the image objects use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The object's name.
    pub name: String,
    /// The object's namespace (`flux-system` when omitted, as the example
    /// and tests use it; a host may override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels (not interpreted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (not interpreted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-set and other standard metadata (`creationTimestamp`, `uid`,
    /// `resourceVersion`, ...), accepted as exported manifests carry them
    /// and not interpreted.
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, Value>,
}

/// The standard `metadata` fields besides name, namespace, labels and
/// annotations.
const OTHER_META: &[&str] = &[
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "managedFields",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

impl Meta {
    /// Refuses fields that are not Kubernetes object metadata.
    pub(crate) fn check_fields(&self) -> Result<(), String> {
        match self
            .other
            .keys()
            .find(|k| !OTHER_META.contains(&k.as_str()))
        {
            Some(k) => Err(format!("unknown field `{k}`")),
            None => Ok(()),
        }
    }
}

/// A reference to another object by name and optional namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedRef {
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent (the referrer's when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.policy.semver`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemVerPolicy {
    /// A Masterminds/semver range, e.g. `>=1.2.0 <1.3.0`.
    pub range: String,
}

/// Sort order for alphabetical and numerical policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Ascending: the last in ascending order wins (the default).
    #[default]
    Asc,
    /// Descending: the first in ascending order wins.
    Desc,
}

/// `spec.policy.alphabetical` / `spec.policy.numerical`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderPolicy {
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub order: Order,
}

/// `spec.policy`: exactly one of the three.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyChoice {
    /// Semver range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemVerPolicy>,
    /// Alphabetical order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<OrderPolicy>,
    /// Numerical order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical: Option<OrderPolicy>,
}

/// `spec.filterTags`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterTags {
    /// A regular expression (RE2 syntax) that tags must match.
    #[serde(default)]
    pub pattern: String,
    /// A replacement such as `$ts` or `${version}` whose expansion is the
    /// value the policy orders; empty means the tag itself.
    #[serde(default)]
    pub extract: String,
}

/// `spec` of an ImagePolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagePolicySpec {
    /// The ImageRepository whose tags are considered.
    pub image_repository_ref: NamespacedRef,
    /// How the latest tag is chosen.
    pub policy: PolicyChoice,
    /// Which tags take part, and what of them is ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<FilterTags>,
    /// `Never` (default), `IfNotPresent` or `Always`: digests are not
    /// resolved by driftless itself; a [`TagSource`](super::TagSource)
    /// that knows digests supplies them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_reflection_policy: Option<String>,
    /// Reconcile interval (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Suspension flag (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// An `ImagePolicy` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePolicy {
    /// `apiVersion` as written.
    pub api_version: String,
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: ImagePolicySpec,
}

/// `spec` of an ImageRepository (the fields the automation uses; the
/// registry-access fields are accepted and ignored because tags come from a
/// [`TagSource`](super::TagSource)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRepositorySpec {
    /// The image name, e.g. `ghcr.io/organization/app1`.
    pub image: String,
    /// Regular expressions; matching tags are dropped. `None` means the
    /// default `^.*\.sig$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion_list: Option<Vec<String>>,
    /// Scan interval (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Scan timeout (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Registry credentials (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<Value>,
    /// Service account (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// TLS material (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<Value>,
    /// Proxy (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<Value>,
    /// Plain-HTTP registry (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Cloud provider for auto-login (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Access control (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_from: Option<Value>,
    /// Suspension flag (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// An `ImageRepository` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRepository {
    /// `apiVersion` as written.
    pub api_version: String,
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: ImageRepositorySpec,
}

/// The image objects found in a set of files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageObjects {
    /// Policies, in file then document order.
    pub policies: Vec<ImagePolicy>,
    /// Repositories, in file then document order.
    pub repositories: Vec<ImageRepository>,
}

/// The namespace assumed when an object names none.
pub const DEFAULT_NAMESPACE: &str = "flux-system";

impl Meta {
    /// The namespace, `flux-system` when omitted.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

struct Ctx<'a> {
    file: &'a str,
    kind: &'a str,
    object: String,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            file: self.file.to_string(),
            kind: self.kind.to_string(),
            object: self.object.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn take<T: serde::de::DeserializeOwned>(
        &self,
        obj: &serde_json::Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Result<Option<T>, PolicyError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| self.err(path, e.to_string())),
        }
    }
}

fn check_keys(
    ctx: &Ctx<'_>,
    obj: &serde_json::Map<String, Value>,
    path: &str,
    allowed: &[&str],
) -> Result<(), PolicyError> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ctx.err(
                path,
                format!("unknown field `{k}`, expected one of {allowed:?}"),
            ));
        }
    }
    Ok(())
}

impl ImageObjects {
    /// Reads every `ImagePolicy` and `ImageRepository` of the image API
    /// group from one YAML file; other documents are skipped.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), PolicyError> {
        let docs = crate::yaml::load_documents(file, text, &crate::yaml::YamlLimits::default())
            .map_err(|e| PolicyError::Invalid {
                file: file.to_string(),
                kind: "document".into(),
                object: "?".into(),
                field: "-".into(),
                message: e.to_string(),
            })?;
        for doc in docs {
            let Value::Object(map) = &doc else { continue };
            let api = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
            if !api.starts_with(&format!("{IMAGE_GROUP}/"))
                || !matches!(kind, "ImagePolicy" | "ImageRepository")
            {
                continue;
            }
            let mut ctx = Ctx {
                file,
                kind,
                object: "?".into(),
            };
            if !IMAGE_API_VERSIONS.contains(&api) {
                return Err(ctx.err(
                    "apiVersion",
                    format!("unsupported version {api:?}, expected one of {IMAGE_API_VERSIONS:?}"),
                ));
            }
            check_keys(
                &ctx,
                map,
                "",
                &["apiVersion", "kind", "metadata", "spec", "status"],
            )?;
            let metadata: Meta = ctx
                .take(map, "metadata", "metadata")?
                .ok_or_else(|| ctx.err("metadata", "missing"))?;
            if metadata.name.is_empty() {
                return Err(ctx.err("metadata.name", "must not be empty"));
            }
            metadata
                .check_fields()
                .map_err(|m| ctx.err("metadata", m))?;
            ctx.object = format!("{}/{}", metadata.ns(), metadata.name);
            let Some(Value::Object(spec)) = map.get("spec") else {
                return Err(ctx.err("spec", "missing or not a map"));
            };
            if kind == "ImagePolicy" {
                let spec = read_policy_spec(&ctx, spec)?;
                self.policies.push(ImagePolicy {
                    api_version: api.to_string(),
                    metadata,
                    spec,
                });
            } else {
                let spec: ImageRepositorySpec = serde_json::from_value(Value::Object(spec.clone()))
                    .map_err(|e| ctx.err("spec", e.to_string()))?;
                if spec.image.trim().is_empty() {
                    return Err(ctx.err("spec.image", "must not be empty"));
                }
                for (i, pat) in spec.exclusion_list.iter().flatten().enumerate() {
                    Regex::new(pat)
                        .map_err(|e| ctx.err(&format!("spec.exclusionList[{i}]"), e.to_string()))?;
                }
                self.repositories.push(ImageRepository {
                    api_version: api.to_string(),
                    metadata,
                    spec,
                });
            }
        }
        Ok(())
    }

    /// The repository a policy refers to.
    pub fn repository_for(&self, policy: &ImagePolicy) -> Option<&ImageRepository> {
        let r = &policy.spec.image_repository_ref;
        let ns = r.namespace.as_deref().unwrap_or(policy.metadata.ns());
        self.repositories
            .iter()
            .find(|repo| repo.metadata.name == r.name && repo.metadata.ns() == ns)
    }
}

fn read_policy_spec(
    ctx: &Ctx<'_>,
    spec: &serde_json::Map<String, Value>,
) -> Result<ImagePolicySpec, PolicyError> {
    check_keys(
        ctx,
        spec,
        "spec",
        &[
            "imageRepositoryRef",
            "policy",
            "filterTags",
            "digestReflectionPolicy",
            "interval",
            "suspend",
        ],
    )?;
    let image_repository_ref: NamespacedRef = ctx
        .take(spec, "imageRepositoryRef", "spec.imageRepositoryRef")?
        .ok_or_else(|| ctx.err("spec.imageRepositoryRef", "missing"))?;
    let Some(Value::Object(pol)) = spec.get("policy") else {
        return Err(ctx.err("spec.policy", "missing or not a map"));
    };
    check_keys(
        ctx,
        pol,
        "spec.policy",
        &["semver", "alphabetical", "numerical"],
    )?;
    let policy = PolicyChoice {
        semver: ctx.take(pol, "semver", "spec.policy.semver")?,
        alphabetical: ctx.take(pol, "alphabetical", "spec.policy.alphabetical")?,
        numerical: ctx.take(pol, "numerical", "spec.policy.numerical")?,
    };
    let count = [
        policy.semver.is_some(),
        policy.alphabetical.is_some(),
        policy.numerical.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        return Err(ctx.err(
            "spec.policy",
            "exactly one of semver, alphabetical or numerical must be set",
        ));
    }
    if let Some(s) = &policy.semver {
        Range::parse(&s.range).map_err(|e| ctx.err("spec.policy.semver.range", e.to_string()))?;
    }
    let filter_tags: Option<FilterTags> = ctx.take(spec, "filterTags", "spec.filterTags")?;
    if let Some(f) = &filter_tags {
        Regex::new(&f.pattern).map_err(|e| ctx.err("spec.filterTags.pattern", e.to_string()))?;
    }
    let digest_reflection_policy: Option<String> = ctx.take(
        spec,
        "digestReflectionPolicy",
        "spec.digestReflectionPolicy",
    )?;
    if let Some(d) = &digest_reflection_policy {
        if !matches!(d.as_str(), "Never" | "IfNotPresent" | "Always") {
            return Err(ctx.err(
                "spec.digestReflectionPolicy",
                format!("{d:?} is not one of Never, IfNotPresent, Always"),
            ));
        }
    }
    Ok(ImagePolicySpec {
        image_repository_ref,
        policy,
        filter_tags,
        digest_reflection_policy,
        interval: ctx.take(spec, "interval", "spec.interval")?,
        suspend: ctx.take(spec, "suspend", "spec.suspend")?,
    })
}

/// Drops the tags an ImageRepository excludes (`exclusionList`, default
/// `^.*\.sig$`). Invalid patterns were refused when the object was read; a
/// pattern that still fails to compile excludes nothing.
pub fn apply_exclusions<'a>(repo: Option<&ImageRepository>, tags: &'a [String]) -> Vec<&'a String> {
    let default = [DEFAULT_EXCLUSION.to_string()];
    let list: &[String] = repo
        .and_then(|r| r.spec.exclusion_list.as_deref())
        .unwrap_or(&default);
    let res: Vec<Regex> = list.iter().filter_map(|p| Regex::new(p).ok()).collect();
    tags.iter()
        .filter(|t| !res.iter().any(|r| r.is_match(t)))
        .collect()
}

impl ImagePolicy {
    /// `namespace:name`, the form the setter markers use.
    pub fn setter_name(&self) -> String {
        format!("{}:{}", self.metadata.ns(), self.metadata.name)
    }

    /// Chooses the latest tag from `tags` with Flux's rules:
    ///
    /// 1. `filterTags.pattern` keeps matching tags; `extract` (Go's
    ///    `Regexp.Expand` syntax: `$1`, `$name`, `${name}`) turns each into
    ///    the value that is ordered. When two tags extract to the same value
    ///    the later one wins, as in Flux.
    /// 2. `semver`: values that parse as strict semver (optional leading
    ///    `v`) and satisfy the range; the highest wins, ties keep the first.
    /// 3. `alphabetical`: byte-wise order; `asc` picks the last.
    /// 4. `numerical`: every value must parse as a float (a value that does
    ///    not is an error, as in Flux); `asc` picks the greatest.
    ///
    /// Returns the original tag.
    pub fn latest<'a>(&self, image: &str, tags: &[&'a String]) -> Result<&'a str, PolicyError> {
        let no_match = |reason: Option<String>| PolicyError::NoMatch {
            policy: format!("{}/{}", self.metadata.ns(), self.metadata.name),
            image: image.to_string(),
            reason,
        };
        // (value, original) pairs, de-duplicated on value keeping the last
        let mut candidates: Vec<(String, &'a str)> = Vec::new();
        match &self.spec.filter_tags {
            Some(f) if !f.pattern.is_empty() || !f.extract.is_empty() => {
                let re = Regex::new(&f.pattern)
                    .map_err(|e| no_match(Some(format!("spec.filterTags.pattern: {e}"))))?;
                let mut by_value: BTreeMap<String, usize> = BTreeMap::new();
                for tag in tags {
                    let Some(caps) = re.captures(tag) else {
                        continue;
                    };
                    let value = if f.extract.is_empty() {
                        tag.to_string()
                    } else {
                        let mut out = String::new();
                        caps.expand(&f.extract, &mut out);
                        out
                    };
                    match by_value.get(&value) {
                        Some(&i) => {
                            if let Some(slot) = candidates.get_mut(i) {
                                slot.1 = tag.as_str();
                            }
                        }
                        None => {
                            by_value.insert(value.clone(), candidates.len());
                            candidates.push((value, tag.as_str()));
                        }
                    }
                }
            }
            _ => candidates = tags.iter().map(|t| (t.to_string(), t.as_str())).collect(),
        }
        if candidates.is_empty() {
            return Err(no_match(None));
        }
        let p = &self.spec.policy;
        if let Some(s) = &p.semver {
            let range = Range::parse(&s.range)
                .map_err(|e| no_match(Some(format!("spec.policy.semver.range: {e}"))))?;
            let mut best: Option<(semver::Version, &'a str)> = None;
            for (value, orig) in &candidates {
                let Some(v) = parse_tag(value) else { continue };
                if !range.matches(&v) {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((b, _)) => v.cmp_precedence(b) == std::cmp::Ordering::Greater,
                };
                if better {
                    best = Some((v, orig));
                }
            }
            return best.map(|(_, o)| o).ok_or_else(|| no_match(None));
        }
        if let Some(a) = &p.alphabetical {
            let pick = match a.order {
                Order::Asc => candidates.iter().max_by(|x, y| x.0.cmp(&y.0)),
                Order::Desc => candidates.iter().min_by(|x, y| x.0.cmp(&y.0)),
            };
            return pick.map(|(_, o)| *o).ok_or_else(|| no_match(None));
        }
        if let Some(n) = &p.numerical {
            let mut best: Option<(f64, &'a str)> = None;
            for (value, orig) in &candidates {
                let v = parse_go_float(value).ok_or_else(|| {
                    no_match(Some(format!(
                        "failed to parse invalid numeric value '{value}'"
                    )))
                })?;
                let replace = match best {
                    None => true,
                    // Flux keeps the later of equal values.
                    Some((b, _)) => match n.order {
                        Order::Asc => v >= b,
                        Order::Desc => v <= b,
                    },
                };
                if replace {
                    best = Some((v, orig));
                }
            }
            return best.map(|(_, o)| o).ok_or_else(|| no_match(None));
        }
        Err(no_match(Some("spec.policy names no strategy".into())))
    }
}

/// Parses a number the way Go's `strconv.ParseFloat(s, 64)` accepts
/// common tag values: decimal, with optional sign, fraction and exponent,
/// underscores not allowed. NaN/Inf spellings are refused.
fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: &str) -> ImagePolicy {
        let text = format!(
            "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app1\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: app1\n{spec}"
        );
        let mut objs = ImageObjects::default();
        objs.add_file("p.yaml", &text).unwrap();
        objs.policies.remove(0)
    }

    fn pick(p: &ImagePolicy, tags: &[&str]) -> Result<String, PolicyError> {
        let owned: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
        let refs = apply_exclusions(None, &owned);
        p.latest("img", &refs).map(str::to_string)
    }

    #[test]
    fn issue_example_selects_v1_2_7() {
        let p = policy("  policy:\n    semver:\n      range: '>=1.2.0 <1.3.0'\n");
        let got = pick(&p, &["v1.1.9", "v1.2.0", "v1.2.7", "v1.3.0", "v1.2.8-rc.1"]).unwrap();
        assert_eq!(got, "v1.2.7");
    }

    #[test]
    fn alphabetical_and_numerical_orders() {
        let asc = policy("  policy:\n    alphabetical:\n      order: asc\n");
        assert_eq!(pick(&asc, &["b", "c", "a"]).unwrap(), "c");
        let desc = policy("  policy:\n    alphabetical:\n      order: desc\n");
        assert_eq!(pick(&desc, &["b", "c", "a"]).unwrap(), "a");
        let num = policy("  policy:\n    numerical: {}\n");
        assert_eq!(pick(&num, &["9", "10", "2.5"]).unwrap(), "10");
        let numd = policy("  policy:\n    numerical:\n      order: desc\n");
        assert_eq!(pick(&numd, &["9", "10", "2.5"]).unwrap(), "2.5");
        assert!(matches!(
            pick(&num, &["9", "latest"]),
            Err(PolicyError::NoMatch {
                reason: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn filter_tags_extract_named_and_numbered_groups() {
        let p = policy(
            "  filterTags:\n    pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'\n    extract: '$ts'\n  policy:\n    numerical:\n      order: asc\n",
        );
        let tags = [
            "main-abc123-1700000009",
            "main-def456-1700000100",
            "feature-x-1800000000",
            "main-aaa111-999",
        ];
        assert_eq!(pick(&p, &tags).unwrap(), "main-def456-1700000100");
        let p2 = policy(
            "  filterTags:\n    pattern: '^v(\\d+\\.\\d+\\.\\d+)-linux$'\n    extract: '${1}'\n  policy:\n    semver:\n      range: '^1.0'\n",
        );
        assert_eq!(
            pick(
                &p2,
                &[
                    "v1.2.0-linux",
                    "v1.9.1-linux",
                    "v1.9.2-windows",
                    "v2.0.0-linux"
                ]
            )
            .unwrap(),
            "v1.9.1-linux"
        );
    }

    #[test]
    fn exclusion_list_default_drops_signatures() {
        let p = policy("  policy:\n    alphabetical: {}\n");
        assert_eq!(pick(&p, &["sha256-abc.sig", "a", "b"]).unwrap(), "b");
    }

    #[test]
    fn unknown_fields_are_named() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app1\nspec:\n  imageRepositoryRef:\n    name: app1\n  policy:\n    semver:\n      rnage: '1.x'\n";
        let err = ImageObjects::default()
            .add_file("p.yaml", text)
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("p.yaml"), "{msg}");
        assert!(msg.contains("flux-system/app1"), "{msg}");
        assert!(msg.contains("spec.policy.semver"), "{msg}");
        assert!(msg.contains("rnage"), "{msg}");
        let text2 = text.replace("policy:\n    semver:\n      rnage: '1.x'", "polcy: {}");
        let msg2 = ImageObjects::default()
            .add_file("p.yaml", &text2)
            .unwrap_err()
            .to_string();
        assert!(msg2.contains("polcy"), "{msg2}");
        // exported manifests carry server metadata: accepted; typos are not
        let text3 = text2
            .replace("polcy: {}", "policy:\n    alphabetical: {}")
            .replace(
                "  name: app1\nspec",
                "  name: app1\n  creationTimestamp: null\nspec",
            );
        ImageObjects::default().add_file("p.yaml", &text3).unwrap();
        let text4 = text3.replace("creationTimestamp", "lables");
        let msg4 = ImageObjects::default()
            .add_file("p.yaml", &text4)
            .unwrap_err()
            .to_string();
        assert!(
            msg4.contains("metadata") && msg4.contains("lables"),
            "{msg4}"
        );
    }

    #[test]
    fn two_strategies_or_bad_range_are_refused() {
        let text = "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: a\nspec:\n  imageRepositoryRef:\n    name: a\n  policy:\n    semver:\n      range: '>= banana'\n";
        let e = ImageObjects::default()
            .add_file("p.yaml", text)
            .unwrap_err();
        assert!(e.to_string().contains("spec.policy.semver.range"), "{e}");
        let two = text.replace("range: '>= banana'", "range: '1.x'\n    numerical: {}");
        let e = ImageObjects::default()
            .add_file("p.yaml", &two)
            .unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
    }
}
