//! Names never become paths outside the embedded cluster's state folder.
//!
//! Issue 17, C3 and L3: a CRD's `names.kind` (and an object's name and
//! namespace) used to be joined into a path as they were, so a CRD with
//! `names.kind: /tmp/x` wrote files anywhere, `Foo/..` made the state
//! unreadable, and names starting with `.` became hidden files that were
//! never read back. Now the cluster validates CRDs, names and namespaces as
//! the API server does (messages are the API server's, built from
//! apimachinery's validation), and the store encodes every path component
//! whatever it is given; a v1 folder (written before the encoding) loads
//! and is moved to the current layout by its first writer.

use std::fs;
use std::path::{Path, PathBuf};

use driftless::apply::memory::Durability;
use driftless::apply::{Applier, ApplyError, ApplyOptions, MemoryCluster};
use driftless::{Object, ObjectId};
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::{json, Value};

fn obj(v: Value) -> Object {
    Object::new(v).expect("valid test object")
}

fn apply(c: &impl Applier, o: &Object) -> Result<Object, ApplyError> {
    block_on(c.apply(o, &ApplyOptions::default()))
}

fn message(e: &ApplyError) -> String {
    match e {
        ApplyError::Invalid { message, .. }
        | ApplyError::Forbidden { message, .. }
        | ApplyError::Conflict { message, .. }
        | ApplyError::Unavailable { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn crd(group: &str, kind: &str, plural: &str) -> Object {
    obj(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": "thing", "listKind": "ThingList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true}],
        },
    }))
}

/// Every file below `root`, relative to it.
fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

const DNS_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The repro of the issue: CRDs whose kind is a path are refused with the
/// API server's message, and nothing is written outside the state folder.
#[test]
fn a_crd_kind_that_is_a_path_is_refused_and_writes_nothing_outside() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let c = MemoryCluster::open_with(&state, Durability::Process).unwrap();
    for kind in [
        "/tmp/x",
        "../../../../etc/y",
        "Foo/..",
        "..",
        ".Hidden",
        "Foo Bar",
    ] {
        let err = apply(&c, &crd("example.com", kind, "things")).unwrap_err();
        assert_eq!(
            message(&err),
            format!(
                "CustomResourceDefinition.apiextensions.k8s.io \"things.example.com\" is invalid: spec.names.kind: Invalid value: {kind:?}: may have mixed case, but should otherwise match: {DNS_1035}"
            ),
            "{kind}"
        );
        // The kind is not served: its objects are refused too.
        let w = obj(
            json!({"apiVersion": "example.com/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}}),
        );
        assert!(message(&apply(&c, &w).unwrap_err()).starts_with("no matches for kind"));
    }
    // Nothing but the state folder exists next to it; the folder reopens.
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        1,
        "{:?}",
        files(root.path())
    );
    drop(c);
    MemoryCluster::open_with(&state, Durability::Process).unwrap();
}

/// What the apiextensions API server checks in a CRD's names and group.
#[test]
fn crds_are_validated_as_the_api_server_does() {
    let c = MemoryCluster::new();
    let cases = [
        (
            crd("example", "Widget", "widgets"),
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot".to_string(),
        ),
        (
            crd("Example.com", "Widget", "widgets"),
            format!("[metadata.name: Invalid value: \"widgets.Example.com\": {SUBDOMAIN}, spec.group: Invalid value: \"Example.com\": {SUBDOMAIN}]"),
        ),
        (
            crd("example.com", "Widget", "Widgets"),
            format!("[metadata.name: Invalid value: \"Widgets.example.com\": {SUBDOMAIN}, spec.names.plural: Invalid value: \"Widgets\": {DNS_1035}]"),
        ),
    ];
    for (o, expected) in cases {
        let err = apply(&c, &o).unwrap_err();
        assert_eq!(
            message(&err),
            format!(
                "CustomResourceDefinition.apiextensions.k8s.io \"{}\" is invalid: {expected}",
                o.name()
            )
        );
    }
    // `singular` and `listKind` default to the lower-case kind and the
    // kind + `List` before they are checked, as in the v1 API.
    let mut defaulted = crd("example.com", "1Widget", "widgets");
    let names = defaulted.value_mut()["spec"]["names"]
        .as_object_mut()
        .unwrap();
    names.remove("singular");
    names.remove("listKind");
    assert_eq!(
        message(&apply(&c, &defaulted).unwrap_err()),
        format!("CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: [spec.names.singular: Invalid value: \"1widget\": {DNS_1035}, spec.names.kind: Invalid value: \"1Widget\": may have mixed case, but should otherwise match: {DNS_1035}, spec.names.listKind: Invalid value: \"1WidgetList\": may have mixed case, but should otherwise match: {DNS_1035}]")
    );
    let mut same = crd("example.com", "Widget", "widgets");
    same.value_mut()["spec"]["names"]["listKind"] = json!("Widget");
    assert!(message(&apply(&c, &same).unwrap_err()).ends_with(
        "spec.names.listKind: Invalid value: \"Widget\": kind and listKind may not be the same"
    ));
    let mut no_scope = crd("example.com", "Widget", "widgets");
    no_scope.value_mut()["spec"]
        .as_object_mut()
        .unwrap()
        .remove("scope");
    assert!(message(&apply(&c, &no_scope).unwrap_err()).ends_with("spec.scope: Required value"));
    let mut two_storage = crd("example.com", "Widget", "widgets");
    two_storage.value_mut()["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true},
        {"name": "v2", "served": true, "storage": true},
    ]);
    assert!(message(&apply(&c, &two_storage).unwrap_err())
        .contains("must have exactly one version marked as storage version"));
    // Dashes and digits are fine in kinds, as in Kubernetes.
    apply(&c, &crd("example.com", "Widget-V2", "widgets")).unwrap();
}

