//! The Kubernetes API over a [`MemoryCluster`]: one request in, one
//! response out, with no I/O of its own (the HTTP server in `mod.rs` reads
//! and writes the bytes).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::super::write::Caller;
use super::super::{rbac, MemoryCluster, Prepared, State};
use super::catalog::{Catalog, Resource};
use super::errors::{self, Failure};
use super::selector::{FieldSelector, LabelSelector};
use super::table;
use crate::apply::{ApplyError, ApplyOptions};
use crate::object::{Object, ObjectId};

/// One HTTP request, as read off the wire.
#[derive(Clone, Debug, Default)]
pub(super) struct Request {
    pub(super) method: String,
    /// The path, percent-encoded as sent.
    pub(super) path: String,
    /// The raw query string.
    pub(super) query: String,
    /// Header names lowercase, in the order sent.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

/// One HTTP response.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) body: Vec<u8>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            content_type: "application/json".to_string(),
            body: v.to_string().into_bytes(),
        }
    }

    fn typed(status: u16, content_type: &str, v: &Value) -> Response {
        Response {
            status,
            content_type: content_type.to_string(),
            body: v.to_string().into_bytes(),
        }
    }

    fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: text.as_bytes().to_vec(),
        }
    }

    /// The API server's answer for a path it does not serve.
    fn page_not_found() -> Response {
        Response::text(404, "404 page not found\n")
    }
}

impl From<Failure> for Response {
    fn from(f: Failure) -> Self {
        Response::json(f.code, &f.body)
    }
}

/// What every request shares.
pub(super) struct Context<'a> {
    pub(super) cluster: &'a MemoryCluster,
    /// The bearer token that authenticates the administrator.
    pub(super) token: &'a str,
    /// The administrator's user name.
    pub(super) admin: &'a str,
    /// `host:port`, for `/api`'s server addresses.
    pub(super) server: &'a str,
}

/// The Kubernetes version the server reports.
pub(super) const GIT_VERSION: &str = "v1.32.0+driftless";

/// Decodes `%XX` escapes (and `+` as a space, in queries).
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters, decoded; later values win.
fn query_params(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn accepts(&self, needle: &str) -> bool {
        self.header("accept").is_some_and(|a| a.contains(needle))
    }

    fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
}

/// The request's body as JSON (or YAML for apply patches and YAML
/// content).
fn body_value(req: &Request) -> Result<Value, Failure> {
    let ct = req.content_type();
    if ct.contains("protobuf") {
        return super::protobuf::decode(&req.body)
            .map_err(|m| errors::status(415, "UnsupportedMediaType", &m, Map::new()));
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| errors::bad_request("the request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(errors::bad_request("the request body is empty"));
    }
    if ct.contains("yaml") {
        crate::yaml::from_str::<Value>("request body", text)
            .map_err(|e| errors::bad_request(&format!("error decoding YAML: {}", e.message)))
    } else {
        serde_json::from_str(text).map_err(|e| {
            errors::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

/// The caller, after the token and the impersonation headers.
fn authenticate(ctx: &Context<'_>, req: &Request) -> Result<Caller, Failure> {
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    if token != Some(ctx.token) {
        return Err(errors::unauthorized());
    }
    let admin = Caller::admin(ctx.admin);
    let user = req.header("impersonate-user");
    let groups: Vec<String> = req
        .headers_named("impersonate-group")
        .map(str::to_string)
        .collect();
    let Some(user) = user else {
        if !groups.is_empty() {
            return Err(errors::bad_request(&format!(
                "requested {groups:?} without impersonating a user"
            )));
        }
        return Ok(admin);
    };
    let mut groups = if groups.is_empty() {
        match user
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, _)) => vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ],
            None => Vec::new(),
        }
    } else {
        groups
    };
    if user != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".to_string());
    }
    Ok(Caller {
        user: user.to_string(),
        groups,
    })
}

