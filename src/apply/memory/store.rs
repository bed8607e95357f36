//! The state folder of a persisted [`MemoryCluster`](super::MemoryCluster).
//!
//! ```text
//! <dir>/cluster.yaml                                   counters (format, resourceVersion, uid)
//! <dir>/objects/<group or core>/<Kind>/<ns or _cluster>/<name>.yaml
//! <dir>/inventories/<percent-encoded owner>.yaml
//! ```
//!
//! Every file is written atomically: a temporary file in the same folder,
//! fsync, rename over the target, fsync of the folder. A crash leaves either
//! the old or the new file, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::{Object, ObjectId};
use crate::plan::{Inventory, InventoryEntry};

use super::StateError;

/// The format marker in `cluster.yaml`.
pub(crate) const FORMAT: &str = "driftless.memory-cluster/v1";
const META: &str = "cluster.yaml";
const TMP_PREFIX: &str = ".driftless-tmp-";

/// The counters kept in `cluster.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Meta {
    pub(crate) format: String,
    pub(crate) resource_version: u64,
    pub(crate) uid_counter: u64,
}

/// An inventory file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    owner: String,
    entries: Vec<InventoryEntry>,
}

/// What a state folder holds.
pub(crate) struct Loaded {
    pub(crate) meta: Meta,
    pub(crate) objects: BTreeMap<ObjectId, Value>,
    pub(crate) inventories: BTreeMap<String, Inventory>,
}

/// A state folder.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    tmp_counter: AtomicU64,
    /// fsync files and folders (survive power loss), or only rename.
    sync: bool,
}

