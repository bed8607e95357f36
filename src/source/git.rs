//! [`GitSource`]: fetch a revision from a Git remote with gix.
//!
//! - URLs: plain paths, `file://`, `http(s)://` (smart HTTP; basic or bearer
//!   auth; custom CA) and `ssh://` (deploy key and pinned `known_hosts`; a
//!   host key that does not match is an error). scp-style `user@host:repo`
//!   is refused, as Flux refuses it.
//! - References follow Flux's precedence: commit > name > semver > tag >
//!   branch; with none given, Flux's default branch `master`.
//! - Fetches are shallow (depth 1) into a bare cache repository. A fetch
//!   whose target commit is already in the cache transfers no pack; when the
//!   commit is also the one of the last snapshot, the tree is not read again.
//!   Over http(s) refs are looked up with protocol v1, so checking an
//!   unchanged remote is a single `GET info/refs`; packs come over v2.
//! - The tree is read straight from the object database: symlinks become
//!   [`Entry::Symlink`](super::Entry::Symlink), submodules are skipped, `.sourceignore` applies.
//! - Credentials never appear in errors, logs, revisions or `Debug` output,
//!   and are never sent over plain `http://` (that is refused), nor taken
//!   from a URL (`https://user:password@...` is refused).
//! - The gix work is blocking I/O run on the calling task; hosts with an
//!   async runtime may call [`GitSource::fetch_blocking`] on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gix::bstr::ByteSlice;
use gix::remote::Direction;

/// A fetch connection as gix gives it for a URL.
type GitConnection<'remote, 'repo> = gix::remote::Connection<
    'remote,
    'static,
    'repo,
    Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>,
>;

use super::ignore::IgnoreRules;
use super::{
    CommitInfo, FetchError, FetchRequest, GitRef, History, Snapshot, Source, SourceError, TagInfo,
    Tree,
};
use crate::object::Revision;
use crate::verify::{danger::NoVerification, Verified, Verifier};

/// Flux's default branch when a reference names nothing.
pub const DEFAULT_BRANCH: &str = "master";

/// How to authenticate to the remote.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

/// Fetches revisions of a Git repository.
pub struct GitSource {
    url: String,
    kind: UrlKind,
    auth: Auth,
    ca_file: Option<PathBuf>,
    ssh_identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    depth: Option<u32>,
    ignore: Option<String>,
    limits: GitLimits,
    last: Mutex<Option<Arc<Cached>>>,
}

/// Bounds on what one fetch may read, checked from object headers before
/// any object is read, so a repository (or a server) cannot make a fetch
/// allocate more than these. The defaults are in `docs/security.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GitLimits {
    /// Largest file (blob) read into a tree, in bytes (default 64 MiB, as
    /// `DirSource`).
    pub max_file_bytes: u64,
    /// Most bytes one tree may hold: its files (a blob referenced twice
    /// counts twice), its tree objects and its paths (default 256 MiB).
    pub max_tree_bytes: u64,
    /// Most entries (files, links, folders) in one tree (default 1 000 000).
    pub max_entries: u64,
    /// Deepest folder nesting (default 2048, git's `core.maxTreeDepth`:
    /// git itself refuses to read or send a deeper tree).
    pub max_depth: usize,
    /// Most commits checked since the revision applied last (default
    /// 10 000; see `VerifyMode::AllCommitsSinceLastApplied`).
    pub max_history: usize,
}

impl Default for GitLimits {
    fn default() -> Self {
        GitLimits {
            max_file_bytes: 64 * 1024 * 1024,
            max_tree_bytes: 256 * 1024 * 1024,
            max_entries: 1_000_000,
            max_depth: 2048,
            max_history: 10_000,
        }
    }
}

struct Cached {
    tip: String,
    tree: Tree,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UrlKind {
    File,
    Http,
    Ssh,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::Basic { .. } => "basic(<redacted>)",
            Auth::Bearer(_) => "bearer(<redacted>)",
        };
        f.debug_struct("GitSource")
            .field("url", &self.url)
            .field("auth", &auth)
            .field("ca_file", &self.ca_file)
            .field("ssh_identity", &self.ssh_identity)
            .field("known_hosts", &self.known_hosts)
            .field("cache_dir", &self.cache_dir)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Classifies `url`, refusing scp-style addresses and embedded passwords.
fn check_url(url: &str) -> Result<(String, UrlKind), SourceError> {
    if url.is_empty() {
        return Err(SourceError::Invalid("empty Git URL".into()));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let kind = match scheme {
            "file" => UrlKind::File,
            "http" | "https" => UrlKind::Http,
            "ssh" => UrlKind::Ssh,
            other => {
                return Err(SourceError::Invalid(format!(
                    "unsupported URL scheme {other:?}: use file://, http://, https:// or ssh://"
                )))
            }
        };
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err(SourceError::Invalid(
                    "the URL carries a password; pass credentials with with_basic_auth instead"
                        .into(),
                ));
            }
        }
        return Ok((url.to_string(), kind));
    }
    // No scheme: a local path, unless it looks like scp (`host:path` with the
    // colon before any slash), which Flux refuses.
    let colon = url.find(':');
    let slash = url.find('/');
    if let Some(c) = colon {
        if slash.is_none_or(|s| c < s) {
            return Err(SourceError::Invalid(format!(
                "URL {url:?} is in scp-like syntax (user@host:path), which is not supported; use ssh://user@host/path"
            )));
        }
    }
    let path = Path::new(url);
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| SourceError::Io {
                path: url.to_string(),
                message: e.to_string(),
            })?
            .join(path)
    };
    Ok((format!("file://{}", abs.display()), UrlKind::File))
}

impl GitSource {
    /// A source for the repository at `url` (a path, `file://`, `http(s)://`
    /// or `ssh://`). Refuses scp-style addresses and URLs with a password.
    pub fn new(url: &str) -> Result<Self, SourceError> {
        let (url, kind) = check_url(url)?;
        Ok(GitSource {
            url,
            kind,
            auth: Auth::None,
            ca_file: None,
            ssh_identity: None,
            known_hosts: None,
            cache_dir: None,
            depth: Some(1),
            ignore: None,
            limits: GitLimits::default(),
            last: Mutex::new(None),
        })
    }

    /// The URL as fetched (never carries credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// HTTP basic authentication.
    pub fn with_basic_auth(mut self, username: &str, password: &str) -> Self {
        self.auth = Auth::Basic {
            username: username.to_string(),
            password: password.to_string(),
        };
        self
    }

