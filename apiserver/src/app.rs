//! The router: discovery, health, metrics, OpenAPI and the generated resource endpoints,
//! wrapped in the authentication, audit, authorization and metrics layers. Built apart from `main` so tests can
//! drive it with `oneshot`.

use crate::auth::authn::{self, Authenticator};
use crate::discovery;
use crate::handlers::{codec, resource_handler, SharedState};
use crate::status::ApiError;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;
use std::time::Duration;

pub fn app(state: SharedState, auth: Arc<Authenticator>, authz: Arc<crate::authz::Authorization>, audit: Option<Arc<crate::audit::AuditLog>>) -> Router {
    let metrics = state.metrics.clone();
    let mut router = Router::new();
    if let Some(sa) = auth.service_accounts().cloned() {
        let jwks = sa.clone();
        router = router
            .route("/.well-known/openid-configuration", get(move || async move { crate::auth::oidc::configuration(&sa) }))
            .route("/openid/v1/jwks", get(move || async move { crate::auth::oidc::jwks(&jwks) }));
    }
    let router = router
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/version", get(|| async { axum::Json(discovery::version()) }))
        .route("/metrics", get(metrics_text))
        .route("/api", get(api_root))
        .route("/apis", get(apis_root))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_gv))
        .route("/api/{*rest}", any(api_paths))
        .route("/apis/{*rest}", any(api_paths))
        .fallback(|| async { ApiError::NotFoundPath })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(authz, crate::authz::authorize));
    // Audit sits between authentication (whose user it logs) and authorization (whose decision it logs).
    let router = match audit {
        Some(log) => router.layer(axum::middleware::from_fn_with_state(log, crate::audit::audit)),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(auth, authn::authenticate))
        .layer(axum::middleware::from_fn_with_state(metrics, crate::metrics::track))
}

async fn readyz(State(state): State<SharedState>) -> Response {
    let etcd = tokio::time::timeout(Duration::from_secs(2), state.registry.storage.current_revision()).await;
    match etcd {
        Ok(Ok(_)) if !state.bootstrapped.load(std::sync::atomic::Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "[-]poststarthook/bootstrap-controller failed: not finished\nreadyz check failed\n").into_response()
        }
        Ok(Ok(_)) if state.registry.caches_ready() => "ok".into_response(),
        Ok(Ok(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "[-]informer-sync failed: watch caches not ready\nreadyz check failed\n").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "[-]etcd failed: etcd unreachable\nreadyz check failed\n").into_response(),
    }
}

async fn metrics_text(State(state): State<SharedState>) -> Response {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode()).into_response()
}

fn aggregated_response(rows: Vec<&'static crate::resources::ResourceRow>, core: bool, version: &'static str) -> Response {
    let ct = if version == "v2" { discovery::AGGREGATED_CONTENT_TYPE } else { discovery::AGGREGATED_CONTENT_TYPE_V2BETA1 };
    let body = serde_json::to_vec(&discovery::aggregated(&rows, core, version)).unwrap_or_default();
    ([(http::header::CONTENT_TYPE, ct), (http::header::VARY, "Accept")], body).into_response()
}

async fn api_root(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    match discovery::wants_aggregated(&headers) {
        Some(v) => aggregated_response(state.registry.rows(), true, v),
        None => codec::json_response(StatusCode::OK, &with_kind(&discovery::api_versions(&state.server_address), "APIVersions", None)),
    }
}

async fn apis_root(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    match discovery::wants_aggregated(&headers) {
        Some(v) => aggregated_response(state.registry.rows(), false, v),
        None => codec::json_response(StatusCode::OK, &with_kind(&discovery::api_group_list(&state.registry.rows()), "APIGroupList", Some("v1"))),
    }
}

/// Group and group-version discovery share the path space with resources: route by depth.
async fn api_paths(state: State<SharedState>, req: axum::extract::Request) -> Response {
    let path = req.uri().path().trim_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').collect();
    if req.method() == http::Method::GET {
        match parts.as_slice() {
            ["api", v] => return legacy_resources(&state, "", v),
            ["apis", g] => return api_group(&state, g),
            ["apis", g, v] => return legacy_resources(&state, g, v),
            _ => {}
        }
    }
    resource_handler(state, req).await
}

