//! The executor: Go's `text/template/exec.go`.
//!
//! Evaluation follows Go's rules step by step, because charts depend on
//! them: a missing map key under `missingkey=zero` is a nil `interface{}`
//! (printing it shows `<no value>`, a field of it is a "nil pointer
//! evaluating interface {}.x" error), arguments are converted to the
//! function's parameter types, `and`/`or` short-circuit, maps range in key
//! order, and every error names the template, line, column and the node
//! being evaluated, exactly as Go prints them.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::builtins;
use super::funcs::{Func, FuncMap};
use super::gofmt;
use super::parse::{self, Arg, Branch, Command, Node, Number, Pipe, Tree};
use super::value::{ListType, MapType, Member, MethodSig, Ty, Value};
use super::{Error, ExecError, Host, Limits};

/// What `text/template` does with a missing map key (`Option("missingkey=...")`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingKey {
    /// `default`/`invalid`: the result is invalid and prints `<no value>`.
    #[default]
    Invalid,
    /// `zero`: the zero value of the map's element type (Helm's choice).
    Zero,
    /// `error`: execution stops.
    Error,
}

/// A set of templates that can call each other (Go's `*template.Template`
/// and its associated templates).
#[derive(Clone, Debug)]
pub struct Templates {
    name: String,
    trees: BTreeMap<String, Rc<Tree>>,
    funcs: Rc<FuncMap>,
    /// The `missingkey` option.
    pub missing_key: MissingKey,
}

impl Templates {
    /// An empty set named `name` (Go's `template.New(name)`), with these
    /// functions besides the builtins.
    pub fn new(name: &str, funcs: Rc<FuncMap>) -> Templates {
        Templates {
            name: name.to_string(),
            trees: BTreeMap::new(),
            funcs,
            missing_key: MissingKey::Invalid,
        }
    }

    /// The set's own name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The functions.
    pub fn funcs(&self) -> &Rc<FuncMap> {
        &self.funcs
    }

    /// True when `name` is a function templates may call.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains(name) || builtins::is_builtin(name)
    }

    /// Parses `text` as the template `name` and adds it and every template
    /// it defines to the set (Go's `t.New(name).Parse(text)`): a later
    /// definition replaces an earlier one, unless the later one is empty.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let funcs = self.funcs.clone();
        let has = move |f: &str| funcs.contains(f) || builtins::is_builtin(f);
        let set = parse::parse(name, text, &has).map_err(Error::Parse)?;
        for (n, tree) in set {
            if let Some(old) = self.trees.get(&n) {
                let _ = old;
                if tree.is_empty() {
                    continue;
                }
            }
            self.trees.insert(n, Rc::new(tree));
        }
        Ok(())
    }

    /// The template called `name`.
    pub fn lookup(&self, name: &str) -> Option<Rc<Tree>> {
        self.trees.get(name).cloned()
    }

    /// Names of every template in the set, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.trees.keys().map(String::as_str)
    }

    /// Runs the template `name` over `data` (Go's `ExecuteTemplate`).
    pub fn execute(
        self: &Rc<Self>,
        name: &str,
        data: &Value,
        host: &mut dyn Host,
        ext: &mut dyn std::any::Any,
        limits: &Limits,
    ) -> Result<String, Error> {
        let mut steps = 0u64;
        let mut env = Env {
            templates: self.clone(),
            host,
            ext,
            nesting: 0,
            steps: &mut steps,
            limits: limits.clone(),
        };
        env.execute_template(name, data)
    }
}

/// What a function sees of the running execution: the template set (for
/// `include`-like functions), the host (clock, randomness) and host state.
pub struct Env<'a> {
    templates: Rc<Templates>,
    /// The clock and randomness.
    pub host: &'a mut dyn Host,
    /// Host-specific state (Helm keeps its `include` counters here).
    pub ext: &'a mut dyn std::any::Any,
    nesting: usize,
    steps: &'a mut u64,
    limits: Limits,
}

impl<'a> Env<'a> {
    /// The template set being executed.
    pub fn templates(&self) -> &Rc<Templates> {
        &self.templates
    }

