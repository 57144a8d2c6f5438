//! The harness's apiserver: started on etcd, reachable with the admin
//! kubeconfig by both the kube client and kubectl.1.33.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use testkit::{kubectl, ApiServer, Etcd};

#[tokio::test]
async fn apiserver_serves_admin_kubeconfig_to_kube_client_and_kubectl() {
    let etcd = Etcd::start().await;
    let api = ApiServer::start(&etcd).await;
    assert!(api.ca_file().is_file());

    let namespaces: Api<Namespace> = Api::all(api.client().await);
    namespaces.list(&ListParams::default()).await.unwrap();

    let out = kubectl(&api.kubeconfig, &["get", "--raw", "/readyz"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");

    // A second identity signed by the same CA is accepted too.
    let kc = api.issue_kubeconfig("alice", &["system:masters"]);
    let out = kubectl(&kc, &["get", "namespaces"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
