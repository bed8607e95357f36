//! Commit messages from a template, with Flux's template data.
//!
//! Flux renders `spec.git.commit.messageTemplate` with Go's `text/template`
//! over this data (see [`TemplateData`]):
//!
//! ```text
//! .AutomationObject            namespace/name of the automation (.Namespace, .Name)
//! .Changed.FileChanges         map: file -> map: object -> list of changes
//! .Changed.Objects             map: object -> list of changes
//! .Changed.Changes             list of unique changes
//! .Values                      map: string -> string (messageTemplateValues)
//! change:  .OldValue .NewValue .Setter
//! object:  .APIVersion .Kind .Name .Namespace
//! ```
//!
//! This module implements the part of `text/template` that commit templates
//! use: text, `{{ pipeline }}` with `{{-`/`-}}` trimming, comments
//! `{{/* */}}`, `if`/`else if`/`else`, `range` (with `$k, $v :=` or `$v :=`,
//! and `else`), `with`, `end`, variables, field chains (`.Changed.Objects`,
//! `$change.NewValue`), string and integer literals, pipes (`x | f`), and
//! the functions `print`, `println`, `printf` (verbs `%s %v %d %q %%`),
//! `len`, `index`, `not`, `and`, `or`, `eq`, `ne`, and from sprig `upper`,
//! `lower`, `trim`, `trimPrefix`, `trimSuffix`, `replace`, `join`, `quote`,
//! `default`, `contains`, `hasPrefix`, `hasSuffix`. Maps are ranged in
//! sorted key order (Go does so for string keys; for object keys Go's order
//! is unspecified, here it is sorted by apiVersion, kind, namespace, name).
//! Anything else — an unknown function, an unknown field such as
//! `.NewTag` (which Flux rejects too: "can't evaluate field NewTag"),
//! `define`/`template`/`block` — is a clear error.

use std::collections::BTreeMap;

use super::setters::{Change, ObjectIdentifier};

/// Flux's default message.
pub const DEFAULT_MESSAGE_TEMPLATE: &str = "Update from image update automation";

/// Why a template could not be parsed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit message template: {0}")]
#[non_exhaustive]
pub struct TemplateError(pub String);

/// A value as the template sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum TValue {
    /// No value (a missing map key prints `<no value>`).
    Nil,
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<TValue>),
    /// A map in range order.
    Map(Vec<(TValue, TValue)>),
    /// A struct: named fields and how it prints.
    Struct(BTreeMap<String, TValue>, String),
}

impl TValue {
    fn truthy(&self) -> bool {
        match self {
            TValue::Nil => false,
            TValue::Str(s) => !s.is_empty(),
            TValue::Int(i) => *i != 0,
            TValue::Bool(b) => *b,
            TValue::List(l) => !l.is_empty(),
            TValue::Map(m) => !m.is_empty(),
            TValue::Struct(..) => true,
        }
    }

