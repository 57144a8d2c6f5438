//! ServiceAccounts on a real cluster with kubectl 1.33: `create token`, `auth whoami`, the
//! token volume in pods (checked from the host with what `kubectl exec cat` reads), opting out
//! of it, and kube-root-ca.crt in every namespace.

use super::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The namespace's `default` ServiceAccount, which the controller-manager makes.
async fn wait_default_sa(ns: &TestNs<'_>) {
    let api: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    wait_for_or(Duration::from_secs(30), "the default ServiceAccount", || async { api.get_opt("default").await.ok().flatten() })
        .await
        .expect("default ServiceAccount");
}

/// A kubeconfig that authenticates with `token` only.
fn token_kubeconfig(cluster: &testkit::Cluster, token: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("token.kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        cluster.apiserver.url,
        cluster.apiserver.ca_file().display()
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

fn whoami_user(out: &std::process::Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["status"]["userInfo"]["username"].as_str().unwrap_or("").to_string()
}

/// `kubectl create token default --duration 10m` prints a token that `kubectl auth whoami`
/// shows as the ServiceAccount; the admin's whoami shows the admin and its groups.
#[tokio::test]
async fn kubectl_create_token_and_auth_whoami() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "satoken").await;
    wait_default_sa(&ns).await;
    let me = ns.kubectl_ok(&["auth", "whoami"]).await;
    assert!(me.contains("admin") && me.contains("system:masters") && me.contains("system:authenticated"), "{me}");

    let token = ns.kubectl_ok(&["create", "token", "default", "--duration", "10m"]).await.trim().to_string();
    let claims: serde_json::Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600, "{claims}");
    let dir = tempfile::tempdir().unwrap();
    let kc = token_kubeconfig(cluster, &token, dir.path());
    let out = testkit::kubectl_async(&kc, &["auth", "whoami", "-o", "json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(whoami_user(&out), format!("system:serviceaccount:{}:default", ns.name));

    // A token for another audience is no credential for the apiserver.
    let other = ns.kubectl_ok(&["create", "token", "default", "--audience", "foo"]).await.trim().to_string();
    let out = testkit::kubectl_async(&token_kubeconfig(cluster, &other, dir.path()), &["auth", "whoami"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// "Service Account Tokens Must AutoMount" ([sig-auth] ServiceAccounts should mount an API
/// token into pods): token, ca.crt and namespace are in the container; the token
/// authenticates as the pod's ServiceAccount and stops once the pod is gone.
#[tokio::test]
async fn service_accounts_should_mount_an_api_token_into_pods() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "samount").await;
    wait_default_sa(&ns).await;
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: reader\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n").await;
    wait_pod(&ns.pods(), "reader", POD_START, "Running", is_running).await;
    let cat = |f: &'static str| {
        let ns = &ns;
        async move { ns.kubectl_ok(&["exec", "reader", "--", "cat", &format!("{MOUNT}/{f}")]).await }
    };
    assert_eq!(cat("namespace").await, ns.name);
    let ca = std::fs::read_to_string(cluster.apiserver.ca_file()).unwrap();
    assert_eq!(cat("ca.crt").await.trim(), ca.trim());
    let token = cat("token").await;
    let dir = tempfile::tempdir().unwrap();
    let kc = token_kubeconfig(cluster, token.trim(), dir.path());
    let out = testkit::kubectl_async(&kc, &["auth", "whoami", "-o", "json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(whoami_user(&out), format!("system:serviceaccount:{}:default", ns.name));
    // With a Role that lets it read pods (where RBAC is served) it lists them.
    let rbac = ns.kubectl(&["create", "role", "pod-reader", "--verb=get,list", "--resource=pods"]).await.status.success();
    if rbac {
        ns.kubectl_ok(&["create", "rolebinding", "pod-reader", "--role=pod-reader", &format!("--serviceaccount={}:default", ns.name)]).await;
    }
    wait_for_or(Duration::from_secs(30), "the pod's token lists pods", || async {
        testkit::kubectl_async(&kc, &["-n", &ns.name, "get", "pods"]).await.status.success().then_some(())
    })
    .await
    .unwrap();

    ns.kubectl_ok(&["delete", "pod", "reader", "--wait=true"]).await;
    wait_for_or(Duration::from_secs(60), "the token refused once its pod is gone", || async {
        let out = testkit::kubectl_async(&kc, &["auth", "whoami"]).await;
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Unauthorized")).then_some(())
    })
    .await
    .unwrap();
}

/// "Service account tokens auto mount optionally" ([sig-auth] ServiceAccounts should allow
/// opting out of API token automount): the volume is there unless the pod, or else the
/// ServiceAccount, says automountServiceAccountToken: false.
#[tokio::test]
async fn service_accounts_should_allow_opting_out_of_api_token_automount() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "saoptout").await;
    wait_default_sa(&ns).await;
    for (name, auto) in [("sa-default", None), ("sa-on", Some(true)), ("sa-off", Some(false))] {
        let line = auto.map(|a| format!("automountServiceAccountToken: {a}\n")).unwrap_or_default();
        ns.apply_yaml(&format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n{line}")).await;
    }
    let mut mounted = Vec::new();
    for sa in ["sa-default", "sa-on", "sa-off"] {
        for (tag, pod_auto) in [("nil", None), ("true", Some(true)), ("false", Some(false))] {
            let name = format!("{sa}-{tag}");
            let line = pod_auto.map(|a| format!("  automountServiceAccountToken: {a}\n")).unwrap_or_default();
            ns.apply_yaml(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  serviceAccountName: {sa}\n{line}  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n"
            ))
            .await;
            let pod = ns.pods().get(&name).await.unwrap();
            let has = pod.spec.unwrap().containers[0].volume_mounts.iter().flatten().any(|m| m.mount_path == MOUNT);
            if has {
                mounted.push(name);
            }
        }
    }
    // 1a, 1b, 2a, 2b, 2c mount; 1c, 3a, 3b, 3c do not.
    assert_eq!(mounted, vec!["sa-default-nil", "sa-default-true", "sa-on-nil", "sa-on-true", "sa-off-true"]);
    // In the container too.
    wait_pod(&ns.pods(), "sa-off-nil", POD_START, "Running", is_running).await;
    let out = ns.kubectl(&["exec", "sa-off-nil", "--", "ls", MOUNT]).await;
    assert!(!out.status.success(), "nothing mounted for sa-off-nil");
    wait_pod(&ns.pods(), "sa-off-true", POD_START, "Running", is_running).await;
    let files = ns.kubectl_ok(&["exec", "sa-off-true", "--", "ls", MOUNT]).await;
    assert_eq!(files.split_whitespace().collect::<Vec<_>>(), vec!["ca.crt", "namespace", "token"], "{files}");
}

/// "RootCA ConfigMap test" ([sig-auth] ServiceAccounts should guarantee kube-root-ca.crt
/// exist in any namespace): created, recreated when deleted, reconciled when changed.
#[tokio::test]
async fn service_accounts_should_guarantee_kube_root_ca_crt_exist_in_any_namespace() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "rootca").await;
    let ca = std::fs::read_to_string(cluster.apiserver.ca_file()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let holds_ca = || async {
        let cm = api.get_opt("kube-root-ca.crt").await.ok().flatten()?;
        let data = cm.data?;
        (data.len() == 1 && data.get("ca.crt").map(|c| c.trim()) == Some(ca.trim())).then_some(())
    };
    wait_for_or(Duration::from_secs(30), "kube-root-ca.crt created", holds_ca).await.unwrap();
    ns.kubectl_ok(&["delete", "configmap", "kube-root-ca.crt"]).await;
    wait_for_or(Duration::from_secs(30), "kube-root-ca.crt recreated", holds_ca).await.unwrap();
    ns.kubectl_ok(&["patch", "configmap", "kube-root-ca.crt", "--type", "merge", "-p", r#"{"data":{"ca.crt":"changed","extra":"x"}}"#]).await;
    wait_for_or(Duration::from_secs(30), "kube-root-ca.crt reconciled", holds_ca).await.unwrap();
}

/// The kubelet's own API: no credentials is 401; a ServiceAccount token is authenticated with
/// TokenReview and, holding no nodes/proxy, refused by SubjectAccessReview (403); the
/// apiserver's client certificate still reaches logs through `kubectl logs`.
#[tokio::test]
async fn kubelet_api_refuses_anonymous_and_unauthorized_callers() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "kubeletauth").await;
    wait_default_sa(&ns).await;
    let node = &cluster.nodes[0];
    let dir = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{}", node.port);
    // kubectl prompts for a user name when a kubeconfig has no credentials; basic auth is
    // none the kubelet knows, so the request is as good as anonymous.
    let empty = dir.path().join("anonymous.kubeconfig");
    std::fs::write(&empty, format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    username: nobody\n    password: nothing\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncurrent-context: c\n")).unwrap();
    let raw = |kc: std::path::PathBuf, path: &'static str| {
        let server = server.clone();
        async move { testkit::kubectl_async(&kc, &["--server", &server, "--insecure-skip-tls-verify", "get", "--raw", path]).await }
    };
    for path in ["/pods", "/exec/default/x/y"] {
        let out = raw(empty.clone(), path).await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // kubectl's words for a 401.
        assert!(err.contains("You must be logged in to the server"), "{path}: {err}");
    }
    let token = ns.kubectl_ok(&["create", "token", "default"]).await.trim().to_string();
    let kc = dir.path().join("sa.kubeconfig");
    std::fs::write(&kc, format!("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncurrent-context: c\n")).unwrap();
    let out = raw(kc, "/pods").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("Forbidden"), "{err}");
}
