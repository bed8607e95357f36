//! The `Kustomization` file format (kustomize v5), parsed strictly: an
//! unknown field is an error that names it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A kustomization file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    /// `kustomize.config.k8s.io/v1beta1` or `v1alpha1` for components.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Kustomization` or `Component`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Free-form metadata (ignored).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Resources: files, folders or nested kustomizations.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Legacy bases (treated as resources).
    #[serde(default)]
    pub bases: Vec<String>,
    /// Components applied after the resources.
    #[serde(default)]
    pub components: Vec<String>,
    /// The namespace for all objects.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A prefix for all names.
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// A suffix for all names.
    #[serde(default)]
    pub name_suffix: Option<String>,
    /// Labels added to metadata and selectors.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Labels with control over selectors and templates.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Annotations added to all objects.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Patches (strategic merge or JSON 6902).
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// Legacy strategic merge patches (paths or inline documents).
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    /// Legacy JSON 6902 patches.
    #[serde(default)]
    pub patches_json6902: Vec<PatchJson6902>,
    /// Image overrides.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Legacy name of `images`.
    #[serde(default)]
    pub image_tags: Vec<Image>,
    /// Replica overrides.
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// ConfigMap generators.
    #[serde(default)]
    pub config_map_generator: Vec<GeneratorArgs>,
    /// Secret generators.
    #[serde(default)]
    pub secret_generator: Vec<GeneratorArgs>,
    /// Options for all generators of this kustomization.
    #[serde(default)]
    pub generator_options: Option<GeneratorOptions>,
    /// Replacements (inline or by path).
    #[serde(default)]
    pub replacements: Vec<ReplacementEntry>,
    /// Legacy vars.
    #[serde(default)]
    pub vars: Vec<Var>,
    /// CRD files whose OpenAPI adds name-reference and merge information.
    #[serde(default)]
    pub crds: Vec<String>,
    /// A custom OpenAPI schema (`path:`) or version.
    #[serde(default)]
    pub openapi: Option<BTreeMap<String, String>>,
    /// `originAnnotations`, `transformerAnnotations`, `managedByLabel`.
    #[serde(default)]
    pub build_metadata: Vec<String>,
    /// Output order.
    #[serde(default)]
    pub sort_options: Option<SortOptions>,
    /// Transformer configuration files (unsupported).
    #[serde(default)]
    pub configurations: Vec<String>,
    /// Generator plugins (unsupported).
    #[serde(default)]
    pub generators: Vec<String>,
    /// Transformer plugins (unsupported).
    #[serde(default)]
    pub transformers: Vec<String>,
    /// Validator plugins (unsupported).
    #[serde(default)]
    pub validators: Vec<String>,
    /// Helm charts (unsupported: needs `--enable-helm`).
    #[serde(default)]
    pub helm_charts: Vec<Value>,
    /// Helm globals (unsupported).
    #[serde(default)]
    pub helm_globals: Option<Value>,
    /// Helm inflation generators (unsupported).
    #[serde(default)]
    pub helm_chart_inflation_generator: Vec<Value>,
    /// Inventory (ignored by build).
    #[serde(default)]
    pub inventory: Option<Value>,
}

/// One entry of `labels`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    /// The labels.
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    /// Also add to selectors (and templates).
    #[serde(default)]
    pub include_selectors: bool,
    /// Also add to pod templates.
    #[serde(default)]
    pub include_templates: bool,
    /// Extra field specs.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// A field spec (path plus kind filter).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    /// `/`-separated path.
    pub path: String,
    /// Group filter.
    #[serde(default)]
    pub group: Option<String>,
    /// Version filter.
    #[serde(default)]
    pub version: Option<String>,
    /// Kind filter.
    #[serde(default)]
    pub kind: Option<String>,
    /// Create the field when missing.
    #[serde(default)]
    pub create: bool,
}

/// A patch target selector.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
    /// Kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name (an anchored regular expression).
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace (an anchored regular expression).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Label selector.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Annotation selector.
    #[serde(default)]
    pub annotation_selector: Option<String>,
}

/// One entry of `patches`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// A file holding the patch.
    #[serde(default)]
    pub path: Option<String>,
    /// The patch inline.
    #[serde(default)]
    pub patch: Option<String>,
    /// Which objects to patch.
    #[serde(default)]
    pub target: Option<Selector>,
    /// `allowNameChange`, `allowKindChange`.
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
}

