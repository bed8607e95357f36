//! Semver ranges with the rules Flux's image-reflector-controller applies.
//!
//! Flux parses ranges with Masterminds/semver v3 and tags with
//! `fluxcd/pkg/version.ParseVersion` (strict `X.Y.Z[-pre][+build]`, with an
//! optional leading `v`). Masterminds' range language is not Cargo's:
//!
//! * comparators in one group are separated by spaces **or** commas and are
//!   ANDed (`>=1.2.0 <1.3.0`); groups are ORed with `||`;
//! * `1.2.x`, `1.2.*`, `1.2` and `1` are wildcards (`=1.2` means `~1.2`);
//! * `~1.2.3` is `>=1.2.3 <1.3.0`, `~1` is `>=1.0.0 <2.0.0`;
//! * `^1.2.3` is `>=1.2.3 <2.0.0`, `^0.2.3` is `>=0.2.3 <0.3.0`,
//!   `^0.0.3` is `=0.0.3`;
//! * `1.2.3 - 1.4.5` is `>=1.2.3 <=1.4.5`;
//! * a prerelease version satisfies a comparator only when that comparator's
//!   own version carries a prerelease (`>=1.2.0-0 <1.3.0-0` admits
//!   `1.2.8-rc.1`; `>=1.2.0 <1.3.0` does not). Cargo's rule (same
//!   `major.minor.patch` only) differs, which is why this module evaluates
//!   the comparators itself on [`semver::Version`] instead of translating to
//!   [`semver::VersionReq`].
//!
//! Versions are compared by semver precedence: build metadata is ignored.

use std::cmp::Ordering;
use std::sync::OnceLock;

use regex::Regex;
use semver::Version;

/// A range that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("improper semver constraint {constraint:?}: {reason}")]
#[non_exhaustive]
pub struct RangeError {
    /// The constraint (or the part of it) that was refused.
    pub constraint: String,
    /// Why.
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    con: Version,
    /// The text as written, for Display.
    orig: String,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A parsed Masterminds range: OR of AND groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    text: String,
    groups: Vec<Vec<Comparator>>,
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

struct Patterns {
    constraint: Regex,
    range: Regex,
    find: Regex,
    valid: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // The patterns are constants; compiling them cannot fail.
        let build = |s: String| Regex::new(&s).unwrap_or_else(|_| unreachable_regex());
        Patterns {
            constraint: build(format!(r"^\s*({OPS})\s*({CV})\s*$")),
            range: build(format!(r"\s*({CV})\s+-\s+({CV})\s*")),
            find: build(format!(r"({OPS})\s*({CV})")),
            valid: build(format!(
                r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
            )),
        }
    })
}

