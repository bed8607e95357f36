//! Policy gates evaluated at plan time, on the rendered set, before any
//! call that writes to the cluster.
//!
//! A [`Policy`] looks at the whole rendered set and returns every
//! [`Violation`] at once. [`Severity::Enforce`] violations stop the
//! reconcile (nothing is applied); [`Severity::Audit`] ones only warn.
//!
//! Built-in policies: [`Kyverno`] (validate patterns of Kyverno
//! ClusterPolicies), [`PinnedCharts`] (HelmRelease chart versions),
//! [`ImageRangeBound`] (ImagePolicy semver ranges) and [`TenantBoundary`]
//! (a tenant's objects stay in its namespace).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::Object;
use crate::schema::Schema;

mod kyverno;
mod wildcard;

pub use kyverno::{is_kyverno_policy, Kyverno, KYVERNO_GROUP};
pub use wildcard::wildcard;

/// What a violation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Severity {
    /// Stops the reconcile: nothing is applied.
    Enforce,
    /// Reported as a warning only.
    Audit,
}

/// One object breaking one policy rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Violation {
    /// The object, `Kind/ns/name` or `Kind/name`.
    pub subject: String,
    /// The policy (and rule), e.g. `require-labels/require-team-label`.
    pub policy: String,
    /// What is wrong.
    pub message: String,
    /// Whether it blocks.
    pub severity: Severity,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: policy {}: {}",
            self.subject, self.policy, self.message
        )
    }
}

/// The violations that stopped a reconcile: every one found, sorted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} policy violation(s): {}", .violations.len(), .violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct PolicyError {
    /// The blocking violations.
    pub violations: Vec<Violation>,
}

/// When a policy runs. [`PolicySet::check`] runs the stages in this
/// order and stops after the first one with an `Enforce` violation: the
/// objects of a refused render are not evaluated any further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Stage {
    /// Who may create what, from the objects' ids only (the tenant
    /// boundary): cheap, and decides whether the render is refused.
    Boundary,
    /// Rules over the objects' content (Kyverno patterns, chart pins,
    /// image ranges), run on renders the boundary accepted.
    Content,
}

/// A gate over a rendered set.
pub trait Policy: Send + Sync + fmt::Debug {
    /// Every violation in `objects` (the whole rendered set).
    fn evaluate(&self, objects: &[Object]) -> Vec<Violation>;

    /// The stage the policy runs in; [`Stage::Content`] unless it looks
    /// at ids only.
    fn stage(&self) -> Stage {
        Stage::Content
    }
}

/// A list of policies, comparable by identity (so options holding it stay
/// `Eq`).
#[derive(Clone, Debug, Default)]
pub struct PolicySet(pub Vec<Arc<dyn Policy>>);

impl PartialEq for PolicySet {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for PolicySet {}

impl PolicySet {
    /// Adds a policy.
    pub fn push(&mut self, p: impl Policy + 'static) {
        self.0.push(Arc::new(p));
    }

