//! `patches`, `patchesStrategicMerge` and `patchesJson6902`, with
//! kustomize's target selection.

use serde_json::Value;

use super::model::{Patch, PatchJson6902, Selector};
use super::resource::{ns_eq, Res};
use super::{Acc, Builder};
use crate::render::merge;
use crate::render::RenderError;

/// A parsed label (or annotation) selector requirement.
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn parse_selector(s: &str) -> Result<Vec<Req>, String> {
    let mut out = Vec::new();
    // split on commas that are not inside parentheses
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if let Some(k) = p.strip_prefix('!') {
            out.push(Req::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            out.push(Req::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Req::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            out.push(Req::NotIn(k.trim().into(), set(rest)?));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            out.push(Req::In(k.trim().into(), set(rest)?));
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            out.push(Req::Exists(p.to_string()));
        } else {
            return Err(format!("unable to parse requirement {p:?}"));
        }
    }
    Ok(out)
}

fn set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized set, got {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect())
}

fn matches_reqs(reqs: &[Req], map: Option<&Value>) -> bool {
    let get = |k: &str| map.and_then(|m| m.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Req::Eq(k, v) => get(k) == Some(v.as_str()),
        Req::Ne(k, v) => get(k) != Some(v.as_str()),
        Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
    })
}

fn anchored(re: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| e.to_string())
}

/// A compiled selector.
pub(crate) struct Sel<'s> {
    sel: &'s Selector,
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
    labels: Option<Vec<Req>>,
    annotations: Option<Vec<Req>>,
}

impl<'s> Sel<'s> {
    pub fn new(sel: &'s Selector) -> Result<Self, String> {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        Ok(Sel {
            sel,
            name: nonempty(&sel.name).map(|n| anchored(&n)).transpose()?,
            namespace: nonempty(&sel.namespace).map(|n| anchored(&n)).transpose()?,
            labels: nonempty(&sel.label_selector)
                .map(|s| parse_selector(&s))
                .transpose()?,
            annotations: nonempty(&sel.annotation_selector)
                .map(|s| parse_selector(&s))
                .transpose()?,
        })
    }

    pub fn matches(&self, r: &Res, namespaced: bool) -> bool {
        let eff = |ns: &str| {
            if ns.is_empty() && namespaced {
                "default".to_string()
            } else {
                ns.to_string()
            }
        };
        if let Some(re) = &self.namespace {
            if !re.is_match(&eff(r.org_namespace())) && !re.is_match(&eff(r.namespace())) {
                return false;
            }
        }
        if let Some(re) = &self.name {
            if !re.is_match(r.org_name()) && !re.is_match(r.name()) {
                return false;
            }
        }
        let s = self.sel;
        let ok = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.is_empty() || w == have)
        };
        if !ok(&s.group, r.group()) || !ok(&s.version, r.version()) || !ok(&s.kind, r.kind()) {
            return false;
        }
        let md = r.value.get("metadata");
        if let Some(reqs) = &self.labels {
            if !matches_reqs(reqs, md.and_then(|m| m.get("labels"))) {
                return false;
            }
        }
        if let Some(reqs) = &self.annotations {
            if !matches_reqs(reqs, md.and_then(|m| m.get("annotations"))) {
                return false;
            }
        }
        true
    }
}

/// Indices of the objects a selector picks.
pub(crate) fn select(
    b: &Builder<'_>,
    sel: &Selector,
    acc: &Acc,
    file: &str,
    field: &str,
) -> Result<Vec<usize>, RenderError> {
    let s = Sel::new(sel).map_err(|e| RenderError::new(file, e).with_field(field.to_string()))?;
    Ok(acc
        .res
        .iter()
        .enumerate()
        .filter(|(_, r)| s.matches(r, b.schema.is_namespaced(r.group(), r.kind())))
        .map(|(i, _)| i)
        .collect())
}

fn patch_text<'a>(
    b: &Builder<'a>,
    dir: &str,
    file: &str,
    field: &str,
    path: &Option<String>,
    inline: &Option<String>,
) -> Result<(String, String), RenderError> {
    match (
        path.as_deref().filter(|s| !s.is_empty()),
        inline.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(RenderError::new(
            file,
            "patch and path can't be set at the same time",
        )
        .with_field(field.to_string())),
        (None, None) => Err(RenderError::new(file, "must specify one of patch and path")
            .with_field(field.to_string())),
        (Some(p), None) => {
            let full = b.file_path(dir, p, file, field)?;
            let t = b
                .read_text(&full, file)
                .map_err(|e| e.with_field(field.to_string()))?;
            Ok((full, t.to_string()))
        }
        (None, Some(t)) => Ok((format!("{file} ({field})"), t.to_string())),
    }
}

