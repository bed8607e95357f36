//! Image update automation: policies pick the tag, setters rewrite Git.
//!
//! This is Flux's image-reflector-controller and image-automation-controller
//! as a library, in three steps:
//!
//! ```text
//!  ImagePolicy + ImageRepository ──┐
//!  TagSource (registry, file, mem) ─┴─► resolve() ──► latest image per policy
//!                                                          │
//!  files under update.path (Tree) ─────────────────────────┴─► update_tree()
//!                                       byte-preserving setters │
//!                                                               ▼
//!                 (feature "image-automation")  commit with gix, sign (SSHSIG), push
//! ```
//!
//! * [`policy`]: the `ImagePolicy`/`ImageRepository` objects and the choice
//!   of the latest tag (semver ranges with Masterminds' rules, alphabetical,
//!   numerical, `filterTags` with `extract`, `exclusionList`).
//! * [`tags`]: the [`TagSource`] trait, [`MemoryTags`] and [`FileTags`].
//! * [`setters`]: the `$imagepolicy` markers and the rewrite.
//! * [`template`]: commit messages from Flux's template data.
//! * [`update_automation`]: the `ImageUpdateAutomation` object.
//! * `automation` (feature `image-automation`): the commit, its signature and
//!   the push.
//!
//! The first four are pure: no clock, no network, deterministic output.

use std::collections::BTreeMap;

pub mod policy;
pub mod semver;
pub mod setters;
pub mod tags;
pub mod template;
pub mod update_automation;

#[cfg(feature = "image-automation")]
pub mod automation;

pub use policy::{ImageObjects, ImagePolicy, ImageRepository, PolicyError};
pub use setters::{Change, FileUpdate, LatestImage, ObjectIdentifier, SetterError};
pub use tags::{FileTags, MemoryTags, TagError, TagSource};
pub use template::{render_message, TemplateData, TemplateError, DEFAULT_MESSAGE_TEMPLATE};
pub use update_automation::ImageUpdateAutomation;

use crate::source::{Entry, Tree};

/// What the policies chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// `namespace:name` of each policy that chose an image, and the image.
    pub images: BTreeMap<String, LatestImage>,
    /// Policies that chose nothing (no repository, no matching tag, tags
    /// not listable), with the reason. Their markers are left alone, as
    /// Flux leaves the markers of a policy that is not ready.
    pub skipped: Vec<(String, ImageError)>,
}

/// Why image automation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A policy or repository object is invalid, or no tag matches.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Tags could not be listed.
    #[error(transparent)]
    Tags(#[from] TagError),
    /// A policy refers to an ImageRepository that is not there.
    #[error(
        "ImagePolicy {policy}: spec.imageRepositoryRef: ImageRepository {repository} not found"
    )]
    MissingRepository {
        /// `namespace/name` of the policy.
        policy: String,
        /// `namespace/name` of the missing repository.
        repository: String,
    },
    /// A marked file could not be updated.
    #[error(transparent)]
    Setter(#[from] SetterError),
    /// The commit message template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Reading policy files failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl ImageError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ImageError::Tags(t) if t.is_retryable())
    }
}

/// Asks `tags` for the tags of every policy's image and lets each policy
/// choose. Policies are visited in `namespace:name` order.
pub async fn resolve(
    objects: &ImageObjects,
    tags: &dyn TagSource,
) -> Result<Resolution, ImageError> {
    let mut out = Resolution::default();
    let mut policies: Vec<&ImagePolicy> = objects.policies.iter().collect();
    policies.sort_by_key(|p| p.setter_name());
    for p in policies {
        let key = p.setter_name();
        let Some(repo) = objects.repository_for(p) else {
            let r = &p.spec.image_repository_ref;
            out.skipped.push((
                key,
                ImageError::MissingRepository {
                    policy: format!("{}/{}", p.metadata.ns(), p.metadata.name),
                    repository: format!(
                        "{}/{}",
                        r.namespace.as_deref().unwrap_or(p.metadata.ns()),
                        r.name
                    ),
                },
            ));
            continue;
        };
        let image = repo.spec.image.clone();
        let entries = match tags.list_tags(&image).await {
            Ok(e) => e,
            Err(e) => {
                out.skipped.push((key, e.into()));
                continue;
            }
        };
        let mut names = Vec::with_capacity(entries.len());
        let mut digests: BTreeMap<String, String> = BTreeMap::new();
        for e in &entries {
            let (t, d) = tags::split_digest(e);
            names.push(t.to_string());
            if let Some(d) = d {
                digests.insert(t.to_string(), d.to_string());
            }
        }
        let kept = policy::apply_exclusions(Some(repo), &names);
        match p.latest(&image, &kept) {
            Ok(tag) => {
                out.images.insert(
                    key,
                    LatestImage {
                        name: image.clone(),
                        tag: tag.to_string(),
                        digest: digests.get(tag).cloned(),
                    },
                );
            }
            Err(e) => out.skipped.push((key, e.into())),
        }
    }
    Ok(out)
}

