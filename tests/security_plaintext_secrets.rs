//! The plaintext-Secret rule holds on the final objects of a build (issue
//! 17, H2 and M1): whatever channel carries a plaintext value into a
//! Secret (a `List`, a patch of any kind, a replacement, post-build
//! substitution, a generator input that only looks encrypted, a value a
//! SOPS file left in clear), the build is refused, the error names the
//! file, the Secret and the field (never the value), and nothing is
//! applied. Values SOPS really encrypted (files made by the real `sops`)
//! pass, and so do the paths the host allows.
//!
//! Every refusal test first builds the same tree with the rule off and
//! checks the plaintext value does reach the Secret: the channel is real.

#![cfg(all(feature = "sops", feature = "metrics"))]

mod sops_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::fleet::{
    FleetContext, FleetOptions, FleetReport, NoEvents, SourceBinding, VirtualClock,
};
use driftless::object::{Object, ObjectId};
use driftless::pipeline::{ReconcileError, ReconcileOptions, Reconciler};
use driftless::render::kustomize::{build, Kustomize, KustomizeOptions};
use driftless::render::RenderError;
use driftless::schema::Schema;
use driftless::sops::{AgeIdentities, Decrypt, SecretRules, SopsDecryptor};
use driftless::source::{DirSource, GitRef, Source};
use driftless::verify::danger::NoVerification;
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::Value;
use sops_support::{encrypt, keygen, AgeKey};

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n";
const EMPTY_SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\ntype: Opaque\n";
const PASSWORD: &str = "hunter2";

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn decryptor(key: &AgeKey) -> Arc<dyn Decrypt> {
    let text = std::fs::read_to_string(&key.file).unwrap();
    Arc::new(SopsDecryptor::new(
        AgeIdentities::parse("age.agekey", &text).unwrap(),
    ))
}

fn options(key: Option<&AgeKey>, allow: &[&str]) -> KustomizeOptions {
    let mut secrets = SecretRules::refuse_plaintext(key.map(decryptor));
    secrets.allow_plaintext = allow.iter().map(|s| s.to_string()).collect();
    KustomizeOptions {
        flux: true,
        secrets,
        ..KustomizeOptions::default()
    }
}

/// Runs the single-folder pipeline on `root/app`.
fn reconcile(
    root: &Path,
    options: KustomizeOptions,
    cluster: &MemoryCluster,
) -> Result<driftless::pipeline::ReconcileReport, ReconcileError> {
    let source = DirSource::new(root);
    let renderer = Kustomize::new(options);
    let r = Reconciler {
        source: &source,
        verifier: &NoVerification,
        renderer: &renderer,
        applier: cluster,
        schema: Schema::kubernetes(),
    };
    block_on(r.reconcile(&ReconcileOptions {
        path: "app".to_string(),
        ..ReconcileOptions::default()
    }))
}

fn secret_value(o: &Object, field: &str, key: &str) -> Option<String> {
    let v = o.value().get(field)?.get(key)?.as_str()?;
    Some(if field == "data" {
        use base64::Engine as _;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).ok()?).ok()?
    } else {
        v.to_string()
    })
}

/// The tree at `root` with the rule off: the Secret `name` carries
/// `hunter2` at `field` (the channel really delivers the value).
fn delivers_plaintext(root: &Path, name: &str, field: &str) {
    let tree = block_on(DirSource::new(root).fetch(&GitRef::default()))
        .unwrap()
        .tree;
    let out = build(&tree, "app", &KustomizeOptions::flux()).unwrap();
    let (f, k) = field.split_once('.').unwrap();
    let secret = out
        .objects
        .iter()
        .find(|o| o.kind() == "Secret" && o.name().starts_with(name))
        .unwrap_or_else(|| panic!("no Secret {name} in {:?}", out.objects));
    assert_eq!(
        secret_value(secret, f, k).as_deref(),
        Some(PASSWORD),
        "{secret:?}"
    );
}

