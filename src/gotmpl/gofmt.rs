//! Go's `strconv` and `fmt` as templates see them: quoting, number parsing
//! and formatting, and `Sprint`/`Sprintln`/`Sprintf` with Go's verbs,
//! flags and error forms (`%!d(string=x)`, `%!s(MISSING)`).

use super::value::{ListType, MapType, Value};

// ---- strconv ---------------------------------------------------------------

/// Go's `unicode.IsPrint`, approximated without Unicode category tables:
/// control, format and separator characters (other than the ASCII space)
/// are not printable.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}'
        | '\u{FFFE}' | '\u{FFFF}' | '\u{F0000}'..='\u{10FFFF}')
}

fn quote_with(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        push_escaped(&mut out, c, quote, ascii_only);
    }
    out.push(quote);
    out
}

fn push_escaped(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < ' ' as u32 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32))
        }
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// `strconv.QuoteToASCII`.
pub fn quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

/// `strconv.Quote` of bytes that may not be UTF-8 (invalid bytes as `\x..`).
pub fn quote_bytes(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                for c in s.chars() {
                    push_escaped(&mut out, c, '"', false);
                }
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                for c in std::str::from_utf8(good).unwrap_or("").chars() {
                    push_escaped(&mut out, c, '"', false);
                }
                out.push_str(&format!("\\x{:02x}", bad[0]));
                rest = &bad[1..];
            }
        }
    }
    out.push('"');
    out
}

/// `strconv.QuoteRune`.
pub fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'', false);
    out.push('\'');
    out
}

/// `strconv.CanBackquote`.
pub fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

