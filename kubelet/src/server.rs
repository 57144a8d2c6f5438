//! The kubelet's HTTPS server: /healthz, /pods, /metrics, /containerLogs,
//! /exec (WebSocket v5.channel.k8s.io) and /portForward (SPDY/3.1). Clients must present a certificate
//! that chains to --client-ca-file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Flags;
use crate::container::logs::{self, LogOptions};
use crate::context::Kubelet;
use crate::runtime::{ContainerState, ExecConfig, ObservedContainer};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("tls: {0}")]
    Tls(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Parsed query: repeated keys (command=..&command=..) keep their order.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return vec![] };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn flag(q: &[(String, String)], k: &str) -> bool {
    q.iter()
        .any(|(key, v)| key == k && (v.is_empty() || v == "true" || v == "1"))
}

fn int(q: &[(String, String)], k: &str) -> Option<i64> {
    q.iter()
        .find(|(key, _)| key == k)
        .and_then(|(_, v)| v.parse().ok())
}

pub fn app(k: Arc<Kubelet>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/metrics", get(metrics))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
        .route("/portForward/{ns}/{pod}", get(port_forward).post(port_forward))
        .with_state(k)
}

async fn pods(State(k): State<Arc<Kubelet>>) -> Response {
    let mut items = Vec::new();
    for (uid, p) in k.pods.read().await.iter() {
        let mut p = p.clone();
        if let Some(s) = k.status.get(uid).await {
            p.status = Some(s);
        }
        items.push(serde_json::to_value(&p).unwrap_or_default());
    }
    let body =
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(k): State<Arc<Kubelet>>) -> Response {
    let pods = k.pods.read().await.len();
    let running = k
        .runtime
        .list_containers()
        .await
        .map(|cs| {
            cs.iter()
                .filter(|c| matches!(c.state, ContainerState::Running { .. }))
                .count()
        })
        .unwrap_or(0);
    let body = format!(
        "# HELP kubelet_running_pods Number of pods that have a running pod sandbox\n# TYPE kubelet_running_pods gauge\nkubelet_running_pods {pods}\n# HELP kubelet_running_containers Number of containers currently running\n# TYPE kubelet_running_containers gauge\nkubelet_running_containers{{container_state=\"running\"}} {running}\n"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn find_pod(k: &Kubelet, ns: &str, name: &str) -> Option<Pod> {
    k.pods
        .read()
        .await
        .values()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name)
        })
        .cloned()
}

async fn attempts_of(k: &Kubelet, uid: &str, container: &str) -> Vec<ObservedContainer> {
    let cs = k.runtime.list_containers().await.unwrap_or_default();
    let mut v: Vec<ObservedContainer> = cs
        .into_iter()
        .filter(|c| c.pod_uid == uid && c.name == container)
        .collect();
    v.sort_by(|a, b| b.restart_count.cmp(&a.restart_count));
    v
}

