//! Upgraded connections to the kubelet: a SPDY/3.1 upgrade dialled over TLS with the
//! apiserver's client certificate, whose bytes the apiserver then passes through unchanged
//! (upstream's UpgradeAwareHandler for exec, attach and port-forward).

use super::KubeletClient;
use crate::status::ApiError;
use axum::body::Body;
use axum::response::Response;
use http::header;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

pub const SPDY_UPGRADE: &str = "SPDY/3.1";

/// Every value of a comma-separable header, trimmed.
pub fn header_values(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',').map(|s| s.trim().to_string())).filter(|s| !s.is_empty()).collect()
}

pub fn wants_spdy(h: &http::HeaderMap) -> bool {
    header_values(h, "upgrade").iter().any(|u| u.eq_ignore_ascii_case(SPDY_UPGRADE))
}

/// POSTs an upgrade to SPDY/3.1 offering `protocols` (X-Stream-Protocol-Version, in the
/// client's order) to the kubelet at `host`; returns the connection and the protocol the
/// kubelet chose.
pub async fn dial_spdy(kubelet: &KubeletClient, host: &str, path: &str, protocols: &[&str]) -> Result<(Upgraded, String), ApiError> {
    let unavailable = |e: String| ApiError::ServiceUnavailable(format!("error dialing backend: {e}"));
    let addr: std::net::SocketAddr = host.parse().map_err(|e| ApiError::Internal(format!("kubelet address {host}: {e}")))?;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| unavailable(e.to_string()))?;
    let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(kubelet.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(conn.with_upgrades());
    let mut req = http::Request::post(path).header(header::HOST, host).header(header::CONNECTION, "Upgrade").header(header::UPGRADE, SPDY_UPGRADE);
    for p in protocols {
        req = req.header("X-Stream-Protocol-Version", *p);
    }
    let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| unavailable(e.to_string()))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(ApiError::BadRequest(format!("error upgrading connection to the kubelet ({status}): {message}")));
    }
    let chosen = resp.headers().get("x-stream-protocol-version").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let io = hyper::upgrade::on(resp).await.map_err(|e| unavailable(e.to_string()))?;
    Ok((io, chosen))
}

/// Answers the client's SPDY upgrade with `protocol` and splices its connection to `backend`.
pub fn splice(client: OnUpgrade, backend: Upgraded, protocol: &str) -> Result<Response, ApiError> {
    tokio::spawn(async move {
        if let Ok(client) = client.await {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(backend)).await;
        }
    });
    let mut b = Response::builder().status(http::StatusCode::SWITCHING_PROTOCOLS).header(header::CONNECTION, "Upgrade").header(header::UPGRADE, SPDY_UPGRADE);
    if !protocol.is_empty() {
        b = b.header("X-Stream-Protocol-Version", protocol);
    }
    b.body(Body::empty()).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Dials the kubelet's WebSocket at `path` with subprotocol `protocol`, answers the client's
/// upgrade with it and relays messages both ways until the kubelet's side ends.
pub async fn relay_websocket(upgrade: axum::extract::ws::WebSocketUpgrade, kubelet: &KubeletClient, host: &str, path: &str, protocol: &'static str) -> Result<Response, ApiError> {
    use axum::extract::ws::{CloseFrame, Message as AxMessage};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message as TMessage;
    let mut kreq = format!("wss://{host}{path}").into_client_request().map_err(|e| ApiError::Internal(e.to_string()))?;
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
