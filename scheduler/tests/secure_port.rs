//! The scheduler's port as upstream's 10259: HTTPS, health open to anyone, /metrics only for
//! whom the apiserver authorizes; system:kube-scheduler's own role does not include it.
//! Issue 17, defect 10.

mod support;

use testkit::secure_port::{get, Caller};
use testkit::Process;

#[tokio::test]
async fn scheduler_port_serves_https_with_health_open_and_metrics_authorized() {
    let env = support::Env::start().await;
    let kc = env.api.issue_kubeconfig("system:kube-scheduler", &[]);
    let port = testkit::free_port();
    let args = vec!["--kubeconfig".to_string(), kc.display().to_string(), "--secure-port".into(), port.to_string(), "--client-ca-file".into(), env.api.ca_file().display().to_string()];
    let _sched = Process::spawn("scheduler", &testkit::bin("ferrokube-scheduler"), args, env.dir.path()).expect("spawn scheduler");
    let (_, body) = testkit::wait_for(std::time::Duration::from_secs(30), || async { get(port, "/healthz", Caller::Anonymous).await.ok().filter(|(c, _)| *c == 200) })
        .await
        .expect("/healthz answers anonymous callers over HTTPS");
    assert_eq!(body.trim(), "ok");
    let (code, body) = get(port, "/metrics", Caller::Anonymous).await.unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("forbidden: User \"system:anonymous\" cannot get path \"/metrics\""), "{body}");
    let (code, _) = get(port, "/metrics", Caller::Token("not-a-token")).await.unwrap();
    assert_eq!(code, 401);
    let (code, body) = get(port, "/metrics", Caller::Kubeconfig(&env.api.kubeconfig)).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("scheduler_"), "{body}");
}