    /// HTTP bearer-token authentication (`Authorization: Bearer <token>`).
    pub fn with_bearer_token(mut self, token: &str) -> Self {
        self.auth = Auth::Bearer(token.to_string());
        self
    }

    /// Trust the PEM certificates in `ca_file` for https, in addition to the
    /// system roots.
    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }

    /// For ssh: the private deploy key and the `known_hosts` file that pins
    /// the server's host key. A host key that does not match is an error.
    pub fn with_ssh_key(
        mut self,
        identity_file: impl Into<PathBuf>,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        self.ssh_identity = Some(identity_file.into());
        self.known_hosts = Some(known_hosts.into());
        self
    }

    /// Keep the bare cache repository under `dir` (one subfolder per URL),
    /// so later fetches transfer only what changed.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Fetch depth: `Some(n)` for a shallow fetch of `n` commits (default 1),
    /// `None` for full history.
    pub fn with_depth(mut self, depth: Option<u32>) -> Self {
        self.depth = depth.filter(|d| *d > 0);
        self
    }

    /// Extra ignore patterns applied after the `.sourceignore` files, like
    /// Flux's `spec.ignore`.
    pub fn with_ignore(mut self, patterns: &str) -> Self {
        self.ignore = Some(patterns.to_string());
        self
    }

    /// Replaces the read limits (see [`GitLimits`]).
    pub fn with_limits(mut self, limits: GitLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The read limits in force.
    pub fn limits(&self) -> GitLimits {
        self.limits
    }

    fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            Auth::None => vec![],
            Auth::Basic { password, .. } => vec![password.as_str()],
            Auth::Bearer(t) => vec![t.as_str()],
        }
    }

    /// Removes credentials from a message.
    fn scrub(&self, msg: String) -> String {
        let mut out = msg;
        for s in self.secrets() {
            if !s.is_empty() {
                out = out.replace(s, "<redacted>");
            }
        }
        out
    }

    fn transport_err(&self, what: &str, e: impl std::error::Error) -> SourceError {
        SourceError::Transport {
            message: self.scrub(format!("{what} {}: {}", self.url, error_chain(&e))),
            retryable: true,
        }
    }

    fn repo_path(&self) -> (PathBuf, bool) {
        let key: String = {
            use sha2::{Digest, Sha256};
            let d = Sha256::digest(self.url.as_bytes());
            d.iter().take(12).map(|b| format!("{b:02x}")).collect()
        };
        match &self.cache_dir {
            Some(dir) => (dir.join(key), false),
            None => {
                let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
                (
                    std::env::temp_dir()
                        .join(format!("driftless-git-{}-{n}-{key}", std::process::id())),
                    true,
                )
            }
        }
    }

    /// Opens (creating if needed) the bare cache repository at `path`,
    /// speaking git protocol `version` to the remote.
    fn open_repo(&self, path: &Path, version: u8) -> Result<gix::Repository, SourceError> {
        let io = |e: &dyn std::fmt::Display| SourceError::Io {
            path: path.display().to_string(),
            message: format!("{e}"),
        };
        if !path.join("HEAD").exists() {
            std::fs::create_dir_all(path).map_err(|e| io(&e))?;
            gix::init_bare(path).map_err(|e| io(&e))?;
        }
        let mut overrides: Vec<String> = vec![format!("protocol.version={version}")];
        if self.kind == UrlKind::Ssh {
            overrides.push(format!("core.sshCommand={}", self.ssh_command()?));
            overrides.push("ssh.variant=ssh".into());
        }
        gix::open_opts(
            path,
            gix::open::Options::isolated().config_overrides(overrides),
        )
        .map_err(|e| io(&e))
    }

    fn ssh_command(&self) -> Result<String, SourceError> {
        let q = |p: &Path| -> Result<String, SourceError> {
            let s = p.to_str().ok_or_else(|| {
                SourceError::Invalid(format!("path {} is not UTF-8", p.display()))
            })?;
            Ok(format!("'{}'", s.replace('\'', "'\\''")))
        };
        let mut cmd = String::from(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o LogLevel=ERROR",
        );
        match &self.known_hosts {
            Some(kh) => cmd.push_str(&format!(
                " -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
                q(kh)?
            )),
            None => {
                return Err(SourceError::Invalid(
                    "ssh URLs need a known_hosts file (with_ssh_key): host keys are never trusted on first use".into(),
                ))
            }
        }
        if let Some(id) = &self.ssh_identity {
            cmd.push_str(&format!(" -o IdentitiesOnly=yes -i {}", q(id)?));
        }
        Ok(cmd)
    }

    /// Fetches `reference` and reads its tree, synchronously, without
    /// checking signatures (the read limits apply; see [`GitLimits`]).
    pub fn fetch_blocking(&self, reference: &GitRef) -> Result<Snapshot, SourceError> {
        let request = FetchRequest::new(reference.clone());
        match self.fetch_verified_blocking(&request, &NoVerification) {
            Ok(v) => Ok(v.into_inner()),
            Err(FetchError::Source(e)) => Err(e),
            // NoVerification refuses nothing
            Err(e @ FetchError::Verify(_)) => Err(SourceError::Invalid(e.to_string())),
        }
    }

    /// Fetches `request.reference`, has `verifier` check the commit (and
    /// the annotated tag, and the commits since `request.last_applied` when
    /// the verifier [needs them](Verifier::needs_history)), and only then
    /// reads the tree, within the [`GitLimits`]. Synchronous.
    pub fn fetch_verified_blocking(
        &self,
        request: &FetchRequest,
        verifier: &dyn Verifier,
    ) -> Result<Verified<Snapshot>, FetchError> {
        let (path, temporary) = self.repo_path();
        let result = self.fetch_in(&path, request, verifier);
        if temporary {
            let _ = std::fs::remove_dir_all(&path);
        }
        result
    }
}

type HttpOptions = gix::protocol::transport::client::blocking_io::http::Options;

/// The cache repository opened to speak one git protocol version.
struct CacheRepo<'a> {
    repo: &'a gix::Repository,
    path: &'a Path,
    /// `protocol.version` the repository was opened with.
    version: u8,
}

/// The remote tip of a resolved reference.
struct Target {
    /// Full ref name (`refs/heads/main`), if resolved through a ref.
    name: Option<String>,
    /// What the ref points to: a commit or an annotated tag object.
    tip: gix::ObjectId,
    /// Write the full ref name in the revision (Flux does for `name` refs).
    absolute: bool,
}

