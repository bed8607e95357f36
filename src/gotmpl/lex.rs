//! The lexer: Go's `text/template/parse/lex.go`, rune for rune.
//!
//! Positions are byte offsets into the template text; lines are 1-based and
//! count the newlines before an item, as Go does, so error messages carry
//! the same `name:line` as Go's.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemType {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // keywords
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl ItemType {
    pub(crate) fn is_keyword(self) -> bool {
        matches!(
            self,
            ItemType::Block
                | ItemType::Break
                | ItemType::Continue
                | ItemType::Dot
                | ItemType::Define
                | ItemType::Else
                | ItemType::End
                | ItemType::If
                | ItemType::Nil
                | ItemType::Range
                | ItemType::Template
                | ItemType::With
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub typ: ItemType,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// Go's `item.String()`, used in "unexpected ..." errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.typ {
            ItemType::Eof => write!(f, "EOF"),
            ItemType::Error => write!(f, "{}", self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ => {
                if self.val.chars().count() > 10 {
                    let head: String = self.val.chars().take(10).collect();
                    write!(f, "{}...", super::gofmt::quote(&head))
                } else {
                    write!(f, "{}", super::gofmt::quote(&self.val))
                }
            }
        }
    }
}

fn keyword(word: &str) -> Option<ItemType> {
    Some(match word {
        "." => ItemType::Dot,
        "block" => ItemType::Block,
        "break" => ItemType::Break,
        "continue" => ItemType::Continue,
        "define" => ItemType::Define,
        "else" => ItemType::Else,
        "end" => ItemType::End,
        "if" => ItemType::If,
        "range" => ItemType::Range,
        "nil" => ItemType::Nil,
        "template" => ItemType::Template,
        "with" => ItemType::With,
        _ => return None,
    })
}

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";
const TRIM_MARKER_LEN: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
    Done,
}

pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    width: usize,
    paren_depth: usize,
    line: usize,
    start_line: usize,
    state: State,
    pub(crate) break_ok: bool,
    pub(crate) continue_ok: bool,
    pending: Option<Item>,
}

fn is_space(r: char) -> bool {
    matches!(r, ' ' | '\t' | '\r' | '\n')
}

/// Go's `isAlphaNumeric`: underscore, letters and digits.
fn is_alnum(r: char) -> bool {
    r == '_' || r.is_alphabetic() || r.is_ascii_digit() || (!r.is_ascii() && r.is_numeric())
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

fn right_trim_length(s: &str) -> usize {
    s.len() - s.trim_end_matches(is_space).len()
}

fn left_trim_length(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space).len()
}

