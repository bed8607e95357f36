//! SOPS decryption with age identities: the data key, AES256-GCM values
//! with their tree path as additional data, and the SHA-512 MAC.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine;
use regex::Regex;
use sha2::{Digest, Sha512};

use super::tree::Node;
use super::{Decrypt, Decrypted, DocumentValues, Format, SopsError, DECRYPT_ANNOTATION};
use crate::yaml::YamlLimits;

/// SOPS uses AES-256-GCM with 32-byte nonces.
type SopsAes = AesGcm<Aes256, U32>;

/// A set of age X25519 identities (the host's keys). Its `Debug` output
/// shows only how many keys it holds.
#[derive(Clone, Default)]
pub struct AgeIdentities {
    keys: Vec<age::x25519::Identity>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentities({} keys)", self.keys.len())
    }
}

impl AgeIdentities {
    /// Parses a file of age keys, as `age-keygen` writes it: one
    /// `AGE-SECRET-KEY-1...` per line, `#` comments and blank lines
    /// ignored. `source` names the file in errors; key material never shows.
    pub fn parse(source: &str, text: &str) -> Result<AgeIdentities, SopsError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = age::x25519::Identity::from_str(line).map_err(|_| {
                SopsError::new(source, format!("line {}: not an age secret key", i + 1))
            })?;
            keys.push(key);
        }
        Ok(AgeIdentities { keys })
    }

    /// Adds the keys of `other`.
    pub fn extend(&mut self, other: AgeIdentities) {
        self.keys.extend(other.keys);
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public recipients (`age1...`) of the keys, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect();
        r.sort();
        r
    }
}

/// Decrypts SOPS files with age identities supplied by the host (never
/// from the environment).
#[derive(Clone, Debug)]
pub struct SopsDecryptor {
    identities: AgeIdentities,
    limits: YamlLimits,
}

impl SopsDecryptor {
    /// A decryptor holding `identities`.
    pub fn new(identities: AgeIdentities) -> Self {
        SopsDecryptor {
            identities,
            limits: YamlLimits::default(),
        }
    }

