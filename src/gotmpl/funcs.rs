//! Function maps: named functions with Go parameter types.
//!
//! Go checks and converts each argument against the function's declared
//! parameter type before the call (`wrong type for value; expected string;
//! got float64`, `expected integer; found "x"`); [`Func`] carries those
//! types so the executor can do the same.

use std::collections::HashMap;
use std::rc::Rc;

use super::exec::Env;
use super::value::{Ty, Value};

/// What a function returns: a value, or the error Go's function would
/// return (or panic with), without the `error calling NAME:` prefix.
pub type FuncResult = Result<Value, String>;

/// A function's body.
pub type FuncBody = Rc<dyn Fn(&mut Env<'_>, Vec<Value>) -> FuncResult>;

/// A template function.
#[derive(Clone)]
pub struct Func {
    /// Fixed parameters.
    pub params: Vec<Ty>,
    /// Element type of a final variadic parameter.
    pub variadic: Option<Ty>,
    /// The body, called with converted arguments.
    pub body: FuncBody,
}

impl std::fmt::Debug for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Func")
            .field("params", &self.params)
            .field("variadic", &self.variadic)
            .finish()
    }
}

impl Func {
    /// A function with fixed parameters.
    pub fn new(
        params: &[Ty],
        body: impl Fn(&mut Env<'_>, Vec<Value>) -> FuncResult + 'static,
    ) -> Func {
        Func {
            params: params.to_vec(),
            variadic: None,
            body: Rc::new(body),
        }
    }

    /// A function whose last parameter is variadic (`...T`).
    pub fn variadic(
        params: &[Ty],
        rest: Ty,
        body: impl Fn(&mut Env<'_>, Vec<Value>) -> FuncResult + 'static,
    ) -> Func {
        Func {
            params: params.to_vec(),
            variadic: Some(rest),
            body: Rc::new(body),
        }
    }
}

/// Named functions available to templates (Go's `template.FuncMap`).
#[derive(Clone, Debug, Default)]
pub struct FuncMap {
    map: HashMap<String, Func>,
}

impl FuncMap {
    /// An empty map (the builtins are always there).
    pub fn new() -> Self {
        FuncMap::default()
    }

    /// Adds or replaces a function.
    pub fn insert(&mut self, name: &str, f: Func) {
        self.map.insert(name.to_string(), f);
    }

    /// Looks a function up.
    pub fn get(&self, name: &str) -> Option<&Func> {
        self.map.get(name)
    }

    /// True when the map defines `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Adds every function of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: FuncMap) {
        self.map.extend(other.map);
    }
}
