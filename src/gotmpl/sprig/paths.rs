//! Sprig's path functions (Go's `path`), and `urlParse`/`urlJoin`
//! (Go's `net/url`).

use std::collections::BTreeMap;

use super::{f, s};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::value::{Ty, Value};

/// Go's `path.Clean`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let p = path.as_bytes();
    let rooted = p[0] == b'/';
    let n = p.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0usize, 0usize);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if p[r] == b'/' || p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/') {
            r += 1;
        } else if p[r] == b'.' && r + 1 < n && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/')
        {
            r += 2;
            if out.len() > dotdot {
                out.pop();
                while out.len() > dotdot && out[out.len() - 1] != b'/' {
                    out.pop();
                }
                if out.len() > dotdot && out[out.len() - 1] == b'/' {
                    out.pop();
                }
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if rooted && out.len() != 1 || !rooted && !out.is_empty() {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".into();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `path.Base`.
pub fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let p = path.trim_end_matches('/');
    let p = match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    };
    if p.is_empty() {
        return "/".into();
    }
    p.to_string()
}

/// Go's `path.Dir`.
pub fn dir(path: &str) -> String {
    let d = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    clean(d)
}

/// Go's `path.Ext`.
pub fn ext(path: &str) -> String {
    for (i, c) in path.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return path[i..].to_string();
        }
    }
    String::new()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Path,
    Host,
    UserPassword,
    Fragment,
}

fn should_escape(c: u8, mode: Enc) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if mode == Enc::Host {
        return !matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
                | b'-'
                | b'_'
                | b'.'
                | b'~'
        );
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Enc::Path => c == b'?',
            Enc::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Enc::Fragment => false,
            Enc::Host => false,
        },
        b'!' | b'(' | b')' | b'*' if mode == Enc::Fragment => false,
        _ => true,
    }
}

fn escape(s: &str, mode: Enc) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if should_escape(b, mode) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("invalid URL escape {:?}", &s[i..]))?;
            let v = u8::from_str_radix(h, 16)
                .map_err(|_| format!("invalid URL escape {:?}", &s[i..i + 3]))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[derive(Default, Debug)]
struct Url {
    scheme: String,
    opaque: String,
    user: Option<(String, Option<String>)>,
    host: String,
    path: String,
    raw_query: String,
    fragment: String,
}

fn get_scheme(raw: &str) -> Result<(String, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' => {
                if i == 0 {
                    return Ok((String::new(), raw));
                }
            }
            ':' => {
                if i == 0 {
                    return Err("missing protocol scheme".into());
                }
                return Ok((raw[..i].to_string(), &raw[i + 1..]));
            }
            _ => return Ok((String::new(), raw)),
        }
    }
    Ok((String::new(), raw))
}

/// A subset of Go's `url.Parse` that covers the shapes charts use.
fn parse_url(raw: &str) -> Result<Url, String> {
    let mut u = Url::default();
    let (rest, frag) = match raw.split_once('#') {
        Some((a, b)) => (a, Some(b)),
        None => (raw, None),
    };
    if let Some(fr) = frag {
        u.fragment = unescape(fr)?;
    }
    let (scheme, mut rest) = get_scheme(rest)?;
    u.scheme = scheme.to_ascii_lowercase();
    if let Some((a, q)) = rest.split_once('?') {
        u.raw_query = q.to_string();
        rest = a;
    }
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let host = match authority.rfind('@') {
            Some(i) => {
                let ui = &authority[..i];
                let (user, pass) = match ui.split_once(':') {
                    Some((a, b)) => (unescape(a)?, Some(unescape(b)?)),
                    None => (unescape(ui)?, None),
                };
                u.user = Some((user, pass));
                &authority[i + 1..]
            }
            None => authority,
        };
        u.host = unescape(host)?;
        rest = path;
    }
    u.path = unescape(rest)?;
    Ok(u)
}

fn hostname(host: &str) -> String {
    if let Some(h) = host.strip_prefix('[') {
        return h.split(']').next().unwrap_or("").to_string();
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].chars().all(|c| c.is_ascii_digit()) => host[..i].to_string(),
        _ => host.to_string(),
    }
}

fn user_string(user: &(String, Option<String>)) -> String {
    let mut s = escape(&user.0, Enc::UserPassword);
    if let Some(p) = &user.1 {
        s.push(':');
        s.push_str(&escape(p, Enc::UserPassword));
    }
    s
}

