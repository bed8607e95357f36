//! Secrets in Git: the plaintext-Secret rule and SOPS decryption, the way
//! Flux's `decryption: {provider: sops}` does it.
//!
//! The core (always built) knows how to recognise a SOPS-encrypted file and
//! holds the [`Decrypt`] hook the renderer calls; the cryptography
//! ([`SopsDecryptor`], [`AgeIdentities`]) is behind the `sops` feature and
//! is built on `age` (the data key), `aes-gcm` (AES256-GCM values, their
//! tree path as additional data) and `sha2` (the SHA-512 MAC).
//!
//! Decrypted values never appear in errors: every error names the file and
//! the path of the value, never the value.

use std::fmt;

#[cfg(feature = "sops")]
mod decrypt;
pub mod plaintext;
pub mod tree;

#[cfg(feature = "sops")]
pub use decrypt::{AgeIdentities, SopsDecryptor};
pub use plaintext::{Decrypted, DocumentValues, Origin, Sealed, SecretProvenance};

/// The per-object opt-out annotation: `Disabled` leaves the object as it is.
pub const DECRYPT_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/decrypt";

/// A SOPS file that could not be decrypted. It names the file and, where
/// known, the path of the value; never a decrypted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
#[non_exhaustive]
pub struct SopsError {
    /// The file.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

impl SopsError {
    /// An error about `file`.
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        SopsError {
            file: file.into(),
            message: message.into(),
        }
    }
}

/// The formats SOPS files come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML documents (the default).
    Yaml,
    /// A JSON document.
    Json,
    /// A dotenv file (`KEY=VALUE` lines).
    Dotenv,
    /// An ini file.
    Ini,
}

impl Format {
    /// The format SOPS infers from a file name: `.json`, `.env`, `.ini`,
    /// anything else is YAML.
    pub fn from_path(path: &str) -> Format {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.ends_with(".json") {
            Format::Json
        } else if name.ends_with(".env") || name == ".env" {
            Format::Dotenv
        } else if name.ends_with(".ini") {
            Format::Ini
        } else {
            Format::Yaml
        }
    }
}

/// True when `text` (the contents of `path`) is a SOPS-encrypted file: it
/// carries SOPS metadata with a MAC. A cheap textual check.
pub fn is_encrypted(path: &str, text: &str) -> bool {
    match Format::from_path(path) {
        Format::Dotenv => text.lines().any(|l| l.starts_with("sops_mac=")),
        Format::Ini => {
            text.lines().any(|l| l.trim() == "[sops]")
                && text.lines().any(|l| l.trim_start().starts_with("mac"))
        }
        Format::Json => text.contains("\"sops\"") && text.contains("\"mac\""),
        Format::Yaml => {
            text.lines().any(|l| l.trim_end() == "sops:")
                && text.lines().any(|l| l.trim_start().starts_with("mac:"))
        }
    }
}

/// Decrypts SOPS files for the renderer. [`SopsDecryptor`] is the
/// implementation (feature `sops`).
pub trait Decrypt: Send + Sync + fmt::Debug {
    /// Decrypts `text`, the contents of `file`, into plaintext of the same
    /// format, and says which values were ciphertext (the plaintext-Secret
    /// rule exempts those only). Objects carrying
    /// [`DECRYPT_ANNOTATION`]` = Disabled` are returned unchanged, their
    /// `ENC[...]` values counted as encrypted.
    fn decrypt(&self, file: &str, text: &str) -> Result<Decrypted, SopsError>;
}

/// How the renderer treats Secrets and SOPS files. The default (used by
/// plain `kubectl kustomize` parity) neither refuses nor decrypts.
#[derive(Clone, Debug, Default)]
pub struct SecretRules {
    /// Refuse Secrets in the build's output whose `data`/`stringData`
    /// values are not the ones SOPS decrypted (see [`plaintext`]): values
    /// from plaintext files, literals, patches, replacements or
    /// substitution, and values a SOPS file left in clear.
    pub refuse_plaintext: bool,
    /// Files or folders (relative to the source root) whose Secrets may
    /// hold plaintext all the same: a Secret read from such a file (or made
    /// by a generator of a kustomization there) is not checked.
    pub allow_plaintext: Vec<String>,
    /// Decrypts SOPS files as the renderer reads them (resources and
    /// generator inputs).
    pub decryptor: Option<std::sync::Arc<dyn Decrypt>>,
}

impl SecretRules {
    /// Rules that refuse plaintext Secrets and decrypt with `decryptor`.
    pub fn refuse_plaintext(decryptor: Option<std::sync::Arc<dyn Decrypt>>) -> Self {
        SecretRules {
            refuse_plaintext: true,
            allow_plaintext: Vec::new(),
            decryptor,
        }
    }

    /// True when plaintext Secrets from `path` are allowed.
    pub fn allows_plaintext(&self, path: &str) -> bool {
        !self.refuse_plaintext || plaintext::path_allowed(&self.allow_plaintext, path)
    }

    /// The rule as a [`SecretProvenance`] without origins yet.
    pub fn provenance(&self) -> SecretProvenance {
        SecretProvenance {
            refuse: self.refuse_plaintext,
            allow: self.allow_plaintext.clone(),
            origins: Vec::new(),
        }
    }

    /// Decrypts `text` when it is SOPS-encrypted and a decryptor is set;
    /// returns `None` when the text is used as it is.
    pub fn decrypt(&self, path: &str, text: &str) -> Result<Option<Decrypted>, SopsError> {
        match &self.decryptor {
            Some(d) if is_encrypted(path, text) => d.decrypt(path, text).map(Some),
            _ => Ok(None),
        }
    }
}