#[cold]
fn unreachable_regex() -> Regex {
    // Only reached if a constant pattern above were invalid.
    Regex::new("$^").unwrap_or_else(|_| unreachable_regex())
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Range {
    /// Parses a range in Masterminds/semver v3 syntax.
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let p = patterns();
        // rewrite hyphen ranges `a - b` into `>= a, <= b`
        let mut rewritten = text.to_string();
        let hyphens: Vec<(String, String, String)> = p
            .range
            .captures_iter(text)
            .filter_map(|c| {
                Some((
                    c.get(0)?.as_str().to_string(),
                    c.get(1)?.as_str().to_string(),
                    c.get(11)?.as_str().to_string(),
                ))
            })
            .collect();
        for (whole, a, b) in hyphens {
            rewritten = rewritten.replacen(&whole, &format!(">= {a}, <= {b}"), 1);
        }
        let mut groups = Vec::new();
        for part in rewritten.split("||") {
            if !p.valid.is_match(part) {
                return Err(RangeError {
                    constraint: part.trim().to_string(),
                    reason:
                        "expected comparators such as '>=1.2.0 <1.3.0', '~1.2', '^1.2' or '1.2.x'"
                            .into(),
                });
            }
            let mut group = Vec::new();
            for m in p.find.find_iter(part) {
                group.push(parse_comparator(m.as_str())?);
            }
            if group.is_empty() {
                group.push(parse_comparator(part)?);
            }
            groups.push(group);
        }
        Ok(Range {
            text: text.to_string(),
            groups,
        })
    }

    /// True when `v` satisfies the range.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|g| g.iter().all(|c| check(c, v)))
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn parse_comparator(s: &str) -> Result<Comparator, RangeError> {
    let p = patterns();
    let err = |reason: &str| RangeError {
        constraint: s.trim().to_string(),
        reason: reason.to_string(),
    };
    let m = p
        .constraint
        .captures(s)
        .ok_or_else(|| err("not a comparator"))?;
    let group = |i: usize| m.get(i).map(|x| x.as_str()).unwrap_or("");
    let op = match group(1) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return Err(err("unknown operator")),
    };
    let orig = group(2).to_string();
    let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let ver = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}{minor}.0{pre}")
    } else {
        format!("{major}{minor}{patch}{pre}")
    };
    let con = parse_loose(&ver).ok_or_else(|| err("not a version"))?;
    Ok(Comparator {
        op,
        con,
        orig,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Parses a constraint version (numbers may carry leading zeros in
/// Masterminds' lenient parser; normalize them).
fn parse_loose(s: &str) -> Option<Version> {
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut nums = core.split('.').map(|n| n.parse::<u64>().ok());
    let (a, b, c) = (nums.next()??, nums.next()??, nums.next()??);
    Version::parse(&format!("{a}.{b}.{c}{rest}")).ok()
}

/// Parses a tag the way Flux does: strict semver with an optional leading `v`.
pub fn parse_tag(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

fn check(c: &Comparator, v: &Version) -> bool {
    if !v.pre.is_empty() && c.con.pre.is_empty() {
        return false;
    }
    match c.op {
        Op::NotEqual => {
            if c.dirty {
                if c.con.major != v.major {
                    return true;
                }
                if c.con.minor != v.minor && !c.minor_dirty {
                    return true;
                } else if c.minor_dirty {
                    return false;
                } else if c.con.patch != v.patch && !c.patch_dirty {
                    return true;
                } else if c.patch_dirty {
                    if !v.pre.is_empty() || !c.con.pre.is_empty() {
                        return v.pre != c.con.pre;
                    }
                    return false;
                }
            }
            cmp(v, &c.con) != Ordering::Equal
        }
        Op::Greater => {
            if !c.dirty {
                return cmp(v, &c.con) == Ordering::Greater;
            }
            if v.major > c.con.major {
                true
            } else if v.major < c.con.major || c.minor_dirty {
                false
            } else if c.patch_dirty {
                v.minor > c.con.minor
            } else {
                cmp(v, &c.con) == Ordering::Greater
            }
        }
        Op::Less => cmp(v, &c.con) == Ordering::Less,
        Op::GreaterEqual => cmp(v, &c.con) != Ordering::Less,
        Op::LessEqual => {
            if !c.dirty {
                return cmp(v, &c.con) != Ordering::Greater;
            }
            if v.major > c.con.major {
                false
            } else {
                !(v.major == c.con.major && v.minor > c.con.minor && !c.minor_dirty)
            }
        }
        Op::Tilde => tilde(c, v),
        Op::TildeOrEqual => {
            if c.dirty {
                tilde(c, v)
            } else {
                cmp(v, &c.con) == Ordering::Equal
            }
        }
        Op::Caret => {
            if cmp(v, &c.con) == Ordering::Less {
                return false;
            }
            if c.con.major > 0 || c.minor_dirty {
                return v.major == c.con.major;
            }
            if v.major > 0 {
                return false;
            }
            if c.con.minor > 0 || c.patch_dirty {
                return v.minor == c.con.minor;
            }
            if v.minor > 0 {
                return false;
            }
            v.patch == c.con.patch
        }
    }
}

fn tilde(c: &Comparator, v: &Version) -> bool {
    if cmp(v, &c.con) == Ordering::Less {
        return false;
    }
    if c.con.major == 0 && c.con.minor == 0 && c.con.patch == 0 && !c.minor_dirty && !c.patch_dirty
    {
        return true;
    }
    if v.major != c.con.major {
        return false;
    }
    v.minor == c.con.minor || c.minor_dirty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(range: &str, tag: &str) -> bool {
        let r = Range::parse(range).unwrap();
        r.matches(&parse_tag(tag).unwrap())
    }

    #[test]
    fn space_and_comma_mean_and() {
        assert!(ok(">=1.2.0 <1.3.0", "v1.2.7"));
        assert!(!ok(">=1.2.0 <1.3.0", "v1.3.0"));
        assert!(ok(">=1.2.0, <1.3.0", "1.2.0"));
        assert!(!ok(">=1.2.0,<1.3.0", "1.1.9"));
    }

    #[test]
    fn prereleases_only_when_the_comparator_asks() {
        assert!(!ok(">=1.2.0 <1.3.0", "1.2.8-rc.1"));
        assert!(ok(">=1.2.0-0 <1.3.0-0", "1.2.8-rc.1"));
        assert!(ok(">=1.2.0-alpha", "1.2.8-rc.1"));
    }

    #[test]
    fn wildcards_tilde_caret_hyphen_or() {
        assert!(ok("1.2.x", "1.2.9"));
        assert!(!ok("1.2.x", "1.3.0"));
        assert!(ok("1.2", "1.2.9"));
        assert!(ok("~1.2", "1.2.9"));
        assert!(!ok("~1.2.3", "1.3.0"));
        assert!(!ok("~1.2.3", "1.2.2"));
        assert!(ok("~1", "1.9.0"));
        assert!(ok("^1.2", "1.9.0"));
        assert!(!ok("^1.2", "2.0.0"));
        assert!(ok("^0.2.3", "0.2.9"));
        assert!(!ok("^0.2.3", "0.3.0"));
        assert!(!ok("^0.0.3", "0.0.4"));
        assert!(ok("1.2.3 - 1.4.5", "1.4.5"));
        assert!(!ok("1.2.3 - 1.4.5", "1.4.6"));
        assert!(ok("<1.0.0 || >=2.0.0", "2.1.0"));
        assert!(!ok("<1.0.0 || >=2.0.0", "1.1.0"));
        assert!(ok("*", "3.0.0"));
        assert!(ok("!=1.2.3", "1.2.4"));
        assert!(!ok("!=1.2.3", "1.2.3"));
        assert!(ok(">1.2", "1.3.0"));
        assert!(!ok(">1.2", "1.2.5"));
        assert!(ok("<=1.2", "1.2.9"));
        assert!(!ok("<=1.2", "1.3.0"));
    }

    #[test]
    fn tags_need_strict_semver_with_optional_v() {
        assert!(parse_tag("v1.2.3").is_some());
        assert!(parse_tag("1.2").is_none());
        assert!(parse_tag("latest").is_none());
        assert!(parse_tag("V1.2.3").is_none());
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert!(Range::parse("").is_err());
        assert!(Range::parse(">= banana").is_err());
        assert!(Range::parse("1.2.3 ||").is_err());
    }
}