fn url_string(u: &Url) -> String {
    let mut buf = String::new();
    if !u.scheme.is_empty() {
        buf.push_str(&u.scheme);
        buf.push(':');
    }
    if !u.opaque.is_empty() {
        buf.push_str(&u.opaque);
    } else {
        if !u.scheme.is_empty() || !u.host.is_empty() || u.user.is_some() {
            if !u.host.is_empty() || !u.path.is_empty() || u.user.is_some() {
                buf.push_str("//");
            }
            if let Some(user) = &u.user {
                buf.push_str(&user_string(user));
                buf.push('@');
            }
            if !u.host.is_empty() {
                buf.push_str(&escape(&u.host, Enc::Host));
            }
        }
        let path = escape(&u.path, Enc::Path);
        if !path.is_empty() && !path.starts_with('/') && !u.host.is_empty() {
            buf.push('/');
        }
        if buf.is_empty() {
            let seg = path.split('/').next().unwrap_or("");
            if seg.contains(':') {
                buf.push_str("./");
            }
        }
        buf.push_str(&path);
    }
    if !u.raw_query.is_empty() {
        buf.push('?');
        buf.push_str(&u.raw_query);
    }
    if !u.fragment.is_empty() {
        buf.push('#');
        buf.push_str(&escape(&u.fragment, Enc::Fragment));
    }
    buf
}

fn url_parse(v: &str) -> Result<Value, String> {
    let u = parse_url(v).map_err(|e| {
        format!(
            "unable to parse url: parse {}: {e}",
            crate::gotmpl::gofmt::quote(v)
        )
    })?;
    let mut m = BTreeMap::new();
    m.insert("scheme".to_string(), Value::str(&u.scheme));
    m.insert("host".to_string(), Value::str(&u.host));
    m.insert("hostname".to_string(), Value::str(hostname(&u.host)));
    m.insert("path".to_string(), Value::str(&u.path));
    m.insert("query".to_string(), Value::str(&u.raw_query));
    m.insert("opaque".to_string(), Value::str(&u.opaque));
    m.insert("fragment".to_string(), Value::str(&u.fragment));
    m.insert(
        "userinfo".to_string(),
        Value::str(u.user.as_ref().map(user_string).unwrap_or_default()),
    );
    Ok(Value::map(m))
}

fn url_join(d: &Value) -> Result<Value, String> {
    let get = |k: &str| -> Result<String, String> {
        let Value::Map(m) = d else {
            return Ok(String::new());
        };
        match m.borrow().entries.get(k) {
            None => Ok(String::new()),
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(other) => Err(format!(
                "unable to parse {k} key, must be of type string, but {} found",
                if other.is_nil() {
                    "invalid"
                } else {
                    other.kind_name()
                }
            )),
        }
    };
    let mut u = Url {
        scheme: get("scheme")?,
        host: get("host")?,
        path: get("path")?,
        raw_query: get("query")?,
        opaque: get("opaque")?,
        fragment: get("fragment")?,
        user: None,
    };
    let ui = get("userinfo")?;
    if !ui.is_empty() {
        let t = parse_url(&format!("proto://{ui}@host"))
            .map_err(|e| format!("unable to parse userinfo in dict: {e}"))?;
        u.user = t.user;
    }
    Ok(Value::str(url_string(&u)))
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    for name in ["base", "osBase"] {
        m.insert(name, f(&[String], |a| Ok(Value::str(base(s(&a, 0))))));
    }
    for name in ["dir", "osDir"] {
        m.insert(name, f(&[String], |a| Ok(Value::str(dir(s(&a, 0))))));
    }
    for name in ["clean", "osClean"] {
        m.insert(name, f(&[String], |a| Ok(Value::str(clean(s(&a, 0))))));
    }
    for name in ["ext", "osExt"] {
        m.insert(name, f(&[String], |a| Ok(Value::str(ext(s(&a, 0))))));
    }
    for name in ["isAbs", "osIsAbs"] {
        m.insert(
            name,
            f(&[String], |a| Ok(Value::Bool(s(&a, 0).starts_with('/')))),
        );
    }
    m.insert("urlParse", f(&[String], |a| url_parse(s(&a, 0))));
    m.insert("urlJoin", f(&[Map], |a| url_join(&a[0])));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_like_go() {
        assert_eq!(clean("/a/b/../c/./d//"), "/a/c/d");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("../../x"), "../../x");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(base("/etc/config/app.yaml"), "app.yaml");
        assert_eq!(dir("/etc/config/app.yaml"), "/etc/config");
        assert_eq!(ext("archive.tar.gz"), ".gz");
    }
}
