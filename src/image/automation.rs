//! The bot's commit: written with gix, signed, pushed (feature
//! `image-automation`).
//!
//! One [`Automation::run`]:
//!
//! 1. **Fetch** the tips (depth 1) of the checkout branch, and of the push
//!    branch if the remote has it, into a bare cache repository
//!    (`cache_dir`, reused across runs so a second fetch transfers only what
//!    is new).
//! 2. **Base**: like Flux, when the push branch differs from the checkout
//!    branch and already exists on the remote, the update is made on top of
//!    it (so a second run with the same tags finds nothing to do); otherwise
//!    on the checkout branch.
//! 3. **Setters** run over the files under `path` of the base commit's tree,
//!    read straight from the object database (no worktree checkout).
//! 4. **Nothing changed means no commit and no push.**
//! 5. **Commit** with gix: new blobs, the base tree edited in place, the
//!    configured author as author and committer, the message from the
//!    template, and — with a signer — an SSHSIG signature (namespace `git`,
//!    SHA-512) in the `gpgsig` header, over the exact bytes git verifies.
//! 6. **Push** `<commit>:refs/heads/<push branch>` with the `git` CLI.
//!
//! Why the git CLI for the network: gix 0.90 implements fetch but not push
//! (its `remote` module has no push connection). Pushing needs the git CLI
//! anyway, so fetch uses it too: one tool, one set of transports (file://,
//! http(s), ssh) and one credential path. Credentials never appear in
//! arguments: HTTP headers go through `GIT_CONFIG_*` environment variables,
//! SSH options through `GIT_SSH_COMMAND` with strict host-key checking.
//! A push is a single-ref update: when it is refused (non-fast-forward,
//! hook, permissions) the remote is left as it was and the error carries
//! git's reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::setters::{Change, LatestImage};
use super::template::{render_message, TemplateData};
use super::{update_tree, ImageError, TreeUpdate};
use crate::source::Tree;

/// The default push branch (the seed's `flux-image-updates`).
pub const DEFAULT_PUSH_BRANCH: &str = "flux-image-updates";

/// Why an automation run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutomationError {
    /// The options are inconsistent.
    #[error("invalid automation: {0}")]
    Invalid(String),
    /// The push branch is the branch the fleet reconciles, and the host did
    /// not allow pushing there.
    #[error("refusing to push to the checkout branch {branch:?}: set push_to_checkout_branch to allow it")]
    PushToCheckoutBranch {
        /// The branch.
        branch: String,
    },
    /// The checkout branch does not exist on the remote.
    #[error("branch {branch:?} not found at {url}")]
    BranchNotFound {
        /// The branch.
        branch: String,
        /// The remote (credentials removed).
        url: String,
    },
    /// The head the update would be made on is refused by the verifier
    /// ([`Automation::run_verified`]): the bot does not sign on top of a
    /// commit the fleet would refuse.
    #[error("refusing to commit on top of {commit} of {branch:?} at {url}: {reason}")]
    UnverifiedBase {
        /// The remote (credentials removed).
        url: String,
        /// The branch the base commit is the head of.
        branch: String,
        /// The base commit.
        commit: String,
        /// The verifier's refusal.
        reason: Box<crate::verify::VerifyError>,
    },
    /// Fetching failed.
    #[error("fetch from {url} failed: {message}")]
    Fetch {
        /// The remote (credentials removed).
        url: String,
        /// git's message.
        message: String,
    },
    /// The push was refused or failed; the remote branch is unchanged.
    #[error("push of {commit} to {branch:?} at {url} failed, remote left unchanged: {message}")]
    Push {
        /// The remote (credentials removed).
        url: String,
        /// The push branch.
        branch: String,
        /// The commit that was not pushed.
        commit: String,
        /// git's reason.
        message: String,
    },
    /// Reading or writing the cache repository failed.
    #[error("git repository {path}: {message}")]
    Repository {
        /// The cache folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The signing key could not be used.
    #[error("signing key: {0}")]
    Signing(String),
    /// Policies, setters or the template failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The git program could not be run.
    #[error("running {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        message: String,
    },
}

impl AutomationError {
    /// True when the same run may succeed later (network trouble, a push
    /// race with another writer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AutomationError::Fetch { .. } | AutomationError::Push { .. }
        )
    }
}

