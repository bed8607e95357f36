//! RBAC authorization for impersonated identities, as the API server's RBAC
//! authorizer decides it from the Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings the cluster holds.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::object::ObjectId;

/// The RBAC API group.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// True for the four RBAC kinds.
pub(crate) fn is_rbac_kind(group: &str, kind: &str) -> bool {
    group == RBAC_GROUP
        && matches!(
            kind,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        )
}

/// The resource (lowercase plural) of a built-in kind, derived the way the
/// API server guesses it: lowercase; `y` → `ies`; `s`, `x`, `z`, `ch`, `sh`
/// → `+es`; else `+s`; with the irregular `Endpoints`.
pub(crate) fn plural_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("endpoints") {
        return lower;
    }
    if let Some(stem) = lower.strip_suffix('y') {
        let before = stem.chars().last();
        if before.is_some_and(|c| !"aeiou".contains(c)) {
            return format!("{stem}ies");
        }
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with('z')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// Who is asking.
pub(crate) struct UserInfo {
    pub(crate) name: String,
    pub(crate) groups: Vec<String>,
}

impl UserInfo {
    /// The user and groups of an impersonated name, as the API server
    /// derives them for service accounts.
    pub(crate) fn from_name(name: &str) -> UserInfo {
        let mut groups = Vec::new();
        if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
            if let Some((ns, _)) = rest.split_once(':') {
                groups.push("system:serviceaccounts".to_string());
                groups.push(format!("system:serviceaccounts:{ns}"));
            }
        }
        groups.push("system:authenticated".to_string());
        UserInfo {
            name: name.to_string(),
            groups,
        }
    }

    fn service_account(&self) -> Option<(&str, &str)> {
        self.name
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
    }
}

/// What is being done.
pub(crate) struct Request<'a> {
    pub(crate) verb: &'a str,
    pub(crate) group: &'a str,
    pub(crate) resource: &'a str,
    /// Empty for cluster-scoped objects.
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

fn rule_allows(rule: &Value, req: &Request<'_>) -> bool {
    let verbs = strings(rule, "verbs");
    let groups = strings(rule, "apiGroups");
    let resources = strings(rule, "resources");
    let names = strings(rule, "resourceNames");
    has(&verbs, req.verb)
        && has(&groups, req.group)
        && has(&resources, req.resource)
        && (names.is_empty() || names.iter().any(|n| n == req.name))
}

fn subject_matches(subject: &Value, binding_ns: &str, user: &UserInfo) -> bool {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            user.service_account() == Some((ns, name))
        }
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        _ => false,
    }
}

/// The rules of the role a binding refers to, when it exists.
fn role_rules<'a>(
    objects: &'a BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    binding: &Value,
    binding_ns: &str,
) -> Vec<&'a Value> {
    let role_ref = &binding["roleRef"];
    let kind = role_ref["kind"].as_str().unwrap_or("");
    let name = role_ref["name"].as_str().unwrap_or("");
    let id = match kind {
        "ClusterRole" => ObjectId::new(RBAC_GROUP, "ClusterRole", "", name),
        "Role" if !binding_ns.is_empty() => ObjectId::new(RBAC_GROUP, "Role", binding_ns, name),
        _ => return Vec::new(),
    };
    match objects.get(&id) {
        Some(role) => rules_of(objects, rbac, role),
        None => Vec::new(),
    }
}

fn rules_list(role: &Value) -> impl Iterator<Item = &Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|r| r.iter())
        .into_iter()
        .flatten()
}

/// The rules of a role. A ClusterRole with an `aggregationRule` holds the
/// rules of every ClusterRole its selectors match, as the aggregation
/// controller would write them.
fn rules_of<'a>(
    objects: &'a BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    role: &'a Value,
) -> Vec<&'a Value> {
    let mut out: Vec<&Value> = rules_list(role).collect();
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array);
    if let Some(selectors) = selectors {
        for id in rbac.iter().filter(|id| id.kind == "ClusterRole") {
            let Some(other) = objects.get(id) else {
                continue;
            };
            if std::ptr::eq(other, role) {
                continue;
            }
            let labels = other.pointer("/metadata/labels");
            if selectors.iter().any(|sel| selector_matches(sel, labels)) {
                out.extend(rules_list(other));
            }
        }
    }
    out
}

