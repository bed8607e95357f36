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
    objects
        .get(&id)
        .and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .map(|rules| rules.iter().collect())
        .unwrap_or_default()
}

/// Decides a request. `rbac` indexes the RBAC objects in `objects`.
pub(crate) fn allowed(
    objects: &BTreeMap<ObjectId, Value>,
    rbac: &BTreeSet<ObjectId>,
    user: &UserInfo,
    req: &Request<'_>,
) -> bool {
    for id in rbac {
        let applies = match id.kind.as_str() {
            "ClusterRoleBinding" => true,
            "RoleBinding" => !req.namespace.is_empty() && id.namespace == req.namespace,
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
        if !subjects
            .iter()
            .any(|s| subject_matches(s, &id.namespace, user))
        {
            continue;
        }
        if role_rules(objects, binding, &id.namespace)
            .into_iter()
            .any(|r| rule_allows(r, req))
        {
            return true;
        }
    }
    false
}

/// The API server's message for a denied request.
pub(crate) fn forbidden_message(user: &UserInfo, req: &Request<'_>) -> String {
    let qualified = if req.group.is_empty() {
        req.resource.to_string()
    } else {
        format!("{}.{}", req.resource, req.group)
    };
    let scope = if req.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", req.namespace)
    };
    format!(
        "{qualified} \"{}\" is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        req.name, user.name, req.verb, req.resource, req.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
