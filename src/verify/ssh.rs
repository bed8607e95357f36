//! [`SshVerifier`]: SSH commit and tag signatures (git's `gpg.format=ssh`).
//!
//! The signature is an armored SSHSIG blob made for the namespace `git`.
//! It is checked the way `git verify-commit` checks it with
//! `gpg.ssh.allowedSignersFile` (git runs `ssh-keygen -Y find-principals`
//! and `ssh-keygen -Y verify -n git` with `-Overify-time` set to the
//! committer or tagger time):
//!
//! 1. no `gpgsig` → [`VerifyError::Unsigned`];
//! 2. the blob does not parse, or the signature does not verify over the
//!    signed bytes → [`VerifyError::BadSignature`] (this is also what a
//!    tampered commit gives: git reports "incorrect signature" for it too);
//! 3. namespace other than `git` → [`VerifyError::WrongNamespace`];
//! 4. key on no allowed-signers line, or only on lines whose `namespaces`
//!    exclude `git` → [`VerifyError::UntrustedKey`];
//! 5. key only on lines whose `valid-after`/`valid-before` exclude the
//!    signer's time → [`VerifyError::ExpiredKey`].
//!
//! Keys: ed25519, RSA (`rsa-sha2-256`/`rsa-sha2-512`) and ECDSA
//! (nistp256/384/521). Certificates (`cert-authority` lines) are not
//! supported: such lines never match, so a certificate signature is refused.

use std::path::Path;

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::allowed_signers::AllowedSigners;
use super::{verify_with_mode, SignedObject, Verdict, Verifier, VerifyError, VerifyMode};
use crate::source::Snapshot;

/// The SSHSIG namespace git signs with.
pub const GIT_NAMESPACE: &str = "git";

/// Verifies SSH signatures against an allowed-signers file.
#[derive(Clone, Debug)]
pub struct SshVerifier {
    signers: AllowedSigners,
    mode: VerifyMode,
}

impl SshVerifier {
    /// A verifier over parsed allowed signers, checking `mode`.
    pub fn new(signers: AllowedSigners, mode: VerifyMode) -> Self {
        SshVerifier { signers, mode }
    }

    /// Parses the text of an allowed-signers file (`source_name` labels errors).
    pub fn from_allowed_signers(
        text: &str,
        source_name: &str,
        mode: VerifyMode,
    ) -> Result<Self, VerifyError> {
        let signers = AllowedSigners::parse(text, source_name)
            .map_err(|e| VerifyError::InvalidKeys(e.to_string()))?;
        Ok(Self::new(signers, mode))
    }

    /// Reads an allowed-signers file.
    pub fn from_file(path: &Path, mode: VerifyMode) -> Result<Self, VerifyError> {
        let signers =
            AllowedSigners::read(path).map_err(|e| VerifyError::InvalidKeys(e.to_string()))?;
        Ok(Self::new(signers, mode))
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
        if !sig_bytes.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
            let kind = if sig_bytes.starts_with(b"-----BEGIN PGP") {
                "an OpenPGP signature"
            } else {
                "a signature of another format"
            };
            return Err(VerifyError::UntrustedKey {
                what,
                id,
                fingerprint: format!("<{kind}; this verifier trusts SSH keys only>"),
            });
        }
        let bad = |reason: String| VerifyError::BadSignature {
            what,
            id: id.clone(),
            reason,
        };
        let sig = SshSig::from_pem(sig_bytes)
            .map_err(|e| bad(format!("malformed SSH signature: {e}")))?;
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        if sig.namespace() != GIT_NAMESPACE {
            return Err(VerifyError::WrongNamespace {
                what,
                id,
                namespace: sig.namespace().to_string(),
            });
        }
        let key = PublicKey::from(sig.public_key().clone());
        key.verify(GIT_NAMESPACE, obj.payload, &sig)
            .map_err(|e| bad(format!("signature does not match the signed data: {e}")))?;

        let mut expired: Option<String> = None;
        let mut wrong_ns = false;
        for line in self.signers.lines_for(sig.public_key()) {
            if let Some(ns) = &line.namespaces {
                if !super::allowed_signers::match_pattern_list(GIT_NAMESPACE, ns) {
                    wrong_ns = true;
                    continue;
                }
            }
            if let Some(after) = line.valid_after {
                if obj.time < after {
                    expired.get_or_insert(format!(
                        "allowed-signers line {}: key is not yet valid at {} (valid-after {after})",
                        line.line, obj.time
                    ));
                    continue;
                }
            }
            if let Some(before) = line.valid_before {
                if obj.time > before {
                    expired.get_or_insert(format!(
                        "allowed-signers line {}: key has expired at {} (valid-before {before})",
                        line.line, obj.time
                    ));
                    continue;
                }
            }
            return Ok((line.principals.clone(), fingerprint));
        }
        if let Some(reason) = expired {
            return Err(VerifyError::ExpiredKey {
                what,
                id,
                fingerprint,
                reason,
            });
        }
        let _ = wrong_ns;
        Err(VerifyError::UntrustedKey {
            what,
            id,
            fingerprint,
        })
    }
}

impl Verifier for SshVerifier {
    fn verify(&self, snapshot: &Snapshot) -> Result<Verdict, VerifyError> {
        verify_with_mode(snapshot, self.mode, &|o| self.check_object(o))
    }

    fn needs_history(&self) -> bool {
        self.mode.needs_history()
    }
}
