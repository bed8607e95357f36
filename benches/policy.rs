//! Policy evaluation on adversarial input (issue 17, H8): a tenant's 1 MiB
//! value against Kyverno wildcard patterns built to make a backtracking
//! matcher quadratic, with the `regex` crate's match of the same glob as
//! the reference; and the policy gate over a 1 MiB tenant render, refused
//! by the tenant boundary (the content policies do not run) and accepted
//! (the Kyverno pattern reads the value once).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use driftless::object::Object;
use driftless::policy::{wildcard, Kyverno, PolicySet, TenantBoundary};
use driftless::schema::Schema;

const MIB: usize = 1 << 20;

/// The glob as a regex (the reference).
fn glob_regex(pattern: &str) -> regex::Regex {
    let mut re = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::RegexBuilder::new(&re)
        .size_limit(1 << 30)
        .dfa_size_limit(1 << 30)
        .build()
        .expect("a valid regex")
}

fn object(yaml: &str) -> Object {
    Object::new(driftless::yaml::from_str("bench", yaml).expect("yaml")).expect("object")
}

fn bench_wildcard(c: &mut Criterion) {
    let text = "a".repeat(MIB);
    let patterns = [
        // a literal that almost matches everywhere: a backtracking
        // matcher compares ~1,000 characters at each of the 2^20 positions
        ("star_literal_1k", format!("*{}b*", "a".repeat(1024))),
        // the same with `?`: 1,025 characters, 17 machine words
        ("star_question_1k", format!("*{}b*", "a?".repeat(512))),
    ];
    let mut g = c.benchmark_group("wildcard_1mib");
    g.sample_size(10);
    for (name, pattern) in &patterns {
        assert!(!wildcard(pattern, &text));
        g.bench_with_input(BenchmarkId::new("driftless", name), pattern, |b, p| {
            b.iter(|| wildcard(p, &text))
        });
        let re = glob_regex(pattern);
        assert!(!re.is_match(&text));
        g.bench_with_input(BenchmarkId::new("regex", name), &re, |b, re| {
            b.iter(|| re.is_match(&text))
        });
    }
    g.finish();
}

fn bench_gate(c: &mut Criterion) {
    let policy = object(&format!(
        "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {{name: blob, namespace: team-a}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: blob\n    match:\n      any:\n      - resources: {{kinds: [ConfigMap]}}\n    validate:\n      pattern:\n        data:\n          blob: \"*{}b*\"\n",
        "a".repeat(1024)
    ));
    let cm = object(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: team-a}}\ndata:\n  blob: {}\n",
        "a".repeat(MIB)
    ));
    let crb = object("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: take-over}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: team-a}]\n");
    let mut set = PolicySet::default();
    set.push(Kyverno::default());
    set.push(TenantBoundary {
        namespace: "team-a".to_string(),
        tenant: "Kustomization/flux-system/team-a".to_string(),
        schema: Schema::kubernetes(),
    });
    let refused = vec![policy.clone(), cm.clone(), crb];
    let accepted = vec![policy, cm];
    let mut g = c.benchmark_group("policy_gate_1mib_tenant");
    g.sample_size(10);
    g.bench_function("refused_by_the_boundary", |b| {
        b.iter(|| set.check(&refused).expect_err("refused"))
    });
    g.bench_function("accepted_kyverno_reads_the_value", |b| {
        b.iter(|| {
            set.check(&accepted)
                .expect_err("the pattern does not match")
        })
    });
    g.finish();
}

criterion_group!(benches, bench_wildcard, bench_gate);
criterion_main!(benches);
