//! `/metrics`: apiserver_request_total{verb,resource,code} and
//! apiserver_request_duration_seconds{verb,resource}, recorded by a tower layer.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub verb: String,
    pub resource: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("apiserver_request", "Counter of apiserver requests broken out by verb, resource and HTTP response code.", requests.clone());
        registry.register("apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb and resource.", latency.clone());
        Metrics { registry, requests, latency }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Upstream's verb for a request: get/list/watch/create/update/patch/delete/deletecollection.
pub fn verb_and_resource(method: &http::Method, path: &str, query: Option<&str>) -> (String, String) {
    let Some(info) = crate::handlers::request::parse(path) else {
        return (method.as_str().to_string(), String::new());
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method.as_str(), info.name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        (m, _) => m,
    };
    let resource = match info.subresource {
        Some(s) => format!("{}/{s}", info.resource),
        None => info.resource,
    };
    (verb.to_string(), resource)
}

/// The tower layer (as axum middleware) that counts and times every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let (verb, resource) = verb_and_resource(req.method(), req.uri().path(), req.uri().query());
    let start = Instant::now();
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    metrics.requests.get_or_create(&RequestLabels { verb: verb.clone(), resource: resource.clone(), code }).inc();
    metrics.latency.get_or_create(&LatencyLabels { verb, resource }).observe(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        let get = http::Method::GET;
        assert_eq!(verb_and_resource(&get, "/api/v1/namespaces/d/pods", Some("watch=true")), ("watch".into(), "pods".into()));
        assert_eq!(verb_and_resource(&get, "/api/v1/namespaces/d/pods/a/log", None), ("get".into(), "pods/log".into()));
        assert_eq!(verb_and_resource(&http::Method::DELETE, "/api/v1/namespaces/d/pods", None).0, "deletecollection");
    }

    #[test]
    fn encodes_request_total() {
        let m = Metrics::new();
        m.requests.get_or_create(&RequestLabels { verb: "get".into(), resource: "pods".into(), code: "200".into() }).inc();
        let text = m.encode();
        assert!(text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 1"), "{text}");
    }
}
