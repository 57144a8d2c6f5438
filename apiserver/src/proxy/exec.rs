//! pods/{name}/exec and pods/{name}/attach (upstream's remotecommand). Over a WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`; kubectl 1.30+) the client's socket is accepted
//! here and its frames relayed both ways to the kubelet's socket. Over a SPDY/3.1 upgrade
//! (kubectl before 1.30, client-go's SPDY executor, and kubectl's fallback) the upgrade is
//! dialled to the kubelet with the client's stream protocols and the connection spliced to
//! it, as upstream's UpgradeAwareHandler does.

use super::locate;
use crate::handlers::{Query, SharedState};
use crate::registry::Store;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;

const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
const PASSED: &[&str] = &["command", "stdin", "stdout", "stderr", "tty"];

/// Which remotecommand: the kubelet path segment, and the WebSocket-only protocols' wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
}

pub async fn exec(state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query, req: Request<Body>) -> Result<Response, ApiError> {
    if !q.all.iter().any(|(k, _)| k == "command") {
        return Err(ApiError::BadRequest("you must specify at least 1 command".into()));
    }
    remotecommand(Kind::Exec, state, store, ns, name, q, req).await
}

pub async fn attach(state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query, req: Request<Body>) -> Result<Response, ApiError> {
    remotecommand(Kind::Attach, state, store, ns, name, q, req).await
}

fn kubelet_path(kind: Kind, ns: &str, name: &str, container: &str, q: &Query) -> Result<String, ApiError> {
    let verb = if kind == Kind::Exec { "exec" } else { "attach" };
    let mut url = reqwest::Url::parse(&format!("https://kubelet/{verb}/{ns}/{name}/{container}")).map_err(|e| ApiError::Internal(e.to_string()))?;
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &q.all {
            if PASSED.contains(&k.as_str()) && (kind == Kind::Exec || k != "command") {
                pairs.append_pair(k, v);
            }
        }
    }
    Ok(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    })
}

async fn remotecommand(kind: Kind, state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query, req: Request<Body>) -> Result<Response, ApiError> {
    if !["stdin", "stdout", "stderr"].iter().any(|k| q.flag(k)) {
        return Err(ApiError::BadRequest("you must specify at least one of stdin, stdout, stderr".into()));
    }
    let (mut parts, _) = req.into_parts();
    if super::upgrade::wants_spdy(&parts.headers) {
        let offered = super::upgrade::header_values(&parts.headers, "x-stream-protocol-version");
        let client = parts.extensions.remove::<hyper::upgrade::OnUpgrade>().ok_or_else(|| ApiError::BadRequest("the connection cannot be upgraded".into()))?;
        let (container, host) = locate(&state.registry, store, ns, name, q.get("container")).await?;
        let kubelet = state.kubelet.clone().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
        let path = kubelet_path(kind, ns.unwrap_or("default"), name, &container, q)?;
        let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
        let (backend, chosen) = super::upgrade::dial_spdy(&kubelet, &host, &path, &offered).await?;
        return super::upgrade::splice(client, backend, &chosen);
    }
    let offered: Vec<String> = parts
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let Some(protocol) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)).copied() else {
        return Err(ApiError::BadRequest("Upgrade request required: a WebSocket with subprotocol v5.channel.k8s.io, or SPDY/3.1".into()));
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))?;
    let (container, host) = locate(&state.registry, store, ns, name, q.get("container")).await?;
    let kubelet = state.kubelet.clone().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
    let path = kubelet_path(kind, ns.unwrap_or("default"), name, &container, q)?;
    super::upgrade::relay_websocket(upgrade, &kubelet, &host, &path, protocol).await
}