    fn print(&self) -> String {
        match self {
            TValue::Nil => "<no value>".into(),
            TValue::Str(s) => s.clone(),
            TValue::Int(i) => i.to_string(),
            TValue::Bool(b) => b.to_string(),
            TValue::List(l) => format!(
                "[{}]",
                l.iter().map(TValue::print).collect::<Vec<_>>().join(" ")
            ),
            TValue::Map(m) => format!(
                "map[{}]",
                m.iter()
                    .map(|(k, v)| format!("{}:{}", k.print(), v.print()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            TValue::Struct(_, shown) => shown.clone(),
        }
    }
}

/// The data a message template sees: Flux's `TemplateData` in Rust terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateData {
    /// Namespace of the automation object.
    pub automation_namespace: String,
    /// Name of the automation object.
    pub automation_name: String,
    /// Every change, in file then line order.
    pub changes: Vec<Change>,
    /// `messageTemplateValues`.
    pub values: BTreeMap<String, String>,
}

fn change_value(c: &Change) -> TValue {
    let mut f = BTreeMap::new();
    f.insert("OldValue".into(), TValue::Str(c.old_value.clone()));
    f.insert("NewValue".into(), TValue::Str(c.new_value.clone()));
    f.insert("Setter".into(), TValue::Str(c.setter.clone()));
    TValue::Struct(
        f,
        format!("{{{} {} {}}}", c.old_value, c.new_value, c.setter),
    )
}

fn object_value(o: &ObjectIdentifier) -> TValue {
    let mut f = BTreeMap::new();
    f.insert("APIVersion".into(), TValue::Str(o.api_version.clone()));
    f.insert("Kind".into(), TValue::Str(o.kind.clone()));
    f.insert("Name".into(), TValue::Str(o.name.clone()));
    f.insert("Namespace".into(), TValue::Str(o.namespace.clone()));
    TValue::Struct(
        f,
        format!(
            "{{{{{} {}}} {{{} {}}}}}",
            o.api_version, o.kind, o.name, o.namespace
        ),
    )
}

impl TemplateData {
    /// The value tree the template is run over.
    pub fn to_value(&self) -> TValue {
        let mut files: BTreeMap<&str, BTreeMap<&ObjectIdentifier, Vec<&Change>>> = BTreeMap::new();
        let mut objects: BTreeMap<&ObjectIdentifier, Vec<&Change>> = BTreeMap::new();
        let mut unique: Vec<&Change> = Vec::new();
        for c in &self.changes {
            files
                .entry(c.file.as_str())
                .or_default()
                .entry(&c.object)
                .or_default()
                .push(c);
            objects.entry(&c.object).or_default().push(c);
            if !unique.iter().any(|u| {
                u.old_value == c.old_value && u.new_value == c.new_value && u.setter == c.setter
            }) {
                unique.push(c);
            }
        }
        let obj_map = |m: &BTreeMap<&ObjectIdentifier, Vec<&Change>>| {
            TValue::Map(
                m.iter()
                    .map(|(o, cs)| {
                        (
                            object_value(o),
                            TValue::List(cs.iter().map(|c| change_value(c)).collect()),
                        )
                    })
                    .collect(),
            )
        };
        let mut changed = BTreeMap::new();
        changed.insert(
            "FileChanges".to_string(),
            TValue::Map(
                files
                    .iter()
                    .map(|(f, m)| (TValue::Str(f.to_string()), obj_map(m)))
                    .collect(),
            ),
        );
        changed.insert("Objects".to_string(), obj_map(&objects));
        changed.insert(
            "Changes".to_string(),
            TValue::List(unique.iter().map(|c| change_value(c)).collect()),
        );
        let mut auto = BTreeMap::new();
        auto.insert(
            "Namespace".to_string(),
            TValue::Str(self.automation_namespace.clone()),
        );
        auto.insert(
            "Name".to_string(),
            TValue::Str(self.automation_name.clone()),
        );
        let mut root = BTreeMap::new();
        root.insert(
            "AutomationObject".to_string(),
            TValue::Struct(
                auto,
                format!("{}/{}", self.automation_namespace, self.automation_name),
            ),
        );
        root.insert(
            "Changed".to_string(),
            TValue::Struct(changed, "{...}".into()),
        );
        root.insert(
            "Values".to_string(),
            TValue::Map(
                self.values
                    .iter()
                    .map(|(k, v)| (TValue::Str(k.clone()), TValue::Str(v.clone())))
                    .collect(),
            ),
        );
        TValue::Struct(root, "{...}".into())
    }
}

/// Renders `template` (Flux's default when empty) over `data`.
pub fn render_message(template: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let template = if template.is_empty() {
        DEFAULT_MESSAGE_TEMPLATE
    } else {
        template
    };
    let nodes = parse(template)?;
    let root = data.to_value();
    let mut out = String::new();
    let mut scope = Scope {
        vars: vec![("$".to_string(), root.clone())],
    };
    exec(&nodes, &root, &mut scope, &mut out, 0)?;
    Ok(out)
}

// ---- parsing -------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Func(String),
}

type Command = Vec<Arg>;

#[derive(Clone, Debug, PartialEq)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Command>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

enum Tok {
    Text(String),
    Act(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let t = if trim_next { rest.trim_start() } else { rest };
            toks.push(Tok::Text(t.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let (trim_left, body_start) =
            if after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n") {
                (true, 2)
            } else {
                (false, 0)
            };
        if trim_left {
            text = text.trim_end();
        }
        toks.push(Tok::Text(text.to_string()));
        // find the closing braces outside string literals
        let body_all = &after[body_start..];
        let mut close = None;
        let mut in_str: Option<char> = None;
        let mut prev = '\0';
        for (i, c) in body_all.char_indices() {
            match in_str {
                Some(q) => {
                    if c == q && (prev != '\\' || q == '`') {
                        in_str = None;
                    }
                }
                None => {
                    if c == '"' || c == '`' {
                        in_str = Some(c);
                    } else if c == '}' && body_all[i..].starts_with("}}") {
                        close = Some(i);
                        break;
                    }
                }
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        let close = close.ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut body = &body_all[..close];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
            body = &body[..body.len() - 2];
            trim_next = true;
        }
        toks.push(Tok::Act(body.trim().to_string()));
        rest = &body_all[close + 2..];
    }
    Ok(toks)
}

fn split_words(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' || c == '`' {
            let q = c;
            let mut w = String::from(q);
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                w.push(c);
                if c == '\\' && q == '"' {
                    if let Some(n) = chars.next() {
                        w.push(n);
                    }
                    continue;
                }
                if c == q {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(TemplateError(format!("unterminated string in {s:?}")));
            }
            out.push(w);
            continue;
        }
        if c == '|' {
            chars.next();
            out.push("|".into());
            continue;
        }
        if c == '(' || c == ')' {
            return Err(TemplateError(format!(
                "parenthesized pipelines are not supported: {s:?}"
            )));
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '|' || c == ',' && w.starts_with('$') {
                break;
            }
            w.push(c);
            chars.next();
        }
        if chars.peek() == Some(&',') {
            chars.next();
            w.push(',');
        }
        out.push(w);
    }
    Ok(out)
}

const FUNCS: &[&str] = &[
    "print",
    "println",
    "printf",
    "len",
    "index",
    "not",
    "and",
    "or",
    "eq",
    "ne",
    "upper",
    "lower",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "join",
    "quote",
    "default",
    "contains",
    "hasPrefix",
    "hasSuffix",
];

fn parse_arg(w: &str) -> Result<Arg, TemplateError> {
    let fields = |s: &str| -> Vec<String> {
        s.split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    if w.starts_with('.') {
        return Ok(Arg::Dot(fields(w)));
    }
    if let Some(v) = w.strip_prefix('$') {
        let (name, chain) = match v.find('.') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, ""),
        };
        return Ok(Arg::Var(format!("${name}"), fields(chain)));
    }
    if w.starts_with('"') {
        let s: String = serde_json::from_str(w)
            .map_err(|_| TemplateError(format!("bad string literal {w}")))?;
        return Ok(Arg::Str(s));
    }
    if let Some(s) = w.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        return Ok(Arg::Str(s.to_string()));
    }
    if let Ok(i) = w.parse::<i64>() {
        return Ok(Arg::Int(i));
    }
    match w {
        "true" => return Ok(Arg::Bool(true)),
        "false" => return Ok(Arg::Bool(false)),
        _ => {}
    }
    if FUNCS.contains(&w) {
        return Ok(Arg::Func(w.to_string()));
    }
    Err(TemplateError(format!("function {w:?} not defined")))
}

fn parse_pipeline(s: &str) -> Result<Pipeline, TemplateError> {
    let mut words = split_words(s)?;
    let mut decl = Vec::new();
    if let Some(pos) = words.iter().position(|w| w == ":=" || w == "=") {
        decl = words[..pos]
            .iter()
            .map(|w| w.trim_end_matches(',').to_string())
            .collect();
        if decl.is_empty() || decl.len() > 2 || decl.iter().any(|d| !d.starts_with('$')) {
            return Err(TemplateError(format!("bad variable declaration in {s:?}")));
        }
        words.drain(..=pos);
    }
    let mut cmds = vec![Vec::new()];
    for w in words {
        if w == "|" {
            cmds.push(Vec::new());
        } else if let Some(last) = cmds.last_mut() {
            last.push(parse_arg(&w)?);
        }
    }
    if cmds.iter().any(Vec::is_empty) {
        return Err(TemplateError(format!("missing value in {s:?}")));
    }
    Ok(Pipeline { decl, cmds })
}

fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let toks = lex(src)?;
    let mut it = toks.into_iter().peekable();
    let (nodes, end) = parse_list(&mut it)?;
    if let Some(e) = end {
        return Err(TemplateError(format!("unexpected {{{{{e}}}}}")));
    }
    Ok(nodes)
}

type Toks = std::iter::Peekable<std::vec::IntoIter<Tok>>;

/// Parses nodes until `end`/`else` (returned) or the end of input.
fn parse_list(it: &mut Toks) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(tok) = it.next() {
        match tok {
            Tok::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
            }
            Tok::Act(a) => {
                if a.starts_with("/*") {
                    if !a.ends_with("*/") {
                        return Err(TemplateError("unclosed comment".into()));
                    }
                    continue;
                }
                let (kw, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                match kw {
                    "end" | "else" => return Ok((nodes, Some(a.clone()))),
                    "if" | "with" | "range" => {
                        let pipe = parse_pipeline(rest)?;
                        let node = parse_block(kw, pipe, it)?;
                        nodes.push(node);
                    }
                    "define" | "template" | "block" | "break" | "continue" => {
                        return Err(TemplateError(format!("{{{{{kw}}}}} is not supported")))
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(&a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_block(kw: &str, pipe: Pipeline, it: &mut Toks) -> Result<Node, TemplateError> {
    let (body, end) = parse_list(it)?;
    let end = end.ok_or_else(|| TemplateError(format!("{{{{{kw}}}}} without {{{{end}}}}")))?;
    let mut alt = Vec::new();
    if end != "end" {
        let rest = end.trim_start_matches("else").trim();
        if rest.is_empty() {
            let (a, e2) = parse_list(it)?;
            if e2.as_deref() != Some("end") {
                return Err(TemplateError(format!(
                    "{{{{else}}}} of {kw} without {{{{end}}}}"
                )));
            }
            alt = a;
        } else if let Some(cond) = rest.strip_prefix("if ") {
            // `else if c` is `else` + nested `if c ... end` sharing the end
            let inner = parse_block("if", parse_pipeline(cond.trim())?, it)?;
            alt = vec![inner];
        } else {
            return Err(TemplateError(format!("unexpected {{{{{end}}}}}")));
        }
    }
    Ok(match kw {
        "if" => Node::If(pipe, body, alt),
        "with" => Node::With(pipe, body, alt),
        _ => Node::Range(pipe, body, alt),
    })
}

// ---- execution -----------------------------------------------------------

struct Scope {
    vars: Vec<(String, TValue)>,
}

impl Scope {
    fn get(&self, name: &str) -> Result<TValue, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TemplateError(format!("undefined variable {name:?}")))
    }
}

fn field(v: &TValue, name: &str) -> Result<TValue, TemplateError> {
    match v {
        TValue::Struct(f, _) => f
            .get(name)
            .cloned()
            .ok_or_else(|| TemplateError(format!("can't evaluate field {name}"))),
        TValue::Map(m) => Ok(m
            .iter()
            .find(|(k, _)| matches!(k, TValue::Str(s) if s == name))
            .map(|(_, v)| v.clone())
            .unwrap_or(TValue::Nil)),
        TValue::Nil => Ok(TValue::Nil),
        other => Err(TemplateError(format!(
            "can't evaluate field {name} in {}",
            other.print()
        ))),
    }
}

fn chain(mut v: TValue, fields: &[String]) -> Result<TValue, TemplateError> {
    for f in fields {
        v = field(&v, f)?;
    }
    Ok(v)
}

fn eval_pipeline(p: &Pipeline, dot: &TValue, scope: &Scope) -> Result<TValue, TemplateError> {
    let mut prev: Option<TValue> = None;
    for cmd in &p.cmds {
        prev = Some(eval_command(cmd, dot, scope, prev)?);
    }
    Ok(prev.unwrap_or(TValue::Nil))
}

fn eval_arg(a: &Arg, dot: &TValue, scope: &Scope) -> Result<TValue, TemplateError> {
    Ok(match a {
        Arg::Dot(f) => chain(dot.clone(), f)?,
        Arg::Var(n, f) => chain(scope.get(n)?, f)?,
        Arg::Str(s) => TValue::Str(s.clone()),
        Arg::Int(i) => TValue::Int(*i),
        Arg::Bool(b) => TValue::Bool(*b),
        Arg::Func(f) => call(f, Vec::new())?,
    })
}

fn eval_command(
    cmd: &Command,
    dot: &TValue,
    scope: &Scope,
    piped: Option<TValue>,
) -> Result<TValue, TemplateError> {
    match cmd.first() {
        Some(Arg::Func(f)) => {
            let mut args = cmd[1..]
                .iter()
                .map(|a| eval_arg(a, dot, scope))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            call(f, args)
        }
        Some(a) if cmd.len() == 1 && piped.is_none() => eval_arg(a, dot, scope),
        _ => Err(TemplateError(
            "can't give arguments to a non-function".into(),
        )),
    }
}

fn go_sprint(args: &[TValue]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &TValue| matches!(v, TValue::Str(_));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            s.push(' ');
        }
        s.push_str(&a.print());
    }
    s
}

fn str_arg(args: &[TValue], i: usize, f: &str) -> Result<String, TemplateError> {
    match args.get(i) {
        Some(v) => Ok(v.print()),
        None => Err(TemplateError(format!("wrong number of args for {f}"))),
    }
}

fn call(f: &str, args: Vec<TValue>) -> Result<TValue, TemplateError> {
    let s = |i| str_arg(&args, i, f);
    Ok(match f {
        "print" => TValue::Str(go_sprint(&args)),
        "println" => TValue::Str(format!(
            "{}\n",
            args.iter().map(TValue::print).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let fmt = s(0)?;
            let mut out = String::new();
            let mut rest = args.iter().skip(1);
            let mut chars = fmt.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('%') => out.push('%'),
                    Some(v @ ('s' | 'v' | 'd' | 'q')) => {
                        let a = rest
                            .next()
                            .map(TValue::print)
                            .unwrap_or_else(|| format!("%!{v}(MISSING)"));
                        if v == 'q' {
                            out.push_str(&serde_json::Value::String(a).to_string());
                        } else {
                            out.push_str(&a);
                        }
                    }
                    other => {
                        return Err(TemplateError(format!(
                            "printf verb %{} is not supported",
                            other.map(String::from).unwrap_or_default()
                        )))
                    }
                }
            }
            TValue::Str(out)
        }
        "len" => TValue::Int(match args.first() {
            Some(TValue::Str(x)) => x.len() as i64,
            Some(TValue::List(l)) => l.len() as i64,
            Some(TValue::Map(m)) => m.len() as i64,
            _ => return Err(TemplateError("len of a value without length".into())),
        }),
        "index" => {
            let mut v = args
                .first()
                .cloned()
                .ok_or_else(|| TemplateError("index needs arguments".into()))?;
            for k in &args[1..] {
                v = match (&v, k) {
                    (TValue::List(l), TValue::Int(i)) => usize::try_from(*i)
                        .ok()
                        .and_then(|i| l.get(i).cloned())
                        .ok_or_else(|| TemplateError(format!("index {i} out of range")))?,
                    (TValue::Map(m), k) => m
                        .iter()
                        .find(|(mk, _)| mk == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(TValue::Nil),
                    _ => return Err(TemplateError("can't index this value".into())),
                };
            }
            v
        }
        "not" => TValue::Bool(!args.first().is_some_and(TValue::truthy)),
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(TValue::Nil),
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(TValue::Nil),
        "eq" => TValue::Bool(args.len() >= 2 && args[1..].iter().any(|a| a == &args[0])),
        "ne" => TValue::Bool(args.len() == 2 && args[0] != args[1]),
        "upper" => TValue::Str(s(0)?.to_uppercase()),
        "lower" => TValue::Str(s(0)?.to_lowercase()),
        "trim" => TValue::Str(s(0)?.trim().to_string()),
        // sprig: trimPrefix PREFIX STRING
        "trimPrefix" => TValue::Str(
            s(1)?
                .strip_prefix(&s(0)?)
                .map(str::to_string)
                .unwrap_or(s(1)?),
        ),
        "trimSuffix" => TValue::Str(
            s(1)?
                .strip_suffix(&s(0)?)
                .map(str::to_string)
                .unwrap_or(s(1)?),
        ),
        // sprig: replace OLD NEW STRING
        "replace" => TValue::Str(s(2)?.replace(&s(0)?, &s(1)?)),
        // sprig: join SEP LIST
        "join" => match args.get(1) {
            Some(TValue::List(l)) => {
                TValue::Str(l.iter().map(TValue::print).collect::<Vec<_>>().join(&s(0)?))
            }
            _ => return Err(TemplateError("join needs a separator and a list".into())),
        },
        "quote" => TValue::Str(
            args.iter()
                .map(|a| serde_json::Value::String(a.print()).to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        // sprig: default DEFAULT VALUE
        "default" => match args.get(1) {
            Some(v) if v.truthy() => v.clone(),
            _ => args.first().cloned().unwrap_or(TValue::Nil),
        },
        // sprig: contains SUBSTR STRING, hasPrefix PREFIX STRING
        "contains" => TValue::Bool(s(1)?.contains(&s(0)?)),
        "hasPrefix" => TValue::Bool(s(1)?.starts_with(&s(0)?)),
        "hasSuffix" => TValue::Bool(s(1)?.ends_with(&s(0)?)),
        other => return Err(TemplateError(format!("function {other:?} not defined"))),
    })
}

fn exec(
    nodes: &[Node],
    dot: &TValue,
    scope: &mut Scope,
    out: &mut String,
    depth: usize,
) -> Result<(), TemplateError> {
    if depth > 64 {
        return Err(TemplateError("template nests too deeply".into()));
    }
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot, scope)?;
                if p.decl.is_empty() {
                    out.push_str(&v.print());
                } else {
                    for d in &p.decl {
                        scope.vars.push((d.clone(), v.clone()));
                    }
                }
            }
            Node::If(p, body, alt) | Node::With(p, body, alt) => {
                let v = eval_pipeline(p, dot, scope)?;
                let mark = scope.vars.len();
                for d in &p.decl {
                    scope.vars.push((d.clone(), v.clone()));
                }
                let is_with = matches!(n, Node::With(..));
                if v.truthy() {
                    let inner = if is_with { v.clone() } else { dot.clone() };
                    exec(body, &inner, scope, out, depth + 1)?;
                } else {
                    exec(alt, dot, scope, out, depth + 1)?;
                }
                scope.vars.truncate(mark);
            }
            Node::Range(p, body, alt) => {
                let v = eval_pipeline(p, dot, scope)?;
                let items: Vec<(TValue, TValue)> = match v {
                    TValue::List(l) => l
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| (TValue::Int(i as i64), x))
                        .collect(),
                    TValue::Map(m) => m,
                    TValue::Nil => Vec::new(),
                    TValue::Int(n) => (0..n.max(0))
                        .map(|i| (TValue::Int(i), TValue::Int(i)))
                        .collect(),
                    other => {
                        return Err(TemplateError(format!(
                            "range can't iterate over {}",
                            other.print()
                        )))
                    }
                };
                if items.is_empty() {
                    exec(alt, dot, scope, out, depth + 1)?;
                    continue;
                }
                for (k, val) in items {
                    let mark = scope.vars.len();
                    match p.decl.as_slice() {
                        [v] => scope.vars.push((v.clone(), val.clone())),
                        [kn, vn] => {
                            scope.vars.push((kn.clone(), k));
                            scope.vars.push((vn.clone(), val.clone()));
                        }
                        _ => {}
                    }
                    exec(body, &val, scope, out, depth + 1)?;
                    scope.vars.truncate(mark);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        let obj = ObjectIdentifier {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "apps".into(),
            name: "app1".into(),
        };
        TemplateData {
            automation_namespace: "flux-system".into(),
            automation_name: "app1".into(),
            changes: vec![Change {
                file: "apps/base/app1/deployment.yaml".into(),
                line: 21,
                old_value: "ghcr.io/organization/app1:v1.0.0".into(),
                new_value: "ghcr.io/organization/app1:v1.2.7".into(),
                setter: "flux-system:app1".into(),
                object: obj,
            }],
            values: [("env".to_string(), "prod".to_string())].into(),
        }
    }

    #[test]
    fn default_template() {
        assert_eq!(
            render_message("", &data()).unwrap(),
            "Update from image update automation"
        );
    }

    #[test]
    fn flux_documented_template() {
        let t = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n  Changes:\n{{- range $_, $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n";
        let got = render_message(t, &data()).unwrap();
        assert_eq!(
            got,
            "Automated image update\n\nAutomation name: flux-system/app1\n\nFiles:\n- apps/base/app1/deployment.yaml\nObjects:\n- Deployment app1\n  Changes:\n    - ghcr.io/organization/app1:v1.0.0 -> ghcr.io/organization/app1:v1.2.7\n"
        );
    }

    #[test]
    fn changes_values_if_printf() {
        let t = "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}{{ if eq .Values.env \"prod\" }}PROD{{ else }}other{{ end }} {{ printf \"%s/%d\" .Values.env (len) }}";
        // parenthesized pipelines are refused clearly
        assert!(render_message(t, &data()).is_err());
        let t = "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}{{ if eq .Values.env \"prod\" }}PROD{{ else if true }}other{{ end }} {{ printf \"%s!\" .Values.env | upper }}";
        assert_eq!(
            render_message(t, &data()).unwrap(),
            "ghcr.io/organization/app1:v1.0.0 -> ghcr.io/organization/app1:v1.2.7\nPROD PROD!"
        );
    }

    #[test]
    fn unknown_field_like_flux() {
        let e = render_message("Update app1 to {{.NewTag}}", &data()).unwrap_err();
        assert!(e.to_string().contains("can't evaluate field NewTag"), "{e}");
        assert!(render_message("{{ nope }}", &data()).is_err());
        assert!(render_message("{{ if .X }}", &data()).is_err());
        assert!(render_message("{{ .AutomationObject", &data()).is_err());
    }
}
