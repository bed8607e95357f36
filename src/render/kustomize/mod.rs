//! A native kustomize: builds a folder of a [`Tree`] into objects the way
//! `kubectl kustomize` (kustomize v5.5) does, plus Flux's build behaviours.
//!
//! Files are read only through [`Tree::read`], so a path that leaves the
//! tree's root, or a symlink out of it, is an error in every mode.
//!
//! ```
//! use driftless::render::kustomize::{build, KustomizeOptions};
//! use driftless::source::Tree;
//!
//! let mut tree = Tree::new();
//! tree.insert_file("app/kustomization.yaml", &b"resources: [cm.yaml]\nnamePrefix: p-\n"[..]).unwrap();
//! tree.insert_file("app/cm.yaml", &b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"[..]).unwrap();
//! let out = build(&tree, "app", &KustomizeOptions::default()).unwrap();
//! assert_eq!(out.objects[0].name(), "p-c");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::object::Object;
use crate::render::{RenderError, Rendered, Renderer};
use crate::schema::Schema;
use crate::source::{join_path, PathError, Snapshot, Tree};
use crate::verify::Verified;
use crate::yaml::YamlLimits;

mod budget;
mod config;
pub mod emit;
mod fieldspec;
mod generate;
pub mod model;
mod nameref;
mod openapi;
mod patch;
mod replace;
mod resource;
mod sort;
mod transform;
mod vars;

pub use generate::name_hash;
pub use model::Kustomization;

use resource::{Behavior, Res};

/// The file names kustomize recognizes, in its order of preference.
pub const KUSTOMIZATION_FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Below this many resource files, a kustomization is parsed on the
/// calling thread.
const PRELOAD_MIN: usize = 32;

/// How many objects a per-object transformer block holds.
const BLOCK: usize = 64;

/// Options of a build.
#[derive(Clone, Debug)]
pub struct KustomizeOptions {
    /// Flux's behaviours: generate a kustomization for a folder without
    /// one, and allow files anywhere inside the tree (not only below the
    /// kustomization).
    pub flux: bool,
    /// Type knowledge: scopes and strategic-merge keys.
    pub schema: Schema,
    /// Limits for every YAML file read.
    pub limits: YamlLimits,
    /// Deepest nesting of kustomizations accepted (the smaller of this and
    /// `limits.max_kustomization_depth` applies).
    pub max_depth: usize,
    /// Plaintext-Secret refusal and SOPS decryption.
    pub secrets: crate::sops::SecretRules,
    /// How many threads may parse the resource files of one kustomization
    /// (large folders only; the output is the same for any value).
    /// Defaults to the machine's parallelism.
    pub parallelism: usize,
}

impl Default for KustomizeOptions {
    fn default() -> Self {
        KustomizeOptions {
            flux: false,
            schema: Schema::kubernetes(),
            limits: YamlLimits::default(),
            max_depth: 64,
            secrets: crate::sops::SecretRules::default(),
            parallelism: crate::par::available(),
        }
    }
}

impl KustomizeOptions {
    /// Options with Flux's behaviours turned on.
    pub fn flux() -> Self {
        KustomizeOptions {
            flux: true,
            ..KustomizeOptions::default()
        }
    }
}

/// The kustomize [`Renderer`].
#[derive(Clone, Debug, Default)]
pub struct Kustomize {
    /// Build options.
    pub options: KustomizeOptions,
}

impl Kustomize {
    /// A renderer with these options.
    pub fn new(options: KustomizeOptions) -> Self {
        Kustomize { options }
    }
}

impl Renderer for Kustomize {
    fn render(&self, snapshot: &Verified<Snapshot>, path: &str) -> Result<Rendered, RenderError> {
        build(&snapshot.tree, path, &self.options)
    }

    fn render_with_secrets(
        &self,
        snapshot: &Verified<Snapshot>,
        path: &str,
        secrets: &crate::sops::SecretRules,
    ) -> Result<Rendered, RenderError> {
        let mut options = self.options.clone();
        options.secrets = crate::sops::SecretRules {
            refuse_plaintext: options.secrets.refuse_plaintext || secrets.refuse_plaintext,
            allow_plaintext: if secrets.refuse_plaintext {
                secrets.allow_plaintext.clone()
            } else {
                options.secrets.allow_plaintext.clone()
            },
            decryptor: secrets.decryptor.clone().or(options.secrets.decryptor),
        };
        build(&snapshot.tree, path, &options)
    }
}

/// Builds the kustomization in folder `path` of `tree`.
pub fn build(tree: &Tree, path: &str, options: &KustomizeOptions) -> Result<Rendered, RenderError> {
    build_with_overlay(tree, path, None, options)
}

/// Builds folder `path`, then applies `overlay` on top of the result as if
/// it were a component of that folder: its resources and generators are
/// added and its transformers (namespace, prefix, labels, patches, images,
/// ...) run over everything. Relative paths in the overlay resolve against
/// `path`. This is how a Flux `Kustomization`'s own fields are layered on.
pub fn build_with_overlay(
    tree: &Tree,
    path: &str,
    overlay: Option<&Kustomization>,
    options: &KustomizeOptions,
) -> Result<Rendered, RenderError> {
    let root = join_path("", path).map_err(|e| RenderError::new(path, e.to_string()))?;
    let mut b = Builder {
        tree,
        opts: options,
        warnings: Vec::new(),
        stack: Vec::new(),
        schema: options.schema.clone(),
        budget: budget::Budget::new(options.limits.max_build_nodes),
    };
    let (mut acc, top) = b.build_dir(&root, true)?;
    if let Some(ov) = overlay {
        b.accumulate(&root, ov, &format!("{root}/<overlay>"), &mut acc)?;
    }
    b.finish(acc, &top)
}