    /// True when there is no policy.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the policies stage by stage ([`Stage`]). `Ok(warnings)` when
    /// nothing blocks (Audit violations as warning lines); `Err` with every
    /// Enforce violation of the first stage that has one. Later stages do
    /// not run over a render an earlier stage refused.
    pub fn check(&self, objects: &[Object]) -> Result<Vec<String>, PolicyError> {
        let mut warnings = Vec::new();
        for stage in [Stage::Boundary, Stage::Content] {
            let mut all: Vec<Violation> = self
                .0
                .iter()
                .filter(|p| p.stage() == stage)
                .flat_map(|p| p.evaluate(objects))
                .collect();
            all.sort();
            all.dedup();
            let (enforce, audit): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(|v| v.severity == Severity::Enforce);
            if !enforce.is_empty() {
                return Err(PolicyError {
                    violations: enforce,
                });
            }
            warnings.extend(audit.iter().map(|v| format!("policy warning: {v}")));
        }
        Ok(warnings)
    }
}

/// A HelmRelease must pin `spec.chart.spec.version`, and not to `*`
/// (the seed: "Pin your Helm chart versions").
#[derive(Clone, Debug, Default)]
pub struct PinnedCharts;

impl Policy for PinnedCharts {
    fn evaluate(&self, objects: &[Object]) -> Vec<Violation> {
        let mut out = Vec::new();
        for o in objects {
            if o.kind() != "HelmRelease" || o.group() != "helm.toolkit.fluxcd.io" {
                continue;
            }
            if o.pointer("/spec/chartRef").is_some() {
                continue;
            }
            let v = o
                .pointer("/spec/chart/spec/version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim();
            let bad = v.is_empty() || v == "*" || v == "x" || v == ">=0.0.0";
            if bad {
                out.push(Violation {
                    subject: o.id().subject(),
                    policy: "pinned-chart-version".to_string(),
                    message: format!(
                        "field spec.chart.spec.version must pin a chart version (found {:?})",
                        v
                    ),
                    severity: Severity::Enforce,
                });
            }
        }
        out
    }
}

/// How far an ImagePolicy's semver range may move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RangeWidth {
    /// Patch releases only (`~1.2.3`, `>=1.2.0 <1.3.0`).
    Patch,
    /// Minor and patch releases (`^1.2`).
    Minor,
    /// Anything, including new majors (`*`, `>=1.0.0`).
    Major,
}

/// ImagePolicy semver ranges wider than `bound` draw a warning (the seed:
/// "patch-only for anything that touches production").
#[derive(Clone, Debug)]
pub struct ImageRangeBound {
    /// The widest range accepted without a warning.
    pub bound: RangeWidth,
}

/// How far a semver range may move from its lowest version.
pub fn range_width(range: &str) -> Option<RangeWidth> {
    let req = semver::VersionReq::parse(range.trim()).ok()?;
    let base = req
        .comparators
        .iter()
        .find(|c| {
            matches!(
                c.op,
                semver::Op::Exact
                    | semver::Op::GreaterEq
                    | semver::Op::Tilde
                    | semver::Op::Caret
                    | semver::Op::Wildcard
            )
        })
        .map(|c| semver::Version::new(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0)))
        .unwrap_or_else(|| semver::Version::new(0, 0, 0));
    let bump = |maj: u64, min: u64| {
        semver::Version::new(
            base.major + maj,
            if maj > 0 { 0 } else { base.minor + min },
            0,
        )
    };
    if req.matches(&bump(1, 0)) {
        Some(RangeWidth::Major)
    } else if req.matches(&bump(0, 1)) {
        Some(RangeWidth::Minor)
    } else {
        Some(RangeWidth::Patch)
    }
}

impl Policy for ImageRangeBound {
    fn evaluate(&self, objects: &[Object]) -> Vec<Violation> {
        let mut out = Vec::new();
        for o in objects {
            if o.kind() != "ImagePolicy" || o.group() != "image.toolkit.fluxcd.io" {
                continue;
            }
            let Some(range) = o
                .pointer("/spec/policy/semver/range")
                .and_then(Value::as_str)
            else {
                continue;
            };
            let message = match range_width(range) {
                None => format!("field spec.policy.semver.range {range:?} is not a semver range"),
                Some(w) if w > self.bound => format!(
                    "field spec.policy.semver.range {range:?} allows {w:?} updates, wider than the bound ({:?})",
                    self.bound
                ),
                Some(_) => continue,
            };
            out.push(Violation {
                subject: o.id().subject(),
                policy: "image-range-bound".to_string(),
                message,
                severity: Severity::Audit,
            });
        }
        out
    }
}

/// A tenant (a Kustomization with `serviceAccountName`) may only produce
/// namespaced objects in its target namespace: no cluster-scoped kinds, no
/// other namespaces. Checked on the rendered set, for every backend.
#[derive(Clone, Debug)]
pub struct TenantBoundary {
    /// The tenant's namespace.
    pub namespace: String,
    /// Who the tenant is, for messages (e.g. the Kustomization).
    pub tenant: String,
    /// Scopes of kinds.
    pub schema: Schema,
}

impl Policy for TenantBoundary {
    fn stage(&self) -> Stage {
        Stage::Boundary
    }