/// Asserts the rule refuses `root/app` through the pipeline: a render
/// error naming `file`, the Secret and `field`, never the value, and no
/// write at all.
fn refused(
    root: &Path,
    key: Option<&AgeKey>,
    file: &str,
    object: &str,
    field: &str,
) -> RenderError {
    let cluster = MemoryCluster::new();
    let err = reconcile(root, options(key, &[]), &cluster).unwrap_err();
    let ReconcileError::Render(e) = &err else {
        panic!("not a render error: {err}")
    };
    assert_eq!(e.file, file, "{err}");
    assert_eq!(e.object.as_deref(), Some(object), "{err}");
    assert_eq!(e.field.as_deref(), Some(field), "{err}");
    assert!(e.message.starts_with("plaintext Secret"), "{err}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    for id in [
        ObjectId::new("", "Namespace", "", "apps"),
        ObjectId::new("", "Secret", "apps", "db"),
        ObjectId::new("", "ConfigMap", "apps", "settings"),
    ] {
        assert!(
            block_on(cluster.get(&id)).unwrap().is_none(),
            "{} was applied",
            id.subject()
        );
    }
    e.clone()
}

#[test]
fn a_secret_inside_a_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app/kustomization.yaml", "resources: [ns.yaml, list.yaml]\n"),
            ("app/ns.yaml", NAMESPACE),
            (
                "app/list.yaml",
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: db\n    namespace: apps\n  data:\n    password: aHVudGVyMg==\n",
            ),
        ],
    );
    delivers_plaintext(dir.path(), "db", "data.password");
    refused(
        dir.path(),
        None,
        "app/list.yaml",
        "Secret/apps/db",
        "data.password",
    );
    // a typed list and a list inside a list too
    write(
        dir.path(),
        &[(
            "app/list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: SecretList\n  items:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: db\n      namespace: apps\n    stringData:\n      password: hunter2\n",
        )],
    );
    delivers_plaintext(dir.path(), "db", "stringData.password");
    refused(
        dir.path(),
        None,
        "app/list.yaml",
        "Secret/apps/db",
        "stringData.password",
    );
}

#[test]
fn a_strategic_merge_patch_adding_string_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, secret.yaml]\npatches:\n- patch: |\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: db\n      namespace: apps\n    stringData:\n      password: hunter2\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/secret.yaml", EMPTY_SECRET),
        ],
    );
    delivers_plaintext(dir.path(), "db", "stringData.password");
    refused(
        dir.path(),
        None,
        "app/secret.yaml",
        "Secret/apps/db",
        "stringData.password",
    );
}

#[test]
fn a_json6902_add_of_string_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, secret.yaml]\npatches:\n- target: {kind: Secret, name: db}\n  patch: '[{\"op\": \"add\", \"path\": \"/stringData\", \"value\": {\"password\": \"hunter2\"}}]'\npatchesJson6902:\n- target: {version: v1, kind: Secret, name: db}\n  path: ops.yaml\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/secret.yaml", EMPTY_SECRET),
            ("app/ops.yaml", "- op: add\n  path: /data\n  value: {token: aHVudGVyMg==}\n"),
        ],
    );
    delivers_plaintext(dir.path(), "db", "stringData.password");
    delivers_plaintext(dir.path(), "db", "data.token");
    refused(
        dir.path(),
        None,
        "app/secret.yaml",
        "Secret/apps/db",
        "data.token",
    );
}

#[test]
fn patches_strategic_merge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, secret.yaml]\npatchesStrategicMerge:\n- patch.yaml\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/secret.yaml", EMPTY_SECRET),
            (
                "app/patch.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\nstringData:\n  password: hunter2\n",
            ),
        ],
    );
    delivers_plaintext(dir.path(), "db", "stringData.password");
    refused(
        dir.path(),
        None,
        "app/secret.yaml",
        "Secret/apps/db",
        "stringData.password",
    );
}

#[test]
fn a_replacement_creating_string_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, cm.yaml, secret.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: settings, fieldPath: data.a}\n  targets:\n  - select: {kind: Secret, name: db}\n    fieldPaths: [stringData.password]\n    options: {create: true}\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            (
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata:\n  a: hunter2\n",
            ),
            ("app/secret.yaml", EMPTY_SECRET),
        ],
    );
    delivers_plaintext(dir.path(), "db", "stringData.password");
    refused(
        dir.path(),
        None,
        "app/secret.yaml",
        "Secret/apps/db",
        "stringData.password",
    );
}

