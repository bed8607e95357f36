//! Sprig's string functions, encodings and hashes.

use base64::Engine as _;
use sha2::Digest as _;

use super::{f, fh, fv, n, s, strval};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::gofmt;
use crate::gotmpl::value::{ListType, MapType, Ty, Value};
use crate::gotmpl::Env;

/// Go's `unicode.ToUpper` (simple case mapping: one rune to one rune).
pub(crate) fn to_upper_rune(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `unicode.ToLower`.
pub(crate) fn to_lower_rune(c: char) -> char {
    let mut u = c.to_lowercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `strings.ToUpper`.
pub fn go_upper(s: &str) -> String {
    s.chars().map(to_upper_rune).collect()
}

/// Go's `strings.ToLower`.
pub fn go_lower(s: &str) -> String {
    s.chars().map(to_lower_rune).collect()
}

/// Go's `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c as u32 > 0xff && c.is_whitespace())
}

/// Go's `strings.TrimSpace`.
pub fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Go's `strings.Title`.
fn title(s: &str) -> String {
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_separator(prev) {
            out.push(title_rune(c));
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn title_rune(c: char) -> char {
    match c {
        'ǆ' | 'ǅ' | 'Ǆ' => 'ǅ',
        'ǉ' | 'ǈ' | 'Ǉ' => 'ǈ',
        'ǌ' | 'ǋ' | 'Ǌ' => 'ǋ',
        'ǳ' | 'ǲ' | 'Ǳ' => 'ǲ',
        c => to_upper_rune(c),
    }
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphabetic() || c.is_numeric() {
        return false;
    }
    is_space(c)
}

fn uncapitalize(s: &str) -> String {
    let mut next = true;
    s.chars()
        .map(|c| {
            if is_space(c) {
                next = true;
                c
            } else if next {
                next = false;
                to_lower_rune(c)
            } else {
                c
            }
        })
        .collect()
}

/// Byte slicing as Go does it (the result may split a UTF-8 sequence;
/// the broken bytes become U+FFFD).
fn bytes_str(s: &str, from: usize, to: usize) -> String {
    match s.get(from..to) {
        Some(t) => t.to_string(),
        None => String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned(),
    }
}

fn trunc(c: i64, s: &str) -> String {
    let len = s.len() as i64;
    if c < 0 && len + c > 0 {
        return bytes_str(s, (len + c) as usize, s.len());
    }
    if c >= 0 && len > c {
        return bytes_str(s, 0, c as usize);
    }
    s.to_string()
}

fn abbreviate_full(s: &str, offset: i64, max_width: i64) -> String {
    if s.is_empty() {
        return String::new();
    }
    if max_width < 4 {
        return String::new();
    }
    let len = s.len() as i64;
    if len <= max_width {
        return s.to_string();
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    if offset <= 4 {
        return format!("{}...", bytes_str(s, 0, (max_width - 3) as usize));
    }
    if max_width < 7 {
        return String::new();
    }
    if offset + max_width - 3 < len {
        let inner = abbreviate_full(&bytes_str(s, offset as usize, s.len()), 0, max_width - 3);
        return format!("...{inner}");
    }
    format!(
        "...{}",
        bytes_str(s, (len - (max_width - 3)) as usize, s.len())
    )
}

fn substr(start: i64, end: i64, s: &str) -> Result<String, String> {
    let len = s.len() as i64;
    let bad = |a: i64, b: i64| {
        Err(format!(
            "runtime error: slice bounds out of range [{}:{}] with length {len}",
            if a < 0 { String::new() } else { a.to_string() },
            b
        ))
    };
    if start < 0 {
        if end < 0 || end > len {
            return if end < 0 {
                Err(format!("runtime error: slice bounds out of range [:{end}]"))
            } else {
                Err(format!(
                    "runtime error: slice bounds out of range [:{end}] with length {len}"
                ))
            };
        }
        return Ok(bytes_str(s, 0, end as usize));
    }
    if end < 0 || end > len {
        if start > len {
            return Err(format!(
                "runtime error: slice bounds out of range [{start}:{len}]"
            ));
        }
        return Ok(bytes_str(s, start as usize, s.len()));
    }
    if start > end {
        return bad(start, end)
            .map_err(|_| format!("runtime error: slice bounds out of range [{start}:{end}]"));
    }
    Ok(bytes_str(s, start as usize, end as usize))
}

fn initials(s: &str) -> String {
    let mut out = String::new();
    let mut gap = true;
    for &b in s.as_bytes() {
        let c = b as char;
        if is_space(c) {
            gap = true;
        } else if gap {
            out.push(c);
            gap = false;
        }
    }
    out
}

/// goutils' `WrapCustom`.
pub(crate) fn wrap_custom(s: &str, width: i64, nl: &str, long_words: bool) -> String {
    if s.is_empty() {
        return String::new();
    }
    let nl = if nl.is_empty() { "\n" } else { nl };
    let width = width.max(1) as usize;
    let b = s.as_bytes();
    let len = b.len();
    let mut offset = 0usize;
    let mut out = String::new();
    while len - offset > width {
        if b[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(len);
        let space = s[offset..end].rfind(' ').map(|i| i + offset);
        if let Some(sp) = space.filter(|sp| *sp >= offset) {
            out.push_str(&bytes_str(s, offset, sp));
            out.push_str(nl);
            offset = sp + 1;
        } else if long_words {
            let end = width + offset;
            out.push_str(&bytes_str(s, offset, end));
            out.push_str(nl);
            offset += width;
        } else {
            let end = width + offset;
            match s[end..].find(' ') {
                None => {
                    out.push_str(&bytes_str(s, offset, len));
                    offset = len;
                }
                Some(i) => {
                    let sp = i + end;
                    out.push_str(&bytes_str(s, offset, sp));
                    out.push_str(nl);
                    offset = sp + 1;
                }
            }
        }
    }
    out.push_str(&bytes_str(s, offset, len));
    out
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || is_space(c)
}

/// xstrings' `toCamelCase(str, true)`: `ToPascalCase` (Sprig's `camelcase`).
fn pascal_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut first_upper = false;
    let mut r0 = '\0';
    let mut i = 0;
    let mut size = 0;
    while i < chars.len() {
        r0 = chars[i];
        i += 1;
        size = 1;
        if !is_connector(r0) {
            first_upper = r0.is_uppercase();
            r0 = to_upper_rune(r0);
            break;
        }
        out.push(r0);
    }
    if i >= chars.len() {
        if size != 0 {
            out.push(r0);
        }
        return out;
    }
    while i < chars.len() {
        let r1 = r0;
        r0 = chars[i];
        i += 1;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = to_upper_rune(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = to_lower_rune(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    Invalid,
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// Go's `unicode.IsPunct` (ASCII exactly; beyond ASCII, the general
/// punctuation blocks).
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return "!\"#%&'()*,-./:;?@[\\]_{}".contains(c);
    }
    matches!(c, '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3001}'..='\u{3003}' | '\u{00A1}' | '\u{00A7}' | '\u{00AB}' | '\u{00B6}' | '\u{00B7}' | '\u{00BB}' | '\u{00BF}')
}

fn next_word(chars: &[char]) -> (Word, usize) {
    if chars.is_empty() {
        return (Word::Invalid, 0);
    }
    let r = chars[0];
    let mut off = 1;
    let alpha = |c: char| c.is_alphabetic();
    let word = if is_connector(r) {
        while off < chars.len() && is_connector(chars[off]) {
            off += 1;
        }
        Word::Connector
    } else if is_punct(r) {
        while off < chars.len() && is_punct(chars[off]) {
            off += 1;
        }
        Word::Punct
    } else if r.is_uppercase() {
        if off < chars.len() {
            let c = chars[off];
            if c.is_uppercase() {
                off += 1;
                while off < chars.len() && chars[off].is_uppercase() {
                    off += 1;
                }
                if off < chars.len() && alpha(chars[off]) {
                    off -= 1;
                }
            } else if alpha(c) {
                off += 1;
                while off < chars.len() && alpha(chars[off]) && !chars[off].is_uppercase() {
                    off += 1;
                }
            }
        }
        Word::Upper
    } else if alpha(r) {
        while off < chars.len() && alpha(chars[off]) && !chars[off].is_uppercase() {
            off += 1;
        }
        Word::Alphabet
    } else if r.is_numeric() {
        while off < chars.len() && chars[off].is_numeric() {
            off += 1;
        }
        Word::Number
    } else {
        while off < chars.len() {
            let c = chars[off];
            if is_connector(c) || alpha(c) || c.is_numeric() || is_punct(c) {
                break;
            }
            off += 1;
        }
        Word::Other
    };
    (word, off)
}

fn to_lower_word(out: &mut String, wt: Word, word: &[char], conn: char) {
    if wt != Word::Upper && wt != Word::Connector {
        out.extend(word);
        return;
    }
    for &c in word {
        if is_connector(c) {
            out.push(conn);
        } else if c.is_uppercase() {
            out.push(to_lower_rune(c));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `camelCaseToLowerCase` (Sprig's `snakecase` and `kebabcase`).
fn lower_case_with(s: &str, conn: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let mut pos = 0;
    let next = |pos: &mut usize| -> (Word, &[char]) {
        let (w, len) = next_word(&chars[*pos..]);
        let word = &chars[*pos..*pos + len];
        *pos += len;
        (w, word)
    };
    let (mut wt, mut word) = next(&mut pos);
    while pos < chars.len() {
        if wt != Word::Connector {
            to_lower_word(&mut out, wt, word, conn);
        }
        let prev = wt;
        let last = word;
        let (w2, wd2) = next(&mut pos);
        wt = w2;
        word = wd2;
        match prev {
            Word::Number => {
                while wt == Word::Alphabet || wt == Word::Number {
                    to_lower_word(&mut out, wt, word, conn);
                    let (w, wd) = next(&mut pos);
                    wt = w;
                    word = wd;
                }
                if wt != Word::Invalid && wt != Word::Punct && wt != Word::Connector {
                    out.push(conn);
                }
            }
            Word::Connector => to_lower_word(&mut out, prev, last, conn),
            Word::Punct => {}
            _ => {
                if wt != Word::Number {
                    if wt != Word::Connector && wt != Word::Punct {
                        out.push(conn);
                    }
                    continue;
                }
                if pos >= chars.len() {
                    continue;
                }
                let last = word;
                let (w, wd) = next(&mut pos);
                wt = w;
                word = wd;
                if wt != Word::Alphabet {
                    to_lower_word(&mut out, Word::Number, last, conn);
                    if wt != Word::Connector && wt != Word::Punct {
                        out.push(conn);
                    }
                    continue;
                }
                out.push(conn);
                to_lower_word(&mut out, Word::Number, last, conn);
                while wt == Word::Alphabet || wt == Word::Number {
                    to_lower_word(&mut out, wt, word, conn);
                    let (w, wd) = next(&mut pos);
                    wt = w;
                    word = wd;
                }
                if wt != Word::Invalid && wt != Word::Connector && wt != Word::Punct {
                    out.push(conn);
                }
            }
        }
    }
    to_lower_word(&mut out, wt, word, conn);
    out
}

fn swapcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                to_lower_rune(c)
            } else if c.is_lowercase() {
                to_upper_rune(c)
            } else {
                c
            }
        })
        .collect()
}

/// A uniform random integer in `0..n` from the host.
pub(crate) fn rand_below(env: &mut Env<'_>, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        env.host.fill_random(&mut b);
        let v = u64::from_le_bytes(b);
        if v < zone {
            return v % n;
        }
    }
}

fn random_string(env: &mut Env<'_>, count: i64, set: &[u8]) -> String {
    if count <= 0 || count > 1 << 24 {
        return String::new();
    }
    (0..count)
        .map(|_| set[rand_below(env, set.len() as u64) as usize] as char)
        .collect()
}

const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const NUMERIC: &[u8] = b"0123456789";

fn ascii_set() -> Vec<u8> {
    (32u8..127).collect()
}

fn sprig_quote(args: &[Value]) -> String {
    args.iter()
        .filter(|a| !a.is_nil())
        .map(|a| gofmt::quote(&strval(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_map(parts: Vec<&str>) -> Value {
    Value::typed_map(
        MapType::String,
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::str(p)))
            .collect(),
    )
}

/// Go's `strings.Split` (an empty separator splits into UTF-8 sequences).
pub(crate) fn go_split<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    if sep.is_empty() {
        return s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
    }
    s.split(sep).collect()
}

/// Go's `strings.SplitN`.
fn go_splitn<'a>(s: &'a str, sep: &str, n: i64) -> Vec<&'a str> {
    if n == 0 {
        return Vec::new();
    }
    if n < 0 {
        return go_split(s, sep);
    }
    if sep.is_empty() {
        let mut out: Vec<&str> = Vec::new();
        let mut rest = s;
        while !rest.is_empty() && (out.len() as i64) < n - 1 {
            let c = rest.chars().next().map(char::len_utf8).unwrap_or(1);
            out.push(&rest[..c]);
            rest = &rest[c..];
        }
        if !rest.is_empty() {
            out.push(rest);
        }
        return out;
    }
    s.splitn(n as usize, sep).collect()
}

fn strings_list(items: Vec<String>) -> Value {
    Value::typed_list(
        ListType::String,
        items.into_iter().map(Value::from).collect(),
    )
}

/// Go's `base32.StdEncoding`.
pub(crate) fn base32_encode(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let n = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < n {
                out.push(A[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base32.StdEncoding.DecodeString`, with its error text.
pub(crate) fn base32_decode(s: &str) -> Result<Vec<u8>, String> {
    let s: Vec<u8> = s.bytes().filter(|b| *b != b'\r' && *b != b'\n').collect();
    if !s.len().is_multiple_of(8) {
        return Err(format!(
            "illegal base32 data at input byte {}",
            s.len() / 8 * 8
        ));
    }
    let mut out = Vec::new();
    for (ci, chunk) in s.chunks(8).enumerate() {
        let mut bits: u64 = 0;
        let mut n = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                b'=' => {
                    if ![2, 4, 5, 7].contains(&i) || chunk[i..].iter().any(|x| *x != b'=') {
                        return Err(format!("illegal base32 data at input byte {}", ci * 8 + i));
                    }
                    break;
                }
                _ => return Err(format!("illegal base32 data at input byte {}", ci * 8 + i)),
            };
            bits |= (v as u64) << (35 - i * 5);
            n = i + 1;
        }
        let bytes = bits.to_be_bytes();
        let take = match n {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => 0,
        };
        out.extend_from_slice(&bytes[3..3 + take]);
    }
    Ok(out)
}

/// Go's `base64.StdEncoding.DecodeString`, with its error text.
pub(crate) fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    match base64::engine::general_purpose::STANDARD.decode(clean.as_bytes()) {
        Ok(v) => Ok(v),
        Err(base64::DecodeError::InvalidByte(i, _)) => {
            Err(format!("illegal base64 data at input byte {i}"))
        }
        Err(base64::DecodeError::InvalidLength(l)) => {
            Err(format!("illegal base64 data at input byte {}", l / 4 * 4))
        }
        Err(base64::DecodeError::InvalidLastSymbol(i, _)) => {
            Err(format!("illegal base64 data at input byte {i}"))
        }
        Err(base64::DecodeError::InvalidPadding) => Err(format!(
            "illegal base64 data at input byte {}",
            clean.trim_end_matches('=').len()
        )),
    }
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert(
        "abbrev",
        f(&[Int, String], |a| {
            let w = n(&a, 0);
            let t = s(&a, 1);
            Ok(Value::str(if w < 4 {
                t.to_string()
            } else {
                abbreviate_full(t, 0, w)
            }))
        }),
    );
    m.insert(
        "abbrevboth",
        f(&[Int, Int, String], |a| {
            let (l, r) = (n(&a, 0), n(&a, 1));
            let t = s(&a, 2);
            Ok(Value::str(if r < 4 || l > 0 && r < 7 {
                t.to_string()
            } else {
                abbreviate_full(t, l, r)
            }))
        }),
    );
    m.insert(
        "trunc",
        f(&[Int, String], |a| {
            Ok(Value::str(trunc(n(&a, 0), s(&a, 1))))
        }),
    );
    m.insert(
        "trim",
        f(&[String], |a| Ok(Value::str(trim_space(s(&a, 0))))),
    );
    m.insert(
        "upper",
        f(&[String], |a| Ok(Value::str(go_upper(s(&a, 0))))),
    );
    m.insert(
        "lower",
        f(&[String], |a| Ok(Value::str(go_lower(s(&a, 0))))),
    );
    m.insert("title", f(&[String], |a| Ok(Value::str(title(s(&a, 0))))));
    m.insert(
        "untitle",
        f(&[String], |a| Ok(Value::str(uncapitalize(s(&a, 0))))),
    );
    m.insert(
        "substr",
        f(&[Int, Int, String], |a| {
            substr(n(&a, 0), n(&a, 1), s(&a, 2)).map(Value::str)
        }),
    );
    m.insert(
        "repeat",
        f(&[Int, String], |a| {
            let c = n(&a, 0);
            let t = s(&a, 1);
            if c < 0 {
                return Err("strings: negative Repeat count".into());
            }
            if (t.len() as u128) * (c as u128) > 64 * 1024 * 1024 {
                return Err("strings: Repeat output length overflow".into());
            }
            Ok(Value::str(t.repeat(c as usize)))
        }),
    );
    for name in ["trimall", "trimAll"] {
        m.insert(
            name,
            f(&[String, String], |a| {
                let cut: Vec<char> = s(&a, 0).chars().collect();
                Ok(Value::str(s(&a, 1).trim_matches(|c| cut.contains(&c))))
            }),
        );
    }
    m.insert(
        "trimSuffix",
        f(&[String, String], |a| {
            Ok(Value::str(
                s(&a, 1).strip_suffix(s(&a, 0)).unwrap_or(s(&a, 1)),
            ))
        }),
    );
    m.insert(
        "trimPrefix",
        f(&[String, String], |a| {
            Ok(Value::str(
                s(&a, 1).strip_prefix(s(&a, 0)).unwrap_or(s(&a, 1)),
            ))
        }),
    );
    m.insert(
        "nospace",
        f(&[String], |a| {
            Ok(Value::str(
                s(&a, 0)
                    .chars()
                    .filter(|c| !is_space(*c))
                    .collect::<std::string::String>(),
            ))
        }),
    );
    m.insert(
        "initials",
        f(&[String], |a| Ok(Value::str(initials(s(&a, 0))))),
    );
    m.insert(
        "randAlphaNum",
        fh(&[Int], |e, a| {
            Ok(Value::str(random_string(e, n(&a, 0), ALNUM)))
        }),
    );
    m.insert(
        "randAlpha",
        fh(&[Int], |e, a| {
            Ok(Value::str(random_string(e, n(&a, 0), ALPHA)))
        }),
    );
    m.insert(
        "randNumeric",
        fh(&[Int], |e, a| {
            Ok(Value::str(random_string(e, n(&a, 0), NUMERIC)))
        }),
    );
    m.insert(
        "randAscii",
        fh(&[Int], |e, a| {
            Ok(Value::str(random_string(e, n(&a, 0), &ascii_set())))
        }),
    );
    m.insert(
        "swapcase",
        f(&[String], |a| Ok(Value::str(swapcase(s(&a, 0))))),
    );
    m.insert(
        "shuffle",
        fh(&[String], |e, a| {
            let mut runes: Vec<char> = s(&a, 0).chars().collect();
            for i in (1..runes.len()).rev() {
                let j = rand_below(e, i as u64 + 1) as usize;
                runes.swap(i, j);
            }
            Ok(Value::str(
                runes.into_iter().collect::<std::string::String>(),
            ))
        }),
    );
    m.insert(
        "snakecase",
        f(&[String], |a| {
            Ok(Value::str(lower_case_with(s(&a, 0), '_')))
        }),
    );
    m.insert(
        "kebabcase",
        f(&[String], |a| {
            Ok(Value::str(lower_case_with(s(&a, 0), '-')))
        }),
    );
    m.insert(
        "camelcase",
        f(&[String], |a| Ok(Value::str(pascal_case(s(&a, 0))))),
    );
    m.insert(
        "wrap",
        f(&[Int, String], |a| {
            Ok(Value::str(wrap_custom(s(&a, 1), n(&a, 0), "", false)))
        }),
    );
    m.insert(
        "wrapWith",
        f(&[Int, String, String], |a| {
            Ok(Value::str(wrap_custom(s(&a, 2), n(&a, 0), s(&a, 1), true)))
        }),
    );
    m.insert(
        "contains",
        f(&[String, String], |a| {
            Ok(Value::Bool(s(&a, 1).contains(s(&a, 0))))
        }),
    );
    m.insert(
        "hasPrefix",
        f(&[String, String], |a| {
            Ok(Value::Bool(s(&a, 1).starts_with(s(&a, 0))))
        }),
    );
    m.insert(
        "hasSuffix",
        f(&[String, String], |a| {
            Ok(Value::Bool(s(&a, 1).ends_with(s(&a, 0))))
        }),
    );
    m.insert("quote", fv(&[], Any, |a| Ok(Value::str(sprig_quote(&a)))));
    m.insert(
        "squote",
        fv(&[], Any, |a| {
            Ok(Value::str(
                a.iter()
                    .filter(|x| !x.is_nil())
                    .map(|x| format!("'{}'", gofmt::sprint_value(x)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ))
        }),
    );
    m.insert(
        "cat",
        fv(&[], Any, |a| {
            let v: Vec<Value> = a.into_iter().filter(|x| !x.is_nil()).collect();
            let format = "%v ".repeat(v.len());
            Ok(Value::str(gofmt::sprintf(format.trim_end(), &v)))
        }),
    );
    m.insert(
        "indent",
        f(&[Int, String], |a| {
            Ok(Value::str(indent(n(&a, 0), s(&a, 1))))
        }),
    );
    m.insert(
        "nindent",
        f(&[Int, String], |a| {
            Ok(Value::str(format!("\n{}", indent(n(&a, 0), s(&a, 1)))))
        }),
    );
    m.insert(
        "replace",
        f(&[String, String, String], |a| {
            Ok(Value::str(go_replace(s(&a, 2), s(&a, 0), s(&a, 1))))
        }),
    );
    m.insert(
        "plural",
        f(&[String, String, Int], |a| {
            Ok(Value::str(if n(&a, 2) == 1 { s(&a, 0) } else { s(&a, 1) }))
        }),
    );
    m.insert(
        "sha1sum",
        f(&[String], |a| {
            Ok(Value::str(hex(&sha1::Sha1::digest(s(&a, 0).as_bytes()))))
        }),
    );
    m.insert(
        "sha256sum",
        f(&[String], |a| {
            Ok(Value::str(hex(&sha2::Sha256::digest(s(&a, 0).as_bytes()))))
        }),
    );
    m.insert(
        "sha512sum",
        f(&[String], |a| {
            Ok(Value::str(hex(&sha2::Sha512::digest(s(&a, 0).as_bytes()))))
        }),
    );
    m.insert(
        "adler32sum",
        f(&[String], |a| {
            Ok(Value::str(adler32(s(&a, 0).as_bytes()).to_string()))
        }),
    );
    m.insert("toString", f(&[Any], |a| Ok(Value::str(strval(&a[0])))));
    m.insert(
        "b64enc",
        f(&[String], |a| {
            Ok(Value::str(
                base64::engine::general_purpose::STANDARD.encode(s(&a, 0)),
            ))
        }),
    );
    m.insert(
        "b64dec",
        f(&[String], |a| {
            Ok(Value::str(match base64_decode(s(&a, 0)) {
                Ok(v) => std::string::String::from_utf8_lossy(&v).into_owned(),
                Err(e) => e,
            }))
        }),
    );
    m.insert(
        "b32enc",
        f(&[String], |a| {
            Ok(Value::str(base32_encode(s(&a, 0).as_bytes())))
        }),
    );
    m.insert(
        "b32dec",
        f(&[String], |a| {
            Ok(Value::str(match base32_decode(s(&a, 0)) {
                Ok(v) => std::string::String::from_utf8_lossy(&v).into_owned(),
                Err(e) => e,
            }))
        }),
    );
    m.insert(
        "split",
        f(&[String, String], |a| {
            Ok(split_map(go_split(s(&a, 1), s(&a, 0))))
        }),
    );
    m.insert(
        "splitList",
        f(&[String, String], |a| {
            Ok(strings_list(
                go_split(s(&a, 1), s(&a, 0))
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            ))
        }),
    );
    m.insert(
        "splitn",
        f(&[String, Int, String], |a| {
            Ok(split_map(go_splitn(s(&a, 2), s(&a, 0), n(&a, 1))))
        }),
    );
    m.insert(
        "toStrings",
        f(&[Any], |a| Ok(strings_list(super::strslice(&a[0])))),
    );
    m.insert(
        "join",
        f(&[String, Any], |a| {
            Ok(Value::str(super::strslice(&a[1]).join(s(&a, 0))))
        }),
    );
    m.insert(
        "sortAlpha",
        f(&[Any], |a| {
            let mut v = match &a[0] {
                Value::List(_) | Value::Bytes(_) => super::strslice(&a[0]),
                other => vec![strval(other)],
            };
            v.sort();
            Ok(strings_list(v))
        }),
    );
}

/// Sprig's `indent`.
pub(crate) fn indent(spaces: i64, v: &str) -> String {
    let pad = " ".repeat(spaces.clamp(0, 1 << 20) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

/// Go's `strings.Replace(s, old, new, -1)` (an empty `old` inserts `new`
/// around every rune).
pub(crate) fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}
