//! `ImageUpdateAutomation` objects (`image.toolkit.fluxcd.io`): which
//! policies are in scope, which branch is checked out and pushed, who
//! commits, and the message template.
//!
//! Reading the object is pure. Turning it into a runnable
//! `automation::Automation` (feature `image-automation`) also needs the
//! remote URL (from the GitRepository the object's `sourceRef` names) and a
//! cache folder, which the host supplies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::policy::{ImageObjects, ImagePolicy, Meta, PolicyError, IMAGE_API_VERSIONS};

/// `spec.sourceRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    /// `GitRepository` (the only kind Flux supports).
    pub kind: String,
    /// Name of the GitRepository.
    pub name: String,
    /// Its namespace (the automation's when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its API version (not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// `spec.git.checkout.ref`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRef {
    /// Branch to check out (the only kind of reference supported here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Semver range (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Full ref name (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Commit (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `spec.git.checkout`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkout {
    /// The reference.
    #[serde(rename = "ref")]
    pub reference: CheckoutRef,
}

/// `spec.git.commit.author`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Author {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Email.
    pub email: String,
}

/// A reference to a Secret by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// `spec.git.commit.signingKey`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningKeyRef {
    /// The Secret holding the key; the host loads it and passes a signer.
    pub secret_ref: SecretRef,
}

/// `spec.git.commit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitSpec {
    /// Author and committer.
    pub author: Author,
    /// Signing key reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKeyRef>,
    /// Message template (Go template syntax, see
    /// [`template`](super::template)).
    #[serde(default)]
    pub message_template: String,
    /// Values available as `.Values`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message_template_values: BTreeMap<String, String>,
}

/// `spec.git.push`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushSpec {
    /// Branch to push to (Flux: the checkout branch when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Extra refspec (refused: not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refspec: Option<String>,
    /// Git push options (`git push -o key=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `spec.git`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSpec {
    /// What to check out (the GitRepository's ref when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    /// How to commit.
    pub commit: CommitSpec,
    /// Where to push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
}

/// `spec.update`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSpec {
    /// Folder the setters run over (default `.`).
    #[serde(default)]
    pub path: Option<String>,
    /// `Setters` (the only strategy).
    #[serde(default)]
    pub strategy: Option<String>,
}

/// A label selector requirement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `spec.policySelector` (a Kubernetes label selector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements that must all hold.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// True when `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let have = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => have.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => !have.is_some_and(|v| r.values.contains(v)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
    }
}

/// `spec` of an ImageUpdateAutomation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageUpdateAutomationSpec {
    /// The GitRepository to update.
    pub source_ref: SourceRef,
    /// Git settings.
    pub git: GitSpec,
    /// Run interval (accepted, not interpreted: the host schedules runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// What to update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSpec>,
    /// Which ImagePolicies (of the automation's namespace) are in scope;
    /// all when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_selector: Option<LabelSelector>,
    /// Suspension flag (accepted, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// An `ImageUpdateAutomation` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUpdateAutomation {
    /// `apiVersion` as written.
    pub api_version: String,
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: ImageUpdateAutomationSpec,
}

impl ImageUpdateAutomation {
    /// Reads the ImageUpdateAutomation objects of one YAML file (other
    /// documents are skipped). Unknown fields, unsupported checkout refs,
    /// `push.refspec` and strategies other than `Setters` are errors naming
    /// the file, the object and the field.
    pub fn from_yaml(file: &str, text: &str) -> Result<Vec<ImageUpdateAutomation>, PolicyError> {
        let docs = crate::yaml::load_documents(file, text, &crate::yaml::YamlLimits::default())
            .map_err(|e| invalid(file, "?", "-", e.to_string()))?;
        let mut out = Vec::new();
        for doc in docs {
            let Value::Object(map) = &doc else { continue };
            let api = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != "ImageUpdateAutomation" || !api.starts_with("image.toolkit.fluxcd.io/") {
                continue;
            }
            let name = map
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            if !IMAGE_API_VERSIONS.contains(&api) {
                return Err(invalid(
                    file,
                    name,
                    "apiVersion",
                    format!("unsupported version {api:?}"),
                ));
            }
            for k in map.keys() {
                if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&k.as_str()) {
                    return Err(invalid(file, name, "", format!("unknown field `{k}`")));
                }
            }
            let metadata: Meta =
                serde_json::from_value(map.get("metadata").cloned().unwrap_or(Value::Null))
                    .map_err(|e| invalid(file, name, "metadata", e.to_string()))?;
            let object = format!("{}/{}", metadata.ns(), metadata.name);
            metadata
                .check_fields()
                .map_err(|m| invalid(file, &object, "metadata", m))?;
            let spec_value = map.get("spec").cloned().unwrap_or(Value::Null);
            let spec = read_spec(file, &object, &spec_value)?;
            out.push(ImageUpdateAutomation {
                api_version: api.to_string(),
                metadata,
                spec,
            });
        }
        Ok(out)
    }

    /// The checkout branch.
    pub fn branch(&self) -> Option<&str> {
        self.spec
            .git
            .checkout
            .as_ref()
            .and_then(|c| c.reference.branch.as_deref())
    }

    /// The push branch: `spec.git.push.branch`, else (as in Flux) the
    /// checkout branch.
    pub fn push_branch(&self) -> Option<&str> {
        self.spec
            .git
            .push
            .as_ref()
            .and_then(|p| p.branch.as_deref())
            .or_else(|| self.branch())
    }

    /// `spec.update.path`, `.` when omitted.
    pub fn path(&self) -> &str {
        self.spec
            .update
            .as_ref()
            .and_then(|u| u.path.as_deref())
            .unwrap_or(".")
    }

    /// The policies in scope: those of the automation's namespace that the
    /// `policySelector` selects (all of the namespace when there is none).
    /// Repositories are kept as they are.
    pub fn in_scope(&self, objects: &ImageObjects) -> ImageObjects {
        let ns = self.metadata.ns();
        let keep = |p: &&ImagePolicy| {
            p.metadata.ns() == ns
                && self
                    .spec
                    .policy_selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&p.metadata.labels))
        };
        ImageObjects {
            policies: objects.policies.iter().filter(keep).cloned().collect(),
            repositories: objects.repositories.clone(),
        }
    }
}

