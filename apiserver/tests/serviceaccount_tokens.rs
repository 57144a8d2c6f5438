//! ServiceAccount tokens against a real etcd and apiserver: TokenRequest, bound tokens that die
//! with their pod or secret, legacy and bootstrap tokens, TokenReview, SelfSubjectReview, OIDC
//! discovery, ServiceAccount admission, and the bad tokens that must be 401.

mod support;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Harness;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A request with `token` as its bearer token (or none).
async fn as_token(h: &Harness, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (StatusCode, Value) {
    let mut req = h.http.request(method, format!("{}{path}", h.api.url));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(serde_json::to_vec(b).unwrap());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.bytes().await.map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    (status, body)
}

async fn whoami(h: &Harness, token: &str) -> (StatusCode, Value) {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    as_token(h, Method::POST, "/apis/authentication.k8s.io/v1/selfsubjectreviews", Some(token), Some(&review)).await
}

async fn token_request(h: &Harness, sa: &str, spec: Value) -> (StatusCode, Value) {
    // As kubectl sends it: Go's encoding of an empty status.
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec, "status": {"token": "", "expirationTimestamp": null}});
    let r = h.post(&format!("/api/v1/namespaces/default/serviceaccounts/{sa}/token"), &body).await;
    (r.status, r.json())
}

fn pod_with(name: &str, sa: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}], "initContainers": [{"name": "i", "image": "busybox"}]}})
}

fn sa_key(h: &Harness) -> jsonwebtoken::EncodingKey {
    let pem = std::fs::read(h.api.cert_dir.join("sa.key")).expect("sa.key in the cert dir");
    jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("an ECDSA key")
}

fn es256(key: &jsonwebtoken::EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), claims, key).unwrap()
}

#[tokio::test]
async fn service_account_tokens() {
    let h = Harness::start().await;
    let r = h.post("/api/v1/namespaces/default/serviceaccounts", &json!({"metadata": {"name": "builder"}, "imagePullSecrets": [{"name": "regcred"}]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let sa_uid = r.json()["metadata"]["uid"].as_str().unwrap().to_string();

    let pod = admission_mounts_the_token_volume(&h).await;
    let token = bound_token_authenticates_as_the_service_account(&h, &pod, &sa_uid).await;
    token_review_answers_authenticated_true_and_false(&h, &token).await;
    oidc_discovery_service_account_issuer_discovery(&h, &token).await;
    token_request_validation(&h).await;
    bad_tokens_are_unauthorized(&h).await;
    audience_scoped_tokens(&h).await;
    bound_token_dies_with_its_pod(&h, &token).await;
    bound_token_dies_with_its_secret(&h).await;
    legacy_secret_tokens(&h, &sa_uid).await;
    bootstrap_tokens(&h).await;
    // Nothing above broke the server.
    assert_eq!(h.get("/api/v1/namespaces/default/serviceaccounts/builder").await.status, StatusCode::OK);
}

/// ServiceAccount admission: the projected kube-api-access volume in every container, the
/// ServiceAccount's imagePullSecrets, and a 403 for a ServiceAccount that does not exist.
async fn admission_mounts_the_token_volume(h: &Harness) -> Value {
    let r = h.post("/api/v1/namespaces/default/pods", &pod_with("p1", "builder")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let pod = r.json();
    let vols = pod["spec"]["volumes"].as_array().expect("volumes");
    let vol = vols.iter().find(|v| v["name"].as_str().unwrap_or("").starts_with("kube-api-access-")).expect("kube-api-access volume");
    let sources = &vol["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"], json!({"expirationSeconds": 3607, "path": "token"}));
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    for list in ["containers", "initContainers"] {
        let m = &pod["spec"][list][0]["volumeMounts"][0];
        assert_eq!(m["mountPath"], "/var/run/secrets/kubernetes.io/serviceaccount", "{list}");
        assert_eq!(m["readOnly"], true);
        assert_eq!(m["name"], vol["name"]);
    }
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));

    let r = h.post("/api/v1/namespaces/default/pods", &pod_with("p2", "nobody")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["message"], "pods \"p2\" is forbidden: error looking up service account default/nobody: serviceaccount \"nobody\" not found");

    let mut off = pod_with("p3", "builder");
    off["spec"]["automountServiceAccountToken"] = json!(false);
    let r = h.post("/api/v1/namespaces/default/pods", &off).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json()["spec"].get("volumes").is_none(), "{}", r.text());
    pod
}

