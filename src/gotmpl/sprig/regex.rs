//! Sprig's regular expressions, with Go's RE2 dialect.
//!
//! The `regex` crate implements the same RE2 family; the differences that
//! matter are bridged here: Go's `\d`, `\w`, `\s` and `\b` are ASCII-only
//! (the crate's are Unicode), and compile errors read as Go's
//! (`error parsing regexp: missing closing ): `(``).

use regex::{NoExpand, Regex, RegexBuilder};

use super::{f, n, s};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::value::{ListType, Ty, Value};

/// Rewrites Go's ASCII-only Perl classes into the crate's syntax.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut class_depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            let rep = if class_depth > 0 {
                match e {
                    'd' => Some("0-9"),
                    'D' => Some("[^0-9]"),
                    'w' => Some("0-9A-Za-z_"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    's' => Some("\\t\\n\\f\\r "),
                    'S' => Some("[^\\t\\n\\f\\r ]"),
                    _ => None,
                }
            } else {
                match e {
                    'd' => Some("[0-9]"),
                    'D' => Some("[^0-9]"),
                    'w' => Some("[0-9A-Za-z_]"),
                    'W' => Some("[^0-9A-Za-z_]"),
                    's' => Some("[\\t\\n\\f\\r ]"),
                    'S' => Some("[^\\t\\n\\f\\r ]"),
                    'b' => Some("(?-u:\\b)"),
                    'B' => Some("(?-u:\\B)"),
                    _ => None,
                }
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push(c);
                    out.push(e);
                }
            }
            i += 2;
            continue;
        }
        if c == '[' {
            if class_depth > 0 && i + 1 < chars.len() && chars[i + 1] == ':' {
                // [:alpha:] inside a class
                if let Some(end) = chars[i..].iter().position(|x| *x == ']') {
                    out.extend(&chars[i..=i + end]);
                    i += end + 1;
                    continue;
                }
            }
            class_depth += 1;
            out.push(c);
            i += 1;
            // a leading ] or ^] is literal
            if i < chars.len() && chars[i] == '^' {
                out.push('^');
                i += 1;
            }
            if i < chars.len() && chars[i] == ']' {
                out.push_str("\\]");
                i += 1;
            }
            continue;
        }
        if c == ']' && class_depth > 0 {
            class_depth -= 1;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Compiles a Go regular expression; errors read as Go's.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&translate(pattern))
        .size_limit(8 * 1024 * 1024)
        .build()
        .map_err(|e| go_error(pattern, &e))
}

fn go_error(pattern: &str, e: &regex::Error) -> String {
    let msg = e.to_string();
    let code = if msg.contains("unclosed group") {
        format!("missing closing ): `{pattern}`")
    } else if msg.contains("unopened group") {
        format!("unexpected ): `{pattern}`")
    } else if msg.contains("unclosed character class") {
        let at = pattern.rfind('[').unwrap_or(0);
        format!("missing closing ]: `{}`", &pattern[at..])
    } else if msg.contains("repetition operator missing expression") {
        let op = pattern
            .chars()
            .find(|c| matches!(c, '*' | '+' | '?'))
            .unwrap_or('*');
        format!("missing argument to repetition operator: `{op}`")
    } else if msg.contains("unrecognized escape sequence") {
        "invalid escape sequence".to_string()
    } else if msg.contains("invalid character class range") {
        "invalid character class range".to_string()
    } else if msg.contains("incomplete escape sequence") {
        "trailing backslash at end of expression: ``".to_string()
    } else {
        msg.lines()
            .last()
            .unwrap_or("invalid regular expression")
            .trim_start_matches("error: ")
            .to_string()
    };
    format!("error parsing regexp: {code}")
}

fn strings(v: Vec<String>) -> Value {
    Value::typed_list(ListType::String, v.into_iter().map(Value::from).collect())
}

fn find_all(re: &Regex, s: &str, n: i64) -> Vec<String> {
    let it = re.find_iter(s).map(|m| m.as_str().to_string());
    if n < 0 {
        it.collect()
    } else {
        it.take(n as usize).collect()
    }
}