/// One entry of the legacy `patchesJson6902`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchJson6902 {
    /// The target.
    #[serde(default)]
    pub target: Option<Selector>,
    /// A file holding the operations.
    #[serde(default)]
    pub path: Option<String>,
    /// The operations inline.
    #[serde(default)]
    pub patch: Option<String>,
}

/// One entry of `images`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// The image name to match.
    #[serde(default)]
    pub name: String,
    /// The replacement name.
    #[serde(default)]
    pub new_name: Option<String>,
    /// The replacement tag.
    #[serde(default)]
    pub new_tag: Option<String>,
    /// The replacement digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// A suffix for the tag.
    #[serde(default)]
    pub tag_suffix: Option<String>,
}

/// One entry of `replicas`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replica {
    /// The object's name.
    pub name: String,
    /// The count.
    #[serde(default)]
    pub count: i64,
}

/// A generator entry (ConfigMap or Secret).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorArgs {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `create`, `merge` or `replace`.
    #[serde(default)]
    pub behavior: Option<String>,
    /// `key=value` literals.
    #[serde(default)]
    pub literals: Vec<String>,
    /// Files (`[key=]path`).
    #[serde(default)]
    pub files: Vec<String>,
    /// Env files.
    #[serde(default)]
    pub envs: Vec<String>,
    /// Legacy single env file.
    #[serde(default)]
    pub env: Option<String>,
    /// Per-generator options.
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
    /// Secret type.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

/// `generatorOptions`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    /// Labels for generated objects.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations for generated objects.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Turn the name hash off.
    #[serde(default)]
    pub disable_name_suffix_hash: Option<bool>,
    /// Mark generated objects immutable.
    #[serde(default)]
    pub immutable: Option<bool>,
}

/// A `replacements` entry: inline or a file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementEntry {
    /// A file holding replacements.
    #[serde(default)]
    pub path: Option<String>,
    /// The source.
    #[serde(default)]
    pub source: Option<ReplacementSource>,
    /// The targets.
    #[serde(default)]
    pub targets: Vec<ReplacementTarget>,
}

/// A replacement, as found in replacement files.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replacement {
    /// The source.
    #[serde(default)]
    pub source: Option<ReplacementSource>,
    /// The targets.
    #[serde(default)]
    pub targets: Vec<ReplacementTarget>,
}

/// Where a replacement's value comes from.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementSource {
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
    /// Kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Field path (default `metadata.name`).
    #[serde(default)]
    pub field_path: Option<String>,
    /// Options.
    #[serde(default)]
    pub options: Option<FieldOptions>,
}

/// Delimiter options of a replacement.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldOptions {
    /// Split the value on this delimiter.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// The part to use or replace.
    #[serde(default)]
    pub index: Option<i64>,
    /// Encoding (unsupported).
    #[serde(default)]
    pub encoding: Option<String>,
    /// Create missing fields.
    #[serde(default)]
    pub create: bool,
}

/// A replacement target.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementTarget {
    /// Which objects.
    #[serde(default)]
    pub select: Option<Selector>,
    /// Which objects to leave alone.
    #[serde(default)]
    pub reject: Vec<Selector>,
    /// The fields to set.
    #[serde(default)]
    pub field_paths: Vec<String>,
    /// Options.
    #[serde(default)]
    pub options: Option<FieldOptions>,
}

/// A legacy var.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Var {
    /// Name used as `$(NAME)`.
    pub name: String,
    /// The object.
    pub objref: VarObjRef,
    /// The field.
    #[serde(default)]
    pub fieldref: Option<VarFieldRef>,
}

/// The object a var reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VarObjRef {
    /// Kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// apiVersion.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Group.
    #[serde(default)]
    pub group: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The field a var reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VarFieldRef {
    /// The path (default `metadata.name`).
    #[serde(default)]
    pub fieldpath: Option<String>,
}

/// `sortOptions`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SortOptions {
    /// `legacy` or `fifo`.
    #[serde(default)]
    pub order: Option<String>,
    /// Custom legacy order.
    #[serde(default)]
    pub legacy_sort_options: Option<LegacySortOptions>,
}

/// Kinds to put first and last in legacy order.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacySortOptions {
    /// Kinds first.
    #[serde(default)]
    pub order_first: Vec<String>,
    /// Kinds last.
    #[serde(default)]
    pub order_last: Vec<String>,
}
