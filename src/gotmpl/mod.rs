//! Go's `text/template`, with Sprig's functions: the engine behind Helm
//! charts and image-automation commit messages.
//!
//! The engine follows Go rule for rule, because charts depend on the
//! details: the same lexing and trimming (`{{- ... -}}`), the same parse
//! errors (`template: NAME:LINE: ...`), the same execution errors with the
//! template name, line, column and node (`template: x.yaml:3:5: executing
//! "x.yaml" at <.Values.a.b>: nil pointer evaluating interface {}.b`), Go's
//! typing when comparing (`eq 1 1.0` is an error) and when passing
//! arguments, maps ranged in key order, `break`/`continue`, `range` over
//! integers, and `fmt`'s verbs.
//!
//! ```
//! use std::rc::Rc;
//! use driftless::gotmpl::{self, Templates, Value};
//!
//! let mut set = Templates::new("example", Rc::new(gotmpl::sprig::funcs()));
//! set.parse("greeting", r#"{{ range $i, $n := .names }}{{ if $i }}, {{ end }}{{ $n | upper }}{{ end }}"#).unwrap();
//! let data = gotmpl::from_json(&serde_json::json!({"names": ["ann", "bob"]}));
//! let out = gotmpl::render(&Rc::new(set), "greeting", &data).unwrap();
//! assert_eq!(out, "ANN, BOB");
//! ```
//!
//! The core reads no clock and no randomness: Sprig's `now`, `randAlpha`,
//! `uuidv4` and friends ask the [`Host`]. [`FixedHost`] is a deterministic
//! host for tests and reproducible renders.

mod builtins;
mod exec;
mod funcs;
pub mod gofmt;
mod lex;
mod parse;
pub mod sprig;
mod value;

use std::rc::Rc;

pub use builtins::{eq as go_eq, html_escape, is_builtin, js_escape, query_escape};
pub use exec::{print_text, Env, MissingKey, Templates};
pub use funcs::{Func, FuncBody, FuncMap, FuncResult};
pub use parse::{ParseError, Tree};
pub use value::{map_entries, List, ListType, Map, MapType, Member, MethodSig, Object, Ty, Value};

/// An execution error as Go's `template.ExecError` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    /// The name of the template that was executing.
    pub name: String,
    /// The whole message, `template: LOCATION: executing "NAME" at <NODE>: ...`.
    pub message: String,
}

/// Why a template could not be parsed or run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text does not parse.
    #[error("{0}")]
    Parse(ParseError),
    /// Execution failed (Go's `ExecError`).
    #[error("{}", .0.message)]
    Exec(ExecError),
    /// Any other error (an unknown template name, ...), as Go words it.
    #[error("{0}")]
    Other(String),
}

/// Bounds on one execution, so hostile templates cannot exhaust the stack,
/// the CPU or memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of template calls (`template`, and host functions
    /// such as Helm's `include` and `tpl`).
    pub max_depth: usize,
    /// Most nodes evaluated in one execution (range iterations included).
    pub max_steps: u64,
    /// Largest output of one template, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 256,
            max_steps: 50_000_000,
            max_output: 64 * 1024 * 1024,
        }
    }
}

/// A point in time as the host's clock gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

/// What the host supplies: the clock and randomness (the core never reads
/// either itself).
pub trait Host {
    /// The current time (Sprig's `now`, `ago`, `dateInZone` without a date).
    fn now(&mut self) -> Instant;
    /// The local time zone: offset east of UTC in seconds and its name
    /// (Sprig's `date` formats in local time, as Go does).
    fn local_zone(&mut self) -> (i32, String) {
        (0, "UTC".into())
    }
    /// Fills `buf` with random bytes (Sprig's `rand*`, `uuidv4`, `shuffle`).
    fn fill_random(&mut self, buf: &mut [u8]);
}

/// A deterministic host: a fixed time and a seeded pseudo-random stream
/// (SplitMix64), for tests and reproducible renders.
#[derive(Clone, Debug)]
pub struct FixedHost {
    /// The time `now` returns.
    pub now: Instant,
    state: u64,
}

impl FixedHost {
    /// A host whose clock reads `unix` seconds and whose random stream
    /// starts from `seed`.
    pub fn new(unix: i64, seed: u64) -> Self {
        FixedHost {
            now: Instant { unix, nanos: 0 },
            state: seed,
        }
    }
}

impl Default for FixedHost {
    fn default() -> Self {
        FixedHost::new(0, 0)
    }
}

impl Host for FixedHost {
    fn now(&mut self) -> Instant {
        self.now
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Converts JSON into a template value (numbers become `float64`, as
/// values read through JSON do in Go).
pub fn from_json(v: &serde_json::Value) -> Value {
    Value::from_json(v)
}

/// Runs template `name` of `set` over `data` with a [`FixedHost`] and the
/// default [`Limits`].
pub fn render(set: &Rc<Templates>, name: &str, data: &Value) -> Result<String, Error> {
    let mut host = FixedHost::default();
    let mut ext = ();
    set.execute(name, data, &mut host, &mut ext, &Limits::default())
}
