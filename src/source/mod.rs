//! Where desired state comes from: the [`Source`] trait, [`Snapshot`] and [`Tree`].
//!
//! A `Source` resolves a reference (branch, tag, semver range, commit) to a
//! commit and reads its files into a [`Tree`]. The renderer reads files only
//! through the tree, so nothing outside it can ever be read.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::object::Revision;

pub mod dir;
#[cfg(feature = "git")]
pub mod git;
pub mod ignore;

pub use dir::DirSource;
#[cfg(feature = "git")]
pub use git::{GitLimits, GitSource};

/// One entry of a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file and its bytes.
    File(Arc<[u8]>),
    /// A symbolic link and its target as written in the link.
    Symlink(String),
}

/// Why a path could not be read from a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is absolute, or `..` climbs above the root.
    #[error("path {path:?} leaves the source root")]
    OutsideRoot {
        /// The offending path as given.
        path: String,
    },
    /// A symlink points outside the tree.
    #[error("symlink {link:?} points outside the source root (to {target:?})")]
    SymlinkOutsideRoot {
        /// The link's path in the tree.
        link: String,
        /// The link's target.
        target: String,
    },
    /// Symlinks form a loop or a chain longer than 40 links.
    #[error("too many levels of symbolic links at {path:?}")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// Nothing exists at the path.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The normalized path.
        path: String,
    },
    /// A file was expected but the path is a directory.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The normalized path.
        path: String,
    },
}

/// The files of one revision, keyed by `/`-separated paths relative to the
/// root (no leading `/`, no `.` or `..` components). Directories are
/// implicit: a directory exists when some entry lies beneath it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Joins `base` and `rel` and normalizes the result, refusing absolute paths
/// and `..` that climbs above the root. The empty string is the root.
pub fn join_path(base: &str, rel: &str) -> Result<String, PathError> {
    if rel.starts_with('/') || rel.contains('\\') && rel.starts_with("\\\\") {
        return Err(PathError::OutsideRoot {
            path: rel.to_string(),
        });
    }
    let mut parts: Vec<&str> = base
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::OutsideRoot {
                        path: if base.is_empty() {
                            rel.to_string()
                        } else {
                            format!("{base}/{rel}")
                        },
                    });
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// The parent directory of a normalized path (`a/b/c` → `a/b`, `a` → ``).
pub fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Adds a file. The path is normalized; paths leaving the root are refused.
    pub fn insert_file(
        &mut self,
        path: &str,
        bytes: impl Into<Arc<[u8]>>,
    ) -> Result<(), PathError> {
        let p = join_path("", path)?;
        self.entries.insert(p, Entry::File(bytes.into()));
        Ok(())
    }

    /// Adds a symlink with its target as written in the link.
    pub fn insert_symlink(&mut self, path: &str, target: &str) -> Result<(), PathError> {
        let p = join_path("", path)?;
        self.entries.insert(p, Entry::Symlink(target.to_string()));
        Ok(())
    }

    /// Removes an entry, returning it.
    pub fn remove(&mut self, path: &str) -> Option<Entry> {
        self.entries.remove(path)
    }

    /// Every entry in path order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the tree holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Follows symlinks in every component of `path` (already normalized),
    /// staying inside the tree.
    pub fn resolve(&self, path: &str) -> Result<String, PathError> {
        let mut hops = 0;
        let mut resolved = String::new();
        let mut rest: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .rev()
            .collect();
        while let Some(comp) = rest.pop() {
            let candidate = if resolved.is_empty() {
                comp.clone()
            } else {
                format!("{resolved}/{comp}")
            };
            match self.entries.get(&candidate) {
                Some(Entry::Symlink(target)) => {
                    hops += 1;
                    if hops > 40 {
                        return Err(PathError::SymlinkLoop {
                            path: path.to_string(),
                        });
                    }
                    let joined = join_path(&resolved, target).map_err(|_| {
                        PathError::SymlinkOutsideRoot {
                            link: candidate.clone(),
                            target: target.clone(),
                        }
                    })?;
                    // restart from the root with the link's target in front
                    for c in joined.split('/').filter(|p| !p.is_empty()).rev() {
                        rest.push(c.to_string());
                    }
                    resolved.clear();
                }
                _ => resolved = candidate,
            }
        }
        Ok(resolved)
    }

    /// Reads a file. Symlinks inside the tree are followed; a link out of it
    /// is an error.
    pub fn read(&self, path: &str) -> Result<&[u8], PathError> {
        let norm = join_path("", path)?;
        let real = self.resolve(&norm)?;
        match self.entries.get(&real) {
            Some(Entry::File(b)) => Ok(b),
            Some(Entry::Symlink(_)) => Err(PathError::SymlinkLoop { path: norm }),
            None if self.is_dir(&real) => Err(PathError::IsADirectory { path: norm }),
            None => Err(PathError::NotFound { path: norm }),
        }
    }

    /// True when `path` names a directory (after following symlinks).
    pub fn is_dir(&self, path: &str) -> bool {
        let Ok(norm) = join_path("", path) else {
            return false;
        };
        let Ok(real) = self.resolve(&norm) else {
            return false;
        };
        if real.is_empty() {
            return true;
        }
        let prefix = format!("{real}/");
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// True when `path` names a file (after following symlinks).
    pub fn is_file(&self, path: &str) -> bool {
        self.read(path).is_ok()
    }

    /// The names directly inside directory `path`, sorted, each once.
    /// Returns `(name, is_dir)` pairs; symlinks are reported as they resolve.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(String, bool)>, PathError> {
        let norm = join_path("", path)?;
        let real = self.resolve(&norm)?;
        if !self.is_dir(&real) {
            return Err(PathError::NotFound { path: norm });
        }
        let prefix = if real.is_empty() {
            String::new()
        } else {
            format!("{real}/")
        };
        let mut out: Vec<(String, bool)> = Vec::new();
        for (k, entry) in self.entries.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            let (name, nested) = match rest.split_once('/') {
                Some((n, _)) => (n, true),
                None => (rest, false),
            };
            if out.last().is_some_and(|(n, _)| n == name) {
                continue;
            }
            let is_dir = if nested {
                true
            } else {
                match entry {
                    Entry::File(_) => false,
                    Entry::Symlink(_) => {
                        let p = format!("{prefix}{name}");
                        self.is_dir(&p)
                    }
                }
            };
            out.push((name.to_string(), is_dir));
        }
        Ok(out)
    }
}

