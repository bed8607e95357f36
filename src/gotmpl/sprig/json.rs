//! Go's `encoding/json` for template values: the encoder behind `toJson`
//! (sorted keys, Go's float forms, HTML escaping) and a decoder with Go's
//! error messages (`invalid character 'b' looking for beginning of object
//! key string`), behind `fromJson`.

use std::collections::BTreeMap;

use super::{f, s};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::gofmt;
use crate::gotmpl::value::{ListType, MapType, Ty, Value};

/// Encoder options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Escape `<`, `>` and `&` (Go's default).
    pub escape_html: bool,
    /// Indent with two spaces (`MarshalIndent(v, "", "  ")`).
    pub pretty: bool,
}

fn write_str(out: &mut String, s: &str, escape_html: bool) {
    const HEX: &[u8] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(out: &mut String, style: Style, depth: usize) {
    if style.pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
}

fn encode_json(
    out: &mut String,
    v: &serde_json::Value,
    style: Style,
    depth: usize,
) -> Result<(), String> {
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&gofmt::json_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        serde_json::Value::String(s) => write_str(out, s, style.escape_html),
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                encode_json(out, x, style, depth + 1)?;
            }
            if !a.is_empty() {
                newline(out, style, depth);
            }
            out.push(']');
        }
        serde_json::Value::Object(o) => {
            out.push('{');
            let sorted: BTreeMap<&String, &serde_json::Value> = o.iter().collect();
            for (i, (k, x)) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_str(out, k, style.escape_html);
                out.push(':');
                if style.pretty {
                    out.push(' ');
                }
                encode_json(out, x, style, depth + 1)?;
            }
            if !sorted.is_empty() {
                newline(out, style, depth);
            }
            out.push('}');
        }
    }
    Ok(())
}

fn encode(out: &mut String, v: &Value, style: Style, depth: usize) -> Result<(), String> {
    if depth > 10_000 {
        return Err("json: unsupported value: encountered a cycle".into());
    }
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&u.to_string()),
        Value::Float(x) => {
            if !x.is_finite() {
                return Err(format!(
                    "json: unsupported value: {}",
                    gofmt::format_float(*x, 'g', -1)
                ));
            }
            out.push_str(&gofmt::json_float(*x));
        }
        Value::Str(s) => write_str(out, s, style.escape_html),
        Value::Bytes(_) => encode_json(out, &v.to_json(), style, depth)?,
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                encode(out, x, style, depth + 1)?;
            }
            if !l.items.is_empty() {
                newline(out, style, depth);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            out.push('{');
            for (i, (k, x)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, style, depth + 1);
                write_str(out, k, style.escape_html);
                out.push(':');
                if style.pretty {
                    out.push(' ');
                }
                encode(out, x, style, depth + 1)?;
            }
            if !m.entries.is_empty() {
                newline(out, style, depth);
            }
            out.push('}');
        }
        Value::Object(o) => encode_json(out, &o.to_json(), style, depth)?,
    }
    Ok(())
}

/// `json.Marshal` (and `MarshalIndent` / `SetEscapeHTML(false)` per `style`).
pub fn marshal(v: &Value, style: Style) -> Result<String, String> {
    let mut out = String::new();
    encode(&mut out, v, style, 0)?;
    Ok(out)
}

// ---- decoding ---------------------------------------------------------------

fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => {
            let q = gofmt::quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

struct Decoder<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

type DResult<T> = Result<T, String>;

impl<'a> Decoder<'a> {
    fn peek_char(&self) -> Option<char> {
        self.text.get(self.i..).and_then(|r| r.chars().next())
    }

    fn err(&self, context: &str) -> String {
        match self.peek_char() {
            None => "unexpected end of JSON input".into(),
            Some(c) => format!("invalid character {} {context}", quote_char(c)),
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> DResult<Value> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("unexpected end of JSON input".into());
        };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Value::str),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Nil),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> DResult<Value> {
        let w = word.as_bytes();
        self.i += 1;
        for &expect in &w[1..] {
            match self.s.get(self.i) {
                None => return Err("unexpected end of JSON input".into()),
                Some(&b) if b == expect => self.i += 1,
                Some(_) => {
                    return Err(self.err(&format!(
                        "in literal {word} (expecting {})",
                        quote_char(expect as char)
                    )))
                }
            }
        }
        Ok(v)
    }

    fn number(&mut self) -> DResult<Value> {
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        match self.s.get(self.i) {
            None => return Err("unexpected end of JSON input".into()),
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            Some(_) => return Err(self.err("in numeric literal")),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                if self.i >= self.s.len() {
                    return Err("unexpected end of JSON input".into());
                }
                return Err(self.err("after decimal point in numeric literal"));
            }
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                if self.i >= self.s.len() {
                    return Err("unexpected end of JSON input".into());
                }
                return Err(self.err("in exponent of numeric literal"));
            }
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let text = &self.text[start..self.i];
        Ok(Value::Float(text.parse::<f64>().unwrap_or(f64::INFINITY)))
    }

    fn string(&mut self) -> DResult<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err("unexpected end of JSON input".into());
            };
            match c {
                '"' => {
                    self.i += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.i += 1;
                    let Some(e) = self.peek_char() else {
                        return Err("unexpected end of JSON input".into());
                    };
                    self.i += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.text.get(self.i..self.i + 2) == Some("\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let c = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                    continue;
                                }
                                self.i = save;
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.i -= e.len_utf8();
                            return Err(self.err("in string escape code"));
                        }
                    }
                }
                c if (c as u32) < 0x20 => return Err(self.err("in string literal")),
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> DResult<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let Some(c) = self.peek_char() else {
                return Err("unexpected end of JSON input".into());
            };
            let Some(d) = c.to_digit(16) else {
                return Err(self.err("in \\u hexadecimal character escape"));
            };
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    fn enter(&mut self) -> DResult<()> {
        self.depth += 1;
        if self.depth > 10_000 {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn object(&mut self) -> DResult<Value> {
        self.enter()?;
        self.i += 1;
        let mut m = BTreeMap::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::map(m));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("looking for beginning of object key string"));
            }
            let k = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(self.err("after object key"));
            }
            self.i += 1;
            let v = self.value()?;
            m.insert(k, v);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::map(m));
                }
                _ => return Err(self.err("after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> DResult<Value> {
        self.enter()?;
        self.i += 1;
        let mut v = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::list(v));
        }
        loop {
            v.push(self.value()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Value::list(v));
                }
                _ => return Err(self.err("after array element")),
            }
        }
    }
}

/// `json.Unmarshal` into `interface{}`: numbers become `float64`.
pub fn unmarshal(text: &str) -> Result<Value, String> {
    let mut d = Decoder {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
    };
    let v = d.value()?;
    d.ws();
    if d.i < d.s.len() {
        return Err(d.err("after top-level value"));
    }
    Ok(v)
}

fn kind_of_json(v: &Value) -> &'static str {
    match v {
        Value::Map(_) => "object",
        Value::List(_) => "array",
        Value::Str(_) => "string",
        Value::Float(_) => "number",
        Value::Bool(_) => "bool",
        _ => "null",
    }
}

/// Helm's `fromJson`: a map, or `{"Error": message}` when the text is not
/// a JSON object.
pub fn from_json_map(text: &str) -> Value {
    let err_map = |e: String| {
        let mut m = BTreeMap::new();
        m.insert("Error".to_string(), Value::str(e));
        Value::map(m)
    };
    match unmarshal(text) {
        Ok(v @ Value::Map(_)) => v,
        Ok(Value::Nil) => Value::map(BTreeMap::new()),
        Ok(other) => err_map(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            kind_of_json(&other)
        )),
        Err(e) => err_map(e),
    }
}

/// Helm's `fromJsonArray`: a list, or `[message]` when the text is not a
/// JSON array.
pub fn from_json_array(text: &str) -> Value {
    match unmarshal(text) {
        Ok(v @ Value::List(_)) => v,
        Ok(Value::Nil) => Value::list(Vec::new()),
        Ok(other) => Value::list(vec![Value::str(format!(
            "json: cannot unmarshal {} into Go value of type []interface {{}}",
            kind_of_json(&other)
        ))]),
        Err(e) => Value::list(vec![Value::str(e)]),
    }
}

const HTML: Style = Style {
    escape_html: true,
    pretty: false,
};
const PRETTY: Style = Style {
    escape_html: true,
    pretty: true,
};
const RAW: Style = Style {
    escape_html: false,
    pretty: false,
};

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert(
        "toJson",
        f(&[Any], |a| {
            Ok(Value::str(marshal(&a[0], HTML).unwrap_or_default()))
        }),
    );
    m.insert(
        "mustToJson",
        f(&[Any], |a| marshal(&a[0], HTML).map(Value::str)),
    );
    m.insert(
        "toPrettyJson",
        f(&[Any], |a| {
            Ok(Value::str(marshal(&a[0], PRETTY).unwrap_or_default()))
        }),
    );
    m.insert(
        "mustToPrettyJson",
        f(&[Any], |a| marshal(&a[0], PRETTY).map(Value::str)),
    );
    m.insert(
        "toRawJson",
        f(&[Any], |a| marshal(&a[0], RAW).map(Value::str)),
    );
    m.insert(
        "mustToRawJson",
        f(&[Any], |a| marshal(&a[0], RAW).map(Value::str)),
    );
    m.insert("fromJson", f(&[String], |a| Ok(from_json_map(s(&a, 0)))));
    m.insert(
        "fromJsonArray",
        f(&[String], |a| Ok(from_json_array(s(&a, 0)))),
    );
    m.insert("mustFromJson", f(&[String], |a| unmarshal(s(&a, 0))));
    let _ = (ListType::Interface, MapType::Interface);
}