#[test]
fn generator_inputs_that_only_look_encrypted_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    for (input, text) in [
        (
            "creds.env",
            "password=hunter2\nsops_mac=ENC[AES256_GCM,data:x]\n",
        ),
        ("creds.yaml", "password: hunter2\nsops:\n  mac: x\n"),
    ] {
        let entry = if input.ends_with(".env") {
            format!("envs: [{input}]")
        } else {
            format!("files: [password={input}]")
        };
        write(
            dir.path(),
            &[
                (
                    "app/kustomization.yaml",
                    &format!("resources: [ns.yaml]\nsecretGenerator:\n- name: db\n  namespace: apps\n  {entry}\n"),
                ),
                ("app/ns.yaml", NAMESPACE),
                (&format!("app/{input}"), text),
            ],
        );
        let tree = block_on(DirSource::new(dir.path()).fetch(&GitRef::default()))
            .unwrap()
            .tree;
        let out = build(&tree, "app", &KustomizeOptions::flux()).unwrap();
        let secret = out.objects.iter().find(|o| o.kind() == "Secret").unwrap();
        assert!(
            secret_value(secret, "data", "password")
                .unwrap()
                .contains(PASSWORD),
            "{secret:?}"
        );
        // no decryptor: refused, never used as if it were ciphertext
        let cluster = MemoryCluster::new();
        let err = reconcile(dir.path(), options(None, &[]), &cluster).unwrap_err();
        let s = err.to_string();
        assert!(s.contains(&format!("app/{input}")), "{s}");
        assert!(s.contains("no decryption is configured"), "{s}");
        assert!(!s.contains(PASSWORD), "{s}");
        assert!(
            block_on(cluster.get(&ObjectId::new("", "Namespace", "", "apps")))
                .unwrap()
                .is_none()
        );
        // a decryptor: the file is not a SOPS file
        let err = reconcile(dir.path(), options(Some(&key), &[]), &cluster).unwrap_err();
        assert!(err.to_string().contains(&format!("app/{input}")), "{err}");
        assert!(!err.to_string().contains(PASSWORD), "{err}");
        std::fs::remove_file(dir.path().join("app").join(input)).unwrap();
    }
}

const TWO_VALUES: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
type: Opaque
stringData:
  password: s3cr3t-value
  username: hunter2
";

#[test]
fn values_sops_left_in_clear_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    for extra in [
        &["--encrypted-regex", "^password$"][..],
        &["--unencrypted-regex", "^username$"][..],
        &["--encrypted-suffix", "word"][..],
    ] {
        let enc = encrypt(dir.path(), "secret.yaml", TWO_VALUES, &key.recipient, extra);
        assert!(enc.contains(PASSWORD), "{extra:?}: username left in clear");
        write(
            dir.path(),
            &[
                (
                    "app/kustomization.yaml",
                    "resources: [ns.yaml, secret.yaml]\n",
                ),
                ("app/ns.yaml", NAMESPACE),
                ("app/secret.yaml", &enc),
            ],
        );
        let e = refused(
            dir.path(),
            Some(&key),
            "app/secret.yaml",
            "Secret/apps/db",
            "stringData.username",
        );
        assert!(e.message.contains("left this value unencrypted"), "{e}");
    }
    // an unencrypted suffix on the key
    let enc = encrypt(
        dir.path(),
        "secret.yaml",
        &TWO_VALUES.replace("username:", "username_plain:"),
        &key.recipient,
        &["--unencrypted-suffix", "_plain"],
    );
    write(dir.path(), &[("app/secret.yaml", &enc)]);
    refused(
        dir.path(),
        Some(&key),
        "app/secret.yaml",
        "Secret/apps/db",
        "stringData.username_plain",
    );

    // generator inputs: a dotenv key left in clear, and a whole file
    // whose values are partly in clear
    let env = encrypt(
        dir.path(),
        "creds.env",
        "TOKEN=s3cr3t-value\nUSER=hunter2\n",
        &key.recipient,
        &["--unencrypted-regex", "^USER$"],
    );
    let conf = encrypt(
        dir.path(),
        "conf.yaml",
        "token: s3cr3t-value\nuser: hunter2\n",
        &key.recipient,
        &["--encrypted-regex", "^token$"],
    );
    for (entry, field) in [
        ("envs: [creds.env]", "data.USER"),
        ("files: [conf.yaml]", "data.conf.yaml"),
    ] {
        write(
            dir.path(),
            &[
                (
                    "app/kustomization.yaml",
                    &format!("resources: [ns.yaml]\nsecretGenerator:\n- name: db\n  namespace: apps\n  {entry}\n  options: {{disableNameSuffixHash: true}}\n"),
                ),
                ("app/creds.env", &env),
                ("app/conf.yaml", &conf),
            ],
        );
        refused(
            dir.path(),
            Some(&key),
            "app/kustomization.yaml",
            "Secret/apps/db",
            field,
        );
    }
}

