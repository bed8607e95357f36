//! Setters: rewrite the fields marked `# {"$imagepolicy": "<ns>:<name>"}`.
//!
//! Flux's image-automation-controller marks fields with a line comment that
//! is a JSON object with the key `$imagepolicy`. The value names a policy as
//! `namespace:name`, optionally with a suffix:
//!
//! | marker                    | the field becomes                               |
//! |---------------------------|-------------------------------------------------|
//! | `ns:name`                 | the full reference `image:tag` (`image:tag@digest` when the digest is known) |
//! | `ns:name:tag`             | the tag only                                    |
//! | `ns:name:name`            | the image name only                             |
//! | `ns:name:digest`          | the digest only (left alone when no digest is known) |
//!
//! As in Flux, only files that contain the token `"$imagepolicy"` are
//! parsed, only line comments on scalar values count (a marker in a
//! whole-line comment, on a flow collection or inside a block scalar is
//! text, not a marker), a comment that is not valid JSON is an ordinary
//! comment, and markers naming a policy that is not in scope are left
//! alone.
//!
//! Unlike kyaml, the rewrite does not re-serialize the document: it replaces
//! the bytes of the scalar and nothing else. Comments, indentation, key
//! order, quoting and line endings (LF or CRLF) stay as they were. A plain
//! scalar stays plain unless the new value would read back as something
//! other than that string (a number, a boolean, null, or text YAML would
//! split), in which case it is double-quoted, as kyaml's
//! `FormatNonStringStyle` does. Single- and double-quoted scalars keep their
//! quotes, with the new value escaped for that style.

use std::collections::BTreeMap;

use serde::Serialize;

/// The token whose presence makes a file a candidate (Flux screens files on
/// the quoted token, too).
pub const MARKER_TOKEN: &str = "\"$imagepolicy\"";

/// The latest image a policy chose: what the setters write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LatestImage {
    /// The image name, e.g. `ghcr.io/organization/app1`.
    pub name: String,
    /// The chosen tag.
    pub tag: String,
    /// The digest of the chosen tag, when the tag source knows it.
    pub digest: Option<String>,
}

impl LatestImage {
    /// `name:tag`, or `name:tag@digest` when the digest is known (Flux's
    /// `ImageRef.String()`).
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}:{}@{}", self.name, self.tag, d),
            None => format!("{}:{}", self.name, self.tag),
        }
    }
}

/// Which object of a file a change was made in (Flux's `ObjectIdentifier`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectIdentifier {
    /// `apiVersion` (empty when the document has none).
    pub api_version: String,
    /// `kind` (empty when the document has none).
    pub kind: String,
    /// `metadata.namespace` (empty when unset).
    pub namespace: String,
    /// `metadata.name` (empty when unset, e.g. a kustomization.yaml).
    pub name: String,
}

/// One rewritten field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    /// The file, relative to the repository root, `/`-separated.
    pub file: String,
    /// The 1-based line of the field.
    pub line: usize,
    /// The value before (unquoted).
    pub old_value: String,
    /// The value after (unquoted).
    pub new_value: String,
    /// The setter as written in the marker, e.g. `flux-system:app1:tag`.
    pub setter: String,
    /// The object the field belongs to.
    pub object: ObjectIdentifier,
}

/// Why a file could not be updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetterError {
    /// The file holds the marker token but is not UTF-8.
    #[error("{file}: not valid UTF-8 text")]
    NotUtf8 {
        /// The file.
        file: String,
    },
    /// The file holds a marker but is not valid YAML.
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message, with the line.
        message: String,
    },
}

/// The result of running the setters over one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileUpdate {
    /// The new bytes.
    pub bytes: Vec<u8>,
    /// The changes, in line order.
    pub changes: Vec<Change>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// A scalar value found on a line, with its byte span in the line.
struct Scalar {
    start: usize,
    end: usize,
    style: Style,
    value: String,
    /// Byte offset of the `#` of the line comment, if any.
    comment: Option<usize>,
}

