//! [`KeysFromSecret`]: verifiers built from the Secret a GitRepository's
//! `spec.verify.secretRef` names, read the way Flux's source-controller
//! reads its verification Secret: every entry of `data` (base64) and
//! `stringData` holds trusted public keys, whatever its name.
//!
//! - Entries holding armored OpenPGP public key blocks
//!   (`-----BEGIN PGP PUBLIC KEY BLOCK-----`) make an [`OpenPgpVerifier`]
//!   over all of them, as Flux builds its keyring from every value.
//! - Entries in git's allowed-signers format (`principal ssh-ed25519 AAAA...`,
//!   the file `gpg.ssh.allowedSignersFile` names) make an [`SshVerifier`]
//!   over all of them. Flux itself verifies OpenPGP only; SSH signatures are
//!   a driftless extension with the same Secret layout.
//!
//! A Secret that mixes both kinds, holds no keys, or holds an entry that is
//! neither is refused with an error naming the Secret and the entry.

use crate::flux::GitRepository;
use crate::object::Object;
use crate::verify::{OpenPgpVerifier, SshVerifier, Verifier};

use super::VerifierFactory;

/// A [`VerifierFactory`] that reads trusted keys from the verification
/// Secret a GitRepository's `spec.verify.secretRef` names, as Flux's
/// source-controller does: every entry of `data` (base64) and `stringData`
/// holds trusted public keys, whatever its name. Armored OpenPGP public key
/// blocks make an [`OpenPgpVerifier`] over all of them; entries in git's
/// allowed-signers format make an [`SshVerifier`] (a driftless extension:
/// Flux verifies OpenPGP only). A Secret that mixes both kinds, holds no
/// keys, or holds an entry that is neither is refused with an error naming
/// the Secret and the entry.
///
/// OpenPGP keys must also be valid at the time the fleet passes (its
/// injected [`Clock`](super::Clock)): a key that has expired by then is
/// refused, as gpg refuses it, whatever time the signature claims.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeysFromSecret;

impl KeysFromSecret {
    /// The factory.
    pub fn new() -> Self {
        KeysFromSecret
    }
}

const PGP_BLOCK: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

/// The Secret's entries as text: `data` decoded from base64, then
/// `stringData` (which wins on a shared key, as the API server merges it).
fn entries(secret: &Object) -> Result<Vec<(String, String)>, String> {
    use base64::Engine;
    let subject = secret.id().subject();
    let mut out: std::collections::BTreeMap<String, String> = Default::default();
    if let Some(data) = secret.value().get("data").and_then(|d| d.as_object()) {
        for (k, v) in data {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{subject}: data.{k}: not a string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| format!("{subject}: data.{k}: not valid base64: {e}"))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{subject}: data.{k}: not UTF-8 text"))?;
            out.insert(k.clone(), text);
        }
    }
    if let Some(data) = secret.value().get("stringData").and_then(|d| d.as_object()) {
        for (k, v) in data {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{subject}: stringData.{k}: not a string"))?;
            out.insert(k.clone(), s.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

impl VerifierFactory for KeysFromSecret {
    fn verifier(
        &self,
        repository: &GitRepository,
        secret: &Object,
        now: i64,
    ) -> Result<Box<dyn Verifier>, String> {
        let subject = secret.id().subject();
        let mode = repository
            .spec
            .verify
            .as_ref()
            .map(|v| v.mode)
            .unwrap_or_default();
        let mut pgp: Vec<(String, String)> = Vec::new();
        let mut ssh: Vec<(String, String)> = Vec::new();
        for (key, text) in entries(secret)? {
            if text.contains(PGP_BLOCK) {
                pgp.push((key, text));
            } else if text.trim().is_empty() {
                return Err(format!("{subject}: entry {key:?} is empty"));
            } else {
                ssh.push((key, text));
            }
        }
        match (pgp.is_empty(), ssh.is_empty()) {
            (true, true) => Err(format!(
                "{subject}: no trusted keys (expected armored OpenPGP public keys or SSH allowed signers)"
            )),
            (false, false) => Err(format!(
                "{subject}: mixes OpenPGP keys ({}) and SSH allowed signers ({}); use one kind per Secret",
                pgp.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
                ssh.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
            )),
            (false, true) => {
                let names: Vec<String> = pgp.iter().map(|(k, _)| format!("{subject}/{k}")).collect();
                let refs: Vec<(&str, &[u8])> = names
                    .iter()
                    .zip(&pgp)
                    .map(|(n, (_, t))| (n.as_str(), t.as_bytes()))
                    .collect();
                let v =
                    OpenPgpVerifier::from_armored(&refs, mode, now).map_err(|e| e.to_string())?;
                Ok(Box::new(v))
            }
            (true, false) => {
                // one allowed-signers text; each entry parsed on its own so
                // errors name the entry
                let mut all = String::new();
                for (k, text) in &ssh {
                    SshVerifier::from_allowed_signers(text, &format!("{subject}/{k}"), mode)
                        .map_err(|e| e.to_string())?;
                    all.push_str(text);
                    all.push('\n');
                }
                let v = SshVerifier::from_allowed_signers(&all, &subject, mode)
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repo() -> GitRepository {
        GitRepository::parse(
            &Object::new(
                json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "flux-system", "namespace": "flux-system"},
                "spec": {"url": "ssh://git@example.org/x", "interval": "1m",
                    "verify": {"mode": "HEAD", "secretRef": {"name": "keys"}}}}),
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn secret(data: serde_json::Value) -> Object {
        Object::new(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "flux-system"}, "stringData": data}))
        .unwrap()
    }

    fn err(data: serde_json::Value) -> String {
        match KeysFromSecret::new().verifier(&repo(), &secret(data), 1_700_000_000) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn refuses_secrets_without_usable_keys_naming_them() {
        assert_eq!(
            err(json!({})),
            "Secret/flux-system/keys: no trusted keys (expected armored OpenPGP public keys or SSH allowed signers)"
        );
        assert_eq!(
            err(json!({"a": "  "})),
            "Secret/flux-system/keys: entry \"a\" is empty"
        );
        let mixed = err(
            json!({"a.asc": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n", "b": "x ssh-ed25519 AAAA"}),
        );
        assert!(
            mixed.contains("mixes OpenPGP keys (a.asc) and SSH allowed signers (b)"),
            "{mixed}"
        );
        let bad = err(json!({"allowed_signers": "not a signer line"}));
        assert!(
            bad.contains("Secret/flux-system/keys/allowed_signers"),
            "{bad}"
        );
        let bad = Object::new(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "flux-system"}, "data": {"k": "%%%"}}))
        .unwrap();
        let e = match KeysFromSecret::new().verifier(&repo(), &bad, 1_700_000_000) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert!(
            e.starts_with("Secret/flux-system/keys: data.k: not valid base64"),
            "{e}"
        );
    }
}
