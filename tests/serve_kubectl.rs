//! The embedded cluster served over HTTPS, with real kubectl as the oracle
//! that it speaks Kubernetes: every command must work and print what it
//! prints against a real API server (same lines, same exit codes).
//!
//! kubectl must be installed: these tests fail, not skip, without it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use driftless::apply::memory::serve::{KubeServer, ServeOptions};
use driftless::apply::MemoryCluster;
use serde_json::Value;

/// A served cluster and a kubectl configured for it.
struct Kube {
    server: KubeServer,
    dir: tempfile::TempDir,
}

/// What kubectl did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kube {
    fn start() -> Kube {
        let cluster = Arc::new(MemoryCluster::new());
        let server = KubeServer::start(cluster, ServeOptions::default().record_requests(true))
            .expect("the server starts");
        let dir = tempfile::tempdir().unwrap();
        server
            .write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        Kube { server, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new("kubectl")
            .args(args)
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed (it is the oracle of these tests)");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and requires exit code 0.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "kubectl {args:?}: {out:?}");
        out.stdout
    }

    /// `-o json`, with managedFields (kubectl hides them otherwise).
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--show-managed-fields"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// The lines of a table with runs of spaces squeezed, so column widths do
/// not matter.
fn squeeze(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: web, tier: back}
data:
  mode: fast
"#;

#[test]
fn apply_server_side_creates_updates_conflicts_and_dry_runs() {
    let k = Kube::start();
    let app = k.write("app.yaml", APP);
    let app = app.to_str().unwrap();
    // Create.
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", app]),
        "namespace/shop serverside-applied\ndeployment.apps/web serverside-applied\nconfigmap/settings serverside-applied\n"
    );
    let d = k.json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Apply");
    let rv = d["metadata"]["resourceVersion"].clone();
    // The same apply again changes nothing.
    k.ok(&["apply", "--server-side", "-f", app]);
    let again = k.json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(again["metadata"]["resourceVersion"], rv);

    // Another manager takes replicas; kubectl's apply then conflicts.
    let three = k.write("three.yaml", &APP.replace("replicas: 2", "replicas: 3"));
    let three = three.to_str().unwrap();
    let out = k.run(&["apply", "--server-side", "--field-manager=ops", "-f", three]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(
            "error: Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas\nPlease review the fields above--they currently have other managers."
        ),
        "{out:?}"
    );
    // The namespace and the ConfigMap have no conflict and are applied.
    assert_eq!(
        out.stdout,
        "namespace/shop serverside-applied\nconfigmap/settings serverside-applied\n"
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=ops",
        "-f",
        three,
    ]);
    let d = k.json(&["get", "deployment", "web", "-n", "shop"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl", "ops"]);

    // A server-side dry run says so and changes nothing.
    let four = k.write("four.yaml", &APP.replace("replicas: 2", "replicas: 4"));
    assert_eq!(
        k.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            four.to_str().unwrap(),
        ]),
        "namespace/shop serverside-applied (server dry run)\ndeployment.apps/web serverside-applied (server dry run)\nconfigmap/settings serverside-applied (server dry run)\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
}

