//! [`OpenPgpVerifier`]: OpenPGP commit and tag signatures (git's default
//! `gpg.format=openpgp`), checked with rPGP against armored public keys.
//!
//! Errors, matching what `git verify-commit` refuses:
//! - no `gpgsig` → [`VerifyError::Unsigned`];
//! - the signature does not parse, or does not verify over the signed bytes
//!   (a tampered commit) → [`VerifyError::BadSignature`];
//! - no trusted key (primary or subkey) issued it → [`VerifyError::UntrustedKey`];
//! - the key (or the signing subkey) was revoked, had expired when the
//!   signature was made, or has expired by now → [`VerifyError::ExpiredKey`].
//!   gpg checks expiry at the current time (git then reports `EXPKEYSIG`),
//!   because the signature's time is the signer's claim: a key that expired
//!   (or leaked) can still sign with a faked time before its expiry. Every
//!   constructor takes the host's [`WallClock`], read at each check, so the
//!   check cannot be left out and a long-running host sees keys expire. Any
//!   revocation of the key or the subkey refuses it, as gpg does.
//!
//! The verdict's principal is the key's first user id; the fingerprint is the
//! primary key's, in upper-case hex as gpg prints it.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::packet::SignatureType;
use pgp::types::KeyDetails;

use super::{
    verify_with_mode, SignedObject, Verdict, Verifier, VerifyError, VerifyMode, WallClock,
};
use crate::source::Snapshot;

/// Verifies OpenPGP signatures against a set of trusted public keys, with
/// key expiry checked at the time the host's [`WallClock`] gives.
#[derive(Clone)]
pub struct OpenPgpVerifier {
    keys: Vec<SignedPublicKey>,
    mode: VerifyMode,
    clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for OpenPgpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| fpr_hex(&k.primary_key.fingerprint()))
            .collect();
        f.debug_struct("OpenPgpVerifier")
            .field("keys", &keys)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn fpr_hex(f: &pgp::types::Fingerprint) -> String {
    format!("{f:X}")
}

impl OpenPgpVerifier {
    /// A verifier over armored public keys (each string may hold several),
    /// each labelled by its name in errors. `clock` says what "now" is for
    /// key expiry (see [`WallClock`]).
    pub fn from_armored(
        armored: &[(&str, &[u8])],
        mode: VerifyMode,
        clock: impl WallClock + 'static,
    ) -> Result<Self, VerifyError> {
        let mut keys = Vec::new();
        for (name, bytes) in armored {
            let iter = SignedPublicKey::from_armor_many(Cursor::new(*bytes))
                .map_err(|e| VerifyError::InvalidKeys(format!("{name}: {e}")))?
                .0;
            let mut n = 0;
            for k in iter {
                let k = k.map_err(|e| VerifyError::InvalidKeys(format!("{name}: {e}")))?;
                k.verify_bindings().map_err(|e| {
                    VerifyError::InvalidKeys(format!(
                        "{name}: key {}: invalid self-signature: {e}",
                        fpr_hex(&k.primary_key.fingerprint())
                    ))
                })?;
                keys.push(k);
                n += 1;
            }
            if n == 0 {
                return Err(VerifyError::InvalidKeys(format!(
                    "{name}: no public key found"
                )));
            }
        }
        Ok(OpenPgpVerifier {
            keys,
            mode,
            clock: Arc::new(clock),
        })
    }

    /// Reads every file in `dir` (sorted by name; hidden files skipped) as
    /// armored public keys, as Flux reads the keys of `verify.secretRef`.
    /// `clock` says what "now" is for key expiry.
    pub fn from_dir(
        dir: &Path,
        mode: VerifyMode,
        clock: impl WallClock + 'static,
    ) -> Result<Self, VerifyError> {
        let io =
            |p: &Path, e: std::io::Error| VerifyError::InvalidKeys(format!("{}: {e}", p.display()));
        // an entry that cannot be listed is an error, never a key dropped
        let entries = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| io(dir, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut files: Vec<_> = entries
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        let mut data = Vec::new();
        for f in &files {
            data.push((
                f.display().to_string(),
                std::fs::read(f).map_err(|e| io(f, e))?,
            ));
        }
        let refs: Vec<(&str, &[u8])> = data
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        Self::from_armored(&refs, mode, clock)
    }

    /// The mode this verifier checks.
    pub fn mode(&self) -> VerifyMode {
        self.mode
    }

    /// Checks one signed object; returns (principal, fingerprint).
    pub fn check_object(&self, obj: &SignedObject<'_>) -> Result<(String, String), VerifyError> {
        let (what, id) = (obj.what, obj.id.to_string());
        let sig_bytes = obj.signature.ok_or_else(|| VerifyError::Unsigned {
            what,
            id: id.clone(),
        })?;
        if !sig_bytes.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
            return Err(VerifyError::UntrustedKey {
                what,
                id,
                fingerprint: "<not an OpenPGP signature; this verifier trusts OpenPGP keys only>"
                    .into(),
            });
        }
        let bad = |reason: String| VerifyError::BadSignature {
            what,
            id: id.clone(),
            reason,
        };
        let text =
            std::str::from_utf8(sig_bytes).map_err(|_| bad("signature is not UTF-8".into()))?;
        let (sig, _) = DetachedSignature::from_string(text)
            .map_err(|e| bad(format!("malformed OpenPGP signature: {e}")))?;
        let sig = sig.signature;
        let issuers: Vec<String> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| fpr_hex(f))
            .chain(sig.issuer_key_id().iter().map(|k| hex_upper(k.as_ref())))
            .collect();
        let sig_time = sig.created().map(|t| i64::from(t.as_secs()));

