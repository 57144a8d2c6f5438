//! A real etcd and apiserver (through testkit) and a small HTTP client that authenticates
//! with a static token, so tests can send any body, header or verb.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

pub const TOKEN: &str = "test-admin-token";

pub struct Harness {
    pub etcd: testkit::Etcd,
    pub api: testkit::ApiServer,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Watch frames, one JSON document per line.
    pub fn events(&self) -> Vec<Value> {
        self.text().lines().filter(|l| !l.trim().is_empty()).filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, format!("{TOKEN},admin,admin-uid,\"system:masters\"\n")).expect("token file");
        let etcd = testkit::Etcd::start().await;
        let mut args: Vec<String> = vec!["--token-auth-file".into(), tokens.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let api = testkit::ApiServer::start_with_args(&etcd, &args).await;
        let ca = std::fs::read(api.ca_file()).expect("ca");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let h = Harness { etcd, api, http, _dir: dir };
        // The bootstrap namespaces appear shortly after readyz.
        testkit::wait_for(Duration::from_secs(30), || async {
            (h.get("/api/v1/namespaces/default").await.status == StatusCode::OK).then_some(())
        })
        .await
        .expect("default namespace");
        h
    }

    pub async fn request(&self, method: Method, path: &str, content_type: Option<&str>, accept: Option<&str>, body: Option<Vec<u8>>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.api.url)).bearer_auth(TOKEN);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None, None).await
    }

    pub async fn get_accept(&self, path: &str, accept: &str) -> Reply {
        self.request(Method::GET, path, None, Some(accept), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some("application/json"), None, Some(serde_json::to_vec(body).unwrap())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::PUT, path, Some("application/json"), None, Some(serde_json::to_vec(body).unwrap())).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Reply {
        self.request(Method::PATCH, path, Some(content_type), None, Some(serde_json::to_vec(body).unwrap())).await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Reply {
        let b = body.map(|b| serde_json::to_vec(b).unwrap());
        self.request(Method::DELETE, path, Some("application/json"), None, b).await
    }

    /// An anonymous request (no token).
    pub async fn anonymous(&self, path: &str) -> StatusCode {
        self.http.get(format!("{}{path}", self.api.url)).send().await.expect("request").status()
    }
}

pub fn pod(name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}
    })
}

pub fn configmap(name: &str, labels: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}