#[test]
fn diff_server_side_exits_0_in_sync_and_1_with_differences() {
    let k = Kube::start();
    let app = k.write("app.yaml", APP);
    let app = app.to_str().unwrap();
    // The namespace is missing: the dry run fails as on a real cluster.
    let out = k.run(&["diff", "--server-side", "-f", app]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): namespaces \"shop\" not found\n"
    );
    // With the namespace there, the objects are new.
    k.ok(&["create", "namespace", "shop"]);
    let out = k.run(&["diff", "--server-side", "-f", app]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("+  name: web\n"), "{}", out.stdout);
    assert!(out.stdout.contains("+  name: settings\n"), "{}", out.stdout);
    k.ok(&["apply", "--server-side", "-f", app]);
    let out = k.run(&["diff", "--server-side", "-f", app]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let changed = k.write(
        "changed.yaml",
        &APP.replace("image: nginx:1.27", "image: nginx:1.28"),
    );
    let out = k.run(&["diff", "--server-side", "-f", changed.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("-      - image: nginx:1.27\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("+      - image: nginx:1.28\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("-  generation: 1\n+  generation: 2\n"),
        "{}",
        out.stdout
    );
    // The diff was a dry run.
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.27"
    );
}

#[test]
fn get_prints_tables_yaml_json_selects_by_label_and_pages() {
    let k = Kube::start();
    let app = k.write("app.yaml", APP);
    k.ok(&["apply", "--server-side", "-f", app.to_str().unwrap()]);
    for i in 1..=5 {
        let name = format!("c{i}");
        k.ok(&[
            "create",
            "configmap",
            &name,
            "-n",
            "shop",
            "--from-literal",
            &format!("n={i}"),
        ]);
    }
    let lines = squeeze(&k.ok(&["get", "deployments", "-n", "shop"]));
    assert_eq!(
        lines,
        ["NAME READY UP-TO-DATE AVAILABLE AGE", "web 2/2 2 2 0s"]
    );
    let lines = squeeze(&k.ok(&["get", "configmaps", "-n", "shop"]));
    assert_eq!(
        lines,
        [
            "NAME DATA AGE",
            "c1 1 0s",
            "c2 1 0s",
            "c3 1 0s",
            "c4 1 0s",
            "c5 1 0s",
            "settings 1 0s"
        ]
    );
    let lines = squeeze(&k.ok(&["get", "ns"]));
    assert_eq!(lines.first().map(String::as_str), Some("NAME STATUS AGE"));
    assert!(lines.contains(&"shop Active 0s".to_string()), "{lines:?}");
    let lines = squeeze(&k.ok(&["get", "all", "-A"]));
    assert_eq!(
        lines,
        [
            "NAMESPACE NAME READY UP-TO-DATE AVAILABLE AGE",
            "shop deployment.apps/web 2/2 2 2 0s"
        ]
    );
    let lines = squeeze(&k.ok(&["get", "deploy", "-n", "shop", "-o", "wide"]));
    assert_eq!(
        lines,
        [
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
            "web 2/2 2 2 0s web nginx:1.27 app=web"
        ]
    );

    // -o yaml and -o json are the stored objects.
    let yaml = k.ok(&["get", "configmap", "settings", "-n", "shop", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: v1\ndata:\n  mode: fast\nkind: ConfigMap\nmetadata:\n"),
        "{yaml}"
    );
    let list = k.json(&["get", "configmaps", "-n", "shop"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 6);
    assert_eq!(list["items"][0]["kind"], "ConfigMap");

    // Label selectors, the whole syntax.
    let names = |sel: &str| k.ok(&["get", "cm,deploy", "-n", "shop", "-l", sel, "-o", "name"]);
    assert_eq!(
        names("app=web"),
        "configmap/settings\ndeployment.apps/web\n"
    );
    assert_eq!(names("app==web,tier=back"), "configmap/settings\n");
    assert_eq!(names("tier!=back,app"), "deployment.apps/web\n");
    assert_eq!(names("tier in (front,middle)"), "deployment.apps/web\n");
    assert_eq!(names("tier notin (front),app"), "configmap/settings\n");
    assert_eq!(names("!app").lines().count(), 5);
    let out = k.run(&["get", "cm", "-n", "shop", "-l", "tier in front"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("found 'front', expected: '('"),
        "{out:?}"
    );
    // Field selectors.
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "-A",
            "--field-selector",
            "metadata.name=c2",
            "-o",
            "name"
        ]),
        "configmap/c2\n"
    );
    let out = k.run(&["get", "cm", "-n", "shop", "--field-selector", "data.n=1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("field label not supported: data.n"),
        "{out:?}"
    );

    // Pages of two: the same objects, in four list requests.
    k.server.clear_requests();
    let paged = k.ok(&["get", "cm", "-n", "shop", "--chunk-size=2", "-o", "name"]);
    assert_eq!(paged, "configmap/c1\nconfigmap/c2\nconfigmap/c3\nconfigmap/c4\nconfigmap/c5\nconfigmap/settings\n");
    let lists: Vec<String> = k
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/shop/configmaps")
        .map(|r| r.query)
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(lists.iter().all(|q| q.contains("limit=2")), "{lists:?}");
    assert!(
        lists.iter().skip(1).all(|q| q.contains("continue=")),
        "{lists:?}"
    );
}

#[test]
fn raw_reads_api_resources_and_delete() {
    let k = Kube::start();
    let app = k.write("app.yaml", APP);
    k.ok(&["apply", "--server-side", "-f", app.to_str().unwrap()]);

    let raw: Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/shop/configmaps/settings",
    ]))
    .unwrap();
    assert_eq!(raw["data"]["mode"], "fast");
    assert_eq!(raw["kind"], "ConfigMap");
    let list: Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/shop/deployments?labelSelector=tier%3Dfront",
    ]))
    .unwrap();
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    let version: Value = serde_json::from_str(&k.ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["major"], "1");
    let out = k.run(&["get", "--raw", "/api/v1/namespaces/shop/configmaps/missing"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("Error from server (NotFound): configmaps \"missing\" not found"),
        "{out:?}"
    );

    let resources = squeeze(&k.ok(&["api-resources"]));
    assert_eq!(
        resources.first().map(String::as_str),
        Some("NAME SHORTNAMES APIVERSION NAMESPACED KIND")
    );
    for line in [
        "configmaps cm v1 true ConfigMap",
        "namespaces ns v1 false Namespace",
        "deployments deploy apps/v1 true Deployment",
        "customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition",
        "clusterrolebindings rbac.authorization.k8s.io/v1 false ClusterRoleBinding",
        "kustomizations ks kustomize.toolkit.fluxcd.io/v1 true Kustomization",
        "selfsubjectaccessreviews authorization.k8s.io/v1 false SelfSubjectAccessReview",
    ] {
        assert!(
            resources.contains(&line.to_string()),
            "{line} in {resources:?}"
        );
    }
    let namespaced = squeeze(&k.ok(&[
        "api-resources",
        "--namespaced=false",
        "--api-group=rbac.authorization.k8s.io",
        "-o",
        "name",
    ]));
    assert_eq!(
        namespaced,
        [
            "clusterrolebindings.rbac.authorization.k8s.io",
            "clusterroles.rbac.authorization.k8s.io"
        ]
    );

    // Delete, then the object is gone; deleting it again is NotFound.
    assert_eq!(
        k.ok(&["delete", "configmap", "settings", "-n", "shop"]),
        "configmap \"settings\" deleted\n"
    );
    let out = k.run(&["get", "configmap", "settings", "-n", "shop"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): configmaps \"settings\" not found\n"
    );
    let out = k.run(&["delete", "configmap", "settings", "-n", "shop"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): configmaps \"settings\" not found\n"
    );
    // A namespace takes what it holds with it.
    assert_eq!(
        k.ok(&["delete", "namespace", "shop"]),
        "namespace \"shop\" deleted\n"
    );
    let out = k.run(&["get", "deploy", "web", "-n", "shop"]);
    assert_eq!(out.code, 1);
    let out = k.run(&["delete", "namespace", "default"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n"
    );
}

#[test]
fn auth_can_i_answers_from_rbac_under_impersonation() {
    let k = Kube::start();
    let rbac = k.write(
        "rbac.yaml",
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deploy, namespace: team-a}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deploy, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deploy}
subjects:
- {kind: ServiceAccount, name: deployer, namespace: team-a}
"#,
    );
    k.ok(&["apply", "--server-side", "-f", rbac.to_str().unwrap()]);
    let sa = "--as=system:serviceaccount:team-a:deployer";
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend(args);
        let out = k.run(&all);
        (out.code, out.stdout.trim().to_string())
    };
    assert_eq!(
        can(&["create", "deployments", "-n", "team-a"]),
        (0, "yes".into())
    );
    assert_eq!(
        can(&["create", "deployments", "-n", "team-a", sa]),
        (0, "yes".into())
    );
    assert_eq!(
        can(&["delete", "deployments", "-n", "team-a", sa]),
        (1, "no".into())
    );
    assert_eq!(
        can(&["create", "deployments", "-n", "team-b", sa]),
        (1, "no".into())
    );
    assert_eq!(
        can(&["get", "deployments.apps", "-n", "team-a", sa]),
        (0, "yes".into())
    );
    assert_eq!(
        can(&["create", "clusterrolebindings", sa]),
        (1, "no".into())
    );
    assert_eq!(
        can(&["create", "configmaps", "-n", "team-a", sa]),
        (1, "no".into())
    );
    // Another service account of the namespace holds nothing.
    assert_eq!(
        can(&[
            "get",
            "deployments",
            "-n",
            "team-a",
            "--as=system:serviceaccount:team-a:other"
        ]),
        (1, "no".into())
    );
    // A group binding counts for users impersonated with that group.
    assert_eq!(
        can(&[
            "create",
            "deployments",
            "-n",
            "team-a",
            "--as=jane",
            "--as-group=system:masters"
        ]),
        (0, "yes".into())
    );

    // Requests made under impersonation are checked against the same RBAC.
    let deploy = k.write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: team-a}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n",
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", sa, "-f", deploy.to_str().unwrap()]),
        "deployment.apps/web serverside-applied\n"
    );
    let cm = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-a}\n",
    );
    let out = k.run(&["apply", "--server-side", sa, "-f", cm.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("configmaps \"x\" is forbidden: User \"system:serviceaccount:team-a:deployer\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"team-a\""),
        "{out:?}"
    );
    let out = k.run(&["delete", "deployment", "web", "-n", "team-a", sa]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Error from server (Forbidden)"),
        "{out:?}"
    );
    let who = squeeze(&k.ok(&["auth", "whoami", sa]));
    assert_eq!(
        who,
        [
            "ATTRIBUTE VALUE",
            "Username system:serviceaccount:team-a:deployer",
            "Groups [system:serviceaccounts system:serviceaccounts:team-a system:authenticated]"
        ]
    );
}