/// Runs the setters over one file. Returns `None` when nothing changed
/// (including files without the marker token, which are not parsed).
///
/// `images` maps `namespace:name` of each policy in scope to the image it
/// chose.
pub fn update_file(
    file: &str,
    bytes: &[u8],
    images: &BTreeMap<String, LatestImage>,
) -> Result<Option<FileUpdate>, SetterError> {
    if !contains(bytes, MARKER_TOKEN.as_bytes()) {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SetterError::NotUtf8 {
        file: file.to_string(),
    })?;
    // Parse once so a broken file is reported rather than edited.
    crate::yaml::load_documents(file, text, &crate::yaml::YamlLimits::default()).map_err(|e| {
        SetterError::Yaml {
            file: file.to_string(),
            message: e.to_string(),
        }
    })?;

    let mut out = String::with_capacity(text.len() + 16);
    let mut changes: Vec<(usize, usize, Change)> = Vec::new(); // (doc index, line, change)
    let mut doc_index = 0usize;
    let mut doc_starts = vec![0usize]; // byte offsets in `text` of each document
    let mut block: Option<usize> = None; // indentation threshold inside a block scalar
    let mut offset = 0usize;
    for (lineno, raw) in text.split_inclusive('\n').enumerate() {
        offset += raw.len();
        let (body, ending) = split_ending(raw);
        let indent = body.len() - body.trim_start_matches(' ').len();
        let trimmed = body.trim();
        if let Some(threshold) = block {
            if trimmed.is_empty() || indent > threshold {
                out.push_str(raw);
                continue;
            }
            block = None;
        }
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            if trimmed != "..." {
                doc_index += 1;
                doc_starts.push(offset);
            }
            out.push_str(raw);
            continue;
        }
        let Some(scalar) = find_scalar(body) else {
            if let Some(t) = block_start(body) {
                block = Some(t);
            }
            out.push_str(raw);
            continue;
        };
        let Some(c) = scalar.comment else {
            out.push_str(raw);
            continue;
        };
        let Some(setter) = marker(&body[c + 1..]) else {
            out.push_str(raw);
            continue;
        };
        let Some(new_value) = setter_value(&setter, images) else {
            out.push_str(raw);
            continue;
        };
        if new_value == scalar.value {
            out.push_str(raw);
            continue;
        }
        let rendered = render(&new_value, scalar.style);
        out.push_str(&body[..scalar.start]);
        out.push_str(&rendered);
        out.push_str(&body[scalar.end..]);
        out.push_str(ending);
        changes.push((
            doc_index,
            lineno + 1,
            Change {
                file: file.to_string(),
                line: lineno + 1,
                old_value: scalar.value,
                new_value,
                setter,
                object: ObjectIdentifier::default(),
            },
        ));
    }
    if changes.is_empty() {
        return Ok(None);
    }
    // Identify the objects the changes belong to.
    doc_starts.push(text.len());
    let mut ids: BTreeMap<usize, ObjectIdentifier> = BTreeMap::new();
    for (doc, _, _) in &changes {
        if ids.contains_key(doc) {
            continue;
        }
        let (a, b) = (
            doc_starts.get(*doc).copied().unwrap_or(0),
            doc_starts.get(doc + 1).copied().unwrap_or(text.len()),
        );
        let slice = text.get(a..b).unwrap_or("");
        let id = crate::yaml::load_documents(file, slice, &crate::yaml::YamlLimits::default())
            .ok()
            .and_then(|d| d.into_iter().next())
            .map(|v| identify(&v))
            .unwrap_or_default();
        ids.insert(*doc, id);
    }
    // The rewrite must leave valid YAML behind.
    crate::yaml::load_documents(file, &out, &crate::yaml::YamlLimits::default()).map_err(|e| {
        SetterError::Yaml {
            file: file.to_string(),
            message: format!("the updated file does not parse ({e}); left unchanged"),
        }
    })?;
    let changes = changes
        .into_iter()
        .map(|(doc, _, mut ch)| {
            ch.object = ids.get(&doc).cloned().unwrap_or_default();
            ch
        })
        .collect();
    Ok(Some(FileUpdate {
        bytes: out.into_bytes(),
        changes,
    }))
}

