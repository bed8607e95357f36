//! Where tags come from: the [`TagSource`] trait and two implementations.
//!
//! A host plugs in its registry client by implementing [`TagSource`]. The
//! crate ships [`MemoryTags`] (tests, hosts that already hold the tags) and
//! [`FileTags`] (a YAML map from image name to its list of tags, used by the
//! example).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// Why tags could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The source does not know the image.
    #[error("no tags known for image {image}")]
    UnknownImage {
        /// The image name as asked.
        image: String,
    },
    /// The tags file is malformed.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, naming the entry.
        message: String,
    },
    /// Reading failed (network, disk).
    #[error("listing tags of {image}: {message}")]
    Io {
        /// The image.
        image: String,
        /// What went wrong.
        message: String,
        /// True when retrying may help.
        retryable: bool,
    },
}

impl TagError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TagError::Io {
                retryable: true,
                ..
            }
        )
    }
}

/// Lists the tags of an image (what an ImageRepository scan yields).
///
/// A tag may carry a digest as `tag@sha256:<hex>`; the digest is then
/// available to `:digest` setters and full references.
#[async_trait]
pub trait TagSource: Send + Sync {
    /// All tags of `image` (e.g. `ghcr.io/organization/app1`), in the
    /// source's order. Exclusions are applied by the caller.
    async fn list_tags(&self, image: &str) -> Result<Vec<String>, TagError>;
}

/// Tags held in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTags {
    images: BTreeMap<String, Vec<String>>,
}

impl MemoryTags {
    /// An empty set.
    pub fn new() -> Self {
        MemoryTags::default()
    }

    /// Sets the tags of one image.
    pub fn insert(&mut self, image: &str, tags: impl IntoIterator<Item = impl Into<String>>) {
        self.images.insert(
            image.to_string(),
            tags.into_iter().map(Into::into).collect(),
        );
    }

    /// Builds the set from a YAML map `image: [tag, ...]`; `file` names the
    /// source in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, TagError> {
        let value: serde_json::Value =
            crate::yaml::from_str(file, text).map_err(|e| TagError::Invalid {
                file: file.to_string(),
                message: e.message.clone(),
            })?;
        let invalid = |message: String| TagError::Invalid {
            file: file.to_string(),
            message,
        };
        let map = match value {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => serde_json::Map::new(),
            _ => {
                return Err(invalid(
                    "expected a map from image name to a list of tags".into(),
                ))
            }
        };
        let mut out = MemoryTags::new();
        for (image, tags) in map {
            let list = match tags {
                serde_json::Value::Array(a) => a,
                serde_json::Value::Null => Vec::new(),
                _ => return Err(invalid(format!("{image}: expected a list of tags"))),
            };
            let mut v = Vec::with_capacity(list.len());
            for (i, t) in list.into_iter().enumerate() {
                match t {
                    serde_json::Value::String(s) if !s.is_empty() => v.push(s),
                    // YAML reads 1.10 or 20240101 as numbers; tags are
                    // strings, so refuse rather than guess the spelling.
                    other => {
                        return Err(invalid(format!(
                            "{image}[{i}]: expected a tag string, found {other} (quote it)"
                        )))
                    }
                }
            }
            out.images.insert(image, v);
        }
        Ok(out)
    }
}

#[async_trait]
impl TagSource for MemoryTags {
    async fn list_tags(&self, image: &str) -> Result<Vec<String>, TagError> {
        self.images
            .get(image)
            .cloned()
            .ok_or_else(|| TagError::UnknownImage {
                image: image.to_string(),
            })
    }
}

/// Tags read from a YAML file (a map from image name to its list of tags)
/// each time they are listed, so a host may rewrite the file between runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTags {
    path: PathBuf,
}

impl FileTags {
    /// Tags from `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileTags {
            path: path.as_ref().to_path_buf(),
        }
    }

    fn load(&self) -> Result<MemoryTags, TagError> {
        let file = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| TagError::Invalid {
            file: file.clone(),
            message: e.to_string(),
        })?;
        MemoryTags::from_yaml(&file, &text)
    }
}

#[async_trait]
impl TagSource for FileTags {
    async fn list_tags(&self, image: &str) -> Result<Vec<String>, TagError> {
        self.load()?.list_tags(image).await
    }
}

/// Splits `tag@sha256:...` into the tag and its digest.
pub fn split_digest(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('@') {
        Some((t, d)) if !d.is_empty() => (t, Some(d)),
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn yaml_map_of_tags() {
        let t = MemoryTags::from_yaml("tags.yaml", "ghcr.io/o/app1:\n  - v1.0.0\n  - 'v1.2.7'\n")
            .unwrap();
        assert_eq!(
            block_on(t.list_tags("ghcr.io/o/app1")).unwrap(),
            vec!["v1.0.0", "v1.2.7"]
        );
        assert!(matches!(
            block_on(t.list_tags("other")),
            Err(TagError::UnknownImage { .. })
        ));
    }

    #[test]
    fn numbers_are_refused_with_the_entry_named() {
        let e = MemoryTags::from_yaml("tags.yaml", "img:\n  - 1.10\n").unwrap_err();
        assert!(e.to_string().contains("img[0]"), "{e}");
        assert!(MemoryTags::from_yaml("tags.yaml", "- a\n").is_err());
    }

    #[test]
    fn digests_split() {
        assert_eq!(split_digest("v1@sha256:ab"), ("v1", Some("sha256:ab")));
        assert_eq!(split_digest("v1"), ("v1", None));
    }
}
