//! ConfigMap and Secret generators, and kustomize's name hash.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::model::{GeneratorArgs, GeneratorOptions};
use super::resource::{Behavior, Res};
use crate::render::RenderError;
use crate::source::{join_path, Tree};

/// Writes a string as Go's `encoding/json` does (HTML-safe escaping).
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_map(m: &BTreeMap<&str, String>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        go_string(k, out);
        out.push(':');
        go_string(v, out);
    }
    out.push('}');
}

fn string_map(v: Option<&Value>) -> BTreeMap<&str, String> {
    let mut m = BTreeMap::new();
    if let Some(Value::Object(o)) = v {
        for (k, v) in o {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            m.insert(k.as_str(), s);
        }
    }
    m
}

/// kustomize's content hash of a ConfigMap or Secret: sha256 over the
/// Go-JSON encoding of its kind, (empty) name, data (and type, binaryData,
/// immutable), then the first 10 hex digits with some letters swapped.
pub fn name_hash(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    // kustomize v5 looks the name up under a path that never resolves, so
    // every hash is taken with an empty name (checked against kubectl).
    let name = "";
    let mut enc = String::from("{");
    let data = string_map(obj.get("data"));
    if kind == "ConfigMap" {
        let bin = string_map(obj.get("binaryData"));
        if !bin.is_empty() {
            enc.push_str("\"binaryData\":");
            go_map(&bin, &mut enc);
            enc.push(',');
        }
    }
    enc.push_str("\"data\":");
    match obj.get("data") {
        Some(Value::Object(_)) => go_map(&data, &mut enc),
        _ => enc.push_str("\"\""),
    }
    enc.push_str(",\"kind\":");
    go_string(kind, &mut enc);
    enc.push_str(",\"name\":");
    go_string(name, &mut enc);
    if kind == "Secret" {
        let t = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        enc.push_str(",\"type\":");
        go_string(t, &mut enc);
    }
    enc.push('}');
    let digest = Sha256::digest(enc.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.chars()
        .take(10)
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

enum Datum {
    Text(String),
    Binary(Vec<u8>),
}

/// A generator's value, and whether SOPS decrypted it (the whole value was
/// ciphertext in Git).
struct Entry {
    datum: Datum,
    sealed: bool,
}

impl Entry {
    fn plain(datum: Datum) -> Self {
        Entry {
            datum,
            sealed: false,
        }
    }
}

/// Decrypts a generator input when it is SOPS-encrypted and a decryptor is
/// set. An input that looks encrypted while the rule refuses plaintext and
/// nothing can decrypt it is an error, as it is for resources.
fn decrypt_input(
    secrets: &crate::sops::SecretRules,
    path: &str,
    text: &str,
    err: &dyn Fn(String) -> RenderError,
) -> Result<Option<crate::sops::Decrypted>, RenderError> {
    let decrypted = secrets
        .decrypt(path, text)
        .map_err(|e| err(e.to_string()))?;
    if decrypted.is_none() && secrets.refuse_plaintext && crate::sops::is_encrypted(path, text) {
        return Err(err(format!(
            "{path} looks SOPS-encrypted but no decryption is configured"
        )));
    }
    Ok(decrypted)
}

/// Collects the key/value pairs of a generator, in kustomize's order:
/// env files, then literals, then files.
fn collect(
    tree: &Tree,
    dir: &str,
    file: &str,
    args: &GeneratorArgs,
    what: &str,
    secrets: &crate::sops::SecretRules,
) -> Result<Vec<(String, Entry)>, RenderError> {
    let err = |m: String| RenderError::new(file, m).with_field(what.to_string());
    let mut out: Vec<(String, Entry)> = Vec::new();
    let mut envs: Vec<&String> = args.envs.iter().collect();
    if let Some(e) = &args.env {
        envs.push(e);
    }
    for env in envs {
        let p = join_path(dir, env).map_err(|e| err(e.to_string()))?;
        let bytes = tree.read(&p).map_err(|e| err(e.to_string()))?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| err(format!("env file {env} is not valid UTF-8")))?;
        let decrypted = decrypt_input(secrets, &p, text, &err)?;
        // a key SOPS encrypted is sealed; one it left in clear is not
        let sealed_key = |k: &str| {
            decrypted.as_ref().is_some_and(|d| {
                d.documents
                    .iter()
                    .any(|doc| doc.encrypted.contains(&vec![k.to_string()]))
            })
        };
        let text = decrypted.as_ref().map(|d| d.text.as_str()).unwrap_or(text);
        for (i, line) in text.split('\n').enumerate() {
            let mut line = line.strip_suffix('\r').unwrap_or(line);
            if i == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k, v),
                // kustomize reads the process environment here; a
                // deterministic build takes the unset value, "".
                None => (line, ""),
            };
            if !env_name_ok(k) {
                return Err(err(format!(
                    "env file {env}: line {}: invalid key {k:?}",
                    i + 1
                )));
            }
            out.push((
                k.to_string(),
                Entry {
                    datum: Datum::Text(v.to_string()),
                    sealed: sealed_key(k),
                },
            ));
        }
    }
    for lit in &args.literals {
        let Some((k, v)) = lit.split_once('=') else {
            return Err(err(format!(
                "invalid literal source {lit}, expected key=value"
            )));
        };
        out.push((
            k.to_string(),
            Entry::plain(Datum::Text(remove_quotes(v).to_string())),
        ));
    }
    for f in &args.files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => {
                if k.is_empty() {
                    return Err(err(format!("key for file source {f} is empty")));
                }
                (k.to_string(), p)
            }
            None => (f.rsplit('/').next().unwrap_or(f).to_string(), f.as_str()),
        };
        let p = join_path(dir, path).map_err(|e| err(e.to_string()))?;
        let bytes = tree.read(&p).map_err(|e| err(e.to_string()))?;
        let d = match std::str::from_utf8(bytes) {
            // the whole file is the value: sealed when SOPS encrypted every
            // value in it
            Ok(s) => match decrypt_input(secrets, &p, s, &err)? {
                Some(plain) => Entry {
                    sealed: plain.fully_encrypted(),
                    datum: Datum::Text(plain.text),
                },
                None => Entry::plain(Datum::Text(s.to_string())),
            },
            Err(_) => Entry::plain(Datum::Binary(bytes.to_vec())),
        };
        out.push((key, d));
    }
    Ok(out)
}