fn identify(v: &serde_json::Value) -> ObjectIdentifier {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ObjectIdentifier {
        api_version: s("/apiVersion"),
        kind: s("/kind"),
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn split_ending(raw: &str) -> (&str, &str) {
    if let Some(b) = raw.strip_suffix("\r\n") {
        (b, "\r\n")
    } else if let Some(b) = raw.strip_suffix('\n') {
        (b, "\n")
    } else {
        (raw, "")
    }
}

/// The setter named by a line comment (text after `#`), if the comment is a
/// JSON object with a string `$imagepolicy`.
fn marker(comment: &str) -> Option<String> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(comment.trim()).ok()?;
    v.get("$imagepolicy")?.as_str().map(str::to_string)
}

/// The value a setter writes, or `None` when it is not in scope.
fn setter_value(setter: &str, images: &BTreeMap<String, LatestImage>) -> Option<String> {
    let mut parts = setter.splitn(3, ':');
    let (ns, name, suffix) = (parts.next()?, parts.next()?, parts.next());
    let img = images.get(&format!("{ns}:{name}"))?;
    match suffix {
        None => Some(img.reference()),
        Some("tag") => Some(img.tag.clone()),
        Some("name") => Some(img.name.clone()),
        Some("digest") => img.digest.clone(),
        Some(_) => None,
    }
}

/// Skips `- ` sequence indicators, then a `key: ` (plain or quoted key),
/// then anchors and tags, and reads the scalar that follows.
fn find_scalar(body: &str) -> Option<Scalar> {
    let bytes = body.as_bytes();
    let mut i = body.len() - body.trim_start_matches([' ', '\t']).len();
    // sequence indicators
    while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ') | Some(b'\t')) {
        i += 1;
        while matches!(bytes.get(i), Some(b' ') | Some(b'\t')) {
            i += 1;
        }
    }
    if i >= bytes.len() || bytes.get(i) == Some(&b'#') {
        return None;
    }
    // a key, if any
    if let Some(after_key) = key_end(body, i) {
        i = after_key;
        while matches!(bytes.get(i), Some(b' ') | Some(b'\t')) {
            i += 1;
        }
    }
    // anchors and tags
    while matches!(bytes.get(i), Some(b'&') | Some(b'!')) {
        while i < bytes.len() && !matches!(bytes.get(i), Some(b' ') | Some(b'\t')) {
            i += 1;
        }
        while matches!(bytes.get(i), Some(b' ') | Some(b'\t')) {
            i += 1;
        }
    }
    let first = *bytes.get(i)?;
    let scalar = match first {
        b'\'' => {
            let (end, value) = single_quoted(body, i)?;
            Scalar {
                start: i,
                end,
                style: Style::Single,
                value,
                comment: comment_after(body, end)?,
            }
        }
        b'"' => {
            let (end, value) = double_quoted(body, i)?;
            Scalar {
                start: i,
                end,
                style: Style::Double,
                value,
                comment: comment_after(body, end)?,
            }
        }
        // comments, block scalars, flow collections, aliases, directives
        b'#' | b'|' | b'>' | b'[' | b'{' | b'*' | b'%' | b'@' | b'`' => return None,
        _ => {
            // a plain scalar runs to ` #` or the end of the line
            let rest = &body[i..];
            let mut comment = None;
            let mut end = body.len();
            let rb = rest.as_bytes();
            for j in 0..rb.len() {
                if rb[j] == b'#' && j > 0 && matches!(rb[j - 1], b' ' | b'\t') {
                    comment = Some(i + j);
                    end = i + j;
                    break;
                }
            }
            while end > i && matches!(bytes.get(end - 1), Some(b' ') | Some(b'\t')) {
                end -= 1;
            }
            let value = body[i..end].to_string();
            // `key:` followed by nothing but a comment is not a scalar line
            if value.is_empty() || value.contains(": ") || value.ends_with(':') {
                return None;
            }
            Scalar {
                start: i,
                end,
                style: Style::Plain,
                value,
                comment,
            }
        }
    };
    Some(scalar)
}