/// Signs commit payloads.
pub trait CommitSigner: Send + Sync {
    /// The armored signature of `payload` (the commit object without its
    /// `gpgsig` header), as it goes into the `gpgsig` header. `time` is the
    /// commit time, for formats that record a signing time.
    fn sign(&self, payload: &[u8], time: CommitTime) -> Result<String, AutomationError>;
}

/// An SSH ed25519 key signing with SSHSIG, namespace `git`, SHA-512 — what
/// `git -c gpg.format=ssh commit -S` produces.
pub struct SshSigner {
    key: ssh_key::PrivateKey,
}

impl std::fmt::Debug for SshSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSigner")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SshSigner {
    /// Reads an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    /// Only unencrypted ed25519 keys are supported; others are refused with
    /// a clear error.
    pub fn from_openssh(text: &str) -> Result<Self, AutomationError> {
        let key = ssh_key::PrivateKey::from_openssh(text)
            .map_err(|e| AutomationError::Signing(format!("not an OpenSSH private key: {e}")))?;
        if key.is_encrypted() {
            return Err(AutomationError::Signing(
                "the key is passphrase-protected; an unattended bot needs an unencrypted key"
                    .into(),
            ));
        }
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(AutomationError::Signing(format!(
                "key type {} is not supported for signing; use ssh-ed25519",
                key.algorithm()
            )));
        }
        Ok(SshSigner { key })
    }

    /// The public key in OpenSSH format (for an allowed-signers file).
    pub fn public_key(&self) -> String {
        self.key.public_key().to_openssh().unwrap_or_default()
    }

    /// The key's SHA-256 fingerprint (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
    }
}

impl CommitSigner for SshSigner {
    fn sign(&self, payload: &[u8], _time: CommitTime) -> Result<String, AutomationError> {
        let sig = self
            .key
            .sign("git", ssh_key::HashAlg::Sha512, payload)
            .map_err(|e| AutomationError::Signing(e.to_string()))?;
        let pem = sig
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| AutomationError::Signing(e.to_string()))?;
        Ok(pem.trim_end_matches('\n').to_string())
    }
}

/// An OpenPGP secret key (as `gpg --export-secret-keys --armor` writes it)
/// signing commits like `git commit -S` with gpg: a detached binary
/// signature, armored, whose creation time is the commit time. The primary
/// key signs when its self-signatures allow signing (or state no flags);
/// otherwise the first subkey flagged for signing does. Passphrase-protected
/// keys are refused.
#[cfg(feature = "openpgp")]
pub struct OpenPgpSigner {
    key: pgp::composed::SignedSecretKey,
}

#[cfg(feature = "openpgp")]
impl std::fmt::Debug for OpenPgpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPgpSigner")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "openpgp")]
impl OpenPgpSigner {
    /// Reads an armored secret key.
    pub fn from_armored(text: &str) -> Result<Self, AutomationError> {
        use pgp::composed::Deserializable;
        let (key, _) = pgp::composed::SignedSecretKey::from_string(text).map_err(|e| {
            AutomationError::Signing(format!("not an armored OpenPGP secret key: {e}"))
        })?;
        let signer = OpenPgpSigner { key };
        // fail early on keys that cannot sign, or are locked
        signer.sign(
            b"probe",
            CommitTime {
                seconds: 0,
                offset_seconds: 0,
            },
        )?;
        Ok(signer)
    }

    /// The primary key's fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        use pgp::types::KeyDetails;
        format!("{:X}", self.key.primary_key.fingerprint())
    }

    fn primary_can_sign(&self) -> bool {
        let d = &self.key.details;
        let sigs: Vec<&pgp::packet::Signature> = d
            .direct_signatures
            .iter()
            .chain(d.users.iter().flat_map(|u| u.signatures.iter()))
            .collect();
        let flagged: Vec<&&pgp::packet::Signature> = sigs
            .iter()
            .filter(|s| s.key_flags() != pgp::packet::KeyFlags::default())
            .collect();
        flagged.is_empty() || flagged.iter().any(|s| s.key_flags().sign())
    }
}