/// The `resources` of the kustomization Flux's kustomize-controller
/// generates for folder `dir` when it has none: every YAML file (empty ones
/// add nothing), every subfolder with its own kustomization file as a
/// single entry, other subfolders searched recursively. Paths are relative
/// to `dir`, in tree order. A YAML file that does not decode as Kubernetes
/// objects is an error naming the file and the line, as Flux's generator
/// fails the build on it ("failed to decode Kubernetes YAML").
pub fn flux_generated_resources(
    tree: &Tree,
    dir: &str,
    options: &KustomizeOptions,
) -> Result<Vec<String>, RenderError> {
    let root = join_path("", dir).map_err(|e| RenderError::new(dir, e.to_string()))?;
    let b = Builder {
        tree,
        opts: options,
        warnings: Vec::new(),
        stack: Vec::new(),
        schema: options.schema.clone(),
        budget: budget::Budget::new(options.limits.max_build_nodes),
    };
    Ok(b.flux_generate(&root)?.resources)
}

/// What a kustomization build has gathered.
#[derive(Default)]
struct Acc {
    res: Vec<Res>,
    vars: Vec<(model::Var, String)>,
    refs: Vec<config::NameRef>,
}

struct Builder<'a> {
    tree: &'a Tree,
    opts: &'a KustomizeOptions,
    warnings: Vec<String>,
    stack: Vec<String>,
    schema: Schema,
    /// The nodes the build may still create.
    budget: budget::Budget,
}

fn is_remote(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.contains("://")
        || l.starts_with("git@")
        || l.starts_with("github.com/")
        || l.starts_with("gitlab.com/")
        || l.starts_with("bitbucket.org/")
        || l.contains("?ref=")
}

/// A path error while reading for `file`, naming the path once: the
/// error's own path is left out when it is `file`.
fn path_err(file: &str, e: PathError) -> RenderError {
    match e {
        PathError::NotFound { path } if path == file => {
            RenderError::new(file, "no such file or directory")
        }
        PathError::IsADirectory { path } if path == file => {
            RenderError::new(file, "is a directory")
        }
        e => RenderError::new(file, e.to_string()),
    }
}