impl Target {
    fn revision(&self, commit: &str) -> Revision {
        match &self.name {
            None => Revision::commit(commit),
            Some(full) if self.absolute => Revision::named(full, commit),
            Some(full) => {
                // Flux: the part after `refs/<kind>/`, i.e. SplitAfterN(ref, "/", 3)[2].
                let mut it = full.splitn(3, '/');
                match (it.next(), it.next(), it.next()) {
                    (Some(_), Some(_), Some(short)) => Revision::named(short, commit),
                    _ => Revision::commit(commit),
                }
            }
        }
    }
}

/// What to resolve, after applying Flux's precedence.
enum Plan {
    Commit { id: String, branch: Option<String> },
    Ref { full: String, absolute: bool },
    Semver(String),
}

impl Plan {
    fn from_ref(r: &GitRef) -> Result<Plan, SourceError> {
        let nonempty = |o: &Option<String>| o.as_ref().filter(|s| !s.is_empty()).cloned();
        if let Some(c) = nonempty(&r.commit) {
            let c = c.to_ascii_lowercase();
            if c.len() != 40 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SourceError::Invalid(format!(
                    "commit {c:?} is not a full 40-digit hex SHA-1"
                )));
            }
            return Ok(Plan::Commit {
                id: c,
                branch: nonempty(&r.branch),
            });
        }
        if let Some(n) = nonempty(&r.name) {
            if !n.starts_with("refs/") {
                return Err(SourceError::Invalid(format!(
                    "ref name {n:?} must be a full name starting with refs/"
                )));
            }
            check_ref_name(&n)?;
            return Ok(Plan::Ref {
                full: n,
                absolute: true,
            });
        }
        if let Some(s) = nonempty(&r.semver) {
            return Ok(Plan::Semver(s));
        }
        if let Some(t) = nonempty(&r.tag) {
            let full = format!("refs/tags/{t}");
            check_ref_name(&full)?;
            return Ok(Plan::Ref {
                full,
                absolute: false,
            });
        }
        let b = nonempty(&r.branch).unwrap_or_else(|| DEFAULT_BRANCH.to_string());
        let full = format!("refs/heads/{b}");
        check_ref_name(&full)?;
        Ok(Plan::Ref {
            full,
            absolute: false,
        })
    }
}

fn check_ref_name(full: &str) -> Result<(), SourceError> {
    let bad = full.contains("..")
        || full.contains(['*', '?', '[', '\\', ' ', '~', '^', ':'])
        || full.bytes().any(|b| b < 0x20 || b == 0x7f)
        || full.ends_with('/')
        || full.ends_with(".lock")
        || full.contains("//")
        || full.contains("@{");
    if bad {
        Err(SourceError::Invalid(format!("invalid ref name {full:?}")))
    } else {
        Ok(())
    }
}

/// Where a remote ref is kept in the cache repository.
fn local_name(full: &str) -> String {
    format!("refs/driftless/{}", full.trim_start_matches("refs/"))
}

/// Parses a tag name as a version the way Flux (Masterminds semver) does:
/// an optional `v`, and missing minor or patch numbers filled with 0.
fn parse_version(tag: &str) -> Option<semver::Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    // 1 or 1.2, possibly with -pre/+build
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    semver::Version::parse(&format!("{full}{rest}")).ok()
}

/// Parses a Masterminds-style constraint (`>=1.0.0 <2.0.0 || ~3`, commas
/// or spaces between comparators, `v` prefixes allowed) into alternatives.
fn parse_range(range: &str) -> Result<Vec<semver::VersionReq>, SourceError> {
    let bad = |why: String| SourceError::Invalid(format!("semver range {range:?}: {why}"));
    let mut alts = Vec::new();
    for alt in range.split("||") {
        let mut comps: Vec<String> = Vec::new();
        let mut pending_op = String::new();
        for tok in alt.split([' ', ',']).filter(|t| !t.is_empty()) {
            if tok.chars().all(|c| "<>=!~^".contains(c)) {
                pending_op.push_str(tok);
                continue;
            }
            let tok = format!("{pending_op}{tok}");
            pending_op.clear();
            let op_end = tok
                .find(|c: char| !"<>=!~^".contains(c))
                .unwrap_or(tok.len());
            let (op, ver) = tok.split_at(op_end);
            let ver = ver.strip_prefix('v').unwrap_or(ver);
            if op == "!=" {
                return Err(bad("!= is not supported".into()));
            }
            // Masterminds: a bare version means equality (`1.2.3` is `=1.2.3`).
            let op = if op.is_empty() && !ver.contains(['x', 'X', '*']) {
                "="
            } else {
                op
            };
            comps.push(format!("{op}{ver}"));
        }
        if !pending_op.is_empty() {
            return Err(bad(format!("dangling operator {pending_op:?}")));
        }
        if comps.is_empty() {
            comps.push("*".into());
        }
        let req = semver::VersionReq::parse(&comps.join(", ")).map_err(|e| bad(e.to_string()))?;
        alts.push(req);
    }
    Ok(alts)
}

/// Picks the highest tag matching `range`.
fn pick_semver<'a>(
    range: &str,
    tags: impl Iterator<Item = &'a str>,
) -> Result<(String, semver::Version), SourceError> {
    let reqs = parse_range(range)?;
    let mut best: Option<(String, semver::Version)> = None;
    for t in tags {
        let Some(v) = parse_version(t) else { continue };
        if !reqs.iter().any(|r| r.matches(&v)) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bt, bv)) => v > *bv || (v == *bv && t < bt.as_str()),
        };
        if better {
            best = Some((t.to_string(), v));
        }
    }
    best.ok_or_else(|| SourceError::RefNotFound(format!("no tag matches semver range {range:?}")))
}