fn unhex(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// Decodes one escape or character from `s` (Go's `strconv.UnquoteChar`):
/// returns the character (or byte, for `\x`/octal escapes) and the rest.
fn unquote_char_in(s: &[u8], quote: u8) -> Option<(Result<char, u8>, &[u8])> {
    let c = *s.first()?;
    if c == quote && (quote == b'\'' || quote == b'"') {
        return None;
    }
    if c >= 0x80 {
        let st = std::str::from_utf8(&s[..s.len().min(4)]).ok().or_else(|| {
            (1..=4)
                .rev()
                .find_map(|n| std::str::from_utf8(&s[..n.min(s.len())]).ok())
        })?;
        let ch = st.chars().next()?;
        return Some((Ok(ch), &s[ch.len_utf8()..]));
    }
    if c != b'\\' {
        return Some((Ok(c as char), &s[1..]));
    }
    if s.len() <= 1 {
        return None;
    }
    let e = s[1];
    let rest = &s[2..];
    let simple = |ch: char| Some((Ok(ch), rest));
    match e {
        b'a' => simple('\x07'),
        b'b' => simple('\x08'),
        b'f' => simple('\x0c'),
        b'n' => simple('\n'),
        b'r' => simple('\r'),
        b't' => simple('\t'),
        b'v' => simple('\x0b'),
        b'x' | b'u' | b'U' => {
            let n = match e {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            if rest.len() < n {
                return None;
            }
            let mut v: u32 = 0;
            for &d in &rest[..n] {
                v = v.checked_mul(16)?.checked_add(unhex(d)?)?;
            }
            if e == b'x' {
                return Some((Err(v as u8), &rest[n..]));
            }
            let ch = char::from_u32(v)?;
            Some((Ok(ch), &rest[n..]))
        }
        b'0'..=b'7' => {
            if rest.len() < 2 {
                return None;
            }
            let mut v = (e - b'0') as u32;
            for &d in &rest[..2] {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v * 8 + (d - b'0') as u32;
            }
            if v > 255 {
                return None;
            }
            Some((Err(v as u8), &rest[2..]))
        }
        b'\\' => simple('\\'),
        b'\'' | b'"' => {
            if e != quote {
                return None;
            }
            simple(e as char)
        }
        _ => None,
    }
}

/// `strconv.Unquote` for `"..."` and `` `...` `` strings.
pub fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let q = b[0];
    if q != b[b.len() - 1] {
        return None;
    }
    let inner = &b[1..b.len() - 1];
    match q {
        b'`' => {
            if inner.contains(&b'`') {
                return None;
            }
            let t = std::str::from_utf8(inner).ok()?;
            Some(t.replace('\r', ""))
        }
        b'"' => {
            let mut out: Vec<u8> = Vec::with_capacity(inner.len());
            let mut rest = inner;
            if rest.contains(&b'\n') {
                return None;
            }
            while !rest.is_empty() {
                let (c, r) = unquote_char_in(rest, b'"')?;
                match c {
                    Ok(ch) => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    Err(byte) => out.push(byte),
                }
                rest = r;
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        }
        _ => None,
    }
}

/// Decodes a Go character literal `'x'`.
pub fn unquote_char(s: &str) -> Option<char> {
    let b = s.as_bytes();
    if b.len() < 3 || b[0] != b'\'' || b[b.len() - 1] != b'\'' {
        return None;
    }
    let inner = &b[1..b.len() - 1];
    let (c, rest) = unquote_char_in(inner, b'\'')?;
    if !rest.is_empty() {
        return None;
    }
    match c {
        Ok(ch) => Some(ch),
        Err(byte) => Some(byte as char),
    }
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        i = 1;
    }
    let mut hex = false;
    if b.len() - i >= 2 && b[i] == b'0' && matches!(b[i + 1] | 0x20, b'b' | b'o' | b'x') {
        hex = b[i + 1] | 0x20 == b'x';
        i += 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && (c | 0x20).is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)`.
pub fn parse_uint_base0(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let (base, digits) = if b[0] == b'0' && b.len() > 1 {
        match b[1] | 0x20 {
            b'x' => (16, &s[2..]),
            b'o' => (8, &s[2..]),
            b'b' => (2, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() {
        return if base == 8 && digits.is_empty() && s == "0" {
            Some(0)
        } else {
            None
        };
    }
    if clean.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&clean, base).ok()
}

/// `strconv.ParseInt(s, 0, 64)`.
pub fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.starts_with(['+', '-']) {
        return None;
    }
    let u = parse_uint_base0(body)?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else if u <= i64::MAX as u64 {
        Some(u as i64)
    } else {
        None
    }
}

/// `strconv.ParseFloat(s, 64)` (decimal and hexadecimal forms, `inf`, `nan`).
pub fn parse_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if body.contains('_') && !underscore_ok(s) {
                return None;
            }
            let clean: String = body.chars().filter(|c| *c != '_').collect();
            if clean.starts_with("0x") || clean.starts_with("0X") {
                parse_hex_float(&clean[2..])?
            } else {
                if clean.is_empty()
                    || !clean
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                    || clean.starts_with(['e', 'E'])
                {
                    return None;
                }
                clean.parse::<f64>().ok()?
            }
        }
    };
    Some(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// Decimal digits of a float and the position of the decimal point:
/// `digits` without trailing zeros, value = 0.digits × 10^dp.
struct Digits {
    digits: Vec<u8>,
    dp: i32,
}

/// Digits from Rust's exact `{:e}` formatting (shortest with `prec` None).
fn float_digits(f: f64, prec: Option<usize>) -> Digits {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p, f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == [b'0'] {
        return Digits { digits, dp: 1 };
    }
    Digits {
        digits,
        dp: exp + 1,
    }
}

fn fmt_e(neg: bool, d: &Digits, prec: usize, e: char) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push(d.digits.first().copied().unwrap_or(b'0') as char);
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.digits.get(i).copied().unwrap_or(b'0') as char);
        }
    }
    out.push(e);
    let exp = if d.digits == [b'0'] { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

fn fmt_f(neg: bool, d: &Digits, prec: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            out.push(d.digits.get(i).copied().unwrap_or(b'0') as char);
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = d.dp + i;
            let c = if j < 0 {
                b'0'
            } else {
                d.digits.get(j as usize).copied().unwrap_or(b'0')
            };
            out.push(c as char);
        }
    }
    out
}

/// `strconv.FormatFloat(f, fmt, prec, 64)` for `e E f g G`; `prec` < 0
/// means the shortest representation that round-trips.
pub fn format_float(f: f64, fmt: char, prec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = f.is_sign_negative();
    let shortest = prec < 0;
    match fmt {
        'e' | 'E' => {
            let d = if shortest {
                float_digits(f, None)
            } else {
                float_digits(f, Some(prec as usize))
            };
            let p = if shortest {
                d.digits.len().saturating_sub(1)
            } else {
                prec as usize
            };
            fmt_e(neg, &d, p, fmt)
        }
        'f' | 'F' => {
            if shortest {
                let d = float_digits(f, None);
                let p = (d.digits.len() as i32 - d.dp).max(0) as usize;
                fmt_f(neg, &d, p)
            } else {
                let s = format!("{:.*}", prec as usize, f.abs());
                if neg {
                    format!("-{s}")
                } else {
                    s
                }
            }
        }
        'g' | 'G' => {
            let e = if fmt == 'g' { 'e' } else { 'E' };
            let mut p = prec;
            if p == 0 {
                p = 1;
            }
            let d = if shortest {
                float_digits(f, None)
            } else {
                float_digits(f, Some((p - 1) as usize))
            };
            let nd = d.digits.len() as i32;
            let mut eprec = if shortest { nd } else { p };
            if eprec > nd && nd >= d.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            let zero = d.digits == [b'0'];
            if !zero && (exp < -4 || exp >= eprec) {
                let mut pp = if shortest { nd } else { p };
                if pp > nd {
                    pp = nd;
                }
                return fmt_e(neg, &d, (pp - 1).max(0) as usize, e);
            }
            let mut pp = if shortest { nd } else { p };
            if pp > d.dp {
                pp = nd;
            }
            let fprec = if zero { 0 } else { (pp - d.dp).max(0) };
            fmt_f(neg, &d, fprec as usize)
        }
        _ => format!("%{fmt}"),
    }
}

/// How `encoding/json` writes a float64.
pub fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = format_float(f, 'e', -1);
        // clean up e-09 to e-9
        if let Some(i) = s.find("e-0") {
            s.replace_range(i + 2..i + 3, "");
        }
        if let Some(i) = s.find("e+0") {
            s.replace_range(i + 2..i + 3, "");
        }
        s
    } else {
        format_float(f, 'f', -1)
    }
}

// ---- fmt ------------------------------------------------------------------

/// The print form of a value under `%v` (what `print` and `{{ . }}` show).
pub fn sprint_value(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

/// `fmt.Sprint`.
pub fn sprint(args: &[Value]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// `fmt.Sprintln`.
pub fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::default();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::default();
    p.do_printf(format, args);
    p.buf
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

fn rune_count(s: &str) -> usize {
    s.chars().count()
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        for _ in 0..n {
            self.buf.push(c);
        }
    }

    fn pad(&mut self, s: &str) {
        match self.f.wid {
            None | Some(0) => self.buf.push_str(s),
            Some(w) => {
                let n = w.saturating_sub(rune_count(s));
                if !self.f.minus {
                    self.write_padding(n);
                    self.buf.push_str(s);
                } else {
                    self.buf.push_str(s);
                    self.write_padding(n);
                }
            }
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = match self.f.prec {
            Some(p) => s.chars().take(p).collect::<String>(),
            None => s.to_string(),
        };
        self.pad(&s);
    }

    fn fmt_q(&mut self, s: &str) {
        let s = match self.f.prec {
            Some(p) => s.chars().take(p).collect::<String>(),
            None => s.to_string(),
        };
        if self.f.sharp && can_backquote(&s) {
            self.pad(&format!("`{s}`"));
        } else if self.f.plus {
            self.pad(&quote_ascii(&s));
        } else {
            self.pad(&quote(&s));
        }
    }

    fn fmt_sx(&mut self, b: &[u8], upper: bool) {
        let digits = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let n = match self.f.prec {
            Some(p) => p.min(b.len()),
            None => b.len(),
        };
        let mut out = String::new();
        for (i, byte) in b[..n].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
            }
            if self.f.sharp && (self.f.space || i == 0) {
                out.push_str(if upper { "0X" } else { "0x" });
            }
            out.push(digits[(byte >> 4) as usize] as char);
            out.push(digits[(byte & 15) as usize] as char);
        }
        let old = self.f.prec;
        self.f.prec = None;
        self.pad(&out);
        self.f.prec = old;
    }

    fn bad_verb(&mut self, verb: char, v: &Value) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v {
            Value::Nil => self.buf.push_str("<nil>"),
            _ => {
                self.buf.push_str(&v.type_name());
                self.buf.push('=');
                let saved = self.f;
                self.f = Flags::default();
                self.print_arg(v, 'v');
                self.f = saved;
            }
        }
        self.buf.push(')');
    }

    fn fmt_integer(&mut self, u: u64, neg: bool, signed: bool, verb: char, v: &Value) {
        let base = match verb {
            'v' | 'd' => 10,
            'b' => 2,
            'o' | 'O' => 8,
            'x' | 'X' => 16,
            'c' => {
                let c = char::from_u32(if neg { 0xFFFD } else { u as u32 }).unwrap_or('\u{FFFD}');
                let s = c.to_string();
                self.pad(&s);
                return;
            }
            'q' => {
                let c = char::from_u32(if neg { 0xFFFD } else { u as u32 }).unwrap_or('\u{FFFD}');
                let s = quote_rune(c);
                self.pad(&s);
                return;
            }
            'U' => {
                let mut s = format!("U+{:04X}", u);
                if self.f.sharp {
                    if let Some(c) = char::from_u32(u as u32) {
                        if is_print(c) {
                            s.push_str(&format!(" '{c}'"));
                        }
                    }
                }
                self.pad(&s);
                return;
            }
            _ => {
                self.bad_verb(verb, v);
                return;
            }
        };
        let _ = signed;
        let mut digits = match base {
            2 => format!("{u:b}"),
            8 => format!("{u:o}"),
            16 if verb == 'X' => format!("{u:X}"),
            16 => format!("{u:x}"),
            _ => u.to_string(),
        };
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let oz = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid.unwrap_or(0);
                self.write_padding(w);
                self.f.zero = oz;
                return;
            }
        } else if self.f.zero && self.f.wid.is_some() {
            prec = self.f.wid.unwrap_or(0);
            if neg || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        while digits.len() < prec {
            digits.insert(0, '0');
        }
        if self.f.sharp {
            match base {
                2 => digits.insert_str(0, "0b"),
                8 if !digits.starts_with('0') => digits.insert(0, '0'),
                16 => digits.insert_str(0, if verb == 'X' { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            digits.insert_str(0, "0o");
        }
        if neg {
            digits.insert(0, '-');
        } else if self.f.plus {
            digits.insert(0, '+');
        } else if self.f.space {
            digits.insert(0, ' ');
        }
        let oz = self.f.zero;
        self.f.zero = false;
        self.pad(&digits);
        self.f.zero = oz;
    }

    fn fmt_float(&mut self, x: f64, verb: char, v: &Value) {
        let (verb, default_prec) = match verb {
            'v' => ('g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => (verb, -1),
            'f' | 'e' | 'E' => (verb, 6),
            'F' => ('f', 6),
            _ => {
                self.bad_verb(verb, v);
                return;
            }
        };
        let prec = self.f.prec.map(|p| p as i32).unwrap_or(default_prec);
        let s = if matches!(verb, 'b' | 'x' | 'X') {
            format_float(x, 'e', prec)
        } else {
            format_float(x, verb, prec)
        };
        let mut num = if s.starts_with('-') || s.starts_with('+') {
            s
        } else {
            format!("+{s}")
        };
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(0..1, " ");
        }
        if num[1..].starts_with('I') || num[1..].starts_with('N') {
            let oz = self.f.zero;
            self.f.zero = false;
            if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = oz;
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits = 0usize;
            let mut tail = String::new();
            let body = num.clone();
            let mut saw_nonzero = false;
            let mut chars: Vec<char> = body.chars().collect();
            match verb {
                'v' | 'g' | 'G' | 'x' => {
                    digits = self.f.prec.unwrap_or(6);
                    if digits == 0 {
                        digits = 1;
                    }
                }
                _ => {}
            }
            if let Some(i) = chars.iter().position(|c| *c == 'e' || *c == 'E') {
                tail = chars[i..].iter().collect();
                chars.truncate(i);
            }
            let mut saw_dot = false;
            for c in chars.iter().skip(1) {
                match c {
                    '.' => saw_dot = true,
                    '0'..='9' => {
                        if *c != '0' || saw_nonzero {
                            saw_nonzero = true;
                            digits = digits.saturating_sub(1);
                        } else if saw_dot {
                            // leading zeros after the dot do not count
                        }
                    }
                    _ => {}
                }
            }
            let mut out: String = chars.iter().collect();
            if !saw_dot {
                out.push('.');
            }
            if matches!(verb, 'g' | 'G' | 'v') {
                for _ in 0..digits {
                    out.push('0');
                }
            }
            out.push_str(&tail);
            num = out;
        }
        if self.f.plus || !num.starts_with('+') {
            if self.f.zero && !self.f.minus {
                if let Some(w) = self.f.wid {
                    if w > num.chars().count() {
                        let sign = num.remove(0);
                        self.buf.push(sign);
                        self.write_padding(w - num.chars().count() - 1);
                        self.buf.push_str(&num);
                        return;
                    }
                }
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }

    fn fmt_bool(&mut self, b: bool, verb: char, v: &Value) {
        match verb {
            't' | 'v' => self.pad(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(s)
                } else {
                    self.fmt_s(s)
                }
            }
            's' => self.fmt_s(s),
            'x' => self.fmt_sx(s.as_bytes(), false),
            'X' => self.fmt_sx(s.as_bytes(), true),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, v),
        }
    }

    fn fmt_bytes(&mut self, b: &[u8], verb: char, v: &Value, depth: usize) {
        match verb {
            'v' | 'd' => {
                if self.f.sharp_v {
                    let items: Vec<String> = b.iter().map(|x| format!("0x{x:x}")).collect();
                    self.buf
                        .push_str(&format!("[]byte{{{}}}", items.join(", ")));
                    return;
                }
                self.buf.push('[');
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.fmt_integer(*x as u64, false, false, verb, &Value::Int(*x as i64));
                }
                self.buf.push(']');
            }
            's' => self.fmt_s(&String::from_utf8_lossy(b)),
            'x' => self.fmt_sx(b, false),
            'X' => self.fmt_sx(b, true),
            'q' => self.pad(&quote_bytes(b)),
            _ => {
                let _ = depth;
                self.bad_verb(verb, v)
            }
        }
    }

    /// Go's `printArg` at depth 0.
    fn print_arg(&mut self, v: &Value, verb: char) {
        if let Value::Nil = v {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(verb, v),
            }
            return;
        }
        if verb == 'T' {
            let t = v.type_name();
            self.fmt_s(&t);
            return;
        }
        if verb == 'p' {
            self.bad_verb(verb, v);
            return;
        }
        self.print_value(v, verb, 0);
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        match v {
            Value::Nil => {
                if depth == 0 {
                    self.print_arg(v, verb);
                } else {
                    self.pad("<nil>");
                }
            }
            Value::Bool(b) => self.fmt_bool(*b, verb, v),
            Value::Int(i) | Value::Int64(i) => {
                self.fmt_integer(i.unsigned_abs(), *i < 0, true, verb, v)
            }
            Value::Uint(u) => self.fmt_integer(*u, false, false, verb, v),
            Value::Float(f) => self.fmt_float(*f, verb, v),
            Value::Str(s) => self.fmt_string(s, verb, v),
            Value::Bytes(b) => self.fmt_bytes(b, verb, v, depth),
            Value::List(l) => {
                if self.f.sharp_v {
                    let t = v.type_name();
                    self.buf.push_str(&t);
                    self.buf.push('{');
                    for (i, x) in l.items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print_value(x, verb, depth + 1);
                    }
                    self.buf.push('}');
                    return;
                }
                self.buf.push('[');
                for (i, x) in l.items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    if l.ty == ListType::Interface {
                        self.print_interface(x, verb, depth + 1);
                    } else {
                        self.print_value(x, verb, depth + 1);
                    }
                }
                self.buf.push(']');
            }
            Value::Map(m) => {
                let m = m.borrow();
                if self.f.sharp_v {
                    let t = v.type_name();
                    self.buf.push_str(&t);
                    self.buf.push('{');
                } else {
                    self.buf.push_str("map[");
                }
                for (i, (k, x)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    self.fmt_string(k, verb, &Value::str(k));
                    self.buf.push(':');
                    if m.ty == MapType::String {
                        self.print_value(x, verb, depth + 1);
                    } else {
                        self.print_interface(x, verb, depth + 1);
                    }
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            Value::Object(o) => {
                if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') && !self.f.sharp_v {
                    if let Some(s) = o.stringer() {
                        self.fmt_string(&s, verb, &Value::str(&s));
                        return;
                    }
                }
                let s = o.format(self.f.plus_v || self.f.sharp_v);
                self.pad(&s);
            }
        }
    }

    /// An element of an `interface{}` container: nil prints `<nil>`.
    fn print_interface(&mut self, v: &Value, verb: char, depth: usize) {
        if let Value::Nil = v {
            self.pad("<nil>");
        } else {
            self.print_value(v, verb, depth);
        }
    }

    fn do_printf(&mut self, format: &str, args: &[Value]) {
        let fmt: Vec<char> = format.chars().collect();
        let end = fmt.len();
        let mut arg_num = 0usize;
        let mut after_index;
        let mut reordered = false;
        let mut i = 0;
        while i < end {
            let lasti = i;
            while i < end && fmt[i] != '%' {
                i += 1;
            }
            if i > lasti {
                self.buf.extend(&fmt[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            'flags: while i < end {
                match fmt[i] {
                    '#' => self.f.sharp = true,
                    '0' => self.f.zero = !self.f.minus,
                    '+' => self.f.plus = true,
                    '-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    ' ' => self.f.space = true,
                    _ => break 'flags,
                }
                i += 1;
            }
            // argument index
            let (new_arg, ni, ok) = arg_index(&fmt, i, arg_num, args.len());
            arg_num = new_arg;
            i = ni;
            if ok.is_some() {
                reordered = true;
            }
            after_index = ok.unwrap_or(false);
            let _ = after_index;
            // width
            if i < end && fmt[i] == '*' {
                i += 1;
                match args.get(arg_num) {
                    Some(Value::Int(n)) | Some(Value::Int64(n)) => {
                        let mut n = *n;
                        if n < 0 {
                            self.f.minus = true;
                            self.f.zero = false;
                            n = -n;
                        }
                        self.f.wid = Some(n as usize);
                    }
                    _ => self.buf.push_str("%!(BADWIDTH)"),
                }
                arg_num += 1;
            } else {
                let (n, ni) = parse_num(&fmt, i);
                if let Some(n) = n {
                    self.f.wid = Some(n);
                }
                i = ni;
            }
            // precision
            if i < end && fmt[i] == '.' {
                i += 1;
                let (new_arg, ni, ok) = arg_index(&fmt, i, arg_num, args.len());
                arg_num = new_arg;
                i = ni;
                if ok.is_some() {
                    reordered = true;
                }
                if i < end && fmt[i] == '*' {
                    i += 1;
                    match args.get(arg_num) {
                        Some(Value::Int(n)) | Some(Value::Int64(n)) if *n >= 0 => {
                            self.f.prec = Some(*n as usize)
                        }
                        Some(Value::Int(_)) | Some(Value::Int64(_)) => self.f.prec = None,
                        _ => self.buf.push_str("%!(BADPREC)"),
                    }
                    arg_num += 1;
                } else {
                    let (n, ni) = parse_num(&fmt, i);
                    self.f.prec = Some(n.unwrap_or(0));
                    i = ni;
                }
            }
            let (new_arg, ni, ok) = arg_index(&fmt, i, arg_num, args.len());
            arg_num = new_arg;
            i = ni;
            if ok.is_some() {
                reordered = true;
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let verb = fmt[i];
            i += 1;
            match verb {
                '%' => self.buf.push('%'),
                _ if arg_num >= args.len() => {
                    self.buf.push_str("%!");
                    self.buf.push(verb);
                    self.buf.push_str("(MISSING)");
                }
                'w' => {
                    self.bad_verb(verb, &args[arg_num]);
                    arg_num += 1;
                }
                'v' => {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                    let a = args[arg_num].clone();
                    self.print_arg(&a, 'v');
                    arg_num += 1;
                }
                _ => {
                    let a = args[arg_num].clone();
                    self.print_arg(&a, verb);
                    arg_num += 1;
                }
            }
        }
        if !reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, a) in args[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                match a {
                    Value::Nil => self.buf.push_str("<nil>"),
                    _ => {
                        self.buf.push_str(&a.type_name());
                        self.buf.push('=');
                        self.print_arg(a, 'v');
                    }
                }
            }
            self.buf.push(')');
        }
    }
}

fn parse_num(fmt: &[char], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n = 0usize;
    while i < fmt.len() && fmt[i].is_ascii_digit() {
        n = n
            .saturating_mul(10)
            .saturating_add(fmt[i] as usize - '0' as usize);
        if n > 1_000_000 {
            return (None, fmt.len());
        }
        i += 1;
    }
    if i == start {
        (None, i)
    } else {
        (Some(n), i)
    }
}

/// `[n]` argument indexes: returns the new argument number, the new
/// position, and Some(ok) when an index was present.
fn arg_index(fmt: &[char], i: usize, arg_num: usize, nargs: usize) -> (usize, usize, Option<bool>) {
    if i >= fmt.len() || fmt[i] != '[' {
        return (arg_num, i, None);
    }
    let mut j = i + 1;
    while j < fmt.len() && fmt[j] != ']' {
        j += 1;
    }
    if j >= fmt.len() {
        return (arg_num, i + 1, Some(false));
    }
    let s: String = fmt[i + 1..j].iter().collect();
    match s.parse::<usize>() {
        Ok(n) if n >= 1 && n <= nargs => (n - 1, j + 1, Some(true)),
        _ => (arg_num, j + 1, Some(false)),
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_strconv() {
        assert_eq!(format_float(1234567890123.0, 'g', -1), "1.234567890123e+12");
        assert_eq!(format_float(1000.0, 'g', -1), "1000");
        assert_eq!(format_float(1e21, 'g', -1), "1e+21");
        assert_eq!(format_float(0.000012, 'g', -1), "1.2e-05");
        assert_eq!(format_float(2.5, 'g', -1), "2.5");
        assert_eq!(format_float(123456.789, 'e', 6), "1.234568e+05");
        assert_eq!(format_float(3.14159, 'f', 2), "3.14");
        assert_eq!(format_float(0.000012, 'g', 3), "1.2e-05");
        assert_eq!(format_float(100.0, 'g', 3), "100");
        assert_eq!(format_float(1e6, 'g', 3), "1e+06");
        assert_eq!(format_float(0.0, 'g', -1), "0");
        assert_eq!(format_float(-2.0, 'g', -1), "-2");
        assert_eq!(format_float(1e21, 'f', -1), "1000000000000000000000");
        assert_eq!(format_float(1.5e-7, 'f', -1), "0.00000015");
        assert_eq!(json_float(1.5e-7), "1.5e-7");
        assert_eq!(json_float(12345678901234567890.0), "12345678901234567000");
    }

    #[test]
    fn printf_verbs() {
        let s = |v: &str| Value::str(v);
        assert_eq!(
            sprintf("%5d|%-5d|", &[Value::Int(-3), Value::Int(7)]),
            "   -3|7    |"
        );
        assert_eq!(sprintf("%05.2f", &[Value::Float(3.14159)]), "03.14");
        assert_eq!(
            sprintf(
                "%.3f %e %g",
                &[
                    Value::Float(2.5),
                    Value::Float(123456.789),
                    Value::Float(0.000012)
                ]
            ),
            "2.500 1.234568e+05 1.2e-05"
        );
        assert_eq!(
            sprintf(
                "%x %X %o %b",
                &[
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "ff FF 10 101"
        );
        assert_eq!(sprintf("%x", &[s("hi")]), "6869");
        assert_eq!(sprintf("%q", &[s("quo\"te")]), "\"quo\\\"te\"");
        assert_eq!(sprintf("%s %s", &[s("one")]), "one %!s(MISSING)");
        assert_eq!(
            sprintf("%s", &[s("one"), s("two")]),
            "one%!(EXTRA string=two)"
        );
        assert_eq!(sprintf("%d", &[s("str")]), "%!d(string=str)");
        assert_eq!(
            sprintf("%s|%v|%d", &[Value::Nil, Value::Nil, Value::Nil]),
            "%!s(<nil>)|<nil>|%!d(<nil>)"
        );
        assert_eq!(
            sprintf("[%8s][%-8s]", &[s("r"), s("l")]),
            "[       r][l       ]"
        );
        assert_eq!(sprintf("%5.1f%%", &[Value::Float(12.345)]), " 12.3%");
        assert_eq!(
            sprintf("%!", &[]),
            "%!!(NOVERB)".replace("!(NOVERB)", "!(MISSING)")
        );
        assert_eq!(sprintf("%z", &[Value::Int(3)]), "%!z(int=3)");
        assert_eq!(
            sprintf(
                "%08.3f %+d %G",
                &[Value::Float(3.14159), Value::Int(5), Value::Float(1e-7)]
            ),
            "0003.142 +5 1E-07"
        );
        assert_eq!(
            sprintf("%c %U", &[Value::Int(65), Value::Int(0x1F600)]),
            "A U+1F600"
        );
        assert_eq!(
            sprintf(
                "%5.2s|%-6v|%6v|",
                &[s("abcdef"), Value::Bool(true), Value::Float(1.5)]
            ),
            "   ab|true  |   1.5|"
        );
    }

    #[test]
    fn sprint_spacing() {
        let v = vec![
            Value::Nil,
            Value::Int(1),
            Value::str("a"),
            Value::Int(2),
            Value::Int(3),
            Value::str("b"),
            Value::str("c"),
            Value::Nil,
        ];
        assert_eq!(sprint(&v), "<nil> 1a2 3bc<nil>");
        assert_eq!(
            sprintln(&[Value::Int(1), Value::Int(2), Value::str("x")]),
            "1 2 x\n"
        );
    }

    #[test]
    fn quoting_and_numbers() {
        assert_eq!(quote("a\tb"), "\"a\\tb\"");
        assert_eq!(quote("é✓"), "\"é✓\"");
        assert_eq!(unquote("\"a\\tb\\u00e9\"").as_deref(), Some("a\tbé"));
        assert_eq!(unquote("`x\\n`").as_deref(), Some("x\\n"));
        assert_eq!(parse_int_base0("0x1F"), Some(31));
        assert_eq!(parse_int_base0("0777"), Some(511));
        assert_eq!(parse_int_base0("1_000"), Some(1000));
        assert_eq!(parse_int_base0("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int_base0("1e3"), None);
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(unquote_char("'a'"), Some('a'));
    }
}