async fn container_logs(
    State(k): State<Arc<Kubelet>>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = parse_query(q.as_deref());
    let Some(pod) = find_pod(&k, &ns, &name).await else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pod \"{name}\" not found"),
        );
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let tries = attempts_of(&k, &uid, &container).await;
    let previous = flag(&q, "previous");
    let chosen = if previous {
        tries.get(1)
    } else {
        tries.first()
    };
    let Some(c) = chosen.cloned() else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating")
        };
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", msg);
    };
    let opts = LogOptions {
        tail_lines: int(&q, "tailLines"),
        timestamps: flag(&q, "timestamps"),
        since: int(&q, "sinceSeconds")
            .map(|s| chrono::Utc::now() - chrono::Duration::seconds(s))
            .or_else(|| {
                q.iter()
                    .find(|(k, _)| k == "sinceTime")
                    .and_then(|(_, v)| chrono::DateTime::parse_from_rfc3339(v).ok())
                    .map(|d| d.with_timezone(&chrono::Utc))
            }),
        limit_bytes: int(&q, "limitBytes"),
    };
    let path = logs::log_path(&k.log_dir(&uid), &container, c.restart_count);
    let records = logs::read_records(&path).await;
    let initial = logs::render(&records, &opts);
    let follow =
        flag(&q, "follow") && !previous && matches!(c.state, ContainerState::Running { .. });
    if !follow {
        return ([(header::CONTENT_TYPE, "text/plain")], initial).into_response();
    }
    // Follow: poll the file for appended records until the container stops.
    let offset = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let sent = initial.len() as i64;
    let stream = futures::stream::unfold(
        (
            Some(initial),
            offset,
            sent,
            k.clone(),
            uid,
            container.clone(),
            c.id.clone(),
            opts,
            path,
            0u32,
        ),
        |(first, offset, sent, k, uid, name, id, opts, path, idle)| async move {
            if let Some(f) = first {
                return Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(f)),
                    (None, offset, sent, k, uid, name, id, opts, path, 0),
                ));
            }
            let mut offset = offset;
            let mut idle = idle;
            loop {
                if opts.limit_bytes.is_some_and(|l| sent >= l) {
                    return None;
                }
                let mut f = tokio::fs::File::open(&path).await.ok()?;
                let len = f.metadata().await.ok()?.len();
                if len > offset {
                    use tokio::io::AsyncSeekExt;
                    f.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
                    let mut buf = Vec::new();
                    f.take(len - offset).read_to_end(&mut buf).await.ok()?;
                    // Only whole records; a torn last line waits for the next round.
                    let cut = buf
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map(|i| i + 1)
                        .unwrap_or(0);
                    if cut > 0 {
                        offset += cut as u64;
                        let recs: Vec<_> = buf[..cut]
                            .split_inclusive(|c| *c == b'\n')
                            .filter_map(logs::parse_line)
                            .collect();
                        let o = LogOptions {
                            tail_lines: None,
                            since: None,
                            ..opts.clone()
                        };
                        let mut out = logs::render(&recs, &o);
                        if let Some(l) = opts.limit_bytes {
                            out.truncate((l - sent).max(0) as usize);
                        }
                        let n = out.len() as i64;
                        return Some((
                            Ok(bytes::Bytes::from(out)),
                            (None, offset, sent + n, k, uid, name, id, opts, path, 0),
                        ));
                    }
                }
                let running = k
                    .runtime
                    .list_containers()
                    .await
                    .ok()?
                    .into_iter()
                    .any(|c| c.id == id && matches!(c.state, ContainerState::Running { .. }));
                if !running {
                    idle += 1;
                    if idle > 3 {
                        return None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn exec(
    State(k): State<Arc<Kubelet>>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let q = parse_query(q.as_deref());
    let command: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least one command for the container".into(),
        );
    }
    let Ok(ws) = ws else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "exec requires a WebSocket upgrade with v5.channel.k8s.io".into(),
        );
    };
    let Some(pod) = find_pod(&k, &ns, &name).await else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pod \"{name}\" not found"),
        );
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(c) = attempts_of(&k, &uid, &container)
        .await
        .into_iter()
        .find(|c| matches!(c.state, ContainerState::Running { .. }))
    else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("container {container} is not valid for pod {name}"),
        );
    };
    let tty = flag(&q, "tty");
    let (stdin, stdout, stderr) = (
        flag(&q, "stdin"),
        flag(&q, "stdout"),
        flag(&q, "stderr") && !tty,
    );
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            if let Err(e) = exec_session(k, socket, c.id, command, stdin, stdout, stderr, tty).await
            {
                tracing::debug!(error = %e, "exec session");
            }
        })
}

/// A close frame with 1000: client-go treats anything else (even "no status") as an error.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

/// Channel 3's Status for an exit code, as upstream's remotecommand sends it.
pub fn exit_status_json(code: i32, command: &[String]) -> String {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"}).to_string();
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
    .to_string()
}