    /// The same decryptor with other YAML limits.
    pub fn with_limits(mut self, limits: YamlLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Decrypts `text` (the contents of `file`, in `format`) and returns
    /// the plaintext in the same format, without the SOPS metadata. YAML
    /// and JSON documents carrying the annotation
    /// `kustomize.toolkit.fluxcd.io/decrypt: Disabled` are returned as they
    /// are. The MAC is verified; a mismatch is an error.
    pub fn decrypt_text(
        &self,
        file: &str,
        text: &str,
        format: Format,
    ) -> Result<String, SopsError> {
        self.decrypt_file(file, text, format).map(|d| d.text)
    }

    /// Like [`SopsDecryptor::decrypt_text`], and says which values of each
    /// document were ciphertext and which the file held in clear.
    pub fn decrypt_file(
        &self,
        file: &str,
        text: &str,
        format: Format,
    ) -> Result<Decrypted, SopsError> {
        match format {
            Format::Yaml | Format::Json => self.decrypt_documents(file, text, format),
            Format::Dotenv => self.decrypt_dotenv(file, text),
            Format::Ini => self.decrypt_ini(file, text),
        }
    }

    fn decrypt_documents(
        &self,
        file: &str,
        text: &str,
        format: Format,
    ) -> Result<Decrypted, SopsError> {
        let mut docs: Vec<Node> = Vec::new();
        if format == Format::Json {
            if text.len() > self.limits.max_bytes {
                return Err(SopsError::new(file, "file is too large"));
            }
            let n: Node = serde_json::from_str(text)
                .map_err(|e| SopsError::new(file, format!("invalid JSON: {e}")))?;
            docs.push(n);
        } else {
            for (_, doc) in crate::yaml::split_documents(text) {
                if doc
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                {
                    continue;
                }
                if docs.len() >= self.limits.max_documents {
                    return Err(SopsError::new(file, "too many documents"));
                }
                let n: Node = crate::yaml::from_str_in_order(file, &doc, &self.limits)
                    .map_err(|e| SopsError::new(file, e.message))?;
                docs.push(n);
            }
        }
        if docs.iter().all(disabled) {
            // left as they are: the ENC[...] values are ciphertext in Git
            let documents = docs
                .iter()
                .map(|d| {
                    let mut values = DocumentValues::default();
                    if let Node::Map(entries) = d {
                        for (k, v) in entries.iter().filter(|(k, _)| k != "sops") {
                            ciphertext_leaves(v, &mut vec![k.clone()], &mut values);
                        }
                    }
                    values
                })
                .collect();
            return Ok(Decrypted {
                text: text.to_string(),
                documents,
            });
        }
        let mut meta = None;
        let mut branches = Vec::new();
        for d in docs {
            let Node::Map(entries) = d else {
                return Err(SopsError::new(file, "a SOPS document must be a map"));
            };
            let mut rest = Vec::new();
            for (k, v) in entries {
                if k == "sops" {
                    meta = Some(v);
                } else {
                    rest.push((k, v));
                }
            }
            branches.push(rest);
        }
        let meta = meta
            .ok_or_else(|| SopsError::new(file, "no sops metadata: the file is not encrypted"))?;
        let meta = Metadata::from_node(file, &meta)?;
        let (out, documents) = self.decrypt_branches(file, &meta, branches)?;
        let mut s = String::new();
        for (i, b) in out.into_iter().enumerate() {
            let node = Node::Map(b);
            if format == Format::Json {
                s = serde_json::to_string_pretty(&node)
                    .map_err(|e| SopsError::new(file, e.to_string()))?;
                s.push('\n');
            } else {
                if i > 0 {
                    s.push_str("---\n");
                }
                s.push_str(&crate::yaml::to_string(&node));
            }
        }
        Ok(Decrypted { text: s, documents })
    }

    fn decrypt_dotenv(&self, file: &str, text: &str) -> Result<Decrypted, SopsError> {
        let mut branch = Vec::new();
        let mut flat = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(SopsError::new(file, "a line is not KEY=VALUE"));
            };
            if let Some(mk) = k.strip_prefix("sops_") {
                flat.push((mk.to_string(), v.replace("\\n", "\n")));
            } else {
                branch.push((k.to_string(), Node::Str(v.replace("\\n", "\n"))));
            }
        }
        let meta = Metadata::from_node(file, &unflatten(file, flat)?)?;
        let (out, documents) = self.decrypt_branches(file, &meta, vec![branch])?;
        let mut s = String::new();
        for (k, v) in out.into_iter().flatten() {
            s.push_str(&k);
            s.push('=');
            s.push_str(&String::from_utf8_lossy(&to_bytes(&v)).replace('\n', "\\n"));
            s.push('\n');
        }
        Ok(Decrypted { text: s, documents })
    }

    fn decrypt_ini(&self, file: &str, text: &str) -> Result<Decrypted, SopsError> {
        let mut sections: Vec<(String, Vec<(String, Node)>)> = Vec::new();
        let mut flat = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.trim().to_string());
                if name.trim() != "sops" {
                    sections.push((name.trim().to_string(), Vec::new()));
                }
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(SopsError::new(file, "a line is not key = value"));
            };
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            match current.as_deref() {
                Some("sops") => flat.push((k, v.replace("\\n", "\n"))),
                Some(_) => {
                    if let Some((_, s)) = sections.last_mut() {
                        s.push((k, Node::Str(v)));
                    }
                }
                None => return Err(SopsError::new(file, "a key outside any section")),
            }
        }
        let meta = Metadata::from_node(file, &unflatten(file, flat)?)?;
        let branch: Vec<(String, Node)> = sections
            .into_iter()
            .map(|(n, s)| (n, Node::Map(s)))
            .collect();
        let (out, documents) = self.decrypt_branches(file, &meta, vec![branch])?;
        let mut s = String::new();
        for (name, sec) in out.into_iter().flatten() {
            s.push_str(&format!("[{name}]\n"));
            if let Node::Map(entries) = sec {
                for (k, v) in entries {
                    s.push_str(&format!(
                        "{k} = {}\n",
                        String::from_utf8_lossy(&to_bytes(&v))
                    ));
                }
            }
            s.push('\n');
        }
        Ok(Decrypted { text: s, documents })
    }

    fn data_key(&self, file: &str, meta: &Metadata) -> Result<Vec<u8>, SopsError> {
        if meta.age.is_empty() {
            return Err(SopsError::new(
                file,
                "the file has no age recipients (only age keys are supported)",
            ));
        }
        let ids: Vec<&dyn age::Identity> = self
            .identities
            .keys
            .iter()
            .map(|k| k as &dyn age::Identity)
            .collect();
        for (_, enc) in &meta.age {
            let reader = age::armor::ArmoredReader::new(enc.as_bytes());
            let Ok(dec) = age::Decryptor::new(reader) else {
                continue;
            };
            let Ok(mut r) = dec.decrypt(ids.iter().copied()) else {
                continue;
            };
            let mut key = Vec::new();
            if r.read_to_end(&mut key).is_ok() && key.len() == 32 {
                return Ok(key);
            }
        }
        let recipients: Vec<&str> = meta.age.iter().map(|(r, _)| r.as_str()).collect();
        Err(SopsError::new(
            file,
            format!(
                "no age identity decrypts the data key (recipients: {})",
                recipients.join(", ")
            ),
        ))
    }

    /// Decrypts every branch (document) and checks the MAC; returns the
    /// branches and, for each, which values were ciphertext.
    #[allow(clippy::type_complexity)]
    fn decrypt_branches(
        &self,
        file: &str,
        meta: &Metadata,
        branches: Vec<Vec<(String, Node)>>,
    ) -> Result<(Vec<Vec<(String, Node)>>, Vec<DocumentValues>), SopsError> {
        let key = self.data_key(file, meta)?;
        let cipher = SopsAes::new_from_slice(&key)
            .map_err(|_| SopsError::new(file, "the data key has the wrong length"))?;
        let mut w = Walk {
            file,
            meta,
            cipher: &cipher,
            hash: Sha512::new(),
            path: Vec::new(),
            values: DocumentValues::default(),
        };
        if meta.mac_only_encrypted {
            // SOPS's MACOnlyEncryptedInitialization: sha256("sops")
            w.hash.update(sha2::Sha256::digest(b"sops"));
        }
        let mut out = Vec::new();
        let mut documents = Vec::new();
        for b in branches {
            let mut nb = Vec::new();
            for (k, v) in b {
                w.path.push(k.clone());
                let v = w.node(v)?;
                w.path.pop();
                nb.push((k, v));
            }
            out.push(nb);
            documents.push(std::mem::take(&mut w.values));
        }
        let computed: String = w
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let stored = decrypt_value(&cipher, &meta.mac, meta.last_modified.as_bytes())
            .map_err(|m| SopsError::new(file, format!("sops.mac: {m}")))?;
        if stored.0 != computed.as_bytes() {
            return Err(SopsError::new(
                file,
                "MAC mismatch: the file was modified after it was encrypted",
            ));
        }
        Ok((out, documents))
    }
}

