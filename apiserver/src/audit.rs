//! The audit log (`--audit-log-path`): one audit.k8s.io/v1 Event per request at level
//! Metadata, stage ResponseComplete, as upstream's log backend writes them in JSON lines. A
//! tower layer between authentication and authorization: it sees who authenticated, and the
//! authorization layer leaves its decision (`crate::authz::AuditRecord`) on the response.

use crate::auth::UserInfo;
use crate::authz::AuditRecord;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// `-` is standard output; anything else a file appended to (created when absent).
    pub fn open(path: &std::path::Path) -> std::io::Result<Arc<AuditLog>> {
        let sink: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
        };
        Ok(Arc::new(AuditLog { sink: Mutex::new(sink) }))
    }

    pub fn to_writer(w: Box<dyn Write + Send>) -> Arc<AuditLog> {
        Arc::new(AuditLog { sink: Mutex::new(w) })
    }

    fn write(&self, event: &Value) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        let mut sink = self.sink.lock();
        if let Err(e) = sink.write_all(&line).and_then(|_| sink.flush()) {
            tracing::warn!(error = %e, "audit log write failed");
        }
    }
}

fn user_json(u: &UserInfo) -> Value {
    let mut out = json!({"username": u.name});
    if !u.uid.is_empty() {
        out["uid"] = json!(u.uid);
    }
    if !u.groups.is_empty() {
        out["groups"] = json!(u.groups);
    }
    if !u.extra.is_empty() {
        out["extra"] = json!(u.extra);
    }
    out
}

fn micro_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The Event of one request (pure, for tests).
pub fn event(audit_id: &str, uri: &str, method: &http::Method, user: Option<&UserInfo>, headers: &http::HeaderMap, record: Option<&AuditRecord>, code: u16, received: &str) -> Value {
    let verb = match record {
        Some(r) if r.attributes.resource_request => r.attributes.verb.clone(),
        _ => method.as_str().to_ascii_lowercase(),
    };
    let mut ev = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": user.map(user_json).unwrap_or(json!({})),
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": received,
        "stageTimestamp": micro_time(),
    });
    let mut ips: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    ips.extend(headers.get("x-real-ip").and_then(|v| v.to_str().ok()).map(String::from));
    if !ips.is_empty() {
        ev["sourceIPs"] = json!(ips);
    }
    if let Some(ua) = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        ev["userAgent"] = json!(ua);
    }
    if let Some(r) = record {
        if let Some(imp) = &r.impersonated {
            ev["impersonatedUser"] = user_json(imp);
        }
        let a = &r.attributes;
        if a.resource_request {
            let mut obj = json!({"resource": a.resource, "apiVersion": a.api_version});
            for (k, v) in [("namespace", &a.namespace), ("name", &a.name), ("apiGroup", &a.api_group), ("subresource", &a.subresource)] {
                if !v.is_empty() {
                    obj[k] = json!(v);
                }
            }
            ev["objectRef"] = obj;
        }
        let mut ann = json!({"authorization.k8s.io/decision": r.decision});
        ann["authorization.k8s.io/reason"] = json!(r.reason);
        ev["annotations"] = ann;
    }
    ev
}

pub async fn audit(State(log): State<Arc<AuditLog>>, req: Request, next: Next) -> Response {
    let received = micro_time();
    let audit_id = req.headers().get("audit-id").and_then(|v| v.to_str().ok()).map(String::from).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = req.method().clone();
    let user = req.extensions().get::<UserInfo>().cloned();
    let headers = req.headers().clone();
    let mut resp = next.run(req).await;
    let record = resp.extensions_mut().remove::<AuditRecord>();
    log.write(&event(&audit_id, &uri, &method, user.as_ref(), &headers, record.as_ref(), resp.status().as_u16(), &received));
    if let Ok(v) = http::HeaderValue::from_str(&audit_id) {
        resp.headers_mut().insert("audit-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::attributes::Attributes;

    #[test]
    fn metadata_event_names_user_object_and_decision() {
        let alice = UserInfo { name: "alice".into(), groups: vec!["system:authenticated".into()], ..Default::default() };
        let mut attributes = Attributes::from_request(alice.clone(), &http::Method::GET, "/api/v1/namespaces/other/secrets/s", None);
        attributes.user = alice.clone();
        let record = AuditRecord { attributes, impersonated: None, decision: "forbid", reason: String::new() };
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::USER_AGENT, "kubectl/v1.33".parse().unwrap());
        let ev = event("id-1", "/api/v1/namespaces/other/secrets/s", &http::Method::GET, Some(&alice), &headers, Some(&record), 403, "t");
        assert_eq!(ev["verb"], "get");
        assert_eq!(ev["user"]["username"], "alice");
        assert_eq!(ev["objectRef"], json!({"resource": "secrets", "namespace": "other", "name": "s", "apiVersion": "v1"}));
        assert_eq!(ev["responseStatus"]["code"], 403);
        assert_eq!(ev["annotations"]["authorization.k8s.io/decision"], "forbid");
        assert_eq!(ev["userAgent"], "kubectl/v1.33");
        assert_eq!(ev["stage"], "ResponseComplete");
    }
}
