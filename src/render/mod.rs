//! Rendering: turning a verified snapshot's folder into Kubernetes objects.

use crate::object::Object;
use crate::source::Snapshot;
use crate::verify::Verified;

/// The result of a render: objects in output order, plus warnings
/// (deprecations and the like) that never go to stdout.
///
/// To print the objects as `kubectl kustomize` does (multi-document YAML,
/// byte for byte), use [`kustomize::emit::documents`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// The rendered objects, in kustomize's output order.
    pub objects: Vec<Object>,
    /// Non-fatal notes, e.g. deprecated kustomization fields.
    pub warnings: Vec<String>,
    /// The plaintext-Secret rule the renderer ran on `objects`, with where
    /// each object came from and which of its values SOPS decrypted. A
    /// step that rewrites the objects afterwards (Flux's post-build
    /// substitution) runs [`SecretProvenance::check`] again on its output.
    /// Renderers without the rule leave it at its default (not in force).
    ///
    /// [`SecretProvenance::check`]: crate::sops::SecretProvenance::check
    pub secrets: crate::sops::SecretProvenance,
}

/// A render failure. It names the file, and the object and field where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_message(self))]
#[non_exhaustive]
pub struct RenderError {
    /// The file being read or the kustomization being built.
    pub file: String,
    /// The object (`Kind/ns/name` or `Kind/name`) when known.
    pub object: Option<String>,
    /// The field path when known (e.g. `spec.template.spec.containers`).
    pub field: Option<String>,
    /// What went wrong.
    pub message: String,
}

fn render_message(e: &RenderError) -> String {
    let mut s = e.file.clone();
    if let Some(o) = &e.object {
        s.push_str(": ");
        s.push_str(o);
    }
    if let Some(f) = &e.field {
        s.push_str(": field ");
        s.push_str(f);
    }
    s.push_str(": ");
    s.push_str(&e.message);
    s
}

impl RenderError {
    /// An error about a file.
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        RenderError {
            file: file.into(),
            object: None,
            field: None,
            message: message.into(),
        }
    }

    /// Names the object.
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Names the field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// Builds a folder of a verified snapshot into objects.
pub trait Renderer: Send + Sync {
    /// Renders the folder `path` (relative to the snapshot root).
    fn render(&self, snapshot: &Verified<Snapshot>, path: &str) -> Result<Rendered, RenderError>;

    /// Renders `path` with these Secret rules (plaintext refusal, SOPS
    /// decryption) instead of the renderer's own; the fleet calls this for
    /// a Kustomization with `spec.decryption`. Renderers that cannot
    /// decrypt refuse a set decryptor rather than ignore it.
    fn render_with_secrets(
        &self,
        snapshot: &Verified<Snapshot>,
        path: &str,
        secrets: &crate::sops::SecretRules,
    ) -> Result<Rendered, RenderError> {
        if secrets.decryptor.is_some() {
            return Err(RenderError::new(
                path,
                "this renderer does not support SOPS decryption",
            ));
        }
        self.render(snapshot, path)
    }
}

pub mod kustomize;
pub mod merge;