/// A label selector (`matchLabels` and `matchExpressions`) against labels.
fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let match_exprs = exprs.iter().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values = strings(e, "values");
        let op = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match op {
            "In" => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => label(key).is_none_or(|v| values.iter().all(|x| x != v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    });
    // An empty selector selects nothing in an aggregation rule.
    let empty = selector.get("matchLabels").is_none() && exprs.is_empty();
    !empty && match_labels && match_exprs
}

/// The rules granted to `user` in `namespace` (empty: cluster-wide grants
/// only, i.e. ClusterRoleBindings).
fn effective_rules<'a>(
    objects: &'a BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    user: &UserInfo,
    namespace: &str,
) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for id in rbac {
        let applies = match id.kind.as_str() {
            "ClusterRoleBinding" => true,
            "RoleBinding" => !namespace.is_empty() && id.namespace == namespace,
            _ => false,
        };
        if !applies {
            continue;
        }
        let Some(binding) = objects.get(id) else {
            continue;
        };
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if subjects
            .iter()
            .any(|s| subject_matches(s, &id.namespace, user))
        {
            out.extend(role_rules(objects, rbac, binding, &id.namespace));
        }
    }
    out
}

/// The rules granted to `user` in `namespace` (empty: the cluster-wide
/// grants only), for a rules review.
#[cfg(feature = "serve")]
pub(crate) fn rules_for(
    objects: &BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    user: &UserInfo,
    namespace: &str,
) -> Vec<Value> {
    effective_rules(objects, rbac, user, namespace)
        .into_iter()
        .cloned()
        .collect()
}

/// Decides a request. `rbac` indexes the RBAC objects in `objects`.
pub(crate) fn allowed(
    objects: &BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    user: &UserInfo,
    req: &Request<'_>,
) -> bool {
    effective_rules(objects, rbac, user, req.namespace)
        .into_iter()
        .any(|r| rule_allows(r, req))
}

/// One permission of a rule: resource rules by group, resource, verb and
/// name (empty: every name); non-resource rules by URL and verb.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Resource {
        group: String,
        resource: String,
        name: String,
        verb: String,
    },
    NonResource {
        url: String,
        verb: String,
    },
}

fn atoms(rule: &Value) -> Vec<Atom> {
    let verbs = strings(rule, "verbs");
    let urls = strings(rule, "nonResourceURLs");
    let mut out = Vec::new();
    if !urls.is_empty() {
        for url in &urls {
            for verb in &verbs {
                out.push(Atom::NonResource {
                    url: url.clone(),
                    verb: verb.clone(),
                });
            }
        }
        return out;
    }
    let mut names = strings(rule, "resourceNames");
    if names.is_empty() {
        names.push(String::new());
    }
    for group in strings(rule, "apiGroups") {
        for resource in strings(rule, "resources") {
            for name in &names {
                for verb in &verbs {
                    out.push(Atom::Resource {
                        group: group.clone(),
                        resource: resource.clone(),
                        name: name.clone(),
                        verb: verb.clone(),
                    });
                }
            }
        }
    }
    out
}

fn covered(atom: &Atom, rules: &[&Value]) -> bool {
    rules.iter().any(|r| {
        let verbs = strings(r, "verbs");
        match atom {
            Atom::Resource {
                group,
                resource,
                name,
                verb,
            } => {
                let names = strings(r, "resourceNames");
                has(&verbs, verb)
                    && has(&strings(r, "apiGroups"), group)
                    && has(&strings(r, "resources"), resource)
                    && (names.is_empty() || (!name.is_empty() && names.contains(name)))
            }
            Atom::NonResource { url, verb } => {
                let urls = strings(r, "nonResourceURLs");
                has(&verbs, verb)
                    && urls.iter().any(|u| {
                        u == "*"
                            || u == url
                            || u.strip_suffix('*').is_some_and(|p| url.starts_with(p))
                    })
            }
        }
    })
}

fn quoted(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", parts.join(" "))
}

/// A rule without its verbs: groups, resources, non-resource URLs, names.
type RuleShape = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