fn api_group(state: &SharedState, group: &str) -> Response {
    match discovery::group(&state.registry.rows(), group) {
        Some(g) => codec::json_response(StatusCode::OK, &with_kind(&g, "APIGroup", Some("v1"))),
        None => ApiError::NotFoundPath.into_response(),
    }
}

fn legacy_resources(state: &SharedState, group: &str, version: &str) -> Response {
    match discovery::api_resource_list(&state.registry.rows(), group, version) {
        Some(l) => codec::json_response(StatusCode::OK, &with_kind(&l, "APIResourceList", Some("v1"))),
        None => ApiError::NotFoundPath.into_response(),
    }
}

/// k8s-openapi's discovery types do not serialize kind/apiVersion; add them.
fn with_kind<T: serde::Serialize>(v: &T, kind: &str, api_version: Option<&str>) -> serde_json::Value {
    let mut out = serde_json::to_value(v).unwrap_or_default();
    out["kind"] = kind.into();
    if let Some(av) = api_version {
        out["apiVersion"] = av.into();
    }
    out
}

async fn openapi_v2(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    crate::openapi::v2::respond(&crate::resources::infos(&state.registry.rows()), &headers)
}

async fn openapi_index(State(state): State<SharedState>) -> Response {
    codec::json_response(StatusCode::OK, &crate::openapi::v3_index(&crate::resources::infos(&state.registry.rows())))
}

async fn openapi_gv(State(state): State<SharedState>, Path(path): Path<String>) -> Response {
    match crate::openapi::v3_group_version(&crate::resources::infos(&state.registry.rows()), &path) {
        Some(doc) => codec::json_response(StatusCode::OK, &doc),
        None => ApiError::NotFoundPath.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::AppState;
    use crate::admission::{AdmissionConfig, Chain};
    use crate::registry::Registry;
    use crate::storage::memory::MemoryStorage;
    use axum::body::Body;
    use tower::ServiceExt;

    fn test_app() -> Router {
        let registry = Registry::new(Arc::new(MemoryStorage::new()), "/registry");
        let admission = Chain::new(&registry, &AdmissionConfig::default());
        let bootstrapped = crate::bootstrap::spawn(registry.clone());
        let state = Arc::new(AppState { registry, admission, bootstrapped, metrics: Arc::new(crate::metrics::Metrics::new()), server_address: "127.0.0.1:6443".into(), kubelet: None, computed: Default::default() });
        let auth = Authenticator::from_token_csv("t,admin,1,\"system:masters\"\n", "test").unwrap();
        let authz = crate::authz::Authorization::new(state.registry.clone());
        app(state, Arc::new(auth), authz, None)
    }

    fn get(path: &str, token: bool) -> http::Request<Body> {
        let mut b = http::Request::builder().uri(path);
        if token {
            b = b.header("Authorization", "Bearer t");
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn anonymous_gets_401_and_token_is_accepted() {
        let a = test_app();
        let r = a.clone().oneshot(get("/api", false)).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = a.clone().oneshot(get("/api", true)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // Anonymous health checks are system:public-info-viewer's, once the default policy is in.
        let mut code = StatusCode::FORBIDDEN;
        for _ in 0..100 {
            code = a.clone().oneshot(get("/healthz", false)).await.unwrap().status();
            if code == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(code, StatusCode::OK);
    }

    #[tokio::test]
    async fn discovery_routes_do_not_shadow_resources() {
        let a = test_app();
        for (p, code) in [("/api/v1", 200), ("/apis/apps", 200), ("/apis/apps/v1", 200), ("/apis/nope/v1", 404), ("/version", 200), ("/nope", 404)] {
            let r = a.clone().oneshot(get(p, true)).await.unwrap();
            assert_eq!(r.status().as_u16(), code, "{p}");
        }
    }
}
