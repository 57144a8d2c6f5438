//! The kubelet's remotecommand streams for /exec and /attach, as upstream's streaming
//! server serves them (pkg/kubelet/cri/streaming/remotecommand): over a WebSocket
//! (`v5.channel.k8s.io`/`v4.channel.k8s.io`, one channel byte per message) or over a
//! SPDY/3.1 upgrade (`v5`..`v2.channel.k8s.io`, one SPDY stream per standard stream).
//! Either transport is turned into the same [`Streams`], so a session (an exec'd process,
//! an attached container) is written once.

pub mod spdy;
pub mod websocket;

use bytes::Bytes;
use tokio::sync::mpsc;

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Bytes),
    /// The client closed its stdin (v5 WebSocket close signal, SPDY FIN on the stdin stream).
    StdinEof,
    Resize { width: u16, height: u16 },
}

/// What the session sends back; `Exit` is the last message.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The session's end, as the metav1.Status the error stream carries.
    Exit(serde_json::Value),
}

/// Which standard streams the request asked for (query `stdin`, `stdout`, `stderr`, `tty`;
/// stderr is dropped with a tty, as upstream does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    pub fn from_query(q: &[(String, String)]) -> Self {
        let flag = |k: &str| q.iter().any(|(key, v)| key == k && (v.is_empty() || v == "true" || v == "1"));
        let tty = flag("tty");
        Options { stdin: flag("stdin"), stdout: flag("stdout"), stderr: flag("stderr") && !tty, tty }
    }
}

/// One session's ends: input closes when the client goes away.
pub struct Streams {
    pub input: mpsc::Receiver<Input>,
    pub output: mpsc::Sender<Output>,
}

/// The channel of `Output`s a transport drains, and the `Streams` a session holds.
pub fn pair() -> (mpsc::Sender<Input>, mpsc::Receiver<Output>, Streams) {
    let (in_tx, in_rx) = mpsc::channel(32);
    let (out_tx, out_rx) = mpsc::channel(32);
    (in_tx, out_rx, Streams { input: in_rx, output: out_tx })
}

/// The Status of a successful end.
pub fn success() -> serde_json::Value {
    serde_json::json!({"metadata": {}, "status": "Success"})
}

/// A failure Status with upstream's reason.
pub fn failure(reason: &str, message: String) -> serde_json::Value {
    serde_json::json!({"metadata": {}, "status": "Failure", "message": message, "reason": reason})
}

/// Channel 3's Status for an exit code, as upstream's remotecommand sends it.
pub fn exit_status(code: i32, command: &[String]) -> serde_json::Value {
    if code == 0 {
        return success();
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// The body of a terminal-size message (`{"Width":..,"Height":..}`, client-go's TerminalSize).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// SPDY upgrade or WebSocket: the transport a request asked for.
pub enum Transport {
    WebSocket(axum::extract::ws::WebSocketUpgrade),
    Spdy { protocol: &'static str, upgrade: hyper::upgrade::OnUpgrade },
}

/// Why a request cannot be streamed (answered as a 400 or 403 Status).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{0}")]
    BadRequest(String),
    /// No offered SPDY stream protocol is served (upstream answers 403).
    #[error("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {served:?}")]
    Protocol { offered: Vec<String>, served: &'static [&'static str] },
}

fn header_values(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',').map(|s| s.trim().to_string())).filter(|s| !s.is_empty()).collect()
}

/// Picks the transport of `req`: SPDY when it asks for `Upgrade: SPDY/3.1`, else a WebSocket.
pub async fn transport(req: axum::extract::Request) -> Result<Transport, UpgradeError> {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = req.into_parts();
    let spdy = header_values(&parts.headers, "upgrade").iter().any(|u| u.eq_ignore_ascii_case(crate::container::spdy::SPDY_UPGRADE));
    if spdy {
        let offered = header_values(&parts.headers, "x-stream-protocol-version");
        let protocol = spdy::negotiate(&offered).ok_or(UpgradeError::Protocol { offered, served: spdy::PROTOCOLS })?;
        let upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| UpgradeError::BadRequest("the connection cannot be upgraded".into()))?;
        return Ok(Transport::Spdy { protocol, upgrade });
    }
    axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map(Transport::WebSocket)
        .map_err(|_| UpgradeError::BadRequest("streaming requires a WebSocket upgrade (v5.channel.k8s.io) or an upgrade to SPDY/3.1".into()))
}

/// Answers the upgrade and runs `session` on the streams once the client is connected.
pub fn serve<F, Fut>(t: Transport, opts: Options, session: F) -> axum::response::Response
where
    F: FnOnce(Streams) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match t {
        Transport::WebSocket(ws) => ws.protocols(websocket::PROTOCOLS).on_upgrade(move |socket| async move {
            let (in_tx, out_rx, streams) = pair();
            let transport = tokio::spawn(websocket::run(socket, in_tx, out_rx));
            session(streams).await;
            let _ = transport.await;
        }),
        Transport::Spdy { protocol, upgrade } => {
            tokio::spawn(async move {
                let Ok(io) = upgrade.await else { return };
                let io = hyper_util::rt::TokioIo::new(io);
                match spdy::accept(io, protocol, opts).await {
                    Ok((conn, in_tx, streams, out_rx)) => {
                        let transport = tokio::spawn(conn.run(in_tx, out_rx));
                        session(streams).await;
                        let _ = transport.await;
                    }
                    Err(e) => tracing::debug!(error = %e, "remotecommand streams"),
                }
            });
            axum::response::Response::builder()
                .status(http::StatusCode::SWITCHING_PROTOCOLS)
                .header(http::header::CONNECTION, "Upgrade")
                .header(http::header::UPGRADE, crate::container::spdy::SPDY_UPGRADE)
                .header("X-Stream-Protocol-Version", protocol)
                .body(axum::body::Body::empty())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tty_drops_stderr() {
        let q = |s: &str| s.split('&').map(|kv| { let (k, v) = kv.split_once('=').unwrap_or((kv, "")); (k.to_string(), v.to_string()) }).collect::<Vec<_>>();
        assert_eq!(Options::from_query(&q("stdin=true&stdout=1&stderr=true&tty=true")), Options { stdin: true, stdout: true, stderr: false, tty: true });
        assert_eq!(Options::from_query(&q("stdout=true&stderr=true")), Options { stdin: false, stdout: true, stderr: true, tty: false });
    }

    #[test]
    fn exit_status_carries_the_code() {
        assert_eq!(exit_status(0, &[]).to_string(), r#"{"metadata":{},"status":"Success"}"#);
        let v = exit_status(3, &["false".into()]);
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
    }
}