/// Names by kind: Namespaces are RFC 1123 labels, Services RFC 1035
/// labels, most kinds RFC 1123 subdomains (whose dot-separated parts may
/// be longer than 63 characters), RBAC names path segments.
#[test]
fn names_are_validated_per_kind() {
    let c = MemoryCluster::new();
    let svc = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert_eq!(
        message(&apply(&c, &svc).unwrap_err()),
        format!("Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": {DNS_1035}")
    );
    let cm = |name: &str| {
        obj(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}),
        )
    };
    let long = "a".repeat(254);
    assert_eq!(
        message(&apply(&c, &cm(&long)).unwrap_err()),
        format!("ConfigMap \"{long}\" is invalid: metadata.name: Invalid value: \"{long}\": must be no more than 253 characters")
    );
    let both = format!("{}_", "a".repeat(253));
    assert_eq!(
        message(&apply(&c, &cm(&both)).unwrap_err()),
        format!("ConfigMap \"{both}\" is invalid: [metadata.name: Invalid value: \"{both}\": must be no more than 253 characters, metadata.name: Invalid value: \"{both}\": {SUBDOMAIN}]")
    );
    let ns = obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}));
    assert_eq!(
        message(&apply(&c, &ns).unwrap_err()),
        "Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": must not contain dots"
    );
    // A 64-character part is a valid subdomain (only the whole is bounded),
    // and the longest valid name is stored and read back.
    let part = format!("{}.x", "a".repeat(64));
    apply(&c, &cm(&part)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let persisted = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    let longest = format!("{}.{}", "a".repeat(63), "b".repeat(189));
    assert_eq!(longest.len(), 253);
    apply(&persisted, &cm(&longest)).unwrap();
    drop(persisted);
    let reopened = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    assert!(reopened
        .object(&ObjectId::new("", "ConfigMap", "default", &longest))
        .is_some());
    // RBAC names may hold ':' and more, not '/' or '%'.
    for (name, reason) in [
        ("a/b", "may not contain '/'"),
        ("50%", "may not contain '%'"),
        ("..", "may not be '..'"),
    ] {
        let role = obj(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": []}),
        );
        assert_eq!(
            message(&apply(&c, &role).unwrap_err()),
            format!("ClusterRole.rbac.authorization.k8s.io {name:?} is invalid: metadata.name: Invalid value: {name:?}: {reason}")
        );
    }
}

/// L3: a name starting with `.` (legal for RBAC objects, not for most
/// kinds) is stored as a visible file, read back, and unchanged by the
/// next apply instead of created again.
#[test]
fn names_starting_with_a_dot_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let c = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    let role = obj(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ".hidden", "namespace": "default"}, "rules": [],
    }));
    let first = apply(&c, &role).unwrap();
    let cm = obj(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ".hidden", "namespace": "default"}}),
    );
    assert_eq!(
        message(&apply(&c, &cm).unwrap_err()),
        format!("ConfigMap \".hidden\" is invalid: metadata.name: Invalid value: \".hidden\": {SUBDOMAIN}")
    );
    drop(c);
    assert!(dir
        .path()
        .join("objects/rbac.authorization.k8s.io/Role/default/%2Ehidden.yaml")
        .is_file());
    let c = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    assert_eq!(c.object(&role.id()).as_ref(), Some(&first));
    let again = apply(&c, &role).unwrap();
    assert_eq!(again, first, "an unchanged object is not created again");
}

/// Kinds the host registers are not validated (the host is trusted), and
/// a state folder may hold anything a person wrote into it: the store
/// still keeps every path in the folder.
#[test]
fn host_registered_kinds_with_path_characters_stay_in_the_folder() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let c = MemoryCluster::open_with(&state, Durability::Process).unwrap();
    for (i, kind) in ["../../../../etc/y", "/tmp/x", "Foo/..", "..", "core", "~"]
        .iter()
        .enumerate()
    {
        let group = ["example.com", "..", "/abs", "core", "a/b", "x"][i];
        assert!(c.register_crd(&crd(group, kind, "things")));
        let w = obj(
            json!({"apiVersion": format!("{group}/v1"), "kind": kind, "metadata": {"name": "w", "namespace": "default"}}),
        );
        apply(&c, &w).unwrap();
    }
    let written = files(root.path());
    assert!(
        written.iter().all(|f| f.starts_with("state")),
        "{written:?}"
    );
    let before = c.objects();
    drop(c);
    let c = MemoryCluster::open_with(&state, Durability::Process).unwrap();
    assert_eq!(c.objects(), before);
}