impl GitSource {
    fn transport_options(
        &self,
        repo: &gix::Repository,
    ) -> Result<Option<Box<dyn std::any::Any>>, SourceError> {
        if self.kind != UrlKind::Http {
            return Ok(None);
        }
        let mut opts: HttpOptions = repo
            .transport_options(self.url.as_str(), None)
            .map_err(|e| self.transport_err("configuring transport for", e))?
            .and_then(|b| b.downcast::<HttpOptions>().ok().map(|b| *b))
            .unwrap_or_default();
        if let Auth::Bearer(token) = &self.auth {
            opts.extra_headers
                .push(format!("Authorization: Bearer {token}"));
        }
        let mut certs: Option<Vec<reqwest::Certificate>> = None;
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| SourceError::Io {
                path: ca.display().to_string(),
                message: e.to_string(),
            })?;
            let parsed =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SourceError::Io {
                    path: ca.display().to_string(),
                    message: format!("not a PEM certificate bundle: {e}"),
                })?;
            if parsed.is_empty() {
                return Err(SourceError::Io {
                    path: ca.display().to_string(),
                    message: "no certificate in the file".into(),
                });
            }
            certs = Some(parsed);
        }
        let plain_http = self.url.starts_with("http://");
        if certs.is_some() || plain_http {
            let backend = gix::protocol::transport::client::blocking_io::http::reqwest::Options {
                configure_client: Some(Box::new(move |mut b: reqwest::blocking::ClientBuilder| {
                    match &certs {
                        Some(certs) => {
                            for c in certs {
                                b = b.add_root_certificate(c.clone());
                            }
                        }
                        // Plain http needs no TLS: skip loading the
                        // platform's root store, which costs tens of ms
                        // per fetch.
                        None => b = b.tls_certs_only(Vec::new()),
                    }
                    Ok(b)
                })),
                configure_request: None,
            };
            opts.backend = Some(Arc::new(Mutex::new(backend)));
        }
        Ok(Some(Box::new(opts)))
    }

    /// The remote for this source's URL with `specs` as fetch refspecs and
    /// no tag following.
    fn remote<'repo, 's>(
        &self,
        repo: &'repo gix::Repository,
        specs: impl IntoIterator<Item = &'s str>,
    ) -> Result<gix::Remote<'repo>, SourceError> {
        repo.remote_at(self.url.as_str())
            .map_err(|e| {
                SourceError::Invalid(self.scrub(format!("invalid URL {}: {e}", self.url)))
            })?
            .with_fetch_tags(gix::remote::fetch::Tags::None)
            .with_refspecs(specs, Direction::Fetch)
            .map_err(|e| SourceError::Invalid(format!("invalid ref spec: {e}")))
    }

    /// Connects to `remote` with this source's transport options and
    /// credentials (basic auth is answered from memory, never a helper).
    fn connect<'remote, 'repo>(
        &self,
        repo: &'repo gix::Repository,
        remote: &'remote gix::Remote<'repo>,
    ) -> Result<GitConnection<'remote, 'repo>, SourceError> {
        let mut conn = remote
            .connect(Direction::Fetch)
            .map_err(|e| self.transport_err("connecting to", e))?;
        if let Some(opts) = self.transport_options(repo)? {
            conn = conn.with_transport_options(opts);
        }
        let auth = self.auth.clone();
        Ok(conn.with_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(ctx) => match &auth {
                Auth::Basic { username, password } => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: username.clone(),
                            password: password.clone(),
                            oauth_refresh_token: None,
                        },
                        next: ctx.into(),
                    }))
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        }))
    }

    /// Connects with `specs`, lists the matching refs and, unless `want`'s
    /// target is already in the cache, receives a pack. Returns the tip of
    /// `want` (None if the remote lacks it).
    ///
    /// Packs are received over protocol v2 only: when the refs were looked
    /// up over v1 and a pack is needed, the fetch is redone over v2. (gix
    /// 0.90 announces `deepen-relative` in v1 whenever the server has it,
    /// which turns a shallow fetch into a fetch of the whole history.)
    fn fetch_specs(
        &self,
        cache: &CacheRepo<'_>,
        specs: &[String],
        want: Option<&str>,
        depth: Option<u32>,
    ) -> Result<Option<gix::ObjectId>, SourceError> {
        let repo = cache.repo;
        let remote = self.remote(repo, specs.iter().map(|s| s.as_str()))?;
        let conn = self.connect(repo, &remote)?;
        let prepare = conn
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.transport_err("listing refs of", e))?;
        let tip = match want {
            Some(name) => {
                let found = prepare.ref_map().remote_refs.iter().find_map(|r| {
                    let (n, target, _peeled) = r.unpack();
                    (n == name.as_bytes()).then(|| target.map(|t| t.to_owned()))
                });
                match found {
                    Some(Some(t)) => Some(t),
                    _ => return Ok(None),
                }
            }
            None => None,
        };
        // a fetch of the whole history (`depth` None) into a shallow cache
        // must deepen it, even when the tip is there
        let unshallow = depth.is_none() && self.is_shallow(repo)?;
        if let Some(t) = tip {
            if repo.has_object(t) && !unshallow {
                tracing::debug!(tip = %t, "git: target already cached, no pack transferred");
                return Ok(Some(t));
            }
        }
        if cache.version != 2 {
            drop(prepare);
            let repo2 = self.open_repo(cache.path, 2)?;
            let cache2 = CacheRepo {
                repo: &repo2,
                path: cache.path,
                version: 2,
            };
            return self.fetch_specs(&cache2, specs, want, depth);
        }
        let mut prepare = prepare;
        if let Some(d) = depth.and_then(std::num::NonZeroU32::new) {
            prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(d));
        } else if unshallow {
            prepare = prepare.with_shallow(gix::remote::fetch::Shallow::undo());
        }
        let interrupt = AtomicBool::new(false);
        prepare
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| self.transport_err("fetching from", e))?;
        Ok(tip)
    }

    /// True when the cache repository holds a shallow history.
    fn is_shallow(&self, repo: &gix::Repository) -> Result<bool, SourceError> {
        repo.is_shallow().map_err(|e| SourceError::Io {
            path: repo.path().display().to_string(),
            message: format!("reading the shallow file: {e}"),
        })
    }

    /// Lists the remote's tags.
    fn list_tags(&self, repo: &gix::Repository) -> Result<Vec<String>, SourceError> {
        let remote = self.remote(repo, ["+refs/tags/*:refs/driftless/tags/*"])?;
        let conn = self.connect(repo, &remote)?;
        let (map, _) = conn
            .ref_map(gix::progress::Discard, Default::default())
            .map_err(|e| self.transport_err("listing tags of", e))?;
        let mut tags: Vec<String> = map
            .remote_refs
            .iter()
            .filter_map(|r| {
                let (n, _, _) = r.unpack();
                n.to_str()
                    .ok()?
                    .strip_prefix("refs/tags/")
                    .map(str::to_string)
            })
            .filter(|n| !n.ends_with("^{}"))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// The git protocol version to look refs up with for `plan`.
    ///
    /// Over http(s), refs are looked up with protocol v1 (as go-git, and so
    /// Flux, does): its `GET info/refs` advertisement already lists the refs,
    /// so checking an unchanged remote is one request, where v2 needs a
    /// second one (`POST` `ls-refs`). Packs are always received over v2
    /// (see [`GitSource::fetch_specs`]). Fetching a commit by id is v2
    /// throughout: v2 servers hand out any object they have, v1 servers by
    /// default only advertised tips. Over file:// and ssh the connection is
    /// one stateful session either way, so v2 (with its filtered ref
    /// listing) is kept.
    fn lookup_version(&self, plan: &Plan) -> u8 {
        match (self.kind, plan) {
            (UrlKind::Http, Plan::Ref { .. } | Plan::Semver(_)) => 1,
            _ => 2,
        }
    }

    fn fetch_in(
        &self,
        path: &Path,
        request: &FetchRequest,
        verifier: &dyn Verifier,
    ) -> Result<Verified<Snapshot>, FetchError> {
        let reference = &request.reference;
        let want_history = verifier.needs_history();
        // the commits since the last applied one need the history: no
        // shallow fetch then
        let depth = if want_history { None } else { self.depth };
        if self.url.starts_with("http://") && !matches!(self.auth, Auth::None) {
            return Err(SourceError::Invalid(format!(
                "refusing to send credentials in clear text to {}: use https",
                self.url
            ))
            .into());
        }
        let plan = Plan::from_ref(reference)?;
        let version = self.lookup_version(&plan);
        let repo = self.open_repo(path, version)?;
        let cache = CacheRepo {
            repo: &repo,
            path,
            version,
        };
        let target = match plan {
            Plan::Commit { id, branch } => {
                let oid = gix::ObjectId::from_hex(id.as_bytes()).map_err(|_| {
                    SourceError::Invalid(format!("commit {id:?} is not a 40-digit hex SHA-1"))
                })?;
                if !repo.has_object(oid) {
                    let direct = self.fetch_specs(&cache, std::slice::from_ref(&id), None, depth);
                    if direct.is_err() || !repo.has_object(oid) {
                        // The server refused a fetch by id: fetch the branch's history.
                        let full =
                            format!("refs/heads/{}", branch.as_deref().unwrap_or(DEFAULT_BRANCH));
                        let spec = format!("+{full}:{}", local_name(&full));
                        let tip = self.fetch_specs(&cache, &[spec], Some(&full), None)?;
                        if tip.is_none() {
                            direct?;
                            return Err(SourceError::RefNotFound(full).into());
                        }
                    }
                    if !repo.has_object(oid) {
                        return Err(SourceError::RefNotFound(format!("commit {id}")).into());
                    }
                } else if want_history && self.is_shallow(&repo)? {
                    self.fetch_specs(&cache, std::slice::from_ref(&id), None, None)?;
                }
                Target {
                    name: branch.map(|b| format!("refs/heads/{b}")),
                    tip: oid,
                    absolute: false,
                }
            }
            Plan::Ref { full, absolute } => {
                let spec = format!("+{full}:{}", local_name(&full));
                let tip = self
                    .fetch_specs(&cache, &[spec], Some(&full), depth)?
                    .ok_or_else(|| SourceError::RefNotFound(full.clone()))?;
                Target {
                    name: Some(full),
                    tip,
                    absolute,
                }
            }
            Plan::Semver(range) => {
                let tags = self.list_tags(&repo)?;
                let (tag, _) = pick_semver(&range, tags.iter().map(String::as_str))?;
                let full = format!("refs/tags/{tag}");
                let spec = format!("+{full}:{}", local_name(&full));
                let tip = self
                    .fetch_specs(&cache, &[spec], Some(&full), depth)?
                    .ok_or_else(|| SourceError::RefNotFound(full.clone()))?;
                Target {
                    name: Some(full),
                    tip,
                    absolute: false,
                }
            }
        };

        let tip_hex = target.tip.to_string();
        let (mut head, tree_id) = self.read_head(&repo, &target)?;
        if want_history {
            let commit = head
                .commit
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default();
            head.history = Some(self.history(&repo, &commit, request.last_applied.as_deref())?);
        }
        // the signature is checked before a single blob is read
        let revision = head.revision.clone();
        let verified =
            Verified::check(head, verifier).map_err(|e| FetchError::refused(&revision, e))?;
        let cached = self.last.lock().ok().and_then(|g| g.clone());
        let tree = match cached {
            Some(c) if c.tip == tip_hex => {
                tracing::debug!(revision = %verified.revision, "git: unchanged, reusing the tree");
                c.tree.clone()
            }
            _ => {
                let mut tree = self.read_tree(&repo, tree_id)?;
                let rules = IgnoreRules::from_tree(&tree);
                let rules = match &self.ignore {
                    Some(extra) => rules.with_extra(extra),
                    None => rules,
                };
                rules.apply(&mut tree);
                if let Ok(mut guard) = self.last.lock() {
                    *guard = Some(Arc::new(Cached {
                        tip: tip_hex,
                        tree: tree.clone(),
                    }));
                }
                tree
            }
        };
        Ok(verified.with_tree(tree))
    }

    /// Reads what a signature check needs: the tag chain from the target
    /// and the commit, as a snapshot with an empty tree, and the commit's
    /// tree id. A tag ref whose annotated tag object names another tag is
    /// refused (a new ref pointed at an old signed tag would otherwise pass
    /// for the version in its name).
    fn read_head(
        &self,
        repo: &gix::Repository,
        target: &Target,
    ) -> Result<(Snapshot, gix::ObjectId), SourceError> {
        let obj_err = |id: &gix::ObjectId, e: &dyn std::fmt::Display| SourceError::Io {
            path: self.url.clone(),
            message: format!("object {id}: {e}"),
        };
        let mut id = target.tip;
        let mut tag: Option<TagInfo> = None;
        let mut hops = 0;
        let commit_id = loop {
            let kind = self.small_object_kind(repo, id)?;
            match kind {
                gix::object::Kind::Commit => break id,
                gix::object::Kind::Tag => {
                    let obj = repo.find_object(id).map_err(|e| obj_err(&id, &e))?;
                    let (info, next) =
                        parse_tag(&obj.data, &id.to_string()).map_err(|e| obj_err(&id, &e))?;
                    if tag.is_none() {
                        if let Some(short) = target
                            .name
                            .as_deref()
                            .and_then(|n| n.strip_prefix("refs/tags/"))
                        {
                            if info.name != short {
                                return Err(SourceError::Invalid(format!(
                                    "ref refs/tags/{short} of {} points to annotated tag {id}, whose tag header names {:?}: refusing a tag ref moved onto another tag's object",
                                    self.url, info.name
                                )));
                            }
                        }
                        tag = Some(info);
                    }
                    id = next;
                }
                other => {
                    return Err(obj_err(&id, &format!("is a {other}, not a commit")));
                }
            }
            hops += 1;
            if hops > 16 {
                return Err(obj_err(&id, &"too many nested tags"));
            }
        };
        let commit_obj = repo
            .find_object(commit_id)
            .map_err(|e| obj_err(&commit_id, &e))?;
        let (commit, tree_id) = parse_commit(&commit_obj.data, &commit_id.to_string())
            .map_err(|e| obj_err(&commit_id, &e))?;
        Ok((
            Snapshot {
                revision: target.revision(&commit.id),
                commit: Some(commit),
                tag,
                tree: Tree::new(),
                history: None,
            },
            tree_id,
        ))
    }

    /// The kind of a commit or tag object, refusing one larger than a file
    /// may be before it is read.
    fn small_object_kind(
        &self,
        repo: &gix::Repository,
        id: gix::ObjectId,
    ) -> Result<gix::object::Kind, SourceError> {
        let header = repo.find_header(id).map_err(|e| SourceError::Io {
            path: self.url.clone(),
            message: format!("object {id}: {e}"),
        })?;
        if header.size() > self.limits.max_file_bytes {
            return Err(SourceError::Io {
                path: self.url.clone(),
                message: format!(
                    "{} {id} is {} bytes, more than the limit of {} bytes",
                    header.kind(),
                    header.size(),
                    self.limits.max_file_bytes
                ),
            });
        }
        Ok(header.kind())
    }

    /// The commits reachable from `head` and not from `since` (`git
    /// rev-list since..head`), head first; the head alone when nothing
    /// was applied yet.
    fn history(
        &self,
        repo: &gix::Repository,
        head: &str,
        since: Option<&str>,
    ) -> Result<History, SourceError> {
        let bad = |m: String| SourceError::Io {
            path: self.url.clone(),
            message: m,
        };
        let head_id = gix::ObjectId::from_hex(head.as_bytes())
            .map_err(|e| bad(format!("commit {head:?}: {e}")))?;
        let read = |id: gix::ObjectId| -> Result<CommitInfo, SourceError> {
            if self.small_object_kind(repo, id)? != gix::object::Kind::Commit {
                return Err(bad(format!("object {id} is not a commit")));
            }
            let obj = repo
                .find_object(id)
                .map_err(|e| bad(format!("commit {id}: {e}")))?;
            parse_commit(&obj.data, &id.to_string())
                .map(|(c, _)| c)
                .map_err(|e| bad(format!("commit {id}: {e}")))
        };
        let Some(since) = since else {
            return Ok(History {
                since: None,
                commits: vec![read(head_id)?],
            });
        };
        let hex = match since.parse::<Revision>() {
            Ok(r) => r.hash,
            Err(_) => since.to_ascii_lowercase(),
        };
        let since_id = gix::ObjectId::from_hex(hex.as_bytes()).map_err(|_| {
            SourceError::Invalid(format!(
                "last applied revision {since:?} is not a commit id or a revision"
            ))
        })?;
        if !repo.has_object(since_id) {
            return Err(SourceError::RefNotFound(format!(
                "the last applied commit {hex} is not in the history fetched from {}, so the commits since cannot be listed (was the branch rewritten?)",
                self.url
            )));
        }
        let walk = repo
            .rev_walk([head_id])
            .with_hidden([since_id])
            .all()
            .map_err(|e| bad(format!("walking the history from {head}: {e}")))?;
        let mut commits = Vec::new();
        for info in walk {
            let info = info.map_err(|e| bad(format!("walking the history from {head}: {e}")))?;
            if commits.len() >= self.limits.max_history {
                return Err(bad(format!(
                    "more than {} commits between the last applied commit {hex} and {head}",
                    self.limits.max_history
                )));
            }
            commits.push(read(info.id)?);
        }
        Ok(History {
            since: Some(hex),
            commits,
        })
    }

    /// Reads the tree `root` into a [`Tree`], iteratively (no recursion,
    /// each tree object read once, each path built once from its parent's),
    /// checking every object's size from its header before reading it.
    fn read_tree(&self, repo: &gix::Repository, root: gix::ObjectId) -> Result<Tree, SourceError> {
        let limits = &self.limits;
        let mut out = Tree::new();
        let mut budget = Budget {
            limits,
            bytes: 0,
            entries: 0,
        };
        let shown = |path: &str| {
            if path.is_empty() {
                "/".to_string()
            } else {
                path.to_string()
            }
        };
        let mut stack: Vec<(gix::ObjectId, String, usize)> = vec![(root, String::new(), 0)];
        while let Some((id, prefix, depth)) = stack.pop() {
            let err = |path: &str, e: &dyn std::fmt::Display| SourceError::Io {
                path: shown(path),
                message: format!("tree {id}: {e}"),
            };
            let header = repo.find_header(id).map_err(|e| err(&prefix, &e))?;
            budget.take(&prefix, header.size(), false)?;
            let tree = repo.find_tree(id).map_err(|e| err(&prefix, &e))?;
            let decoded = tree.decode().map_err(|e| err(&prefix, &e))?;
            for entry in &decoded.entries {
                let name = entry.filename.to_str().map_err(|_| {
                    err(
                        &prefix,
                        &format!("file name {:?} is not UTF-8", entry.filename),
                    )
                })?;
                let mut path = String::with_capacity(prefix.len() + 1 + name.len());
                path.push_str(&prefix);
                if !prefix.is_empty() {
                    path.push('/');
                }
                path.push_str(name);
                let oid = entry.oid.to_owned();
                let mode = entry.mode;
                if mode.is_commit() {
                    // submodules are skipped, as Flux does by default
                    continue;
                }
                budget.entry(&path)?;
                if mode.is_tree() {
                    if depth + 1 > limits.max_depth {
                        return Err(SourceError::Io {
                            path,
                            message: format!(
                                "folders nest deeper than {} levels (git's core.maxTreeDepth)",
                                limits.max_depth
                            ),
                        });
                    }
                    stack.push((oid, path, depth + 1));
                    continue;
                }
                let header = repo.find_header(oid).map_err(|e| err(&path, &e))?;
                budget.take(&path, header.size(), true)?;
                let blob = repo.find_object(oid).map_err(|e| err(&path, &e))?;
                if mode.is_link() {
                    let target = std::str::from_utf8(&blob.data)
                        .map_err(|_| err(&path, &"symlink target is not UTF-8"))?;
                    out.insert_symlink(&path, target)?;
                } else {
                    out.insert_file(&path, blob.data.as_slice())?;
                }
            }
        }
        Ok(out)
    }
}