        for key in &self.keys {
            let primary_fpr = fpr_hex(&key.primary_key.fingerprint());
            // candidates: primary and subkeys whose fingerprint or key id is an issuer
            let matches = |fpr: &pgp::types::Fingerprint, kid: &pgp::types::KeyId| {
                let f = fpr_hex(fpr);
                let k = hex_upper(kid.as_ref());
                issuers.is_empty() || issuers.iter().any(|i| *i == f || *i == k)
            };
            let principal = key
                .details
                .users
                .iter()
                .find_map(|u| u.id.as_str().map(str::to_string))
                .unwrap_or_else(|| primary_fpr.clone());

            if matches(
                &key.primary_key.fingerprint(),
                &key.primary_key.legacy_key_id(),
            ) && sig.verify(&key.primary_key, obj.payload).is_ok()
            {
                self.check_validity(key, None, sig_time, obj)?;
                return Ok((principal, primary_fpr));
            }
            for sub in &key.public_subkeys {
                if matches(&sub.key.fingerprint(), &sub.key.legacy_key_id())
                    && sig.verify(&sub.key, obj.payload).is_ok()
                {
                    self.check_validity(key, Some(sub), sig_time, obj)?;
                    return Ok((principal, primary_fpr));
                }
            }
            // An issuer we trust but a signature that does not verify: tampered.
            let issued_here = std::iter::once((
                key.primary_key.fingerprint(),
                key.primary_key.legacy_key_id(),
            ))
            .chain(
                key.public_subkeys
                    .iter()
                    .map(|s| (s.key.fingerprint(), s.key.legacy_key_id())),
            )
            .any(|(f, k)| !issuers.is_empty() && matches(&f, &k));
            if issued_here {
                return Err(bad(format!(
                    "signature by key {primary_fpr} does not match the signed data"
                )));
            }
        }
        Err(VerifyError::UntrustedKey {
            what,
            id,
            fingerprint: issuers
                .first()
                .cloned()
                .unwrap_or_else(|| "<no issuer>".into()),
        })
    }

    fn check_validity(
        &self,
        key: &SignedPublicKey,
        sub: Option<&pgp::composed::SignedPublicSubKey>,
        sig_time: Option<i64>,
        obj: &SignedObject<'_>,
    ) -> Result<(), VerifyError> {
        let fingerprint = fpr_hex(&key.primary_key.fingerprint());
        let expired = |reason: String| VerifyError::ExpiredKey {
            what: obj.what,
            id: obj.id.to_string(),
            fingerprint: fingerprint.clone(),
            reason,
        };
        // Revocations of the primary key (verified) or of the subkey.
        for r in &key.details.revocation_signatures {
            if r.typ() == Some(SignatureType::KeyRevocation)
                && r.verify_key(&key.primary_key).is_ok()
            {
                return Err(expired("the key is revoked".into()));
            }
        }
        if let Some(s) = sub {
            for r in &s.signatures {
                if r.typ() == Some(SignatureType::SubkeyRevocation)
                    && r.verify_subkey_binding(&key.primary_key, &s.key).is_ok()
                {
                    return Err(expired("the signing subkey is revoked".into()));
                }
            }
        }
        let at = sig_time.unwrap_or(obj.time);
        let now = self.clock.unix_seconds();
        let check_at = |created: i64, exp: Option<i64>, label: &str| -> Result<(), VerifyError> {
            if let Some(exp) = exp {
                let end = created + exp;
                if at > end {
                    return Err(expired(format!(
                        "{label} expired at {end}, before the signature ({at})"
                    )));
                }
                if now > end {
                    return Err(expired(format!(
                        "{label} expired at {end}, before now ({now})"
                    )));
                }
            }
            Ok(())
        };
        let created = i64::from(key.primary_key.created_at().as_secs());
        check_at(created, primary_expiration(key), "the key")?;
        if let Some(s) = sub {
            let created = i64::from(s.key.created_at().as_secs());
            let exp = latest(
                s.signatures
                    .iter()
                    .filter(|x| x.typ() == Some(SignatureType::SubkeyBinding)),
            )
            .and_then(|b| b.key_expiration_time())
            .map(|d| d.as_secs() as i64)
            .filter(|d| *d > 0);
            check_at(created, exp, "the signing subkey")?;
        }
        Ok(())
    }
}

fn latest<'a>(sigs: impl Iterator<Item = &'a Signature>) -> Option<&'a Signature> {
    sigs.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
}

/// The key expiration (seconds after creation) from the newest self-signature.
fn primary_expiration(key: &SignedPublicKey) -> Option<i64> {
    let sigs = key
        .details
        .direct_signatures
        .iter()
        .chain(key.details.users.iter().flat_map(|u| u.signatures.iter()));
    latest(sigs)
        .and_then(|s| s.key_expiration_time())
        .map(|d| d.as_secs() as i64)
        .filter(|d| *d > 0)
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

impl Verifier for OpenPgpVerifier {
    fn verify(&self, snapshot: &Snapshot) -> Result<Verdict, VerifyError> {
        verify_with_mode(snapshot, self.mode, &|o| self.check_object(o))
    }

    fn needs_history(&self) -> bool {
        self.mode.needs_history()
    }
}
