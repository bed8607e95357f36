//! Signature verification: the [`Verifier`] trait and the [`Verified`] proof type.
//!
//! Rendering accepts only a `Verified<Snapshot>`. The only way to build one is
//! [`Verified::check`], which runs a [`Verifier`]. To render without checking
//! signatures, a caller must name [`danger::NoVerification`].

use serde::{Deserialize, Serialize};

use crate::source::Snapshot;

/// What a signature check must cover, as in Flux's `GitRepository.spec.verify.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyMode {
    /// The head commit must be signed (Flux's `HEAD`, also spelled `head`).
    #[default]
    #[serde(rename = "HEAD", alias = "head")]
    Head,
    /// The annotated tag the revision was resolved through must be signed.
    #[serde(rename = "Tag")]
    Tag,
    /// Both the tag and the commit it points to must be signed.
    #[serde(rename = "TagAndHEAD")]
    TagAndHead,
    /// The head and every commit since the revision applied last must be
    /// signed (what `git rev-list <last applied>..<head>` lists), so a
    /// signed commit cannot vouch for unsigned ones beneath it (an
    /// image-automation bot committing on top of an attacker's push). Flux
    /// has no such mode. With nothing applied yet, the head alone is
    /// checked.
    #[serde(rename = "AllCommitsSinceLastApplied")]
    AllCommitsSinceLastApplied,
}

impl VerifyMode {
    /// True when the mode checks the commits since the revision applied
    /// last, which a source must then fetch (see
    /// [`FetchRequest::last_applied`](crate::source::FetchRequest::last_applied)).
    pub fn needs_history(self) -> bool {
        self == VerifyMode::AllCommitsSinceLastApplied
    }
}

/// Who signed what, as established by a [`Verifier`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The principal (an allowed-signers principal or an OpenPGP user id);
    /// empty when nothing was verified.
    pub principal: String,
    /// The signing key's fingerprint (`SHA256:...` for SSH, hex for OpenPGP);
    /// empty when nothing was verified.
    pub fingerprint: String,
    /// The mode that was checked; `None` when verification was skipped.
    pub mode: Option<VerifyMode>,
}

impl Verdict {
    /// True when no signature was checked (see [`danger::NoVerification`]).
    pub fn is_skipped(&self) -> bool {
        self.mode.is_none()
    }
}

/// Why a revision was refused. Each case is distinct, so a host can alert on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The commit (or tag) carries no signature.
    #[error("{what} {id} is not signed")]
    Unsigned {
        /// `commit` or `tag`.
        what: &'static str,
        /// The object id.
        id: String,
    },
    /// The signature does not verify over the signed bytes.
    #[error("bad signature on {what} {id}: {reason}")]
    BadSignature {
        /// `commit` or `tag`.
        what: &'static str,
        /// The object id.
        id: String,
        /// Details from the signature check.
        reason: String,
    },
    /// The signature is valid, but its key is not trusted.
    #[error("{what} {id} is signed by untrusted key {fingerprint}")]
    UntrustedKey {
        /// `commit` or `tag`.
        what: &'static str,
        /// The object id.
        id: String,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The key is not valid: revoked, expired (by the signature's time or
    /// by now), or outside its allowed-signers validity at the signer's time.
    #[error("{what} {id} is signed by key {fingerprint}, which is not valid: {reason}")]
    ExpiredKey {
        /// `commit` or `tag`.
        what: &'static str,
        /// The object id.
        id: String,
        /// The key's fingerprint.
        fingerprint: String,
        /// Expired, revoked, or outside `valid-after`/`valid-before`.
        reason: String,
    },
    /// An SSH signature made for another namespace than `git`.
    #[error("{what} {id} has an SSH signature for namespace {namespace:?}, expected \"git\"")]
    WrongNamespace {
        /// `commit` or `tag`.
        what: &'static str,
        /// The object id.
        id: String,
        /// The namespace in the signature.
        namespace: String,
    },
    /// The snapshot has no commit or tag data to verify (e.g. a plain folder),
    /// or the mode needs a tag and there is none.
    #[error("nothing to verify: {0}")]
    NothingToVerify(String),
    /// The trust set itself is malformed (e.g. an allowed-signers line).
    #[error("invalid trusted keys: {0}")]
    InvalidKeys(String),
}

/// What "now" is for checks that depend on the current time: an OpenPGP
/// key that has expired by now is refused, as gpg refuses it, whatever time
/// the signature claims (the signer chooses that time, e.g. with
/// `gpg --faked-system-time`).
///
/// The core reads no clock: the host passes one. Implemented for closures
/// (`|| SystemTime::now()...` in a host) and for `i64`, a fixed time in
/// seconds since the Unix epoch (tests, or a host that builds a verifier per
/// check).
pub trait WallClock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn unix_seconds(&self) -> i64;
}

