//! RBAC on a real cluster with kubectl 1.33: `auth can-i` (one verb and `--list`, with
//! `--as`), `auth reconcile`, and a 403 as kubectl prints it. That the scheduler,
//! controller-manager and kubelets run on the default policy alone is every other test here.

use super::*;

/// `kubectl auth can-i ...` (admin's kubeconfig) and its trimmed stdout; can-i exits 1 for "no".
async fn can_i(ns: &TestNs<'_>, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = ns.kubectl(&all).await;
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A user bound to view in one namespace: `kubectl auth can-i` answers yes and no as the
/// policy says, and `--list --as` prints the view role's resources with their verbs.
#[tokio::test]
async fn kubectl_auth_can_i_and_can_i_list_as_a_user_bound_to_view() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "cani").await;
    ns.kubectl_ok(&["create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice"]).await;
    wait_for_or(Duration::from_secs(20), "alice may list pods", || async {
        (can_i(&ns, &["list", "pods", "--as", "alice"]).await == "yes").then_some(())
    })
    .await
    .unwrap();
    assert_eq!(can_i(&ns, &["create", "pods", "--as", "alice"]).await, "no");
    assert_eq!(can_i(&ns, &["get", "secrets", "--as", "alice"]).await, "no");
    assert_eq!(can_i(&ns, &["get", "deployments.apps", "--as", "alice"]).await, "yes");
    assert_eq!(can_i(&ns, &["list", "pods", "--as", "alice", "-n", "default"]).await, "no");
    assert_eq!(can_i(&ns, &["create", "pods"]).await, "yes", "admin is system:masters");

    let list = ns.kubectl_ok(&["auth", "can-i", "--list", "--as", "alice"]).await;
    let rows = table::parse(&list);
    let verbs_of = |resource: &str| {
        rows.iter().find(|r| table::cell(r, "Resources") == resource).map(|r| table::cell(r, "Verbs").to_string()).unwrap_or_default()
    };
    assert_eq!(verbs_of("pods"), "[get list watch]", "{list}");
    assert_eq!(verbs_of("deployments.apps"), "[get list watch]", "{list}");
    assert_eq!(verbs_of("selfsubjectaccessreviews.authorization.k8s.io"), "[create]", "{list}");
    assert!(verbs_of("secrets").is_empty(), "{list}");
    assert!(rows.iter().any(|r| table::cell(r, "Non-Resource URLs") == "[/api/*]"), "{list}");
}

const RECONCILED: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
  namespace: NS
rules:
- apiGroups: [\"\"]
  resources: [\"configmaps\"]
  verbs: [\"get\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader
  namespace: NS
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
subjects:
- kind: User
  apiGroup: rbac.authorization.k8s.io
  name: bob
";

/// `kubectl auth reconcile -f` creates a Role and its binding, then adds the rules and
/// subjects a second file brings, keeping what is there (without --remove-extra-permissions).
/// (The objects name their namespace: kubectl 1.33 reads the file without the server's
/// mapping and would ask for an empty namespace otherwise.)
#[tokio::test]
async fn kubectl_auth_reconcile_creates_then_extends_roles_and_bindings() {
    let cluster = shared_cluster().await;
    let ns = TestNs::new(cluster, "reconcile").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rbac.yaml");
    let yaml = RECONCILED.replace("namespace: NS", &format!("namespace: {}", ns.name));
    std::fs::write(&file, &yaml).unwrap();
    let path = file.to_str().unwrap();
    let out = ns.kubectl_ok(&["auth", "reconcile", "-f", path]).await;
    assert!(out.contains("role.rbac.authorization.k8s.io/reader reconciled"), "{out}");
    assert!(out.contains("rolebinding.rbac.authorization.k8s.io/reader reconciled"), "{out}");
    let more = yaml.replace("verbs: [\"get\"]", "verbs: [\"list\"]").replace("name: bob\n", "name: carol\n");
    std::fs::write(&file, more).unwrap();
    ns.kubectl_ok(&["auth", "reconcile", "-f", path]).await;
    let role: serde_json::Value = serde_json::from_str(&ns.kubectl_ok(&["get", "role", "reader", "-o", "json"]).await).unwrap();
    let verbs: Vec<&str> = role["rules"].as_array().unwrap().iter().flat_map(|r| r["verbs"].as_array().unwrap()).filter_map(|v| v.as_str()).collect();
    assert!(verbs.contains(&"get") && verbs.contains(&"list"), "{role}");
    let wide = ns.kubectl_ok(&["get", "rolebinding", "reader", "-o", "wide"]).await;
    let rows = table::parse(&wide);
    assert_eq!(table::cell(&rows[0], "ROLE"), "Role/reader", "{wide}");
    let users = table::cell(&rows[0], "USERS");
    assert!(users.contains("bob") && users.contains("carol"), "{wide}");
    wait_for_or(Duration::from_secs(20), "bob may list configmaps", || async {
        (can_i(&ns, &["list", "configmaps", "--as", "bob"]).await == "yes").then_some(())
    })
    .await
    .unwrap();
}

/// A user with edit in one namespace reading secrets in another: kubectl prints upstream's
/// Forbidden message.
#[tokio::test]
async fn kubectl_prints_the_forbidden_message_for_a_user_bound_in_another_namespace() {
    let cluster = shared_cluster().await;
    let team = TestNs::new(cluster, "team").await;
    let other = TestNs::new(cluster, "other").await;
    team.kubectl_ok(&["create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice"]).await;
    let kc = cluster.apiserver.issue_kubeconfig("alice", &[]);
    let as_alice = |ns: &str, what: &str| {
        let (kc, ns, what) = (kc.clone(), ns.to_string(), what.to_string());
        async move { testkit::kubectl_async(&kc, &["-n", &ns, "get", &what]).await }
    };
    wait_for_or(Duration::from_secs(20), "alice lists secrets in her namespace", || async {
        as_alice(&team.name, "secrets").await.status.success().then_some(())
    })
    .await
    .unwrap();
    let out = as_alice(&other.name, "secrets").await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("Error from server (Forbidden): secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{}\"", other.name)
    );
}