#[test]
fn values_sops_encrypted_pass_with_metadata_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    let secret = encrypt(
        dir.path(),
        "secret.yaml",
        TWO_VALUES,
        &key.recipient,
        &regex,
    );
    // a List of Secrets, encrypted as a whole
    let list = encrypt(
        dir.path(),
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: listed\n    namespace: apps\n  data:\n    token: c2VhbGVk\n    empty: \"\"\n",
        &key.recipient,
        &regex,
    );
    let env = encrypt(
        dir.path(),
        "creds.env",
        "TOKEN=s3cr3t-token\nEMPTY=\n",
        &key.recipient,
        &[],
    );
    let cert = encrypt(
        dir.path(),
        "tls.yaml",
        "key: s3cr3t-key\n",
        &key.recipient,
        &[],
    );
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "namePrefix: p-\nresources: [ns.yaml, secret.yaml, list.yaml, copy.yaml]
secretGenerator:
- name: creds
  namespace: apps
  envs: [creds.env]
- name: tls
  namespace: apps
  type: kubernetes.io/tls
  files: [tls.key=tls.yaml, tls.crt=tls.yaml]
- name: no-values
  namespace: apps
  type: example.com/no-values
  options: {immutable: true}
- name: blank
  namespace: apps
  literals: [password=]
replacements:
- source: {kind: Secret, name: db, fieldPath: stringData.password}
  targets:
  - select: {kind: Secret, name: copy}
    fieldPaths: [stringData.password]
    options: {create: true}
",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/secret.yaml", &secret),
            ("app/list.yaml", &list),
            ("app/creds.env", &env),
            ("app/tls.yaml", &cert),
            (
                "app/copy.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: copy\n  namespace: apps\n",
            ),
        ],
    );
    let cluster = MemoryCluster::new();
    let report = reconcile(dir.path(), options(Some(&key), &[]), &cluster).unwrap();
    let created = report
        .changes
        .entries
        .iter()
        .filter(|e| e.id.kind == "Secret")
        .count();
    assert_eq!(created, 7, "{}", report.changes);
    let live = |name: &str| {
        block_on(cluster.get(&ObjectId::new("", "Secret", "apps", name)))
            .unwrap()
            .unwrap_or_else(|| panic!("Secret {name} not applied"))
    };
    let copy = serde_json::to_string(live("p-copy").value()).unwrap();
    assert!(
        copy.contains("s3cr3t-value") || copy.contains("czNjcjN0LXZhbHVl"),
        "{copy}"
    );
    assert_eq!(
        secret_value(&live("p-listed"), "data", "token").as_deref(),
        Some("sealed")
    );
}

#[test]
fn a_patch_over_a_sops_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    let secret = encrypt(
        dir.path(),
        "secret.yaml",
        TWO_VALUES,
        &key.recipient,
        &regex,
    );
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, secret.yaml]\npatches:\n- patch: |\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: db\n      namespace: apps\n    stringData:\n      password: hunter2\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            ("app/secret.yaml", &secret),
        ],
    );
    let e = refused(
        dir.path(),
        Some(&key),
        "app/secret.yaml",
        "Secret/apps/db",
        "stringData.password",
    );
    assert!(e.message.contains("not the one SOPS decrypted"), "{e}");
}

