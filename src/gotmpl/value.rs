//! Values as a template sees them, with Go's dynamic types.
//!
//! Go templates run over `interface{}` values whose dynamic type decides
//! how they print (`%v`, `%T`), compare (`eq` refuses `int` against
//! `float64`) and convert when passed to a function. [`Value`] keeps that
//! type: an integer literal is an `int`, a number from a YAML values file
//! is a `float64` (Helm reads values through JSON), `--set replicas=3` is an
//! `int64`. Maps are shared and mutable, like Go maps (`set` on a map is
//! seen by every holder); lists are immutable, which is all Sprig needs.
//!
//! Host types with fields and methods (Helm's `.Capabilities`, `.Files`,
//! Sprig's semver `Version`, `time.Time`) implement [`Object`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// Go's type of a list's elements, for `%T`, `typeOf` and conversions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType {
    /// `[]interface {}`
    Interface,
    /// `[]string`
    String,
    /// `[]int`
    Int,
}

/// Go's type of a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapType {
    /// `map[string]interface {}`
    Interface,
    /// A named type over `map[string]interface {}` (Helm's `chartutil.Values`).
    Named(Rc<str>),
    /// `map[string]string`: a missing key reads as `""`.
    String,
}

/// A map as Go holds it: string keys, kept sorted (Go sorts keys whenever
/// it prints or ranges over a map, so the order never leaks).
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Go's type of the map.
    pub ty: MapType,
    /// The entries.
    pub entries: BTreeMap<String, Value>,
}

/// A list (a Go slice).
#[derive(Clone, Debug, PartialEq)]
pub struct List {
    /// Go's element type.
    pub ty: ListType,
    /// The items.
    pub items: Vec<Value>,
}

/// A typed parameter or argument kind, used to convert arguments the way
/// Go's `text/template` does before calling a function or method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `interface{}`: anything, including nil.
    Any,
    /// `reflect.Value` (the builtins `eq`, `index`, ...): anything.
    Reflect,
    /// `string`
    String,
    /// `int`
    Int,
    /// `int64`
    Int64,
    /// `float64`
    Float,
    /// `bool`
    Bool,
    /// `map[string]interface {}` (a named map type such as
    /// `chartutil.Values` is assignable to it).
    Map,
    /// `[]interface {}`
    List,
    /// `[]string`
    Strings,
    /// `[]byte`
    Bytes,
    /// A host type by its Go name (`time.Time`, `*semver.Version`).
    Object(&'static str),
}

impl Ty {
    /// Go's spelling of the type, as in "expected string".
    pub fn go_name(self) -> &'static str {
        match self {
            Ty::Any => "interface {}",
            Ty::Reflect => "reflect.Value",
            Ty::String => "string",
            Ty::Int => "int",
            Ty::Int64 => "int64",
            Ty::Float => "float64",
            Ty::Bool => "bool",
            Ty::Map => "map[string]interface {}",
            Ty::List => "[]interface {}",
            Ty::Strings => "[]string",
            Ty::Bytes => "[]uint8",
            Ty::Object(n) => n,
        }
    }
}

/// What a field lookup on an [`Object`] found.
pub enum Member {
    /// A field (or a method without arguments that Go would call).
    Field(Value),
    /// A method that takes arguments of these types.
    Method(MethodSig),
}

/// A method's parameters.
#[derive(Clone, Debug)]
pub struct MethodSig {
    /// Fixed parameters.
    pub params: Vec<Ty>,
    /// Element type of a final variadic parameter.
    pub variadic: Option<Ty>,
}

/// A host type with fields and methods.
pub trait Object: fmt::Debug {
    /// Go's name of the dynamic type (`%T`), e.g. `*chartutil.Capabilities`.
    fn type_name(&self) -> String;
    /// `reflect.Kind` as Sprig's `kindOf` prints it (`struct`, `ptr`, `map`).
    fn kind(&self) -> &'static str {
        "struct"
    }
    /// A field or method by name; `None` when the type has neither.
    fn member(&self, name: &str) -> Option<Member>;
    /// Calls a method found by [`Object::member`].
    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let _ = args;
        Err(format!("can't call method {name}"))
    }
    /// `%v`: how `fmt` prints the value (`plus` for `%+v`).
    fn format(&self, plus: bool) -> String;
    /// The result of a `String()` method, when the printed value has one
    /// (text/template's printing and Sprig's `toString` use it).
    fn stringer(&self) -> Option<String> {
        None
    }
    /// What `{{ value }}` prints when it differs from [`Object::stringer`]
    /// (Go calls a pointer-receiver `String` on addressable fields).
    fn template_string(&self) -> Option<String> {
        self.stringer()
    }
    /// The value as `encoding/json` would marshal it.
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The items a `range` visits, for objects Go can range over.
    fn range(&self) -> Option<Vec<(Value, Value)>> {
        None
    }
    /// `len` of the object, if it has one.
    fn len(&self) -> Option<usize> {
        None
    }
    /// True when [`Object::len`] is zero.
    fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
    /// `index obj key`, for map- or slice-like objects.
    fn index(&self, key: &Value) -> Option<Result<Value, String>> {
        let _ = key;
        None
    }
    /// Whether `if` treats it as true (structs always are).
    fn truth(&self) -> bool {
        true
    }
    /// For downcasting in host functions.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A template value.
