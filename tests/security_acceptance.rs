//! Acceptance for issue 6: in each case nothing is applied and the error
//! names the object (or the file, where no object can be read).

#![cfg(feature = "sops")]

mod sops_support;

use std::path::Path;
use std::sync::Arc;

use driftless::apply::{Applier, MemoryCluster};
use driftless::object::ObjectId;
use driftless::pipeline::{ReconcileError, ReconcileOptions, Reconciler};
use driftless::policy::{Kyverno, PolicySet, TenantBoundary};
use driftless::render::kustomize::{Kustomize, KustomizeOptions};
use driftless::schema::Schema;
use driftless::sops::{AgeIdentities, SecretRules, SopsDecryptor};
use driftless::source::DirSource;
use driftless::verify::danger::NoVerification;
use futures::executor::block_on;
use sops_support::{encrypt, keygen, AgeKey};

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n";
const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata:\n  a: b\n";

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn renderer(key: Option<&AgeKey>) -> Kustomize {
    let decryptor = key.map(|k| {
        let text = std::fs::read_to_string(&k.file).unwrap();
        Arc::new(SopsDecryptor::new(
            AgeIdentities::parse("age.agekey", &text).unwrap(),
        )) as Arc<dyn driftless::sops::Decrypt>
    });
    Kustomize::new(KustomizeOptions {
        flux: true,
        secrets: SecretRules::refuse_plaintext(decryptor),
        ..KustomizeOptions::default()
    })
}

fn run(
    root: &Path,
    renderer: &Kustomize,
    cluster: &MemoryCluster,
    policies: PolicySet,
    dry_run: bool,
) -> Result<driftless::pipeline::ReconcileReport, ReconcileError> {
    let source = DirSource::new(root);
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer,
        applier: cluster,
        schema: Schema::kubernetes(),
    };
    block_on(r.reconcile(&ReconcileOptions {
        path: "app".to_string(),
        dry_run,
        policies,
        ..ReconcileOptions::default()
    }))
}

fn nothing_applied(cluster: &MemoryCluster) {
    let id = ObjectId::new("", "ConfigMap", "apps", "settings");
    assert!(
        block_on(cluster.get(&id)).unwrap().is_none(),
        "something was applied"
    );
    let ns = ObjectId::new("", "Namespace", "", "apps");
    assert!(
        block_on(cluster.get(&ns)).unwrap().is_none(),
        "something was applied"
    );
}

#[test]
fn plaintext_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [ns.yaml, cm.yaml, secret.yaml]\n"),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            (
                "app/secret.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\nstringData:\n  password: hunter2\n",
            ),
        ],
    );
    let cluster = MemoryCluster::new();
    let err = run(
        dir.path(),
        &renderer(None),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    let ReconcileError::Render(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.object.as_deref(), Some("Secret/apps/db"), "{err}");
    assert_eq!(e.file, "app/secret.yaml");
    assert!(!err.to_string().contains("hunter2"));
    nothing_applied(&cluster);

    // a secretGenerator with literals is plaintext too
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [ns.yaml, cm.yaml]\nsecretGenerator:\n- name: gen\n  namespace: apps\n  literals: [password=hunter2]\n"),
        ],
    );
    let err = run(
        dir.path(),
        &renderer(None),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    // named as it is built: the generated Secret, with its hash suffix
    assert!(
        err.to_string()
            .contains("app/kustomization.yaml: Secret/apps/gen-"),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    nothing_applied(&cluster);

    // the host may allow a path explicitly
    let mut allowed = renderer(None);
    allowed.options.secrets.allow_plaintext = vec!["app".to_string()];
    run(dir.path(), &allowed, &cluster, PolicySet::default(), false).unwrap();
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
type: Opaque
stringData:
  password: FIRST-hunter2
";

#[test]
fn sops_secret_decrypts_applies_and_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    let enc = encrypt(dir.path(), "secret.yaml", SECRET, &key.recipient, &regex);
    let env = encrypt(
        dir.path(),
        "creds.env",
        "TOKEN=FIRST-token\n",
        &key.recipient,
        &[],
    );
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, secret.yaml]\nsecretGenerator:\n- name: creds\n  namespace: apps\n  envs: [creds.env]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            ("app/secret.yaml", &enc),
            ("app/creds.env", &env),
        ],
    );
    let cluster = MemoryCluster::new();
    let r = renderer(Some(&key));
    run(dir.path(), &r, &cluster, PolicySet::default(), false).unwrap();
    let live = block_on(cluster.get(&ObjectId::new("", "Secret", "apps", "db")))
        .unwrap()
        .expect("the Secret is applied");
    let text = serde_json::to_string(live.value()).unwrap();
    assert!(
        text.contains("FIRST-hunter2") || text.contains("RklSU1QtaHVudGVyMg=="),
        "{text}"
    );
    assert!(live.value().get("sops").is_none());

    // a new value: the dry-run's change set and plan show it masked
    let enc2 = encrypt(
        dir.path(),
        "secret.yaml",
        &SECRET.replace("FIRST", "SECOND"),
        &key.recipient,
        &regex,
    );
    write(dir.path(), &[("app/secret.yaml", &enc2)]);
    let report = run(dir.path(), &r, &cluster, PolicySet::default(), true).unwrap();
    let entry = report
        .changes
        .entries
        .iter()
        .find(|e| e.subject == "Secret/apps/db")
        .unwrap();
    assert!(!entry.drift.is_empty());
    let shown = format!(
        "{}\n{}\n{:?}",
        report.changes,
        serde_json::to_string(&report.changes).unwrap(),
        report.plan
    );
    for secret in [
        "FIRST-hunter2",
        "SECOND-hunter2",
        "U0VDT05ELWh1bnRlcjI=",
        "RklSU1QtaHVudGVyMg==",
    ] {
        assert!(!shown.contains(secret), "{secret} shows in {shown}");
    }
    assert!(shown.contains("*** (after)"), "{shown}");
}