#[test]
fn allowed_paths_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "app/kustomization.yaml",
                "resources: [ns.yaml, ../fixtures/list.yaml]\nsecretGenerator:\n- name: gen\n  namespace: apps\n  literals: [password=hunter2]\n",
            ),
            ("app/ns.yaml", NAMESPACE),
            (
                "fixtures/list.yaml",
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: db\n    namespace: apps\n  stringData:\n    password: hunter2\n",
            ),
        ],
    );
    // the generator's kustomization is not allowed: refused
    let cluster = MemoryCluster::new();
    let err = reconcile(dir.path(), options(None, &["fixtures"]), &cluster).unwrap_err();
    assert!(err.to_string().contains("app/kustomization.yaml"), "{err}");
    // both allowed: applied
    let report = reconcile(
        dir.path(),
        options(None, &["fixtures/", "app/kustomization.yaml"]),
        &cluster,
    )
    .unwrap();
    assert_eq!(report.changes.count(driftless::plan::Action::Created), 3);
}

// ---- post-build substitution, through the fleet ----

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
  name: app
  namespace: flux-system
spec:
  interval: 10m
  path: ./app
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  decryption:
    provider: sops
    secretRef:
      name: sops-age
  postBuild:
    substitute:
      KIND: Secret
      PASS: hunter2
";

fn fleet(repo: &Path, key: &AgeKey) -> (MemoryCluster, FleetReport) {
    let cluster = MemoryCluster::new();
    let keys = std::fs::read_to_string(&key.file).unwrap();
    let age = Object::new(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": "flux-system"},
        "stringData": {"age.agekey": keys},
    }))
    .unwrap();
    block_on(cluster.apply(&age, &ApplyOptions::default())).unwrap();
    let source = DirSource::new(repo);
    let renderer = Kustomize::new(options(None, &[]));
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
    (cluster, report)
}

#[test]
fn postbuild_substitution_making_a_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let repo = dir.path().join("repo");
    write(
        &repo,
        &[
            ("clusters/test/sync.yaml", SYNC),
            (
                "app/made.yaml",
                "apiVersion: v1\nkind: ${KIND}\nmetadata:\n  name: db\n  namespace: flux-system\nstringData:\n  password: hunter2\n",
            ),
        ],
    );
    let (cluster, report) = fleet(&repo, &key);
    let app = report.get("flux-system/app").unwrap();
    assert!(!app.ready);
    assert_eq!(app.reason, "BuildFailed", "{}", app.message);
    assert!(
        app.message.contains("app/made.yaml")
            && app.message.contains("Secret/flux-system/db")
            && app.message.contains("stringData.password"),
        "{}",
        app.message
    );
    assert!(!app.message.contains(PASSWORD));
    assert!(
        block_on(cluster.get(&ObjectId::new("", "Secret", "flux-system", "db")))
            .unwrap()
            .is_none()
    );
}

#[test]
fn postbuild_variables_in_sops_values_are_not_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "age.agekey");
    let repo = dir.path().join("repo");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    // escapes and defaults come from the ciphertext itself: they pass
    let own = encrypt(
        dir.path(),
        "own.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: own\n  namespace: flux-system\nstringData:\n  url: https://$${HOST}/x\n  user: ${UNSET:=admin}\n  ${KIND}_key: s3cr3t\n",
        &key.recipient,
        &regex,
    );
    write(
        &repo,
        &[("clusters/test/sync.yaml", SYNC), ("app/own.yaml", &own)],
    );
    let (cluster, report) = fleet(&repo, &key);
    let app = report.get("flux-system/app").unwrap();
    assert!(app.ready, "{}", app.message);
    let live = block_on(cluster.get(&ObjectId::new("", "Secret", "flux-system", "own")))
        .unwrap()
        .unwrap();
    let text = serde_json::to_string(live.value()).unwrap();
    assert!(text.contains("Secret_key"), "{text}");

    // a variable's value inside a SOPS value came from plaintext: refused
    let laundered = encrypt(
        dir.path(),
        "laundered.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: flux-system\nstringData:\n  password: ${PASS}\n",
        &key.recipient,
        &regex,
    );
    write(&repo, &[("app/laundered.yaml", &laundered)]);
    let (cluster, report) = fleet(&repo, &key);
    let app = report.get("flux-system/app").unwrap();
    assert!(!app.ready);
    assert!(
        app.message.contains("Secret/flux-system/db")
            && app.message.contains("stringData.password")
            && app.message.contains("not the one SOPS decrypted"),
        "{}",
        app.message
    );
    assert!(!app.message.contains(PASSWORD));
    assert!(
        block_on(cluster.get(&ObjectId::new("", "Secret", "flux-system", "db")))
            .unwrap()
            .is_none()
    );
}