#[allow(clippy::too_many_arguments)]
async fn exec_session(
    k: Arc<Kubelet>,
    socket: WebSocket,
    container_id: String,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), String> {
    let exec_id = crate::container::exec::exec_id();
    // The shim needs both output paths (an empty one fails); unwanted output is discarded.
    let fifos =
        crate::container::exec::make_fifos(&k.root_dir.join("exec"), &exec_id, stdin, true, !tty)
            .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = socket.split();
    let open_rx = |p: &Option<std::path::PathBuf>| -> std::io::Result<
        Option<(
            tokio::net::unix::pipe::Receiver,
            tokio::net::unix::pipe::Sender,
        )>,
    > {
        match p {
            None => Ok(None),
            Some(p) => {
                let r = tokio::net::unix::pipe::OpenOptions::new().open_receiver(p)?;
                let hold = tokio::net::unix::pipe::OpenOptions::new().open_sender(p)?;
                Ok(Some((r, hold)))
            }
        }
    };
    let out = open_rx(&fifos.stdout).map_err(|e| e.to_string())?;
    let err = open_rx(&fifos.stderr).map_err(|e| e.to_string())?;
    let input = match &fifos.stdin {
        Some(p) => Some(
            tokio::net::unix::pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(p)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let cfg = ExecConfig {
        container_id: container_id.clone(),
        exec_id: exec_id.clone(),
        // As containerd's CRI does: the container's own user, env and cwd.
        process: crate::container::exec::container_process_spec(
            &k.root_dir,
            &container_id,
            &command,
            tty,
        ),
        stdin: fifos.stdin.clone(),
        stdout: fifos.stdout.clone(),
        stderr: fifos.stderr.clone(),
        terminal: tty,
    };
    let started = k.runtime.exec(cfg).await;
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let mut pumps = Vec::new();
    for (chan, pipe, wanted) in [(1u8, out, stdout), (2u8, err, stderr)] {
        if let Some((mut r, hold)) = pipe {
            drop(hold);
            let ftx = frames_tx.clone();
            pumps.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) if !wanted => {}
                        Ok(n) => {
                            let mut f = Vec::with_capacity(n + 1);
                            f.push(chan);
                            f.extend_from_slice(&buf[..n]);
                            if ftx.send(f).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    drop(frames_tx);
    if let Err(e) = started {
        let msg = serde_json::json!({"metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "InternalError"}).to_string();
        let mut f = vec![3u8];
        f.extend_from_slice(msg.as_bytes());
        let _ = tx.send(Message::Binary(f.into())).await;
        let _ = tx.send(normal_close()).await;
        let _ = std::fs::remove_dir_all(&fifos.dir);
        return Ok(());
    }
    // Client → process: stdin, resize, close.
    let k2 = k.clone();
    let (cid, eid) = (container_id.clone(), exec_id.clone());
    let reader = tokio::spawn(async move {
        let mut input = input;
        while let Some(Ok(m)) = rx.next().await {
            let data = match m {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first() {
                Some(0) => {
                    if let Some(i) = input.as_mut() {
                        let _ = i.write_all(&data[1..]).await;
                    }
                }
                Some(4) => {
                    #[derive(serde::Deserialize)]
                    #[serde(rename_all = "PascalCase")]
                    struct Size {
                        width: u32,
                        height: u32,
                    }
                    if let Ok(s) = serde_json::from_slice::<Size>(&data[1..]) {
                        let _ = k2.runtime.resize_exec(&cid, &eid, s.width, s.height).await;
                    }
                }
                Some(255) if data.get(1) == Some(&0) => {
                    if let Some(mut i) = input.take() {
                        let _ = i.flush().await;
                        drop(i);
                        let _ = k2.runtime.close_exec_stdin(&cid, &eid).await;
                    }
                }
                _ => {}
            }
        }
    });
    let waiter = {
        let k = k.clone();
        let (cid, eid) = (container_id.clone(), exec_id.clone());
        tokio::spawn(async move { k.runtime.wait_exec(&cid, &eid).await })
    };
    while let Some(f) = frames_rx.recv().await {
        if tx.send(Message::Binary(f.into())).await.is_err() {
            break;
        }
    }
    let code = waiter.await.map_err(|e| e.to_string())?.unwrap_or(1);
    let mut f = vec![3u8];
    f.extend_from_slice(exit_status_json(code, &command).as_bytes());
    let _ = tx.send(Message::Binary(f.into())).await;
    let _ = tx.send(normal_close()).await;
    reader.abort();
    let _ = std::fs::remove_dir_all(&fifos.dir);
    Ok(())
}

/// True when the request asks for SPDY/3.1 carrying `portforward.k8s.io` streams.
fn wants_spdy_port_forward(h: &http::HeaderMap) -> bool {
    use crate::container::port_forward::{PROTOCOL_V1, SPDY_UPGRADE};
    let has = |name: header::HeaderName, want: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    has(header::UPGRADE, SPDY_UPGRADE) && has(header::HeaderName::from_static("x-stream-protocol-version"), PROTOCOL_V1)
}

/// pods/portforward as upstream's streaming server answers it: 101 to SPDY/3.1 with
/// `portforward.k8s.io`, then a session whose streams name the ports.
async fn port_forward(
    State(k): State<Arc<Kubelet>>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    mut req: axum::extract::Request,
) -> Response {
    use crate::container::port_forward::{self as pf, PodLocalhost, Target};
    let Some(pod) = find_pod(&k, &ns, &name).await else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", format!("pod \"{name}\" not found"));
    };
    if !wants_spdy_port_forward(req.headers()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("port-forward needs an upgrade to {} with X-Stream-Protocol-Version {}", pf::SPDY_UPGRADE, pf::PROTOCOL_V1),
        );
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let target = Target {
        pod: format!("{ns}/{name}"),
        uid: uid.clone(),
        dialer: Arc::new(PodLocalhost { netns: (!host_network).then(|| k.namespaces(&uid).net()) }),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => {
                if let Err(e) = pf::serve(hyper_util::rt::TokioIo::new(io), target).await {
                    tracing::debug!(error = %e, "port-forward session");
                }
            }
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, pf::SPDY_UPGRADE)
        .header("X-Stream-Protocol-Version", pf::PROTOCOL_V1)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Loads the serving certificate from the root dir, creating a self-signed one once.
fn serving_cert(
    root: &Path,
    ip: &str,
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    ServerError,
> {
    let dir = root.join("pki");
    std::fs::create_dir_all(&dir)?;
    let (crt, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if !crt.exists() || !key.exists() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        if let Ok(addr) = ip.parse::<std::net::IpAddr>() {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(addr));
        }
        let kp = rcgen::KeyPair::generate().map_err(|e| ServerError::Tls(e.to_string()))?;
        let cert = params
            .self_signed(&kp)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        std::fs::write(&crt, cert.pem())?;
        std::fs::write(&key, kp.serialize_pem())?;
    }
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(&crt)?))
        .collect::<Result<Vec<_>, _>>()?;
    let key =
        rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(&key)?))?
            .ok_or_else(|| ServerError::Tls("no private key".into()))?;
    Ok((certs, key))
}

/// Binds the server and returns the accept loop to spawn.
pub async fn serve(
    k: Arc<Kubelet>,
    flags: &Flags,
) -> Result<impl std::future::Future<Output = ()>, ServerError> {
    let (certs, key) = serving_cert(&flags.root_dir, &flags.node_ip)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &flags.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(ca)?)) {
                roots.add(c?).map_err(|e| ServerError::Tls(e.to_string()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        // Without a CA there is nothing to verify against; only for local runs.
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind((flags.node_ip.as_str(), flags.port)).await?;
    let app = app(k);
    Ok(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keeps_repeated_commands_in_order() {
        let q = parse_query(Some(
            "command=sh&command=-c&command=echo%20hi&stdout=true&tty",
        ));
        let cmd: Vec<_> = q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cmd, vec!["sh", "-c", "echo hi"]);
        assert!(flag(&q, "stdout"));
        assert!(flag(&q, "tty"));
        assert!(!flag(&q, "stdin"));
    }

    #[test]
    fn bad_percent_escapes_do_not_panic() {
        assert_eq!(pct_decode("%"), "%");
        assert_eq!(pct_decode("%z"), "%z");
        assert_eq!(pct_decode("a%2"), "a%2");
    }

    #[test]
    fn exit_status_carries_the_code() {
        assert_eq!(
            exit_status_json(0, &[]),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&exit_status_json(3, &["false".into()])).unwrap();
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
    }
}