/// Handles one request.
pub(super) fn handle(ctx: &Context<'_>, req: &Request) -> Response {
    let path = req.path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    match path {
        "/healthz" | "/livez" | "/readyz" => return Response::text(200, "ok"),
        "/version" => {
            return Response::json(
                200,
                &json!({
                    "major": "1",
                    "minor": "32",
                    "gitVersion": GIT_VERSION,
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z",
                    "goVersion": "go1.23.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }),
            )
        }
        _ => {}
    }
    let caller = match authenticate(ctx, req) {
        Ok(c) => c,
        Err(f) => return f.into(),
    };
    let segs: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let Ok(state) = ctx.cluster.lock() else {
        return errors::status(
            500,
            "InternalError",
            "the cluster state lock is poisoned",
            Map::new(),
        )
        .into();
    };
    let catalog = Catalog::of(&state);
    drop(state);
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    match segs.as_slice() {
        ["api"] => {
            if req.accepts("as=APIGroupDiscoveryList") {
                return Response::typed(200, aggregated, &catalog.aggregated(true));
            }
            return Response::json(200, &catalog.api_versions(ctx.server));
        }
        ["apis"] => {
            if req.accepts("as=APIGroupDiscoveryList") {
                return Response::typed(200, aggregated, &catalog.aggregated(false));
            }
            return Response::json(200, &catalog.api_group_list());
        }
        ["api", v] => {
            return match catalog.api_resource_list("", v) {
                Some(l) => Response::json(200, &l),
                None => Response::page_not_found(),
            }
        }
        ["apis", g] => {
            let groups = catalog.api_group_list();
            let group = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g));
            return match group {
                Some(x) => {
                    let mut x = x.clone();
                    if let Some(m) = x.as_object_mut() {
                        m.insert("kind".into(), json!("APIGroup"));
                        m.insert("apiVersion".into(), json!("v1"));
                    }
                    Response::json(200, &x)
                }
                None => Response::page_not_found(),
            };
        }
        ["apis", g, v] => {
            return match catalog.api_resource_list(g, v) {
                Some(l) => Response::json(200, &l),
                None => Response::page_not_found(),
            }
        }
        ["openapi", "v3"] => return Response::json(200, &catalog.openapi_v3_root()),
        ["openapi", "v3", "api", v] => {
            return catalog
                .openapi_v3("", v)
                .map_or_else(Response::page_not_found, |d| Response::json(200, &d))
        }
        ["openapi", "v3", "apis", g, v] => {
            return catalog
                .openapi_v3(g, v)
                .map_or_else(Response::page_not_found, |d| Response::json(200, &d))
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Response::page_not_found(),
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, "status" | "finalize"] if group.is_empty() => {
            (None, "namespaces", Some(*ns), rest.get(2).copied())
        }
        ["namespaces", ns, res, tail @ ..] if tail.len() <= 2 => {
            (Some(*ns), *res, tail.first().copied(), tail.get(1).copied())
        }
        [res, tail @ ..] if tail.len() <= 2 => {
            (None, *res, tail.first().copied(), tail.get(1).copied())
        }
        _ => return Response::page_not_found(),
    };
    let Some(resource) = catalog.resource(group, version, plural) else {
        return Response::page_not_found();
    };
    if namespace.is_some() && !resource.namespaced {
        return Response::page_not_found();
    }
    if let Some(s) = sub {
        if !resource.subresources.iter().any(|x| x == s) {
            return Response::page_not_found();
        }
    }
    let target = Target {
        resource: resource.clone(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
    };
    let params = query_params(&req.query);
    let call = Call {
        ctx,
        req,
        caller: &caller,
        target: &target,
        params: &params,
    };
    let result = if resource.review {
        call.review()
    } else {
        match (req.method.as_str(), target.name.is_some()) {
            ("GET", true) => call.get(),
            ("GET", false) => call.list(),
            ("POST", false) => call.create(),
            ("PUT", true) => call.update(),
            ("PATCH", true) => call.patch(),
            ("DELETE", true) => call.delete(),
            ("DELETE", false) => call.delete_collection(),
            (m, _) => Err(errors::method_not_allowed(&format!(
                "the server does not allow this method on the requested resource ({m})"
            ))),
        }
    };
    match result {
        Ok(r) => r,
        Err(f) => f.into(),
    }
}

/// The resource and object a request names.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

/// One resource request.
struct Call<'a> {
    ctx: &'a Context<'a>,
    req: &'a Request,
    caller: &'a Caller,
    target: &'a Target,
    params: &'a BTreeMap<String, String>,
}