/// The files a run changed and the changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeUpdate {
    /// New contents of every changed file, by path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Every change, in path then line order.
    pub changes: Vec<Change>,
}

impl TreeUpdate {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Runs the setters over the `.yaml`/`.yml` files under `path` (relative to
/// the root; `""` or `.` for all). Symlinks are not followed. Only files
/// holding the marker token are parsed.
pub fn update_tree(
    tree: &Tree,
    path: &str,
    images: &BTreeMap<String, LatestImage>,
) -> Result<TreeUpdate, ImageError> {
    let base = crate::source::join_path("", path).map_err(|e| ImageError::Io {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    let mut out = TreeUpdate::default();
    for (p, entry) in tree.entries() {
        if !(p.starts_with(&prefix) || p == base) || !is_yaml(p) {
            continue;
        }
        let Entry::File(bytes) = entry else { continue };
        if let Some(up) = setters::update_file(p, bytes, images)? {
            out.changes.extend(up.changes);
            out.files.insert(p.to_string(), up.bytes);
        }
    }
    Ok(out)
}

/// True for names Flux's reader picks up (`*.yaml`, `*.yml`).
pub fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

impl ImageObjects {
    /// Reads the image objects from a file, or from every `.yaml`/`.yml`
    /// file under a folder (sorted, recursively, hidden entries skipped).
    pub fn read_path(path: &std::path::Path) -> Result<ImageObjects, ImageError> {
        let mut files = Vec::new();
        collect(path, &mut files)?;
        files.sort();
        let mut objs = ImageObjects::default();
        for f in files {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(&f).map_err(|e| ImageError::Io {
                path: name.clone(),
                message: e.to_string(),
            })?;
            objs.add_file(&name, &text)?;
        }
        Ok(objs)
    }
}

fn collect(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), ImageError> {
    let io = |e: std::io::Error| ImageError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let ft = entry.file_type().map_err(io)?;
        if ft.is_dir() {
            collect(&p, out)?;
        } else if ft.is_file() && is_yaml(&name) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    const OBJECTS: &str = "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  image: reg.example/app\n  exclusionList: ['^dev-']\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: app\n  policy:\n    alphabetical: {}\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: orphan\n  namespace: apps\nspec:\n  imageRepositoryRef:\n    name: missing\n    namespace: other\n  policy:\n    alphabetical: {}\n";

    #[test]
    fn resolve_splits_digests_applies_exclusions_and_reports_skips() {
        let mut objs = ImageObjects::default();
        objs.add_file("objs.yaml", OBJECTS).unwrap();
        let mut tags = MemoryTags::new();
        // an explicit exclusionList replaces the default: `.sig` tags count again
        tags.insert(
            "reg.example/app",
            ["a@sha256:aa", "b@sha256:bb", "dev-z", "c.sig"],
        );
        let res = block_on(resolve(&objs, &tags)).unwrap();
        let img = &res.images["apps:app"];
        assert_eq!(img.tag, "c.sig");
        assert_eq!(img.digest, None);
        tags.insert("reg.example/app", ["a@sha256:aa", "b@sha256:bb", "dev-z"]);
        let res = block_on(resolve(&objs, &tags)).unwrap();
        let img = &res.images["apps:app"];
        assert_eq!(
            (img.tag.as_str(), img.digest.as_deref()),
            ("b", Some("sha256:bb"))
        );
        assert_eq!(img.reference(), "reg.example/app:b@sha256:bb");
        assert_eq!(res.skipped.len(), 1);
        assert_eq!(res.skipped[0].0, "apps:orphan");
        assert!(res.skipped[0]
            .1
            .to_string()
            .contains("ImageRepository other/missing not found"));
    }

    #[test]
    fn update_tree_only_touches_yaml_under_the_path() {
        let mut tree = Tree::new();
        let marked = "image: reg.example/app:a # {\"$imagepolicy\": \"apps:app\"}\n";
        tree.insert_file("apps/d.yaml", marked.as_bytes().to_vec())
            .unwrap();
        tree.insert_file("apps/d.txt", marked.as_bytes().to_vec())
            .unwrap();
        tree.insert_file("other/d.yaml", marked.as_bytes().to_vec())
            .unwrap();
        let mut images = BTreeMap::new();
        images.insert(
            "apps:app".to_string(),
            LatestImage {
                name: "reg.example/app".into(),
                tag: "b".into(),
                digest: None,
            },
        );
        let up = update_tree(&tree, "./apps", &images).unwrap();
        assert_eq!(up.files.keys().collect::<Vec<_>>(), vec!["apps/d.yaml"]);
        let all = update_tree(&tree, ".", &images).unwrap();
        assert_eq!(all.files.len(), 2);
        assert!(update_tree(&tree, "../x", &images).is_err());
    }
}
