//! Diff and plan 10,000 desired objects against 10,000 live ones with 1% drift.
//!
//! Goal: under 50 ms on a 2-core machine, memory in proportion to the input.
//!
//! Two kinds of live objects: `diff_and_plan*` carry a token
//! `managedFields` entry, and `diff_and_plan_ssa` carry the full field set
//! that a server-side apply records (made by applying the desired objects
//! to a `MemoryCluster`), as live objects read from a cluster do. The
//! field set is walked to find fields Git dropped, so it costs more.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use driftless::apply::{Applier, ApplyOptions, MemoryCluster};
use driftless::plan::{plan, Inventory, PlanOptions};
use driftless::schema::Schema;
use driftless::{Object, ObjectId};
use serde_json::json;

/// The 1% drift: one field of a live object edited by another hand.
fn drift(live: &mut Object) {
    let v = live.value_mut();
    if v.get("data").is_some() {
        v["data"]["a"] = json!("edited");
    } else if v.pointer("/spec/replicas").is_some() {
        v["spec"]["replicas"] = json!(9);
    } else {
        v["spec"]["selector"] = json!({"app": "other"});
    }
}

fn workload(n: usize) -> (Vec<Object>, BTreeMap<ObjectId, Object>, Inventory) {
    let mut desired = Vec::with_capacity(n);
    let mut live = BTreeMap::new();
    for i in 0..n {
        let ns = format!("ns-{}", i % 50);
        let o = match i % 3 {
            0 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("app-{i}"), "namespace": ns, "labels": {"app": format!("app-{i}"), "team": "t"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                        "spec": {"containers": [{"name": "app", "image": format!("ghcr.io/o/app-{i}:1.0.0"),
                            "ports": [{"containerPort": 8080}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}}),
            1 => json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}"), "namespace": ns},
                "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            _ => json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i}"), "namespace": ns},
                "data": {"a": "1", "b": "2", "c": format!("value-{i}")}}),
        };
        let desired_obj = Object::new(o).expect("valid");
        let mut live_obj = desired_obj.clone();
        {
            let md = live_obj.metadata_mut();
            md.insert("uid".into(), json!(format!("uid-{i}")));
            md.insert("resourceVersion".into(), json!(format!("{i}")));
            md.insert("generation".into(), json!(1));
            md.insert(
                "managedFields".into(),
                json!([{"manager": "kustomize-controller", "operation": "Apply",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:name": {}}}}]),
            );
        }
        if i % 100 == 7 {
            drift(&mut live_obj);
        }
        live.insert(live_obj.id(), live_obj);
        desired.push(desired_obj);
    }
    let inventory = Inventory::from_objects(desired.iter());
    (desired, live, inventory)
}

/// The workload's desired objects and inventory, with live objects as
/// server-side apply leaves them: full `managedFields`, then the same 1%
/// drift made by another hand.
fn applied_workload(n: usize) -> (Vec<Object>, BTreeMap<ObjectId, Object>, Inventory) {
    let (desired, _, inventory) = workload(n);
    let cluster = MemoryCluster::new();
    let options = ApplyOptions::default();
    let apply =
        |o: &Object| futures::executor::block_on(cluster.apply(o, &options)).expect("apply");
    for ns in 0..50 {
        apply(
            &Object::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("ns-{ns}")}}))
            .expect("valid"),
        );
    }
    let mut live = BTreeMap::new();
    for (i, o) in desired.iter().enumerate() {
        let mut l = apply(o);
        if i % 100 == 7 {
            drift(&mut l);
        }
        live.insert(l.id(), l);
    }
    (desired, live, inventory)
}

fn bench(c: &mut Criterion) {
    let schema = Schema::kubernetes();
    // the default (the machine's parallelism) and one thread; the plan's
    // drop is the caller's and is not timed
    for (group_name, parallelism) in [
        ("diff_and_plan", PlanOptions::default().parallelism),
        ("diff_and_plan_1thread", 1),
    ] {
        let options = PlanOptions {
            parallelism,
            ..PlanOptions::default()
        };
        let mut group = c.benchmark_group(group_name);
        group.sample_size(20);
        for n in [1_000usize, 10_000] {
            let (desired, live, inventory) = workload(n);
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter_with_large_drop(|| {
                    plan(&desired, &live, &inventory, &schema, &options).expect("plan")
                })
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("diff_and_plan_ssa");
    group.sample_size(20);
    let options = PlanOptions::default();
    for n in [1_000usize, 10_000] {
        let (desired, live, inventory) = applied_workload(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_with_large_drop(|| {
                plan(&desired, &live, &inventory, &schema, &options).expect("plan")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
