//! The controller-manager's port as upstream's 10257: HTTPS, health open to anyone, /metrics
//! only for a caller the apiserver authenticates (TokenReview or the client CA) and
//! authorizes (SubjectAccessReview). Issue 17, defect 10.

mod common;

use testkit::secure_port::{get, Caller};

#[tokio::test]
async fn controller_manager_port_serves_https_with_health_open_and_metrics_authorized() {
    let env = common::Env::start(&[]).await;
    let port = env.metrics_port;
    let health = testkit::wait_for(std::time::Duration::from_secs(30), || async { get(port, "/healthz", Caller::Anonymous).await.ok().filter(|(c, _)| *c == 200) })
        .await
        .expect("/healthz answers anonymous callers over HTTPS");
    assert_eq!(health.1.trim(), "ok");
    // Plain HTTP is not served any more.
    let plain = plain_http_get(port).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "plain HTTP answered: {plain}");
    let (code, body) = get(port, "/metrics", Caller::Anonymous).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("forbidden: User \"system:anonymous\" cannot get path \"/metrics\""), "{body}");
    let (code, _) = get(port, "/metrics", Caller::Token("not-a-token")).await.unwrap();
    assert_eq!(code, 401);
    // A user the cluster knows but RBAC does not allow /metrics.
    let nobody = env.apiserver.issue_kubeconfig("nobody", &[]);
    let (code, body) = get(port, "/metrics", Caller::Kubeconfig(&nobody)).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("User \"nobody\" cannot get path \"/metrics\""), "{body}");
    let (code, body) = get(port, "/metrics", Caller::Kubeconfig(&env.apiserver.kubeconfig)).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("workqueue_depth"), "{body}");
}

/// What a plain-HTTP client gets from the port: a TLS server answers garbage or closes.
async fn plain_http_get(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return String::new() };
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
