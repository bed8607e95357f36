//! Commit messages from a template, with Flux's template data.
//!
//! Flux renders `spec.git.commit.messageTemplate` with Go's `text/template`
//! and Sprig's functions over this data (see [`TemplateData`]):
//!
//! ```text
//! .AutomationObject            namespace/name of the automation (.Namespace, .Name)
//! .Changed.FileChanges         map: file -> map: object -> list of changes
//! .Changed.Objects             map: object -> list of changes
//! .Changed.Changes             list of unique changes
//! .Values                      map: string -> string (messageTemplateValues)
//! change:  .OldValue .NewValue .Setter
//! object:  .APIVersion .Kind .Name .Namespace
//! ```
//!
//! The template runs on [`crate::gotmpl`], the same engine Helm charts use.
//! Maps keyed by objects are ranged in sorted order (Go's order for struct
//! keys is unspecified; here it is apiVersion, kind, namespace, name). An
//! unknown field such as `.NewTag` is an error, as in Flux ("can't
//! evaluate field NewTag").

use std::collections::BTreeMap;
use std::rc::Rc;

use super::setters::{Change, ObjectIdentifier};
use crate::gotmpl::{self, Member, Object, Templates, Value};

/// Flux's default message.
pub const DEFAULT_MESSAGE_TEMPLATE: &str = "Update from image update automation";

/// Why a template could not be parsed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit message template: {0}")]
#[non_exhaustive]
pub struct TemplateError(pub String);

/// A Go struct: named fields, and how `fmt` prints it.
#[derive(Debug)]
struct Struct {
    type_name: &'static str,
    fields: BTreeMap<&'static str, Value>,
    shown: String,
    stringer: bool,
}

impl Object for Struct {
    fn type_name(&self) -> String {
        self.type_name.to_string()
    }
    fn member(&self, name: &str) -> Option<Member> {
        self.fields.get(name).cloned().map(Member::Field)
    }
    fn format(&self, _plus: bool) -> String {
        self.shown.clone()
    }
    fn stringer(&self) -> Option<String> {
        self.stringer.then(|| self.shown.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A map whose keys are structs (Go ranges it; templates cannot index it
/// by field name).
#[derive(Debug)]
struct ObjectMap {
    type_name: &'static str,
    items: Vec<(Value, Value)>,
}

impl Object for ObjectMap {
    fn type_name(&self) -> String {
        self.type_name.to_string()
    }
    fn kind(&self) -> &'static str {
        "map"
    }
    fn member(&self, _name: &str) -> Option<Member> {
        None
    }
    fn format(&self, _plus: bool) -> String {
        let items: Vec<String> = self
            .items
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    gotmpl::gofmt::sprint_value(k),
                    gotmpl::gofmt::sprint_value(v)
                )
            })
            .collect();
        format!("map[{}]", items.join(" "))
    }
    fn range(&self) -> Option<Vec<(Value, Value)>> {
        Some(self.items.clone())
    }
    fn len(&self) -> Option<usize> {
        Some(self.items.len())
    }
    fn index(&self, key: &Value) -> Option<Result<Value, String>> {
        Some(Ok(self
            .items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Nil)))
    }
    fn truth(&self) -> bool {
        !self.items.is_empty()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn object(
    type_name: &'static str,
    fields: Vec<(&'static str, Value)>,
    shown: String,
    stringer: bool,
) -> Value {
    Value::Object(Rc::new(Struct {
        type_name,
        fields: fields.into_iter().collect(),
        shown,
        stringer,
    }))
}

/// The data a message template sees: Flux's `TemplateData` in Rust terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateData {
    /// Namespace of the automation object.
    pub automation_namespace: String,
    /// Name of the automation object.
    pub automation_name: String,
    /// Every change, in file then line order.
    pub changes: Vec<Change>,
    /// `messageTemplateValues`.
    pub values: BTreeMap<String, String>,
}

fn change_value(c: &Change) -> Value {
    object(
        "update.Change",
        vec![
            ("OldValue", Value::str(&c.old_value)),
            ("NewValue", Value::str(&c.new_value)),
            ("Setter", Value::str(&c.setter)),
        ],
        format!("{{{} {} {}}}", c.old_value, c.new_value, c.setter),
        false,
    )
}

fn object_value(o: &ObjectIdentifier) -> Value {
    object(
        "update.ObjectIdentifier",
        vec![
            ("APIVersion", Value::str(&o.api_version)),
            ("Kind", Value::str(&o.kind)),
            ("Name", Value::str(&o.name)),
            ("Namespace", Value::str(&o.namespace)),
        ],
        format!(
            "{{{{{} {}}} {{{} {}}}}}",
            o.api_version, o.kind, o.name, o.namespace
        ),
        false,
    )
}

impl TemplateData {
    /// The value tree the template is run over.
    pub fn to_value(&self) -> Value {
        let mut files: BTreeMap<&str, BTreeMap<&ObjectIdentifier, Vec<&Change>>> = BTreeMap::new();
        let mut objects: BTreeMap<&ObjectIdentifier, Vec<&Change>> = BTreeMap::new();
        let mut unique: Vec<&Change> = Vec::new();
        for c in &self.changes {
            files
                .entry(c.file.as_str())
                .or_default()
                .entry(&c.object)
                .or_default()
                .push(c);
            objects.entry(&c.object).or_default().push(c);
            if !unique.iter().any(|u| {
                u.old_value == c.old_value && u.new_value == c.new_value && u.setter == c.setter
            }) {
                unique.push(c);
            }
        }
        let obj_map = |m: &BTreeMap<&ObjectIdentifier, Vec<&Change>>| {
            Value::Object(Rc::new(ObjectMap {
                type_name: "update.ObjectChanges",
                items: m
                    .iter()
                    .map(|(o, cs)| {
                        (
                            object_value(o),
                            Value::list(cs.iter().map(|c| change_value(c)).collect()),
                        )
                    })
                    .collect(),
            }))
        };
        let file_changes = Value::map(
            files
                .iter()
                .map(|(f, m)| (f.to_string(), obj_map(m)))
                .collect(),
        );
        let changed = object(
            "update.ResultV2",
            vec![
                ("FileChanges", file_changes),
                ("Objects", obj_map(&objects)),
                (
                    "Changes",
                    Value::list(unique.iter().map(|c| change_value(c)).collect()),
                ),
            ],
            "{...}".into(),
            false,
        );
        let auto = object(
            "types.NamespacedName",
            vec![
                ("Namespace", Value::str(&self.automation_namespace)),
                ("Name", Value::str(&self.automation_name)),
            ],
            format!("{}/{}", self.automation_namespace, self.automation_name),
            true,
        );
        let values = Value::typed_map(
            gotmpl::MapType::String,
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), Value::str(v)))
                .collect(),
        );
        object(
            "update.TemplateData",
            vec![
                ("AutomationObject", auto),
                ("Changed", changed),
                ("Values", values),
            ],
            "{...}".into(),
            false,
        )
    }
}

