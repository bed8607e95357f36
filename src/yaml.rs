//! The one place that names the YAML backend.
//!
//! `serde_yaml` is archived upstream; driftless uses its maintained drop-in
//! fork. Switching forks is a change to the `use` line below and nothing else.
//!
//! Every document is parsed into a [`serde_json::Value`] exactly once and
//! emitted exactly once, so the cost of YAML stays linear in the input.

use serde_json::Value;

mod depth;

/// The YAML backend crate (a maintained fork of `serde_yaml`).
pub use serde_yaml_ng as backend;

/// The one set of limits that keeps a hostile repository from exhausting
/// time or memory: YAML sizes, counts, depth and alias expansion, and the
/// nesting of kustomizations. Every bound is documented in
/// `docs/security.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Most documents accepted in one file.
    pub max_documents: usize,
    /// Deepest nesting of maps and sequences accepted in one document.
    pub max_depth: usize,
    /// Most nodes one document may expand to (this bounds alias bombs).
    pub max_nodes: usize,
    /// Most nodes one kustomization build may create: every object counts
    /// (with the names and namespaces it has had) each time a
    /// kustomization takes it in, and so does every node a patch or a
    /// replacement writes, and each kustomization built counts one. This
    /// bounds diamond-shaped kustomization graphs and JSON 6902 `copy`
    /// doubling, which parse small and build huge.
    pub max_build_nodes: usize,
    /// Deepest nesting of kustomizations (resources and components) the
    /// renderer follows.
    pub max_kustomization_depth: usize,
}

/// The limits under their first name.
pub type YamlLimits = Limits;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_documents: 100_000,
            max_depth: 128,
            max_nodes: 4_000_000,
            max_build_nodes: 4_000_000,
            max_kustomization_depth: 64,
        }
    }
}

/// A YAML document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
#[non_exhaustive]
pub struct YamlError {
    /// The file the text came from.
    pub file: String,
    /// The 1-based line of the problem, when the parser knows it.
    pub line: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl YamlError {
    fn new(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        YamlError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

fn backend_error(file: &str, err: &backend::Error, line_offset: usize) -> YamlError {
    let line = err.location().map(|l| l.line() + line_offset);
    let mut message = err.to_string();
    // The backend appends " at line L column C"; the line is carried separately.
    if let Some(pos) = message.find(" at line ") {
        message.truncate(pos);
    }
    YamlError::new(file, line, message)
}

/// Converts a backend value into a JSON value, bounding the work done.
///
/// Alias expansion happens here: a node budget stops billion-laughs inputs
/// long before they reach memory limits.
fn to_json(
    file: &str,
    value: backend::Value,
    depth: usize,
    budget: &mut usize,
    limits: &YamlLimits,
) -> Result<Value, YamlError> {
    if *budget == 0 {
        return Err(YamlError::new(
            file,
            None,
            format!("document expands to more than {} nodes", limits.max_nodes),
        ));
    }
    *budget -= 1;
    if depth > limits.max_depth {
        return Err(YamlError::new(
            file,
            None,
            format!("document is nested deeper than {} levels", limits.max_depth),
        ));
    }
    Ok(match value {
        backend::Value::Null => Value::Null,
        backend::Value::Bool(b) => Value::Bool(b),
        backend::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(n.to_string()))
            }
        }
        backend::Value::String(s) => Value::String(s),
        backend::Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(to_json(file, item, depth + 1, budget, limits)?);
            }
            Value::Array(out)
        }
        backend::Value::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    backend::Value::String(s) => s,
                    backend::Value::Bool(b) => b.to_string(),
                    backend::Value::Number(n) => n.to_string(),
                    backend::Value::Null => "null".to_string(),
                    _ => return Err(YamlError::new(file, None, "mapping keys must be scalars")),
                };
                let v = to_json(file, v, depth + 1, budget, limits)?;
                out.insert(key, v);
            }
            Value::Object(out)
        }
        backend::Value::Tagged(tagged) => to_json(file, tagged.value, depth, budget, limits)?,
    })
}

/// Builds a [`Value`] straight from the YAML event stream (no intermediate
/// backend value), bounding depth and the node count as it goes: aliases
/// are replayed by the backend, so the node budget is what stops
/// billion-laughs inputs.
struct Bounded<'b> {
    depth: usize,
    budget: &'b mut usize,
    limits: &'b YamlLimits,
}

/// A limit of [`YamlLimits`] was hit while building a value.
fn limit_error<E: serde::de::Error>(limits: &YamlLimits, depth: bool) -> E {
    if depth {
        E::custom(format_args!(
            "document is nested deeper than {} levels",
            limits.max_depth
        ))
    } else {
        E::custom(format_args!(
            "document expands to more than {} nodes",
            limits.max_nodes
        ))
    }
}

