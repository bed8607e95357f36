//! The state folder of a persisted [`MemoryCluster`](super::MemoryCluster).
//!
//! ```text
//! <dir>/cluster.yaml                                   counters (format, resourceVersion, uid)
//! <dir>/lock                                           the advisory lock (and the writer's pid)
//! <dir>/objects/<group or core>/<Kind>/<ns or _cluster>/<name>.yaml
//! <dir>/inventories/<percent-encoded owner>.yaml
//! ```
//!
//! Every component of an object's path is encoded ([`encode_component`]):
//! whatever a CRD, a name or a hand-edited file holds, the path stays one
//! file inside `objects/`, and the joined path is checked before any write.
//!
//! Every file is written atomically: a temporary file in the same folder,
//! fsync, rename over the target, fsync of the folder. A crash leaves either
//! the old or the new file, never a torn one.
//!
//! A writer holds an exclusive lock on `<dir>/lock` for as long as it lives;
//! a reader takes a shared lock while it loads. Neither waits: a folder in
//! use is [`StateError::Locked`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::object::{Object, ObjectId};
use crate::plan::{Inventory, InventoryEntry};

use super::StateError;

/// The format marker in `cluster.yaml`.
pub(crate) const FORMAT: &str = "driftless.memory-cluster/v2";
/// The format before path components were encoded: loaded, and moved to
/// the current layout by the first writer.
const FORMAT_V1: &str = "driftless.memory-cluster/v1";
const META: &str = "cluster.yaml";
const LOCK: &str = "lock";
const TMP_PREFIX: &str = ".driftless-tmp-";
/// The group folder of the core group.
const CORE: &str = "core";
/// The namespace folder of cluster-scoped objects.
const CLUSTER: &str = "_cluster";
/// The longest file name most file systems take.
const NAME_MAX: usize = 255;

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
    /// Files of a v1 folder at their old path, and where they belong now.
    moves: Vec<(PathBuf, PathBuf)>,
}

/// A state folder open for writing: its exclusive lock is held for as
/// long as the value lives.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    tmp_counter: AtomicU64,
    /// fsync files and folders (survive power loss), or only rename.
    sync: bool,
    /// The locked `<dir>/lock` (holding this process's pid while it
    /// writes); closing it releases the lock.
    lock: fs::File,
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

/// `s` shortened to fit one file name with `suffix`: a prefix, `~` and the
/// SHA-256 of the whole encoded text (the encoders never emit `~`, so a
/// shortened name never equals another component).
fn fit(encoded: String, suffix: &str) -> String {
    if encoded.len() + suffix.len() <= NAME_MAX {
        return encoded;
    }
    let digest = Sha256::digest(encoded.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut keep = NAME_MAX.saturating_sub(suffix.len() + 1 + hex.len());
    // Never cut an escape in two.
    while keep > 0
        && encoded.as_bytes()[..keep]
            .iter()
            .rev()
            .take(2)
            .any(|&b| b == b'%')
    {
        keep -= 1;
    }
    format!("{}~{hex}", &encoded[..keep])
}

/// One path component of an object's file: bytes outside
/// `[A-Za-z0-9_:-]` (and a `.` in first place) become `%XX`, so `/`, `..`,
/// a leading `.` (hidden files) and control characters never reach the
/// file system; `reserved` (a folder name of the layout itself) has its
/// first byte encoded; and a component too long for a file name together
/// with `suffix` is shortened ([`fit`]). Names Kubernetes accepts
/// (subdomains, labels, CamelCase kinds, RBAC names like
/// `system:controller:x`) are kept as they are.
pub(crate) fn encode_component(s: &str, reserved: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let plain =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':') || (b == b'.' && i > 0);
        if plain && !(i == 0 && s == reserved) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    fit(out, suffix)
}

/// Percent-encodes everything but `[A-Za-z0-9.-]` (and a leading `.`), so
/// an owner key is one safe file name.
fn encode_owner(owner: &str) -> String {
    let mut out = String::new();
    for b in owner.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    fit(out, ".yaml")
}

