//! Authorization (upstream's union authorizer and WithAuthorization filter): every
//! authenticated request is allowed by system:masters, the Node authorizer or RBAC, or
//! refused with 403 Forbidden in upstream's words. The layer also carries out impersonation
//! (`impersonation`), RBAC's escalation checks (`escalation`) and NodeRestriction, all of
//! which need the authorizer; the review APIs (`reviews`) ask the same chain.

pub mod attributes;
pub mod bootstrap_policy;
pub mod escalation;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod reviews;

use crate::auth::UserInfo;
use crate::registry::Registry;
use attributes::Attributes;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Upstream's privileged group: always allowed, and never subject to escalation checks.
pub const MASTERS: &str = "system:masters";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
    NoOpinion(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// One authorizer of the chain (upstream's authorizer.Authorizer).
pub trait Authorizer: Send + Sync {
    fn authorize(&self, a: &Attributes) -> Decision;
}

/// Upstream's privilegedGroupAuthorizer.
pub struct Privileged;

impl Authorizer for Privileged {
    fn authorize(&self, a: &Attributes) -> Decision {
        if a.user.groups.iter().any(|g| g == MASTERS) { Decision::Allow(String::new()) } else { Decision::NoOpinion(String::new()) }
    }
}

/// Upstream's unionAuthzHandler: the first Allow or Deny wins; reasons of the others are kept.
pub struct Union(pub Vec<Arc<dyn Authorizer>>);

impl Authorizer for Union {
    fn authorize(&self, a: &Attributes) -> Decision {
        let mut reasons = Vec::new();
        for z in &self.0 {
            match z.authorize(a) {
                Decision::NoOpinion(r) => {
                    if !r.is_empty() {
                        reasons.push(r);
                    }
                }
                d => return d,
            }
        }
        Decision::NoOpinion(reasons.join("\n"))
    }
}

/// Bumps `generation` whenever the store's watch cache changes (and once it is first ready).
pub(crate) fn watch_changes(store: Arc<crate::registry::Store>, generation: Arc<AtomicU64>) {
    tokio::spawn(async move {
        loop {
            let sub = match store.cache.subscribe(&store.prefix(None), None) {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            generation.fetch_add(1, Ordering::AcqRel);
            let mut live = sub.live;
            loop {
                match live.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        generation.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
}

/// The authorizer chain and what the layer needs besides it.
pub struct Authorization {
    pub rbac: Arc<rbac::Rbac>,
    pub node: Arc<node::NodeAuthorizer>,
    chain: Union,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization")
    }
}

/// Upstream's AlwaysAllow mode.
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::Allow(String::new())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown authorization mode {0:?} (supported: AlwaysAllow, Node, RBAC)")]
pub struct UnknownMode(pub String);

impl Authorization {
    /// `--authorization-mode=Node,RBAC`. Starts the authorizers' watches (needs a tokio runtime).
    pub fn new(registry: Arc<Registry>) -> Arc<Authorization> {
        Self::with_modes(registry, &["Node".into(), "RBAC".into()]).expect("known modes")
    }

    /// The chain of `modes` in their order, after the privileged group.
    pub fn with_modes(registry: Arc<Registry>, modes: &[String]) -> Result<Arc<Authorization>, UnknownMode> {
        let rbac = rbac::Rbac::new(registry.clone());
        let node = node::NodeAuthorizer::new(registry.clone());
        let mut chain: Vec<Arc<dyn Authorizer>> = vec![Arc::new(Privileged)];
        for m in modes {
            match m.as_str() {
                "Node" => chain.push(node.clone()),
                "RBAC" => chain.push(rbac.clone()),
                "AlwaysAllow" => chain.push(Arc::new(AlwaysAllow)),
                other => return Err(UnknownMode(other.into())),
            }
        }
        Ok(Arc::new(Authorization { rbac, node, chain: Union(chain), registry }))
    }

    pub fn authorize(&self, a: &Attributes) -> Decision {
        self.chain.authorize(a)
    }
}

/// Upstream's `resource` or `resource.group`.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

/// Upstream's forbiddenMessage.
pub fn forbidden_message(a: &Attributes) -> String {
    let user = &a.user.name;
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    if a.namespace.is_empty() {
        format!("User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope", a.verb, a.api_group)
    } else {
        format!("User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}", a.verb, a.api_group, a.namespace)
    }
}

/// A 403 Status as upstream's NewForbidden builds it: `<resource> "<name>" is forbidden: <why>`.
pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Response {
    let q = qualified(group, resource);
    let message = match (q.is_empty(), name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{q} is forbidden: {why}"),
        (false, false) => format!("{q} {name:?} is forbidden: {why}"),
    };
    let mut details = serde_json::Map::new();
    for (k, v) in [("name", name), ("group", group), ("kind", resource)] {
        if !v.is_empty() {
            details.insert(k.into(), json!(v));
        }
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": "Forbidden", "details": details, "code": 403});
    (http::StatusCode::FORBIDDEN, [(http::header::CONTENT_TYPE, "application/json")], serde_json::to_vec(&status).unwrap_or_default()).into_response()
}

/// The 403 for a request the chain did not allow.
fn deny(a: &Attributes, reason: &str) -> Response {
    let mut why = forbidden_message(a);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    if a.resource_request {
        forbidden(&a.api_group, &a.resource, &a.name, &why)
    } else {
        forbidden("", "", "", &why)
    }
}

/// What the audit layer reports of the decision (left in the response's extensions).
#[derive(Clone, Debug)]
pub struct AuditRecord {
    pub attributes: Attributes,
    pub impersonated: Option<UserInfo>,
    pub decision: &'static str,
    pub reason: String,
}

fn with_record(mut resp: Response, record: AuditRecord) -> Response {
    resp.extensions_mut().insert(record);
    resp
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Whether the request writes an RBAC object, which escalation checks look at.
fn writes_rbac(a: &Attributes) -> bool {
    a.resource_request
        && a.api_group == RBAC_GROUP
        && a.subresource.is_empty()
        && matches!(a.resource.as_str(), "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings")
        && matches!(a.verb.as_str(), "create" | "update" | "patch")
}

/// The layer after authentication: impersonation, the decision, then the checks of the
/// body that only some writes need.
pub async fn authorize(State(authz): State<Arc<Authorization>>, mut req: Request, next: Next) -> Response {
    let Some(requester) = req.extensions().get::<UserInfo>().cloned() else { return next.run(req).await };
    let mut impersonated = None;
    let user = match impersonation::impersonate(&authz, &requester, req.headers()) {
        Ok(None) => requester,
        Ok(Some(u)) => {
            impersonation::strip_headers(req.headers_mut());
            req.extensions_mut().insert(u.clone());
            impersonated = Some(u.clone());
            u
        }
        Err(resp) => {
            let attributes = Attributes::from_request(requester, req.method(), req.uri().path(), req.uri().query());
            return with_record(resp, AuditRecord { attributes, impersonated: None, decision: "forbid", reason: "impersonation refused".into() });
        }
    };
    let a = Attributes::from_request(user, req.method(), req.uri().path(), req.uri().query());
    let decision = authz.authorize(&a);
    let mut record = AuditRecord { attributes: a.clone(), impersonated, decision: "allow", reason: decision.reason().to_string() };
    if !decision.allowed() {
        record.decision = "forbid";
        return with_record(deny(&a, decision.reason()), record);
    }
    let is_master = a.user.groups.iter().any(|g| g == MASTERS);
    let node = node::node_name(&a.user).map(String::from);
    let rbac_write = writes_rbac(&a) && !is_master;
    let node_check = node.is_some() && a.resource_request && a.verb != "get" && a.verb != "list" && a.verb != "watch";
    if rbac_write || node_check {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, crate::handlers::codec::MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return with_record(crate::handlers::codec::body_too_large().into_response(), record),
        };
        let refused = if rbac_write {
            check_escalation(&authz, &a, &parts.headers, &bytes)
        } else {
            check_node(&authz, node.as_deref().unwrap_or(""), &a, &parts.headers, &bytes)
        };
        if let Some(resp) = refused {
            record.decision = "forbid";
            return with_record(resp, record);
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    with_record(next.run(req).await, record)
}

/// The object a write leaves behind: the body of a create or update, the patched object of a
/// patch (None when it cannot be worked out: the handler refuses such a request itself).
fn object_after(authz: &Authorization, a: &Attributes, headers: &http::HeaderMap, body: &[u8]) -> Option<Value> {
    if a.verb != "patch" {
        return crate::handlers::codec::decode_body(headers, body).ok();
    }
    let ct = crate::handlers::codec::content_type(headers);
    let pt = crate::patch::PatchType::from_content_type(&ct)?;
    if pt == crate::patch::PatchType::Apply {
        return serde_yaml::from_slice(body).ok();
    }
    let store = authz.registry.store(&a.api_group, "v1", &a.resource)?;
    let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
    let current = store.cached(ns, &a.name)?.value();
    crate::patch::apply_patch(&store.row.gvk(), &current, body, pt).ok()
}

fn existing(authz: &Authorization, a: &Attributes) -> Option<Value> {
    let store = authz.registry.store(&a.api_group, "v1", &a.resource)?;
    let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
    store.cached(ns, &a.name).map(|o| o.value())
}

fn rules_of(obj: &Value) -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    obj.get("rules").cloned().and_then(|r| serde_json::from_value(r).ok()).unwrap_or_default()
}

/// Upstream's role and binding storage guards: no rule granted that the writer lacks.
fn check_escalation(authz: &Authorization, a: &Attributes, headers: &http::HeaderMap, body: &[u8]) -> Option<Response> {
    let obj = object_after(authz, a, headers, body)?;
    let name = if a.name.is_empty() { obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string() } else { a.name.clone() };
    let old = (a.verb != "create").then(|| existing(authz, a)).flatten();
    let is_role = a.resource == "roles" || a.resource == "clusterroles";
    let wanted = if is_role {
        if old.as_ref().is_some_and(|o| rules_of(o) == rules_of(&obj)) {
            return None;
        }
        let escalate = Attributes { verb: "escalate".into(), name: name.clone(), path: String::new(), ..a.clone() };
        if authz.authorize(&escalate).allowed() {
            return None;
        }
        rules_of(&obj)
    } else {
        if old.as_ref().is_some_and(|o| o.get("roleRef") == obj.get("roleRef") && o.get("subjects") == obj.get("subjects")) {
            return None;
        }
        let kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or("");
        let role = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or("");
        let resource = if kind == "ClusterRole" { "clusterroles" } else { "roles" };
        let bind = Attributes::resource(a.user.clone(), "bind", RBAC_GROUP, resource, "", &a.namespace, role);
        if authz.authorize(&bind).allowed() {
            return None;
        }
        match authz.rbac.role_rules(kind, &a.namespace, role) {
            Some(rules) => rules.to_vec(),
            // Validation refuses a bad roleRef kind; a missing role is upstream's NotFound reason.
            None if kind == "Role" || kind == "ClusterRole" => {
                let why = format!("{}.{RBAC_GROUP} {role:?} not found", kind.to_ascii_lowercase());
                return Some(forbidden(RBAC_GROUP, &a.resource, &name, &why));
            }
            None => return None,
        }
    };
    let held = authz.rbac.rules_for(&a.user, &a.namespace);
    let missing = escalation::missing(&held, &wanted);
    if missing.is_empty() {
        return None;
    }
    Some(forbidden(RBAC_GROUP, &a.resource, &name, &escalation::escalation_message(&a.user, &missing)))
}

fn check_node(authz: &Authorization, node: &str, a: &Attributes, headers: &http::HeaderMap, body: &[u8]) -> Option<Response> {
    let obj = crate::admission::node_restriction::needs_body(a).then(|| crate::handlers::codec::decode_body(headers, body).ok()).flatten();
    let pod = (a.api_group.is_empty() && a.resource == "pods" && !a.name.is_empty()).then(|| existing(authz, a)).flatten();
    let why = crate::admission::node_restriction::admit(node, a, obj.as_ref(), pod.as_ref())?;
    let name = if a.name.is_empty() { obj.as_ref().and_then(|o| o.pointer("/metadata/name")).and_then(Value::as_str).unwrap_or("").to_string() } else { a.name.clone() };
    Some(forbidden(&a.api_group, &a.resource, &name, &why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserInfo {
        UserInfo { name: name.into(), ..Default::default() }
    }

    #[test]
    fn deny_messages_are_upstreams() {
        let a = Attributes::resource(user("alice"), "list", "", "pods", "", "other", "");
        assert_eq!(forbidden_message(&a), "User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\"");
        let a = Attributes::resource(user("alice"), "get", "", "pods", "log", "", "");
        assert_eq!(forbidden_message(&a), "User \"alice\" cannot get resource \"pods/log\" in API group \"\" at the cluster scope");
        let a = Attributes::non_resource(user("x"), "get", "/foo");
        assert_eq!(forbidden_message(&a), "User \"x\" cannot get path \"/foo\"");
    }

    #[test]
    fn masters_are_always_allowed_and_union_takes_the_first_opinion() {
        let mut u = user("root");
        u.groups.push(MASTERS.into());
        assert!(Privileged.authorize(&Attributes::non_resource(u, "delete", "/x")).allowed());
        struct Says(Decision);
        impl Authorizer for Says {
            fn authorize(&self, _: &Attributes) -> Decision {
                self.0.clone()
            }
        }
        let chain = Union(vec![Arc::new(Says(Decision::NoOpinion("a".into()))), Arc::new(Says(Decision::Deny("no".into()))), Arc::new(Says(Decision::Allow(String::new())))]);
        assert_eq!(chain.authorize(&Attributes::default()), Decision::Deny("no".into()));
        let quiet = Union(vec![Arc::new(Says(Decision::NoOpinion("a".into())))]);
        assert_eq!(quiet.authorize(&Attributes::default()), Decision::NoOpinion("a".into()));
    }
}