#[cfg(feature = "openpgp")]
impl CommitSigner for OpenPgpSigner {
    fn sign(&self, payload: &[u8], time: CommitTime) -> Result<String, AutomationError> {
        use pgp::packet::{Subpacket, SubpacketData};
        use pgp::types::SigningKey;
        use rand_chacha::rand_core::SeedableRng;
        use sha2::Digest;
        let err = |e: pgp::errors::Error| AutomationError::Signing(e.to_string());
        let signer: &dyn SigningKey = if self.primary_can_sign() {
            &self.key.primary_key
        } else {
            self.key
                .secret_subkeys
                .iter()
                .find(|k| k.signatures.iter().any(|s| s.key_flags().sign()))
                .map(|k| &k.key as &dyn SigningKey)
                .ok_or_else(|| {
                    AutomationError::Signing("the key has no signing-capable key".into())
                })?
        };
        let secs = u32::try_from(time.seconds.max(0)).unwrap_or(u32::MAX);
        let hashed = vec![
            Subpacket::regular(SubpacketData::IssuerFingerprint(signer.fingerprint()))
                .map_err(err)?,
            Subpacket::regular(SubpacketData::SignatureCreationTime(
                pgp::types::Timestamp::from_secs(secs),
            ))
            .map_err(err)?,
        ];
        let unhashed = vec![
            Subpacket::regular(SubpacketData::IssuerKeyId(signer.legacy_key_id())).map_err(err)?,
        ];
        // Deterministic: the RNG is seeded from the signed bytes.
        let seed: [u8; 32] = sha2::Sha256::digest(payload).into();
        let rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let sig = pgp::composed::DetachedSignature::sign_binary_data_with_subpackets(
            rng,
            &Box::new(signer),
            &pgp::types::Password::empty(),
            pgp::crypto::hash::HashAlgorithm::Sha256,
            payload,
            pgp::composed::SubpacketConfig::UserDefined { hashed, unhashed },
        )
        .map_err(|e| {
            AutomationError::Signing(format!(
                "OpenPGP signing failed (a passphrase-protected key?): {e}"
            ))
        })?;
        let armored = sig
            .to_armored_string(pgp::composed::ArmorOptions::default())
            .map_err(err)?;
        Ok(armored.trim_end_matches(['\n', '\r']).replace("\r\n", "\n"))
    }
}

/// HTTP credentials, passed to git through the environment (never argv).
#[derive(Clone)]
pub enum HttpAuth {
    /// Basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            HttpAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// How git reaches the remote.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// HTTP(S) credentials.
    pub http_auth: Option<HttpAuth>,
    /// A CA bundle for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// SSH private key (deploy key) for ssh:// remotes.
    pub ssh_identity: Option<PathBuf>,
    /// known_hosts for ssh:// remotes; the host key must match
    /// (`StrictHostKeyChecking=yes`, never trust on first use).
    pub ssh_known_hosts: Option<PathBuf>,
}

/// The commit time, injected by the host (the core reads no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Offset from UTC in seconds (east positive).
    pub offset_seconds: i32,
}

/// One ImageUpdateAutomation, in Rust terms.
#[derive(Clone, Debug)]
pub struct Automation {
    /// Namespace of the automation (template data `.AutomationObject`).
    pub namespace: String,
    /// Name of the automation.
    pub name: String,
    /// The remote: a path, `file://`, `http(s)://` or `ssh://` URL.
    pub url: String,
    /// The branch to check out (`spec.git.checkout.ref.branch`).
    pub branch: String,
    /// The branch to push to (`spec.git.push.branch`); defaults to
    /// [`DEFAULT_PUSH_BRANCH`].
    pub push_branch: String,
    /// Allow `push_branch == branch` (pushing straight to the branch the
    /// fleet reconciles from). Off by default.
    pub push_to_checkout_branch: bool,
    /// Force-push the push branch (Flux's `GitForcePushBranch` gate).
    pub force_push: bool,
    /// The folder the setters run over (`spec.update.path`).
    pub path: String,
    /// Author (and committer) name.
    pub author_name: String,
    /// Author (and committer) email.
    pub author_email: String,
    /// `spec.git.commit.messageTemplate` (empty: Flux's default).
    pub message_template: String,
    /// `spec.git.commit.messageTemplateValues`.
    pub message_template_values: BTreeMap<String, String>,
    /// The bare cache repository (created on first use, shallow). One run
    /// at a time per cache folder.
    pub cache_dir: PathBuf,
    /// How git reaches the remote.
    pub transport: Transport,
    /// The git program (default `git`).
    pub git: PathBuf,
    /// Push options (`git push -o key=value`, Flux's `spec.git.push.options`).
    pub push_options: BTreeMap<String, String>,
}