/// `true` for `dryRun=All`.
fn dry_run(params: &BTreeMap<String, String>, body: Option<&Value>) -> Result<bool, Failure> {
    let mut values: Vec<String> = params.get("dryRun").into_iter().cloned().collect();
    if let Some(b) = body.and_then(|b| b.get("dryRun")).and_then(Value::as_array) {
        values.extend(b.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for v in &values {
        if v != "All" && !v.is_empty() {
            return Err(errors::status(
                400,
                "BadRequest",
                &format!("Invalid dryRun value: {v:?}: supported values: \"All\""),
                Map::new(),
            ));
        }
    }
    Ok(values.iter().any(|v| v == "All"))
}

impl Call<'_> {
    fn r(&self) -> &Resource {
        &self.target.resource
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or_default()
    }

    fn id(&self) -> ObjectId {
        ObjectId::new(
            &self.r().group,
            &self.r().kind,
            self.namespace(),
            self.name(),
        )
    }

    fn fail(&self, e: &ApplyError) -> Failure {
        errors::from_apply_error(e, self.r(), self.name())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, Failure> {
        self.ctx
            .cluster
            .lock()
            .map_err(|e| errors::from_apply_error(&e, self.r(), self.name()))
    }

    fn authorize(
        &self,
        state: &State,
        verb: &str,
        id: &ObjectId,
        sub: Option<&str>,
    ) -> Result<(), Failure> {
        state
            .authorize_caller(self.caller, verb, id, &self.r().plural, sub)
            .map_err(|e| self.fail(&e))
    }

    /// The field manager: the `fieldManager` parameter, else the user
    /// agent's first word, as the API server defaults it.
    fn manager(&self) -> String {
        if let Some(m) = self.params.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.clone();
        }
        self.req
            .header("user-agent")
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }

    /// The object as served at the request's version.
    fn present(&self, v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), json!(self.r().api_version()));
            m.insert("kind".into(), json!(self.r().kind));
        }
        v
    }

    fn respond(&self, status: u16, v: &Value) -> Result<Response, Failure> {
        if self.req.accepts("as=Table") {
            let now = self.ctx.cluster.now();
            let include = self
                .params
                .get("includeObject")
                .map_or("Metadata", String::as_str);
            let rv = v
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = table::table(
                self.r(),
                std::slice::from_ref(v),
                now,
                include,
                json!({ "resourceVersion": rv }),
            );
            return Ok(Response::typed(
                status,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                &t,
            ));
        }
        Ok(Response::json(status, v))
    }

    fn check_namespace(&self, state: &State) -> Result<(), Failure> {
        let ns = self.namespace();
        if !ns.is_empty()
            && !state
                .objects
                .contains_key(&ObjectId::new("", "Namespace", "", ns))
        {
            return Err(errors::namespace_not_found(ns));
        }
        Ok(())
    }

    fn get(&self) -> Result<Response, Failure> {
        let state = self.lock()?;
        let id = state.normalize(&self.id());
        self.authorize(&state, "get", &id, self.target.sub.as_deref())?;
        let v = state
            .objects
            .get(&id)
            .ok_or_else(|| errors::not_found(self.r(), self.name()))?;
        let v = self.present(v);
        drop(state);
        self.respond(200, &v)
    }

    fn list(&self) -> Result<Response, Failure> {
        if self
            .params
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
        {
            return Err(errors::method_not_allowed(
                "watch is not supported by the embedded cluster",
            ));
        }
        let labels =
            LabelSelector::parse(self.params.get("labelSelector").map_or("", String::as_str))
                .map_err(|m| errors::bad_request(&m))?;
        let fields = FieldSelector::parse(
            self.params.get("fieldSelector").map_or("", String::as_str),
            &self.r().group,
            &self.r().kind,
        )
        .map_err(|m| errors::bad_request(&m))?;
        let limit: usize = match self.params.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| errors::bad_request(&format!("invalid limit {l:?}")))?
                .max(0) as usize,
            None => 0,
        };
        let after = match self.params.get("continue").filter(|c| !c.is_empty()) {
            Some(c) => Some(decode_continue(c)?),
            None => None,
        };
        let state = self.lock()?;
        let scope = ObjectId::new(&self.r().group, &self.r().kind, self.namespace(), "");
        self.authorize(&state, "list", &scope, None)?;
        let ns = self.namespace();
        let mut items = Vec::new();
        let mut remaining = 0usize;
        for (id, v) in &state.objects {
            if id.group != self.r().group || id.kind != self.r().kind {
                continue;
            }
            if !ns.is_empty() && id.namespace != ns {
                continue;
            }
            if let Some((ans, aname)) = &after {
                if (id.namespace.as_str(), id.name.as_str()) <= (ans.as_str(), aname.as_str()) {
                    continue;
                }
            }
            if !labels.matches(v.pointer("/metadata/labels")) || !fields.matches(v) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                remaining += 1;
                continue;
            }
            items.push(v.clone());
        }
        let rv = state.rv.to_string();
        drop(state);
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(rv));
        if remaining > 0 {
            let last = items
                .last()
                .and_then(|v| {
                    Object::new(v.clone())
                        .ok()
                        .map(|o| (o.namespace().to_string(), o.name().to_string()))
                })
                .unwrap_or_default();
            meta.insert(
                "continue".into(),
                json!(encode_continue(&last.0, &last.1, &rv)),
            );
            if self
                .params
                .get("labelSelector")
                .is_none_or(String::is_empty)
                && self
                    .params
                    .get("fieldSelector")
                    .is_none_or(String::is_empty)
            {
                meta.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        if self.req.accepts("as=Table") {
            let include = self
                .params
                .get("includeObject")
                .map_or("Metadata", String::as_str);
            let presented: Vec<Value> = items.iter().map(|v| self.present(v)).collect();
            let t = table::table(
                self.r(),
                &presented,
                self.ctx.cluster.now(),
                include,
                Value::Object(meta),
            );
            return Ok(Response::typed(
                200,
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                &t,
            ));
        }
        let custom = self.r().printer_columns.is_some();
        let items: Vec<Value> = items
            .iter()
            .map(|v| {
                if custom {
                    self.present(v)
                } else {
                    // Built-in lists carry their items without apiVersion
                    // and kind, as the API server's typed lists do.
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    v
                }
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({
                "kind": format!("{}List", self.r().kind),
                "apiVersion": self.r().api_version(),
                "metadata": meta,
                "items": items,
            }),
        ))
    }

    /// Checks a body's kind, apiVersion, name and namespace against the
    /// URL; fills in the namespace.
    fn check_body(&self, body: &mut Value, name_required: bool) -> Result<(), Failure> {
        let Some(m) = body.as_object_mut() else {
            return Err(errors::bad_request("the request body is not an object"));
        };
        let r = self.r();
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k == r.kind => {}
            Some(k) => {
                return Err(errors::bad_request(&format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    r.kind
                )))
            }
            None => {
                m.insert("kind".into(), json!(r.kind));
            }
        }
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av == r.api_version() => {}
            Some(av) => {
                return Err(errors::bad_request(&format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                r.api_version()
            )))
            }
            None => {
                m.insert("apiVersion".into(), json!(r.api_version()));
            }
        }
        let md = m
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(md) = md.as_object_mut() else {
            return Err(errors::bad_request("metadata is not an object"));
        };
        if let Some(url_name) = &self.target.name {
            match md.get("name").and_then(Value::as_str) {
                Some(n) if n == url_name => {}
                Some(n) => {
                    return Err(errors::bad_request(&format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )))
                }
                None if name_required => {
                    md.insert("name".into(), json!(url_name));
                }
                None => {}
            }
        }
        if r.namespaced {
            let ns = self.namespace();
            match md.get("namespace").and_then(Value::as_str) {
                Some(n) if n == ns || n.is_empty() => {
                    md.insert("namespace".into(), json!(ns));
                }
                Some(_) => {
                    return Err(errors::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                None => {
                    md.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            md.remove("namespace");
        }
        Ok(())
    }

    /// Commits a prepared write unless it is a dry run, after the RBAC
    /// escalation check for callers who are not administrators.
    fn finish(&self, state: &mut State, p: Prepared, dry: bool) -> Result<Value, Failure> {
        if !self.caller.is_superuser() {
            state
                .check_escalation_of(&self.caller.info(), &p)
                .map_err(|e| self.fail(&e))?;
        }
        if dry {
            let status_write = self.target.sub.as_deref() == Some("status");
            return Ok(state.dry_run_value(p, status_write));
        }
        state
            .commit(p)
            .map(Object::into_value)
            .map_err(|e| self.fail(&e))
    }

    fn create(&self) -> Result<Response, Failure> {
        if self.target.sub.is_some() {
            return Err(errors::method_not_allowed(
                "POST is not allowed on a subresource",
            ));
        }
        if self.r().namespaced && self.target.namespace.is_none() {
            return Err(errors::bad_request(
                "a namespaced object must be created in a namespace",
            ));
        }
        let mut body = body_value(self.req)?;
        let dry = dry_run(self.params, None)?;
        self.check_body(&mut body, false)?;
        let mut state = self.lock()?;
        let has_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            let Some(prefix) = body
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
            else {
                let id = self.id();
                return Err(self.fail(&super::super::validate::invalid_object(
                    &id,
                    &[
                        "metadata.name: Required value: name or generateName is required"
                            .to_string(),
                    ],
                )));
            };
            let name = generate_name(&state, self.r(), self.namespace(), &prefix);
            if let Some(md) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                md.insert("name".into(), json!(name));
            }
        }
        let object = Object::new(body).map_err(|e| errors::bad_request(&e.to_string()))?;
        let id = state.normalize(&object.id());
        self.authorize(&state, "create", &id, None)?;
        self.check_namespace(&state)?;
        let p = state
            .prepare_create(&object, &self.manager())
            .map_err(|e| errors::from_apply_error(&e, self.r(), object.name()))?;
        let v = self.finish(&mut state, p, dry)?;
        drop(state);
        self.respond(201, &self.present(&v))
    }

    fn update(&self) -> Result<Response, Failure> {
        let mut body = body_value(self.req)?;
        let dry = dry_run(self.params, None)?;
        self.check_body(&mut body, true)?;
        let mut state = self.lock()?;
        let id = state.normalize(&self.id());
        self.authorize(&state, "update", &id, self.target.sub.as_deref())?;
        let live = state
            .objects
            .get(&id)
            .ok_or_else(|| errors::not_found(self.r(), self.name()))?
            .clone();
        self.check_resource_version(&live, &body)?;
        let p = if self.target.sub.as_deref() == Some("status") {
            state.prepare_status(
                &id,
                &self.manager(),
                &self.r().api_version(),
                body.get("status").cloned(),
            )
        } else {
            state.prepare_replace(&id, &self.manager(), body)
        }
        .map_err(|e| self.fail(&e))?;
        let v = self.finish(&mut state, p, dry)?;
        drop(state);
        self.respond(200, &self.present(&v))
    }

    /// A `metadata.resourceVersion` in the body must be the live one.
    /// Custom resources must name one on update.
    fn check_resource_version(&self, live: &Value, body: &Value) -> Result<(), Failure> {
        let live_rv = live
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
        {
            Some(rv) if rv != live_rv => Err(errors::status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    self.r().qualified(),
                    self.name()
                ),
                errors::resource_details(Some(self.r()), self.name()),
            )),
            Some(_) => Ok(()),
            None if self.r().printer_columns.is_some() && self.req.method == "PUT" => {
                let id = self.id();
                Err(self.fail(&super::super::validate::invalid_object(
                    &id,
                    &["metadata.resourceVersion: Invalid value: 0x0: must be specified for an update".to_string()],
                )))
            }
            None => Ok(()),
        }
    }

    fn patch(&self) -> Result<Response, Failure> {
        let ct = self.req.content_type();
        let dry = dry_run(self.params, None)?;
        if ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor" {
            return self.apply(dry);
        }
        if self.params.contains_key("force") {
            return Err(errors::bad_request(
                "force is only allowed for apply patches",
            ));
        }
        let patch = {
            let text = std::str::from_utf8(&self.req.body)
                .map_err(|_| errors::bad_request("the request body is not UTF-8"))?;
            serde_json::from_str::<Value>(text)
                .map_err(|e| errors::bad_request(&format!("error decoding patch: {e}")))?
        };
        let mut state = self.lock()?;
        let id = state.normalize(&self.id());
        self.authorize(&state, "patch", &id, self.target.sub.as_deref())?;
        let live = state
            .objects
            .get(&id)
            .ok_or_else(|| errors::not_found(self.r(), self.name()))?
            .clone();
        let current = self.present(&live);
        let patched = match ct.as_str() {
            "application/merge-patch+json" => json_merge_patch(&current, &patch),
            "application/json-patch+json" => {
                let mut v = current.clone();
                crate::render::merge::json6902(&mut v, &patch).map_err(|e| {
                    errors::status(
                        422,
                        "Invalid",
                        &format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                        Map::new(),
                    )
                })?;
                v
            }
            "application/strategic-merge-patch+json" => {
                if self.r().printer_columns.is_some()
                    || !state.schema.merge.knows(&self.r().group, &self.r().kind)
                {
                    return Err(errors::unsupported_media_type());
                }
                crate::render::merge::strategic_merge_kubernetes(
                    &current,
                    &patch,
                    &state.schema.merge,
                    &self.r().group,
                    &self.r().kind,
                )
                .map_err(|e| errors::bad_request(&e.to_string()))?
                .unwrap_or(Value::Null)
            }
            _ => return Err(errors::unsupported_media_type()),
        };
        let mut patched = patched;
        if !patched.is_object() {
            return Err(errors::bad_request("the patch removes the whole object"));
        }
        self.check_body(&mut patched, true)?;
        self.check_resource_version(&live, &patched)?;
        let p = if self.target.sub.as_deref() == Some("status") {
            state.prepare_status(
                &id,
                &self.manager(),
                &self.r().api_version(),
                patched.get("status").cloned(),
            )
        } else {
            state.prepare_replace(&id, &self.manager(), patched)
        }
        .map_err(|e| self.fail(&e))?;
        let v = self.finish(&mut state, p, dry)?;
        drop(state);
        self.respond(200, &self.present(&v))
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    fn apply(&self, dry: bool) -> Result<Response, Failure> {
        let mut body = body_value(self.req)?;
        self.check_body(&mut body, true)?;
        let force = match self.params.get("force").map(String::as_str) {
            None | Some("false") | Some("") => false,
            Some("true") => true,
            Some(other) => {
                return Err(errors::bad_request(&format!(
                    "invalid force value {other:?}"
                )))
            }
        };
        let Some(manager) = self.params.get("fieldManager").filter(|m| !m.is_empty()) else {
            return Err(errors::bad_request(
                "PATCH, fieldManager is required for apply requests",
            ));
        };
        let mut state = self.lock()?;
        let id = state.normalize(&self.id());
        let exists = state.objects.contains_key(&id);
        self.authorize(&state, "patch", &id, self.target.sub.as_deref())?;
        if !exists {
            if self.target.sub.is_some() {
                return Err(errors::not_found(self.r(), self.name()));
            }
            self.authorize(&state, "create", &id, None)?;
        }
        self.check_namespace(&state)?;
        if self.target.sub.as_deref() == Some("status") {
            // The applied status merges into the live one; the manager is
            // recorded as an update of the status subresource.
            let live = state.objects.get(&id).cloned().unwrap_or(Value::Null);
            let mut status = live.get("status").cloned().unwrap_or_else(|| json!({}));
            if let Some(applied) = body.get("status") {
                super::super::fields::merge(&mut status, applied);
            }
            let p = state
                .prepare_status(&id, manager, &self.r().api_version(), Some(status))
                .map_err(|e| self.fail(&e))?;
            let v = self.finish(&mut state, p, dry)?;
            drop(state);
            return self.respond(200, &self.present(&v));
        }
        let object = Object::new(body).map_err(|e| errors::bad_request(&e.to_string()))?;
        let opts = ApplyOptions {
            field_manager: manager.clone(),
            dry_run: dry,
            force_conflicts: force,
            impersonate: None,
        };
        let p = state
            .prepare_apply(&object, &opts)
            .map_err(|e| self.fail(&e))?;
        let created = p.created;
        let v = self.finish(&mut state, p, dry)?;
        drop(state);
        self.respond(if created { 201 } else { 200 }, &self.present(&v))
    }

    fn delete_options(&self) -> Result<Value, Failure> {
        if self.req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        let text = std::str::from_utf8(&self.req.body)
            .map_err(|_| errors::bad_request("the request body is not UTF-8"))?;
        serde_json::from_str(text)
            .map_err(|e| errors::bad_request(&format!("error decoding DeleteOptions: {e}")))
    }

    fn propagation(&self, opts: &Value) -> Result<(), Failure> {
        let policy = self
            .params
            .get("propagationPolicy")
            .map(String::as_str)
            .or_else(|| opts.get("propagationPolicy").and_then(Value::as_str));
        match policy {
            None | Some("Background" | "Foreground" | "Orphan") => Ok(()),
            Some(p) => Err(errors::status(
                    422,
                    "Invalid",
                    &format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
                    Map::new(),
                )),
        }
    }

    fn delete(&self) -> Result<Response, Failure> {
        if self.target.sub.is_some() {
            return Err(errors::method_not_allowed(
                "DELETE is not allowed on a subresource",
            ));
        }
        let opts = self.delete_options()?;
        let dry = dry_run(self.params, Some(&opts))?;
        self.propagation(&opts)?;
        let mut state = self.lock()?;
        let id = state.normalize(&self.id());
        self.authorize(&state, "delete", &id, None)?;
        let live = state
            .objects
            .get(&id)
            .ok_or_else(|| errors::not_found(self.r(), self.name()))?
            .clone();
        let uid = live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(want) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
            if want != uid {
                return Err(errors::status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {want}, UID in object meta: {uid}",
                        self.r().qualified(),
                        self.name()
                    ),
                    errors::resource_details(Some(self.r()), self.name()),
                ));
            }
        }
        if let Some(want) = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            let rv = live
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if want != rv {
                return Err(errors::status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}",
                        self.r().qualified(),
                        self.name()
                    ),
                    errors::resource_details(Some(self.r()), self.name()),
                ));
            }
        }
        let apply_opts = ApplyOptions {
            dry_run: dry,
            ..ApplyOptions::default()
        };
        state.delete(&id, &apply_opts).map_err(|e| self.fail(&e))?;
        drop(state);
        let mut details = errors::resource_details(Some(self.r()), self.name());
        details.insert("uid".into(), json!(uid));
        Ok(Response::json(
            200,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        ))
    }

    fn delete_collection(&self) -> Result<Response, Failure> {
        let opts = self.delete_options()?;
        let dry = dry_run(self.params, Some(&opts))?;
        self.propagation(&opts)?;
        let labels =
            LabelSelector::parse(self.params.get("labelSelector").map_or("", String::as_str))
                .map_err(|m| errors::bad_request(&m))?;
        let fields = FieldSelector::parse(
            self.params.get("fieldSelector").map_or("", String::as_str),
            &self.r().group,
            &self.r().kind,
        )
        .map_err(|m| errors::bad_request(&m))?;
        let mut state = self.lock()?;
        let scope = ObjectId::new(&self.r().group, &self.r().kind, self.namespace(), "");
        self.authorize(&state, "deletecollection", &scope, None)?;
        let ns = self.namespace();
        let doomed: Vec<(ObjectId, Value)> = state
            .objects
            .iter()
            .filter(|(id, v)| {
                id.group == self.r().group
                    && id.kind == self.r().kind
                    && (ns.is_empty() || id.namespace == ns)
                    && labels.matches(v.pointer("/metadata/labels"))
                    && fields.matches(v)
            })
            .map(|(id, v)| (id.clone(), v.clone()))
            .collect();
        let apply_opts = ApplyOptions {
            dry_run: dry,
            ..ApplyOptions::default()
        };
        for (id, _) in &doomed {
            state
                .delete(id, &apply_opts)
                .map_err(|e| errors::from_apply_error(&e, self.r(), &id.name))?;
        }
        let rv = state.rv.to_string();
        drop(state);
        let items: Vec<Value> = doomed.iter().map(|(_, v)| self.present(v)).collect();
        Ok(Response::json(
            200,
            &json!({
                "kind": format!("{}List", self.r().kind),
                "apiVersion": self.r().api_version(),
                "metadata": {"resourceVersion": rv},
                "items": items,
            }),
        ))
    }

    /// The review resources: access reviews answered by the cluster's
    /// RBAC, the rules review and `whoami`.
    fn review(&self) -> Result<Response, Failure> {
        if self.req.method != "POST" || self.target.name.is_some() {
            return Err(errors::method_not_allowed(
                "reviews are only created (POST)",
            ));
        }
        let mut body = body_value(self.req)?;
        let state = self.lock()?;
        let kind = self.r().kind.clone();
        let subject = match kind.as_str() {
            "SubjectAccessReview" | "LocalSubjectAccessReview" => {
                let scope = ObjectId::new(&self.r().group, &kind, self.namespace(), "");
                self.authorize(&state, "create", &scope, None)?;
                let spec = body.get("spec").cloned().unwrap_or_default();
                let user = spec
                    .get("user")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let groups = spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                Caller { user, groups }
            }
            _ => self.caller.clone(),
        };
        let status = match kind.as_str() {
            "SelfSubjectReview" => json!({"userInfo": {
                "username": subject.user,
                "groups": subject.groups,
            }}),
            "SelfSubjectRulesReview" => {
                let ns = body
                    .pointer("/spec/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if subject.is_superuser() {
                    json!({
                        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                        "incomplete": false,
                    })
                } else {
                    let rules = rbac::rules_for(&state.objects, &state.rbac, &subject.info(), ns);
                    let (resource, non_resource): (Vec<Value>, Vec<Value>) = rules
                        .into_iter()
                        .partition(|r| r.get("nonResourceURLs").is_none());
                    json!({
                        "resourceRules": resource,
                        "nonResourceRules": non_resource,
                        "incomplete": false,
                    })
                }
            }
            _ => {
                let allowed = access_allowed(&state, &subject, &body, self.namespace());
                json!({ "allowed": allowed })
            }
        };
        drop(state);
        if let Some(m) = body.as_object_mut() {
            m.insert("status".into(), status);
            m.insert("apiVersion".into(), json!(self.r().api_version()));
            m.insert("kind".into(), json!(kind));
            m.entry("metadata").or_insert_with(|| json!({}));
        }
        Ok(Response::json(201, &body))
    }
}

