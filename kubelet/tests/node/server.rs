//! The kubelet's HTTPS server reached directly with a client certificate.

use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::harness::{phase, pod, Node};

pub struct Pki {
    pub ca_file: tempfile::NamedTempFile,
    pub client_cert: Vec<CertificateDer<'static>>,
    pub client_key: PrivateKeyDer<'static>,
    pub client_pem: String,
}

/// A CA and a client certificate signed by it, as the apiserver holds.
pub fn pki() -> Pki {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
    let ck = rcgen::KeyPair::generate().unwrap();
    let cc = cp.signed_by(&ck, &issuer).unwrap();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca_cert.pem()).unwrap();
    Pki {
        ca_file,
        client_cert: vec![cc.der().clone()],
        client_key: PrivateKeyDer::try_from(ck.serialize_der()).unwrap(),
        client_pem: format!("{}{}", cc.pem(), ck.serialize_pem()),
    }
}

pub async fn start_server(node: &Node, pki: &Pki) -> (u16, CertificateDer<'static>) {
    let port = testkit::free_port();
    let flags = kubelet::config::Flags::parse_from([
        "ferrokube-kubelet",
        "--node-name",
        "test-node",
        "--root-dir",
        &node.k.root_dir.display().to_string(),
        "--port",
        &port.to_string(),
        "--client-ca-file",
        &pki.ca_file.path().display().to_string(),
    ]);
    let srv = kubelet::server::serve(node.k.clone(), &flags)
        .await
        .unwrap();
    tokio::spawn(srv);
    let pem = std::fs::read(node.k.root_dir.join("pki/kubelet.crt")).unwrap();
    let cert = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .unwrap()
        .unwrap();
    (port, cert)
}