async fn bound_token_authenticates_as_the_service_account(h: &Harness, pod: &Value, sa_uid: &str) -> String {
    let bound = json!({"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": pod["metadata"]["uid"]});
    let (code, tr) = token_request(h, "builder", json!({"boundObjectRef": bound})).await;
    assert_eq!(code, StatusCode::CREATED, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(tr["spec"]["audiences"], json!([ISSUER]));
    let token = tr["status"]["token"].as_str().expect("token").to_string();
    assert!(tr["status"]["expirationTimestamp"].is_string());

    let (code, review) = whoami(h, &token).await;
    assert_eq!(code, StatusCode::CREATED, "{review}");
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:builder");
    assert_eq!(user["uid"], sa_uid);
    assert_eq!(user["groups"], json!(["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]));
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], json!(["p1"]));

    // The token reaches the API and RBAC decides: its ServiceAccount has no binding.
    let (code, body) = as_token(h, Method::GET, "/api/v1/namespaces/default/pods", Some(&token), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "pods is forbidden: User \"system:serviceaccount:default:builder\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");

    // A uid that is not the pod's is a conflict; a pod of another ServiceAccount a 400.
    let (code, _) = token_request(h, "builder", json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": "not-it"}})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, body) = token_request(h, "builder", json!({"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "cannot bind token to object of type apps/v1, Kind=Deployment");
    token
}

async fn token_review_answers_authenticated_true_and_false(h: &Harness, token: &str) {
    let review = |t: &str| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": t}});
    let r = h.post("/apis/authentication.k8s.io/v1/tokenreviews", &review(token)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let status = &r.json()["status"];
    assert_eq!(status["authenticated"], true);
    assert_eq!(status["user"]["username"], "system:serviceaccount:default:builder");
    assert_eq!(status["audiences"], json!([ISSUER]));
    let r = h.post("/apis/authentication.k8s.io/v1/tokenreviews", &review("not-a-token")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["status"]["authenticated"], false);
    assert!(r.json()["status"]["error"].is_string());
    // Create only: nothing is stored to list.
    assert_eq!(h.get("/apis/authentication.k8s.io/v1/tokenreviews").await.status, StatusCode::METHOD_NOT_ALLOWED);
    let disc = h.get("/apis/authentication.k8s.io/v1").await.json();
    let verbs = disc["resources"].as_array().unwrap().iter().find(|r| r["name"] == "tokenreviews").unwrap()["verbs"].clone();
    assert_eq!(verbs, json!(["create"]));
    let core = h.get("/api/v1").await.json();
    let sub = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "serviceaccounts/token").expect("serviceaccounts/token").clone();
    assert_eq!(sub["kind"], "TokenRequest");
    assert_eq!(sub["group"], "authentication.k8s.io");
}

/// Conformance: "OIDC Discovery (ServiceAccountIssuerDiscovery)" — the issuer's documents are
/// served to anyone and the published key verifies an issued token.
async fn oidc_discovery_service_account_issuer_discovery(h: &Harness, token: &str) {
    let (code, config) = as_token(h, Method::GET, "/.well-known/openid-configuration", None, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(config["issuer"], ISSUER);
    assert_eq!(config["jwks_uri"], format!("{}/openid/v1/jwks", h.api.url));
    assert_eq!(config["id_token_signing_alg_values_supported"], json!(["ES256"]));
    let (code, jwks) = as_token(h, Method::GET, "/openid/v1/jwks", None, None).await;
    assert_eq!(code, StatusCode::OK);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).expect("a JWK set");
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("the token's key is published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[ISSUER]);
    v.set_issuer(&[ISSUER]);
    let data = jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v).expect("verifies with the JWK");
    let c = data.claims;
    assert_eq!(c["sub"], "system:serviceaccount:default:builder");
    assert_eq!(c["kubernetes.io"]["namespace"], "default");
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "p1");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "builder");
    for k in ["exp", "iat", "nbf", "jti"] {
        assert!(c.get(k).is_some(), "{k}");
    }
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
}

async fn token_request_validation(h: &Harness) {
    let (code, body) = token_request(h, "builder", json!({"expirationSeconds": 599})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "spec.expirationSeconds");
    assert!(body["message"].as_str().unwrap().contains("may not specify a duration less than 10 minutes"), "{body}");
    let (code, _) = token_request(h, "nobody", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, tr) = token_request(h, "builder", json!({"expirationSeconds": 600})).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(tr["spec"]["expirationSeconds"], 600);
}

/// Malformed, expired, foreign-signed and `alg: none` tokens and a 1 MB header are refused,
/// never taken for anonymous.
async fn bad_tokens_are_unauthorized(h: &Harness) {
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| {
        json!({"iss": ISSUER, "sub": "system:serviceaccount:default:builder", "aud": [ISSUER], "exp": exp, "iat": now - 7200, "nbf": now - 7200, "jti": "x",
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "builder", "uid": ""}}})
    };
    let good = es256(&sa_key(h), &claims(now + 600));
    assert_eq!(whoami(h, &good).await.0, StatusCode::CREATED, "a token signed with sa.key works");
    let expired = es256(&sa_key(h), &claims(now - 10));
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let foreign = es256(&jsonwebtoken::EncodingKey::from_ec_pem(other_key.as_bytes()).unwrap(), &claims(now + 600));
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims(now + 600).to_string()));
    for (what, t) in [("malformed", "abc.def.ghi".to_string()), ("garbage", "x".repeat(100)), ("expired", expired), ("other key", foreign), ("alg none", none)] {
        let (code, body) = as_token(h, Method::GET, "/api/v1/namespaces", Some(&t), None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body["reason"], "Unauthorized", "{what}");
        let r = h.post("/apis/authentication.k8s.io/v1/tokenreviews", &json!({"spec": {"token": t}})).await;
        assert_eq!(r.json()["status"]["authenticated"], false, "{what}");
    }
    // A megabyte of header: refused (hyper's header limit answers first at this size) and
    // the server goes on.
    let huge = "a".repeat(1 << 20);
    match h.http.get(format!("{}/api/v1/namespaces", h.api.url)).header("Authorization", format!("Bearer {huge}")).send().await {
        Ok(r) => assert!(matches!(r.status().as_u16(), 401 | 431), "{}", r.status()),
        Err(_) => {} // the connection closed on the oversized header
    }
    let big = "a".repeat(64 * 1024);
    let (code, _) = as_token(h, Method::GET, "/api/v1/namespaces", Some(&big), None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/api/v1/namespaces").await.status, StatusCode::OK);
}