/// Decides an access review's `spec` for `subject`.
fn access_allowed(state: &State, subject: &Caller, review: &Value, url_namespace: &str) -> bool {
    if subject.is_superuser() {
        return true;
    }
    let spec = review.get("spec").cloned().unwrap_or_default();
    if let Some(nr) = spec.get("nonResourceAttributes") {
        let path = nr.get("path").and_then(Value::as_str).unwrap_or_default();
        let verb = nr.get("verb").and_then(Value::as_str).unwrap_or_default();
        // Discovery is open to every authenticated user, as the
        // system:discovery and system:public-info-viewer roles grant.
        let discovery = [
            "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
        return discovery && verb == "get";
    }
    let Some(ra) = spec.get("resourceAttributes") else {
        return false;
    };
    let field = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or_default();
    let namespace = if url_namespace.is_empty() {
        field("namespace")
    } else {
        url_namespace
    };
    let resource = match field("subresource") {
        "" => field("resource").to_string(),
        sub => format!("{}/{sub}", field("resource")),
    };
    let req = rbac::Request {
        verb: field("verb"),
        group: field("group"),
        resource: &resource,
        namespace,
        name: field("name"),
    };
    rbac::allowed(&state.objects, &state.rbac, &subject.info(), &req)
}

/// RFC 7386 JSON merge patch.
pub(super) fn json_merge_patch(target: &Value, patch: &Value) -> Value {
    let Some(p) = patch.as_object() else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = json_merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// A name for `generateName`: the prefix and five characters from the
/// API server's alphabet, derived from the uid counter (deterministic) and
/// unused.
fn generate_name(state: &State, r: &Resource, namespace: &str, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = state.uids.wrapping_mul(2_654_435_761).wrapping_add(1);
    loop {
        let mut suffix = String::new();
        let mut x = n;
        for _ in 0..5 {
            let i = (x % ALPHABET.len() as u64) as usize;
            suffix.push(char::from(ALPHABET.get(i).copied().unwrap_or(b'x')));
            x /= ALPHABET.len() as u64;
        }
        let name = format!("{prefix}{suffix}");
        let id = ObjectId::new(&r.group, &r.kind, namespace, &name);
        if !state.objects.contains_key(&state.normalize(&id)) {
            return name;
        }
        n = n.wrapping_add(7_919);
    }
}

/// A continue token: where the next page starts (after this namespace and
/// name), at which resourceVersion the list began.
fn encode_continue(namespace: &str, name: &str, rv: &str) -> String {
    let token = json!({"v": "driftless/v1", "ns": namespace, "name": name, "rv": rv});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), Failure> {
    let bad = || {
        errors::bad_request(&format!(
            "continue key is not valid: {token:?} was not made by this server"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v["v"] != "driftless/v1" {
        return Err(bad());
    }
    Ok((
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = query_params("labelSelector=app%3Dweb%2Cenv+in+%28a%2Cb%29&limit=2");
        assert_eq!(q["labelSelector"], "app=web,env in (a,b)");
        assert_eq!(q["limit"], "2");
    }

    #[test]
    fn merge_patches_follow_rfc_7386() {
        let t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let p = json!({"a": "z", "c": {"f": null}});
        assert_eq!(json_merge_patch(&t, &p), json!({"a": "z", "c": {"d": "e"}}));
        assert_eq!(
            json_merge_patch(&json!({"a": [1]}), &json!({"a": [2]})),
            json!({"a": [2]})
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue("ns", "a", "12");
        assert_eq!(decode_continue(&t).unwrap(), ("ns".into(), "a".into()));
        assert!(decode_continue("garbage!").is_err());
    }
}
