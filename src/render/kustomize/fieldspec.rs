//! Field specs: a path into objects of some kinds, as kustomize's
//! transformer configurations write them (`spec/template/metadata/labels`).

use serde_json::{Map, Value};

use super::resource::Res;

/// A parsed field spec.
#[derive(Clone, Debug)]
pub(crate) struct Fs {
    pub path: Vec<String>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub create: bool,
}

/// Splits a path on `/`, honouring `\/` as a literal slash and dropping
/// `[]` list markers (lists are always walked).
pub(crate) fn split_path(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.strip_suffix("[]").map(str::to_string).unwrap_or(s))
        .filter(|s| !s.is_empty())
        .collect()
}

impl Fs {
    pub fn new(
        path: &str,
        group: Option<&str>,
        version: Option<&str>,
        kind: Option<&str>,
        create: bool,
    ) -> Self {
        Fs {
            path: split_path(path),
            group: group.map(str::to_string),
            version: version.map(str::to_string),
            kind: kind.map(str::to_string),
            create,
        }
    }

    /// Parses the YAML-ish table `path|group|version|kind|create` lines.
    pub fn table(rows: &[(&str, &str, &str, &str, bool)]) -> Vec<Fs> {
        rows.iter()
            .map(|(p, g, v, k, c)| {
                let o = |s: &&str| {
                    if s.is_empty() {
                        None
                    } else {
                        Some(s.to_string())
                    }
                };
                Fs {
                    path: split_path(p),
                    group: o(g),
                    version: o(v),
                    kind: o(k),
                    create: *c,
                }
            })
            .collect()
    }

    pub fn applies(&self, r: &Res) -> bool {
        self.applies_to(r.kind(), r.group(), r.version())
    }

    /// Like [`Fs::applies`] with the kind, group and version at hand.
    pub fn applies_to(&self, kind: &str, group: &str, version: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.group.as_deref().is_none_or(|g| g == group)
            && self.version.as_deref().is_none_or(|v| v == version)
    }
}

/// Calls `f` on every value at `path` below `v`. Lists met on the way are
/// walked item by item. With `create`, missing maps on the way (and the
/// leaf, as `leaf`) are created.
pub(crate) fn visit<E>(
    v: &mut Value,
    path: &[String],
    create: Option<&Value>,
    f: &mut dyn FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    if let Value::Array(items) = v {
        for it in items {
            visit(it, path, create, f)?;
        }
        return Ok(());
    }
    let Some((first, rest)) = path.split_first() else {
        return f(v);
    };
    let Value::Object(m) = v else {
        return Ok(());
    };
    if !m.contains_key(first.as_str()) || m.get(first.as_str()).is_some_and(Value::is_null) {
        match create {
            Some(leaf) => {
                let nv = if rest.is_empty() {
                    leaf.clone()
                } else {
                    Value::Object(Map::new())
                };
                m.insert(first.clone(), nv);
            }
            None => return Ok(()),
        }
    }
    match m.get_mut(first.as_str()) {
        Some(next) => visit(next, rest, create, f),
        None => Ok(()),
    }
}
