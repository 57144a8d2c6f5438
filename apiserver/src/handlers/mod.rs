//! The REST endpoints, generated from the resource table: one dispatcher maps a path and
//! method onto a Store verb. No handler is written per kind.

pub mod codec;
pub mod computed;
pub mod objects;
pub mod request;
pub mod watch;

use crate::registry::Registry;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a request handler needs.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub admission: Arc<crate::admission::Chain>,
    /// True once the bootstrap objects exist (see `crate::bootstrap`).
    pub bootstrapped: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `host:port` clients reach us at, for legacy `/api` discovery.
    pub server_address: String,
    /// How to reach kubelets (None in unit tests: log/exec answer 503).
    pub kubelet: Option<Arc<crate::proxy::KubeletClient>>,
    /// Resources answered by computation instead of storage (reviews, serviceaccounts/token).
    pub computed: computed::Computed,
}

pub type SharedState = Arc<AppState>;

/// Query parameters, last value wins, plus the repeated ones in order.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub map: HashMap<String, String>,
    pub all: Vec<(String, String)>,
}

impl Query {
    pub fn parse(q: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = match q {
            Some(q) => axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
                &format!("/?{q}").parse::<http::Uri>().map_err(|e| ApiError::BadRequest(e.to_string()))?,
            )
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .0,
            None => Vec::new(),
        };
        Ok(Query { map: pairs.iter().cloned().collect(), all: pairs })
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | ""))
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid value for {k}: {v:?}"))),
        }
    }
}

/// The single entry point for `/api/...` and `/apis/...` resource paths.
/// Upstream's `--request-timeout`: a request that is not long-running ends with a 504 then.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Watches, logs, exec and the like stream for as long as they last (upstream's long-running
/// request check).
fn long_running(req: &Request<Body>) -> bool {
    let watch = req.uri().query().is_some_and(|q| q.split('&').any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch")));
    let path = req.uri().path();
    watch || ["/log", "/exec", "/attach", "/portforward", "/proxy"].iter().any(|s| path.ends_with(s) || path.contains(&format!("{s}/")))
}

pub async fn resource_handler(State(state): State<SharedState>, req: Request<Body>) -> Response {
    let result = if long_running(&req) {
        objects::dispatch(state, req).await
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, objects::dispatch(state, req)).await {
            Ok(r) => r,
            Err(_) => Err(crate::status::ApiError::Timeout("Timeout: request did not complete within the allotted timeout".into())),
        }
    };
    result.unwrap_or_else(|e| e.into_response())
}