pub fn tls_config(server: &CertificateDer<'static>, pki: Option<&Pki>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.clone()).unwrap();
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    Arc::new(match pki {
        Some(p) => b
            .with_client_auth_cert(p.client_cert.clone(), p.client_key.clone_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

fn http(server: &CertificateDer<'static>, pki: Option<&Pki>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(server).unwrap());
    if let Some(p) = pki {
        b = b.identity(reqwest::Identity::from_pem(p.client_pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// Exec over WebSocket v5.channel.k8s.io; returns (stdout, channel-3 status JSON).
async fn exec(
    port: u16,
    server: &CertificateDer<'static>,
    pki: &Pki,
    query: &str,
) -> (String, serde_json::Value) {
    exec_with_stdin(port, server, pki, query, None).await
}

/// Like [`exec`], first sending `stdin` on channel 0 and then closing it (v5: [255, 0]).
async fn exec_with_stdin(
    port: u16,
    server: &CertificateDer<'static>,
    pki: &Pki,
    query: &str,
    stdin: Option<&[u8]>,
) -> (String, serde_json::Value) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("wss://127.0.0.1:{port}/exec/default/srv/main?{query}");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let connector = tokio_tungstenite::Connector::Rustls(tls_config(server, Some(pki)));
    let (mut ws, resp) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "v5.channel.k8s.io"
    );
    if let Some(data) = stdin {
        let mut f = vec![0u8];
        f.extend_from_slice(data);
        ws.send(Message::Binary(f.into())).await.unwrap();
        ws.send(Message::Binary(vec![255u8, 0].into()))
            .await
            .unwrap();
    }
    let mut out = String::new();
    let mut status = serde_json::Value::Null;
    while let Some(Ok(m)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Binary(b) = m {
            match b.first() {
                Some(1) => out.push_str(&String::from_utf8_lossy(&b[1..])),
                Some(3) => status = serde_json::from_slice(&b[1..]).unwrap(),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    (out, status)
}

pub async fn logs_and_exec_through_the_kubelet_server(node: &Node) {
    let pki = pki();
    let (port, server) = start_server(node, &pki).await;
    let p = pod(r#"
metadata: {name: srv}
spec:
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "echo one; echo two; echo three >&2; sleep 3600"]}
  - {name: crashy, image: busybox, command: ["sh", "-c", "echo attempt; exit 1"]}
"#);
    node.run(&p).await;
    node.wait_status("srv", 60, "restarted crashy and running main", |s| {
        let cs = s.container_statuses.as_ref()?;
        (phase(s) == "Running" && cs[0].ready && cs[1].restart_count >= 1).then_some(())
    })
    .await;
    let base = format!("https://127.0.0.1:{port}");
    let c = http(&server, Some(&pki));
    let get = |path: &str| {
        let c = c.clone();
        let url = format!("{base}{path}");
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(get("/healthz").await, "ok");
    let logs = testkit::wait_for_or(
        std::time::Duration::from_secs(10),
        "all three lines logged",
        || {
            let f = get("/containerLogs/default/srv/main");
            async move { Some(f.await).filter(|l| l.lines().count() == 3) }
        },
    )
    .await
    .unwrap();
    // stdout and stderr are separate pipes: only each stream's own order is fixed.
    let mut lines: Vec<&str> = logs.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["one", "three", "two"], "{logs}");
    assert!(
        logs.find("one").unwrap() < logs.find("two").unwrap(),
        "{logs}"
    );
    let tail = get("/containerLogs/default/srv/main?tailLines=1").await;
    assert_eq!(tail.lines().count(), 1);
    let ts = get("/containerLogs/default/srv/main?timestamps=true&tailLines=1").await;
    let (stamp, rest) = ts.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{ts}");
    assert!(!rest.is_empty());
    assert_eq!(
        get("/containerLogs/default/srv/main?limitBytes=3").await,
        &logs[..3]
    );
    // kubectl logs --since / --since-time: records from that instant on.
    assert_eq!(
        get("/containerLogs/default/srv/main?sinceSeconds=3600").await,
        logs
    );
    let stamped = get("/containerLogs/default/srv/main?timestamps=true").await;
    let records: Vec<(chrono::DateTime<chrono::FixedOffset>, &str)> = stamped
        .lines()
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap();
            (chrono::DateTime::parse_from_rfc3339(t).unwrap(), rest)
        })
        .collect();
    let cut = records.iter().map(|r| r.0).max().unwrap();
    let want: String = records
        .iter()
        .filter(|r| r.0 >= cut)
        .map(|r| format!("{}\n", r.1))
        .collect();
    let since = cut
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        .replace(':', "%3A");
    assert_eq!(
        get(&format!(
            "/containerLogs/default/srv/main?sinceTime={since}"
        ))
        .await,
        want,
        "{stamped}"
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace(':', "%3A");
    assert_eq!(
        get(&format!(
            "/containerLogs/default/srv/main?sinceTime={future}"
        ))
        .await,
        ""
    );
    assert_eq!(
        get("/containerLogs/default/srv/crashy?previous=true").await,
        "attempt\n"
    );
    let pods: serde_json::Value = serde_json::from_str(&get("/pods").await).unwrap();
    assert_eq!(pods["kind"], "PodList");
    assert!(pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == "srv"));
    let metrics = get("/metrics").await;
    assert!(metrics.contains("kubelet_running_pods"), "{metrics}");

    let (out, status) = exec(
        port,
        &server,
        &pki,
        "command=sh&command=-c&command=echo%20hi%3B%20hostname&stdout=true",
    )
    .await;
    assert_eq!(out, "hi\nsrv\n", "{status}");
    assert_eq!(status["status"], "Success");
    let (_, status) = exec(
        port,
        &server,
        &pki,
        "command=sh&command=-c&command=exit%203&stdout=true",
    )
    .await;
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let (out, status) = exec_with_stdin(
        port,
        &server,
        &pki,
        "command=cat&stdin=true&stdout=true&stderr=true",
        Some(b"piped in\n"),
    )
    .await;
    assert_eq!(out, "piped in\n");
    assert_eq!(status["status"], "Success");

    // No client certificate and no token: anonymous, which this kubelet refuses with 401
    // (--anonymous-auth=false), as upstream's; it never lists pods or execs.
    let anon = http(&server, None);
    let r = anon.get(format!("{base}/pods")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
}