impl Automation {
    /// An automation with Flux's defaults: push branch
    /// `flux-image-updates`, author `fluxcdbot`, default message.
    pub fn new(url: &str, branch: &str, path: &str, cache_dir: impl AsRef<Path>) -> Self {
        Automation {
            namespace: super::policy::DEFAULT_NAMESPACE.into(),
            name: "image-update".into(),
            url: url.to_string(),
            branch: branch.to_string(),
            push_branch: DEFAULT_PUSH_BRANCH.into(),
            push_to_checkout_branch: false,
            force_push: false,
            path: path.to_string(),
            author_name: "fluxcdbot".into(),
            author_email: "fluxcdbot@users.noreply.github.com".into(),
            message_template: String::new(),
            message_template_values: BTreeMap::new(),
            cache_dir: cache_dir.as_ref().to_path_buf(),
            transport: Transport::default(),
            git: PathBuf::from("git"),
            push_options: BTreeMap::new(),
        }
    }

    /// An automation configured from an `ImageUpdateAutomation` object. The
    /// remote URL (the GitRepository's) and the cache folder come from the
    /// host. As in Flux, without `spec.git.push.branch` the push goes to
    /// the checkout branch, which [`run`](Automation::run) refuses unless
    /// the host sets [`push_to_checkout_branch`](Automation::push_to_checkout_branch).
    pub fn from_object(
        obj: &super::ImageUpdateAutomation,
        url: &str,
        cache_dir: impl AsRef<Path>,
    ) -> Result<Self, AutomationError> {
        let branch = obj.branch().ok_or_else(|| {
            AutomationError::Invalid(format!(
                "ImageUpdateAutomation {}/{}: spec.git.checkout.ref.branch is required",
                obj.metadata.ns(),
                obj.metadata.name
            ))
        })?;
        let mut a = Automation::new(url, branch, obj.path(), cache_dir);
        a.namespace = obj.metadata.ns().to_string();
        a.name = obj.metadata.name.clone();
        a.push_branch = obj.push_branch().unwrap_or(branch).to_string();
        let c = &obj.spec.git.commit;
        a.author_name = c.author.name.clone();
        a.author_email = c.author.email.clone();
        a.message_template = c.message_template.clone();
        a.message_template_values = c.message_template_values.clone();
        if let Some(p) = &obj.spec.git.push {
            a.push_options = p.options.clone();
        }
        Ok(a)
    }
}

/// The commit a run pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedCommit {
    /// The commit id (40 hex).
    pub id: String,
    /// The revision as Flux writes it: `<push branch>@sha1:<id>`.
    pub revision: String,
    /// The branch pushed to.
    pub branch: String,
    /// The parent the update was made on.
    pub parent: String,
    /// The commit message.
    pub message: String,
    /// The changes it holds.
    pub changes: Vec<Change>,
    /// True when the commit carries a signature.
    pub signed: bool,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every marked field was up to date: no commit, no push.
    NoUpdates {
        /// The commit the files were read from.
        base: String,
    },
    /// A commit was made and pushed.
    Pushed(PushedCommit),
}

/// Removes `user:password@` from a URL for messages.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, host) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if let Some(at) = auth.rfind('@') {
            return format!("{scheme}://<redacted>@{}{host}", &auth[at + 1..]);
        }
    }
    url.to_string()
}

const CHECKOUT_REF: &str = "refs/driftless/checkout";
const PUSH_REF: &str = "refs/driftless/push";

impl Automation {
    fn check(&self) -> Result<(), AutomationError> {
        for (what, b) in [("branch", &self.branch), ("push branch", &self.push_branch)] {
            if b.is_empty()
                || b.starts_with('-')
                || b.contains(['\0', ' ', '~', '^', ':', '?', '*', '[', '\\'])
                || b.contains("..")
            {
                return Err(AutomationError::Invalid(format!(
                    "{what} {b:?} is not a valid branch name"
                )));
            }
        }
        check_url(&self.url)?;
        if self.push_branch == self.branch && !self.push_to_checkout_branch {
            return Err(AutomationError::PushToCheckoutBranch {
                branch: self.branch.clone(),
            });
        }
        Ok(())
    }