/// Go's `Regexp.Split`.
fn split(re: &Regex, pattern: &str, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if !pattern.is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let matches: Vec<(usize, usize)> = {
        let it = re.find_iter(s).map(|m| (m.start(), m.end()));
        if n < 0 {
            it.collect()
        } else {
            it.take(n as usize).collect()
        }
    };
    let mut out = Vec::new();
    let (mut beg, mut end) = (0usize, 0usize);
    for (a, b) in matches {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = a;
        if b != 0 {
            out.push(s[beg..end].to_string());
        }
        beg = b;
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

/// Go's `regexp.QuoteMeta`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert(
        "regexMatch",
        f(&[String, String], |a| {
            Ok(Value::Bool(
                compile(s(&a, 0))
                    .map(|r| r.is_match(s(&a, 1)))
                    .unwrap_or(false),
            ))
        }),
    );
    m.insert(
        "mustRegexMatch",
        f(&[String, String], |a| {
            Ok(Value::Bool(compile(s(&a, 0))?.is_match(s(&a, 1))))
        }),
    );
    m.insert(
        "regexFindAll",
        f(&[String, String, Int], |a| {
            Ok(strings(match compile(s(&a, 0)) {
                Ok(r) => find_all(&r, s(&a, 1), n(&a, 2)),
                Err(_) => Vec::new(),
            }))
        }),
    );
    m.insert(
        "mustRegexFindAll",
        f(&[String, String, Int], |a| {
            Ok(strings(find_all(&compile(s(&a, 0))?, s(&a, 1), n(&a, 2))))
        }),
    );
    m.insert(
        "regexFind",
        f(&[String, String], |a| {
            Ok(Value::str(
                compile(s(&a, 0))
                    .ok()
                    .and_then(|r| r.find(s(&a, 1)).map(|m| m.as_str().to_string()))
                    .unwrap_or_default(),
            ))
        }),
    );
    m.insert(
        "mustRegexFind",
        f(&[String, String], |a| {
            let r = compile(s(&a, 0))?;
            Ok(Value::str(
                r.find(s(&a, 1)).map(|m| m.as_str()).unwrap_or(""),
            ))
        }),
    );
    m.insert(
        "regexReplaceAll",
        f(&[String, String, String], |a| {
            Ok(Value::str(match compile(s(&a, 0)) {
                Ok(r) => r.replace_all(s(&a, 1), s(&a, 2)).into_owned(),
                Err(_) => std::string::String::new(),
            }))
        }),
    );
    m.insert(
        "mustRegexReplaceAll",
        f(&[String, String, String], |a| {
            Ok(Value::str(
                compile(s(&a, 0))?.replace_all(s(&a, 1), s(&a, 2)),
            ))
        }),
    );
    m.insert(
        "regexReplaceAllLiteral",
        f(&[String, String, String], |a| {
            Ok(Value::str(match compile(s(&a, 0)) {
                Ok(r) => r.replace_all(s(&a, 1), NoExpand(s(&a, 2))).into_owned(),
                Err(_) => std::string::String::new(),
            }))
        }),
    );
    m.insert(
        "mustRegexReplaceAllLiteral",
        f(&[String, String, String], |a| {
            Ok(Value::str(
                compile(s(&a, 0))?.replace_all(s(&a, 1), NoExpand(s(&a, 2))),
            ))
        }),
    );
    m.insert(
        "regexSplit",
        f(&[String, String, Int], |a| {
            Ok(strings(match compile(s(&a, 0)) {
                Ok(r) => split(&r, s(&a, 0), s(&a, 1), n(&a, 2)),
                Err(_) => Vec::new(),
            }))
        }),
    );
    m.insert(
        "mustRegexSplit",
        f(&[String, String, Int], |a| {
            Ok(strings(split(
                &compile(s(&a, 0))?,
                s(&a, 0),
                s(&a, 1),
                n(&a, 2),
            )))
        }),
    );
    m.insert(
        "regexQuoteMeta",
        f(&[String], |a| Ok(Value::str(quote_meta(s(&a, 0))))),
    );
}