fn merged_options(
    global: Option<&GeneratorOptions>,
    local: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut o = global.cloned().unwrap_or_default();
    if let Some(l) = local {
        o.labels.extend(l.labels.clone());
        o.annotations.extend(l.annotations.clone());
        if l.disable_name_suffix_hash.is_some() {
            o.disable_name_suffix_hash = l.disable_name_suffix_hash;
        }
        if l.immutable.is_some() {
            o.immutable = l.immutable;
        }
    }
    o
}

/// Builds the object of one generator entry.
pub(crate) fn generate(
    tree: &Tree,
    dir: &str,
    file: &str,
    args: &GeneratorArgs,
    secret: bool,
    global: Option<&GeneratorOptions>,
    secrets: &crate::sops::SecretRules,
) -> Result<Res, RenderError> {
    let what = if secret {
        "secretGenerator"
    } else {
        "configMapGenerator"
    };
    let name = args.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(RenderError::new(file, "a generator entry needs a name")
            .with_field(format!("{what}.name")));
    }
    let behavior = match args.behavior.as_deref() {
        None | Some("") | Some("create") => Behavior::Create,
        Some("merge") => Behavior::Merge,
        Some("replace") => Behavior::Replace,
        Some(other) => {
            return Err(
                RenderError::new(file, format!("unknown generator behavior {other:?}"))
                    .with_field(format!("{what}.behavior")),
            )
        }
    };
    let pairs = collect(tree, dir, file, args, what, secrets)?;
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut sealed = crate::sops::Sealed::default();
    for (
        k,
        Entry {
            datum: d,
            sealed: s,
        },
    ) in pairs
    {
        if !valid_key(&k) {
            return Err(RenderError::new(
                file,
                format!("{name}: invalid key name {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
            )
            .with_field(what.to_string()));
        }
        if data.contains_key(&k) || binary.contains_key(&k) {
            return Err(RenderError::new(
                file,
                format!(
                    "{} {name} illegally repeats the key `{k}`",
                    if secret { "secret" } else { "configmap" }
                ),
            )
            .with_field(what.to_string()));
        }
        let b64 = |b: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(b));
        match d {
            Datum::Text(t) if secret => {
                if s {
                    sealed.insert("data", &k, b64(t.as_bytes()));
                }
                data.insert(k, b64(t.as_bytes()));
            }
            Datum::Binary(b) if secret => {
                data.insert(k, b64(&b));
            }
            Datum::Text(s) => {
                data.insert(k, Value::String(s));
            }
            Datum::Binary(b) => {
                binary.insert(k, b64(&b));
            }
        }
    }
    let opts = merged_options(global, args.options.as_ref());
    let mut md = Map::new();
    md.insert("name".into(), Value::String(name.clone()));
    if let Some(ns) = args.namespace.as_deref().filter(|s| !s.is_empty()) {
        md.insert("namespace".into(), Value::String(ns.to_string()));
    }
    let to_map = |m: &BTreeMap<String, String>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };
    if !opts.labels.is_empty() {
        md.insert("labels".into(), to_map(&opts.labels));
    }
    if !opts.annotations.is_empty() {
        md.insert("annotations".into(), to_map(&opts.annotations));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String("v1".into()));
    obj.insert(
        "kind".into(),
        Value::String(if secret { "Secret" } else { "ConfigMap" }.into()),
    );
    obj.insert("metadata".into(), Value::Object(md));
    if !data.is_empty() || secret {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if secret {
        let t = args
            .type_
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "Opaque".into());
        obj.insert("type".into(), Value::String(t));
    }
    if opts.immutable == Some(true) {
        obj.insert("immutable".into(), Value::Bool(true));
    }
    let mut r = Res::new(Value::Object(obj), file);
    r.sealed = sealed;
    r.needs_hash = opts.disable_name_suffix_hash != Some(true);
    r.behavior = Some(behavior);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_matches_kustomize() {
        // Values from `kubectl kustomize` (v5.5.0).
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "p-cfg"},
            "data": {"a": "b", "n": "2", "t": "true"}});
        assert_eq!(name_hash(&cm), "g8mtg782tf");
        let s = json!({"kind": "Secret", "metadata": {"name": "x-s"},
            "data": {"a": "Yg=="}, "type": "Opaque"});
        assert_eq!(name_hash(&s), "k695gkmbtk");
        let e = json!({"kind": "ConfigMap", "metadata": {"name": "x-e"}});
        assert_eq!(name_hash(&e), "6ct58987ht");
        let f = json!({"kind": "ConfigMap", "metadata": {"name": "x-f"},
            "data": {"a": "<&>\u{2028}", "b": "é"}});
        assert_eq!(name_hash(&f), "7gdf4td889");
    }
}