/// `dir` joined with `parts`, each of which must be one plain file name:
/// the last line of defence against a path leaving the folder.
fn join_checked(dir: &Path, parts: &[String]) -> Result<PathBuf, String> {
    let mut path = dir.to_path_buf();
    for part in parts {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if c == part.as_str() && !part.contains('\0') => {
                path.push(part);
            }
            _ => return Err(format!("{part:?} is not a plain file name")),
        }
    }
    if !path.starts_with(dir) || path.components().count() != dir.components().count() + parts.len()
    {
        return Err(format!("{} leaves {}", path.display(), dir.display()));
    }
    Ok(path)
}

/// The path components of an object below `objects/`.
fn object_parts(id: &ObjectId) -> Result<Vec<String>, String> {
    if id.kind.is_empty() {
        return Err("the kind is empty".into());
    }
    if id.name.is_empty() {
        return Err("the name is empty".into());
    }
    let group = if id.group.is_empty() {
        CORE.to_string()
    } else {
        encode_component(&id.group, CORE, "")
    };
    let ns = if id.namespace.is_empty() {
        CLUSTER.to_string()
    } else {
        encode_component(&id.namespace, CLUSTER, "")
    };
    Ok(vec![
        "objects".into(),
        group,
        encode_component(&id.kind, "", ""),
        ns,
        format!("{}.yaml", encode_component(&id.name, "", ".yaml")),
    ])
}

/// Where the v1 layout put an object (its components joined as they
/// were), when that is a path inside the folder.
fn legacy_object_path(dir: &Path, id: &ObjectId) -> Option<PathBuf> {
    let group = if id.group.is_empty() {
        CORE
    } else {
        id.group.as_str()
    };
    let ns = if id.namespace.is_empty() {
        CLUSTER
    } else {
        id.namespace.as_str()
    };
    let parts = [
        "objects".to_string(),
        group.to_string(),
        id.kind.clone(),
        ns.to_string(),
        format!("{}.yaml", id.name),
    ];
    join_checked(dir, &parts).ok()
}

/// Whether the folder holds anything besides a lock file (and a writer's
/// temporary file while it sets a new folder up).
fn holds_anything(dir: &Path) -> Result<bool, StateError> {
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let name = entry.map_err(|e| io_err(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if name != LOCK && !name.starts_with(TMP_PREFIX) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses a folder that is not empty but holds no cluster state, so a
/// mistyped `--state` never takes over (or writes into) another folder.
fn check_ours(dir: &Path) -> Result<(), StateError> {
    if !dir.join(META).exists() && holds_anything(dir)? {
        return Err(corrupt(
            &dir.join(META),
            "missing: the folder is not empty but holds no driftless cluster state",
        ));
    }
    Ok(())
}

/// Opens `<dir>/lock`, creating it (owner-only) when absent.
fn open_lock_file(dir: &Path) -> Result<fs::File, StateError> {
    let path = dir.join(LOCK);
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(&path).map_err(|e| io_err(&path, e))
}

/// The error for a lock another process holds: who holds it, as far as
/// the lock file tells.
fn locked(dir: &Path, file: &mut fs::File, exclusive_wanted: bool) -> StateError {
    // A shared lock is free unless a writer holds the folder.
    let writer = match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    };
    let message = if writer {
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut text);
        let holder = text
            .trim()
            .strip_prefix("pid ")
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        format!("another process{holder} has it open for writing; retry when it is done")
    } else if exclusive_wanted {
        "another process is reading it; retry when it is done".to_string()
    } else {
        "another process has it open; retry when it is done".to_string()
    };
    StateError::Locked {
        path: dir.to_path_buf(),
        message,
    }
}

/// Creates `dir` (and its parents) readable by the owner only.
fn create_dir_private(dir: &Path) -> Result<(), StateError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io_err(dir, e))
}

