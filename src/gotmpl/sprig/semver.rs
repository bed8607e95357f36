//! Sprig's `semver` and `semverCompare`, with Masterminds/semver v3's rules
//! (lenient versions with an optional `v` and missing parts, and its
//! constraint language: `>=1.2.3-0`, `~`, `^`, wildcards, hyphen ranges,
//! `||`). Constraints are evaluated by [`crate::image::semver::Range`],
//! the same evaluator Flux's image policies use.

use std::cmp::Ordering;

use super::{f, s};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::value::{Member, MethodSig, Object, Ty, Value};
use crate::image::semver::Range;

/// A Masterminds `*semver.Version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Prerelease (without the `-`).
    pub pre: String,
    /// Build metadata (without the `+`).
    pub metadata: String,
    /// The text as given.
    pub original: String,
}

fn valid_idents(s: &str, numeric_no_leading_zero: bool) -> Result<(), String> {
    for part in s.split('.') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("invalid semantic version".into());
        }
        if numeric_no_leading_zero
            && part.len() > 1
            && part.starts_with('0')
            && part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("version segment starts with 0".into());
        }
    }
    Ok(())
}

impl Version {
    /// Masterminds' `NewVersion`: `v` prefix allowed, minor and patch
    /// default to 0.
    pub fn parse(v: &str) -> Result<Version, String> {
        let bad = || "invalid semantic version".to_string();
        let body = v.strip_prefix('v').unwrap_or(v);
        let (rest, metadata) = match body.split_once('+') {
            Some((a, m)) => (a, m.to_string()),
            None => (body, String::new()),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((a, p)) => (a, p.to_string()),
            None => (rest, String::new()),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 {
            return Err(bad());
        }
        let mut parsed = [0u64; 3];
        for (i, n) in nums.iter().enumerate() {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            parsed[i] = n
                .parse()
                .map_err(|e| format!("error parsing version segment: {e}"))?;
        }
        if rest.contains('-') && pre.is_empty() || body.contains('+') && metadata.is_empty() {
            return Err(bad());
        }
        if !pre.is_empty() {
            valid_idents(&pre, true)?;
        }
        if !metadata.is_empty() {
            valid_idents(&metadata, false)?;
        }
        Ok(Version {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed[2],
            pre,
            metadata,
            original: v.to_string(),
        })
    }

    fn to_cargo(&self) -> Option<semver::Version> {
        let mut s = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            s.push('-');
            s.push_str(&self.pre);
        }
        semver::Version::parse(&s).ok()
    }

    /// Semver precedence (build metadata ignored).
    pub fn compare(&self, o: &Version) -> Ordering {
        let c = (self.major, self.minor, self.patch).cmp(&(o.major, o.minor, o.patch));
        if c != Ordering::Equal {
            return c;
        }
        match (self.pre.is_empty(), o.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => compare_pre(&self.pre, &o.pre),
        }
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = match (pa.get(i), pb.get(i)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) => (x, y),
        };
        let c = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

impl Object for Version {
    fn type_name(&self) -> String {
        "*semver.Version".into()
    }

    fn kind(&self) -> &'static str {
        "ptr"
    }

    fn member(&self, name: &str) -> Option<Member> {
        Some(Member::Field(match name {
            "Major" => Value::Uint(self.major),
            "Minor" => Value::Uint(self.minor),
            "Patch" => Value::Uint(self.patch),
            "Prerelease" => Value::str(&self.pre),
            "Metadata" => Value::str(&self.metadata),
            "Original" => Value::str(&self.original),
            "String" => Value::str(self.to_string()),
            "Compare" | "LessThan" | "GreaterThan" | "Equal" => {
                return Some(Member::Method(MethodSig {
                    params: vec![Ty::Object("*semver.Version")],
                    variadic: None,
                }))
            }
            _ => return None,
        }))
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let other = match args.first() {
            Some(Value::Object(o)) => o.as_any().downcast_ref::<Version>().cloned(),
            _ => None,
        };
        let Some(o) = other else {
            return Err("runtime error: invalid memory address or nil pointer dereference".into());
        };
        let c = self.compare(&o);
        Ok(match name {
            "Compare" => Value::Int(match c {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            }),
            "LessThan" => Value::Bool(c == Ordering::Less),
            "GreaterThan" => Value::Bool(c == Ordering::Greater),
            _ => Value::Bool(c == Ordering::Equal),
        })
    }

    fn format(&self, _plus: bool) -> String {
        self.to_string()
    }

    fn stringer(&self) -> Option<String> {
        Some(self.to_string())
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.to_string())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Masterminds' `Constraints.Check(NewVersion(version))`, as Sprig's
/// `semverCompare` (and Helm's `kubeVersion` check) evaluate it.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let range =
        Range::parse(constraint).map_err(|_| format!("improper constraint: {constraint}"))?;
    let v = Version::parse(version)?;
    Ok(v.to_cargo().is_some_and(|c| range.matches(&c)))
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert(
        "semver",
        f(&[String], |a| Ok(Value::object(Version::parse(s(&a, 0))?))),
    );
    m.insert(
        "semverCompare",
        f(&[String, String], |a| {
            semver_compare(s(&a, 0), s(&a, 1)).map(Value::Bool)
        }),
    );
}