    fn git_cmd(&self) -> Command {
        let mut c = Command::new(&self.git);
        c.env("GIT_TERMINAL_PROMPT", "0");
        // No other transport, whatever the configuration (ext:: runs commands).
        c.env("GIT_ALLOW_PROTOCOL", "file:http:https:ssh");
        c.env_remove("GIT_DIR");
        c.env_remove("GIT_WORK_TREE");
        let mut cfg: Vec<(String, String)> = Vec::new();
        if let Some(auth) = &self.transport.http_auth {
            let header = match auth {
                HttpAuth::Basic { username, password } => {
                    format!(
                        "Authorization: Basic {}",
                        base64_encode(&format!("{username}:{password}"))
                    )
                }
                HttpAuth::Bearer(t) => format!("Authorization: Bearer {t}"),
            };
            cfg.push(("http.extraHeader".into(), header));
        }
        if let Some(ca) = &self.transport.ca_file {
            cfg.push(("http.sslCAInfo".into(), ca.display().to_string()));
        }
        if !cfg.is_empty() {
            c.env("GIT_CONFIG_COUNT", cfg.len().to_string());
            for (i, (k, v)) in cfg.iter().enumerate() {
                c.env(format!("GIT_CONFIG_KEY_{i}"), k);
                c.env(format!("GIT_CONFIG_VALUE_{i}"), v);
            }
        }
        if self.url.starts_with("ssh://")
            || self.transport.ssh_identity.is_some()
            || self.transport.ssh_known_hosts.is_some()
        {
            // The host key must be known: never trust on first use.
            let mut ssh = String::from("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes");
            if let Some(id) = &self.transport.ssh_identity {
                ssh.push_str(&format!(
                    " -o IdentitiesOnly=yes -i {}",
                    shell_quote(&id.display().to_string())
                ));
            }
            if let Some(kh) = &self.transport.ssh_known_hosts {
                ssh.push_str(&format!(
                    " -o UserKnownHostsFile={}",
                    shell_quote(&kh.display().to_string())
                ));
            }
            c.env("GIT_SSH_COMMAND", ssh);
        }
        c
    }