impl Decrypt for SopsDecryptor {
    fn decrypt(&self, file: &str, text: &str) -> Result<Decrypted, SopsError> {
        self.decrypt_file(file, text, Format::from_path(file))
    }
}

/// Sorts the non-empty leaves under `n` (at `path`) of a document left
/// encrypted: `ENC[...]` strings are ciphertext, anything else is clear.
fn ciphertext_leaves(n: &Node, path: &mut Vec<String>, out: &mut DocumentValues) {
    match n {
        Node::Map(m) => {
            for (k, v) in m {
                path.push(k.clone());
                ciphertext_leaves(v, path, out);
                path.pop();
            }
        }
        Node::Seq(items) => {
            for i in items {
                ciphertext_leaves(i, path, out);
            }
        }
        Node::Null => {}
        Node::Str(s) if s.is_empty() => {}
        Node::Str(s) if s.starts_with("ENC[AES256_GCM,") && s.ends_with(']') => {
            out.encrypted.insert(path.clone());
        }
        _ => {
            out.clear.insert(path.clone());
        }
    }
}

fn disabled(doc: &Node) -> bool {
    doc.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DECRYPT_ANNOTATION))
        .and_then(Node::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

/// The parts of the `sops` metadata decryption needs.
struct Metadata {
    age: Vec<(String, String)>,
    last_modified: String,
    mac: String,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
    mac_only_encrypted: bool,
}

impl Metadata {
    fn from_node(file: &str, n: &Node) -> Result<Metadata, SopsError> {
        let s = |k: &str| n.get(k).and_then(Node::as_str).map(str::to_string);
        let re = |k: &str| -> Result<Option<Regex>, SopsError> {
            match s(k) {
                None => Ok(None),
                Some(r) => Regex::new(&r)
                    .map(Some)
                    .map_err(|e| SopsError::new(file, format!("sops.{k}: {e}"))),
            }
        };
        if n.get("key_groups").is_some() || n.get("shamir_threshold").is_some() {
            return Err(SopsError::new(
                file,
                "sops.key_groups: Shamir key groups are not supported",
            ));
        }
        let mut age = Vec::new();
        if let Some(Node::Seq(entries)) = n.get("age") {
            for e in entries {
                let r = e
                    .get("recipient")
                    .and_then(Node::as_str)
                    .unwrap_or_default();
                let enc = e.get("enc").and_then(Node::as_str).unwrap_or_default();
                age.push((r.to_string(), enc.to_string()));
            }
        }
        Ok(Metadata {
            age,
            last_modified: s("lastmodified")
                .ok_or_else(|| SopsError::new(file, "sops.lastmodified is missing"))?,
            mac: s("mac").ok_or_else(|| SopsError::new(file, "sops.mac is missing"))?,
            unencrypted_suffix: s("unencrypted_suffix").filter(|x| !x.is_empty()),
            encrypted_suffix: s("encrypted_suffix").filter(|x| !x.is_empty()),
            unencrypted_regex: re("unencrypted_regex")?,
            encrypted_regex: re("encrypted_regex")?,
            mac_only_encrypted: match n.get("mac_only_encrypted") {
                Some(Node::Bool(b)) => *b,
                Some(Node::Str(v)) => {
                    matches!(v.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True")
                }
                _ => false,
            },
        })
    }

    /// SOPS's rule for whether the value at `path` is encrypted.
    fn encrypted(&self, path: &[String]) -> bool {
        let mut enc = true;
        if let Some(s) = &self.unencrypted_suffix {
            if path.iter().any(|p| p.ends_with(s.as_str())) {
                enc = false;
            }
        }
        if let Some(s) = &self.encrypted_suffix {
            enc = path.iter().any(|p| p.ends_with(s.as_str()));
        }
        if let Some(r) = &self.unencrypted_regex {
            if path.iter().any(|p| r.is_match(p)) {
                enc = false;
            }
        }
        if let Some(r) = &self.encrypted_regex {
            enc = path.iter().any(|p| r.is_match(p));
        }
        enc
    }
}

/// Rebuilds the metadata tree from SOPS's flat keys
/// (`age__list_0__map_recipient`).
fn unflatten(file: &str, flat: Vec<(String, String)>) -> Result<Node, SopsError> {
    let mut root: Vec<(String, Node)> = Vec::new();
    for (k, v) in flat {
        let mut parts = k.split("__");
        let top = parts.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            root.push((top, Node::Str(v)));
            continue;
        }
        // list_<i>__map_<key>
        let (Some(idx), Some(field)) = (
            rest.first()
                .and_then(|p| p.strip_prefix("list_"))
                .and_then(|i| i.parse::<usize>().ok()),
            rest.get(1).and_then(|p| p.strip_prefix("map_")),
        ) else {
            return Err(SopsError::new(
                file,
                format!("unsupported sops metadata key {k:?}"),
            ));
        };
        if rest.len() > 2 || idx > 1024 {
            return Err(SopsError::new(
                file,
                format!("unsupported sops metadata key {k:?}"),
            ));
        }
        if !root.iter().any(|(n, _)| *n == top) {
            root.push((top.clone(), Node::Seq(Vec::new())));
        }
        if let Some((_, Node::Seq(items))) = root.iter_mut().find(|(n, _)| *n == top) {
            while items.len() <= idx {
                items.push(Node::Map(Vec::new()));
            }
            if let Some(Node::Map(m)) = items.get_mut(idx) {
                m.push((field.to_string(), Node::Str(v)));
            }
        }
    }
    Ok(Node::Map(root))
}

struct Walk<'a> {
    file: &'a str,
    meta: &'a Metadata,
    cipher: &'a SopsAes,
    hash: Sha512,
    path: Vec<String>,
    /// The values of the current document, ciphertext or clear.
    values: DocumentValues,
}

