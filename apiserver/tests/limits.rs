//! Limits that keep clients from harming the server: body and object size (413, never a
//! 500), and slow clients, whose connections are closed instead of held.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn size_limits_and_slow_clients() {
    let h = Harness::start().await;
    an_object_too_large_for_etcd_is_a_413(&h).await;
    a_huge_declared_length_is_refused_at_once(&h).await;
    a_client_that_never_finishes_its_headers_is_cut_off(&h).await;
    // And the server still serves.
    assert_eq!(h.post(CMS, &json!({"metadata": {"name": "after"}})).await.status, StatusCode::CREATED);
}

async fn an_object_too_large_for_etcd_is_a_413(h: &Harness) {
    // 120,000 keys, 1.6 MB as JSON: under the 3 MiB body limit, over what etcd stores.
    let data: serde_json::Map<String, serde_json::Value> = (0..120_000).map(|i| (format!("k{i:06}"), json!("v"))).collect();
    let r = h.post(CMS, &json!({"metadata": {"name": "huge"}, "data": data})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", &r.text()[..r.text().len().min(300)]);
    assert_eq!(r.json()["reason"], "RequestEntityTooLarge");
    assert_eq!(h.get(&format!("{CMS}/huge")).await.status, StatusCode::NOT_FOUND);
}

async fn tls_connect(h: &Harness) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let ca = std::fs::read(h.api.ca_file()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = reqwest::Url::parse(&h.api.url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1".to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap()
}

async fn a_huge_declared_length_is_refused_at_once(h: &Harness) {
    let mut s = tls_connect(h).await;
    let req = format!(
        "POST {CMS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{{",
        support::TOKEN
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await.expect("an answer without the body").unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("Request entity too large: limit is 3145728"), "{head}");
}

async fn a_client_that_never_finishes_its_headers_is_cut_off(h: &Harness) {
    let mut s = tls_connect(h).await;
    s.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The server closes the connection (EOF or an error) instead of waiting forever.
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(50), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 50 s");
}