// ---- the class: any build whose output carries a plaintext Secret value ----

/// One way of getting a value into the output, and where it lands.
#[derive(Clone, Debug)]
enum Channel {
    Plain,
    List,
    Smp,
    Json6902,
    LegacySmp,
    Replacement,
    Literal,
    EnvFile,
    KindChange,
    Empty,
}

fn channels() -> impl Strategy<Value = Channel> {
    prop_oneof![
        Just(Channel::Plain),
        Just(Channel::List),
        Just(Channel::Smp),
        Just(Channel::Json6902),
        Just(Channel::LegacySmp),
        Just(Channel::Replacement),
        Just(Channel::Literal),
        Just(Channel::EnvFile),
        Just(Channel::KindChange),
        Just(Channel::Empty),
    ]
}

/// A kustomization in `app/` delivering `value` to `field` of Secret `s<i>`
/// through each channel.
fn tree_for(cases: &[(Channel, bool, String)], prefix: &str) -> driftless::source::Tree {
    let mut tree = driftless::source::Tree::new();
    let mut k = format!("namePrefix: \"{prefix}\"\nresources:\n");
    let mut tail = String::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, (channel, data, value)) in cases.iter().enumerate() {
        let name = format!("s{i}");
        let (field, v) = if *data {
            use base64::Engine as _;
            (
                "data",
                base64::engine::general_purpose::STANDARD.encode(value),
            )
        } else {
            ("stringData", value.clone())
        };
        let empty = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n");
        let full = format!("{empty}{field}:\n  k: \"{v}\"\n");
        match channel {
            Channel::Plain => files.push((format!("{name}.yaml"), full)),
            Channel::Empty => files.push((
                format!("{name}.yaml"),
                format!("{empty}{field}:\n  k: \"\"\n"),
            )),
            Channel::List => files.push((
                format!("{name}.yaml"),
                format!(
                    "apiVersion: v1\nkind: List\nitems:\n- {}",
                    full.replace('\n', "\n  ").trim_end()
                ),
            )),
            Channel::Smp => {
                files.push((format!("{name}.yaml"), empty.clone()));
                tail.push_str(&format!(
                    "- target: {{kind: Secret, name: {name}}}\n  patch: '{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {{\"name\": \"{name}\"}}, \"{field}\": {{\"k\": \"{v}\"}}}}'\n"
                ));
            }
            Channel::Json6902 => {
                files.push((format!("{name}.yaml"), empty.clone()));
                tail.push_str(&format!(
                    "- target: {{kind: Secret, name: {name}}}\n  patch: '[{{\"op\": \"add\", \"path\": \"/{field}\", \"value\": {{\"k\": \"{v}\"}}}}]'\n"
                ));
            }
            Channel::LegacySmp => {
                files.push((format!("{name}.yaml"), empty.clone()));
                files.push((format!("{name}-patch.yaml"), full.clone()));
            }
            Channel::Replacement => {
                files.push((format!("{name}.yaml"), empty.clone()));
                files.push((
                    format!("{name}-src.yaml"),
                    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-src\ndata:\n  v: \"{v}\"\n"),
                ));
            }
            Channel::KindChange => files.push((
                format!("{name}.yaml"),
                full.replace("kind: Secret", "kind: ConfigMap"),
            )),
            Channel::Literal | Channel::EnvFile => {}
        }
    }
    for (f, _) in files.iter().filter(|(f, _)| !f.ends_with("-patch.yaml")) {
        k.push_str(&format!("- {f}\n"));
    }
    if files.is_empty() {
        k = k.replace("resources:\n", "resources: []\n");
    }
    if !tail.is_empty() {
        k.push_str("patches:\n");
        k.push_str(&tail);
    }
    let mut legacy = String::new();
    let mut replacements = String::new();
    let mut generators = String::new();
    let mut kind_changes = String::new();
    for (i, (channel, data, value)) in cases.iter().enumerate() {
        let name = format!("s{i}");
        let field = if *data { "data" } else { "stringData" };
        match channel {
            Channel::LegacySmp => legacy.push_str(&format!("- {name}-patch.yaml\n")),
            Channel::Replacement => replacements.push_str(&format!(
                "- source: {{kind: ConfigMap, name: {name}-src, fieldPath: data.v}}\n  targets:\n  - select: {{kind: Secret, name: {name}}}\n    fieldPaths: [{field}.k]\n    options: {{create: true}}\n"
            )),
            Channel::Literal => generators.push_str(&format!(
                "- name: {name}\n  literals: [\"k={value}\"]\n"
            )),
            Channel::EnvFile => {
                generators.push_str(&format!("- name: {name}\n  envs: [{name}.env]\n"));
                files.push((format!("{name}.env"), format!("k={value}\n")));
            }
            Channel::KindChange => kind_changes.push_str(&format!(
                "- target: {{kind: ConfigMap, name: {name}}}\n  options: {{allowKindChange: true}}\n  patch: '{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {{\"name\": \"{name}\"}}}}'\n"
            )),
            _ => {}
        }
    }
    if !kind_changes.is_empty() {
        if tail.is_empty() {
            k.push_str("patches:\n");
        }
        k.push_str(&kind_changes);
    }
    if !legacy.is_empty() {
        k.push_str("patchesStrategicMerge:\n");
        k.push_str(&legacy);
    }
    if !replacements.is_empty() {
        k.push_str("replacements:\n");
        k.push_str(&replacements);
    }
    if !generators.is_empty() {
        k.push_str("secretGenerator:\n");
        k.push_str(&generators);
    }
    tree.insert_file("app/kustomization.yaml", k.into_bytes())
        .unwrap();
    for (f, text) in files {
        tree.insert_file(&format!("app/{f}"), text.into_bytes())
            .unwrap();
    }
    tree
}

