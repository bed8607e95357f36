//! Sprig's list functions.

use std::rc::Rc;

use super::{empty, f, fv, n, to_int64};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::value::{List, ListType, Ty, Value};

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

/// The items of a Go slice, or Sprig's "Cannot ... on type KIND" error.
fn items(v: &Value, what: &str) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.items.clone()),
        Value::Bytes(b) => Ok(b.iter().map(|x| Value::Uint(*x as u64)).collect()),
        Value::Nil => Err(NIL_DEREF.into()),
        other => Err(format!("Cannot {what} type {}", other.kind_name())),
    }
}

fn list(v: Vec<Value>) -> Value {
    Value::list(v)
}

fn first(v: &Value) -> Result<Value, String> {
    Ok(items(v, "find first on")?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

fn last(v: &Value) -> Result<Value, String> {
    Ok(items(v, "find last on")?.pop().unwrap_or(Value::Nil))
}

fn rest(v: &Value) -> Result<Value, String> {
    let mut i = items(v, "find rest on")?;
    if i.is_empty() {
        return Ok(list(i));
    }
    i.remove(0);
    Ok(list(i))
}

fn initial(v: &Value) -> Result<Value, String> {
    let mut i = items(v, "find initial on")?;
    i.pop();
    Ok(list(i))
}

fn push(l: &Value, v: &Value) -> Result<Value, String> {
    let mut i = items(l, "push on")?;
    i.push(v.clone());
    Ok(list(i))
}

fn prepend(l: &Value, v: &Value) -> Result<Value, String> {
    let mut i = items(l, "prepend on")?;
    i.insert(0, v.clone());
    Ok(list(i))
}

fn reverse(v: &Value) -> Result<Value, String> {
    let mut i = items(v, "find reverse on")?;
    i.reverse();
    Ok(list(i))
}

fn uniq(v: &Value) -> Result<Value, String> {
    let mut out: Vec<Value> = Vec::new();
    for x in items(v, "find uniq on")? {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    Ok(list(out))
}

fn compact(v: &Value) -> Result<Value, String> {
    Ok(list(
        items(v, "compact on")?
            .into_iter()
            .filter(|x| !empty(x))
            .collect(),
    ))
}

fn without(v: &Value, omit: &[Value]) -> Result<Value, String> {
    Ok(list(
        items(v, "find without on")?
            .into_iter()
            .filter(|x| !omit.contains(x))
            .collect(),
    ))
}

fn has(needle: &Value, hay: &Value) -> Result<Value, String> {
    if hay.is_nil() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(items(hay, "find has on")?.contains(needle)))
}

fn chunk(size: i64, v: &Value) -> Result<Value, String> {
    let i = items(v, "chunk")?;
    if size <= 0 {
        return Err("runtime error: integer divide by zero".into());
    }
    Ok(list(
        i.chunks(size as usize).map(|c| list(c.to_vec())).collect(),
    ))
}

fn slice(v: &Value, idx: &[Value]) -> Result<Value, String> {
    let len = match v {
        Value::List(l) => l.items.len(),
        Value::Bytes(b) => b.len(),
        Value::Nil => return Err(NIL_DEREF.into()),
        other => {
            return Err(format!(
                "list should be type of slice or array but {}",
                other.kind_name()
            ))
        }
    };
    if len == 0 {
        return Ok(Value::Nil);
    }
    let start = idx.first().map(to_int64).unwrap_or(0);
    let end = if idx.len() < 2 {
        len as i64
    } else {
        to_int64(&idx[1])
    };
    if start < 0 || end < start || end as usize > len {
        return Err("reflect: slice index out of range".into());
    }
    let (s, e) = (start as usize, end as usize);
    Ok(match v {
        Value::List(l) => Value::List(Rc::new(List {
            ty: l.ty,
            items: l.items[s..e].to_vec(),
        })),
        Value::Bytes(b) => Value::Bytes(Rc::from(&b[s..e])),
        _ => Value::Nil,
    })
}

fn concat(lists: &[Value]) -> Result<Value, String> {
    let mut out = Vec::new();
    for l in lists {
        match l {
            Value::List(x) => out.extend(x.items.iter().cloned()),
            Value::Bytes(b) => out.extend(b.iter().map(|x| Value::Uint(*x as u64))),
            Value::Nil => return Err(NIL_DEREF.into()),
            other => return Err(format!("Cannot concat type {} as list", other.kind_name())),
        }
    }
    Ok(list(out))
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    for name in ["list", "tuple"] {
        m.insert(
            name,
            fv(&[], Any, |a| Ok(Value::typed_list(ListType::Interface, a))),
        );
    }
    for name in ["append", "push", "mustAppend", "mustPush"] {
        m.insert(name, f(&[Any, Any], |a| push(&a[0], &a[1])));
    }
    for name in ["prepend", "mustPrepend"] {
        m.insert(name, f(&[Any, Any], |a| prepend(&a[0], &a[1])));
    }
    for name in ["first", "mustFirst"] {
        m.insert(name, f(&[Any], |a| first(&a[0])));
    }
    for name in ["rest", "mustRest"] {
        m.insert(name, f(&[Any], |a| rest(&a[0])));
    }
    for name in ["last", "mustLast"] {
        m.insert(name, f(&[Any], |a| last(&a[0])));
    }
    for name in ["initial", "mustInitial"] {
        m.insert(name, f(&[Any], |a| initial(&a[0])));
    }
    for name in ["reverse", "mustReverse"] {
        m.insert(name, f(&[Any], |a| reverse(&a[0])));
    }
    for name in ["uniq", "mustUniq"] {
        m.insert(name, f(&[Any], |a| uniq(&a[0])));
    }
    for name in ["compact", "mustCompact"] {
        m.insert(name, f(&[Any], |a| compact(&a[0])));
    }
    for name in ["without", "mustWithout"] {
        m.insert(name, fv(&[Any], Any, |a| without(&a[0], &a[1..])));
    }
    for name in ["has", "mustHas"] {
        m.insert(name, f(&[Any, Any], |a| has(&a[0], &a[1])));
    }
    for name in ["slice", "mustSlice"] {
        m.insert(name, fv(&[Any], Any, |a| slice(&a[0], &a[1..])));
    }
    for name in ["chunk", "mustChunk"] {
        m.insert(name, f(&[Int, Any], |a| chunk(n(&a, 0), &a[1])));
    }
    m.insert("concat", fv(&[], Any, |a| concat(&a)));
}