#[test]
fn tampered_sops_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let enc = encrypt(
        dir.path(),
        "secret.yaml",
        SECRET,
        &key.recipient,
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    let tampered = enc.replace("type: Opaque", "type: kubernetes.io/basic-auth");
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, secret.yaml]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            ("app/secret.yaml", &tampered),
        ],
    );
    let cluster = MemoryCluster::new();
    let err = run(
        dir.path(),
        &renderer(Some(&key)),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    let ReconcileError::Render(e) = &err else {
        panic!("{err}")
    };
    assert!(e.message.contains("MAC mismatch"), "{err}");
    assert_eq!(e.file, "app/secret.yaml");
    assert_eq!(e.object.as_deref(), Some("Secret/apps/db"), "{err}");
    nothing_applied(&cluster);
}

const REQUIRE_LABELS: &str = "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-labels
spec:
  validationFailureAction: Enforce
  rules:
    - name: require-team-label
      match:
        resources:
          kinds: [Deployment, Service]
      validate:
        message: \"The label 'team' is required\"
        pattern:
          metadata:
            labels:
              team: \"?*\"
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

#[test]
fn require_labels_blocks_a_deployment_without_team() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [ns.yaml, cm.yaml, policy.yaml, deploy.yaml, svc.yaml]\n"),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            ("app/policy.yaml", REQUIRE_LABELS),
            ("app/deploy.yaml", DEPLOYMENT),
            (
                "app/svc.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: apps\n  labels: {team: a}\nspec:\n  ports: [{port: 80}]\n",
            ),
        ],
    );
    let cluster = MemoryCluster::new();
    let mut policies = PolicySet::default();
    policies.push(Kyverno::default());
    let err = run(
        dir.path(),
        &renderer(None),
        &cluster,
        policies.clone(),
        false,
    )
    .unwrap_err();
    let ReconcileError::Policy(e) = &err else {
        panic!("{err}")
    };
    let subjects: Vec<&str> = e.violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["Deployment/apps/web"], "{err}");
    assert!(
        err.to_string().contains("The label 'team' is required"),
        "{err}"
    );
    assert!(err.to_string().contains("metadata.labels.team"), "{err}");
    nothing_applied(&cluster);

    // Audit only warns; the policy as a live object (not rendered) counts too
    let live = driftless::object::Object::new(
        driftless::yaml::from_str::<serde_json::Value>(
            "p",
            &REQUIRE_LABELS.replace("Enforce", "Audit"),
        )
        .unwrap(),
    )
    .unwrap();
    write(
        dir.path(),
        &[(
            "app/kustomization.yaml",
            "resources: [ns.yaml, cm.yaml, deploy.yaml]\n",
        )],
    );
    let mut policies = PolicySet::default();
    policies.push(Kyverno::new(vec![live]));
    let report = run(dir.path(), &renderer(None), &cluster, policies, true).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("Deployment/apps/web")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn tenant_cluster_role_binding_is_refused_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [cm.yaml, crb.yaml]\n"),
            ("app/cm.yaml", CONFIGMAP),
            (
                "app/crb.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: take-over\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: tenant, namespace: apps}]\n",
            ),
        ],
    );
    let cluster = MemoryCluster::new();
    let mut policies = PolicySet::default();
    policies.push(TenantBoundary {
        namespace: "apps".to_string(),
        tenant: "Kustomization/apps/tenant".to_string(),
        schema: Schema::kubernetes(),
    });
    let err = run(dir.path(), &renderer(None), &cluster, policies, false).unwrap_err();
    let ReconcileError::Policy(e) = &err else {
        panic!("{err}")
    };
    let subjects: Vec<&str> = e.violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["ClusterRoleBinding/take-over"], "{err}");
    nothing_applied(&cluster);
}

#[cfg(unix)]
#[test]
fn symlink_to_etc_passwd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, passwd.yaml]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
        ],
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("app/passwd.yaml")).unwrap();
    let cluster = MemoryCluster::new();
    let err = run(
        dir.path(),
        &renderer(None),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("app/passwd.yaml"), "{msg}");
    assert!(!msg.contains("root:x:0"), "{msg}");
    nothing_applied(&cluster);
}

#[test]
fn alias_bomb_fails_fast() {
    let mut bomb = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: apps\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, bomb.yaml]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            ("app/bomb.yaml", &bomb),
        ],
    );
    let cluster = MemoryCluster::new();
    let err = run(
        dir.path(),
        &renderer(None),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    let ReconcileError::Render(e) = &err else {
        panic!("{err}")
    };
    assert!(e.file.starts_with("app/bomb.yaml"), "{err}");
    nothing_applied(&cluster);
}

#[test]
fn disabled_decryption_does_not_smuggle_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    // a plaintext Secret dressed up with a fake sops block
    let fake = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\n  annotations:\n    kustomize.toolkit.fluxcd.io/decrypt: Disabled\nstringData:\n  password: hunter2\nsops:\n  mac: x\n  lastmodified: \"2026-01-01T00:00:00Z\"\n";
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, secret.yaml]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/cm.yaml", CONFIGMAP),
            ("app/secret.yaml", fake),
        ],
    );
    let cluster = MemoryCluster::new();
    let err = run(
        dir.path(),
        &renderer(Some(&key)),
        &cluster,
        PolicySet::default(),
        false,
    )
    .unwrap_err();
    let ReconcileError::Render(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.object.as_deref(), Some("Secret/apps/db"), "{err}");
    nothing_applied(&cluster);
}