    fn run_git(
        &self,
        args: &[&str],
        cwd: Option<&Path>,
    ) -> Result<(bool, String, String), AutomationError> {
        let mut c = self.git_cmd();
        if let Some(d) = cwd {
            c.arg("-C").arg(d);
        }
        c.args(args);
        let out = c.output().map_err(|e| AutomationError::Spawn {
            program: self.git.display().to_string(),
            message: e.to_string(),
        })?;
        let clean = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).trim().to_string();
            if self.url.contains('@') {
                s.replace(&self.url, &redact_url(&self.url))
            } else {
                s
            }
        };
        Ok((out.status.success(), clean(&out.stdout), clean(&out.stderr)))
    }

    fn repo_err(&self, e: impl std::fmt::Display) -> AutomationError {
        AutomationError::Repository {
            path: self.cache_dir.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Fetches the checkout branch (and the push branch when it exists)
    /// into the cache. Returns the checkout head and the push-branch head.
    pub fn fetch(&self) -> Result<(String, Option<String>), AutomationError> {
        self.check()?;
        let url = redact_url(&self.url);
        if !self.cache_dir.join("HEAD").exists() {
            std::fs::create_dir_all(&self.cache_dir).map_err(|e| self.repo_err(e))?;
            let (ok, _, err) =
                self.run_git(&["init", "--bare", "--quiet"], Some(&self.cache_dir))?;
            if !ok {
                return Err(self.repo_err(err));
            }
        }
        let heads = [
            format!("refs/heads/{}", self.branch),
            format!("refs/heads/{}", self.push_branch),
        ];
        let (ok, out, err) = self.run_git(
            &["ls-remote", "--", &self.url, &heads[0], &heads[1]],
            Some(&self.cache_dir),
        )?;
        if !ok {
            return Err(AutomationError::Fetch { url, message: err });
        }
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for line in out.lines() {
            if let Some((oid, name)) = line.split_once('\t') {
                found.insert(name.to_string(), oid.to_string());
            }
        }
        if !found.contains_key(&heads[0]) {
            return Err(AutomationError::BranchNotFound {
                branch: self.branch.clone(),
                url,
            });
        }
        let push_exists = self.push_branch != self.branch && found.contains_key(&heads[1]);
        let mut specs = vec![format!("+{}:{CHECKOUT_REF}", heads[0])];
        if push_exists {
            specs.push(format!("+{}:{PUSH_REF}", heads[1]));
        }
        let mut args = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            // Only the tips are needed: the commit's parent is the remote's
            // tip, so a shallow cache pushes as well as a full one.
            "--depth=1",
            "--",
            &self.url,
        ];
        args.extend(specs.iter().map(String::as_str));
        let (ok, _, err) = self.run_git(&args, Some(&self.cache_dir))?;
        if !ok {
            return Err(AutomationError::Fetch { url, message: err });
        }
        if !push_exists {
            // forget a push branch fetched by an earlier run
            let _ = self.run_git(&["update-ref", "-d", PUSH_REF], Some(&self.cache_dir))?;
        }
        let repo = self.open()?;
        let read = |name: &str| -> Result<String, AutomationError> {
            let r = repo.find_reference(name).map_err(|e| self.repo_err(e))?;
            r.try_id()
                .map(|id| id.to_string())
                .ok_or_else(|| self.repo_err(format!("{name} is symbolic")))
        };
        let checkout = read(CHECKOUT_REF)?;
        let push = if push_exists {
            Some(read(PUSH_REF)?)
        } else {
            None
        };
        Ok((checkout, push))
    }

    fn open(&self) -> Result<gix::Repository, AutomationError> {
        gix::open_opts(&self.cache_dir, gix::open::Options::isolated())
            .map_err(|e| self.repo_err(e))
    }

    /// Reads the `.yaml`/`.yml` files under `path` of `commit` into a
    /// [`Tree`] (paths relative to the repository root).
    pub fn read_tree(&self, commit: &str) -> Result<Tree, AutomationError> {
        let repo = self.open()?;
        let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| self.repo_err(e))?;
        let tree = repo
            .find_commit(id)
            .map_err(|e| self.repo_err(e))?
            .tree()
            .map_err(|e| self.repo_err(e))?;
        let base = crate::source::join_path("", &self.path)
            .map_err(|e| AutomationError::Invalid(format!("path {:?}: {e}", self.path)))?;
        let sub = if base.is_empty() {
            tree
        } else {
            let entry = tree
                .lookup_entry_by_path(&base)
                .map_err(|e| self.repo_err(e))?
                .ok_or_else(|| {
                    AutomationError::Invalid(format!("path {base:?} does not exist in {commit}"))
                })?;
            if !entry.mode().is_tree() {
                return Err(AutomationError::Invalid(format!(
                    "path {base:?} is not a folder in {commit}"
                )));
            }
            repo.find_tree(entry.object_id())
                .map_err(|e| self.repo_err(e))?
        };
        let mut rec = gix::traverse::tree::Recorder::default();
        sub.traverse()
            .breadthfirst(&mut rec)
            .map_err(|e| self.repo_err(e))?;
        let mut out = Tree::new();
        for e in rec.records {
            if !e.mode.is_blob() {
                continue; // trees, symlinks, submodules
            }
            let rel = String::from_utf8_lossy(&e.filepath).to_string();
            let full = if base.is_empty() {
                rel
            } else {
                format!("{base}/{rel}")
            };
            if !super::is_yaml(&full) {
                continue;
            }
            let blob = repo.find_object(e.oid).map_err(|er| self.repo_err(er))?;
            out.insert_file(&full, blob.data.clone())
                .map_err(|er| self.repo_err(er))?;
        }
        Ok(out)
    }

    /// Writes the commit for `update` on top of `parent` into the cache and
    /// returns its id. Nothing is pushed.
    pub fn write_commit(
        &self,
        parent: &str,
        update: &TreeUpdate,
        message: &str,
        time: CommitTime,
        signer: Option<&dyn CommitSigner>,
    ) -> Result<String, AutomationError> {
        use gix::objs::WriteTo;
        let repo = self.open()?;
        let parent_id = gix::ObjectId::from_hex(parent.as_bytes()).map_err(|e| self.repo_err(e))?;
        let base_tree = repo
            .find_commit(parent_id)
            .map_err(|e| self.repo_err(e))?
            .tree_id()
            .map_err(|e| self.repo_err(e))?;
        let mut editor = repo.edit_tree(base_tree).map_err(|e| self.repo_err(e))?;
        let old_tree = repo.find_tree(base_tree).map_err(|e| self.repo_err(e))?;
        for (path, bytes) in &update.files {
            let kind = old_tree
                .lookup_entry_by_path(path)
                .map_err(|e| self.repo_err(e))?
                .map(|e| e.mode().kind())
                .unwrap_or(gix::objs::tree::EntryKind::Blob);
            let blob = repo.write_blob(bytes).map_err(|e| self.repo_err(e))?;
            editor
                .upsert(path.as_str(), kind, blob.detach())
                .map_err(|e| self.repo_err(e))?;
        }
        let tree = editor.write().map_err(|e| self.repo_err(e))?.detach();
        let who = gix::actor::Signature {
            name: self.author_name.as_str().into(),
            email: self.author_email.as_str().into(),
            time: gix::date::Time {
                seconds: time.seconds,
                offset: time.offset_seconds,
            },
        };
        let mut commit = gix::objs::Commit {
            tree,
            parents: vec![parent_id].into(),
            author: who.clone(),
            committer: who,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        if let Some(s) = signer {
            let mut payload = Vec::new();
            commit
                .write_to(&mut payload)
                .map_err(|e| self.repo_err(e))?;
            let sig = s.sign(&payload, time)?;
            commit.extra_headers.push(("gpgsig".into(), sig.into()));
        }
        let id = repo.write_object(&commit).map_err(|e| self.repo_err(e))?;
        Ok(id.to_string())
    }

    /// Pushes `commit` to the push branch.
    pub fn push(&self, commit: &str) -> Result<(), AutomationError> {
        self.check()?;
        let spec = format!(
            "{}{commit}:refs/heads/{}",
            if self.force_push { "+" } else { "" },
            self.push_branch
        );
        let opts: Vec<String> = self
            .push_options
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    format!("--push-option={k}")
                } else {
                    format!("--push-option={k}={v}")
                }
            })
            .collect();
        let mut args: Vec<&str> = vec!["push", "--porcelain", "--quiet"];
        args.extend(opts.iter().map(String::as_str));
        args.extend(["--", self.url.as_str(), spec.as_str()]);
        let (ok, out, err) = self.run_git(&args, Some(&self.cache_dir))?;
        if ok {
            return Ok(());
        }
        let mut message = String::new();
        for l in out.lines().chain(err.lines()) {
            let l = l.trim();
            if l.is_empty() || l == "Done" || l.starts_with("To ") {
                continue;
            }
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(l);
        }
        Err(AutomationError::Push {
            url: redact_url(&self.url),
            branch: self.push_branch.clone(),
            commit: commit.to_string(),
            message,
        })
    }

    /// Fetches, runs the setters for `images`, and — when something changed
    /// — commits (signed when `signer` is given) and pushes. The head it
    /// builds on is not checked: see [`Automation::run_verified`].
    pub fn run(
        &self,
        images: &BTreeMap<String, LatestImage>,
        time: CommitTime,
        signer: Option<&dyn CommitSigner>,
    ) -> Result<Outcome, AutomationError> {
        self.run_checked(images, time, signer, None)
    }

    /// [`Automation::run`], refusing to build on a head that `verifier`
    /// (the verifier the fleet checks the branch with) rejects, before any
    /// file is read: an unsigned commit pushed by someone else stays
    /// refused instead of being covered by the bot's signed commit on top
    /// (Flux's image automation builds on any head). The check covers the
    /// head commit (a verifier in mode `AllCommitsSinceLastApplied` checks
    /// it alone here: the bot knows no applied revision).
    pub fn run_verified(
        &self,
        images: &BTreeMap<String, LatestImage>,
        time: CommitTime,
        signer: Option<&dyn CommitSigner>,
        verifier: &dyn crate::verify::Verifier,
    ) -> Result<Outcome, AutomationError> {
        self.run_checked(images, time, signer, Some(verifier))
    }

    /// Checks `base`, the head of `branch`, with `verifier`.
    fn verify_base(
        &self,
        base: &str,
        branch: &str,
        verifier: &dyn crate::verify::Verifier,
    ) -> Result<(), AutomationError> {
        let repo = self.open()?;
        let id = gix::ObjectId::from_hex(base.as_bytes()).map_err(|e| self.repo_err(e))?;
        let obj = repo.find_object(id).map_err(|e| self.repo_err(e))?;
        if obj.kind != gix::object::Kind::Commit {
            return Err(self.repo_err(format!("{base} is a {}, not a commit", obj.kind)));
        }
        let commit = crate::source::git::commit_info(&obj.data, base)
            .map_err(|e| self.repo_err(format!("commit {base}: {e}")))?;
        let snapshot = crate::source::Snapshot {
            revision: crate::object::Revision::named(branch, base),
            history: verifier.needs_history().then(|| crate::source::History {
                since: None,
                commits: vec![commit.clone()],
            }),
            commit: Some(commit),
            tag: None,
            tree: Tree::new(),
        };
        verifier
            .verify(&snapshot)
            .map(|_| ())
            .map_err(|reason| AutomationError::UnverifiedBase {
                url: redact_url(&self.url),
                branch: branch.to_string(),
                commit: base.to_string(),
                reason: Box::new(reason),
            })
    }

    fn run_checked(
        &self,
        images: &BTreeMap<String, LatestImage>,
        time: CommitTime,
        signer: Option<&dyn CommitSigner>,
        verifier: Option<&dyn crate::verify::Verifier>,
    ) -> Result<Outcome, AutomationError> {
        let (checkout, push_head) = self.fetch()?;
        let (base, branch) = match push_head {
            Some(p) => (p, &self.push_branch),
            None => (checkout, &self.branch),
        };
        if let Some(v) = verifier {
            self.verify_base(&base, branch, v)?;
        }
        let tree = self.read_tree(&base)?;
        let update = update_tree(&tree, &self.path, images)?;
        if update.is_empty() {
            return Ok(Outcome::NoUpdates { base });
        }
        let data = TemplateData {
            automation_namespace: self.namespace.clone(),
            automation_name: self.name.clone(),
            changes: update.changes.clone(),
            values: self.message_template_values.clone(),
        };
        let message = render_message(&self.message_template, &data).map_err(ImageError::from)?;
        let id = self.write_commit(&base, &update, &message, time, signer)?;
        self.push(&id)?;
        Ok(Outcome::Pushed(PushedCommit {
            revision: format!("{}@sha1:{id}", self.push_branch),
            id,
            branch: self.push_branch.clone(),
            parent: base,
            message,
            changes: update.changes,
            signed: signer.is_some(),
        }))
    }
}