impl Bounded<'_> {
    fn child(&mut self) -> Bounded<'_> {
        Bounded {
            depth: self.depth + 1,
            budget: &mut *self.budget,
            limits: self.limits,
        }
    }

    fn enter<E: serde::de::Error>(&mut self) -> Result<(), E> {
        if *self.budget == 0 {
            return Err(limit_error(self.limits, false));
        }
        *self.budget -= 1;
        if self.depth > self.limits.max_depth {
            return Err(limit_error(self.limits, true));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A float as the backend prints it (`.nan`, `.inf`, `1.5`).
fn float_value(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(backend::Number::from(f).to_string()))
}

impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(mut self, b: bool) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(mut self, i: i64) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::from(i))
    }

    fn visit_u64<E: serde::de::Error>(mut self, u: u64) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::from(u))
    }

    fn visit_f64<E: serde::de::Error>(mut self, f: f64) -> Result<Value, E> {
        self.enter()?;
        Ok(float_value(f))
    }

    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E: serde::de::Error>(mut self, s: String) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: serde::de::Error>(mut self) -> Result<Value, E> {
        self.enter()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child())? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match out.entry(key) {
                serde_json::map::Entry::Occupied(e) => {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate entry with key {:?}",
                        e.key()
                    )));
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(map.next_value_seed(self.child())?);
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// A tagged node (`!Tag value`): the tag is dropped, the value kept.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use serde::de::VariantAccess;
        let (_tag, contents): (serde::de::IgnoredAny, _) = data.variant()?;
        contents.newtype_variant_seed(self)
    }
}

/// A mapping key: scalars become their text, as YAML prints them.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mapping keys must be scalars")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<String, E> {
        Ok(b.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<String, E> {
        Ok(i.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<String, E> {
        Ok(u.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<String, E> {
        Ok(backend::Number::from(f).to_string())
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
        Ok(s.to_string())
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<String, E> {
        Ok(s)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Ok("null".to_string())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(serde::de::Error::custom("mapping keys must be scalars"))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(serde::de::Error::custom("mapping keys must be scalars"))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<String, A::Error> {
        use serde::de::VariantAccess;
        let (_tag, contents): (serde::de::IgnoredAny, _) = data.variant()?;
        contents.newtype_variant_seed(self)
    }
}

/// Refuses `text` when it nests collections deeper than
/// `limits.max_depth`, before any parser sees it.
///
/// The backend's scanner spends time on every open flow collection for
/// each token, and the backend builds all of a document's events before
/// any value: `[[[…]]]` with 200,000 levels (400 KB) takes minutes there.
/// This check follows the scanner's rules in one linear pass (quotes,
/// comments, block scalars, multi-line scalars, indentation) and counts
/// the open block and flow collections where each collection starts. That
/// count never exceeds the collection's depth in the parsed document, so
/// text within the limit is never refused; a syntax error is left to the
/// parser. Every loader in this module runs it first.
pub fn check_depth(file: &str, text: &str, limits: &YamlLimits) -> Result<(), YamlError> {
    check_depth_at(file, text, 0, limits)
}

fn check_depth_at(
    file: &str,
    text: &str,
    line_offset: usize,
    limits: &YamlLimits,
) -> Result<(), YamlError> {
    match depth::too_deep(text, limits.max_depth) {
        Some(line) => Err(YamlError::new(
            file,
            Some(line + 1 + line_offset),
            format!("document is nested deeper than {} levels", limits.max_depth),
        )),
        None => Ok(()),
    }
}

/// Parses one YAML document into a bounded [`Value`].
fn parse_json(
    file: &str,
    text: &str,
    line_offset: usize,
    limits: &YamlLimits,
) -> Result<Value, YamlError> {
    use serde::de::DeserializeSeed;
    check_depth_at(file, text, line_offset, limits)?;
    let mut budget = limits.max_nodes;
    let seed = Bounded {
        depth: 1,
        budget: &mut budget,
        limits,
    };
    seed.deserialize(backend::Deserializer::from_str(text))
        .map_err(|e| backend_error(file, &e, line_offset))
}

/// Splits a multi-document stream on `---` lines, keeping the 0-based line
/// where each document starts so errors point at the right line.
pub(crate) fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        let is_separator = trimmed == "---"
            || (trimmed.starts_with("--- ") || trimmed.starts_with("---\t"))
                && trimmed[3..].trim_start().starts_with('#');
        if is_separator {
            docs.push((start, std::mem::take(&mut current)));
            start = idx + 1;
        } else if trimmed == "..." {
            // document end marker: ignore
        } else {
            current.push_str(line);
        }
    }
    docs.push((start, current));
    docs
}

/// Parses every document of a YAML stream, skipping empty documents.
///
/// `file` names the source in errors. Limits bound size, document count,
/// depth and alias expansion.
pub fn load_documents(
    file: &str,
    text: &str,
    limits: &YamlLimits,
) -> Result<Vec<Value>, YamlError> {
    Ok(load_documents_at(file, text, limits)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Like [`load_documents`], with the 1-based line each document starts on
/// (for errors about a document that parsed but is not what was expected).
pub fn load_documents_at(
    file: &str,
    text: &str,
    limits: &YamlLimits,
) -> Result<Vec<(usize, Value)>, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::new(
            file,
            None,
            format!("file is larger than {} bytes", limits.max_bytes),
        ));
    }
    let mut out = Vec::new();
    for (offset, doc) in split_documents(text) {
        if doc.trim().is_empty()
            || doc
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        if out.len() >= limits.max_documents {
            return Err(YamlError::new(
                file,
                None,
                format!("file holds more than {} documents", limits.max_documents),
            ));
        }
        let json = parse_json(file, &doc, offset, limits)?;
        if !json.is_null() {
            let first = doc
                .lines()
                .position(|l| !(l.trim().is_empty() || l.trim_start().starts_with('#')))
                .unwrap_or(0);
            out.push((offset + first + 1, json));
        }
    }
    Ok(out)
}

/// Parses one YAML document into `T`, naming `file` in errors.
pub fn from_str<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, YamlError> {
    let limits = YamlLimits::default();
    if text.len() > limits.max_bytes {
        return Err(YamlError::new(
            file,
            None,
            format!("file is larger than {} bytes", limits.max_bytes),
        ));
    }
    let json = parse_json(file, text, 0, &limits)?;
    serde_json::from_value(json).map_err(|e| {
        YamlError::new(
            file,
            error_line::<T>(text),
            crate::hint::unknown_field(&e.to_string()),
        )
    })
}

/// The 1-based line where reading `text` as a `T` fails (an unknown field,
/// a wrong type), found by reading the text itself again; for error
/// messages of text that already parsed as YAML within the limits.
pub fn error_line<T: serde::de::DeserializeOwned>(text: &str) -> Option<usize> {
    check_depth("", text, &YamlLimits::default()).ok()?;
    backend::from_str::<T>(text)
        .err()
        .and_then(|e| e.location())
        .map(|l| l.line())
}

/// Parses one YAML document into `T` keeping the order of map keys as
/// written (for formats whose meaning depends on it, like the SOPS MAC),
/// under the same limits as [`load_documents`].
pub fn from_str_in_order<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
    limits: &YamlLimits,
) -> Result<T, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::new(
            file,
            None,
            format!("file is larger than {} bytes", limits.max_bytes),
        ));
    }
    check_depth(file, text, limits)?;
    let value: backend::Value = backend::from_str(text).map_err(|e| backend_error(file, &e, 0))?;
    let mut budget = limits.max_nodes;
    // the conversion enforces the depth and node limits; its result is not needed
    to_json(file, value.clone(), 1, &mut budget, limits)?;
    backend::from_value(value).map_err(|e| YamlError::new(file, None, e.to_string()))
}