impl WallClock for i64 {
    fn unix_seconds(&self) -> i64 {
        *self
    }
}

impl<F: Fn() -> i64 + Send + Sync> WallClock for F {
    fn unix_seconds(&self) -> i64 {
        self()
    }
}

/// Checks signatures on a snapshot.
///
/// Implementations return a [`Verdict`] on success. Hosts can bring their own
/// (e.g. gitsign); the shipped ones cover SSH and OpenPGP signatures.
///
/// [`Source::fetch_verified`](crate::source::Source::fetch_verified) calls
/// it before the tree is read: a [`GitSource`](crate::source::GitSource)
/// hands it the revision, the commit and the tag with an empty tree (a
/// signature covers the commit, which names its tree by hash).
pub trait Verifier: Send + Sync {
    /// Checks `snapshot` and says who signed it.
    fn verify(&self, snapshot: &Snapshot) -> Result<Verdict, VerifyError>;

    /// True when the verifier checks the commits since the revision applied
    /// last ([`VerifyMode::AllCommitsSinceLastApplied`]): the source then
    /// fills [`Snapshot::history`](crate::source::Snapshot::history).
    fn needs_history(&self) -> bool {
        false
    }
}

/// A value whose signatures a [`Verifier`] has checked.
///
/// There is no public constructor other than [`Verified::check`], so holding a
/// `Verified<Snapshot>` proves that a verifier ran and accepted it.
#[derive(Clone, Debug)]
pub struct Verified<T> {
    inner: T,
    verdict: Verdict,
}

impl Verified<Snapshot> {
    /// Runs `verifier` on `snapshot`, and wraps it on success.
    ///
    /// A verifier that [needs the history](Verifier::needs_history) refuses
    /// a snapshot without one (as [`VerifyError::NothingToVerify`]).
    pub fn check(snapshot: Snapshot, verifier: &dyn Verifier) -> Result<Self, VerifyError> {
        let verdict = verifier.verify(&snapshot)?;
        Ok(Verified {
            inner: snapshot,
            verdict,
        })
    }
}

impl Verified<Snapshot> {
    /// The same verified revision with a tree derived from its own (e.g. a
    /// generated kustomization added). Crate-internal: the proof carries over
    /// only to trees the crate builds from the verified one.
    pub(crate) fn with_tree(&self, tree: crate::source::Tree) -> Verified<Snapshot> {
        Verified {
            inner: Snapshot {
                tree,
                ..self.inner.clone()
            },
            verdict: self.verdict.clone(),
        }
    }
}

impl<T> Verified<T> {
    /// The verifier's verdict.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Unwraps the value, giving up the proof.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// Overrides that turn off security checks. Using them is a visible choice.
pub mod danger {
    use super::{Snapshot, Verdict, Verifier, VerifyError};

    /// A verifier that accepts everything without checking signatures.
    ///
    /// Use it only for sources that cannot be signed (a plain folder in a
    /// test or a local trial). The verdict records that nothing was checked.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct NoVerification;

