//! Label and field selectors as list requests carry them
//! (`labelSelector=app=web,tier!=db,env in (a,b),!legacy`).
//!
//! The label syntax is Kubernetes' (`k8s.io/apimachinery/pkg/labels`):
//! requirements joined by commas; `=`, `==`, `!=`, `in (...)`,
//! `notin (...)`, `key` (exists) and `!key` (does not exist). Field
//! selectors take `=`, `==` and `!=` on `metadata.name` and
//! `metadata.namespace`, and the fields a kind adds (`status.phase` and
//! `spec.nodeName` of Pods, `type` of Secrets, ...).

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)`: true when the label is absent too.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LabelSelector(Vec<Requirement>);

/// A qualified name or label value, as the selector grammar allows.
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 316
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

fn valid_value(s: &str) -> bool {
    s.is_empty() || valid_token(s)
}

/// Splits at commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unexpected ')' in {s:?}"))?;
            }
            ',' if depth == 0 => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unclosed '(' in {s:?}"));
    }
    out.push(s.get(start..).unwrap_or_default());
    Ok(out)
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{}', expected: '('", rest.trim()))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &values {
        if !valid_value(v) {
            return Err(format!("invalid label value: {v:?}"));
        }
    }
    Ok(values)
}

impl LabelSelector {
    /// Parses Kubernetes' selector syntax. The error reads as the API
    /// server's (`unable to parse requirement: ...`).
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(LabelSelector::default());
        }
        let mut reqs = Vec::new();
        for part in split_top(s)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "unable to parse requirement: found '', expected: identifier in {s:?}"
                ));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                let key = key.trim();
                Requirement::DoesNotExist(key.to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotIn(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::In(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::In(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, rest)) = split_word(part, "notin") {
                Requirement::NotIn(k.to_string(), set_values(rest)?)
            } else if let Some((k, rest)) = split_word(part, "in") {
                Requirement::In(k.to_string(), set_values(rest)?)
            } else {
                Requirement::Exists(part.to_string())
            };
            let (key, values): (&str, &[String]) = match &req {
                Requirement::In(k, v) | Requirement::NotIn(k, v) => (k, v),
                Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, &[]),
            };
            if !valid_token(key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.'"
                ));
            }
            for v in values {
                if !valid_value(v) {
                    return Err(format!(
                        "unable to parse requirement: invalid label value: {v:?}"
                    ));
                }
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// True when the labels (`metadata.labels`, possibly absent) satisfy
    /// every requirement.
    pub(super) fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// `key in (...)`: the key and what follows the operator word, when `part`
/// is `<key> <word> <rest>`.
fn split_word<'a>(part: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let (key, rest) = part.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let after = rest.strip_prefix(word)?;
    (after.starts_with(char::is_whitespace) || after.starts_with('(')).then_some((key, after))
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    /// `metadata.name`, ...
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FieldSelector(Vec<FieldTerm>);

/// The fields a kind can be selected by, besides `metadata.name` and
/// `metadata.namespace` (the API server's field label conversions).
fn kind_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `field=value,field!=value`; a field the kind cannot be
    /// selected by is the API server's `field label not supported` error.
    pub(super) fn parse(s: &str, group: &str, kind: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(FieldSelector::default());
        }
        let mut terms = Vec::new();
        for part in s.split(',') {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !kind_fields(group, kind).contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector(terms))
    }

    /// True when the object satisfies every term. A field the object does
    /// not set reads as the empty string (booleans and numbers as text).
    pub(super) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|t| {
            let mut cur = Some(obj);
            for seg in t.field.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (actual == t.value) == t.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn label_selectors_follow_kubernetes_syntax() {
        let labels = json!({"app": "web", "tier": "front", "env": "prod"});
        let l = Some(&labels);
        assert!(sel("").matches(l));
        assert!(sel("app=web").matches(l));
        assert!(sel("app==web").matches(l));
        assert!(!sel("app=db").matches(l));
        assert!(sel("app!=db").matches(l));
        assert!(sel("missing!=x").matches(l));
        assert!(sel("env in (prod, staging)").matches(l));
        assert!(sel("env in(prod)").matches(l));
        assert!(!sel("env notin (prod,staging)").matches(l));
        assert!(sel("missing notin (prod)").matches(l));
        assert!(sel("tier").matches(l));
        assert!(!sel("!tier").matches(l));
        assert!(sel("!missing").matches(l));
        assert!(sel("app=web,env in (prod),!legacy,tier").matches(l));
        assert!(!sel("app=web,!tier").matches(l));
        assert!(sel("app=web").matches(Some(&json!({"app": "web"}))));
        assert!(!sel("app").matches(None));
        assert!(sel("!app").matches(None));
        assert!(sel("app=").matches(Some(&json!({"app": ""}))));
        assert!(sel("example.com/team=a").matches(Some(&json!({"example.com/team": "a"}))));
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for bad in ["app=web,", "env in prod", "env in (prod", "a b", "x=@"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_take_names_namespaces_and_kind_fields() {
        let o =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, "", "Pod").unwrap();
        assert!(f("metadata.name=a").matches(&o));
        assert!(f("metadata.name==a,metadata.namespace=ns").matches(&o));
        assert!(!f("metadata.name!=a").matches(&o));
        assert!(f("status.phase=Running").matches(&o));
        assert!(f("spec.nodeName=").matches(&o));
        assert_eq!(
            FieldSelector::parse("spec.foo=x", "", "ConfigMap").unwrap_err(),
            "field label not supported: spec.foo"
        );
    }
}
