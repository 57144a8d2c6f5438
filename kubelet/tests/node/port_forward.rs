//! pods/portforward on the kubelet's HTTPS server: a SPDY/3.1 upgrade, then streams as
//! client-go opens them, reaching nginx on localhost inside the pod's network namespace.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use kubelet::container::spdy::frame::{Codec, Frame};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_util::codec::Framed;

use crate::harness::{phase, pod, Node};
use crate::server::{pki, start_server, tls_config, Pki};

type Session = Framed<TokioIo<hyper::upgrade::Upgraded>, Codec>;

/// Upgrades a TLS connection to the kubelet to SPDY/3.1 with `portforward.k8s.io`.
async fn connect(port: u16, server: &CertificateDer<'static>, pki: &Pki, pod: &str) -> Session {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(tls_config(server, Some(pki)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::post(format!("/portForward/default/{pod}"))
        .header("Host", "localhost")
        .header("Connection", "Upgrade")
        .header("Upgrade", "SPDY/3.1")
        .header("X-Stream-Protocol-Version", "portforward.k8s.io")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-stream-protocol-version"], "portforward.k8s.io");
    Framed::new(TokioIo::new(hyper::upgrade::on(resp).await.unwrap()), Codec::default())
}

/// One forwarded connection as client-go makes it: the error stream (closed for writing
/// at once), then the data stream; `request` is sent and half-closed. Returns what came
/// back on the data and error streams.
async fn forward(s: &mut Session, request_id: u32, port: u16, request: &[u8]) -> (String, String) {
    let (error_id, data_id) = (request_id * 4 + 1, request_id * 4 + 3);
    for (id, kind) in [(error_id, "error"), (data_id, "data")] {
        let headers = vec![
            ("streamType".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestID".to_string(), request_id.to_string()),
        ];
        s.send(Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers }).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), Frame::SynReply { stream_id: id, fin: false, headers: vec![] });
        if kind == "error" {
            s.send(Frame::Data { stream_id: id, fin: true, data: Bytes::new() }).await.unwrap();
        }
    }
    s.send(Frame::Data { stream_id: data_id, fin: true, data: Bytes::copy_from_slice(request) }).await.unwrap();
    let (mut data, mut error) = (Vec::new(), Vec::new());
    let (mut data_done, mut error_done) = (false, false);
    while !(data_done && error_done) {
        match s.next().await.unwrap().unwrap() {
            Frame::Data { stream_id, fin, data: d } if stream_id == data_id => {
                data.extend_from_slice(&d);
                data_done |= fin;
            }
            Frame::Data { stream_id, fin, data: d } if stream_id == error_id => {
                error.extend_from_slice(&d);
                error_done |= fin;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (String::from_utf8_lossy(&data).into_owned(), String::from_utf8_lossy(&error).into_owned())
}

pub async fn spdy_port_forward_reaches_nginx_inside_the_pods_network_namespace(node: &Node) {
    let pki = pki();
    let (port, server) = start_server(node, &pki).await;
    let p = pod("metadata: {name: web}\nspec:\n  containers:\n  - {name: nginx, image: nginx}\n");
    let uid = p.metadata.uid.clone().unwrap();
    node.run(&p).await;
    node.wait_status("web", 60, "nginx running", |s| (phase(s) == "Running").then_some(())).await;
    // Running is not listening yet: wait until a forwarded request gets nginx's page.
    let get = b"GET / HTTP/1.0\r\n\r\n";
    let page = testkit::wait_for_or(Duration::from_secs(30), "nginx answering through port-forward", || {
        let (server, pki) = (&server, &pki);
        async move {
            let mut s = connect(port, server, pki, "web").await;
            let (data, error) = forward(&mut s, 0, 80, get).await;
            Some(data).filter(|d| d.contains("Welcome to nginx!") && error.is_empty())
        }
    })
    .await
    .unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    // Nothing listens on 81 in the pod: upstream's message on the error stream, and the
    // session stays usable.
    let mut s = connect(port, &server, &pki, "web").await;
    let (data, error) = forward(&mut s, 0, 81, b"").await;
    assert_eq!(data, "");
    let netns = node.k.namespaces(&uid).net();
    let want = format!("error forwarding port 81 to pod default/web, uid {uid}: failed to connect to localhost:81 inside namespace {:?}, IPv4: ", netns.display().to_string());
    assert!(error.starts_with(&want), "{error}");
    let (data, _) = forward(&mut s, 1, 80, get).await;
    assert!(data.contains("Welcome to nginx!"), "{data}");
    // A pod the kubelet does not run is a 404 before any upgrade.
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&server).unwrap())
        .identity(reqwest::Identity::from_pem(pki.client_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = c.post(format!("https://localhost:{port}/portForward/default/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