    impl Verifier for NoVerification {
        fn verify(&self, _snapshot: &Snapshot) -> Result<Verdict, VerifyError> {
            Ok(Verdict {
                principal: String::new(),
                fingerprint: String::new(),
                mode: None,
            })
        }
    }
}

#[cfg(feature = "ssh-verify")]
pub mod allowed_signers;
#[cfg(feature = "openpgp")]
pub mod openpgp;
#[cfg(feature = "ssh-verify")]
pub mod ssh;

#[cfg(feature = "openpgp")]
pub use openpgp::OpenPgpVerifier;
#[cfg(feature = "ssh-verify")]
pub use ssh::SshVerifier;

/// One signed object to check: a commit or an annotated tag.
#[derive(Clone, Copy, Debug)]
pub struct SignedObject<'a> {
    /// `commit` or `tag`.
    pub what: &'static str,
    /// The object id.
    pub id: &'a str,
    /// The bytes the signature covers.
    pub payload: &'a [u8],
    /// The armored signature, if any.
    pub signature: Option<&'a [u8]>,
    /// The signer's time (committer or tagger time), seconds since the epoch.
    pub time: i64,
}

/// Checks one [`SignedObject`] and returns `(principal, fingerprint)`.
pub type CheckFn<'a> = dyn Fn(&SignedObject<'_>) -> Result<(String, String), VerifyError> + 'a;

/// Runs `check` on the objects `mode` asks for, as Flux's
/// `GitRepository.spec.verify.mode` does, and merges the verdicts.
///
/// `Head` checks the commit; `Tag` checks the annotated tag the revision was
/// resolved through (an error when there is none); `TagAndHead` checks both;
/// `AllCommitsSinceLastApplied` checks the head and every commit of
/// [`Snapshot::history`](crate::source::Snapshot::history) (an error when
/// the source gave none), and names the first one that fails.
pub fn verify_with_mode(
    snapshot: &Snapshot,
    mode: VerifyMode,
    check: &CheckFn<'_>,
) -> Result<Verdict, VerifyError> {
    let commit = || -> Result<(String, String), VerifyError> {
        let c = snapshot.commit.as_ref().ok_or_else(|| {
            VerifyError::NothingToVerify(format!(
                "revision {} has no commit (not a Git source)",
                snapshot.revision
            ))
        })?;
        check(&SignedObject {
            what: "commit",
            id: &c.id,
            payload: &c.signed_payload,
            signature: c.signature.as_deref(),
            time: c.committer_time,
        })
    };
    let tag = || -> Result<(String, String), VerifyError> {
        let t = snapshot.tag.as_ref().ok_or_else(|| {
            VerifyError::NothingToVerify(format!(
                "revision {} was not resolved through an annotated tag, but mode {mode:?} verifies the tag",
                snapshot.revision
            ))
        })?;
        check(&SignedObject {
            what: "tag",
            id: &t.id,
            payload: &t.signed_payload,
            signature: t.signature.as_deref(),
            time: t.tagger_time,
        })
    };
    let (principal, fingerprint) = match mode {
        VerifyMode::Head => commit()?,
        VerifyMode::Tag => tag()?,
        VerifyMode::AllCommitsSinceLastApplied => {
            let history = snapshot.history.as_ref().ok_or_else(|| {
                VerifyError::NothingToVerify(format!(
                    "mode {mode:?} checks every commit since the revision applied last, but the source gave no history for {}",
                    snapshot.revision
                ))
            })?;
            let head = commit()?;
            let head_id = snapshot.commit.as_ref().map(|c| c.id.as_str());
            for c in history
                .commits
                .iter()
                .filter(|c| Some(c.id.as_str()) != head_id)
            {
                check(&SignedObject {
                    what: "commit",
                    id: &c.id,
                    payload: &c.signed_payload,
                    signature: c.signature.as_deref(),
                    time: c.committer_time,
                })?;
            }
            head
        }
        VerifyMode::TagAndHead => {
            let (tp, tf) = tag()?;
            let (cp, cf) = commit()?;
            if (tp.as_str(), tf.as_str()) == (cp.as_str(), cf.as_str()) {
                (cp, cf)
            } else {
                (
                    format!("{tp} (tag), {cp} (commit)"),
                    format!("{tf} (tag), {cf} (commit)"),
                )
            }
        }
    };
    Ok(Verdict {
        principal,
        fingerprint,
        mode: Some(mode),
    })
}
