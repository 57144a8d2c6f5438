//! pods/{name}/exec over WebSocket (`v5.channel.k8s.io`): the client's socket is accepted here
//! and its frames relayed both ways to the kubelet's exec socket.

use super::locate;
use crate::handlers::{Query, SharedState};
use crate::registry::Store;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as AxMessage, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as TMessage;

const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
const PASSED: &[&str] = &["command", "stdin", "stdout", "stderr", "tty"];

pub async fn exec(state: &SharedState, store: &Store, ns: Option<&str>, name: &str, q: &Query, req: Request<Body>) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    let offered: Vec<String> = parts
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let Some(protocol) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)).copied() else {
        return Err(ApiError::BadRequest("exec needs a WebSocket upgrade with subprotocol v5.channel.k8s.io".into()));
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))?;
    if !q.all.iter().any(|(k, _)| k == "command") {
        return Err(ApiError::BadRequest("you must specify at least 1 command".into()));
    }
    let (container, host) = locate(&state.registry, store, ns, name, q.get("container")).await?;
    let kubelet = state.kubelet.clone().ok_or_else(|| ApiError::ServiceUnavailable("no kubelet client configured".into()))?;
    let ns = ns.unwrap_or("default");
    let mut url = reqwest::Url::parse(&format!("wss://{host}/exec/{ns}/{name}/{container}")).map_err(|e| ApiError::Internal(e.to_string()))?;
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &q.all {
            if PASSED.contains(&k.as_str()) {
                pairs.append_pair(k, v);
            }
        }
    }
    let mut kreq = url.as_str().into_client_request().map_err(|e| ApiError::Internal(e.to_string()))?;
    kreq.headers_mut().insert("Sec-WebSocket-Protocol", http::HeaderValue::from_static(protocol));
    let connector = tokio_tungstenite::Connector::Rustls(kubelet.tls.clone());
    let (backend, _) = tokio_tungstenite::connect_async_tls_with_config(kreq, None, true, Some(connector))
        .await
        .map_err(|e| ApiError::ServiceUnavailable(format!("error dialing backend: {e}")))?;
    Ok(upgrade.protocols([protocol]).on_upgrade(move |client| async move {
        let (mut c_tx, mut c_rx) = client.split();
        let (mut b_tx, mut b_rx) = backend.split();
        let up = async {
            while let Some(Ok(m)) = c_rx.next().await {
                let out = match m {
                    AxMessage::Binary(b) => TMessage::Binary(b),
                    AxMessage::Text(t) => TMessage::Text(t.as_str().into()),
                    AxMessage::Ping(p) => TMessage::Ping(p),
                    AxMessage::Pong(p) => TMessage::Pong(p),
                    AxMessage::Close(_) => break,
                };
                if b_tx.send(out).await.is_err() {
                    break;
                }
            }
            let _ = b_tx.close().await;
        };
        let down = async {
            // kubectl reads a close without a status code (1005) as an error, so the kubelet's
            // close frame is passed on, and a normal closure (1000) sent when it gave none.
            let mut close = CloseFrame { code: 1000, reason: "".into() };
            while let Some(Ok(m)) = b_rx.next().await {
                let out = match m {
                    TMessage::Binary(b) => AxMessage::Binary(b),
                    TMessage::Text(t) => AxMessage::Text(t.as_str().into()),
                    TMessage::Ping(p) => AxMessage::Ping(p),
                    TMessage::Pong(p) => AxMessage::Pong(p),
                    TMessage::Close(frame) => {
                        if let Some(f) = frame {
                            close = CloseFrame { code: u16::from(f.code), reason: f.reason.as_str().into() };
                        }
                        break;
                    }
                    TMessage::Frame(_) => break,
                };
                if c_tx.send(out).await.is_err() {
                    break;
                }
            }
            let _ = c_tx.send(AxMessage::Close(Some(close))).await;
            let _ = c_tx.close().await;
        };
        // The session ends when the kubelet side ends (the command exited).
        tokio::select! {
            _ = down => {}
            _ = async { up.await; std::future::pending::<()>().await } => {}
        }
    }))
}