/// What is known of the commit a snapshot was taken at, for verification.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CommitInfo {
    /// The commit id (lowercase hex).
    pub id: String,
    /// The exact bytes that the signature covers (the commit object without
    /// its `gpgsig` header).
    pub signed_payload: Vec<u8>,
    /// The armored signature from the `gpgsig` header, if any.
    pub signature: Option<Vec<u8>>,
    /// Committer time, seconds since the Unix epoch.
    pub committer_time: i64,
    /// Author as `Name <email>`.
    pub author: String,
    /// The commit message.
    pub message: String,
}

/// What is known of an annotated tag, for verification in Tag modes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TagInfo {
    /// The tag's name.
    pub name: String,
    /// The tag object's id.
    pub id: String,
    /// The bytes that the signature covers.
    pub signed_payload: Vec<u8>,
    /// The armored signature appended to the tag, if any.
    pub signature: Option<Vec<u8>>,
    /// Tagger time, seconds since the Unix epoch.
    pub tagger_time: i64,
}

/// One fetched revision: its name, commit data and file tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision in Flux's notation.
    pub revision: Revision,
    /// The head commit, when the source is Git.
    pub commit: Option<CommitInfo>,
    /// The annotated tag the revision was resolved through, if any.
    pub tag: Option<TagInfo>,
    /// The files.
    pub tree: Tree,
    /// The commits since the revision applied last, when the fetch was
    /// asked for them ([`FetchRequest::last_applied`] with a verifier whose
    /// mode is [`VerifyMode::AllCommitsSinceLastApplied`](crate::verify::VerifyMode::AllCommitsSinceLastApplied)).
    pub history: Option<History>,
}

/// The commits a revision adds to the one applied last: what `git rev-list
/// <last_applied>..<head>` lists, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct History {
    /// The commit applied last (lowercase hex); `None` when nothing was
    /// applied yet, and then `commits` holds the head alone.
    pub since: Option<String>,
    /// Every commit reachable from the head and not from `since`, the head
    /// first (an empty list when the head is `since` itself).
    pub commits: Vec<CommitInfo>,
}

/// What to fetch, for [`Source::fetch_verified`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchRequest {
    /// Which revision.
    pub reference: GitRef,
    /// The commit applied last from this source (lowercase hex, or a
    /// revision such as `main@sha1:<hex>`). A verifier in mode
    /// [`VerifyMode::AllCommitsSinceLastApplied`](crate::verify::VerifyMode::AllCommitsSinceLastApplied)
    /// checks every commit since.
    pub last_applied: Option<String>,
}

impl FetchRequest {
    /// A request for `reference`, with no last applied revision.
    pub fn new(reference: GitRef) -> Self {
        FetchRequest {
            reference,
            last_applied: None,
        }
    }

    /// Sets the commit (or revision) applied last.
    pub fn with_last_applied(mut self, revision: Option<String>) -> Self {
        self.last_applied = revision;
        self
    }
}