impl Walk<'_> {
    fn node(&mut self, n: Node) -> Result<Node, SopsError> {
        match n {
            Node::Map(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m {
                    self.path.push(k.clone());
                    let v = self.node(v)?;
                    self.path.pop();
                    out.push((k, v));
                }
                Ok(Node::Map(out))
            }
            Node::Seq(items) => Ok(Node::Seq(
                items
                    .into_iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_, _>>()?,
            )),
            leaf => {
                let encrypted = self.meta.encrypted(&self.path);
                match (&leaf, encrypted) {
                    (Node::Null, _) => {}
                    (Node::Str(s), _) if s.is_empty() => {}
                    (_, true) => {
                        self.values.encrypted.insert(self.path.clone());
                    }
                    (_, false) => {
                        self.values.clear.insert(self.path.clone());
                    }
                }
                let plain = match (&leaf, encrypted) {
                    (Node::Str(s), true) if s.is_empty() => leaf,
                    (Node::Str(s), true) => {
                        let mut aad = self.path.join(":");
                        aad.push(':');
                        let (bytes, ty) =
                            decrypt_value(self.cipher, s, aad.as_bytes()).map_err(|m| {
                                SopsError::new(self.file, format!("{}: {m}", self.path.join(".")))
                            })?;
                        typed(bytes, &ty).map_err(|m| {
                            SopsError::new(self.file, format!("{}: {m}", self.path.join(".")))
                        })?
                    }
                    (Node::Null, _) | (_, false) => leaf,
                    (_, true) => {
                        return Err(SopsError::new(
                            self.file,
                            format!("{}: the value is not encrypted", self.path.join(".")),
                        ))
                    }
                };
                if !self.meta.mac_only_encrypted || encrypted {
                    self.hash.update(to_bytes(&plain));
                }
                Ok(plain)
            }
        }
    }
}

