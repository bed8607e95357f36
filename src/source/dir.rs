//! [`DirSource`]: a plain folder as a source, so the pipeline runs without Git.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Entry, GitRef, Snapshot, Source, SourceError, Tree};
use crate::object::Revision;

/// Reads a folder into a [`Tree`].
///
/// Symlinks are recorded as links, never followed on disk, so a link that
/// points outside the folder can only ever fail to resolve inside the tree.
/// `.git` folders are skipped. The revision is `sha256:<digest>` over the
/// tree's paths and contents, so an unchanged folder gives the same revision.
#[derive(Clone, Debug)]
pub struct DirSource {
    root: PathBuf,
    max_file_bytes: u64,
}

impl DirSource {
    /// A source for the folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource {
            root: root.into(),
            max_file_bytes: 64 * 1024 * 1024,
        }
    }

    /// Refuse files larger than `bytes` (default 64 MiB).
    pub fn with_max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// The folder this source reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads the folder synchronously.
    pub fn read_tree(&self) -> Result<Tree, SourceError> {
        let mut tree = Tree::new();
        let meta = std::fs::metadata(&self.root).map_err(|e| io(&self.root, e))?;
        if !meta.is_dir() {
            return Err(SourceError::Io {
                path: self.root.display().to_string(),
                message: "not a directory".into(),
            });
        }
        self.walk(&self.root, "", &mut tree)?;
        Ok(tree)
    }

    fn walk(&self, dir: &Path, rel: &str, tree: &mut Tree) -> Result<(), SourceError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io(dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(SourceError::Io {
                    path: entry.path().display().to_string(),
                    message: "file name is not UTF-8".into(),
                });
            };
            if name == ".git" {
                continue;
            }
            let path = entry.path();
            let rel_path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let ft = entry.file_type().map_err(|e| io(&path, e))?;
            if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                tree.insert_symlink(&rel_path, &target.to_string_lossy())?;
            } else if ft.is_dir() {
                self.walk(&path, &rel_path, tree)?;
            } else if ft.is_file() {
                let len = entry.metadata().map_err(|e| io(&path, e))?.len();
                if len > self.max_file_bytes {
                    return Err(SourceError::Io {
                        path: path.display().to_string(),
                        message: format!("file is larger than {} bytes", self.max_file_bytes),
                    });
                }
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                tree.insert_file(&rel_path, bytes)?;
            }
        }
        Ok(())
    }
}

fn io(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A content digest of a tree: paths, kinds and bytes, in path order.
pub fn tree_digest(tree: &Tree) -> String {
    let mut h = Sha256::new();
    for (path, entry) in tree.entries() {
        h.update(path.as_bytes());
        h.update([0]);
        match entry {
            Entry::File(b) => {
                h.update(b"f");
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            Entry::Symlink(t) => {
                h.update(b"l");
                h.update(t.as_bytes());
                h.update([0]);
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait::async_trait]
impl Source for DirSource {
    /// Reads the folder; the reference is ignored (a folder has one revision).
    async fn fetch(&self, _reference: &GitRef) -> Result<Snapshot, SourceError> {
        let tree = self.read_tree()?;
        let revision = Revision {
            name: None,
            algorithm: "sha256".into(),
            hash: tree_digest(&tree),
        };
        Ok(Snapshot {
            revision,
            commit: None,
            tag: None,
            tree,
            history: None,
        })
    }
}