fn io_err(path: &Path, e: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> StateError {
    StateError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A state file that does not parse, with the line when the parser knows
/// it.
fn unparsable(path: &Path, e: crate::yaml::YamlError) -> StateError {
    match e.line {
        Some(line) => corrupt(path, format!("line {line}: {}", e.message)),
        None => corrupt(path, e.message),
    }
}

/// The text of a state file; never an empty file in place of a value the
/// YAML backend cannot emit.
fn emit(path: &Path, value: &Value) -> Result<String, StateError> {
    crate::yaml::try_to_string(value).map_err(|e| StateError::Io {
        path: path.to_path_buf(),
        message: format!("cannot write the state: {}", e.message),
    })
}

/// Percent-encodes everything but `[A-Za-z0-9.-]`, so an owner key is one
/// safe file name.
fn encode_owner(owner: &str) -> String {
    let mut out = String::new();
    for b in owner.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Store {
    /// Opens a folder: creates it when absent. Returns `None` for the
    /// loaded state when the folder is new (empty).
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<(Store, Option<Loaded>), StateError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let store = Store {
            dir: dir.to_path_buf(),
            tmp_counter: AtomicU64::new(0),
            sync,
        };
        let meta_path = dir.join(META);
        if !meta_path.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
            if entries.next().is_some() {
                return Err(corrupt(
                    &meta_path,
                    "missing: the folder is not empty but holds no driftless cluster state",
                ));
            }
            return Ok((store, None));
        }
        let loaded = store.load(&meta_path)?;
        Ok((store, Some(loaded)))
    }

    fn load(&self, meta_path: &Path) -> Result<Loaded, StateError> {
        let text = fs::read_to_string(meta_path).map_err(|e| io_err(meta_path, e))?;
        let meta: Meta = crate::yaml::from_str(&meta_path.display().to_string(), &text)
            .map_err(|e| unparsable(meta_path, e))?;
        if meta.format != FORMAT {
            return Err(corrupt(
                meta_path,
                format!("unknown format {:?}, expected {FORMAT:?}", meta.format),
            ));
        }
        let mut objects = BTreeMap::new();
        let objects_dir = self.dir.join("objects");
        if objects_dir.exists() {
            let mut files = Vec::new();
            walk_files(&objects_dir, &mut files)?;
            for file in files {
                let (id, value) = self.load_object(&file)?;
                objects.insert(id, value);
            }
        }
        let mut inventories = BTreeMap::new();
        let inv_dir = self.dir.join("inventories");
        if inv_dir.exists() {
            let mut files = Vec::new();
            walk_files(&inv_dir, &mut files)?;
            for file in files {
                let text = fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
                let inv: InventoryFile = crate::yaml::from_str(&file.display().to_string(), &text)
                    .map_err(|e| unparsable(&file, e))?;
                let expected = self.inventory_path(&inv.owner);
                if expected != file {
                    return Err(corrupt(
                        &file,
                        format!(
                            "the inventory of owner {:?} belongs in {}",
                            inv.owner,
                            expected.display()
                        ),
                    ));
                }
                inventories.insert(
                    inv.owner,
                    Inventory {
                        entries: inv.entries,
                    },
                );
            }
        }
        Ok(Loaded {
            meta,
            objects,
            inventories,
        })
    }

    fn load_object(&self, file: &Path) -> Result<(ObjectId, Value), StateError> {
        let text = fs::read_to_string(file).map_err(|e| io_err(file, e))?;
        let value: Value = crate::yaml::from_str(&file.display().to_string(), &text)
            .map_err(|e| unparsable(file, e))?;
        let object = Object::new(value).map_err(|e| corrupt(file, e.to_string()))?;
        let id = object.id();
        let expected = self.object_path(&id);
        if expected != file {
            return Err(corrupt(
                file,
                format!(
                    "holds {} ({}), which belongs in {}",
                    id.subject(),
                    object.api_version(),
                    expected.display()
                ),
            ));
        }
        Ok((id, object.into_value()))
    }

    /// The folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where an object lives.
    pub(crate) fn object_path(&self, id: &ObjectId) -> PathBuf {
        let group = if id.group.is_empty() {
            "core"
        } else {
            id.group.as_str()
        };
        let ns = if id.namespace.is_empty() {
            "_cluster"
        } else {
            id.namespace.as_str()
        };
        self.dir
            .join("objects")
            .join(group)
            .join(&id.kind)
            .join(ns)
            .join(format!("{}.yaml", id.name))
    }

    fn inventory_path(&self, owner: &str) -> PathBuf {
        self.dir
            .join("inventories")
            .join(format!("{}.yaml", encode_owner(owner)))
    }

    /// Writes `cluster.yaml`.
    pub(crate) fn write_meta(&self, meta: &Meta) -> Result<(), StateError> {
        let value =
            serde_json::to_value(meta).map_err(|e| corrupt(&self.dir.join(META), e.to_string()))?;
        let path = self.dir.join(META);
        self.write_atomic(&path, &emit(&path, &value)?)
    }

    /// Writes one object.
    pub(crate) fn write_object(&self, id: &ObjectId, value: &Value) -> Result<(), StateError> {
        let path = self.object_path(id);
        self.write_atomic(&path, &emit(&path, &sorted(value))?)
    }

    /// Removes one object's file.
    pub(crate) fn delete_object(&self, id: &ObjectId) -> Result<(), StateError> {
        let path = self.object_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path, e)),
        }
        if let (true, Some(parent)) = (self.sync, path.parent()) {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Writes one inventory.
    pub(crate) fn write_inventory(&self, owner: &str, inv: &Inventory) -> Result<(), StateError> {
        let path = self.inventory_path(owner);
        let file = InventoryFile {
            owner: owner.to_string(),
            entries: inv.entries.clone(),
        };
        let value = serde_json::to_value(&file).map_err(|e| corrupt(&path, e.to_string()))?;
        self.write_atomic(&path, &emit(&path, &value)?)
    }

    /// Write to a temporary file in the same folder, fsync, rename, fsync
    /// the folder.
    fn write_atomic(&self, path: &Path, text: &str) -> Result<(), StateError> {
        let parent = path
            .parent()
            .ok_or_else(|| corrupt(path, "has no parent folder"))?;
        fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.write_all(text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
            if self.sync {
                f.sync_all().map_err(|e| io_err(&tmp, e))?;
            }
            drop(f);
            fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
            if self.sync {
                sync_dir(parent)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// The value with every map's keys in sorted order, so files are
/// byte-stable even if `serde_json` keeps insertion order (its
/// `preserve_order` feature, which another dependency may turn on).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .filter_map(|k| m.get(k).map(|x| (k.clone(), sorted(x))))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    // Directories can be opened and fsynced on Unix; elsewhere this is a no-op.
    #[cfg(unix)]
    {
        let f = fs::File::open(dir).map_err(|e| io_err(dir, e))?;
        f.sync_all().map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Every state file under `dir`, sorted; leftovers of interrupted writes
/// (temporary files) are removed, editors' hidden and backup files are
/// skipped, anything else is an error.
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StateError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io_err(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            walk_files(&path, out)?;
        } else if name.starts_with(TMP_PREFIX) {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        } else if name.starts_with('.') || name.ends_with('~') {
            // An editor's swap or backup file next to a hand-edited object.
        } else if name.ends_with(".yaml") {
            out.push(path);
        } else {
            return Err(corrupt(&path, "unexpected file in the state folder"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_encode_to_safe_names() {
        assert_eq!(encode_owner("flux-system/apps"), "flux-system%2Fapps");
        assert_eq!(encode_owner(".."), "%2E.");
        assert_eq!(encode_owner("a_b"), "a%5Fb");
    }
}