async fn audience_scoped_tokens(h: &Harness) {
    let (_, tr) = token_request(h, "builder", json!({"audiences": ["foo"], "expirationSeconds": 600})).await;
    let t = tr["status"]["token"].as_str().unwrap();
    assert_eq!(whoami(h, t).await.0, StatusCode::UNAUTHORIZED, "not meant for the apiserver");
    let r = h.post("/apis/authentication.k8s.io/v1/tokenreviews", &json!({"spec": {"token": t, "audiences": ["foo"]}})).await;
    assert_eq!(r.json()["status"]["authenticated"], true, "{}", r.text());
    assert_eq!(r.json()["status"]["audiences"], json!(["foo"]));
}

async fn bound_token_dies_with_its_pod(h: &Harness, token: &str) {
    let r = h.delete("/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0", None).await;
    assert!(r.status.is_success(), "{}", r.text());
    testkit::wait_for(std::time::Duration::from_secs(10), || async { (h.get("/api/v1/namespaces/default/pods/p1").await.status == StatusCode::NOT_FOUND).then_some(()) })
        .await
        .expect("pod gone");
    let (code, _) = whoami(h, token).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // A new pod of the same name is another pod: the old token stays dead.
    assert_eq!(h.post("/api/v1/namespaces/default/pods", &pod_with("p1", "builder")).await.status, StatusCode::CREATED);
    assert_eq!(whoami(h, token).await.0, StatusCode::UNAUTHORIZED);
}

async fn bound_token_dies_with_its_secret(h: &Harness) {
    let r = h.post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "anchor"}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (code, tr) = token_request(h, "builder", json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "anchor"}})).await;
    assert_eq!(code, StatusCode::CREATED, "{tr}");
    let t = tr["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(whoami(h, &t).await.0, StatusCode::CREATED);
    h.delete("/api/v1/namespaces/default/secrets/anchor", None).await;
    testkit::wait_for(std::time::Duration::from_secs(10), || async { (whoami(h, &t).await.0 == StatusCode::UNAUTHORIZED).then_some(()) })
        .await
        .expect("token refused once its secret is gone");
}

/// A kubernetes.io/service-account-token Secret's JWT (issuer kubernetes/serviceaccount)
/// works while the Secret holds it.
async fn legacy_secret_tokens(h: &Harness, sa_uid: &str) {
    let claims = json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:builder",
        "kubernetes.io/serviceaccount/namespace": "default", "kubernetes.io/serviceaccount/secret.name": "builder-token",
        "kubernetes.io/serviceaccount/service-account.name": "builder", "kubernetes.io/serviceaccount/service-account.uid": sa_uid});
    let t = es256(&sa_key(h), &claims);
    let secret = json!({"metadata": {"name": "builder-token", "annotations": {"kubernetes.io/service-account.name": "builder"}},
        "type": "kubernetes.io/service-account-token", "stringData": {"token": t}});
    let r = h.post("/api/v1/namespaces/default/secrets", &secret).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (code, review) = whoami(h, &t).await;
    assert_eq!(code, StatusCode::CREATED, "{review}");
    assert_eq!(review["status"]["userInfo"]["username"], "system:serviceaccount:default:builder");
    h.delete("/api/v1/namespaces/default/secrets/builder-token", None).await;
    testkit::wait_for(std::time::Duration::from_secs(10), || async { (whoami(h, &t).await.0 == StatusCode::UNAUTHORIZED).then_some(()) })
        .await
        .expect("legacy token refused once its secret is gone");
}

async fn bootstrap_tokens(h: &Harness) {
    let secret = json!({"metadata": {"name": "bootstrap-token-abcdef"}, "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}});
    let r = h.post("/api/v1/namespaces/kube-system/secrets", &secret).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let t = "abcdef.0123456789abcdef";
    let review = testkit::wait_for(std::time::Duration::from_secs(10), || async {
        let (code, body) = whoami(h, t).await;
        (code == StatusCode::CREATED).then_some(body)
    })
    .await
    .expect("bootstrap token accepted");
    assert_eq!(review["status"]["userInfo"]["username"], "system:bootstrap:abcdef");
    assert_eq!(review["status"]["userInfo"]["groups"], json!(["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"]));
    assert_eq!(whoami(h, "abcdef.0123456789abcdee").await.0, StatusCode::UNAUTHORIZED);
}
