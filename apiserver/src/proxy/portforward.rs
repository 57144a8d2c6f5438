//! pods/{name}/portforward. kubectl 1.30 and later open a WebSocket with subprotocol
//! `SPDY/3.1+portforward.k8s.io` and run SPDY/3.1 inside its binary messages (client-go
//! tools/portforward/tunneling_dialer.go); older clients, and kubectl when the WebSocket is
//! refused, upgrade to SPDY/3.1 directly. Either way the SPDY bytes go unchanged to the
//! kubelet's /portForward, dialled with a SPDY upgrade, as upstream's tunneling handler
//! (apimachinery pkg/util/proxy streamtunnel.go) does: the kubelet speaks SPDY only.

use super::kubelet_host;
use crate::handlers::{Query, SharedState};
use crate::registry::Store;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stream protocol the kubelet speaks (apimachinery pkg/util/portforward constants.go).
const PROTOCOL_V1: &str = "portforward.k8s.io";
/// `WebsocketsSPDYTunnelingPrefix` + the stream protocol.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const SPDY_UPGRADE: &str = "SPDY/3.1";
/// Port-forward over a plain WebSocket (no SPDY inside), as the Python client speaks it.
const WEBSOCKET_PROTOCOL: &str = "v4.channel.k8s.io";

fn header_has(h: &http::HeaderMap, name: &str, want: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

pub async fn portforward(state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query, req: Request<Body>) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    let websocket = header_has(&parts.headers, "sec-websocket-protocol", TUNNEL_PROTOCOL);
    // Plain WebSocket port-forward (channels per port, no SPDY), relayed to the kubelet's.
    let plain = !websocket && header_has(&parts.headers, "sec-websocket-protocol", WEBSOCKET_PROTOCOL);
    if plain {
        if !q.all.iter().any(|(k, v)| k == "ports" && !v.is_empty()) {
            return Err(ApiError::BadRequest("query parameter \"ports\" is required".into()));
        }
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))?;
        let pod = store.get(ns, name, false).await?;
        let host = kubelet_host(&state.registry, &pod, name).await?;
        let kubelet = state.kubelet.clone().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
        let mut url = reqwest::Url::parse(&format!("https://kubelet/portForward/{}/{name}", ns.unwrap_or("default"))).map_err(|e| ApiError::Internal(e.to_string()))?;
        url.query_pairs_mut().extend_pairs(q.all.iter().filter(|(k, _)| k == "ports").map(|(k, v)| (k.as_str(), v.as_str())));
        let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
        return super::upgrade::relay_websocket(upgrade, &kubelet, &host, &path, WEBSOCKET_PROTOCOL).await;
    }
    let spdy = header_has(&parts.headers, "upgrade", SPDY_UPGRADE) && header_has(&parts.headers, "x-stream-protocol-version", PROTOCOL_V1);
    if !websocket && !spdy {
        return Err(ApiError::BadRequest(format!(
            "port-forward needs a WebSocket upgrade with subprotocol {TUNNEL_PROTOCOL}, or an upgrade to {SPDY_UPGRADE} with X-Stream-Protocol-Version {PROTOCOL_V1}"
        )));
    }
    let ws = match websocket {
        true => Some(
            WebSocketUpgrade::from_request_parts(&mut parts, &())
                .await
                .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))?,
        ),
        false => None,
    };
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let pod = store.get(ns, name, false).await?;
    let host = kubelet_host(&state.registry, &pod, name).await?;
    let kubelet = state.kubelet.clone().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
    let ns = ns.unwrap_or("default");
    let path = match q.all.is_empty() {
        true => format!("/portForward/{ns}/{name}"),
        false => {
            let mut url = reqwest::Url::parse("https://kubelet/").map_err(|e| ApiError::Internal(e.to_string()))?;
            url.query_pairs_mut().extend_pairs(q.all.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            format!("/portForward/{ns}/{name}?{}", url.query().unwrap_or(""))
        }
    };
    // Dialled before answering the client, so a kubelet failure is an HTTP error it can read.
    let (backend, _) = super::upgrade::dial_spdy(&kubelet, &host, &path, &[PROTOCOL_V1]).await?;
    if let Some(ws) = ws {
        return Ok(ws.protocols([TUNNEL_PROTOCOL]).on_upgrade(move |socket| tunnel(socket, backend)));
    }
    let client_upgrade = client_upgrade.ok_or_else(|| ApiError::BadRequest("the connection cannot be upgraded".into()))?;
    super::upgrade::splice(client_upgrade, backend, PROTOCOL_V1)
}

/// WebSocket binary messages carry the SPDY byte stream, split anywhere (client-go's
/// TunnelingConnection). The kubelet ending its side closes the socket with 1000, which
/// client-go reads as EOF.
async fn tunnel(socket: WebSocket, backend: Upgraded) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut from_kubelet, mut to_kubelet) = tokio::io::split(TokioIo::new(backend));
    let up = async {
        while let Some(Ok(m)) = ws_rx.next().await {
            match m {
                Message::Binary(b) => {
                    if to_kubelet.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        let _ = to_kubelet.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = from_kubelet.read(&mut buf).await {
            if n == 0 || ws_tx.send(Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                break;
            }
        }
        let _ = ws_tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
        let _ = ws_tx.close().await;
    };
    // The session ends when the kubelet's side does; the client closing only half-closes.
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
}