/// Renders `template` (Flux's default when empty) over `data`, with
/// Go's `text/template` and Sprig's functions, as Flux does.
pub fn render_message(template: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let template = if template.is_empty() {
        DEFAULT_MESSAGE_TEMPLATE
    } else {
        template
    };
    let mut set = Templates::new("commit message", Rc::new(gotmpl::sprig::funcs()));
    set.parse("commit message", template)
        .map_err(|e| TemplateError(e.to_string()))?;
    gotmpl::render(&Rc::new(set), "commit message", &data.to_value())
        .map_err(|e| TemplateError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        let obj = ObjectIdentifier {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "apps".into(),
            name: "app1".into(),
        };
        TemplateData {
            automation_namespace: "flux-system".into(),
            automation_name: "app1".into(),
            changes: vec![Change {
                file: "apps/base/app1/deployment.yaml".into(),
                line: 21,
                old_value: "ghcr.io/organization/app1:v1.0.0".into(),
                new_value: "ghcr.io/organization/app1:v1.2.7".into(),
                setter: "flux-system:app1".into(),
                object: obj,
            }],
            values: [("env".to_string(), "prod".to_string())].into(),
        }
    }

    #[test]
    fn default_template() {
        assert_eq!(
            render_message("", &data()).unwrap(),
            "Update from image update automation"
        );
    }

    #[test]
    fn flux_documented_template() {
        let t = "Automated image update\n\nAutomation name: {{ .AutomationObject }}\n\nFiles:\n{{ range $filename, $_ := .Changed.FileChanges -}}\n- {{ $filename }}\n{{ end -}}\n\nObjects:\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}\n  Changes:\n{{- range $_, $change := $changes }}\n    - {{ $change.OldValue }} -> {{ $change.NewValue }}\n{{ end -}}\n{{ end -}}\n";
        let got = render_message(t, &data()).unwrap();
        assert_eq!(
            got,
            "Automated image update\n\nAutomation name: flux-system/app1\n\nFiles:\n- apps/base/app1/deployment.yaml\nObjects:\n- Deployment app1\n  Changes:\n    - ghcr.io/organization/app1:v1.0.0 -> ghcr.io/organization/app1:v1.2.7\n"
        );
    }

    #[test]
    fn changes_values_if_printf() {
        let t = "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}{{ if eq .Values.env \"prod\" }}PROD{{ else }}other{{ end }} {{ printf \"%s/%d\" .Values.env (len) }}";
        // parenthesized pipelines are refused clearly
        assert!(render_message(t, &data()).is_err());
        let t = "{{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}{{ if eq .Values.env \"prod\" }}PROD{{ else if true }}other{{ end }} {{ printf \"%s!\" .Values.env | upper }}";
        assert_eq!(
            render_message(t, &data()).unwrap(),
            "ghcr.io/organization/app1:v1.0.0 -> ghcr.io/organization/app1:v1.2.7\nPROD PROD!"
        );
    }

    #[test]
    fn unknown_field_like_flux() {
        let e = render_message("Update app1 to {{.NewTag}}", &data()).unwrap_err();
        assert!(e.to_string().contains("can't evaluate field NewTag"), "{e}");
        assert!(render_message("{{ nope }}", &data()).is_err());
        assert!(render_message("{{ if .X }}", &data()).is_err());
        assert!(render_message("{{ .AutomationObject", &data()).is_err());
    }
}
