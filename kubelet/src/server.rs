//! The kubelet's HTTPS server: /healthz, /pods, /metrics, /containerLogs,
//! /exec and /attach (WebSocket v5/v4.channel.k8s.io or SPDY/3.1, `container::streaming`)
//! and /portForward (SPDY/3.1). Clients present a certificate that chains to
//! --client-ca-file or a bearer token, and are authorized per request (`crate::auth`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::AsyncReadExt;

use crate::config::Flags;
use crate::container::logs::{self, LogOptions};
use crate::container::streaming;
use crate::context::Kubelet;
use crate::runtime::{ContainerState, ObservedContainer};

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
        .route("/attach/{ns}/{pod}/{container}", get(attach).post(attach))
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

/// The running attempt of `container` in pod `ns/name`, or the Status to answer.
async fn running_container(k: &Kubelet, ns: &str, name: &str, container: &str) -> Result<String, Response> {
    let Some(pod) = find_pod(k, ns, name).await else {
        return Err(status_error(StatusCode::NOT_FOUND, "NotFound", format!("pod \"{name}\" not found")));
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    attempts_of(k, &uid, container)
        .await
        .into_iter()
        .find(|c| matches!(c.state, ContainerState::Running { .. }))
        .map(|c| c.id)
        .ok_or_else(|| status_error(StatusCode::BAD_REQUEST, "BadRequest", format!("container {container} is not valid for pod {name}")))
}

async fn streaming_transport(req: axum::extract::Request) -> Result<streaming::Transport, Response> {
    streaming::transport(req).await.map_err(|e| match e {
        streaming::UpgradeError::Protocol { .. } => status_error(StatusCode::FORBIDDEN, "Forbidden", e.to_string()),
        streaming::UpgradeError::BadRequest(m) => status_error(StatusCode::BAD_REQUEST, "BadRequest", m),
    })
}

/// /exec over a WebSocket or SPDY/3.1 (see `container::streaming`).
async fn exec(
    State(k): State<Arc<Kubelet>>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: axum::extract::Request,
) -> Response {
    let q = parse_query(q.as_deref());
    let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    if command.is_empty() {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", "you must specify at least one command for the container".into());
    }
    let transport = match streaming_transport(req).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let id = match running_container(&k, &ns, &name, &container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let opts = streaming::Options::from_query(&q);
    streaming::serve(transport, opts, move |streams| crate::container::exec::session(k, streams, id, command, opts))
}

/// /attach over a WebSocket or SPDY/3.1: the container's own stdio.
async fn attach(
    State(k): State<Arc<Kubelet>>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    RawQuery(q): RawQuery,
    req: axum::extract::Request,
) -> Response {
    let q = parse_query(q.as_deref());
    let transport = match streaming_transport(req).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let id = match running_container(&k, &ns, &name, &container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let opts = streaming::Options::from_query(&q);
    streaming::serve(transport, opts, move |streams| crate::container::attach::session(k, streams, id, opts))
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
    let websocket = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if websocket {
        return port_forward_websocket(&k, pod, req).await;
    }
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

/// Port-forward over a plain WebSocket (`v4.channel.k8s.io`, `?ports=`).
async fn port_forward_websocket(k: &Arc<Kubelet>, pod: Pod, req: axum::extract::Request) -> Response {
    use crate::container::port_forward::{self as pf, PodLocalhost, Target};
    use axum::extract::FromRequestParts;
    let q = parse_query(req.uri().query());
    let ports = match pf::websocket::parse_ports(&q) {
        Ok(p) => p,
        Err(m) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", m),
    };
    let (mut parts, _) = req.into_parts();
    let Ok(ws) = axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", "websocket upgrade failed".into());
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let target = Arc::new(Target {
        pod: format!("{}/{}", pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default()),
        uid: uid.clone(),
        dialer: Arc::new(PodLocalhost { netns: (!host_network).then(|| k.namespaces(&uid).net()) }),
    });
    ws.protocols(pf::websocket::PROTOCOLS).on_upgrade(move |socket| pf::websocket::serve(socket, target, ports))
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
            // Token clients come without a certificate; the auth layer decides for them.
            let v = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
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
    let mode = flags.authorization_mode.unwrap_or(if k.client.is_some() {
        crate::auth::AuthorizationMode::Webhook
    } else {
        crate::auth::AuthorizationMode::AlwaysAllow
    });
    let auth = Arc::new(crate::auth::ApiAuth::new(&k.node_name, flags.anonymous_auth, mode, k.client.clone()));
    let app = app(k).layer(axum::middleware::from_fn_with_state(auth, crate::auth::layer));
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
                let peer = crate::auth::Peer(
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| crate::auth::user_of_certificate(c.as_ref())),
                );
                let app = tower::ServiceExt::map_request(app, move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    req.map(axum::body::Body::new)
                });
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
}