/// What a tree read has used of the [`GitLimits`].
struct Budget<'a> {
    limits: &'a GitLimits,
    bytes: u64,
    entries: u64,
}

impl Budget<'_> {
    /// Counts an entry and its path.
    fn entry(&mut self, path: &str) -> Result<(), SourceError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(SourceError::Io {
                path: path.to_string(),
                message: format!("the tree has more than {} entries", self.limits.max_entries),
            });
        }
        self.take(path, path.len() as u64, false)
    }

    /// Counts `size` bytes for `path`; a file must also fit `max_file_bytes`.
    fn take(&mut self, path: &str, size: u64, file: bool) -> Result<(), SourceError> {
        let shown = if path.is_empty() { "/" } else { path };
        if file && size > self.limits.max_file_bytes {
            return Err(SourceError::Io {
                path: shown.to_string(),
                message: format!(
                    "file is {size} bytes, more than the limit of {} bytes",
                    self.limits.max_file_bytes
                ),
            });
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_tree_bytes {
            return Err(SourceError::Io {
                path: shown.to_string(),
                message: format!(
                    "the tree holds more than {} bytes (files, folders and paths) when this entry is read",
                    self.limits.max_tree_bytes
                ),
            });
        }
        Ok(())
    }
}

/// An error and its causes, `: `-separated, without repeats.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(c) = cur {
        let m = c.to_string();
        if parts.last() != Some(&m) {
            parts.push(m);
        }
        cur = c.source();
        depth += 1;
        if depth > 16 {
            break;
        }
    }
    parts.join(": ")
}

