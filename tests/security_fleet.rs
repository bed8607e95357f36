//! The fleet's security wiring: `spec.decryption` with the age keys of a
//! Secret read through the Applier, and the tenant boundary added for a
//! Kustomization that impersonates a ServiceAccount of a tenant's namespace.

#![cfg(all(feature = "sops", feature = "metrics"))]

mod sops_support;

use std::collections::BTreeMap;
use std::path::Path;

use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{FleetContext, FleetOptions, NoEvents, SourceBinding, VirtualClock};
use driftless::object::{Object, ObjectId};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::source::{DirSource, GitRef};
use driftless::verify::danger::NoVerification;
use futures::executor::block_on;
use sops_support::{encrypt, keygen};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const SYNC: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m
  ref:
    branch: main
  url: ssh://git@example.com/fleet
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: secrets
  namespace: flux-system
spec:
  interval: 10m
  path: ./secrets
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  decryption:
    provider: sops
    secretRef:
      name: sops-age
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: tenant
  namespace: team-a
spec:
  interval: 10m
  path: ./tenant
  prune: true
  targetNamespace: team-a
  serviceAccountName: team-a-reconciler
  sourceRef:
    kind: GitRepository
    name: flux-system
    namespace: flux-system
";

#[test]
fn fleet_decrypts_with_secret_ref_keys_and_fences_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let enc = encrypt(
        dir.path(),
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: flux-system\nstringData:\n  password: fleet-hunter2\n",
        &key.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    let repo = dir.path().join("repo");
    write(
        &repo,
        &[
            ("clusters/test/sync.yaml", SYNC),
            ("secrets/secret.yaml", &enc),
            (
                "tenant/crb.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: take-over\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: team-a-reconciler, namespace: team-a}]\n",
            ),
        ],
    );
    let cluster = MemoryCluster::new();
    let keys = std::fs::read_to_string(&key.file).unwrap();
    let secret = Object::new(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": "flux-system"},
        "stringData": {"age.agekey": keys},
    }))
    .unwrap();
    block_on(cluster.apply(&secret, &ApplyOptions::default())).unwrap();

    let source = DirSource::new(&repo);
    let renderer = Kustomize::new(KustomizeOptions::flux());
    let options = FleetOptions {
        cluster_path: "clusters/test".to_string(),
        ..FleetOptions::default()
    };
    let mut sources = BTreeMap::new();
    sources.insert(
        options.root_source.clone(),
        SourceBinding {
            source: &source,
            reference: GitRef::branch("main"),
            verifier: Some(&NoVerification),
        },
    );
    let clock = VirtualClock::new(std::time::Duration::from_secs(1_800_000_000));
    let ctx = FleetContext {
        sources,
        verifiers: None,
        renderer: &renderer,
        applier: &cluster,
        clock: &clock,
        events: &NoEvents,
        metrics: None,
        schema: Schema::kubernetes(),
    };
    let report = block_on(ctx.reconcile(&options)).unwrap();
    let by_key: BTreeMap<&str, _> = report.results.iter().map(|r| (r.key.as_str(), r)).collect();

    let secrets = by_key["flux-system/secrets"];
    assert!(secrets.ready, "{}", secrets.message);
    let live = block_on(cluster.get(&ObjectId::new("", "Secret", "flux-system", "db")))
        .unwrap()
        .unwrap();
    let text = serde_json::to_string(live.value()).unwrap();
    assert!(
        text.contains("fleet-hunter2") || text.contains("ZmxlZXQtaHVudGVyMg=="),
        "{text}"
    );

    let tenant = by_key["team-a/tenant"];
    assert!(!tenant.ready);
    assert!(
        tenant.message.contains("ClusterRoleBinding/take-over"),
        "{}",
        tenant.message
    );
    assert!(
        tenant.message.contains("tenant-boundary"),
        "{}",
        tenant.message
    );
    let crb = ObjectId::new(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "",
        "take-over",
    );
    assert!(block_on(cluster.get(&crb)).unwrap().is_none());
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("fleet-hunter2"));
}