    fn evaluate(&self, objects: &[Object]) -> Vec<Violation> {
        let mut out = Vec::new();
        for o in objects {
            let namespaced = self.schema.is_namespaced(o.group(), o.kind());
            let message = if !namespaced {
                format!(
                    "tenant {} may not create the cluster-scoped kind {}",
                    self.tenant,
                    o.kind()
                )
            } else if !o.namespace().is_empty() && o.namespace() != self.namespace {
                format!(
                    "tenant {} may only create objects in namespace {:?}, not {:?}",
                    self.tenant,
                    self.namespace,
                    o.namespace()
                )
            } else {
                continue;
            };
            out.push(Violation {
                subject: o.id().subject(),
                policy: "tenant-boundary".to_string(),
                message,
                severity: Severity::Enforce,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(yaml: &str) -> Object {
        Object::new(crate::yaml::from_str::<Value>("t", yaml).unwrap()).unwrap()
    }

    #[test]
    fn range_widths() {
        assert_eq!(range_width("~1.2.3"), Some(RangeWidth::Patch));
        assert_eq!(range_width(">=1.2.0, <1.3.0"), Some(RangeWidth::Patch));
        assert_eq!(range_width("^1.2"), Some(RangeWidth::Minor));
        assert_eq!(range_width("1.x"), Some(RangeWidth::Minor));
        assert_eq!(range_width(">=1.0.0"), Some(RangeWidth::Major));
        assert_eq!(range_width("*"), Some(RangeWidth::Major));
        assert_eq!(range_width("not a range"), None);
    }

    #[test]
    fn image_policy_wider_than_the_bound_warns() {
        let wide = obj("apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata: {name: app, namespace: flux-system}\nspec:\n  imageRepositoryRef: {name: app}\n  policy:\n    semver: {range: '>=1.0.0'}\n");
        let narrow = obj("apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata: {name: db, namespace: flux-system}\nspec:\n  imageRepositoryRef: {name: db}\n  policy:\n    semver: {range: '~5.4.0'}\n");
        let mut set = PolicySet::default();
        set.push(ImageRangeBound {
            bound: RangeWidth::Patch,
        });
        let warnings = set.check(&[wide, narrow]).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("ImagePolicy/flux-system/app"));
    }

    #[test]
    fn helm_releases_must_pin_chart_versions() {
        let mk = |name: &str, version: &str| {
            obj(&format!("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  chart:\n    spec:\n      chart: podinfo\n{version}      sourceRef: {{kind: HelmRepository, name: podinfo}}\n"))
        };
        let pinned = mk("a", "      version: 6.5.4\n");
        let star = mk("b", "      version: '*'\n");
        let missing = mk("c", "");
        let mut set = PolicySet::default();
        set.push(PinnedCharts);
        let err = set.check(&[pinned, star, missing]).unwrap_err();
        let subjects: Vec<&str> = err.violations.iter().map(|v| v.subject.as_str()).collect();
        assert_eq!(subjects, ["HelmRelease/apps/b", "HelmRelease/apps/c"]);
    }

    #[test]
    fn kyverno_any_exclude_and_alternatives() {
        let policy = obj("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: pull-policy}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: always\n    match:\n      any:\n      - resources: {kinds: [apps/v1/Deployment]}\n    exclude:\n      any:\n      - resources: {namespaces: [kube-*]}\n    validate:\n      message: pull policy\n      pattern:\n        spec:\n          template:\n            spec:\n              containers:\n              - imagePullPolicy: Always | IfNotPresent\n");
        let dep = |ns: &str, name: &str, pull: &str| {
            obj(&format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  template:\n    spec:\n      containers:\n      - {{name: c, image: x, imagePullPolicy: {pull}}}\n"))
        };
        let objects = vec![
            policy,
            dep("apps", "ok", "Always"),
            dep("apps", "alt", "IfNotPresent"),
            dep("apps", "bad", "Never"),
            dep("kube-system", "excluded", "Never"),
        ];
        let v = Kyverno::default().evaluate(&objects);
        let subjects: Vec<&str> = v.iter().map(|v| v.subject.as_str()).collect();
        assert_eq!(subjects, ["Deployment/apps/bad"]);
        assert!(v[0].message.contains("imagePullPolicy"), "{}", v[0].message);
    }
}