impl<'a> Builder<'a> {
    fn read_text(&self, path: &str, from: &str) -> Result<&'a str, RenderError> {
        let bytes = self.tree.read(path).map_err(|e| path_err(from, e))?;
        std::str::from_utf8(bytes).map_err(|_| RenderError::new(path, "file is not valid UTF-8"))
    }

    /// Resolves a file reference of kustomization `file` in folder `dir`,
    /// enforcing kustomize's root-only rule outside Flux mode.
    fn file_path(
        &self,
        dir: &str,
        rel: &str,
        file: &str,
        field: &str,
    ) -> Result<String, RenderError> {
        if is_remote(rel) {
            return Err(RenderError::new(
                file,
                format!(
                    "remote file {rel:?} is not supported: only files inside the source are read"
                ),
            )
            .with_field(field.to_string()));
        }
        let p = join_path(dir, rel).map_err(|e| path_err(file, e).with_field(field.to_string()))?;
        if !(self.opts.flux || dir.is_empty() || p == dir || p.starts_with(&format!("{dir}/"))) {
            return Err(RenderError::new(
                file,
                format!("security; file '{p}' is not in or below '{dir}'"),
            )
            .with_field(field.to_string()));
        }
        Ok(p)
    }

    fn find_kustomization(&self, dir: &str) -> Result<Option<String>, RenderError> {
        let mut found = Vec::new();
        for n in KUSTOMIZATION_FILE_NAMES {
            let p = if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            };
            match self.tree.read(&p) {
                Ok(_) => found.push(p),
                Err(PathError::NotFound { .. }) | Err(PathError::IsADirectory { .. }) => {}
                Err(e) => return Err(path_err(&p, e)),
            }
        }
        if found.len() > 1 {
            return Err(RenderError::new(
                dir,
                format!("found multiple kustomization files: {}", found.join(", ")),
            ));
        }
        Ok(found.pop())
    }

    fn load_kustomization(
        &mut self,
        dir: &str,
        root: bool,
    ) -> Result<(Kustomization, String), RenderError> {
        match self.find_kustomization(dir)? {
            Some(file) => {
                let text = self.read_text(&file, &file)?;
                let k = parse_kustomization(&file, text)?;
                let bare = Kustomization {
                    api_version: None,
                    kind: None,
                    ..k.clone()
                };
                if bare == Kustomization::default() {
                    let base = file.rsplit('/').next().unwrap_or(&file).to_string();
                    return Err(RenderError::new(&file, format!("{base} is empty")));
                }
                Ok((k, file))
            }
            None if self.opts.flux && root => {
                let k = self.flux_generate(dir)?;
                Ok((k, format!("{dir}/kustomization.yaml (generated)")))
            }
            None => Err(RenderError::new(
                dir,
                "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory",
            )),
        }
    }

    /// Flux's generated kustomization for a folder without one.
    fn flux_generate(&self, dir: &str) -> Result<Kustomization, RenderError> {
        let mut resources = Vec::new();
        self.flux_scan(dir, dir, &mut resources)?;
        Ok(Kustomization {
            resources,
            ..Kustomization::default()
        })
    }

    fn flux_scan(&self, root: &str, dir: &str, out: &mut Vec<String>) -> Result<(), RenderError> {
        let entries = self.tree.list_dir(dir).map_err(|e| path_err(dir, e))?;
        for (name, is_dir) in entries {
            let p = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let rel = p
                .strip_prefix(root)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(&p)
                .to_string();
            if is_dir {
                if self.find_kustomization(&p)?.is_some() {
                    out.push(rel);
                } else {
                    self.flux_scan(root, &p, out)?;
                }
                continue;
            }
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            // Flux's generator lists every YAML file, and fails the build
            // on one that does not decode as Kubernetes objects ("failed to
            // decode Kubernetes YAML from <file>"): skipping it instead
            // would turn a typo into a prune
            let decode = |message: String| {
                RenderError::new(&p, format!("failed to decode Kubernetes YAML: {message}"))
            };
            let bytes = self.tree.read(&p).map_err(|e| path_err(&p, e))?;
            let text = std::str::from_utf8(bytes)
                .map_err(|e| decode(format!("the file is not valid UTF-8 ({e})")))?;
            let docs =
                crate::yaml::load_documents_at(&p, text, &self.opts.limits).map_err(|e| {
                    let mut err = decode(e.message);
                    if let Some(line) = e.line {
                        err.file = format!("{p}:{line}");
                    }
                    err
                })?;
            for (line, d) in &docs {
                check_resource_doc(d).map_err(|e| {
                    let mut err = decode(e.to_string());
                    err.file = format!("{p}:{line}");
                    err
                })?;
            }
            // an empty file adds nothing, as in kustomize
            if !docs.is_empty() {
                out.push(rel);
            }
        }
        Ok(())
    }

    fn build_dir(&mut self, dir: &str, root: bool) -> Result<(Acc, Kustomization), RenderError> {
        if self.stack.iter().any(|d| d == dir) {
            let mut cycle = self.stack.clone();
            cycle.push(dir.to_string());
            return Err(RenderError::new(
                dir,
                format!("cycle detected: {}", cycle.join(" -> ")),
            ));
        }
        if self.stack.len()
            >= self
                .opts
                .max_depth
                .min(self.opts.limits.max_kustomization_depth)
        {
            return Err(RenderError::new(
                dir,
                "kustomizations are nested too deeply",
            ));
        }
        let (k, file) = self.load_kustomization(dir, root)?;
        self.budget
            .charge(1)
            .map_err(|e| RenderError::new(&file, e.message()))?;
        if k.kind.as_deref() == Some("Component") {
            return Err(RenderError::new(
                &file,
                "a Component cannot be used as a resource; list it under components",
            )
            .with_field("kind"));
        }
        self.stack.push(dir.to_string());
        let mut acc = Acc::default();
        let r = self.accumulate(dir, &k, &file, &mut acc);
        self.stack.pop();
        r?;
        Ok((acc, k))
    }

    fn warn_legacy(&mut self, k: &Kustomization, file: &str) {
        let mut w = |field: &str, repl: &str| {
            self.warnings.push(format!(
                "{file}: '{field}' is deprecated. Please use '{repl}' instead. Run 'kustomize edit fix' to update your Kustomization automatically."
            ));
        };
        if !k.bases.is_empty() {
            w("bases", "resources");
        }
        if !k.patches_strategic_merge.is_empty() {
            w("patchesStrategicMerge", "patches");
        }
        if !k.patches_json6902.is_empty() {
            w("patchesJson6902", "patches");
        }
        if !k.common_labels.is_empty() {
            w("commonLabels", "labels");
        }
        if !k.vars.is_empty() {
            w("vars", "replacements");
        }
        if !k.image_tags.is_empty() {
            w("imageTags", "images");
        }
    }

    fn unsupported(k: &Kustomization, file: &str) -> Result<(), RenderError> {
        let bad = |field: &str, why: &str| {
            Err(
                RenderError::new(file, format!("{field} is not supported: {why}"))
                    .with_field(field.to_string()),
            )
        };
        if !k.configurations.is_empty() {
            return bad(
                "configurations",
                "custom transformer configurations are not implemented",
            );
        }
        if !k.generators.is_empty() {
            return bad("generators", "generator plugins are not implemented");
        }
        if !k.transformers.is_empty() {
            return bad("transformers", "transformer plugins are not implemented");
        }
        if !k.validators.is_empty() {
            return bad("validators", "validator plugins are not implemented");
        }
        if !k.helm_charts.is_empty()
            || k.helm_globals.is_some()
            || !k.helm_chart_inflation_generator.is_empty()
        {
            return bad(
                "helmCharts",
                "Helm inflation is not implemented (kubectl needs --enable-helm)",
            );
        }
        Ok(())
    }

    /// Charges the build's node budget for an object the kustomization
    /// `file` takes in: its nodes and the names and namespaces it has had.
    fn take_in(&self, r: &Res, file: &str, field: &str) -> Result<(), RenderError> {
        let history = r.names.len() + r.namespaces.len() + r.prefixes.len() + r.suffixes.len();
        self.budget
            .charge(history)
            .and_then(|()| self.budget.charge_value(&r.value))
            .map_err(|e| {
                RenderError::new(file, e.message())
                    .with_object(r.subject())
                    .with_field(field)
            })
    }

    fn add(&self, acc: &mut Acc, ids: &mut HashSet<String>, r: Res) -> Result<(), RenderError> {
        if !ids.insert(id_key(&r)) {
            let Some(o) = acc.res.iter().find(|o| same_cur_id(o, &r)) else {
                return Err(RenderError::new(
                    &r.file,
                    format!("duplicate id {}", r.id_string()),
                ));
            };
            return Err(RenderError::new(
                &r.file,
                format!(
                    "may not add resource with an already registered id: {} (also in {})",
                    r.id_string(),
                    o.file
                ),
            )
            .with_object(r.subject()));
        }
        acc.res.push(r);
        Ok(())
    }

    fn load_resource_file(&self, path: &str, from: &str) -> Result<Vec<Res>, RenderError> {
        let raw = self.read_text(path, from)?;
        let encrypted = crate::sops::is_encrypted(path, raw);
        let rules = &self.opts.secrets;
        let decrypted = rules.decrypt(path, raw).map_err(|e| {
            let err = RenderError::new(path, e.message);
            match readable_subject(path, raw, &self.opts.limits) {
                Some(subject) => err.with_object(subject),
                None => err,
            }
        })?;
        if encrypted && decrypted.is_none() && rules.refuse_plaintext {
            return Err(RenderError::new(
                path,
                "the file is SOPS-encrypted but no decryption is configured",
            ));
        }
        let text = decrypted.as_ref().map(|d| d.text.as_str()).unwrap_or(raw);
        let docs = crate::yaml::load_documents(path, text, &self.opts.limits).map_err(|e| {
            RenderError::new(
                match e.line {
                    Some(l) => format!("{}:{l}", e.file),
                    None => e.file.clone(),
                },
                e.message.clone(),
            )
        })?;
        // the plaintext-Secret rule runs on the build's output; here each
        // object learns which of its values SOPS decrypted
        let mut out = Vec::new();
        let none = crate::sops::DocumentValues::default();
        for (i, d) in docs.into_iter().enumerate() {
            let values = match &decrypted {
                Some(dec) => Some(dec.documents.get(i).unwrap_or(&none)),
                None => None,
            };
            push_doc(d, path, values, &mut Vec::new(), &mut out)?;
        }
        Ok(out)
    }

    /// Parses the resource files `k` lists, on up to
    /// `opts.parallelism` threads when there are many; the results (errors
    /// included) are used in list order by [`Builder::accumulate`], so the
    /// output and the first error do not depend on the thread count.
    fn preload(
        &self,
        dir: &str,
        k: &Kustomization,
        file: &str,
    ) -> BTreeMap<String, Result<Vec<Res>, RenderError>> {
        let threads = self.opts.parallelism.clamp(1, 64);
        let count = k.resources.len() + k.bases.len();
        if threads < 2 || count < PRELOAD_MIN {
            return BTreeMap::new();
        }
        let mut paths: Vec<String> = Vec::with_capacity(count);
        for entry in k.resources.iter().chain(k.bases.iter()) {
            // an entry that is remote, a folder or a bad path is not
            // preloaded; [`Builder::accumulate`] meets it in list order and
            // fails on it there, so no error is lost
            if is_remote(entry) {
                continue;
            }
            match join_path(dir, entry) {
                Ok(p) if self.tree.is_dir(&p) => continue,
                Ok(_) => {}
                Err(_) => continue,
            }
            if let Ok(p) = self.file_path(dir, entry, file, "resources") {
                paths.push(p);
            }
        }
        paths.sort_unstable();
        paths.dedup();
        if paths.len() < PRELOAD_MIN {
            return BTreeMap::new();
        }
        crate::par::in_runs(&mut paths, threads, |_, run| {
            run.iter()
                .map(|p| (p.clone(), self.load_resource_file(p, file)))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// Runs `f` over `res` in blocks of [`BLOCK`] objects, on up to
    /// `opts.parallelism` threads when there are many; `f` must change each
    /// object on its own. The first error in object order wins.
    fn in_blocks(
        &self,
        res: &mut [Res],
        f: &(dyn Fn(&mut [Res]) -> Result<(), RenderError> + Sync),
    ) -> Result<(), RenderError> {
        let threads = if res.len() >= 4 * BLOCK {
            self.opts.parallelism
        } else {
            1
        };
        crate::par::in_runs(res, threads, |_, run| run.chunks_mut(BLOCK).try_for_each(f))
            .into_iter()
            .collect()
    }

    fn accumulate(
        &mut self,
        dir: &str,
        k: &Kustomization,
        file: &str,
        acc: &mut Acc,
    ) -> Result<(), RenderError> {
        Self::unsupported(k, file)?;
        self.warn_legacy(k, file);
        // kustomize's EnforceFields: an absent kind is a Kustomization, an
        // absent apiVersion the kind's own (empty is absent, as in Go); any
        // other value fails the build
        let kind = k
            .kind
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("Kustomization");
        let want = match kind {
            "Kustomization" => "kustomize.config.k8s.io/v1beta1",
            "Component" => "kustomize.config.k8s.io/v1alpha1",
            other => {
                return Err(RenderError::new(
                    file,
                    format!(
                        "unsupported kind {other:?}: kind should be Kustomization or Component"
                    ),
                )
                .with_field("kind"))
            }
        };
        if let Some(api) = k
            .api_version
            .as_deref()
            .filter(|a| !a.is_empty() && *a != want)
        {
            return Err(RenderError::new(
                file,
                format!("unsupported apiVersion {api:?}: apiVersion for {kind} should be {want}"),
            )
            .with_field("apiVersion"));
        }
        if let Some(oa) = &k.openapi {
            openapi::load(self, dir, file, oa)?;
        }
        // resources and bases
        let mut ids: HashSet<String> = acc.res.iter().map(id_key).collect();
        let mut preloaded = self.preload(dir, k, file);
        for entry in k.resources.iter().chain(k.bases.iter()) {
            if is_remote(entry) {
                return Err(RenderError::new(
                    file,
                    format!("remote resource {entry:?} is not supported: only files inside the source are read"),
                )
                .with_field("resources"));
            }
            let p = join_path(dir, entry).map_err(|e| path_err(file, e).with_field("resources"))?;
            if self.tree.is_dir(&p) {
                let (sub, _) = self.build_dir(&p, false)?;
                for r in sub.res {
                    self.take_in(&r, file, "resources")?;
                    self.add(acc, &mut ids, r)?;
                }
                acc.vars.extend(sub.vars);
                acc.refs.extend(sub.refs);
            } else {
                let p = self.file_path(dir, entry, file, "resources")?;
                let loaded = match preloaded.remove(&p) {
                    Some(loaded) => loaded,
                    None => self.load_resource_file(&p, file),
                };
                let rs = loaded.map_err(|e| {
                    if e.file == file {
                        e.with_field("resources")
                    } else {
                        e
                    }
                })?;
                for r in rs {
                    self.take_in(&r, file, "resources")?;
                    self.add(acc, &mut ids, r)?;
                }
            }
        }
        // generators
        for g in &k.config_map_generator {
            let r = generate::generate(
                self.tree,
                dir,
                file,
                g,
                false,
                k.generator_options.as_ref(),
                &self.opts.secrets,
            )?;
            self.check_generator_files(dir, file, g)?;
            self.take_in(&r, file, "configMapGenerator")?;
            self.merge_generated(acc, r, file)?;
        }
        for g in &k.secret_generator {
            let r = generate::generate(
                self.tree,
                dir,
                file,
                g,
                true,
                k.generator_options.as_ref(),
                &self.opts.secrets,
            )?;
            self.check_generator_files(dir, file, g)?;
            self.take_in(&r, file, "secretGenerator")?;
            self.merge_generated(acc, r, file)?;
        }
        // components
        for c in &k.components {
            if is_remote(c) {
                return Err(RenderError::new(
                    file,
                    format!("remote component {c:?} is not supported"),
                )
                .with_field("components"));
            }
            let p = join_path(dir, c).map_err(|e| path_err(file, e).with_field("components"))?;
            if !self.tree.is_dir(&p) {
                return Err(
                    RenderError::new(file, format!("component {c:?} is not a directory"))
                        .with_field("components"),
                );
            }
            if self.stack.iter().any(|d| d == &p) {
                return Err(RenderError::new(
                    &p,
                    format!("cycle detected: {} -> {p}", self.stack.join(" -> ")),
                ));
            }
            let (ck, cfile) = self.load_kustomization(&p, false)?;
            if ck.kind.as_deref() != Some("Component") {
                return Err(RenderError::new(
                    &cfile,
                    format!(
                        "expected kind 'Component' for path '{p}' but got '{}'",
                        ck.kind.as_deref().unwrap_or("Kustomization")
                    ),
                )
                .with_field("kind"));
            }
            self.stack.push(p.clone());
            let r = self.accumulate(&p, &ck, &cfile, acc);
            self.stack.pop();
            r?;
        }
        // crds
        for c in &k.crds {
            let p = self.file_path(dir, c, file, "crds")?;
            let text = self.read_text(&p, file)?;
            openapi::load_crds(self, &p, text, acc)?;
        }
        // transformers, in kustomize's order
        for (i, p) in k.patches_strategic_merge.iter().enumerate() {
            patch::legacy_smp(self, dir, file, i, p, acc)?;
        }
        for (i, p) in k.patches.iter().enumerate() {
            patch::apply(self, dir, file, i, p, acc)?;
        }
        // namespace, prefix/suffix, labels, annotations (and images when no
        // legacy JSON 6902 patch sits between them) change each object on
        // its own, so they run object block by object block (each block
        // stays in cache) and, for large sets, blocks on several threads;
        // the result is the same as running each transformer over all
        // objects in turn
        let mut label_sets = Vec::with_capacity(k.labels.len());
        for l in &k.labels {
            let mut specs = if l.include_selectors {
                config::common_labels()
            } else if l.include_templates {
                config::template_labels()
            } else {
                config::metadata_labels()
            };
            for f in &l.fields {
                specs.push(fieldspec::Fs::new(
                    &f.path,
                    f.group.as_deref(),
                    f.version.as_deref(),
                    f.kind.as_deref(),
                    f.create,
                ));
            }
            label_sets.push((&l.pairs, specs));
        }
        let annotation_specs = config::annotations();
        let mut images = k.images.clone();
        images.extend(k.image_tags.iter().cloned());
        // kustomize matches an image name as a regular expression and
        // crashes on one that does not compile (kubectl exits 2); refuse it
        // here, naming the file and the field, rather than match nothing
        for img in &images {
            transform::image_pattern(&img.name).map_err(|e| {
                RenderError::new(
                    file,
                    format!("images: name {:?} is not a valid pattern: {e}", img.name),
                )
                .with_field("images")
            })?;
        }
        let images_with_the_rest = k.patches_json6902.is_empty();
        let namespace = k.namespace.as_deref().filter(|s| !s.is_empty());
        let prefix = k.name_prefix.as_deref().unwrap_or_default();
        let suffix = k.name_suffix.as_deref().unwrap_or_default();
        let schema = &self.schema;
        let per_object = |res: &mut [Res]| -> Result<(), RenderError> {
            if let Some(ns) = namespace {
                transform::namespace(res, ns, schema);
            }
            if !prefix.is_empty() || !suffix.is_empty() {
                transform::prefix_suffix(res, prefix, suffix);
            }
            transform::common_labels(res, &k.common_labels)?;
            for (pairs, specs) in &label_sets {
                transform::set_map_entries(res, pairs, specs)?;
            }
            transform::set_map_entries(res, &k.common_annotations, &annotation_specs)?;
            if images_with_the_rest {
                transform::images(res, &images);
            }
            Ok(())
        };
        self.in_blocks(&mut acc.res, &per_object)?;
        for (i, p) in k.patches_json6902.iter().enumerate() {
            patch::legacy_json6902(self, dir, file, i, p, acc)?;
        }
        // replicas only touch replica counts, so running after images is
        // the same as before them
        transform::replicas(&mut acc.res, &k.replicas, file)?;
        if !images_with_the_rest {
            transform::images(&mut acc.res, &images);
        }
        replace::apply_all(self, dir, file, &k.replacements, acc)?;
        for v in &k.vars {
            if acc.vars.iter().any(|(o, _)| o.name == v.name) {
                return Err(RenderError::new(
                    file,
                    format!("var '{}' already encountered", v.name),
                )
                .with_field("vars"));
            }
            acc.vars.push((v.clone(), file.to_string()));
        }
        Ok(())
    }

    fn check_generator_files(
        &self,
        dir: &str,
        file: &str,
        g: &model::GeneratorArgs,
    ) -> Result<(), RenderError> {
        for f in g.files.iter().chain(g.envs.iter()).chain(g.env.iter()) {
            let rel = f.split_once('=').map(|(_, p)| p).unwrap_or(f);
            self.file_path(dir, rel, file, "files")?;
        }
        Ok(())
    }

    fn merge_generated(&self, acc: &mut Acc, r: Res, file: &str) -> Result<(), RenderError> {
        let behavior = r.behavior.unwrap_or(Behavior::Create);
        let matches: Vec<usize> = acc
            .res
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.kind() == r.kind()
                    && o.group() == r.group()
                    && o.names.iter().any(|n| n == r.name())
                    && (r.namespace().is_empty() || resource::ns_eq(o.namespace(), r.namespace()))
            })
            .map(|(i, _)| i)
            .collect();
        match (behavior, matches.as_slice()) {
            (Behavior::Create, []) => {
                acc.res.push(r);
                Ok(())
            }
            (Behavior::Create, _) => Err(RenderError::new(
                file,
                format!(
                    "may not add resource with an already registered id: {}",
                    r.id_string()
                ),
            )
            .with_object(r.subject())),
            (_, []) => Err(RenderError::new(
                file,
                format!(
                    "id {} does not exist; cannot merge or replace",
                    r.id_string()
                ),
            )
            .with_object(r.subject())),
            (b, [i]) => {
                let old = &mut acc.res[*i];
                let mut nv = r.value.clone();
                let merge_map = |field: &str, old: &Value, nv: &mut Value| {
                    let mut m = old
                        .get(field)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(n) = nv.get(field).and_then(Value::as_object) {
                        for (k, v) in n {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                    if !m.is_empty() {
                        if let Some(o) = nv.as_object_mut() {
                            o.insert(field.to_string(), Value::Object(m));
                        }
                    }
                };
                let old_md = old.value.get("metadata").cloned().unwrap_or(Value::Null);
                if let Some(md) = nv.get_mut("metadata") {
                    merge_map("labels", &old_md, md);
                    merge_map("annotations", &old_md, md);
                    if let Some(m) = md.as_object_mut() {
                        m.insert("name".into(), Value::String(old.name().to_string()));
                        if old.namespace().is_empty() {
                            m.remove("namespace");
                        } else {
                            m.insert(
                                "namespace".into(),
                                Value::String(old.namespace().to_string()),
                            );
                        }
                    }
                }
                if b == Behavior::Merge {
                    let ov = old.value.clone();
                    merge_map("data", &ov, &mut nv);
                    merge_map("binaryData", &ov, &mut nv);
                    // the values kept from the old object keep their origin
                    old.sealed.extend(r.sealed);
                } else {
                    old.sealed = r.sealed;
                    old.from_sops = false;
                }
                old.value = nv;
                // a plain object stays unhashed; a generated one follows
                // the newest generator's options
                if old.behavior.is_some() {
                    old.needs_hash = r.needs_hash;
                }
                Ok(())
            }
            (_, _) => Err(RenderError::new(
                file,
                format!("found multiple objects matching {}", r.id_string()),
            )),
        }
    }

    fn finish(mut self, mut acc: Acc, top: &Kustomization) -> Result<Rendered, RenderError> {
        // hash suffixes
        for r in acc.res.iter_mut() {
            if r.needs_hash {
                let h = generate::name_hash(&r.value);
                let n = format!("{}-{h}", r.name());
                r.set_name(&n);
            }
        }
        let mut refs = config::name_refs();
        refs.extend(acc.refs.iter().cloned());
        nameref::fix(&mut acc.res, &refs, &self.schema, self.opts.parallelism)?;
        vars::resolve(&mut acc.res, &acc.vars)?;
        // build metadata
        for m in &top.build_metadata {
            match m.as_str() {
                "managedByLabel" => {
                    for r in acc.res.iter_mut() {
                        let md = r.metadata_mut();
                        let labels = md
                            .entry("labels")
                            .or_insert_with(|| Value::Object(Default::default()));
                        if let Some(l) = labels.as_object_mut() {
                            l.insert(
                                "app.kubernetes.io/managed-by".into(),
                                Value::String("kustomize-(devel)".into()),
                            );
                        }
                    }
                }
                "originAnnotations" | "transformerAnnotations" => {
                    return Err(RenderError::new(
                        "buildMetadata",
                        format!("buildMetadata {m} is not supported"),
                    )
                    .with_field("buildMetadata"));
                }
                // kustomize ignores options it does not know
                _ => {}
            }
        }
        sort::sort(&mut acc.res, top.sort_options.as_ref())?;
        let mut secrets = self.opts.secrets.provenance();
        let mut objects = Vec::with_capacity(acc.res.len());
        for r in acc.res {
            if let Err(e) = crate::object::check_value(&r.value) {
                return Err(RenderError::new(&r.file, e.to_string()).with_object(r.subject()));
            }
            if secrets.refuse {
                secrets.origins.push(crate::sops::Origin {
                    file: r.file,
                    sealed: r.sealed,
                    from_sops: r.from_sops,
                });
            }
            objects.push(Object::new(r.value).map_err(|e| RenderError::new("", e.to_string()))?);
        }
        // the plaintext-Secret rule, on the final objects
        secrets.check(&objects)?;
        let mut seen = BTreeSet::new();
        self.warnings.retain(|w| seen.insert(w.clone()));
        Ok(Rendered {
            objects,
            warnings: self.warnings,
            secrets,
        })
    }
}

/// The current id as one string (group, version, kind, namespace, name).
fn id_key(r: &Res) -> String {
    let ns = if r.namespace().is_empty() {
        "default"
    } else {
        r.namespace()
    };
    format!(
        "{}|{}|{}|{}|{}",
        r.group(),
        r.version(),
        r.kind(),
        ns,
        r.name()
    )
}

fn same_cur_id(a: &Res, b: &Res) -> bool {
    a.kind() == b.kind()
        && a.group() == b.group()
        && a.version() == b.version()
        && a.name() == b.name()
        && resource::ns_eq(a.namespace(), b.namespace())
}

/// Checks that a document is what [`push_doc`] accepts: an object, or a
/// `List` kind whose items are.
fn check_resource_doc(d: &Value) -> Result<(), crate::object::ObjectError> {
    let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List") {
        if let Some(items) = d.get("items") {
            return match items {
                Value::Array(items) => items.iter().try_for_each(check_resource_doc),
                _ => Ok(()),
            };
        }
    }
    crate::object::check_value(d)
}

/// Adds a document (expanding `List` kinds) to `out`. `sops` says which
/// values of the document SOPS decrypted, when it came from a SOPS file;
/// `prefix` is the path of `d` in that document.
fn push_doc(
    d: Value,
    file: &str,
    sops: Option<&crate::sops::DocumentValues>,
    prefix: &mut Vec<String>,
    out: &mut Vec<Res>,
) -> Result<(), RenderError> {
    let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List") && d.get("items").is_some() {
        if let Value::Object(mut map) = d {
            // kustomize drops a List whose `items` is not a sequence (the
            // parity case `res-list-items-not-a-sequence`)
            if let Some(Value::Array(items)) = map.remove("items") {
                prefix.push("items".to_string());
                for it in items {
                    push_doc(it, file, sops, prefix, out)?;
                }
                prefix.pop();
            }
        }
        return Ok(());
    }
    let d = Object::new(d)
        .map_err(|e| RenderError::new(file, e.to_string()))?
        .into_value();
    let mut r = Res::new(d, file);
    if let Some(values) = sops {
        r.sealed = crate::sops::Sealed::from_document(&r.value, prefix, values);
        r.from_sops = true;
    }
    out.push(r);
    Ok(())
}