impl Store {
    /// Opens a folder for writing: creates it when absent and takes its
    /// exclusive lock (failing at once when another process holds it).
    /// Returns `None` for the loaded state when the folder is new (empty).
    /// A v1 folder is moved to the current layout.
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<(Store, Option<Loaded>), StateError> {
        create_dir_private(dir)?;
        check_ours(dir)?;
        let mut lock = open_lock_file(dir)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(locked(dir, &mut lock, true)),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&dir.join(LOCK), e)),
        }
        // Name the holder for whoever finds the folder locked (best
        // effort: the pid only makes that message more helpful).
        let _ = lock.set_len(0);
        let _ = writeln!(lock, "pid {}", std::process::id());
        let store = Store {
            dir: dir.to_path_buf(),
            tmp_counter: AtomicU64::new(0),
            sync,
            lock,
        };
        // Another writer may have set the folder up while this one waited
        // for the lock.
        check_ours(dir)?;
        let meta_path = dir.join(META);
        if !meta_path.exists() {
            return Ok((store, None));
        }
        let mut loaded = load(dir, true)?;
        store.migrate(&mut loaded)?;
        Ok((store, Some(loaded)))
    }

    /// Loads a folder for reading under a shared lock, released before
    /// returning (failing at once when a writer holds it). Nothing is
    /// written, except the lock file when the folder has none. `None`
    /// when the folder is absent or empty.
    pub(crate) fn read(dir: &Path) -> Result<Option<Loaded>, StateError> {
        if !dir.exists() {
            return Ok(None);
        }
        check_ours(dir)?;
        if !dir.join(META).exists() && !dir.join(LOCK).exists() {
            return Ok(None);
        }
        let mut lock = open_lock_file(dir)?;
        match lock.try_lock_shared() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(locked(dir, &mut lock, false)),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&dir.join(LOCK), e)),
        }
        let loaded = if dir.join(META).exists() {
            Some(load(dir, false)?)
        } else {
            None
        };
        drop(lock);
        Ok(loaded)
    }

    /// Moves the files of a v1 folder to their current paths, then marks
    /// the folder as current. A crash in between leaves a v1 folder whose
    /// files are at one path or the other; the next writer goes on.
    fn migrate(&self, loaded: &mut Loaded) -> Result<(), StateError> {
        if loaded.meta.format == FORMAT {
            return Ok(());
        }
        for (from, to) in std::mem::take(&mut loaded.moves) {
            let parent = to
                .parent()
                .ok_or_else(|| corrupt(&to, "has no parent folder"))?;
            create_dir_private(parent)?;
            fs::rename(&from, &to).map_err(|e| io_err(&to, e))?;
            if self.sync {
                sync_dir(parent)?;
                if let Some(old) = from.parent() {
                    sync_dir(old)?;
                }
            }
        }
        loaded.meta.format = FORMAT.to_string();
        self.write_meta(&loaded.meta)
    }

    /// The folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where an object lives: encoded components, checked to stay in the
    /// folder. An id that cannot be stored (empty kind or name) is an
    /// error.
    pub(crate) fn object_path(&self, id: &ObjectId) -> Result<PathBuf, StateError> {
        object_path(&self.dir, id)
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
        let path = self.object_path(id)?;
        self.write_atomic(&path, &emit(&path, &sorted(value))?)
    }

    /// Removes one object's file.
    pub(crate) fn delete_object(&self, id: &ObjectId) -> Result<(), StateError> {
        let path = self.object_path(id)?;
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
        let path = inventory_path(&self.dir, owner);
        let file = InventoryFile {
            owner: owner.to_string(),
            entries: inv.entries.clone(),
        };
        let value = serde_json::to_value(&file).map_err(|e| corrupt(&path, e.to_string()))?;
        self.write_atomic(&path, &emit(&path, &value)?)
    }

    /// Write to a temporary file in the same folder, fsync, rename, fsync
    /// the folder. Files are readable by the owner only: they hold Secrets.
    fn write_atomic(&self, path: &Path, text: &str) -> Result<(), StateError> {
        if !path.starts_with(&self.dir) {
            return Err(corrupt(path, "is outside the state folder"));
        }
        let parent = path
            .parent()
            .ok_or_else(|| corrupt(path, "has no parent folder"))?;
        create_dir_private(parent)?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
        let result = (|| {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(|e| io_err(&tmp, e))?;
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

impl Drop for Store {
    /// Clears the pid before the lock goes, so that a folder whose writer
    /// has exited holds the same bytes whoever wrote it. The lock is
    /// released explicitly, not by closing the file: a child process the
    /// host forks at that moment shares the descriptor until its `exec`,
    /// and `flock` locks belong to the descriptor, so closing ours alone
    /// left the folder locked for that instant.
    fn drop(&mut self) {
        let _ = self.lock.set_len(0);
        let _ = self.lock.unlock();
    }
}

/// Where an object lives in `dir` (see [`Store::object_path`]).
pub(crate) fn object_path(dir: &Path, id: &ObjectId) -> Result<PathBuf, StateError> {
    let refuse = |message: String| StateError::InvalidId {
        subject: id.subject(),
        message,
    };
    let parts = object_parts(id).map_err(refuse)?;
    join_checked(dir, &parts).map_err(refuse)
}

fn inventory_path(dir: &Path, owner: &str) -> PathBuf {
    dir.join("inventories")
        .join(format!("{}.yaml", encode_owner(owner)))
}

/// Reads a state folder. `writer`: leftovers of interrupted writes are
/// removed (a reader leaves them: they may be a live writer's).
fn load(dir: &Path, writer: bool) -> Result<Loaded, StateError> {
    let meta_path = dir.join(META);
    let text = fs::read_to_string(&meta_path).map_err(|e| io_err(&meta_path, e))?;
    let meta: Meta = crate::yaml::from_str(&meta_path.display().to_string(), &text)
        .map_err(|e| unparsable(&meta_path, e))?;
    let v1 = meta.format == FORMAT_V1;
    if meta.format != FORMAT && !v1 {
        return Err(corrupt(
            &meta_path,
            format!(
                "unknown format {:?}, expected {FORMAT:?} (or {FORMAT_V1:?}, which is moved to it): a newer driftless wrote this folder",
                meta.format
            ),
        ));
    }
    let mut loaded = Loaded {
        meta,
        objects: BTreeMap::new(),
        inventories: BTreeMap::new(),
        moves: Vec::new(),
    };
    let objects_dir = dir.join("objects");
    if objects_dir.exists() {
        let mut files = Vec::new();
        walk_files(&objects_dir, writer, v1, &mut files)?;
        for (file, hidden) in files {
            let Some((id, value, moved)) = load_object(dir, &file, v1, hidden)? else {
                continue;
            };
            if let Some(to) = moved {
                loaded.moves.push((file.clone(), to));
            }
            if loaded.objects.insert(id.clone(), value).is_some() {
                return Err(corrupt(
                    &file,
                    format!("holds {}, which another file holds too", id.subject()),
                ));
            }
        }
    }
    let inv_dir = dir.join("inventories");
    if inv_dir.exists() {
        let mut files = Vec::new();
        walk_files(&inv_dir, writer, false, &mut files)?;
        for (file, _) in files {
            let text = fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
            let inv: InventoryFile = crate::yaml::from_str(&file.display().to_string(), &text)
                .map_err(|e| unparsable(&file, e))?;
            let expected = inventory_path(dir, &inv.owner);
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
            loaded.inventories.insert(
                inv.owner,
                Inventory {
                    entries: inv.entries,
                },
            );
        }
    }
    Ok(loaded)
}

/// One object file: its id, its value, and where it must move to (a v1
/// file at its old path). `hidden`: a dot file of a v1 folder, which v1
/// wrote for names starting with `.` but never read back; it is taken
/// when it is such an object and skipped (an editor's file) otherwise.
#[allow(clippy::type_complexity)]
fn load_object(
    dir: &Path,
    file: &Path,
    v1: bool,
    hidden: bool,
) -> Result<Option<(ObjectId, Value, Option<PathBuf>)>, StateError> {
    let text = fs::read_to_string(file).map_err(|e| io_err(file, e))?;
    let parsed = crate::yaml::from_str::<Value>(&file.display().to_string(), &text)
        .map_err(|e| unparsable(file, e))
        .and_then(|v| Object::new(v).map_err(|e| corrupt(file, e.to_string())));
    let object = match parsed {
        Ok(o) => o,
        Err(_) if hidden => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = object.id();
    let expected = object_path(dir, &id).map_err(|e| corrupt(file, e.to_string()))?;
    if expected == file {
        return Ok(Some((id, object.into_value(), None)));
    }
    if v1 && legacy_object_path(dir, &id).as_deref() == Some(file) {
        return Ok(Some((id, object.into_value(), Some(expected))));
    }
    if hidden {
        return Ok(None);
    }
    Err(corrupt(
        file,
        format!(
            "holds {} ({}), which belongs in {}",
            id.subject(),
            object.api_version(),
            expected.display()
        ),
    ))
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

/// Every state file under `dir`, sorted, with whether it is a dot file
/// worth a look (`*.yaml` of a v1 folder). Leftovers of interrupted writes
/// (temporary files) are removed by a writer and skipped by a reader;
/// editors' hidden and backup files are skipped; a symlink or anything
/// else is an error.
fn walk_files(
    dir: &Path,
    writer: bool,
    v1: bool,
    out: &mut Vec<(PathBuf, bool)>,
) -> Result<(), StateError> {
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
        let kind = fs::symlink_metadata(&path)
            .map_err(|e| io_err(&path, e))?
            .file_type();
        if kind.is_symlink() {
            return Err(corrupt(
                &path,
                "is a symbolic link: the state folder holds only folders and files",
            ));
        } else if kind.is_dir() {
            walk_files(&path, writer, v1, out)?;
        } else if name.starts_with(TMP_PREFIX) {
            if writer {
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
        } else if name.starts_with('.') || name.ends_with('~') {
            // An editor's swap or backup file next to a hand-edited object,
            // or (v1) an object whose name starts with a dot.
            if v1 && name.ends_with(".yaml") {
                out.push((path, true));
            }
        } else if name.ends_with(".yaml") {
            out.push((path, false));
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

    #[test]
    fn components_encode_to_one_file_name() {
        assert_eq!(encode_component("Deployment", "", ""), "Deployment");
        assert_eq!(
            encode_component("system:controller:x_y.z", "", ""),
            "system:controller:x_y.z"
        );
        assert_eq!(encode_component("..", "", ""), "%2E.");
        assert_eq!(encode_component(".hidden", "", ""), "%2Ehidden");
        assert_eq!(encode_component("/tmp/x", "", ""), "%2Ftmp%2Fx");
        assert_eq!(encode_component("a b%", "", ""), "a%20b%25");
        assert_eq!(encode_component("core", CORE, ""), "%63ore");
        assert_eq!(encode_component("_cluster", CLUSTER, ""), "%5Fcluster");
        let long = "a".repeat(300);
        let short = encode_component(&long, "", ".yaml");
        assert_eq!(short.len() + ".yaml".len(), NAME_MAX);
        assert!(short.starts_with("aaaa") && short.contains('~'), "{short}");
        let escapes = "%".repeat(100);
        let short = encode_component(&escapes, "", ".yaml");
        assert!(short.len() + 5 <= NAME_MAX);
        let prefix = short.split('~').next().unwrap_or_default();
        assert_eq!(prefix.len() % 3, 0, "{short}");
    }

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-zA-Z0-9./%:_ ~-]{1,12}",
            "\\PC{1,8}",
            Just("..".to_string()),
            Just(".".to_string()),
            Just("core".to_string()),
            Just("_cluster".to_string()),
            "[\\x00-\\x1f]{1,4}",
            "[a-z%.]{240,300}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Whatever the ids, the store writes inside its folder only, one
        /// file per id, and reads every object back.
        #[test]
        fn any_id_stays_in_the_folder_and_round_trips(
            ids in proptest::collection::vec((text(), text(), proptest::option::of(text()), text()), 1..8),
        ) {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("state");
            let (store, _) = Store::open(&dir, false).unwrap();
            store.write_meta(&Meta { format: FORMAT.into(), ..Meta::default() }).unwrap();
            let mut written = BTreeMap::new();
            for (group, kind, ns, name) in ids {
                let group = group.replace('/', "");
                let api_version = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
                let mut metadata = serde_json::json!({"name": name});
                if let Some(ns) = &ns {
                    metadata["namespace"] = Value::String(ns.clone());
                }
                let value = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
                let id = Object::new(value.clone()).unwrap().id();
                store.write_object(&id, &value).unwrap();
                written.insert(id, value);
            }
            let outside: Vec<_> = fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            proptest::prop_assert_eq!(outside, vec![std::ffi::OsString::from("state")]);
            let loaded = load(&dir, true).unwrap();
            proptest::prop_assert_eq!(loaded.objects, written);
        }
    }

    #[test]
    fn joined_paths_stay_in_the_folder() {
        let dir = Path::new("/state");
        assert!(join_checked(dir, &["a".into(), "b.yaml".into()]).is_ok());
        for bad in ["..", ".", "/etc", "a/b", "", "a\0b"] {
            assert!(join_checked(dir, &[bad.to_string()]).is_err(), "{bad:?}");
        }
    }
}