/// Why [`Source::fetch_verified`] failed: the fetch, or the signature check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Fetching or reading the revision failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The verifier refused the revision; nothing of its tree was read.
    #[error(transparent)]
    Verify(Box<Refused>),
}

/// A revision a verifier refused.
#[derive(Debug, thiserror::Error)]
#[error("refusing {revision}: {error}")]
pub struct Refused {
    /// The revision that was refused.
    pub revision: Revision,
    /// Why.
    #[source]
    pub error: crate::verify::VerifyError,
}

impl FetchError {
    /// The refusal of `revision` by a verifier.
    pub fn refused(revision: &Revision, error: crate::verify::VerifyError) -> Self {
        FetchError::Verify(Box::new(Refused {
            revision: revision.clone(),
            error,
        }))
    }
}

/// Which revision of a source to fetch, with Flux's precedence:
/// commit > name > semver > tag > branch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitRef {
    /// A branch name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A tag name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range over tags; the highest match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// A full ref name such as `refs/heads/main` or `refs/pull/1/head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl GitRef {
    /// A branch reference.
    pub fn branch(name: &str) -> Self {
        GitRef {
            branch: Some(name.to_string()),
            ..GitRef::default()
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The URL or reference is malformed or unsupported.
    #[error("invalid source: {0}")]
    Invalid(String),
    /// The reference does not exist at the source.
    #[error("reference not found: {0}")]
    RefNotFound(String),
    /// Talking to the remote failed (network, auth, protocol).
    #[error("fetch failed: {message}")]
    Transport {
        /// What went wrong, with credentials removed.
        message: String,
        /// True when retrying may help.
        retryable: bool,
    },
    /// Reading files failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A path in the source escapes its root.
    #[error(transparent)]
    Path(#[from] PathError),
}

impl SourceError {
    /// True when the same fetch may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Transport {
                retryable: true,
                ..
            }
        )
    }
}

/// Fetches revisions. Implementations do the I/O; the core never does.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// Resolves `reference` and reads its tree, without checking signatures.
    async fn fetch(&self, reference: &GitRef) -> Result<Snapshot, SourceError>;

    /// Resolves `request.reference`, has `verifier` check the revision, and
    /// only then reads its tree, so an unsigned revision costs no more than
    /// its commit. The default fetches then checks; [`GitSource`] checks the
    /// commit (and tag, and the commits since `request.last_applied` when
    /// the verifier asks for them) before it reads a single blob.
    async fn fetch_verified(
        &self,
        request: &FetchRequest,
        verifier: &dyn crate::verify::Verifier,
    ) -> Result<crate::verify::Verified<Snapshot>, FetchError> {
        let snapshot = self.fetch(&request.reference).await?;
        let revision = snapshot.revision.clone();
        crate::verify::Verified::check(snapshot, verifier)
            .map_err(|e| FetchError::refused(&revision, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.insert_file("a/b/c.yaml", b"x".to_vec()).unwrap();
        t.insert_file("a/d.yaml", b"y".to_vec()).unwrap();
        t.insert_symlink("a/link", "b").unwrap();
        t.insert_symlink("a/evil", "../../etc/passwd").unwrap();
        t.insert_symlink("a/abs", "/etc/passwd").unwrap();
        t.insert_symlink("loop1", "loop2").unwrap();
        t.insert_symlink("loop2", "loop1").unwrap();
        t
    }

    #[test]
    fn join_refuses_escape() {
        assert_eq!(join_path("a/b", "../c").unwrap(), "a/c");
        assert!(join_path("a", "../../x").is_err());
        assert!(join_path("", "/etc/passwd").is_err());
    }

    #[test]
    fn reads_through_symlinks_inside_only() {
        let t = tree();
        assert_eq!(t.read("a/link/c.yaml").unwrap(), b"x");
        assert!(matches!(
            t.read("a/evil"),
            Err(PathError::SymlinkOutsideRoot { .. })
        ));
        assert!(matches!(
            t.read("a/abs"),
            Err(PathError::SymlinkOutsideRoot { .. })
        ));
        assert!(matches!(
            t.read("loop1"),
            Err(PathError::SymlinkLoop { .. })
        ));
        assert!(matches!(t.read("a/nope"), Err(PathError::NotFound { .. })));
        assert!(matches!(t.read("a/b"), Err(PathError::IsADirectory { .. })));
    }

    #[test]
    fn lists_directories() {
        let t = tree();
        let names: Vec<_> = t.list_dir("a").unwrap();
        assert_eq!(
            names,
            vec![
                ("abs".to_string(), false),
                ("b".to_string(), true),
                ("d.yaml".to_string(), false),
                ("evil".to_string(), false),
                ("link".to_string(), true)
            ]
        );
        assert!(t.is_dir("") && t.is_dir("a/link") && !t.is_dir("a/d.yaml"));
    }
}
