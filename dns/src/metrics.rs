//! CoreDNS's metric names, and the `/metrics`, `/health` and `/ready`
//! endpoints (CoreDNS's prometheus, health and ready plugins) on one
//! loopback port.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn duration_histogram() -> Histogram {
    // 0.25 ms .. ~8 s, as CoreDNS's buckets span.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// One request's outcome, for the counters.
pub struct Observation<'a> {
    pub zone: &'a str,
    pub proto: &'static str,
    pub family: &'static str,
    pub qtype: String,
    pub rcode: String,
    pub seconds: f64,
}

pub struct Metrics {
    registry: Registry,
    server: String,
    requests: Family<Labels, Counter>,
    responses: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    forwards: Family<Labels, Counter>,
    /// Set once the Service and EndpointSlice caches have synced.
    pub ready: AtomicBool,
}

impl Metrics {
    /// `server` is CoreDNS's `server` label, e.g. `dns://10.87.0.1:53`.
    pub fn new(server: String) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let responses = Family::<Labels, Counter>::default();
        let forwards = Family::<Labels, Counter>::default();
        let duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family",
            requests.clone(),
        );
        registry.register(
            "coredns_dns_responses",
            "Counter of response status codes",
            responses.clone(),
        );
        registry.register(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone",
            duration.clone(),
        );
        registry.register(
            "coredns_forward_requests",
            "Counter of requests made per upstream, by the answer's rcode (or 'error')",
            forwards.clone(),
        );
        Metrics {
            registry,
            server,
            requests,
            responses,
            duration,
            forwards,
            ready: AtomicBool::new(false),
        }
    }

    pub fn observe(&self, o: Observation<'_>) {
        let server = self.server.clone();
        self.requests
            .get_or_create(&vec![
                ("server", server.clone()),
                ("zone", o.zone.to_string()),
                ("proto", o.proto.to_string()),
                ("family", o.family.to_string()),
                ("type", o.qtype.clone()),
            ])
            .inc();
        self.responses
            .get_or_create(&vec![
                ("server", server.clone()),
                ("zone", o.zone.to_string()),
                ("rcode", o.rcode),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![
                ("server", server),
                ("zone", o.zone.to_string()),
                ("type", o.qtype),
            ])
            .observe(o.seconds);
    }

    pub fn forwarded(&self, to: &str, rcode: &str) {
        self.forwards
            .get_or_create(&vec![("to", to.to_string()), ("rcode", rcode.to_string())])
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/health` (alive) and `/ready` (caches synced).
pub fn app(metrics: Arc<Metrics>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m = metrics.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        m.encode(),
                    )
                }
            }),
        )
        .route("/health", get(|| async { "OK" }))
        .route(
            "/ready",
            get(move || {
                let m = metrics.clone();
                async move {
                    if m.ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "OK")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "kubernetes caches not synced")
                    }
                }
            }),
        )
}