/// Splits a commit object into the signed payload and the `gpgsig` signature,
/// as git does (`gpgsig` and `gpgsig-sha256` headers are removed from the payload).
pub fn split_commit_signature(raw: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut payload = Vec::with_capacity(raw.len());
    let mut sig: Option<Vec<u8>> = None;
    let mut in_sig = false;
    let mut in_other_sig = false;
    let mut rest = raw;
    let mut in_header = true;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if !in_header {
            payload.extend_from_slice(line);
            continue;
        }
        if line == b"\n" {
            in_header = false;
            in_sig = false;
            in_other_sig = false;
            payload.extend_from_slice(line);
            continue;
        }
        if let Some(cont) = line.strip_prefix(b" ") {
            if in_sig {
                if let Some(s) = sig.as_mut() {
                    s.extend_from_slice(cont);
                }
                continue;
            }
            if in_other_sig {
                continue;
            }
            payload.extend_from_slice(line);
            continue;
        }
        in_sig = false;
        in_other_sig = false;
        if let Some(v) = line.strip_prefix(b"gpgsig ") {
            if sig.is_none() {
                sig = Some(v.to_vec());
                in_sig = true;
            } else {
                in_other_sig = true;
            }
            continue;
        }
        if line.starts_with(b"gpgsig-sha256 ") {
            in_other_sig = true;
            continue;
        }
        payload.extend_from_slice(line);
    }
    (payload, sig)
}