/// A folder written by driftless before the encoding (format v1, made by
/// the previous release: a ClusterRole `oidc:alice@example.com`, a
/// ClusterRoleBinding `ops team`, a Role `rôle` and a Role `.hidden` that
/// v1 wrote as a hidden file and never read back) loads read-only as it is,
/// and its first writer moves each file to its encoded path.
#[test]
fn a_v1_state_folder_loads_and_is_moved_to_the_current_layout() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/memory-state-v1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let names = ["oidc:alice@example.com", "ops team", "rôle", ".hidden"];
    let ids = [
        ObjectId::new("rbac.authorization.k8s.io", "ClusterRole", "", names[0]),
        ObjectId::new(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "",
            names[1],
        ),
        ObjectId::new("rbac.authorization.k8s.io", "Role", "default", names[2]),
        ObjectId::new("rbac.authorization.k8s.io", "Role", "default", names[3]),
    ];
    let reader = MemoryCluster::open_read_only(dir.path()).unwrap();
    let seen: Vec<Object> = ids.iter().map(|id| reader.object(id).unwrap()).collect();
    let all = reader.objects();
    drop(reader);
    assert!(dir
        .path()
        .join("objects/rbac.authorization.k8s.io/ClusterRole/_cluster/oidc:alice@example.com.yaml")
        .is_file());

    let writer = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    assert_eq!(writer.objects(), all);
    let meta = fs::read_to_string(dir.path().join("cluster.yaml")).unwrap();
    assert!(
        meta.contains("format: driftless.memory-cluster/v2"),
        "{meta}"
    );
    for moved in [
        "objects/rbac.authorization.k8s.io/ClusterRole/_cluster/oidc:alice%40example.com.yaml",
        "objects/rbac.authorization.k8s.io/ClusterRoleBinding/_cluster/ops%20team.yaml",
        "objects/rbac.authorization.k8s.io/Role/default/r%C3%B4le.yaml",
        "objects/rbac.authorization.k8s.io/Role/default/%2Ehidden.yaml",
    ] {
        assert!(dir.path().join(moved).is_file(), "{moved}");
    }
    assert!(!dir
        .path()
        .join("objects/rbac.authorization.k8s.io/ClusterRole/_cluster/oidc:alice@example.com.yaml")
        .exists());
    // Applying the same objects again changes nothing.
    for o in &seen {
        let mut config = o.value().clone();
        let md = config["metadata"].as_object_mut().unwrap();
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            md.remove(k);
        }
        config.as_object_mut().unwrap().remove("status");
        assert_eq!(&apply(&writer, &obj(config)).unwrap(), o);
    }
    drop(writer);
    let again = MemoryCluster::open_with(dir.path(), Durability::Process).unwrap();
    assert_eq!(again.objects(), all);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Any string: path separators, dots, percent signs, control characters,
/// non-ASCII, and lengths past a file name's limit.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9./%:_ ~-]{1,12}",
        "\\PC{1,8}",
        Just("..".to_string()),
        Just(".".to_string()),
        Just("core".to_string()),
        Just("_cluster".to_string()),
        "[a-z%]{250,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the kinds, groups and names (host-registered kinds are not
    /// validated; RBAC names are any path segment), every file stays in
    /// the folder and every accepted object comes back after a reopen.
    #[test]
    fn arbitrary_kinds_and_names_stay_in_the_folder_and_round_trip(
        objects in proptest::collection::vec((any_text(), any_text(), any_text()), 1..6),
    ) {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        let c = MemoryCluster::open_with(&state, Durability::Process).unwrap();
        for (i, (kind, group, name)) in objects.iter().enumerate() {
            let group = format!("{}.g{i}", group.replace('/', "%2F"));
            let _ = c.register_crd(&crd(&group, kind, "things"));
            let custom = obj(json!({"apiVersion": format!("{group}/v1"), "kind": kind, "metadata": {"name": name, "namespace": "default"}}));
            let role = obj(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": []}));
            for o in [custom, role] {
                // Refused names are fine; accepted ones must round-trip.
                let _ = apply(&c, &o);
            }
        }
        let written = files(root.path());
        prop_assert!(written.iter().all(|f| f.starts_with("state")), "{:?}", written);
        let before = c.objects();
        drop(c);
        let reopened = MemoryCluster::open_with(&state, Durability::Process).unwrap();
        prop_assert_eq!(reopened.objects(), before);
    }
}
