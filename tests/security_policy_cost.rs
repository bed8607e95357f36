//! Policy evaluation costs no more than reading its input (issue 17, H8):
//! a render the tenant boundary refuses is not evaluated by the content
//! policies (Kyverno patterns) at all, and the Kyverno wildcard matcher
//! agrees with a regex reference while reading each character a bounded
//! number of times (`benches/policy.rs` measures it on the adversarial
//! input).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use driftless::apply::{Applier, MemoryCluster};
use driftless::object::{Object, ObjectId};
use driftless::pipeline::{ReconcileError, ReconcileOptions, Reconciler};
use driftless::policy::{wildcard, Kyverno, Policy, PolicySet, TenantBoundary, Violation};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::DirSource;
use driftless::verify::danger::NoVerification;
use futures::executor::block_on;
use proptest::prelude::*;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A content policy that counts how many renders it was asked to read.
#[derive(Debug, Default)]
struct Spy(Arc<AtomicUsize>);

impl Policy for Spy {
    fn evaluate(&self, _objects: &[Object]) -> Vec<Violation> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Vec::new()
    }
}

const POLICY: &str = "apiVersion: kyverno.io/v1
kind: Policy
metadata:
  name: blob-ends-in-b
  namespace: team-a
spec:
  validationFailureAction: Enforce
  rules:
  - name: blob
    match:
      any:
      - resources: {kinds: [ConfigMap]}
    validate:
      message: the blob must end in b
      pattern:
        data:
          blob: \"*aaaaaaaaaaaaaaaab\"
";

const CRB: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: take-over
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: team-a}]
";

fn run(root: &Path, cluster: &MemoryCluster, spy: &Arc<AtomicUsize>) -> Result<(), ReconcileError> {
    let source = DirSource::new(root);
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier: cluster,
        schema: Schema::kubernetes(),
    };
    let mut policies = PolicySet::default();
    // content policies first in the set: the order of the set does not
    // decide what runs first, the stage does
    policies.push(Kyverno::default());
    policies.push(Spy(spy.clone()));
    policies.push(TenantBoundary {
        namespace: "team-a".to_string(),
        tenant: "Kustomization/flux-system/team-a".to_string(),
        schema: Schema::kubernetes(),
    });
    block_on(r.reconcile(&ReconcileOptions {
        path: "tenant".to_string(),
        policies,
        ..ReconcileOptions::default()
    }))
    .map(|_| ())
}

#[test]
fn a_render_the_tenant_boundary_refuses_is_not_evaluated_further() {
    let dir = tempfile::tempdir().unwrap();
    let blob = "a".repeat(64 * 1024);
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: team-a\ndata:\n  blob: {blob}\n"
    );
    write(
        dir.path(),
        &[
            (
                "tenant/kustomization.yaml",
                "resources: [policy.yaml, cm.yaml, crb.yaml]\n",
            ),
            ("tenant/policy.yaml", POLICY),
            ("tenant/cm.yaml", &cm),
            ("tenant/crb.yaml", CRB),
        ],
    );
    let cluster = MemoryCluster::new();
    let spy = Arc::new(AtomicUsize::new(0));
    let err = run(dir.path(), &cluster, &spy).unwrap_err();
    let ReconcileError::Policy(p) = &err else {
        panic!("{err}")
    };
    let policies: Vec<&str> = p.violations.iter().map(|v| v.policy.as_str()).collect();
    assert_eq!(policies, ["tenant-boundary"], "{err}");
    assert_eq!(
        p.violations[0].subject, "ClusterRoleBinding/take-over",
        "{err}"
    );
    assert_eq!(
        spy.load(Ordering::SeqCst),
        0,
        "a content policy read the refused render"
    );
    let cm = ObjectId::new("", "ConfigMap", "team-a", "big");
    assert!(block_on(cluster.get(&cm)).unwrap().is_none());

    // within the boundary, the content policies run and report
    write(
        dir.path(),
        &[(
            "tenant/kustomization.yaml",
            "resources: [policy.yaml, cm.yaml]\n",
        )],
    );
    let err = run(dir.path(), &cluster, &spy).unwrap_err();
    let ReconcileError::Policy(p) = &err else {
        panic!("{err}")
    };
    assert_eq!(p.violations.len(), 1, "{err}");
    assert_eq!(p.violations[0].policy, "blob-ends-in-b/blob");
    assert_eq!(p.violations[0].subject, "ConfigMap/team-a/big");
    assert_eq!(spy.load(Ordering::SeqCst), 1);
    assert!(block_on(cluster.get(&cm)).unwrap().is_none());
}

/// The glob as a regex: the reference the matcher is checked against.
fn reference(pattern: &str, text: &str) -> bool {
    let mut re = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).unwrap().is_match(text)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Short patterns over a small alphabet (so they often match),
    /// multi-byte characters included.
    #[test]
    fn the_wildcard_agrees_with_a_regex_reference(
        pattern in "[ab*?é.]{0,12}",
        text in "[abé.]{0,24}",
    ) {
        prop_assert_eq!(wildcard(&pattern, &text), reference(&pattern, &text), "{:?} {:?}", pattern, text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Segments with `?` longer than a machine word, between stars.
    #[test]
    fn long_segments_agree_with_the_reference(
        head in "[a?]{0,3}",
        seg in "[aab?]{60,140}",
        tail in "[a?b]{0,3}",
        text in "[aaaab]{80,400}",
    ) {
        let pattern = format!("{head}*{seg}*{tail}");
        prop_assert_eq!(wildcard(&pattern, &text), reference(&pattern, &text));
        let planted = format!("{}{}{}", &text[..text.len() / 2], seg.replace('?', "b"), &text[text.len() / 2..]);
        let around = format!("*{}*", seg);
        prop_assert!(wildcard(&around, &planted));
    }
}
