//! The benchmark workload: an overlay tree over a base of apps, each with
//! a Deployment, a Service and a ConfigMap (shared by `benches/render.rs`
//! and, written to disk, by `benches/compare-kubectl.sh` through
//! `cargo run --example bench_tree`).

/// Files of the tree: `(path, contents)`. `apps * 3` base objects plus one
/// generated ConfigMap.
pub fn files(apps: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut res = String::from("resources:\n");
    for i in 0..apps {
        let name = format!("app-{i:05}");
        res.push_str(&format!("- {name}.yaml\n"));
        out.push((
            format!("base/{name}.yaml"),
            format!(
                "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef:
            name: shared-config
        volumeMounts:
        - name: config
          mountPath: /etc/app
      volumes:
      - name: config
        configMap:
          name: {name}-config
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  app.properties: |
    name={name}
    threads=4
"
            ),
        ));
    }
    out.push(("base/kustomization.yaml".into(), res));
    out.push((
        "production/kustomization.yaml".into(),
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../base
namespace: production
namePrefix: prod-
labels:
- pairs:
    env: production
    team: platform
  includeSelectors: true
commonAnnotations:
  owner: platform-team
images:
- name: nginx
  newName: registry.example.com/nginx
  newTag: \"1.27\"
replicas:
- name: app-00000
  count: 3
configMapGenerator:
- name: shared-config
  literals:
  - LOG_LEVEL=info
  - REGION=eu-west-1
patches:
- target:
    kind: Deployment
  patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: any
    spec:
      template:
        spec:
          containers:
          - name: app
            resources:
              limits:
                memory: 256Mi
- target:
    kind: Service
  patch: |-
    - op: add
      path: /spec/type
      value: ClusterIP
"
        .into(),
    ));
    out
}
