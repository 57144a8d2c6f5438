//! `--use-service-account-credentials`: each controller writes with a TokenRequest token of its
//! own ServiceAccount in kube-system, which it creates; the controllers still do their work
//! (a token the apiserver refused would leave the ReplicaSet without pods). The root CA
//! publisher writes kube-root-ca.crt with the kubeconfig's CA.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};

#[tokio::test]
async fn controllers_write_as_their_own_service_accounts() {
    let env = common::Env::start(&["--use-service-account-credentials", "--controllers", "replicaset-controller,root-ca-cert-publisher,serviceaccount-controller"]).await;
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "kube-system");
    for name in ["replicaset-controller", "root-ca-cert-publisher", "service-account-controller"] {
        testkit::wait_for_or(Duration::from_secs(30), name, || async { sas.get_opt(name).await.ok().flatten() }).await.expect("the controller's ServiceAccount");
    }
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    Api::<ReplicaSet>::namespaced(env.client.clone(), "default").create(&PostParams::default(), &rs).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    testkit::wait_for_or(Duration::from_secs(30), "2 pods of the ReplicaSet", || async {
        let l = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
        (l.items.len() == 2).then_some(())
    })
    .await
    .unwrap();
    let ca = std::fs::read_to_string(env.apiserver.ca_file()).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm = testkit::wait_for_or(Duration::from_secs(30), "kube-root-ca.crt", || async { cms.get_opt("kube-root-ca.crt").await.ok().flatten() }).await.unwrap();
    assert_eq!(cm.data.unwrap()["ca.crt"].trim(), ca.trim());
}