fn has_plaintext(objects: &[Object]) -> bool {
    objects.iter().filter(|o| o.kind() == "Secret").any(|o| {
        ["data", "stringData"].iter().any(|f| {
            o.value()
                .get(*f)
                .and_then(Value::as_object)
                .is_some_and(|m| m.values().any(|v| v.as_str() != Some("")))
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// With the rule on, a build succeeds exactly when its output (built
    /// with the rule off) holds no non-empty Secret value, and then its
    /// output is the same: the rule decides on the final objects only,
    /// whatever channel put the value there.
    #[test]
    fn the_rule_refuses_exactly_the_outputs_with_plaintext(
        cases in proptest::collection::vec(
            (channels(), any::<bool>(), "[a-z0-9]{0,6}"),
            1..5,
        ),
        prefix in "[a-z]{0,3}",
    ) {
        let tree = tree_for(&cases, &prefix);
        let off = build(&tree, "app", &KustomizeOptions::flux())
            .unwrap_or_else(|e| panic!("{e}\n{:?}", tree.read("app/kustomization.yaml").map(String::from_utf8_lossy)));
        let on = build(&tree, "app", &options(None, &[]));
        if has_plaintext(&off.objects) {
            let e = on.expect_err("a plaintext value passed");
            prop_assert!(e.message.starts_with("plaintext Secret"), "{e}");
        } else {
            let on = on.unwrap_or_else(|e| panic!("refused without plaintext: {e}"));
            prop_assert_eq!(&on.objects, &off.objects);
        }
        // the host's allow list covers the whole folder: never refused
        let allowed = build(&tree, "app", &options(None, &["app"])).unwrap();
        prop_assert_eq!(&allowed.objects, &off.objects);
    }
}