/// SOPS's `ToBytes`: how a value enters the MAC.
fn to_bytes(n: &Node) -> Vec<u8> {
    match n {
        Node::Str(s) => s.as_bytes().to_vec(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::UInt(u) => u.to_string().into_bytes(),
        Node::Float(f) => f.to_string().into_bytes(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        _ => Vec::new(),
    }
}

fn typed(bytes: Vec<u8>, ty: &str) -> Result<Node, String> {
    let text =
        || String::from_utf8(bytes.clone()).map_err(|_| "the value is not UTF-8".to_string());
    match ty {
        "str" | "bytes" => Ok(Node::Str(text()?)),
        "int" => text()?
            .parse::<i64>()
            .map(Node::Int)
            .map_err(|_| "the value is not an int".to_string()),
        "float" => text()?
            .parse::<f64>()
            .map(Node::Float)
            .map_err(|_| "the value is not a float".to_string()),
        "bool" => match text()?.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Node::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Node::Bool(false)),
            _ => Err("the value is not a bool".to_string()),
        },
        other => Err(format!("unknown value type {other:?}")),
    }
}

/// Decrypts one `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]` value.
/// Errors never contain the value.
fn decrypt_value(cipher: &SopsAes, value: &str, aad: &[u8]) -> Result<(Vec<u8>, String), String> {
    let inner = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|v| v.strip_suffix(']'))
        .ok_or("the value is not SOPS-encrypted (ENC[AES256_GCM,...])")?;
    let (mut data, mut iv, mut tag, mut ty) = (None, None, None, None);
    for part in inner.split(',') {
        let (k, v) = part.split_once(':').ok_or("malformed encrypted value")?;
        match k {
            "data" => data = Some(v),
            "iv" => iv = Some(v),
            "tag" => tag = Some(v),
            "type" => ty = Some(v),
            _ => return Err("malformed encrypted value".to_string()),
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let dec = |v: Option<&str>, what: &str| {
        b64.decode(v.unwrap_or_default())
            .map_err(|_| format!("malformed encrypted value: bad {what}"))
    };
    let mut ct = dec(data, "data")?;
    let iv = dec(iv, "iv")?;
    let tag = dec(tag, "tag")?;
    if iv.len() != 32 || tag.len() != 16 {
        return Err("malformed encrypted value: bad iv or tag length".to_string());
    }
    ct.extend_from_slice(&tag);
    let nonce = aes_gcm::aead::generic_array::GenericArray::from_slice(&iv);
    let plain = cipher
        .decrypt(nonce, Payload { msg: &ct, aad })
        .map_err(|_| {
            "decryption failed: the value or its path was tampered with, or the key is wrong"
                .to_string()
        })?;
    Ok((plain, ty.unwrap_or("str").to_string()))
}