fn load_patch_docs(b: &Builder<'_>, label: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    crate::yaml::load_documents(label, text, &b.opts.limits).map_err(|e| {
        RenderError::new(
            match e.line {
                Some(l) => format!("{}:{l}", e.file),
                None => e.file.clone(),
            },
            e.message.clone(),
        )
    })
}

/// Applies one strategic merge patch document to object `i`.
fn smp_one(
    b: &Builder<'_>,
    acc: &mut Acc,
    i: usize,
    doc: &Value,
    opts: (bool, bool),
    label: &str,
) -> Result<bool, RenderError> {
    let r = &mut acc.res[i];
    let (name, ns, kind, av) = (
        r.name().to_string(),
        r.value
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .cloned(),
        r.kind().to_string(),
        r.api_version().to_string(),
    );
    let subject = r.subject();
    let group = r.group().to_string();
    // the merge writes at most the patch's nodes into the object
    b.budget
        .charge_value(doc)
        .map_err(|e| RenderError::new(label, e.message()).with_object(subject.clone()))?;
    // merged in place: a failed merge fails the whole build
    let out = merge::strategic_merge_owned(
        std::mem::take(&mut r.value),
        doc,
        &b.schema.merge,
        &group,
        &kind,
    )
    .map_err(|e| RenderError::new(label, e.to_string()).with_object(subject))?;
    let Some(mut v) = out else {
        return Ok(false);
    };
    if let Some(o) = v.as_object_mut() {
        if !opts.1 {
            o.insert("kind".into(), Value::String(kind));
            o.insert("apiVersion".into(), Value::String(av));
        }
    }
    let res = &mut acc.res[i];
    res.value = v;
    {
        let md = res.metadata_mut();
        if !opts.0 {
            md.insert("name".into(), Value::String(name.clone()));
        }
        match ns {
            Some(n) => {
                md.insert("namespace".into(), n);
            }
            None => {
                md.remove("namespace");
            }
        }
    }
    let newname = res.name().to_string();
    if newname != name {
        res.set_name(&newname);
    }
    Ok(true)
}