/// Splits a tag object into its payload and the signature appended to its
/// message (from the last line that starts a PGP, SSH or X.509 signature).
pub fn split_tag_signature(raw: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    const STARTS: [&[u8]; 4] = [
        b"-----BEGIN PGP SIGNATURE-----",
        b"-----BEGIN PGP MESSAGE-----",
        b"-----BEGIN SSH SIGNATURE-----",
        b"-----BEGIN SIGNED MESSAGE-----",
    ];
    let mut pos = 0;
    let mut found: Option<usize> = None;
    while pos < raw.len() {
        let line = &raw[pos..];
        if STARTS.iter().any(|s| line.starts_with(s)) {
            found = Some(pos);
        }
        match line.iter().position(|b| *b == b'\n') {
            Some(i) => pos += i + 1,
            None => break,
        }
    }
    match found {
        Some(i) => (raw[..i].to_vec(), Some(raw[i..].to_vec())),
        None => (raw.to_vec(), None),
    }
}

fn header_value<'a>(raw: &'a [u8], key: &str) -> Option<&'a str> {
    let mut prefix = key.as_bytes().to_vec();
    prefix.push(b' ');
    for line in raw.split(|b| *b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix(prefix.as_slice()) {
            return std::str::from_utf8(v).ok();
        }
    }
    None
}

/// The seconds-since-epoch of an ident line (`Name <email> 1700000000 +0000`).
fn ident_time(ident: &str) -> Option<i64> {
    let after = ident.rsplit_once('>')?.1;
    after.split_whitespace().next()?.parse().ok()
}

/// A commit object's [`CommitInfo`], for checks outside a fetch (the image
/// automation verifies the head it builds on).
pub(crate) fn commit_info(raw: &[u8], id: &str) -> Result<CommitInfo, String> {
    parse_commit(raw, id).map(|(c, _)| c)
}

fn parse_commit(raw: &[u8], id: &str) -> Result<(CommitInfo, gix::ObjectId), String> {
    let tree_hex = header_value(raw, "tree").ok_or("commit has no tree header")?;
    let tree =
        gix::ObjectId::from_hex(tree_hex.as_bytes()).map_err(|e| format!("tree header: {e}"))?;
    let committer = header_value(raw, "committer").ok_or("commit has no committer header")?;
    let committer_time = ident_time(committer).ok_or("committer header has no time")?;
    let author = header_value(raw, "author")
        .and_then(|a| a.rsplit_once('>').map(|(n, _)| format!("{n}>")))
        .unwrap_or_default();
    let message = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| String::from_utf8_lossy(&raw[i + 2..]).into_owned())
        .unwrap_or_default();
    let (signed_payload, signature) = split_commit_signature(raw);
    Ok((
        CommitInfo {
            id: id.to_string(),
            signed_payload,
            signature,
            committer_time,
            author,
            message,
        },
        tree,
    ))
}