/// If a mapping key starts at `i`, the index just past its `:`.
fn key_end(body: &str, i: usize) -> Option<usize> {
    let bytes = body.as_bytes();
    let after_quote = match bytes.get(i)? {
        b'\'' => single_quoted(body, i)?.0,
        b'"' => double_quoted(body, i)?.0,
        b'?' | b'#' | b'[' | b'{' | b'|' | b'>' => return None,
        _ => {
            // plain key: up to the first `: ` or a `:` ending the line
            let rest = &body[i..];
            let rb = rest.as_bytes();
            for j in 0..rb.len() {
                if rb[j] == b'#' && j > 0 && matches!(rb[j - 1], b' ' | b'\t') {
                    return None;
                }
                if rb[j] == b':' && matches!(rb.get(j + 1), None | Some(b' ') | Some(b'\t')) {
                    return Some(i + j + 1);
                }
            }
            return None;
        }
    };
    let mut k = after_quote;
    while matches!(bytes.get(k), Some(b' ') | Some(b'\t')) {
        k += 1;
    }
    if bytes.get(k) == Some(&b':') && matches!(bytes.get(k + 1), None | Some(b' ') | Some(b'\t')) {
        Some(k + 1)
    } else {
        None
    }
}

/// After a quoted scalar ending at `end`: `Some(None)` when only spaces
/// follow, `Some(Some(hash))` when a comment follows, `None` when other text
/// follows (not a scalar we understand).
fn comment_after(body: &str, end: usize) -> Option<Option<usize>> {
    let rest = body.get(end..)?;
    let t = rest.trim_start_matches([' ', '\t']);
    if t.is_empty() {
        Some(None)
    } else if t.starts_with('#') && t.len() < rest.len() {
        Some(Some(end + (rest.len() - t.len())))
    } else {
        None
    }
}

fn single_quoted(body: &str, start: usize) -> Option<(usize, String)> {
    let mut value = String::new();
    let mut chars = body.get(start + 1..)?.char_indices().peekable();
    while let Some((j, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().map(|(_, n)| *n) == Some('\'') {
                chars.next();
                value.push('\'');
            } else {
                return Some((start + 1 + j + 1, value));
            }
        } else {
            value.push(c);
        }
    }
    None // not closed on this line
}

fn double_quoted(body: &str, start: usize) -> Option<(usize, String)> {
    let mut value = String::new();
    let mut chars = body.get(start + 1..)?.char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            '"' => return Some((start + 1 + j + 1, value)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '0' => value.push('\0'),
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    '/' => value.push('/'),
                    ' ' => value.push(' '),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut hex = String::new();
                        for _ in 0..n {
                            hex.push(chars.next()?.1);
                        }
                        value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => value.push(c),
        }
    }
    None
}