/// Go's `%#U`: `U+0041 'A'`.
fn sharp_u(r: Option<char>) -> String {
    match r {
        None => "U+FFFFFFFFFFFFFFFF".into(),
        Some(r) => {
            if !r.is_control() {
                format!("U+{:04X} '{}'", r as u32, r)
            } else {
                format!("U+{:04X}", r as u32)
            }
        }
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Lexer {
            input,
            pos: 0,
            start: 0,
            width: 0,
            paren_depth: 0,
            line: 1,
            start_line: 1,
            state: State::Text,
            break_ok: false,
            continue_ok: false,
            pending: None,
        }
    }

    fn next(&mut self) -> Option<char> {
        if self.pos >= self.input.len() {
            self.width = 0;
            return None;
        }
        let r = self.input[self.pos..].chars().next()?;
        self.width = r.len_utf8();
        self.pos += self.width;
        if r == '\n' {
            self.line += 1;
        }
        Some(r)
    }

    fn peek(&mut self) -> Option<char> {
        let r = self.next();
        self.backup();
        r
    }

    fn backup(&mut self) {
        self.pos -= self.width;
        if self.width == 1 && self.input.as_bytes()[self.pos] == b'\n' {
            self.line -= 1;
        }
    }

    fn emit(&mut self, t: ItemType) -> Item {
        let item = Item {
            typ: t,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
            line: self.start_line,
        };
        self.start = self.pos;
        self.start_line = self.line;
        item
    }

    fn ignore(&mut self) {
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(r) if valid.contains(r) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        loop {
            match self.next() {
                Some(r) if valid.contains(r) => {}
                _ => break,
            }
        }
        self.backup();
    }

    fn errorf(&mut self, msg: String) -> Item {
        self.state = State::Done;
        Item {
            typ: ItemType::Error,
            pos: self.start,
            val: msg,
            line: self.start_line,
        }
    }

    /// The next item; `Eof` forever once the input is consumed.
    pub(crate) fn next_item(&mut self) -> Item {
        if let Some(p) = self.pending.take() {
            return p;
        }
        loop {
            if self.state == State::Done {
                return Item {
                    typ: ItemType::Eof,
                    pos: self.pos,
                    val: String::new(),
                    line: self.line,
                };
            }
            if let Some(item) = self.step() {
                return item;
            }
        }
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = &self.input[self.pos..];
        if has_right_trim_marker(rest) && rest[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        if rest.starts_with(RIGHT_DELIM) {
            return (true, false);
        }
        (false, false)
    }

    fn at_terminator(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(r) if is_space(r) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(r) => RIGHT_DELIM.starts_with(r),
        }
    }

    /// Runs one state; returns an item when the state produced one.
    fn step(&mut self) -> Option<Item> {
        match self.state {
            State::Done => None,
            State::Text => {
                self.width = 0;
                if let Some(x) = self.input[self.pos..].find(LEFT_DELIM) {
                    self.pos += x;
                    let mut trim = 0;
                    if has_left_trim_marker(&self.input[self.pos + LEFT_DELIM.len()..]) {
                        trim = right_trim_length(&self.input[self.start..self.pos]);
                    }
                    self.pos -= trim;
                    let mut item = None;
                    if self.pos > self.start {
                        self.line += self.input[self.start..self.pos].matches('\n').count();
                        item = Some(self.emit(ItemType::Text));
                    }
                    self.pos += trim;
                    self.ignore();
                    self.state = State::LeftDelim;
                    return item;
                }
                self.pos = self.input.len();
                if self.pos > self.start {
                    self.line += self.input[self.start..self.pos].matches('\n').count();
                    return Some(self.emit(ItemType::Text));
                }
                let item = self.emit(ItemType::Eof);
                self.state = State::Done;
                Some(item)
            }
            State::LeftDelim => {
                self.pos += LEFT_DELIM.len();
                let trim = has_left_trim_marker(&self.input[self.pos..]);
                let after = if trim { TRIM_MARKER_LEN } else { 0 };
                if self.input[self.pos + after..].starts_with(LEFT_COMMENT) {
                    self.pos += after;
                    self.ignore();
                    self.state = State::Comment;
                    return None;
                }
                let item = self.emit(ItemType::LeftDelim);
                self.pos += after;
                self.ignore();
                self.paren_depth = 0;
                self.state = State::InsideAction;
                Some(item)
            }
            State::Comment => {
                self.pos += LEFT_COMMENT.len();
                let Some(i) = self.input[self.pos..].find(RIGHT_COMMENT) else {
                    return Some(self.errorf("unclosed comment".into()));
                };
                self.pos += i + RIGHT_COMMENT.len();
                let (delim, trim) = self.at_right_delim();
                if !delim {
                    return Some(self.errorf("comment ends before closing delimiter".into()));
                }
                if trim {
                    self.pos += TRIM_MARKER_LEN;
                }
                self.pos += RIGHT_DELIM.len();
                if trim {
                    self.pos += left_trim_length(&self.input[self.pos..]);
                }
                self.ignore();
                self.state = State::Text;
                None
            }
            State::RightDelim => {
                let (_, trim) = self.at_right_delim();
                if trim {
                    self.pos += TRIM_MARKER_LEN;
                    self.ignore();
                }
                self.pos += RIGHT_DELIM.len();
                let item = self.emit(ItemType::RightDelim);
                if trim {
                    self.pos += left_trim_length(&self.input[self.pos..]);
                    self.ignore();
                }
                self.state = State::Text;
                Some(item)
            }
            State::InsideAction => {
                let (delim, _) = self.at_right_delim();
                if delim {
                    if self.paren_depth == 0 {
                        self.state = State::RightDelim;
                        return None;
                    }
                    return Some(self.errorf("unclosed left paren".into()));
                }
                let r = self.next();
                match r {
                    None => Some(self.errorf("unclosed action".into())),
                    Some(r) if is_space(r) => {
                        self.backup();
                        self.state = State::Space;
                        None
                    }
                    Some('=') => Some(self.emit(ItemType::Assign)),
                    Some(':') => {
                        if self.next() != Some('=') {
                            return Some(self.errorf("expected :=".into()));
                        }
                        Some(self.emit(ItemType::Declare))
                    }
                    Some('|') => Some(self.emit(ItemType::Pipe)),
                    Some('"') => {
                        self.state = State::Quote;
                        None
                    }
                    Some('`') => {
                        self.state = State::RawQuote;
                        None
                    }
                    Some('$') => {
                        self.state = State::Variable;
                        None
                    }
                    Some('\'') => {
                        self.state = State::Char;
                        None
                    }
                    Some('.') => {
                        if self.pos < self.input.len() {
                            let c = self.input.as_bytes()[self.pos];
                            if !c.is_ascii_digit() {
                                self.state = State::Field;
                                return None;
                            }
                        }
                        self.backup();
                        self.state = State::Number;
                        None
                    }
                    Some(r) if r == '+' || r == '-' || r.is_ascii_digit() => {
                        self.backup();
                        self.state = State::Number;
                        None
                    }
                    Some(r) if is_alnum(r) => {
                        self.backup();
                        self.state = State::Identifier;
                        None
                    }
                    Some('(') => {
                        self.paren_depth += 1;
                        Some(self.emit(ItemType::LeftParen))
                    }
                    Some(')') => {
                        let item = self.emit(ItemType::RightParen);
                        if self.paren_depth == 0 {
                            return Some(
                                self.errorf(format!(
                                    "unexpected right paren {}",
                                    sharp_u(Some(')'))
                                )),
                            );
                        }
                        self.paren_depth -= 1;
                        Some(item)
                    }
                    Some(r) if r.is_ascii() && !r.is_ascii_control() => {
                        Some(self.emit(ItemType::Char))
                    }
                    Some(r) => Some(self.errorf(format!(
                        "unrecognized character in action: {}",
                        sharp_u(Some(r))
                    ))),
                }
            }
            State::Space => {
                let mut num = 0;
                while let Some(r) = self.peek() {
                    if !is_space(r) {
                        break;
                    }
                    self.next();
                    num += 1;
                }
                if has_right_trim_marker(&self.input[self.pos - 1..])
                    && self.input[self.pos - 1 + TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM)
                {
                    self.backup();
                    if num == 1 {
                        self.state = State::RightDelim;
                        return None;
                    }
                }
                self.state = State::InsideAction;
                Some(self.emit(ItemType::Space))
            }
            State::Identifier => loop {
                match self.next() {
                    Some(r) if is_alnum(r) => {}
                    r => {
                        if r.is_some() {
                            self.backup();
                        }
                        let word = self.input[self.start..self.pos].to_string();
                        if !self.at_terminator() {
                            return Some(self.errorf(format!("bad character {}", sharp_u(r))));
                        }
                        self.state = State::InsideAction;
                        let t = match keyword(&word) {
                            Some(ItemType::Break) if !self.break_ok => ItemType::Identifier,
                            Some(ItemType::Continue) if !self.continue_ok => ItemType::Identifier,
                            Some(k) => k,
                            None if word.starts_with('.') => ItemType::Field,
                            None if word == "true" || word == "false" => ItemType::Bool,
                            None => ItemType::Identifier,
                        };
                        return Some(self.emit(t));
                    }
                }
            },
            State::Field => self.field_or_variable(ItemType::Field),
            State::Variable => {
                if self.at_terminator() {
                    self.state = State::InsideAction;
                    return Some(self.emit(ItemType::Variable));
                }
                self.field_or_variable(ItemType::Variable)
            }
            State::Char => {
                loop {
                    match self.next() {
                        Some('\\') => match self.next() {
                            Some(r) if r != '\n' => {}
                            _ => {
                                return Some(self.errorf("unterminated character constant".into()))
                            }
                        },
                        None | Some('\n') => {
                            return Some(self.errorf("unterminated character constant".into()))
                        }
                        Some('\'') => break,
                        _ => {}
                    }
                }
                self.state = State::InsideAction;
                Some(self.emit(ItemType::CharConstant))
            }
            State::Number => {
                if !self.scan_number() {
                    let text = self.input[self.start..self.pos].to_string();
                    return Some(
                        self.errorf(format!("bad number syntax: {}", super::gofmt::quote(&text))),
                    );
                }
                if let Some('+' | '-') = self.peek() {
                    if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                        let text = self.input[self.start..self.pos].to_string();
                        return Some(
                            self.errorf(format!(
                                "bad number syntax: {}",
                                super::gofmt::quote(&text)
                            )),
                        );
                    }
                    self.state = State::InsideAction;
                    return Some(self.emit(ItemType::Complex));
                }
                self.state = State::InsideAction;
                Some(self.emit(ItemType::Number))
            }
            State::Quote => {
                loop {
                    match self.next() {
                        Some('\\') => match self.next() {
                            Some(r) if r != '\n' => {}
                            _ => return Some(self.errorf("unterminated quoted string".into())),
                        },
                        None | Some('\n') => {
                            return Some(self.errorf("unterminated quoted string".into()))
                        }
                        Some('"') => break,
                        _ => {}
                    }
                }
                self.state = State::InsideAction;
                Some(self.emit(ItemType::String))
            }
            State::RawQuote => {
                loop {
                    match self.next() {
                        None => return Some(self.errorf("unterminated raw quoted string".into())),
                        Some('`') => break,
                        _ => {}
                    }
                }
                self.state = State::InsideAction;
                Some(self.emit(ItemType::RawString))
            }
        }
    }

    fn field_or_variable(&mut self, typ: ItemType) -> Option<Item> {
        if self.at_terminator() {
            self.state = State::InsideAction;
            return Some(if typ == ItemType::Variable {
                self.emit(ItemType::Variable)
            } else {
                self.emit(ItemType::Dot)
            });
        }
        let mut r;
        loop {
            r = self.next();
            match r {
                Some(c) if is_alnum(c) => {}
                _ => {
                    if r.is_some() {
                        self.backup();
                    }
                    break;
                }
            }
        }
        if !self.at_terminator() {
            return Some(self.errorf(format!("bad character {}", sharp_u(r))));
        }
        self.state = State::InsideAction;
        Some(self.emit(typ))
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(r) = self.peek() {
            if is_alnum(r) {
                self.next();
                return false;
            }
        }
        true
    }
}
