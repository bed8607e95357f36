//! YAML output byte-compatible with `kubectl kustomize` for values held as
//! JSON: keys sorted, sequences not indented under their key, and scalar
//! styles chosen the way go-yaml v3 (libyaml's emitter) chooses them:
//! plain when the text reads back as the same string, double quotes when it
//! would read back as another type (`"2"`, `"true"`, `"y"`, `""`), single
//! quotes when only indicators forbid plain, literal blocks for multi-line
//! text, and folding of long plain and quoted lines at 80 columns.
//!
//! Numbers are written from their value, so a float written as `1e3` in the
//! input comes out as `1000` (kustomize keeps the input's spelling).

use serde_json::Value;

const BEST_WIDTH: usize = 80;

/// Writes values as a multi-document stream separated by `---` lines.
pub fn documents<'a, I: IntoIterator<Item = &'a Value>>(values: I) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
    };
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            e.raw("---\n");
        }
        e.document(v);
    }
    e.out
}

struct Emitter {
    out: String,
    column: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_end(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c),
    }
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || u == 0x85
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
        || u >= 0x10000
}

struct Analysis {
    block_plain: bool,
    single: bool,
    block: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, for block context.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_ind = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut special, mut line_breaks) =
        (false, false, false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_ws = true;
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        let followed_ws = is_blank_or_end(chars.get(i + 1).copied());
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                block_ind = true;
            }
            if (c == '?' || c == ':') && followed_ws {
                block_ind = true;
            }
            if c == '-' && followed_ws {
                block_ind = true;
            }
        } else {
            if c == ':' && followed_ws {
                block_ind = true;
            }
            if c == '#' && preceded_ws {
                block_ind = true;
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == n {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == n {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis {
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks || block_ind {
        a.block_plain = false;
    }
    a
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Go's `strconv.ParseInt(s, 0, 64)`/`ParseUint` acceptance (after `_`
/// removal), ignoring range: sign, then `0x`/`0o`/`0b`/`0` prefixes.
fn go_int(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        return !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    if let Some(b) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        return !b.is_empty() && b.bytes().all(|x| x == b'0' || x == b'1');
    }
    if s.len() > 1 && s.starts_with('0') {
        return s.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    all_digits(s)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mant_ok = if let Some(frac) = mant.strip_prefix('.') {
        all_digits(frac)
    } else {
        match mant.split_once('.') {
            Some((i, f)) => all_digits(i) && (f.is_empty() || all_digits(f)),
            None => all_digits(mant),
        }
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => all_digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    mant_ok && exp_ok
}

fn go_float(s: &str) -> bool {
    // strconv.ParseFloat on text starting with '.'
    yaml_float(s)
        || matches!(
            s.to_ascii_lowercase().as_str(),
            ".inf" | ".nan" | "inf" | "infinity" | "nan"
        )
}

fn timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let (date, time) = match rest.find(['T', 't', ' ']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let Some((m, d)) = date.split_once('-') else {
        return false;
    };
    let ok12 = |x: &str| !x.is_empty() && x.len() <= 2 && all_digits(x);
    if !ok12(m) || !ok12(d) {
        return false;
    }
    match time {
        None => true,
        Some(t) => {
            let core: String = t
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ':' || *c == '.')
                .collect();
            let parts: Vec<&str> = core.split(':').collect();
            parts.len() == 3 && ok12(parts[0]) && ok12(parts[1])
        }
    }
}

fn base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if !f.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return false;
        }
    }
    let mut parts = main.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    if first.is_empty()
        || !first.as_bytes()[0].is_ascii_digit()
        || !first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    let mut n = 0;
    for p in parts {
        n += 1;
        let ok = match p.len() {
            1 => p.as_bytes()[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&p.as_bytes()[0]) && p.as_bytes()[1].is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    n > 0
}

/// True when go-yaml would read the plain text back as a string.
fn resolves_to_string(s: &str) -> bool {
    match s {
        "" | "~" | "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False"
        | "FALSE" | ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf"
        | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | "<<" => return false,
        // YAML 1.1 booleans go-yaml refuses to write plain
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "n" | "N" | "no" | "No" | "NO"
        | "off" | "Off" | "OFF" => return false,
        _ => {}
    }
    if base60_float(s) {
        return false;
    }
    let first = s.as_bytes()[0];
    if first == b'.' {
        return !go_float(s);
    }
    if first.is_ascii_digit() || first == b'+' || first == b'-' {
        if timestamp(s) {
            return false;
        }
        let plain = s.replace('_', "");
        if go_int(&plain) || yaml_float(&plain) {
            return false;
        }
    }
    true
}

fn choose(s: &str, key: bool) -> Style {
    let a = analyze(s);
    let mut style = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_string(s) {
        Style::Plain
    } else {
        Style::Double
    };
    if style == Style::Plain && (!a.block_plain || (s.is_empty() && key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || key) {
        style = Style::Double;
    }
    style
}

impl Emitter {
    fn raw(&mut self, s: &str) {
        for c in s.chars() {
            if c == '\n' {
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
        self.out.push_str(s);
    }

    fn ch(&mut self, c: char) {
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
        self.out.push(c);
    }

    fn indent_to(&mut self, indent: usize) {
        self.ch('\n');
        for _ in 0..indent {
            self.ch(' ');
        }
    }

    fn document(&mut self, v: &Value) {
        match v {
            Value::Object(m) if !m.is_empty() => self.map(v, 0),
            Value::Array(a) if !a.is_empty() => self.seq(v, 0),
            other => {
                self.scalar(other, 0, false);
                self.raw("\n");
            }
        }
    }

    /// A block mapping whose keys start at column `indent` (the cursor is
    /// already there for the first key).
    fn map(&mut self, v: &Value, indent: usize) {
        let Value::Object(m) = v else { return };
        for (i, (k, val)) in m.iter().enumerate() {
            if i > 0 {
                for _ in 0..indent {
                    self.ch(' ');
                }
            }
            self.string(k, indent, true);
            self.ch(':');
            match val {
                Value::Object(o) if !o.is_empty() => {
                    self.raw("\n");
                    for _ in 0..indent + 2 {
                        self.ch(' ');
                    }
                    self.map(val, indent + 2);
                }
                Value::Array(a) if !a.is_empty() => {
                    self.raw("\n");
                    for _ in 0..indent {
                        self.ch(' ');
                    }
                    self.seq(val, indent);
                }
                _ => {
                    self.ch(' ');
                    self.scalar(val, indent + 2, false);
                    self.raw("\n");
                }
            }
        }
    }

    /// A block sequence whose dashes sit at column `indent` (the cursor is
    /// already there for the first item).
    fn seq(&mut self, v: &Value, indent: usize) {
        let Value::Array(items) = v else { return };
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                for _ in 0..indent {
                    self.ch(' ');
                }
            }
            self.raw("- ");
            match it {
                Value::Object(o) if !o.is_empty() => self.map(it, indent + 2),
                Value::Array(a) if !a.is_empty() => self.seq(it, indent + 2),
                _ => {
                    self.scalar(it, indent + 2, false);
                    self.raw("\n");
                }
            }
        }
    }

    fn scalar(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Null => self.raw("null"),
            Value::Bool(b) => self.raw(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let s = n.to_string();
                self.raw(&s);
            }
            Value::String(s) => self.string(s, indent, key),
            Value::Object(_) => self.raw("{}"),
            Value::Array(_) => self.raw("[]"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        match choose(s, key) {
            Style::Plain => self.plain(s, indent, !key),
            Style::Single => self.single(s, indent, !key),
            Style::Double => self.double(s, indent, !key),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks && !spaces && self.column > BEST_WIDTH && chars.get(i + 1) != Some(&' ') {
                    self.indent_to(indent);
                } else {
                    self.ch(c);
                }
                spaces = true;
            } else {
                self.ch(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, breaks: bool) {
        self.ch('\'');
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i + 1 != n
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.indent_to(indent);
                } else {
                    self.ch(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.ch('\'');
                }
                self.ch(c);
                spaces = false;
            }
        }
        self.ch('\'');
    }

    fn double(&mut self, s: &str, indent: usize, breaks: bool) {
        self.ch('"');
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            let special =
                !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\';
            if special {
                self.ch('\\');
                match c {
                    '\0' => self.ch('0'),
                    '\u{7}' => self.ch('a'),
                    '\u{8}' => self.ch('b'),
                    '\t' => self.ch('t'),
                    '\n' => self.ch('n'),
                    '\u{b}' => self.ch('v'),
                    '\u{c}' => self.ch('f'),
                    '\r' => self.ch('r'),
                    '\u{1b}' => self.ch('e'),
                    '"' => self.ch('"'),
                    '\\' => self.ch('\\'),
                    '\u{85}' => self.ch('N'),
                    '\u{a0}' => self.ch('_'),
                    '\u{2028}' => self.ch('L'),
                    '\u{2029}' => self.ch('P'),
                    c if (c as u32) <= 0xFF => self.raw(&format!("x{:02X}", c as u32)),
                    c if (c as u32) <= 0xFFFF => self.raw(&format!("u{:04X}", c as u32)),
                    c => self.raw(&format!("U{:08X}", c as u32)),
                }
                spaces = false;
            } else if c == ' ' {
                if breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i + 1 != n {
                    self.indent_to(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.ch('\\');
                    }
                } else {
                    self.ch(c);
                }
                spaces = true;
            } else {
                self.ch(c);
                spaces = false;
            }
        }
        self.ch('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.ch('|');
        if s.starts_with(' ') || s.starts_with('\n') {
            self.ch('2');
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        if trailing == 0 {
            self.ch('-');
        } else if trailing > 1 || s.chars().all(|c| c == '\n') {
            self.ch('+');
        }
        let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
        for line in body.split('\n') {
            self.ch('\n');
            if !line.is_empty() {
                for _ in 0..indent {
                    self.ch(' ');
                }
                self.raw(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quoting_follows_go_yaml() {
        let v = json!({"data": {"n": "2", "t": "true", "y": "y", "e": "", "c": "a: b",
            "u": "café", "ml": "a\nb\n", "tab": "a\tb", "ver": "1.2.3", "time": "12:30",
            "date": "2024-01-01", "dash": "- x", "q": "it's"}});
        let out = documents([&v]);
        assert_eq!(
            out,
            "data:\n  c: 'a: b'\n  dash: '- x'\n  date: \"2024-01-01\"\n  e: \"\"\n  ml: |\n    a\n    b\n  \"n\": \"2\"\n  q: it's\n  t: \"true\"\n  tab: \"a\\tb\"\n  time: \"12:30\"\n  u: café\n  ver: 1.2.3\n  \"y\": \"y\"\n"
        );
    }
}