/// Emits one value as a YAML document (keys in the value's order, which is
/// sorted for `serde_json::Value`), the way `kubectl kustomize` prints it.
///
/// For display: a value the backend cannot emit (none of
/// `serde_json::Value`'s, whose keys are strings) prints as an empty
/// document. What is written to disk goes through [`try_to_string`].
pub fn to_string<T: serde::Serialize + ?Sized>(value: &T) -> String {
    try_to_string(value).unwrap_or_else(|_| "\n".to_string())
}

/// [`to_string`], failing instead of printing an empty document when the
/// backend cannot emit the value.
pub fn try_to_string<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, YamlError> {
    let mut out =
        backend::to_string(value).map_err(|e| YamlError::new("<output>", None, e.to_string()))?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Emits values as a multi-document stream separated by `---` lines.
pub fn to_multi_doc<'a, I: IntoIterator<Item = &'a Value>>(values: I) -> String {
    let mut out = String::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_string(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let docs = load_documents(
            "f.yaml",
            "---\na: 1\n---\n# only a comment\n---\nb: 2\n",
            &YamlLimits::default(),
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"], 2);
    }

    #[test]
    fn error_names_file_and_line() {
        let err = load_documents("dir/f.yaml", "a: 1\n---\nb: [1,\n", &YamlLimits::default())
            .unwrap_err();
        assert_eq!(err.file, "dir/f.yaml");
        assert!(err.line.unwrap() >= 3, "{err}");
        assert!(err.to_string().starts_with("dir/f.yaml:"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        let err = load_documents("bomb.yaml", &text, &YamlLimits::default()).unwrap_err();
        assert!(
            err.message.contains("nodes") || err.message.contains("repetition limit"),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        assert!(load_documents("deep.yaml", &text, &YamlLimits::default()).is_err());
    }
}