fn parse_tag(raw: &[u8], id: &str) -> Result<(TagInfo, gix::ObjectId), String> {
    let object = header_value(raw, "object").ok_or("tag has no object header")?;
    let object =
        gix::ObjectId::from_hex(object.as_bytes()).map_err(|e| format!("object header: {e}"))?;
    let name = header_value(raw, "tag")
        .ok_or("tag has no tag header")?
        .to_string();
    let tagger_time = header_value(raw, "tagger")
        .and_then(ident_time)
        .unwrap_or(0);
    let (signed_payload, signature) = split_tag_signature(raw);
    Ok((
        TagInfo {
            name,
            id: id.to_string(),
            signed_payload,
            signature,
            tagger_time,
        },
        object,
    ))
}

#[async_trait::async_trait]
impl Source for GitSource {
    /// Resolves `reference` on the remote and reads its tree. The gix work
    /// runs on the calling task (it is blocking I/O).
    async fn fetch(&self, reference: &GitRef) -> Result<Snapshot, SourceError> {
        self.fetch_blocking(reference)
    }

    /// Checks the signature before reading the tree (see
    /// [`GitSource::fetch_verified_blocking`]); blocking I/O on the calling
    /// task.
    async fn fetch_verified(
        &self,
        request: &FetchRequest,
        verifier: &dyn Verifier,
    ) -> Result<Verified<Snapshot>, FetchError> {
        self.fetch_verified_blocking(request, verifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_scp_and_passwords() {
        assert!(matches!(
            GitSource::new("git@github.com:org/repo.git"),
            Err(SourceError::Invalid(m)) if m.contains("scp")
        ));
        let err = GitSource::new("https://u:hunter2@example.com/r.git").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(GitSource::new("ftp://example.com/r").is_err());
        assert!(GitSource::new("ssh://git@example.com/r.git").is_ok());
        assert!(GitSource::new("/tmp/repo").is_ok());
    }

    #[test]
    fn debug_hides_credentials() {
        let s = GitSource::new("https://example.com/r.git")
            .unwrap()
            .with_basic_auth("bob", "s3cr3t-pass");
        let d = format!("{s:?}");
        assert!(!d.contains("s3cr3t-pass"), "{d}");
        let s = GitSource::new("https://example.com/r.git")
            .unwrap()
            .with_bearer_token("tok-123456");
        assert!(!format!("{s:?}").contains("tok-123456"));
    }

    #[test]
    fn precedence_follows_flux() {
        let r = GitRef {
            branch: Some("main".into()),
            tag: Some("v1".into()),
            semver: Some(">=1".into()),
            name: Some("refs/heads/x".into()),
            commit: Some("a".repeat(40)),
        };
        assert!(matches!(Plan::from_ref(&r), Ok(Plan::Commit { .. })));
        let r = GitRef { commit: None, ..r };
        assert!(matches!(
            Plan::from_ref(&r),
            Ok(Plan::Ref { absolute: true, .. })
        ));
        let r = GitRef { name: None, ..r };
        assert!(matches!(Plan::from_ref(&r), Ok(Plan::Semver(_))));
        let r = GitRef { semver: None, ..r };
        assert!(matches!(Plan::from_ref(&r), Ok(Plan::Ref { full, .. }) if full == "refs/tags/v1"));
        let r = GitRef { tag: None, ..r };
        assert!(
            matches!(Plan::from_ref(&r), Ok(Plan::Ref { full, .. }) if full == "refs/heads/main")
        );
        assert!(
            matches!(Plan::from_ref(&GitRef::default()), Ok(Plan::Ref { full, .. }) if full == "refs/heads/master")
        );
    }

    #[test]
    fn revisions_as_flux_writes_them() {
        let h = "0123456789abcdef0123456789abcdef01234567";
        let t = |name: Option<&str>, absolute| Target {
            name: name.map(str::to_string),
            tip: gix::ObjectId::null(gix::hash::Kind::Sha1),
            absolute,
        };
        assert_eq!(
            t(Some("refs/heads/main"), false).revision(h).to_string(),
            format!("main@sha1:{h}")
        );
        assert_eq!(
            t(Some("refs/heads/feat/x"), false).revision(h).to_string(),
            format!("feat/x@sha1:{h}")
        );
        assert_eq!(
            t(Some("refs/tags/v1.2.3"), false).revision(h).to_string(),
            format!("v1.2.3@sha1:{h}")
        );
        assert_eq!(
            t(Some("refs/heads/x"), true).revision(h).to_string(),
            format!("refs/heads/x@sha1:{h}")
        );
        assert_eq!(t(None, false).revision(h).to_string(), format!("sha1:{h}"));
    }

    #[test]
    fn semver_picks_highest_match() {
        let tags = [
            "v1.0.0",
            "v1.2.0",
            "1.10.1",
            "v2.0.0",
            "v2.1.0-rc.1",
            "latest",
            "v0.9",
        ];
        let pick = |r| pick_semver(r, tags.iter().copied()).map(|(t, _)| t);
        assert_eq!(pick(">=1.0.0 <2.0.0").unwrap(), "1.10.1");
        assert_eq!(pick("~1.2").unwrap(), "v1.2.0");
        assert_eq!(pick("*").unwrap(), "v2.0.0");
        assert_eq!(pick("<1.0.0").unwrap(), "v0.9");
        assert_eq!(pick(">=3 || <0.5 || 1.0.0").unwrap(), "v1.0.0");
        assert!(matches!(pick(">=5"), Err(SourceError::RefNotFound(_))));
        assert!(matches!(pick(">>1"), Err(SourceError::Invalid(_))));
    }

    #[test]
    fn splits_signatures_like_git() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 2 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\nmsg\n";
        let (payload, sig) = split_commit_signature(raw);
        assert_eq!(
            payload,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 2 +0000\n\nmsg\n"
        );
        assert_eq!(
            sig.unwrap(),
            b"-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n"
        );
        let tag = b"object 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntype commit\ntag v1\ntagger A <a@x> 5 +0000\n\nmsg\n-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n";
        let (payload, sig) = split_tag_signature(tag);
        assert!(payload.ends_with(b"msg\n"));
        assert!(sig.unwrap().starts_with(b"-----BEGIN PGP"));
    }
}