fn find_by_id(b: &Builder<'_>, acc: &Acc, doc: &Value, label: &str) -> Result<usize, RenderError> {
    let s = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (name, ns, kind, av) = (
        s("/metadata/name"),
        s("/metadata/namespace"),
        s("/kind"),
        s("/apiVersion"),
    );
    let group = crate::object::group_of(&av).to_string();
    let version = av
        .rsplit_once('/')
        .map(|(_, v)| v.to_string())
        .unwrap_or(av.clone());
    let m: Vec<usize> = acc
        .res
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.kind() == kind
                && r.group() == group
                && (version.is_empty() || r.version() == version)
                && r.names.contains(&name)
                && (r.namespaces.iter().any(|n| ns_eq(n, &ns)))
        })
        .map(|(i, _)| i)
        .collect();
    let _ = b;
    match m.as_slice() {
        [i] => Ok(*i),
        [] => Err(RenderError::new(
            label,
            format!("no resource matches strategic merge patch \"{kind}.{version}.{group}/{name}.{ns}\""),
        )
        .with_object(format!("{kind}/{name}"))),
        _ => Err(RenderError::new(
            label,
            format!("multiple resources match strategic merge patch \"{kind}/{name}\""),
        )
        .with_object(format!("{kind}/{name}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_smp_docs(
    b: &Builder<'_>,
    acc: &mut Acc,
    docs: &[Value],
    target: Option<&Selector>,
    opts: (bool, bool),
    label: &str,
    file: &str,
    field: &str,
) -> Result<(), RenderError> {
    for doc in docs {
        if !doc.is_object() {
            return Err(
                RenderError::new(label, "a strategic merge patch must be a mapping")
                    .with_field(field.to_string()),
            );
        }
        let idx = match target {
            Some(t) => select(b, t, acc, file, field)?,
            None => vec![find_by_id(b, acc, doc, label)?],
        };
        let mut removed = Vec::new();
        for i in idx {
            if !smp_one(b, acc, i, doc, opts, label)? {
                removed.push(i);
            }
        }
        for i in removed.into_iter().rev() {
            acc.res.remove(i);
        }
    }
    Ok(())
}

fn apply_json6902(
    b: &Builder<'_>,
    acc: &mut Acc,
    ops: &Value,
    target: &Selector,
    label: &str,
    file: &str,
    field: &str,
) -> Result<(), RenderError> {
    let parsed = merge::parse_json6902(ops);
    for i in select(b, target, acc, file, field)? {
        let r = &mut acc.res[i];
        let subject = r.subject();
        let patch = parsed
            .as_ref()
            .map_err(|e| RenderError::new(label, e.to_string()).with_object(subject.clone()))?;
        let mut left = b.budget.left();
        let applied = merge::apply_json6902_within(&mut r.value, patch, &mut left);
        let spent = b.budget.left() - left;
        let charged = b.budget.charge(spent);
        applied.map_err(|e| {
            let message = match e {
                merge::MergeError::TooManyNodes(_) => b.budget.exceeded().message(),
                e => e.to_string(),
            };
            RenderError::new(label, message).with_object(subject.clone())
        })?;
        charged.map_err(|e| RenderError::new(label, e.message()).with_object(subject.clone()))?;
        if crate::object::check_value(&r.value).is_err() {
            return Err(RenderError::new(
                label,
                "the patch removed kind, apiVersion or metadata.name",
            )
            .with_object(subject));
        }
        let n = r.name().to_string();
        let ns = r.namespace().to_string();
        r.set_name(&n);
        if r.namespaces.last() != Some(&ns) {
            r.namespaces.push(ns);
        }
    }
    Ok(())
}

/// One entry of `patches`.
pub(crate) fn apply(
    b: &Builder<'_>,
    dir: &str,
    file: &str,
    i: usize,
    p: &Patch,
    acc: &mut Acc,
) -> Result<(), RenderError> {
    let field = format!("patches[{i}]");
    for k in p.options.keys() {
        if k != "allowNameChange" && k != "allowKindChange" {
            return Err(
                RenderError::new(file, format!("unknown patch option {k:?}"))
                    .with_field(format!("{field}.options")),
            );
        }
    }
    let opts = (
        p.options.get("allowNameChange").copied().unwrap_or(false),
        p.options.get("allowKindChange").copied().unwrap_or(false),
    );
    let (label, text) = patch_text(b, dir, file, &field, &p.path, &p.patch)?;
    let docs = load_patch_docs(b, &label, &text)?;
    if docs.len() == 1 && docs[0].is_array() {
        let Some(t) = &p.target else {
            return Err(
                RenderError::new(file, "must specify a target for JSON patch").with_field(field),
            );
        };
        return apply_json6902(b, acc, &docs[0], t, &label, file, &field);
    }
    if docs.is_empty() {
        return Err(RenderError::new(&label, "the patch is empty").with_field(field));
    }
    apply_smp_docs(b, acc, &docs, p.target.as_ref(), opts, &label, file, &field)
}

/// One entry of `patchesStrategicMerge` (a path or an inline document).
pub(crate) fn legacy_smp(
    b: &Builder<'_>,
    dir: &str,
    file: &str,
    i: usize,
    p: &str,
    acc: &mut Acc,
) -> Result<(), RenderError> {
    let field = format!("patchesStrategicMerge[{i}]");
    let inline = p.contains('\n') || p.trim_start().starts_with('{');
    let (label, text) = if inline {
        (format!("{file} ({field})"), p.to_string())
    } else {
        patch_text(b, dir, file, &field, &Some(p.to_string()), &None)?
    };
    let docs = load_patch_docs(b, &label, &text)?;
    apply_smp_docs(b, acc, &docs, None, (false, false), &label, file, &field)
}

/// One entry of `patchesJson6902`.
pub(crate) fn legacy_json6902(
    b: &Builder<'_>,
    dir: &str,
    file: &str,
    i: usize,
    p: &PatchJson6902,
    acc: &mut Acc,
) -> Result<(), RenderError> {
    let field = format!("patchesJson6902[{i}]");
    let Some(t) = &p.target else {
        return Err(
            RenderError::new(file, "must specify a target for JSON patch").with_field(field),
        );
    };
    let (label, text) = patch_text(b, dir, file, &field, &p.path, &p.patch)?;
    let docs = load_patch_docs(b, &label, &text)?;
    let ops = match docs.as_slice() {
        [v] if v.is_array() => v.clone(),
        _ => {
            return Err(
                RenderError::new(&label, "a JSON 6902 patch must be a list of operations")
                    .with_field(field),
            )
        }
    };
    apply_json6902(b, acc, &ops, t, &label, file, &field)
}