/// The API server's refusal to grant permissions the user does not hold
/// (`ConfirmNoEscalation`), or `None` when `rules` are all held in
/// `namespace` (empty: cluster-wide).
pub(crate) fn escalation(
    objects: &BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    user: &UserInfo,
    namespace: &str,
    rules: &[Value],
) -> Option<String> {
    let held = effective_rules(objects, rbac, user, namespace);
    let missing: BTreeSet<Atom> = rules
        .iter()
        .flat_map(atoms)
        .filter(|a| !covered(a, &held))
        .collect();
    if missing.is_empty() {
        return None;
    }
    // Compact verbs of the same group, resource and name, as the API
    // server prints missing rules.
    let mut compact: BTreeMap<RuleShape, Vec<String>> = BTreeMap::new();
    for a in missing {
        match a {
            Atom::Resource {
                group,
                resource,
                name,
                verb,
            } => {
                let names = if name.is_empty() { vec![] } else { vec![name] };
                compact
                    .entry((vec![group], vec![resource], vec![], names))
                    .or_default()
                    .push(verb);
            }
            Atom::NonResource { url, verb } => {
                compact
                    .entry((vec![], vec![], vec![url], vec![]))
                    .or_default()
                    .push(verb);
            }
        }
    }
    let mut lines: Vec<String> = compact
        .into_iter()
        .map(|((groups, resources, urls, names), verbs)| {
            let mut parts = Vec::new();
            if !groups.is_empty() {
                parts.push(format!("APIGroups:{}", quoted(&groups)));
            }
            if !resources.is_empty() {
                parts.push(format!("Resources:{}", quoted(&resources)));
            }
            if !urls.is_empty() {
                parts.push(format!("NonResourceURLs:{}", quoted(&urls)));
            }
            if !names.is_empty() {
                parts.push(format!("ResourceNames:{}", quoted(&names)));
            }
            parts.push(format!("Verbs:{}", quoted(&verbs)));
            format!("{{{}}}", parts.join(", "))
        })
        .collect();
    lines.sort();
    Some(format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        quoted(&user.groups),
        lines.join("\n")
    ))
}

/// The rules a role reference points at, or the API server's not-found
/// message.
pub(crate) fn referenced_rules(
    objects: &BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    role_ref: &Value,
    namespace: &str,
) -> Result<Vec<Value>, String> {
    let kind = role_ref["kind"].as_str().unwrap_or("");
    let name = role_ref["name"].as_str().unwrap_or("");
    let (id, resource) = match kind {
        "ClusterRole" => (
            ObjectId::new(RBAC_GROUP, "ClusterRole", "", name),
            "clusterroles",
        ),
        "Role" => (
            ObjectId::new(RBAC_GROUP, "Role", namespace, name),
            "roles",
        ),
        other => return Err(format!("roleRef.kind: Unsupported value: {other:?}: supported values: \"ClusterRole\", \"Role\"")),
    };
    match objects.get(&id) {
        Some(role) => Ok(rules_of(objects, rbac, role).into_iter().cloned().collect()),
        None => Err(format!("{resource}.{RBAC_GROUP} \"{name}\" not found")),
    }
}

/// The API server's message for a denied request.
pub(crate) fn forbidden_message(user: &UserInfo, req: &Request<'_>) -> String {
    // `deployments/status` is named `deployments.apps "web"`.
    let base = req.resource.split('/').next().unwrap_or(req.resource);
    let qualified = if req.group.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{}", req.group)
    };
    let scope = if req.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", req.namespace)
    };
    let object = if req.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", req.name)
    };
    format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.name, req.verb, req.resource, req.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let labels = serde_json::json!({"tier": "web", "team": "a"});
        let sel = |v: serde_json::Value| selector_matches(&v, Some(&labels));
        assert!(sel(serde_json::json!({"matchLabels": {"tier": "web"}})));
        assert!(!sel(serde_json::json!({"matchLabels": {"tier": "db"}})));
        assert!(sel(
            serde_json::json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]})
        ));
        assert!(!sel(
            serde_json::json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]})
        ));
        assert!(sel(
            serde_json::json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]})
        ));
        assert!(!sel(
            serde_json::json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]})
        ));
        assert!(
            !sel(serde_json::json!({})),
            "an empty selector aggregates nothing"
        );
    }

    #[test]
    fn plurals_follow_the_api_server() {
        assert_eq!(plural_of("Deployment"), "deployments");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Ingress"), "ingresses");
        assert_eq!(plural_of("Endpoints"), "endpoints");
        assert_eq!(plural_of("ClusterRoleBinding"), "clusterrolebindings");
        assert_eq!(plural_of("Gateway"), "gateways");
    }
}
