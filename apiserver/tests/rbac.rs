//! Authorization against a real etcd and apiserver: RBAC decisions and their exact 403s,
//! escalation prevention, the review APIs, the Node authorizer and NodeRestriction, RBAC
//! validation, impersonation and the audit log. Users are client certificates the cluster CA
//! signs (`issue_kubeconfig`); the harness's own token is system:masters.

mod support;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::Harness;

const WAIT: Duration = Duration::from_secs(20);

/// A client presenting the certificate of `user` in `groups`.
fn client_as(h: &Harness, user: &str, groups: &[&str]) -> reqwest::Client {
    let kc: Value = serde_yaml::from_slice(&std::fs::read(h.api.issue_kubeconfig(user, groups)).unwrap()).unwrap();
    let data = |k: &str| base64::engine::general_purpose::STANDARD.decode(kc["users"][0]["user"][k].as_str().unwrap()).unwrap();
    let mut pem = data("client-certificate-data");
    pem.extend(data("client-key-data"));
    let ca = std::fs::read(h.api.ca_file()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn call(h: &Harness, c: &reqwest::Client, method: Method, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = c.request(method, format!("{}{path}", h.api.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(serde_json::to_vec(b).unwrap());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn created(h: &Harness, path: &str, body: Value) {
    let r = h.post(path, &body).await;
    assert!(r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT, "{path}: {}", r.text());
}

fn binding(name: &str, kind: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}, "subjects": [subject]})
}

fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// Waits until `c` gets `want` for GET `path` (bindings reach the authorizer through the watch cache).
async fn wait_status(h: &Harness, c: &reqwest::Client, path: &str, want: StatusCode) -> Value {
    testkit::wait_for_or(WAIT, path, || async {
        let (s, v) = call(h, c, Method::GET, path, None, &[]).await;
        (s == want).then_some(v)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn namespaces(h: &Harness, names: &[&str]) {
    for ns in names {
        created(h, "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await;
    }
}

#[tokio::test]
async fn edit_in_one_namespace_is_forbidden_in_another_with_upstreams_message_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let h = Harness::start_with(&["--audit-log-path", log.to_str().unwrap()]).await;
    namespaces(&h, &["team", "other"]).await;
    created(&h, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings", binding("alice-edit", "ClusterRole", "edit", user("alice"))).await;
    let alice = client_as(&h, "alice", &[]);
    wait_status(&h, &alice, "/api/v1/namespaces/team/secrets", StatusCode::OK).await;
    let (s, v) = call(&h, &alice, Method::GET, "/api/v1/namespaces/other/secrets", None, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "secrets is forbidden: User \"alice\" cannot list resource \"secrets\" in API group \"\" in the namespace \"other\"");
    assert_eq!(v["reason"], "Forbidden");
    assert_eq!(v["details"], json!({"kind": "secrets"}));
    let (_, v) = call(&h, &alice, Method::GET, "/api/v1/namespaces/other/pods/web/log", None, &[]).await;
    assert_eq!(v["message"], "pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"other\"");
    assert_eq!(v["details"], json!({"kind": "pods", "name": "web"}));
    let (_, v) = call(&h, &alice, Method::GET, "/api/v1/nodes", None, &[]).await;
    assert_eq!(v["message"], "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope");
    let (s, v) = call(&h, &alice, Method::GET, "/foo", None, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "forbidden: User \"alice\" cannot get path \"/foo\"");
    // Discovery and health are system:discovery's and system:public-info-viewer's.
    for p in ["/api", "/apis/apps/v1", "/version", "/healthz", "/openapi/v3"] {
        assert_eq!(call(&h, &alice, Method::GET, p, None, &[]).await.0, StatusCode::OK, "{p}");
    }
    assert_eq!(h.anonymous("/healthz").await, StatusCode::OK);
    // Edit may write in its namespace but not change RBAC there.
    let (s, _) = call(&h, &alice, Method::POST, "/api/v1/namespaces/team/configmaps", Some(&json!({"metadata": {"name": "c"}})), &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(&h, &alice, Method::GET, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings", None, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let events = testkit::wait_for(WAIT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let evs: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        evs.iter().any(|e| e["user"]["username"] == "alice" && e["requestURI"] == "/foo").then_some(evs)
    })
    .await
    .expect("alice's requests in the audit log");
    let denied = events.iter().find(|e| e["user"]["username"] == "alice" && e["requestURI"] == "/api/v1/namespaces/other/secrets").expect("the denied list");
    assert_eq!(denied["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(denied["level"], "Metadata");
    assert_eq!(denied["stage"], "ResponseComplete");
    assert_eq!(denied["verb"], "list");
    assert_eq!(denied["objectRef"]["namespace"], "other");
    assert_eq!(denied["responseStatus"]["code"], 403);
    assert_eq!(denied["annotations"]["authorization.k8s.io/decision"], "forbid");
    let allowed = events.iter().find(|e| e["user"]["username"] == "alice" && e["verb"] == "create").expect("the allowed create");
    assert_eq!(allowed["annotations"]["authorization.k8s.io/decision"], "allow");
    assert!(allowed["annotations"]["authorization.k8s.io/reason"].as_str().unwrap().contains("RoleBinding \"alice-edit/team\""));
    assert!(!allowed["auditID"].as_str().unwrap_or("").is_empty());
}

#[tokio::test]
async fn a_user_who_may_create_rolebindings_cannot_bind_cluster_admin() {
    let h = Harness::start().await;
    namespaces(&h, &["team"]).await;
    let binder = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "binder"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings", "roles"], "verbs": ["create", "get"]}]});
    created(&h, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles", binder).await;
    created(&h, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings", binding("bob-binder", "Role", "binder", user("bob"))).await;
    let bob = client_as(&h, "bob", &["devs"]);
    wait_status(&h, &bob, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles/binder", StatusCode::OK).await;
    let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings";
    let (s, v) = call(&h, &bob, Method::POST, path, Some(&binding("root", "ClusterRole", "cluster-admin", user("bob"))), &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.starts_with("rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"bob\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"),
        "{msg}"
    );
    assert!(msg.contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"), "{msg}");
    // Nor write a role with more than bob holds.
    let greedy = json!({"metadata": {"name": "greedy"}, "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    let (s, v) = call(&h, &bob, Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles", Some(&greedy), &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().ends_with("not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"), "{v}");
    // A role within bob's own rules may be written, and `bind` on view lets bob bind view.
    let modest = json!({"metadata": {"name": "modest"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["get"]}]});
    assert_eq!(call(&h, &bob, Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles", Some(&modest), &[]).await.0, StatusCode::CREATED);
    let may_bind = json!({"metadata": {"name": "bind-view"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["view"]}]});
    created(&h, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles", may_bind).await;
    created(&h, path, binding("bob-bind-view", "Role", "bind-view", user("bob"))).await;
    testkit::wait_for(WAIT, || async {
        let (s, _) = call(&h, &bob, Method::POST, path, Some(&binding("viewers", "ClusterRole", "view", user("carol"))), &[]).await;
        (s == StatusCode::CREATED).then_some(())
    })
    .await
    .expect("bob binds view once he may");
}

/// `resource` is `plural` or `plural.group`, as kubectl auth can-i takes it.
async fn can(h: &Harness, c: &reqwest::Client, verb: &str, resource: &str, ns: &str) -> bool {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": plural, "namespace": ns}}});
    let (s, v) = call(h, c, Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", Some(&review), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["status"]["allowed"].as_bool().unwrap()
}

#[tokio::test]
async fn access_reviews_answer_for_view_edit_and_admin_users() {
    let h = Harness::start().await;
    namespaces(&h, &["team"]).await;
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings";
    for (u, role) in [("viewer", "view"), ("editor", "edit"), ("owner", "admin")] {
        created(&h, rb, binding(&format!("{u}-b"), "ClusterRole", role, user(u))).await;
    }
    let (viewer, editor, owner) = (client_as(&h, "viewer", &[]), client_as(&h, "editor", &[]), client_as(&h, "owner", &[]));
    wait_status(&h, &owner, rb, StatusCode::OK).await;
    wait_status(&h, &viewer, "/api/v1/namespaces/team/pods", StatusCode::OK).await;
    wait_status(&h, &editor, "/api/v1/namespaces/team/secrets", StatusCode::OK).await;
    for (c, verb, resource, want) in [
        (&viewer, "list", "pods", true), (&viewer, "create", "pods", false), (&viewer, "get", "secrets", false),
        (&editor, "create", "deployments", false), (&editor, "create", "deployments.apps", true), (&editor, "get", "secrets", true),
        (&editor, "create", "rolebindings.rbac.authorization.k8s.io", false), (&owner, "create", "rolebindings.rbac.authorization.k8s.io", true),
        (&owner, "delete", "pods", true), (&viewer, "get", "deployments.apps", true), (&viewer, "update", "deployments.apps", false),
    ] {
        // deployments without a group means the core group, which has none.
        assert_eq!(can(&h, c, verb, resource, "team").await, want, "{verb} {resource}");
    }
    assert!(!can(&h, &owner, "list", "pods", "default").await);
    // The rules review lists what kubectl auth can-i --list prints.
    let rr = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "team"}});
    let (s, v) = call(&h, &viewer, Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", Some(&rr), &[]).await;
    assert_eq!(s, StatusCode::CREATED);
    let rules = v["status"]["resourceRules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["resources"].as_array().unwrap().contains(&json!("pods")) && r["verbs"].as_array().unwrap().contains(&json!("list"))));
    assert!(v["status"]["nonResourceRules"].as_array().unwrap().iter().any(|r| r["nonResourceURLs"].as_array().unwrap().contains(&json!("/api"))));
    // A review with no subject is invalid.
    let bad = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
    let r = h.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["details"]["causes"][0]["field"], "spec.user");
}

/// SubjectReview, API Operations: a SubjectAccessReview and a LocalSubjectAccessReview for an
/// impersonated ServiceAccount answer as the impersonated call itself was answered.
#[tokio::test]
async fn subjectreview_api_operations() {
    let h = Harness::start().await;
    namespaces(&h, &["team"]).await;
    created(&h, "/api/v1/namespaces/team/serviceaccounts", json!({"metadata": {"name": "robot"}})).await;
    let sa = "system:serviceaccount:team:robot";
    let admin = h.http.clone();
    let imp = [("Authorization", format!("Bearer {}", support::TOKEN)), ("Impersonate-User", sa.to_string())];
    let hdrs: Vec<(&str, &str)> = imp.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = call(&h, &admin, Method::GET, "/api/v1/namespaces/team/configmaps", None, &hdrs).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], format!("configmaps is forbidden: User \"{sa}\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""));
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": sa, "groups": ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"],
            "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "team"}}});
    let r = h.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &sar).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"]["allowed"], false);
    created(&h, "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings", binding("robot-view", "ClusterRole", "view", json!({"kind": "ServiceAccount", "name": "robot", "namespace": "team"}))).await;
    testkit::wait_for(WAIT, || async { (call(&h, &admin, Method::GET, "/api/v1/namespaces/team/configmaps", None, &hdrs).await.0 == StatusCode::OK).then_some(()) })
        .await
        .expect("the impersonated ServiceAccount lists configmaps");
    let r = h.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &sar).await;
    assert_eq!(r.json()["status"]["allowed"], true);
    let mut lsar = sar.clone();
    lsar["kind"] = json!("LocalSubjectAccessReview");
    lsar["metadata"] = json!({"namespace": "team"});
    let r = h.post("/apis/authorization.k8s.io/v1/namespaces/team/localsubjectaccessreviews", &lsar).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["status"]["allowed"], true);
    let r = h.post("/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews", &lsar).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb() {
    let h = Harness::start().await;
    let carol = client_as(&h, "carol", &[]);
    wait_status(&h, &carol, "/api", StatusCode::OK).await;
    let (s, v) = call(&h, &carol, Method::GET, "/api/v1/namespaces", None, &[("Impersonate-User", "dave")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "users \"dave\" is forbidden: User \"carol\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope");
    let role = json!({"metadata": {"name": "impersonator"}, "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["dave"]}]});
    created(&h, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role).await;
    let mut b = binding("carol-impersonates", "ClusterRole", "impersonator", user("carol"));
    b["kind"] = json!("ClusterRoleBinding");
    created(&h, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", b).await;
    let whoami = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let review = testkit::wait_for(WAIT, || async {
        let (s, v) = call(&h, &carol, Method::POST, "/apis/authentication.k8s.io/v1/selfsubjectreviews", Some(&whoami), &[("Impersonate-User", "dave")]).await;
        (s == StatusCode::CREATED).then_some(v)
    })
    .await
    .expect("carol acts as dave");
    assert_eq!(review["status"]["userInfo"]["username"], "dave");
    // A group carol may not impersonate is refused even with the user allowed.
    let (s, v) = call(&h, &carol, Method::GET, "/api", None, &[("Impersonate-User", "dave"), ("Impersonate-Group", "system:masters")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "groups \"system:masters\" is forbidden: User \"carol\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope");
}

async fn merge_patch(h: &Harness, c: &reqwest::Client, path: &str) -> (StatusCode, Value) {
    let body = json!({"status": {"phase": "Running"}});
    let resp = c.patch(format!("{}{path}", h.api.url)).header("Content-Type", "application/merge-patch+json").body(serde_json::to_vec(&body).unwrap()).send().await.unwrap();
    let code = resp.status();
    (code, resp.json::<Value>().await.unwrap_or(Value::Null))
}

fn pod_on(name: &str, node: &str, secret: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
        "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}]}})
}

#[tokio::test]
async fn a_kubelet_reads_only_the_secrets_of_its_own_pods() {
    let h = Harness::start().await;
    for s in ["mine", "theirs"] {
        created(&h, "/api/v1/namespaces/default/secrets", json!({"metadata": {"name": s}, "data": {"k": "dg=="}})).await;
    }
    for n in ["n1", "n2"] {
        created(&h, "/api/v1/nodes", json!({"metadata": {"name": n}})).await;
    }
    created(&h, "/api/v1/namespaces/default/pods", pod_on("p1", "n1", "mine")).await;
    created(&h, "/api/v1/namespaces/default/pods", pod_on("p2", "n2", "theirs")).await;
    let kubelet = client_as(&h, "system:node:n1", &["system:nodes"]);
    wait_status(&h, &kubelet, "/api/v1/namespaces/default/secrets/mine", StatusCode::OK).await;
    let (s, v) = call(&h, &kubelet, Method::GET, "/api/v1/namespaces/default/secrets/theirs", None, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        v["message"],
        "secrets \"theirs\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
    );
    // A node lists all pods (NodeRules) but writes only its own pods' status and its own Node.
    assert_eq!(call(&h, &kubelet, Method::GET, "/api/v1/pods", None, &[]).await.0, StatusCode::OK);
    assert_eq!(merge_patch(&h, &kubelet, "/api/v1/namespaces/default/pods/p1/status").await.0, StatusCode::OK);
    let (s, v) = merge_patch(&h, &kubelet, "/api/v1/namespaces/default/pods/p2/status").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "pods \"p2\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself");
    let (s, v) = merge_patch(&h, &kubelet, "/api/v1/nodes/n2/status").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["message"], "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"");
    assert_eq!(merge_patch(&h, &kubelet, "/api/v1/nodes/n1/status").await.0, StatusCode::OK);
    // Moving the pod that names the secret away from n1 takes the secret away with it.
    assert_eq!(h.delete("/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0", None).await.status, StatusCode::OK);
    wait_status(&h, &kubelet, "/api/v1/namespaces/default/secrets/mine", StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn invalid_rbac_objects_are_422_with_field_paths() {
    let h = Harness::start().await;
    let r = h.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", &json!({"metadata": {"name": "bad"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"]}]})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let v = r.json();
    let fields: Vec<&str> = v["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["rules[0].verbs", "rules[1].apiGroups", "rules[1].resources"]);
    assert_eq!(v["details"]["kind"], "ClusterRole");
    let r = h.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", &json!({"metadata": {"name": "urls"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("namespaced rules cannot apply to non-resource URLs"));
    let mut b = binding("b", "Robot", "view", json!({"kind": "Alien", "name": "x"}));
    let r = h.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &b).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = r.json()["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap().to_string()).collect();
    assert_eq!(fields, ["roleRef.kind", "subjects[0].kind"]);
    b["roleRef"]["kind"] = json!("ClusterRole");
    b["subjects"] = json!([user("u")]);
    assert_eq!(h.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &b).await.status, StatusCode::CREATED);
    let mut changed = h.get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/b").await.json();
    changed["roleRef"]["name"] = json!("edit");
    let r = h.put("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/b", &changed).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("cannot change roleRef"), "{}", r.text());
    // The default policy is there, labelled and annotated as upstream's.
    let admin = h.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin").await.json();
    assert_eq!(admin["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
    assert_eq!(admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
    let r = h.request(Method::GET, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin", None, Some("application/json;as=Table;v=v1;g=meta.k8s.io"), None).await;
    let t = r.json();
    let cols: Vec<&str> = t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]);
    assert_eq!(t["rows"][0]["cells"][1], "ClusterRole/cluster-admin");
    assert_eq!(t["rows"][0]["cells"][4], "system:masters");
}
