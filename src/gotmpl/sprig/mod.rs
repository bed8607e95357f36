//! Sprig v3's functions, with Go's semantics (Sprig is what Helm and Flux
//! templates call `upper`, `default`, `dict`, `semverCompare`, ...).
//!
//! Each function keeps Sprig's Go signature, so arguments are checked and
//! converted as Go would (`trunc` wants an `int`, `add` takes anything and
//! converts with `cast.ToInt64`). Functions that read the clock or draw
//! randomness (`now`, `randAlpha`, `uuidv4`, `shuffle`, ...) ask the
//! [`Host`](super::Host); nothing here reads either directly.
//!
//! Not here: `env`/`expandenv` (Helm removes them), `getHostByName` (Helm
//! answers `""` unless DNS is enabled; so does this), and the certificate
//! and key generators, password hashes and AES (`genCA`, `bcrypt`,
//! `encryptAES`, ...), which the `helm` feature adds with its crypto crates.

mod conv;
mod dates;
mod dicts;
pub mod json;
mod lists;
mod paths;
mod regex;
pub mod semver;
mod strings;

pub use dates::{Duration, GoTime};

use super::funcs::{Func, FuncMap, FuncResult};
use super::gofmt;
use super::value::{Ty, Value};
use super::Env;

/// Every Sprig function this crate provides.
pub fn funcs() -> FuncMap {
    let mut m = FuncMap::new();
    strings::register(&mut m);
    conv::register(&mut m);
    lists::register(&mut m);
    dicts::register(&mut m);
    regex::register(&mut m);
    paths::register(&mut m);
    dates::register(&mut m);
    semver::register(&mut m);
    json::register(&mut m);
    m.insert("hello", f(&[], |_| Ok(Value::str("Hello!"))));
    m.insert(
        "fail",
        f(&[Ty::String], |a| {
            Err(a[0].as_str().unwrap_or("").to_string())
        }),
    );
    m.insert("getHostByName", f(&[Ty::String], |_| Ok(Value::str(""))));
    m
}

/// A function that needs no host.
pub(crate) fn f(params: &[Ty], body: fn(Vec<Value>) -> FuncResult) -> Func {
    Func::new(params, move |_, a| body(a))
}

/// A variadic function that needs no host.
pub(crate) fn fv(params: &[Ty], rest: Ty, body: fn(Vec<Value>) -> FuncResult) -> Func {
    Func::variadic(params, rest, move |_, a| body(a))
}

/// A function that uses the host (clock or randomness).
pub(crate) fn fh(params: &[Ty], body: fn(&mut Env<'_>, Vec<Value>) -> FuncResult) -> Func {
    Func::new(params, body)
}

/// The string argument at `i` (converted by the executor already).
pub(crate) fn s(a: &[Value], i: usize) -> &str {
    a.get(i).and_then(Value::as_str).unwrap_or("")
}

/// The `int` argument at `i`.
pub(crate) fn n(a: &[Value], i: usize) -> i64 {
    match a.get(i) {
        Some(Value::Int(x)) | Some(Value::Int64(x)) => *x,
        _ => 0,
    }
}

/// Sprig's `strval`: strings as they are, `[]byte` as text, values with a
/// `String` method through it, anything else through `%v`.
pub fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Object(o) => o.stringer().unwrap_or_else(|| gofmt::sprint_value(v)),
        other => gofmt::sprint_value(other),
    }
}

/// Sprig's `empty`: the zero value of its type (structs are never empty).
pub fn empty(v: &Value) -> bool {
    match v {
        Value::Object(_) => false,
        other => !other.truth(),
    }
}

/// `cast.ToInt64`: numbers truncate, strings parse (base prefixes allowed,
/// `"7.0"` is 7), booleans are 0/1, anything else 0.
pub fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => {
            if f.is_nan() {
                i64::MIN
            } else {
                *f as i64
            }
        }
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => gofmt::parse_int_base0(trim_zero_decimal(s)).unwrap_or(0),
        Value::Object(o) => o
            .stringer()
            .and_then(|s| gofmt::parse_int_base0(trim_zero_decimal(&s)))
            .unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`.
pub fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => gofmt::parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// cast's `trimZeroDecimal`: `12.000` → `12`, `12.3` stays.
fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    let mut i = b.len();
    while i > 0 {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
                return s;
            }
            b'0' => found_zero = true,
            _ => return s,
        }
        i -= 1;
    }
    s
}

/// Sprig's `strslice`: a list as strings (nil items dropped), anything
/// else as a one-item list.
pub fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.items.iter().filter(|x| !x.is_nil()).map(strval).collect(),
        Value::Bytes(b) => b.iter().map(|x| x.to_string()).collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// Go's `reflect.DeepEqual` on template values.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    a == b
}