    /// Runs the template `name` of the current set into a new buffer.
    pub fn execute_template(&mut self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(tree) = self.templates.lookup(name) else {
            return Err(Error::Other(format!(
                "template: no template {} associated with template {}",
                gofmt::quote(name),
                gofmt::quote(&self.templates.name)
            )));
        };
        self.run_tree(&tree, data)
    }

    /// Runs `tree` (which need not be in the set) with the set's templates
    /// available to it.
    fn run_tree(&mut self, tree: &Rc<Tree>, data: &Value) -> Result<String, Error> {
        if self.nesting >= self.limits.max_depth {
            return Err(Error::Other(format!(
                "template: {}: exceeded maximum template depth ({})",
                tree.name, self.limits.max_depth
            )));
        }
        self.nesting += 1;
        let mut out = String::new();
        let r = {
            let mut st = State {
                env: self,
                tree,
                vars: vec![Var {
                    name: "$".into(),
                    value: data.clone(),
                    iface: false,
                }],
                depth: 0,
                at: At::None,
            };
            let dot = Dot {
                v: data.clone(),
                iface: false,
            };
            st.walk_list(&dot, &tree.root, &mut out).map(|_| ())
        };
        self.nesting -= 1;
        r.map(|_| out)
    }

    /// Runs `f` with `templates` as the current set (Helm's `tpl` runs in
    /// a copy of the set extended with the text it parses).
    pub fn with_templates<R>(
        &mut self,
        templates: Rc<Templates>,
        f: impl FnOnce(&mut Env<'_>) -> R,
    ) -> R {
        let saved = std::mem::replace(&mut self.templates, templates);
        let r = f(self);
        self.templates = saved;
        r
    }

    /// Runs the template `name` of the current set.
    pub fn execute(&mut self, name: &str, data: &Value) -> Result<String, Error> {
        self.execute_template(name, data)
    }
}

#[derive(Clone, Debug)]
struct Var {
    name: String,
    value: Value,
    /// The value is a nil `interface{}` (rather than Go's invalid value).
    iface: bool,
}

/// The dot, with whether it is a nil `interface{}` read from a container.
#[derive(Clone, Debug)]
struct Dot {
    v: Value,
    iface: bool,
}

#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Node(&'t Node),
    Arg(&'t Arg),
    Cmd(&'t Command),
    Pipe(&'t Pipe),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::None => 0,
            At::Node(n) => match n {
                Node::Text { pos, .. }
                | Node::Action { pos, .. }
                | Node::Template { pos, .. }
                | Node::Break { pos }
                | Node::Continue { pos } => *pos,
                Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
            },
            At::Arg(a) => a.pos(),
            At::Cmd(c) => c.pos,
            At::Pipe(p) => p.pos,
        }
    }

    fn context(&self) -> String {
        match self {
            At::None => String::new(),
            At::Node(n) => n.to_string(),
            At::Arg(a) => a.to_string(),
            At::Cmd(c) => c.to_string(),
            At::Pipe(p) => p.to_string(),
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, Error>;

enum Callee<'c> {
    Func(&'c Func, bool),
    Method(Rc<dyn super::value::Object>, MethodSig),
}

struct State<'s, 'a, 't> {
    env: &'s mut Env<'a>,
    tree: &'t Tree,
    vars: Vec<Var>,
    depth: usize,
    at: At<'t>,
}

fn can_be_nil(ty: Ty) -> bool {
    matches!(
        ty,
        Ty::Any | Ty::Reflect | Ty::Map | Ty::List | Ty::Strings | Ty::Bytes
    )
}

fn assignable(v: &Value, ty: Ty) -> bool {
    match ty {
        Ty::Any | Ty::Reflect => true,
        Ty::String => matches!(v, Value::Str(_)),
        Ty::Int => matches!(v, Value::Int(_)),
        Ty::Int64 => matches!(v, Value::Int64(_)),
        Ty::Float => matches!(v, Value::Float(_)),
        Ty::Bool => matches!(v, Value::Bool(_)),
        Ty::Map => match v {
            Value::Map(m) => !matches!(m.borrow().ty, MapType::String),
            _ => false,
        },
        Ty::List => matches!(v, Value::List(l) if l.ty == ListType::Interface),
        Ty::Strings => matches!(v, Value::List(l) if l.ty == ListType::String),
        Ty::Bytes => matches!(v, Value::Bytes(_)),
        Ty::Object(n) => matches!(v, Value::Object(o) if o.type_name() == n),
    }
}

fn is_hex_int(s: &str) -> bool {
    s.len() > 2 && s.starts_with('0') && (s.as_bytes()[1] | 0x20) == b'x' && !s.contains(['p', 'P'])
}

impl<'s, 'a, 't> State<'s, 'a, 't> {
    fn errorf<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        let name = self.tree.name.clone();
        let message = match self.at {
            At::None => format!("template: {}: {}", name, msg),
            at => format!(
                "template: {}: executing {} at <{}>: {}",
                self.tree.location(at.pos()),
                gofmt::quote(&name),
                at.context(),
                msg
            ),
        };
        Err(Error::Exec(ExecError { name, message }))
    }

    fn step(&mut self) -> R<()> {
        *self.env.steps += 1;
        if *self.env.steps > self.env.limits.max_steps {
            return self.errorf(format!(
                "execution exceeded {} steps",
                self.env.limits.max_steps
            ));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Dot, nodes: &'t [Node], out: &mut String) -> R<Flow> {
        for n in nodes {
            match self.walk(dot, n, out)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn check_output(&self, out: &str) -> R<()> {
        if out.len() > self.env.limits.max_output {
            return self.errorf(format!(
                "output exceeds {} bytes",
                self.env.limits.max_output
            ));
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Dot, node: &'t Node, out: &mut String) -> R<Flow> {
        self.at = At::Node(node);
        self.step()?;
        match node {
            Node::Text { text, .. } => {
                out.push_str(text);
                self.check_output(out)?;
            }
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = At::Node(node);
                    out.push_str(&print_text(&v));
                    self.check_output(out)?;
                }
            }
            Node::If(b) | Node::With(b) => {
                let mark = self.vars.len();
                let v = self.eval_pipeline(dot, &b.pipe)?;
                let flow = if v.truth() {
                    if let Node::With(_) = node {
                        let d = Dot { v, iface: false };
                        self.walk_list(&d, &b.list, out)?
                    } else {
                        self.walk_list(dot, &b.list, out)?
                    }
                } else if let Some(e) = &b.else_list {
                    self.walk_list(dot, e, out)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(b) => return self.walk_range(dot, node, b, out),
            Node::Template { name, pipe, .. } => {
                let Some(tree) = self.env.templates.lookup(name) else {
                    return self.errorf(format!("template {} not defined", gofmt::quote(name)));
                };
                if self.depth >= self.env.limits.max_depth
                    || self.env.nesting + self.depth >= self.env.limits.max_depth
                {
                    return self.errorf(format!(
                        "exceeded maximum template depth ({})",
                        self.env.limits.max_depth
                    ));
                }
                let d = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Nil,
                };
                let mut st = State {
                    env: &mut *self.env,
                    tree: &tree,
                    vars: vec![Var {
                        name: "$".into(),
                        value: d.clone(),
                        iface: false,
                    }],
                    depth: self.depth + 1,
                    at: At::None,
                };
                let dd = Dot { v: d, iface: false };
                st.walk_list(&dd, &tree.root, out)?;
            }
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        dot: &Dot,
        node: &'t Node,
        r: &'t Branch,
        out: &mut String,
    ) -> R<Flow> {
        self.at = At::Node(node);
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &r.pipe)?;
        let inner = self.vars.len();
        let items: Vec<(Value, Value, bool)> = match &val {
            Value::List(l) => l
                .items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    (
                        Value::Int(i as i64),
                        x.clone(),
                        l.ty == ListType::Interface && x.is_nil(),
                    )
                })
                .collect(),
            Value::Bytes(b) => b
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), Value::Uint(*x as u64), false))
                .collect(),
            Value::Map(m) => {
                let m = m.borrow();
                let iface = m.ty != MapType::String;
                m.entries
                    .iter()
                    .map(|(k, v)| (Value::str(k), v.clone(), iface && v.is_nil()))
                    .collect()
            }
            Value::Int(n) | Value::Int64(n) => {
                if r.pipe.decl.len() > 1 {
                    return self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        gofmt::sprint_value(&val)
                    ));
                }
                let n = *n;
                if n > self.env.limits.max_steps as i64 {
                    return self.errorf(format!(
                        "range over {n} exceeds {} steps",
                        self.env.limits.max_steps
                    ));
                }
                let mk = |i: i64| match val {
                    Value::Int64(_) => Value::Int64(i),
                    _ => Value::Int(i),
                };
                (0..n.max(0)).map(|i| (Value::Nil, mk(i), false)).collect()
            }
            Value::Uint(n) => {
                if r.pipe.decl.len() > 1 {
                    return self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        gofmt::sprint_value(&val)
                    ));
                }
                if *n > self.env.limits.max_steps {
                    return self.errorf(format!(
                        "range over {n} exceeds {} steps",
                        self.env.limits.max_steps
                    ));
                }
                (0..*n)
                    .map(|i| (Value::Nil, Value::Uint(i), false))
                    .collect()
            }
            Value::Nil => Vec::new(),
            Value::Object(o) => match o.range() {
                Some(items) => items.into_iter().map(|(k, v)| (k, v, false)).collect(),
                None => {
                    return self.errorf(format!(
                        "range can't iterate over {}",
                        gofmt::sprint_value(&val)
                    ))
                }
            },
            _ => {
                return self.errorf(format!(
                    "range can't iterate over {}",
                    gofmt::sprint_value(&val)
                ))
            }
        };
        let mut ran = false;
        for (index, elem, iface) in items {
            ran = true;
            let decl = &r.pipe.decl;
            if !decl.is_empty() {
                if r.pipe.is_assign {
                    if decl.len() > 1 {
                        self.set_var(&decl[0], index.clone())?;
                    } else {
                        self.set_var(&decl[0], elem.clone())?;
                    }
                } else {
                    self.set_top_var(1, elem.clone(), iface);
                }
            }
            if decl.len() > 1 {
                if r.pipe.is_assign {
                    self.set_var(&decl[1], elem.clone())?;
                } else {
                    self.set_top_var(2, index.clone(), false);
                }
            }
            let d = Dot { v: elem, iface };
            let flow = self.walk_list(&d, &r.list, out)?;
            self.vars.truncate(inner);
            match flow {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        if !ran {
            if let Some(e) = &r.else_list {
                let f = self.walk_list(dot, e, out)?;
                self.vars.truncate(mark);
                return Ok(f);
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, value: Value) -> R<()> {
        for v in self.vars.iter_mut().rev() {
            if v.name == name {
                v.value = value;
                v.iface = false;
                return Ok(());
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn set_top_var(&mut self, n: usize, value: Value, iface: bool) {
        let i = self.vars.len() - n;
        self.vars[i].value = value;
        self.vars[i].iface = iface;
    }

    fn var_value(&self, name: &str) -> R<(Value, bool)> {
        for v in self.vars.iter().rev() {
            if v.name == name {
                return Ok((v.value.clone(), v.iface));
            }
        }
        self.errorf(format!("undefined variable: {name}"))
    }

    fn eval_pipeline(&mut self, dot: &Dot, pipe: &'t Pipe) -> R<Value> {
        self.at = At::Pipe(pipe);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let (v, _) = self.eval_command(dot, cmd, value.take())?;
            value = Some(v);
        }
        let value = value.unwrap_or(Value::Nil);
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, value.clone())?;
            } else {
                self.vars.push(Var {
                    name: d.clone(),
                    value: value.clone(),
                    iface: false,
                });
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return self.errorf(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Dot,
        cmd: &'t Command,
        fin: Option<Value>,
    ) -> R<(Value, bool)> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { .. } => return self.eval_field_node(dot, first, &cmd.args, fin),
            Arg::Chain { .. } => return self.eval_chain_node(dot, first, &cmd.args, fin),
            Arg::Identifier { name, .. } => {
                return self
                    .eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, fin)
                    .map(|v| (v, false))
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p).map(|v| (v, false));
            }
            Arg::Variable { .. } => return self.eval_variable_node(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { val, .. } => Ok((Value::Bool(*val), false)),
            Arg::Dot { .. } => Ok((dot.v.clone(), dot.iface)),
            Arg::Nil { .. } => self.errorf("nil is not a command"),
            Arg::Number { num, .. } => self.ideal_constant(num).map(|v| (v, false)),
            Arg::String { text, .. } => Ok((Value::str(text), false)),
            _ => self.errorf(format!(
                "can't evaluate command {}",
                gofmt::quote(&first.to_string())
            )),
        }
    }

    fn ideal_constant(&self, n: &Number) -> R<Value> {
        if n.is_complex {
            return self.errorf(format!("complex constants are not supported: {}", n.text));
        }
        if n.is_float
            && !is_hex_int(&n.text)
            && !n.text.starts_with('\'')
            && n.text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(n.float));
        }
        if n.is_int {
            return Ok(Value::Int(n.int));
        }
        if n.is_uint {
            return self.errorf(format!("{} overflows int", n.text));
        }
        Ok(Value::Nil)
    }

    fn eval_field_node(
        &mut self,
        dot: &Dot,
        field: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<(Value, bool)> {
        self.at = At::Arg(field);
        let Arg::Field { idents, .. } = field else {
            unreachable!()
        };
        self.eval_field_chain(dot, (dot.v.clone(), dot.iface), field, idents, args, fin)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Dot,
        chain: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<(Value, bool)> {
        self.at = At::Arg(chain);
        let Arg::Chain { node, fields, .. } = chain else {
            unreachable!()
        };
        if fields.is_empty() {
            return self.errorf("internal error: no fields in evalChainNode");
        }
        if let Arg::Nil { .. } = node.as_ref() {
            return self.errorf(format!("indirection through explicit nil in {chain}"));
        }
        let pipe = self.eval_arg_raw(dot, node)?;
        self.eval_field_chain(dot, pipe, chain, fields, args, fin)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Dot,
        var: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<(Value, bool)> {
        self.at = At::Arg(var);
        let Arg::Variable { idents, .. } = var else {
            unreachable!()
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, var, &idents[1..], args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Dot,
        mut receiver: (Value, bool),
        node: &'t Arg,
        idents: &'t [String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<(Value, bool)> {
        let n = idents.len();
        for ident in &idents[..n - 1] {
            receiver = self.eval_field(dot, ident, node, &[], None, receiver)?;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Dot,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        receiver: (Value, bool),
    ) -> R<(Value, bool)> {
        let (recv, iface) = receiver;
        let has_args = args.len() > 1 || fin.is_some();
        match &recv {
            Value::Nil if !iface => {
                if self.env.templates.missing_key == MissingKey::Error {
                    return self
                        .errorf(format!("nil data; no entry for key {}", gofmt::quote(name)));
                }
                Ok((Value::Nil, false))
            }
            Value::Nil => self.errorf(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::Object(o) => match o.member(name) {
                Some(Member::Method(sig)) => self
                    .eval_call(
                        dot,
                        Callee::Method(o.clone(), sig),
                        At::Arg(node),
                        name,
                        args,
                        fin,
                    )
                    .map(|v| (v, false)),
                Some(Member::Field(v)) => {
                    if has_args {
                        return self.errorf(format!(
                            "{name} has arguments but cannot be invoked as function"
                        ));
                    }
                    let nil = v.is_nil();
                    Ok((v, nil))
                }
                None => self.errorf(format!(
                    "can't evaluate field {name} in type {}",
                    o.type_name()
                )),
            },
            Value::Map(m) => {
                if has_args {
                    return self.errorf(format!("{name} is not a method but has arguments"));
                }
                let m = m.borrow();
                match m.entries.get(name) {
                    Some(v) => Ok((v.clone(), m.ty != MapType::String && v.is_nil())),
                    None => match self.env.templates.missing_key {
                        MissingKey::Invalid => Ok((Value::Nil, false)),
                        MissingKey::Zero => {
                            if m.ty == MapType::String {
                                Ok((Value::str(""), false))
                            } else {
                                Ok((Value::Nil, true))
                            }
                        }
                        MissingKey::Error => {
                            drop(m);
                            self.errorf(format!("map has no entry for key {}", gofmt::quote(name)))
                        }
                    },
                }
            }
            other => self.errorf(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Dot,
        ident: &'t Arg,
        name: &str,
        call_node: At<'t>,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(ident);
        let funcs = self.env.templates.funcs.clone();
        if let Some(f) = funcs.get(name) {
            return self.eval_call(dot, Callee::Func(f, false), call_node, name, args, fin);
        }
        if let Some(f) = builtins::get(name) {
            return self.eval_call(dot, Callee::Func(&f, true), call_node, name, args, fin);
        }
        self.errorf(format!("{} is not a defined function", gofmt::quote(name)))
    }

    /// Evaluates a node used as the receiver of a chain (Go's `evalArg`
    /// with no type), keeping the nil-interface flag.
    fn eval_arg_raw(&mut self, dot: &Dot, n: &'t Arg) -> R<(Value, bool)> {
        self.at = At::Arg(n);
        match n {
            Arg::Dot { .. } => Ok((dot.v.clone(), dot.iface)),
            Arg::Nil { .. } => Ok((Value::Nil, false)),
            Arg::Field { .. } => self.eval_field_node(dot, n, std::slice::from_ref(n), None),
            Arg::Variable { .. } => self.eval_variable_node(dot, n, std::slice::from_ref(n), None),
            Arg::Pipe(p) => self.eval_pipeline(dot, p).map(|v| (v, false)),
            Arg::Identifier { name, .. } => self
                .eval_function(dot, n, name, At::Arg(n), std::slice::from_ref(n), None)
                .map(|v| (v, false)),
            Arg::Chain { .. } => self.eval_chain_node(dot, n, std::slice::from_ref(n), None),
            Arg::Bool { val, .. } => Ok((Value::Bool(*val), false)),
            Arg::Number { num, .. } => self.ideal_constant(num).map(|v| (v, false)),
            Arg::String { text, .. } => Ok((Value::str(text), false)),
        }
    }

    fn validate_type(&self, v: Value, iface: bool, ty: Ty) -> R<Value> {
        if matches!(ty, Ty::Any | Ty::Reflect) {
            return Ok(v);
        }
        if v.is_nil() {
            if iface {
                return self.errorf(format!(
                    "wrong type for value; expected {}; got interface {{}}",
                    ty.go_name()
                ));
            }
            if can_be_nil(ty) {
                return Ok(Value::Nil);
            }
            return self.errorf(format!("invalid value; expected {}", ty.go_name()));
        }
        if !assignable(&v, ty) {
            return self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                ty.go_name(),
                v.type_name()
            ));
        }
        Ok(v)
    }

    fn eval_arg(&mut self, dot: &Dot, ty: Ty, n: &'t Arg) -> R<Value> {
        self.at = At::Arg(n);
        match n {
            Arg::Dot { .. }
            | Arg::Field { .. }
            | Arg::Variable { .. }
            | Arg::Pipe(_)
            | Arg::Identifier { .. }
            | Arg::Chain { .. } => {
                let (v, iface) = self.eval_arg_raw(dot, n)?;
                self.at = At::Arg(n);
                return self.validate_type(v, iface, ty);
            }
            Arg::Nil { .. } => {
                if can_be_nil(ty) {
                    return Ok(Value::Nil);
                }
                return self.errorf(format!("cannot assign nil to {}", ty.go_name()));
            }
            _ => {}
        }
        match ty {
            Ty::Bool => match n {
                Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
                _ => self.errorf(format!("expected bool; found {n}")),
            },
            Ty::Int | Ty::Int64 => match n {
                Arg::Number { num, .. } if num.is_int => Ok(if ty == Ty::Int {
                    Value::Int(num.int)
                } else {
                    Value::Int64(num.int)
                }),
                _ => self.errorf(format!("expected integer; found {n}")),
            },
            Ty::Float => match n {
                Arg::Number { num, .. } if num.is_float => Ok(Value::Float(num.float)),
                _ => self.errorf(format!("expected float; found {n}")),
            },
            Ty::String => match n {
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => self.errorf(format!("expected string; found {n}")),
            },
            Ty::Any | Ty::Reflect => match n {
                Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
                Arg::Number { num, .. } => self.ideal_constant(num),
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => self.errorf(format!(
                    "can't handle assignment of {n} to empty interface argument"
                )),
            },
            _ => self.errorf(format!("can't handle {n} for arg of type {}", ty.go_name())),
        }
    }

    fn eval_call(
        &mut self,
        dot: &Dot,
        callee: Callee<'_>,
        node: At<'t>,
        name: &str,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let args: &'t [Arg] = if args.is_empty() { args } else { &args[1..] };
        let (params, variadic, is_builtin) = match &callee {
            Callee::Func(f, b) => (f.params.clone(), f.variadic, *b),
            Callee::Method(_, sig) => (sig.params.clone(), sig.variadic, false),
        };
        let num_in = args.len() + usize::from(fin.is_some());
        let total = params.len() + usize::from(variadic.is_some());
        if variadic.is_some() {
            if num_in < params.len() {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    params.len(),
                    args.len()
                ));
            }
        } else if num_in != total {
            return self.errorf(format!(
                "wrong number of args for {name}: want {total} got {num_in}"
            ));
        }
        if is_builtin && (name == "and" || name == "or") {
            let want = name == "or";
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, Ty::Reflect, a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        let mut i = 0;
        while i < params.len() && i < args.len() {
            argv.push(self.eval_arg(dot, params[i], &args[i])?);
            i += 1;
        }
        if let Some(rest) = variadic {
            while i < args.len() {
                argv.push(self.eval_arg(dot, rest, &args[i])?);
                i += 1;
            }
        }
        if let Some(f) = fin {
            let t = if variadic.is_some() && num_in > params.len() {
                variadic.unwrap_or(Ty::Any)
            } else {
                params.get(num_in - 1).copied().unwrap_or(Ty::Any)
            };
            argv.push(self.validate_type(f, false, t)?);
        }
        if is_builtin {
            match name {
                "call" => {
                    let callee_name = args.first().map(|a| a.to_string()).unwrap_or_default();
                    let msg = match argv.first() {
                        None | Some(Value::Nil) => "call of nil".to_string(),
                        Some(v) => format!("non-function {callee_name} of type {}", v.type_name()),
                    };
                    self.at = node;
                    return self.errorf(format!("error calling call: {msg}"));
                }
                "len" => {
                    if let Some(Value::Nil) = argv.first() {
                        let iface = match args.first() {
                            Some(
                                a @ (Arg::Field { .. } | Arg::Chain { .. } | Arg::Variable { .. }),
                            ) => {
                                let a: &Arg = a;
                                let _ = a;
                                true
                            }
                            Some(Arg::Dot { .. }) => dot.iface,
                            _ => false,
                        };
                        self.at = node;
                        return self.errorf(if iface {
                            "error calling len: len of nil pointer"
                        } else {
                            "error calling len: reflect: call of reflect.Value.Type on zero Value"
                        });
                    }
                }
                _ => {}
            }
        }
        let result = match &callee {
            Callee::Func(f, _) => {
                let body = f.body.clone();
                body(&mut *self.env, argv)
            }
            Callee::Method(o, _) => o.call(name, argv),
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.at = node;
                self.errorf(format!("error calling {name}: {e}"))
            }
        }
    }
}

/// How `{{ value }}` prints: Go's `printValue` (`<no value>` for nil, the
/// `String` method of addressable values).
pub fn print_text(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        Value::Object(o) => match o.template_string() {
            Some(s) => s,
            None => gofmt::sprint_value(v),
        },
        _ => gofmt::sprint_value(v),
    }
}
