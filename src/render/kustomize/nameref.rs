//! Name references: after names change (prefix, suffix, hash), every field
//! that refers to a renamed object is updated, as kustomize's
//! nameReference transformer does.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::config::NameRef;
use super::fieldspec::visit;
use super::resource::{ns_eq, Res};
use crate::render::RenderError;
use crate::schema::Schema;

/// Referrals by kind, then by any name they have had, with their group.
type Index<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<(&'a str, &'a Target)>>>;

/// What a referral looks like now.
#[derive(Clone)]
struct Target {
    idx: usize,
    names: Vec<String>,
    org_ns: String,
    cur_name: String,
    cur_ns: String,
    namespaced: bool,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// Fixes all name references in `res`.
pub(crate) fn fix(
    res: &mut [Res],
    refs: &[NameRef],
    schema: &Schema,
    threads: usize,
) -> Result<(), RenderError> {
    // Snapshot of every possible referral.
    let targets: Vec<(String, String, Target)> = res
        .iter()
        .enumerate()
        .map(|(idx, r)| {
            (
                r.group().to_string(),
                r.kind().to_string(),
                Target {
                    idx,
                    names: r.names.clone(),
                    org_ns: r.org_namespace().to_string(),
                    cur_name: r.name().to_string(),
                    cur_ns: r.namespace().to_string(),
                    namespaced: schema.is_namespaced(r.group(), r.kind()),
                    prefixes: r.prefixes.clone(),
                    suffixes: r.suffixes.clone(),
                },
            )
        })
        .collect();
    let mut index: Index<'_> = BTreeMap::new();
    for (g, k, t) in &targets {
        for n in &t.names {
            index
                .entry(k.as_str())
                .or_default()
                .entry(n.as_str())
                .or_default()
                .push((g.as_str(), t));
        }
    }
    // Rules by referrer kind (`None` kind: any).
    let mut by_kind: HashMap<&str, Vec<&NameRef>> = HashMap::new();
    let mut any_kind: Vec<&NameRef> = Vec::new();
    for nr in refs {
        match nr.fs.kind.as_deref() {
            Some(k) => by_kind.entry(k).or_default().push(nr),
            None => any_kind.push(nr),
        }
    }
    // Each referrer is fixed on its own against the snapshot above, so
    // runs of referrers may be fixed on several threads; the first error
    // in object order wins.
    let fix_one = |i: usize, referrer: &mut Res| -> Result<(), RenderError> {
        let r = &*referrer;
        // kustomize reads every RBAC subject's name, whatever its kind and
        // whether a ServiceAccount is in the build: one without a name fails
        // the build (`path config error; no 'name' field in node`)
        if r.group() == "rbac.authorization.k8s.io"
            && matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding")
        {
            if let Some(Value::Array(subjects)) = r.value.get("subjects") {
                for (n, s) in subjects.iter().enumerate() {
                    if s.is_object() && s.get("name").is_none() {
                        return Err(
                            RenderError::new(r.file.clone(), "no 'name' field in subject")
                                .with_object(r.subject())
                                .with_field(format!("subjects[{n}].name")),
                        );
                    }
                }
            }
        }
        let mut rules = by_kind
            .get(r.kind())
            .into_iter()
            .flatten()
            .chain(any_kind.iter())
            .copied()
            .filter(|nr| nr.fs.applies_to(r.kind(), r.group(), r.version()))
            .filter_map(|nr| Some((nr, index.get(nr.kind.as_str())?)))
            .peekable();
        if rules.peek().is_none() {
            return Ok(());
        }
        // what the rules need of the referrer, read once per referrer
        let referrer_ns = r.namespace().to_string();
        let referrer_cluster = !schema.is_namespaced(r.group(), r.kind());
        let referrer_prefixes = r.prefixes.clone();
        let referrer_suffixes = r.suffixes.clone();
        let file = r.file.clone();
        let subject_of = (r.kind().to_string(), r.name().to_string());
        let role_ref_kind = r
            .value
            .get("roleRef")
            .and_then(|v| v.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let rules: Vec<_> = rules.collect();
        for (nr, by_name) in rules {
            let subject = || {
                if referrer_ns.is_empty() {
                    format!("{}/{}", subject_of.0, subject_of.1)
                } else {
                    format!("{}/{}/{}", subject_of.0, referrer_ns, subject_of.1)
                }
            };
            let self_idx = i;
            let path = &nr.fs.path;
            let kind = nr.kind.as_str();
            let group = nr.group.as_str();
            let choose = |name: &str,
                          subject_ns: Option<&str>|
             -> Result<Option<(String, String)>, RenderError> {
                let mut m: Vec<&Target> = by_name
                    .get(name)
                    .map(|v| {
                        v.iter()
                            .filter(|(g, _)| group.is_empty() || *g == group)
                            .map(|(_, t)| *t)
                            .filter(|t| t.idx != self_idx || kind != "ServiceAccount")
                            .collect()
                    })
                    .unwrap_or_default();
                m.dedup_by_key(|t| t.idx);
                if let Some(sns) = subject_ns {
                    m.retain(|t| ns_eq(sns, &t.org_ns) || ns_eq(sns, &t.cur_ns));
                } else if !referrer_cluster {
                    m.retain(|t| {
                        !t.namespaced || kind == "ServiceAccount" || ns_eq(&referrer_ns, &t.cur_ns)
                    });
                }
                if m.len() > 1 {
                    let same: Vec<&Target> = m
                        .iter()
                        .copied()
                        .filter(|t| {
                            t.prefixes == referrer_prefixes && t.suffixes == referrer_suffixes
                        })
                        .collect();
                    if same.len() == 1 {
                        m = same;
                    }
                }
                match m.len() {
                    0 => Ok(None),
                    1 => Ok(Some((m[0].cur_name.clone(), m[0].cur_ns.clone()))),
                    _ => {
                        if m.iter().all(|t| t.cur_name == m[0].cur_name) {
                            Ok(Some((m[0].cur_name.clone(), m[0].cur_ns.clone())))
                        } else {
                            Err(RenderError::new(
                                file.clone(),
                                format!("found multiple possible referrals for {kind} {name}"),
                            )
                            .with_object(subject())
                            .with_field(path.join(".")))
                        }
                    }
                }
            };
            let last = path.last().map(String::as_str).unwrap_or_default();
            let mut err = None;
            visit::<RenderError>(&mut referrer.value, path, None, &mut |v: &mut Value| {
                match v {
                    Value::String(s) => {
                        if last == "name"
                            && path.first().map(String::as_str) == Some("roleRef")
                            && role_ref_kind.as_deref() != Some(kind)
                        {
                            return Ok(());
                        }
                        if let Some((n, _)) = choose(s, None)? {
                            *s = n;
                        }
                    }
                    Value::Object(m) if kind == "ServiceAccount" => {
                        // a RoleBinding subject
                        if m.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
                            return Ok(());
                        }
                        let Some(name) = m.get("name").and_then(Value::as_str).map(str::to_string)
                        else {
                            return Ok(());
                        };
                        let sns = m
                            .get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        if let Some((n, ns)) = choose(&name, Some(&sns))? {
                            m.insert("name".into(), Value::String(n));
                            if !ns.is_empty() {
                                m.insert("namespace".into(), Value::String(ns));
                            }
                        }
                    }
                    Value::Object(m) => {
                        // a service reference: {name, namespace}
                        let Some(name) = m.get("name").and_then(Value::as_str).map(str::to_string)
                        else {
                            return Ok(());
                        };
                        let sns = m
                            .get("namespace")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        if let Some((n, ns)) = choose(&name, sns.as_deref())? {
                            m.insert("name".into(), Value::String(n));
                            if sns.is_some() && !ns.is_empty() {
                                m.insert("namespace".into(), Value::String(ns));
                            }
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .unwrap_or_else(|e| err = Some(e));
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    };
    let fix_run = |offset: usize, run: &mut [Res]| -> Result<(), RenderError> {
        run.iter_mut()
            .enumerate()
            .try_for_each(|(j, r)| fix_one(offset + j, r))
    };
    let threads = if res.len() >= PARALLEL_MIN {
        threads
    } else {
        1
    };
    crate::par::in_runs(res, threads, fix_run)
        .into_iter()
        .collect()
}

/// Below this many objects, references are fixed on the calling thread.
const PARALLEL_MIN: usize = 256;