/// The subject of the one object in an encrypted file, when its kind and
/// name are stored in plaintext (SOPS with `encrypted_regex`). Only names
/// the object in a decryption error, so a file that does not parse names
/// none (the error itself is kept).
fn readable_subject(path: &str, raw: &str, limits: &crate::yaml::YamlLimits) -> Option<String> {
    let docs = crate::yaml::load_documents(path, raw, limits).ok()?;
    let [doc] = docs.as_slice() else { return None };
    let kind = doc.get("kind").and_then(Value::as_str)?;
    let name = doc.pointer("/metadata/name").and_then(Value::as_str)?;
    if kind.starts_with("ENC[") || name.starts_with("ENC[") {
        return None;
    }
    Some(
        match doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && !n.starts_with("ENC["))
        {
            Some(ns) => format!("{kind}/{ns}/{name}"),
            None => format!("{kind}/{name}"),
        },
    )
}

/// Parses a kustomization strictly; unknown fields are errors naming them.
pub fn parse_kustomization(file: &str, text: &str) -> Result<Kustomization, RenderError> {
    let v: Value = crate::yaml::from_str(file, text).map_err(|e| {
        RenderError::new(
            match e.line {
                Some(l) => format!("{}:{l}", e.file),
                None => e.file.clone(),
            },
            e.message.clone(),
        )
    })?;
    let v = if v.is_null() {
        Value::Object(Default::default())
    } else {
        v
    };
    if !v.is_object() {
        return Err(RenderError::new(file, "a kustomization must be a mapping"));
    }
    serde_json::from_value::<Kustomization>(v).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .strip_prefix("unknown field `")
            .and_then(|s| s.split('`').next())
            .map(str::to_string);
        let at = match crate::yaml::error_line::<Kustomization>(text) {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        let mut err = RenderError::new(
            at,
            format!(
                "invalid Kustomization: {}",
                crate::hint::unknown_field(&msg)
            ),
        );
        if let Some(f) = field {
            err = err.with_field(f);
        }
        err
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let mut t = Tree::new();
        for (p, c) in files {
            t.insert_file(p, c.as_bytes().to_vec()).unwrap();
        }
        t
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

    #[test]
    fn unknown_field_is_named() {
        let t = tree(&[
            (
                "k/kustomization.yaml",
                "resources: [cm.yaml]\nnamePrefx: x\n",
            ),
            ("k/cm.yaml", CM),
        ]);
        let e = build(&t, "k", &KustomizeOptions::default()).unwrap_err();
        assert_eq!(e.file, "k/kustomization.yaml:2");
        assert_eq!(e.field.as_deref(), Some("namePrefx"));
        assert_eq!(
            e.message,
            "invalid Kustomization: unknown field `namePrefx` (did you mean `namePrefix`?)"
        );
    }

    #[test]
    fn invalid_yaml_names_file_and_line() {
        let t = tree(&[
            ("k/kustomization.yaml", "resources: [bad.yaml]\n"),
            (
                "k/bad.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
            ),
        ]);
        let e = build(&t, "k", &KustomizeOptions::default()).unwrap_err();
        assert!(e.file.starts_with("k/bad.yaml:"), "{e}");
    }

    #[test]
    fn remote_resources_are_refused() {
        for mode in [KustomizeOptions::default(), KustomizeOptions::flux()] {
            let t = tree(&[(
                "k/kustomization.yaml",
                "resources:\n- https://github.com/x/y//deploy?ref=v1\n",
            )]);
            let e = build(&t, "k", &mode).unwrap_err();
            assert!(e.message.contains("remote resource"), "{e}");
            assert_eq!(e.field.as_deref(), Some("resources"));
        }
    }

    #[test]
    fn paths_and_symlinks_leaving_the_tree_are_errors() {
        for mode in [KustomizeOptions::default(), KustomizeOptions::flux()] {
            let t = tree(&[("k/kustomization.yaml", "resources: [../../etc/passwd]\n")]);
            assert!(build(&t, "k", &mode)
                .unwrap_err()
                .message
                .contains("leaves the source root"));
            let mut t = tree(&[("k/kustomization.yaml", "resources: [link.yaml]\n")]);
            t.insert_symlink("k/link.yaml", "../../outside.yaml")
                .unwrap();
            let e = build(&t, "k", &mode).unwrap_err();
            assert!(e.message.contains("outside the source root"), "{e}");
        }
    }

    #[test]
    fn cycle_is_an_error() {
        let t = tree(&[
            ("a/kustomization.yaml", "resources: [../b]\n"),
            ("b/kustomization.yaml", "resources: [../a]\n"),
        ]);
        let e = build(&t, "a", &KustomizeOptions::default()).unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
    }

    #[test]
    fn legacy_fields_warn_not_print() {
        let t = tree(&[
            (
                "k/kustomization.yaml",
                "resources: [cm.yaml]\npatchesStrategicMerge:\n- p.yaml\n",
            ),
            ("k/cm.yaml", CM),
            (
                "k/p.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {a: b}\n",
            ),
        ]);
        let out = build(&t, "k", &KustomizeOptions::default()).unwrap();
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].contains("patchesStrategicMerge"));
        assert_eq!(out.objects[0].pointer("/data/a").unwrap(), "b");
    }

    #[test]
    fn overlay_is_layered_on_top() {
        let t = tree(&[
            ("k/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("k/cm.yaml", CM),
        ]);
        let ov =
            parse_kustomization("overlay", "namespace: flux-system\nnamePrefix: o-\n").unwrap();
        let out = build_with_overlay(&t, "k", Some(&ov), &KustomizeOptions::default()).unwrap();
        assert_eq!(out.objects[0].name(), "o-c");
        assert_eq!(out.objects[0].namespace(), "flux-system");
    }

    #[test]
    fn renders_through_the_renderer_trait() {
        use crate::object::Revision;
        use crate::verify::danger::NoVerification;
        let t = tree(&[
            (
                "k/kustomization.yaml",
                "resources: [cm.yaml]\nnamespace: x\n",
            ),
            ("k/cm.yaml", CM),
        ]);
        let snap = Snapshot {
            revision: Revision::commit("0123456789abcdef0123456789abcdef01234567"),
            commit: None,
            tag: None,
            tree: t,
            history: None,
        };
        let verified = Verified::check(snap, &NoVerification).unwrap();
        let r: &dyn Renderer = &Kustomize::default();
        let out = r.render(&verified, "k").unwrap();
        assert_eq!(out.objects[0].namespace(), "x");
    }

    #[test]
    fn flux_generates_a_kustomization() {
        let t = tree(&[
            ("apps/a.yaml", CM),
            ("apps/notes.yaml", "just: values\n"),
            (
                "apps/sub/kustomization.yaml",
                "resources: [x.yaml]\nnamePrefix: s-\n",
            ),
            ("apps/sub/x.yaml", CM),
            (
                "apps/deep/more/y.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: y\n",
            ),
        ]);
        assert!(build(&t, "apps", &KustomizeOptions::default()).is_err());
        // a YAML file that is not Kubernetes objects fails the build, as
        // Flux's generator does
        let e = build(&t, "apps", &KustomizeOptions::flux()).unwrap_err();
        assert_eq!(e.file, "apps/notes.yaml:1", "{e}");
        assert!(
            e.message.contains("failed to decode Kubernetes YAML"),
            "{e}"
        );
        let mut t = t;
        t.remove("apps/notes.yaml");
        t.insert_file("apps/empty.yaml", Vec::new()).unwrap();
        t.insert_file(
            "apps/list.yaml",
            &b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l}\n"[..],
        )
        .unwrap();
        let out = build(&t, "apps", &KustomizeOptions::flux()).unwrap();
        let names: Vec<&str> = out.objects.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["c", "l", "s-c", "y"]);
    }

    /// The typo of issue 13: a dropped colon in a folder without a
    /// kustomization fails the build naming the file and the line; it is
    /// never skipped (a skipped file becomes a prune).
    #[test]
    fn flux_scan_fails_on_a_file_that_does_not_parse() {
        let t = tree(&[
            ("clusters/a.yaml", CM),
            (
                "clusters/apps.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  dependsOn\n    - name: infrastructure\n",
            ),
        ]);
        let e = build(&t, "clusters", &KustomizeOptions::flux()).unwrap_err();
        assert!(e.file.starts_with("clusters/apps.yaml:"), "{e}");
        assert!(
            e.message.contains("failed to decode Kubernetes YAML"),
            "{e}"
        );
        let e = flux_generated_resources(&t, "clusters", &KustomizeOptions::flux()).unwrap_err();
        assert!(e.file.starts_with("clusters/apps.yaml:"), "{e}");
        let mut t = t;
        t.insert_file("clusters/apps.yaml", &b"kind: ConfigMap\n\xff\n"[..])
            .unwrap();
        let e = build(&t, "clusters", &KustomizeOptions::flux()).unwrap_err();
        assert_eq!(e.file, "clusters/apps.yaml", "{e}");
        assert!(e.message.contains("UTF-8"), "{e}");
    }
}