/// Accepts paths and `file://`, `http(s)://`, `ssh://` URLs. scp-style
/// `user@host:path` is refused as Flux refuses it, and so is every other
/// transport (`ext::` would run a command).
fn check_url(url: &str) -> Result<(), AutomationError> {
    let bad = |why: &str| {
        Err(AutomationError::Invalid(format!(
            "remote {:?}: {why}",
            redact_url(url)
        )))
    };
    if url.is_empty() || url.starts_with('-') || url.contains(['\0', '\n']) {
        return bad("not a valid remote");
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if !matches!(scheme, "file" | "http" | "https" | "ssh") {
            return bad("only file://, http://, https:// and ssh:// URLs are supported");
        }
        return Ok(());
    }
    match url.find(':') {
        Some(c) if !url[..c].contains('/') => {
            bad("scp-style addresses are not supported; use ssh://user@host/path")
        }
        _ => Ok(()),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn base64_encode(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64_encode(""), "");
        assert_eq!(base64_encode("f"), "Zg==");
        assert_eq!(base64_encode("fo"), "Zm8=");
        assert_eq!(base64_encode("foo"), "Zm9v");
        assert_eq!(base64_encode("user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:secret@example.com/r.git"),
            "https://<redacted>@example.com/r.git"
        );
        assert_eq!(redact_url("/tmp/x"), "/tmp/x");
    }

    #[test]
    fn pushing_to_the_checkout_branch_needs_consent() {
        let mut a = Automation::new("/tmp/none", "main", ".", "/tmp/none-cache");
        a.push_branch = "main".into();
        assert!(matches!(
            a.check(),
            Err(AutomationError::PushToCheckoutBranch { .. })
        ));
        a.push_to_checkout_branch = true;
        assert!(a.check().is_ok());
        a.push_branch = "--upload-pack=evil".into();
        assert!(a.check().is_err());
        a.push_branch = "flux-image-updates".into();
        for bad in [
            "git@github.com:org/repo.git",
            "ext::sh -c touch% /tmp/pwned",
            "ftp://x/y",
            "-u",
        ] {
            a.url = bad.into();
            assert!(
                matches!(a.check(), Err(AutomationError::Invalid(_))),
                "{bad}"
            );
        }
        for good in [
            "/srv/git/x.git",
            "file:///srv/x",
            "https://h/x.git",
            "ssh://git@h:22/x.git",
            "./rel/x",
        ] {
            a.url = good.into();
            assert!(a.check().is_ok(), "{good}");
        }
    }
}
