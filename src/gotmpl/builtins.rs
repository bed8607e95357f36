//! The functions every Go template has: `and or not len index slice print
//! printf println html js urlquery eq ne lt le gt ge call`.

use std::rc::Rc;

use super::funcs::{Func, FuncMap, FuncResult};
use super::gofmt;
use super::value::{MapType, Ty, Value};

const NAMES: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// True for the names of Go's builtin template functions.
pub fn is_builtin(name: &str) -> bool {
    NAMES.contains(&name)
}

thread_local! {
    static BUILTINS: FuncMap = build();
}

/// A builtin by name.
pub(crate) fn get(name: &str) -> Option<Func> {
    BUILTINS.with(|m| m.get(name).cloned())
}

fn f(params: &[Ty], body: fn(Vec<Value>) -> FuncResult) -> Func {
    Func::new(params, move |_, a| body(a))
}

fn fv(params: &[Ty], rest: Ty, body: fn(Vec<Value>) -> FuncResult) -> Func {
    Func::variadic(params, rest, move |_, a| body(a))
}

fn build() -> FuncMap {
    use Ty::*;
    let mut m = FuncMap::new();
    m.insert("and", fv(&[Reflect], Reflect, |_| Ok(Value::Nil)));
    m.insert("or", fv(&[Reflect], Reflect, |_| Ok(Value::Nil)));
    m.insert("call", fv(&[Reflect], Reflect, |_| Ok(Value::Nil)));
    m.insert("not", f(&[Reflect], |a| Ok(Value::Bool(!a[0].truth()))));
    m.insert("len", f(&[Reflect], |a| length(&a[0]).map(Value::Int)));
    m.insert("index", fv(&[Reflect], Reflect, |a| index(&a[0], &a[1..])));
    m.insert("slice", fv(&[Reflect], Reflect, |a| slice(&a[0], &a[1..])));
    m.insert("print", fv(&[], Any, |a| Ok(Value::str(gofmt::sprint(&a)))));
    m.insert(
        "println",
        fv(&[], Any, |a| Ok(Value::str(gofmt::sprintln(&a)))),
    );
    m.insert(
        "printf",
        fv(&[String], Any, |a| {
            let format = a[0].as_str().unwrap_or("").to_string();
            Ok(Value::str(gofmt::sprintf(&format, &a[1..])))
        }),
    );
    m.insert(
        "html",
        fv(&[], Any, |a| Ok(Value::str(html_escape(&eval_args(&a))))),
    );
    m.insert(
        "js",
        fv(&[], Any, |a| Ok(Value::str(js_escape(&eval_args(&a))))),
    );
    m.insert(
        "urlquery",
        fv(&[], Any, |a| Ok(Value::str(query_escape(&eval_args(&a))))),
    );
    m.insert(
        "eq",
        fv(&[Reflect], Reflect, |a| eq(&a[0], &a[1..]).map(Value::Bool)),
    );
    m.insert(
        "ne",
        f(&[Reflect, Reflect], |a| {
            eq(&a[0], &a[1..2]).map(|b| Value::Bool(!b))
        }),
    );
    m.insert(
        "lt",
        f(&[Reflect, Reflect], |a| lt(&a[0], &a[1]).map(Value::Bool)),
    );
    m.insert(
        "le",
        f(&[Reflect, Reflect], |a| le(&a[0], &a[1]).map(Value::Bool)),
    );
    m.insert(
        "gt",
        f(&[Reflect, Reflect], |a| {
            le(&a[0], &a[1]).map(|b| Value::Bool(!b))
        }),
    );
    m.insert(
        "ge",
        f(&[Reflect, Reflect], |a| {
            lt(&a[0], &a[1]).map(|b| Value::Bool(!b))
        }),
    );
    m
}

/// Go's `evalArgs`: a single string as is, anything else through `Sprint`.
pub fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}

/// `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) < 0x80 => out.push(c),
            c if gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn length(v: &Value) -> Result<i64, String> {
    match v.len() {
        Some(n) => Ok(n as i64),
        None => match v {
            Value::Nil => Err("len of nil pointer".into()),
            other => Err(format!("len of type {}", other.type_name())),
        },
    }
}

fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match v {
        Value::Int(i) | Value::Int64(i) => *i as i128,
        Value::Uint(u) => *u as i128,
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

/// Go's `index`.
pub fn index(item: &Value, indexes: &[Value]) -> FuncResult {
    if item.is_nil() {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for ix in indexes {
        item = match &item {
            Value::Nil => return Err("index of nil pointer".into()),
            Value::List(l) => {
                let x = index_arg(ix, l.items.len())?;
                match l.items.get(x) {
                    Some(v) => v.clone(),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::Bytes(b) => {
                let x = index_arg(ix, b.len())?;
                match b.get(x) {
                    Some(v) => Value::Uint(*v as u64),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::Str(s) => {
                let x = index_arg(ix, s.len())?;
                match s.as_bytes().get(x) {
                    Some(v) => Value::Uint(*v as u64),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Map(m) => {
                let key = match ix {
                    Value::Str(k) => k.clone(),
                    Value::Nil => {
                        return Err("value is nil; should be of type string".into());
                    }
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                };
                let m = m.borrow();
                match m.entries.get(&*key) {
                    Some(v) => v.clone(),
                    None => {
                        if m.ty == MapType::String {
                            Value::str("")
                        } else {
                            Value::Nil
                        }
                    }
                }
            }
            Value::Object(o) => match o.index(ix) {
                Some(r) => r?,
                None => return Err(format!("can't index item of type {}", o.type_name())),
            },
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

/// Go's `slice`.
pub fn slice(item: &Value, indexes: &[Value]) -> FuncResult {
    if item.is_nil() {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.items.len(),
        Value::Bytes(b) => b.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0usize, len, len];
    for (i, x) in indexes.iter().enumerate() {
        idx[i] = index_arg(x, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => match s.get(idx[0]..idx[1]) {
            Some(t) => Value::str(t),
            None => Value::str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        },
        Value::List(l) => Value::List(Rc::new(super::value::List {
            ty: l.ty,
            items: l.items[idx[0]..idx[1]].to_vec(),
        })),
        Value::Bytes(b) => Value::Bytes(Rc::from(&b[idx[0]..idx[1]])),
        _ => Value::Nil,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    Str,
    Invalid,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Invalid,
    }
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        _ => 0,
    }
}

fn uint_of(v: &Value) -> u64 {
    match v {
        Value::Uint(u) => *u,
        _ => 0,
    }
}

fn float_of(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Go's `eq`: true when `a` equals any of `bs`.
pub fn eq(a: &Value, bs: &[Value]) -> Result<bool, String> {
    if bs.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in bs {
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Kind::Int, Kind::Uint) => int_of(a) >= 0 && int_of(a) as u64 == uint_of(b),
                (Kind::Uint, Kind::Int) => int_of(b) >= 0 && uint_of(a) == int_of(b) as u64,
                _ => {
                    if !a.is_nil() && !b.is_nil() {
                        return Err(format!(
                            "incompatible types for comparison: {} and {}",
                            a.type_name(),
                            b.type_name()
                        ));
                    }
                    false
                }
            }
        } else {
            match k1 {
                Kind::Bool => a.truth() == b.truth(),
                Kind::Float => float_of(a) == float_of(b),
                Kind::Int => int_of(a) == int_of(b),
                Kind::Str => str_of(a) == str_of(b),
                Kind::Uint => uint_of(a) == uint_of(b),
                Kind::Invalid => {
                    if a.is_nil() || b.is_nil() {
                        a.is_nil() == b.is_nil()
                    } else if a.type_name() != b.type_name() {
                        return Err(format!(
                            "incompatible types for comparison: {} and {}",
                            a.type_name(),
                            b.type_name()
                        ));
                    } else {
                        match (a, b) {
                            (Value::List(_), _) | (Value::Map(_), _) | (Value::Bytes(_), _) => {
                                return Err(format!(
                                    "non-comparable type {}: {}",
                                    gofmt::sprint_value(b),
                                    b.type_name()
                                ))
                            }
                            _ => a == b,
                        }
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
pub fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let k1 = basic_kind(a);
    if k1 == Kind::Invalid {
        return Err("invalid type for comparison".into());
    }
    let k2 = basic_kind(b);
    if k2 == Kind::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) => Ok(int_of(a) < 0 || (int_of(a) as u64) < uint_of(b)),
            (Kind::Uint, Kind::Int) => Ok(int_of(b) >= 0 && uint_of(a) < int_of(b) as u64),
            _ => Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            )),
        };
    }
    Ok(match k1 {
        Kind::Bool => return Err("invalid type for comparison".into()),
        Kind::Float => float_of(a) < float_of(b),
        Kind::Int => int_of(a) < int_of(b),
        Kind::Str => str_of(a) < str_of(b),
        Kind::Uint => uint_of(a) < uint_of(b),
        Kind::Invalid => false,
    })
}

/// Go's `le`.
pub fn le(a: &Value, b: &Value) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}