#[test]
fn custom_resources_are_served_with_their_crds() {
    let k = Kube::start();
    let crd = k.write(
        "crd.yaml",
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#,
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()]),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied\n"
    );
    let w = k.write(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n",
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", w.to_str().unwrap()]),
        "widget.example.com/w1 serverside-applied\n"
    );
    assert_eq!(squeeze(&k.ok(&["get", "wd"])), ["NAME SIZE", "w1 3"]);
    assert_eq!(
        k.ok(&["get", "widgets", "-o", "name"]),
        "widget.example.com/w1\n"
    );
    // The status subresource.
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]);
    let live = k.json(&["get", "widget", "w1"]);
    assert_eq!(live["status"]["phase"], "Ready");
    let status_entry = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "status")
        .cloned()
        .unwrap();
    assert_eq!(status_entry["manager"], "kubectl-patch");
    assert_eq!(
        status_entry["fieldsV1"],
        serde_json::json!({"f:status": {"f:phase": {}}})
    );
    // A patch of the main resource leaves the status alone.
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":4},"status":{"phase":"Gone"}}"#,
    ]);
    let live = k.json(&["get", "widget", "w1"]);
    assert_eq!(live["spec"]["size"], 4);
    assert_eq!(live["status"]["phase"], "Ready");
    // Strategic merge patches are refused for custom resources, as the API
    // server does; kubectl names the patch types it takes.
    let out = k.run(&[
        "patch",
        "widget",
        "w1",
        "--type=strategic",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("error: application/strategic-merge-patch+json is not supported by example.com/v1, Kind=Widget: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{out:?}"
    );
    // Deleting the CRD takes its objects and its resource with it.
    k.ok(&["delete", "crd", "widgets.example.com"]);
    assert_eq!(
        k.ok(&["api-resources", "--api-group=example.com", "-o", "name"]),
        ""
    );
    let out = k.run(&["get", "widgets"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("the server doesn't have a resource type \"widgets\""),
        "{out:?}"
    );
}