fn invalid(file: &str, object: &str, field: &str, message: String) -> PolicyError {
    PolicyError::Invalid {
        file: file.to_string(),
        kind: "ImageUpdateAutomation".into(),
        object: object.to_string(),
        field: field.to_string(),
        message,
    }
}

fn read_spec(
    file: &str,
    object: &str,
    spec: &Value,
) -> Result<ImageUpdateAutomationSpec, PolicyError> {
    let Value::Object(map) = spec else {
        return Err(invalid(file, object, "spec", "missing or not a map".into()));
    };
    // Deserialize part by part so an error names the field path.
    let part = |key: &str| map.get(key).cloned().unwrap_or(Value::Null);
    let known = [
        "sourceRef",
        "git",
        "interval",
        "update",
        "policySelector",
        "suspend",
    ];
    for k in map.keys() {
        if !known.contains(&k.as_str()) {
            return Err(invalid(
                file,
                object,
                "spec",
                format!("unknown field `{k}`, expected one of {known:?}"),
            ));
        }
    }
    let source_ref: SourceRef = serde_json::from_value(part("sourceRef"))
        .map_err(|e| invalid(file, object, "spec.sourceRef", e.to_string()))?;
    if source_ref.kind != "GitRepository" {
        return Err(invalid(
            file,
            object,
            "spec.sourceRef.kind",
            format!("{:?} is not supported; only GitRepository", source_ref.kind),
        ));
    }
    let Value::Object(git) = part("git") else {
        return Err(invalid(
            file,
            object,
            "spec.git",
            "missing or not a map".into(),
        ));
    };
    let gpart = |key: &str| git.get(key).cloned().unwrap_or(Value::Null);
    for k in git.keys() {
        if !["checkout", "commit", "push"].contains(&k.as_str()) {
            return Err(invalid(
                file,
                object,
                "spec.git",
                format!("unknown field `{k}`"),
            ));
        }
    }
    let checkout: Option<Checkout> = serde_json::from_value(gpart("checkout"))
        .map_err(|e| invalid(file, object, "spec.git.checkout", e.to_string()))?;
    let commit: CommitSpec = serde_json::from_value(gpart("commit"))
        .map_err(|e| invalid(file, object, "spec.git.commit", e.to_string()))?;
    let push: Option<PushSpec> = serde_json::from_value(gpart("push"))
        .map_err(|e| invalid(file, object, "spec.git.push", e.to_string()))?;
    if let Some(c) = &checkout {
        let r = &c.reference;
        for (field, set) in [
            ("tag", r.tag.is_some()),
            ("semver", r.semver.is_some()),
            ("name", r.name.is_some()),
            ("commit", r.commit.is_some()),
        ] {
            if set {
                return Err(invalid(
                    file,
                    object,
                    &format!("spec.git.checkout.ref.{field}"),
                    "checking out anything but a branch is not supported".into(),
                ));
            }
        }
        if r.branch.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                file,
                object,
                "spec.git.checkout.ref.branch",
                "missing".into(),
            ));
        }
    }
    if push.as_ref().is_some_and(|p| p.refspec.is_some()) {
        return Err(invalid(
            file,
            object,
            "spec.git.push.refspec",
            "not supported".into(),
        ));
    }
    if commit.author.email.is_empty() {
        return Err(invalid(
            file,
            object,
            "spec.git.commit.author.email",
            "must not be empty".into(),
        ));
    }
    let update: Option<UpdateSpec> = serde_json::from_value(part("update"))
        .map_err(|e| invalid(file, object, "spec.update", e.to_string()))?;
    if let Some(s) = update.as_ref().and_then(|u| u.strategy.as_deref()) {
        if s != "Setters" {
            return Err(invalid(
                file,
                object,
                "spec.update.strategy",
                format!("{s:?} is not supported; only Setters"),
            ));
        }
    }
    let policy_selector: Option<LabelSelector> = serde_json::from_value(part("policySelector"))
        .map_err(|e| invalid(file, object, "spec.policySelector", e.to_string()))?;
    for (i, r) in policy_selector
        .iter()
        .flat_map(|s| s.match_expressions.iter())
        .enumerate()
    {
        if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&r.operator.as_str()) {
            return Err(invalid(
                file,
                object,
                &format!("spec.policySelector.matchExpressions[{i}].operator"),
                format!(
                    "{:?} is not one of In, NotIn, Exists, DoesNotExist",
                    r.operator
                ),
            ));
        }
    }
    Ok(ImageUpdateAutomationSpec {
        source_ref,
        git: GitSpec {
            checkout,
            commit,
            push,
        },
        interval: serde_json::from_value(part("interval"))
            .map_err(|e| invalid(file, object, "spec.interval", e.to_string()))?,
        update,
        policy_selector,
        suspend: serde_json::from_value(part("suspend"))
            .map_err(|e| invalid(file, object, "spec.suspend", e.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's apps/base/app1/image-update.yaml.
    const SEED: &str = r#"apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: app1
  namespace: flux-system
spec:
  interval: 1h
  sourceRef:
    kind: GitRepository
    name: flux-system-image-automation
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        email: fluxcdbot@users.noreply.github.com
        name: fluxcdbot
      signingKey:
        secretRef:
          name: flux-bot-gpg
      messageTemplate: 'Update app1 to {{.NewTag}}'
    push:
      branch: flux-image-updates
  update:
    path: ./apps/base/app1
    strategy: Setters
"#;

    #[test]
    fn seed_object_reads() {
        let a = ImageUpdateAutomation::from_yaml("image-update.yaml", SEED).unwrap();
        let a = &a[0];
        assert_eq!(a.branch(), Some("main"));
        assert_eq!(a.push_branch(), Some("flux-image-updates"));
        assert_eq!(a.path(), "./apps/base/app1");
        assert_eq!(a.spec.git.commit.author.name, "fluxcdbot");
        // The seed's template names a field Flux's data does not have.
        let data = super::super::TemplateData::default();
        let e =
            super::super::render_message(&a.spec.git.commit.message_template, &data).unwrap_err();
        assert!(e.to_string().contains("NewTag"), "{e}");
    }

    #[test]
    fn unsupported_and_unknown_fields_are_named() {
        let e =
            ImageUpdateAutomation::from_yaml("f.yaml", &SEED.replace("branch: main", "tag: v1"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("spec.git.checkout.ref.tag"), "{e}");
        let e = ImageUpdateAutomation::from_yaml(
            "f.yaml",
            &SEED.replace("strategy: Setters", "strategy: Other"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("spec.update.strategy"), "{e}");
        let e = ImageUpdateAutomation::from_yaml(
            "f.yaml",
            &SEED.replace("name: fluxcdbot", "nmae: fluxcdbot"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("f.yaml") && e.contains("spec.git.commit") && e.contains("nmae"),
            "{e}"
        );
    }

    #[test]
    fn selector_and_namespace_scope() {
        let mut objs = ImageObjects::default();
        let pol = |ns: &str, name: &str, team: &str| {
            format!("apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    team: {team}\nspec:\n  imageRepositoryRef:\n    name: r\n  policy:\n    alphabetical: {{}}\n")
        };
        objs.add_file("a", &pol("flux-system", "a", "x")).unwrap();
        objs.add_file("b", &pol("flux-system", "b", "y")).unwrap();
        objs.add_file("c", &pol("other", "c", "x")).unwrap();
        let with_sel = SEED.replace(
            "  interval: 1h\n",
            "  interval: 1h\n  policySelector:\n    matchLabels:\n      team: x\n",
        );
        let a = ImageUpdateAutomation::from_yaml("f", &with_sel)
            .unwrap()
            .remove(0);
        let names: Vec<String> = a
            .in_scope(&objs)
            .policies
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, vec!["a"]);
        let all = ImageUpdateAutomation::from_yaml("f", SEED)
            .unwrap()
            .remove(0);
        assert_eq!(all.in_scope(&objs).policies.len(), 2);
    }
}
