//! Sprig's dictionary functions, with mergo's merge rules.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{empty, f, fv, s, strval};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::value::{ListType, Map, MapType, Ty, Value};

type MapRef = Rc<RefCell<Map>>;

fn as_map(v: &Value) -> Option<&MapRef> {
    match v {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

fn dict(v: &[Value]) -> Value {
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < v.len() {
        let key = strval(&v[i]);
        let val = v.get(i + 1).cloned().unwrap_or_else(|| Value::str(""));
        m.insert(key, val);
        i += 2;
    }
    Value::map(m)
}

/// mergo's `Merge` (`overwrite` false) and `MergeWithOverwrite` for
/// `map[string]interface{}`: nested maps merge in place, other values are
/// taken from `src` when `dst` lacks them, holds an empty value, or
/// `overwrite` is set (a nil in `src` then overwrites too).
pub(crate) fn merge_into(dst: &MapRef, src: &MapRef, overwrite: bool, depth: usize) {
    if depth > 1000 || Rc::ptr_eq(dst, src) {
        return;
    }
    let src_entries: Vec<(String, Value)> = src
        .borrow()
        .entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, sv) in src_entries {
        let dv = dst.borrow().entries.get(&k).cloned();
        if sv.is_nil() {
            if overwrite {
                dst.borrow_mut().entries.insert(k, Value::Nil);
            }
            continue;
        }
        if let (Value::Map(sm), Some(Value::Map(dm))) = (&sv, &dv) {
            merge_into(dm, sm, overwrite, depth + 1);
            if !empty(dv.as_ref().unwrap_or(&Value::Nil)) {
                continue;
            }
        }
        if let (Value::List(_), Some(d)) = (&sv, &dv) {
            if !empty(d) && !overwrite {
                continue;
            }
        }
        let take = match &dv {
            None => true,
            Some(d) => overwrite || empty(d),
        };
        if take {
            dst.borrow_mut().entries.insert(k, sv);
        }
    }
}

fn merge(a: &[Value], overwrite: bool) -> Result<Value, String> {
    let dst = match &a[0] {
        Value::Map(m) => m.clone(),
        Value::Nil => Rc::new(RefCell::new(Map {
            ty: MapType::Interface,
            entries: BTreeMap::new(),
        })),
        _ => return Ok(Value::str("")),
    };
    for src in &a[1..] {
        if let Some(sm) = as_map(src) {
            merge_into(&dst, sm, overwrite, 0);
        }
    }
    Ok(Value::Map(dst))
}

fn dig(a: &[Value]) -> Result<Value, String> {
    if a.len() < 3 {
        return Err("dig needs at least three arguments".into());
    }
    let last = &a[a.len() - 1];
    let mut dict = match last {
        Value::Map(m) if m.borrow().ty == MapType::Interface => m.clone(),
        other => return Err(assert_msg(other)),
    };
    let def = a[a.len() - 2].clone();
    let mut keys = Vec::new();
    for k in &a[..a.len() - 2] {
        match k {
            Value::Str(s) => keys.push(s.to_string()),
            other => {
                return Err(format!(
                    "interface conversion: interface {{}} is {}, not string",
                    nil_or_type(other)
                ))
            }
        }
    }
    for (i, k) in keys.iter().enumerate() {
        let step = match dict.borrow().entries.get(k) {
            None => return Ok(def),
            Some(v) => v.clone(),
        };
        if i == keys.len() - 1 {
            return Ok(step);
        }
        dict = match &step {
            Value::Map(m) if m.borrow().ty == MapType::Interface => m.clone(),
            other => return Err(assert_msg(other)),
        };
    }
    Ok(def)
}

fn nil_or_type(v: &Value) -> String {
    if v.is_nil() {
        "nil".into()
    } else {
        v.type_name()
    }
}

fn assert_msg(v: &Value) -> String {
    format!(
        "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
        nil_or_type(v)
    )
}

fn nil_map_err() -> String {
    "assignment to entry in nil map".into()
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert("dict", fv(&[], Any, |a| Ok(dict(&a))));
    m.insert(
        "get",
        f(&[Map, String], |a| {
            Ok(as_map(&a[0])
                .and_then(|m| m.borrow().entries.get(s(&a, 1)).cloned())
                .unwrap_or_else(|| Value::str("")))
        }),
    );
    m.insert(
        "set",
        f(&[Map, String, Any], |a| {
            let Some(map) = as_map(&a[0]) else {
                return Err(nil_map_err());
            };
            map.borrow_mut()
                .entries
                .insert(s(&a, 1).to_string(), a[2].clone());
            Ok(a[0].clone())
        }),
    );
    m.insert(
        "unset",
        f(&[Map, String], |a| {
            if let Some(map) = as_map(&a[0]) {
                map.borrow_mut().entries.remove(s(&a, 1));
            }
            Ok(a[0].clone())
        }),
    );
    m.insert(
        "hasKey",
        f(&[Map, String], |a| {
            Ok(Value::Bool(as_map(&a[0]).is_some_and(|m| {
                m.borrow().entries.contains_key(s(&a, 1))
            })))
        }),
    );
    m.insert(
        "pluck",
        fv(&[String], Map, |a| {
            let key = s(&a, 0).to_string();
            Ok(Value::list(
                a[1..]
                    .iter()
                    .filter_map(as_map)
                    .filter_map(|m| m.borrow().entries.get(&key).cloned())
                    .collect(),
            ))
        }),
    );
    m.insert(
        "keys",
        fv(&[], Map, |a| {
            let mut k: Vec<Value> = Vec::new();
            for d in a.iter().filter_map(as_map) {
                k.extend(d.borrow().entries.keys().map(Value::str));
            }
            Ok(Value::typed_list(ListType::String, k))
        }),
    );
    m.insert(
        "pick",
        fv(&[Map], String, |a| {
            let mut out = BTreeMap::new();
            if let Some(d) = as_map(&a[0]) {
                let d = d.borrow();
                for k in a[1..].iter().filter_map(Value::as_str) {
                    if let Some(v) = d.entries.get(k) {
                        out.insert(k.to_string(), v.clone());
                    }
                }
            }
            Ok(Value::map(out))
        }),
    );
    m.insert(
        "omit",
        fv(&[Map], String, |a| {
            let omit: Vec<&str> = a[1..].iter().filter_map(Value::as_str).collect();
            let out = match as_map(&a[0]) {
                Some(d) => d
                    .borrow()
                    .entries
                    .iter()
                    .filter(|(k, _)| !omit.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => BTreeMap::new(),
            };
            Ok(Value::map(out))
        }),
    );
    for name in ["merge", "mustMerge"] {
        m.insert(name, fv(&[Map], Map, |a| merge(&a, false)));
    }
    for name in ["mergeOverwrite", "mustMergeOverwrite"] {
        m.insert(name, fv(&[Map], Map, |a| merge(&a, true)));
    }
    m.insert(
        "values",
        f(&[Map], |a| {
            Ok(Value::list(
                as_map(&a[0])
                    .map(|m| m.borrow().entries.values().cloned().collect())
                    .unwrap_or_default(),
            ))
        }),
    );
    for name in ["deepCopy", "mustDeepCopy"] {
        m.insert(name, f(&[Any], |a| Ok(a[0].deep_copy())));
    }
    m.insert("dig", fv(&[], Any, |a| dig(&a)));
}