#[derive(Clone)]
pub enum Value {
    /// Go's untyped nil: a missing map key, `nil`, an unset variable.
    Nil,
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `int64`
    Int64(i64),
    /// `uint64`
    Uint(u64),
    /// `float64`
    Float(f64),
    /// `string`
    Str(Rc<str>),
    /// `[]byte`
    Bytes(Rc<[u8]>),
    /// A slice.
    List(Rc<List>),
    /// A map (shared and mutable, like a Go map).
    Map(Rc<RefCell<Map>>),
    /// A host type.
    Object(Rc<dyn Object>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Int64(i) => write!(f, "Int64({i})"),
            Value::Uint(i) => write!(f, "Uint({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::Bytes(b) => write!(f, "Bytes({b:?})"),
            Value::List(l) => write!(f, "List({:?}, {:?})", l.ty, l.items),
            Value::Map(m) => write!(f, "Map({:?})", m.borrow().entries),
            Value::Object(o) => write!(f, "Object({})", o.type_name()),
        }
    }
}

impl PartialEq for Value {
    /// Deep equality (Sprig's `deepEqual`, tests); not Go's `eq`.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::Uint(a), Value::Uint(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a.ty == b.ty && a.items == b.items,
            (Value::Map(a), Value::Map(b)) => {
                Rc::ptr_eq(a, b) || {
                    let (a, b) = (a.borrow(), b.borrow());
                    a.ty == b.ty && a.entries == b.entries
                }
            }
            (Value::Object(a), Value::Object(b)) => {
                Rc::ptr_eq(a, b)
                    || a.type_name() == b.type_name() && a.format(true) == b.format(true)
            }
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Rc::from(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl Value {
    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Rc::from(s.as_ref()))
    }

    /// A `[]interface {}`.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(List {
            ty: ListType::Interface,
            items,
        }))
    }

    /// A list with a given element type.
    pub fn typed_list(ty: ListType, items: Vec<Value>) -> Value {
        Value::List(Rc::new(List { ty, items }))
    }

    /// A `map[string]interface {}`.
    pub fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(Map {
            ty: MapType::Interface,
            entries,
        })))
    }

    /// A map of the given type.
    pub fn typed_map(ty: MapType, entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(Map { ty, entries })))
    }

    /// Wraps a host object.
    pub fn object(o: impl Object + 'static) -> Value {
        Value::Object(Rc::new(o))
    }

    /// True for the untyped nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The string, if this is a `string`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's dynamic type name (`%T`, Sprig's `typeOf`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Int64(_) => "int64".into(),
            Value::Uint(_) => "uint64".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::Bytes(_) => "[]uint8".into(),
            Value::List(l) => match l.ty {
                ListType::Interface => "[]interface {}".into(),
                ListType::String => "[]string".into(),
                ListType::Int => "[]int".into(),
            },
            Value::Map(m) => match &m.borrow().ty {
                MapType::Interface => "map[string]interface {}".into(),
                MapType::Named(n) => n.to_string(),
                MapType::String => "map[string]string".into(),
            },
            Value::Object(o) => o.type_name(),
        }
    }

    /// Go's `reflect.Kind` name (Sprig's `kindOf`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Bytes(_) | Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(o) => o.kind(),
        }
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.borrow().entries.is_empty(),
            Value::Object(o) => o.truth(),
        }
    }

    /// Length for `len`: bytes of a string, items of a list or map.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::Bytes(b) => Some(b.len()),
            Value::List(l) => Some(l.items.len()),
            Value::Map(m) => Some(m.borrow().entries.len()),
            Value::Object(o) => o.len(),
            _ => None,
        }
    }

    /// True when the value is a Go string, list or map with no items
    /// (`len` would say 0).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// A deep copy: maps are no longer shared (Sprig's `deepCopy`).
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::List(l) => Value::List(Rc::new(List {
                ty: l.ty,
                items: l.items.iter().map(Value::deep_copy).collect(),
            })),
            Value::Map(m) => {
                let m = m.borrow();
                Value::Map(Rc::new(RefCell::new(Map {
                    ty: m.ty.clone(),
                    entries: m
                        .entries
                        .iter()
                        .map(|(k, v)| (k.clone(), v.deep_copy()))
                        .collect(),
                })))
            }
            other => other.clone(),
        }
    }

    /// Converts JSON into a template value the way Helm's values arrive:
    /// every number is a `float64`, objects are `map[string]interface {}`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts JSON keeping integers as `int64` (the types `--set` and
    /// `--set-json` produce).
    pub fn from_json_int64(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::Array(a) => {
                Value::list(a.iter().map(Value::from_json_int64).collect())
            }
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json_int64(v)))
                    .collect(),
            ),
            other => Value::from_json(other),
        }
    }

    /// The value as `encoding/json` would marshal it (integral floats stay
    /// numbers; `[]byte` becomes base64).
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) | Value::Int64(i) => serde_json::Value::from(*i),
            Value::Uint(u) => serde_json::Value::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::List(l) => {
                serde_json::Value::Array(l.items.iter().map(Value::to_json).collect())
            }
            Value::Map(m) => serde_json::Value::Object(
                m.borrow()
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Object(o) => o.to_json(),
        }
    }
}

/// The items of a map, cloned out of the shared cell (sorted by key).
pub fn map_entries(m: &Rc<RefCell<Map>>) -> Vec<(String, Value)> {
    m.borrow()
        .entries
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