/// When the line opens a block scalar (`key: |`, `- >-`), the indentation
/// its content must exceed.
fn block_start(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = body.len() - body.trim_start_matches(' ').len();
    let mut col = i;
    while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ')) {
        col = i;
        i += 1;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if let Some(k) = key_end(body, i) {
        col = i;
        i = k;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    while matches!(bytes.get(i), Some(b'&') | Some(b'!')) {
        while i < bytes.len() && bytes.get(i) != Some(&b' ') {
            i += 1;
        }
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    let rest = body.get(i..)?;
    let ind = rest.split(" #").next().unwrap_or("").trim_end();
    let mut cs = ind.chars();
    match cs.next()? {
        '|' | '>' if cs.all(|c| matches!(c, '+' | '-' | '1'..='9')) => Some(col),
        _ => None,
    }
}

/// True when `s` written plain would read back as the string `s`.
fn plain_safe(s: &str) -> bool {
    if s.is_empty() || s != s.trim() {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-`, `?`, `:` are fine when followed by a non-space, but keep it simple
        if !(matches!(first, '-' | '?' | ':') && s.chars().nth(1).is_some_and(|c| c != ' ')) {
            return false;
        }
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.contains(['\n', '\r', '\t']) {
        return false;
    }
    // would it resolve to a non-string (YAML 1.1 or 1.2 core schema)?
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".nan"
            | ".inf"
            | "-.inf"
            | "+.inf"
    ) {
        return false;
    }
    let numeric = s.trim_start_matches(['+', '-']).replace('_', "");
    if !numeric.is_empty()
        && (numeric.parse::<f64>().is_ok()
            || numeric.starts_with("0x")
            || numeric.starts_with("0o")
            || numeric
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '.'))
    {
        return false;
    }
    true
}

fn render(value: &str, style: Style) -> String {
    match style {
        Style::Plain if plain_safe(value) => value.to_string(),
        Style::Single if !value.contains(['\n', '\r']) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        _ => {
            let mut s = String::with_capacity(value.len() + 2);
            s.push('"');
            for c in value.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    '\n' => s.push_str("\\n"),
                    '\r' => s.push_str("\\r"),
                    '\t' => s.push_str("\\t"),
                    c if (c as u32) < 0x20 => s.push_str(&format!("\\x{:02x}", c as u32)),
                    c => s.push(c),
                }
            }
            s.push('"');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> BTreeMap<String, LatestImage> {
        let mut m = BTreeMap::new();
        m.insert(
            "flux-system:app1".to_string(),
            LatestImage {
                name: "ghcr.io/organization/app1".into(),
                tag: "v1.2.7".into(),
                digest: None,
            },
        );
        m.insert(
            "apps:podinfo".to_string(),
            LatestImage {
                name: "ghcr.io/stefanprodan/podinfo".into(),
                tag: "6.5.0".into(),
                digest: Some("sha256:0123abcd".into()),
            },
        );
        m
    }

    fn run(text: &str) -> Option<FileUpdate> {
        update_file("f.yaml", text.as_bytes(), &images()).unwrap()
    }

    #[test]
    fn full_reference_keeps_every_other_byte() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app1 # the app\n  namespace: apps\nspec:\n  template:\n    spec:\n      containers:\n        - name: app1\n          image: ghcr.io/organization/app1:v1.0.0 # {\"$imagepolicy\": \"flux-system:app1\"}\n";
        let up = run(text).unwrap();
        let want = text.replace("app1:v1.0.0", "app1:v1.2.7");
        assert_eq!(String::from_utf8(up.bytes).unwrap(), want);
        assert_eq!(up.changes.len(), 1);
        let c = &up.changes[0];
        assert_eq!(c.line, 11);
        assert_eq!(c.old_value, "ghcr.io/organization/app1:v1.0.0");
        assert_eq!(c.new_value, "ghcr.io/organization/app1:v1.2.7");
        assert_eq!(c.setter, "flux-system:app1");
        assert_eq!(c.object.kind, "Deployment");
        assert_eq!(c.object.name, "app1");
        assert_eq!(c.object.namespace, "apps");
    }

    #[test]
    fn suffixes_quotes_and_crlf() {
        let text = "kind: HelmRelease\r\nmetadata:\r\n  name: podinfo\r\nspec:\r\n  values:\r\n    image:\r\n      repository: 'ghcr.io/old/podinfo' # {\"$imagepolicy\": \"apps:podinfo:name\"}\r\n      tag: \"6.4.0\"   # {\"$imagepolicy\": \"apps:podinfo:tag\"}\r\n      digest: sha256:00 # {\"$imagepolicy\": \"apps:podinfo:digest\"}\r\n      other: keep # {\"$imagepolicy\": \"apps:unknown\"}\r\n";
        let up = run(text).unwrap();
        let want = text
            .replace("'ghcr.io/old/podinfo'", "'ghcr.io/stefanprodan/podinfo'")
            .replace("\"6.4.0\"", "\"6.5.0\"")
            .replace("sha256:00", "sha256:0123abcd");
        assert_eq!(String::from_utf8(up.bytes).unwrap(), want);
        assert_eq!(up.changes.len(), 3);
        assert_eq!(up.changes[1].setter, "apps:podinfo:tag");
    }

    #[test]
    fn plain_numbers_get_quoted() {
        let text = "tag: 6.4 # {\"$imagepolicy\": \"apps:podinfo:tag\"}\n";
        let up = run(text).unwrap();
        assert_eq!(
            String::from_utf8(up.bytes).unwrap(),
            "tag: \"6.5.0\" # {\"$imagepolicy\": \"apps:podinfo:tag\"}\n"
        );
    }

    #[test]
    fn not_markers() {
        // no token: not parsed at all (even if broken YAML)
        assert!(run("a: [unclosed\n").is_none());
        // a whole-line comment, text inside a block scalar, invalid JSON
        let text = "# image: x:v1 # {\"$imagepolicy\": \"flux-system:app1\"}\ndata:\n  script: |\n    image: x:v1 # {\"$imagepolicy\": \"flux-system:app1\"}\nb: x:v1 # {\"$imagepolicy\": flux-system:app1}\n";
        assert!(run(text).is_none());
        // already up to date
        let text =
            "image: ghcr.io/organization/app1:v1.2.7 # {\"$imagepolicy\": \"flux-system:app1\"}\n";
        assert!(run(text).is_none());
    }

    #[test]
    fn sequence_items_and_anchors() {
        let text = "images:\n- ghcr.io/x:1 # {\"$imagepolicy\": \"flux-system:app1\"}\n- &a 'v0' # {\"$imagepolicy\": \"flux-system:app1:tag\"}\n";
        let up = run(text).unwrap();
        assert_eq!(
            String::from_utf8(up.bytes).unwrap(),
            "images:\n- ghcr.io/organization/app1:v1.2.7 # {\"$imagepolicy\": \"flux-system:app1\"}\n- &a 'v1.2.7' # {\"$imagepolicy\": \"flux-system:app1:tag\"}\n"
        );
    }

    #[test]
    fn broken_yaml_with_marker_is_an_error() {
        let e = update_file(
            "bad.yaml",
            b"a: [x\nimage: x # {\"$imagepolicy\": \"flux-system:app1\"}\n",
            &images(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn line() -> impl Strategy<Value = String> {
            let value = prop_oneof![
                "[a-z][a-z0-9./-]{0,10}(:[a-z0-9.]{1,5})?",
                "'[a-z0-9 ./:-]{0,12}'",
                "\"[a-z0-9 ./:-]{0,12}\"",
                Just("|".to_string()),
                Just("[a, b]".to_string()),
            ];
            let marker = prop_oneof![
                Just(String::new()),
                Just(" # plain comment".to_string()),
                Just(" # {\"$imagepolicy\": \"flux-system:app1\"}".to_string()),
                Just(" # {\"$imagepolicy\": \"flux-system:app1:tag\"}".to_string()),
                Just(" # {\"$imagepolicy\": \"apps:podinfo:digest\"}".to_string()),
            ];
            (value, marker).prop_map(|(value, marker)| format!("{value}{marker}"))
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                bytes.extend_from_slice(b"x: y # {\"$imagepolicy\": \"flux-system:app1\"}\n");
                let _ = update_file("f.yaml", &bytes, &images());
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}", sep in "[ :#'\"|>&!-]{0,3}") {
                let input = format!("{text}{sep}{text} # {{\"$imagepolicy\": \"flux-system:app1\"}}\n{sep}");
                let _ = update_file("f.yaml", input.as_bytes(), &images());
            }

            #[test]
            fn only_reported_lines_change_and_a_rerun_is_a_no_op(
                lines in prop::collection::vec(line(), 1..12),
                crlf in prop::bool::ANY,
            ) {
                let eol = if crlf { "\r\n" } else { "\n" };
                // top-level keys k0, k1, ... keep every generated file valid YAML
                let text: String = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("k{i}: {l}{eol}"))
                    .collect();
                let result = update_file("f.yaml", text.as_bytes(), &images());
                prop_assert!(result.is_ok(), "{:?}", result);
                if let Ok(Some(up)) = result {
                    let new = String::from_utf8(up.bytes.clone()).unwrap();
                    let old_lines: Vec<&str> = text.split_inclusive('\n').collect();
                    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
                    prop_assert_eq!(old_lines.len(), new_lines.len());
                    let changed: Vec<usize> = up.changes.iter().map(|c| c.line).collect();
                    for (i, (a, b)) in old_lines.iter().zip(&new_lines).enumerate() {
                        if a != b {
                            prop_assert!(changed.contains(&(i + 1)));
                            prop_assert!(b.ends_with(eol));
                        }
                    }
                    // The YAML parser reads the new values back as the strings
                    // written, and every other value as before.
                    let limits = crate::yaml::YamlLimits::default();
                    let before = crate::yaml::load_documents("f", &text, &limits).unwrap();
                    let after = crate::yaml::load_documents("f", &new, &limits).unwrap();
                    let (mut b, a) = (before[0].clone(), &after[0]);
                    for c in &up.changes {
                        b[format!("k{}", c.line - 1)] = serde_json::Value::String(c.new_value.clone());
                    }
                    prop_assert_eq!(&b, a);
                    let again = update_file("f.yaml", &up.bytes, &images()).unwrap();
                    prop_assert!(again.is_none());
                }
            }
        }
    }
}
