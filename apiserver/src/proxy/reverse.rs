//! pods/proxy, services/proxy and nodes/proxy: an HTTP reverse proxy, as upstream's
//! ResourceLocation + UpgradeAwareHandler. The name segment says where to go:
//! `[scheme:]pod[:port]` (the pod's IP), `[scheme:]service[:port]` (a ready endpoint of the
//! service's port, by name or number) and `node[:port]` (the kubelet, with the apiserver's
//! client certificate). Method, the path after `/proxy`, the query, headers and body go
//! through; the answer streams back.

use super::KubeletClient;
use crate::handlers::SharedState;
use crate::registry::Store;
use crate::status::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::TryStreamExt;
use serde_json::Value;
use std::sync::OnceLock;

/// Headers that belong to one hop (RFC 9110 §7.6.1), plus the caller's credentials, which
/// the backend must not see.
const DROPPED: &[&str] = &[
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host", "authorization",
    "impersonate-user", "impersonate-group", "impersonate-uid", "content-length",
];

/// Where a proxied request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub scheme: String,
    pub host: String,
    /// Through the kubelet client (its client certificate), for nodes.
    pub kubelet: bool,
}

/// `[scheme:]name[:port]`, upstream's SplitSchemeNamePort: one part is a name, two are name
/// and port, three add the scheme first. A bad scheme or an empty name is refused.
pub fn split_scheme_name_port(id: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] => (*s, *n, *p),
        _ => return None,
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return None;
    }
    Some((scheme.to_string(), name.to_string(), port.to_string()))
}

fn host_port(ip: &str, port: &str) -> String {
    let ip = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    if port.is_empty() {
        ip
    } else {
        format!("{ip}:{port}")
    }
}

/// A pod's named container port, or the number itself.
fn pod_port(pod: &Value, port: &str) -> Option<String> {
    if port.is_empty() || port.parse::<u16>().is_ok() {
        return Some(port.to_string());
    }
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
        .find(|p| p.get("name").and_then(Value::as_str) == Some(port))
        .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        .map(|n| n.to_string())
}

pub fn pod_location(pod: &Value, scheme: &str, port: &str) -> Result<Location, ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let ip = pod.pointer("/status/podIP").and_then(Value::as_str).filter(|s| !s.is_empty());
    let Some(ip) = ip else {
        return Err(ApiError::ServiceUnavailable(format!("address not allowed: pod {name} has no IP")));
    };
    let port = pod_port(pod, port).ok_or_else(|| ApiError::ServiceUnavailable(format!("no port named {port:?} in pod {name}")))?;
    Ok(Location { scheme: if scheme.is_empty() { "http".into() } else { scheme.into() }, host: host_port(ip, &port), kubelet: false })
}

/// A ready address of the Endpoints subset port that serves the service port `port` (a name,
/// a number, or empty for the service's only port), as upstream's service ResourceLocation.
pub fn service_location(svc: &Value, endpoints: &Value, scheme: &str, port: &str) -> Result<Location, ApiError> {
    let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let svc_port = ports.iter().find(|p| {
        let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
        let num = p.get("port").and_then(Value::as_i64).map(|n| n.to_string()).unwrap_or_default();
        (port.is_empty() && (ports.len() == 1 || pname.is_empty())) || pname == port || num == port
    });
    let Some(svc_port) = svc_port else {
        return Err(ApiError::ServiceUnavailable(format!("no service port {port:?} found for service {name:?}")));
    };
    let port_name = svc_port.get("name").and_then(Value::as_str).unwrap_or("");
    for subset in endpoints.get("subsets").and_then(Value::as_array).into_iter().flatten() {
        let ep_port = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_i64));
        let addr = subset.get("addresses").and_then(Value::as_array).and_then(|a| a.first()).and_then(|a| a.get("ip").and_then(Value::as_str));
        if let (Some(p), Some(ip)) = (ep_port, addr) {
            return Ok(Location { scheme: if scheme.is_empty() { "http".into() } else { scheme.into() }, host: host_port(ip, &p.to_string()), kubelet: false });
        }
    }
    Err(ApiError::ServiceUnavailable(format!("no endpoints available for service \"{name}\"")))
}

/// Plain-HTTP (and https, unverified, as upstream's proxy transport) client for pods and
/// services.
fn backend_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// The part of the request path after `<name>/proxy`, always starting with `/`, and whether
/// the path ended right at `proxy` (which upstream redirects to `proxy/`).
fn rest_of_path(path: &str, name: &str) -> (String, bool) {
    let marker = format!("/{name}/proxy");
    match path.find(&marker) {
        Some(i) => {
            let rest = &path[i + marker.len()..];
            if rest.is_empty() {
                ("/".into(), true)
            } else {
                (rest.to_string(), false)
            }
        }
        None => ("/".into(), false),
    }
}

/// Serves `<resource>/<id>/proxy/<path>` for pods, services and nodes.
pub async fn proxy(state: &SharedState, store: &Store, ns: Option<&str>, id: &str, req: Request<Body>) -> Result<Response, ApiError> {
    let resource = store.row.plural();
    let (scheme, name, port) = split_scheme_name_port(id).ok_or_else(|| ApiError::BadRequest(format!("invalid request {id:?}")))?;
    let path = req.uri().path().to_string();
    let (rest, bare) = rest_of_path(&path, id);
    if bare && req.method() == http::Method::GET {
        let mut to = format!("{path}/");
        if let Some(q) = req.uri().query() {
            to = format!("{to}?{q}");
        }
        return Response::builder()
            .status(http::StatusCode::MOVED_PERMANENTLY)
            .header(http::header::LOCATION, to)
            .body(Body::empty())
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    let location = match resource {
        "pods" => pod_location(&store.get(ns, &name, false).await?, &scheme, &port)?,
        "services" => {
            let svc = store.get(ns, &name, false).await?;
            let eps_store = state.registry.store("", "v1", "endpoints").ok_or_else(|| ApiError::Internal("no endpoints store".into()))?;
            let eps = eps_store.get(ns, &name, false).await.map_err(|e| match e {
                ApiError::NotFound(_) => ApiError::ServiceUnavailable(format!("no endpoints available for service \"{name}\"")),
                e => e,
            })?;
            service_location(&svc, &eps, &scheme, &port)?
        }
        "nodes" => {
            let node = store.get(None, &name, false).await?;
            let ip = node
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP")))
                .and_then(|x| x.get("address").and_then(Value::as_str))
                .ok_or_else(|| ApiError::ServiceUnavailable(format!("node {name} has no InternalIP address")))?
                .to_string();
            let default_port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64).unwrap_or(10250).to_string();
            let port = if port.is_empty() { default_port } else { port };
            Location { scheme: if scheme.is_empty() { "https".into() } else { scheme }, host: host_port(&ip, &port), kubelet: true }
        }
        _ => return Err(ApiError::NotFoundPath),
    };
    let kubelet: Option<&KubeletClient> = state.kubelet.as_deref();
    forward(location, &rest, kubelet, req).await
}

async fn forward(location: Location, rest: &str, kubelet: Option<&KubeletClient>, req: Request<Body>) -> Result<Response, ApiError> {
    let mut url = format!("{}://{}{rest}", location.scheme, location.host);
    if let Some(q) = req.uri().query() {
        url = format!("{url}?{q}");
    }
    let client = match (location.kubelet, kubelet) {
        (true, Some(k)) => &k.http,
        (true, None) => return Err(ApiError::ServiceUnavailable("no kubelet client configured".into())),
        (false, _) => backend_client(),
    };
    let (parts, body) = req.into_parts();
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &parts.headers {
        if !DROPPED.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let resp = client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            ApiError::ServiceUnavailable(format!("error trying to reach service: {e}{cause}"))
        })?;
    let mut out = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if !DROPPED.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    let body = Body::from_stream(resp.bytes_stream().map_err(std::io::Error::other));
    out.body(body).map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_split_as_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("".into(), "web".into(), "".into())));
        assert_eq!(split_scheme_name_port("web:80"), Some(("".into(), "web".into(), "80".into())));
        assert_eq!(split_scheme_name_port("https:web:443"), Some(("https".into(), "web".into(), "443".into())));
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn pods_are_reached_at_their_ip_and_named_ports_resolve() {
        let pod = json!({"metadata": {"name": "web"}, "status": {"podIP": "10.88.0.5"},
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}});
        assert_eq!(pod_location(&pod, "", "80").unwrap().host, "10.88.0.5:80");
        assert_eq!(pod_location(&pod, "", "http").unwrap().host, "10.88.0.5:8080");
        assert_eq!(pod_location(&pod, "", "").unwrap().host, "10.88.0.5");
        assert!(pod_location(&pod, "", "nope").is_err());
        assert!(pod_location(&json!({"metadata": {"name": "x"}}), "", "80").is_err());
    }

    #[test]
    fn services_go_to_an_endpoint_of_the_named_or_numbered_port() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "admin", "port": 9000}]}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.88.0.7"}], "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9001}]}]});
        assert_eq!(service_location(&svc, &eps, "", "http").unwrap().host, "10.88.0.7:8080");
        assert_eq!(service_location(&svc, &eps, "", "80").unwrap().host, "10.88.0.7:8080");
        assert_eq!(service_location(&svc, &eps, "", "admin").unwrap().host, "10.88.0.7:9001");
        assert!(service_location(&svc, &json!({}), "", "http").is_err());
        assert!(service_location(&svc, &eps, "", "nope").is_err());
    }

    #[test]
    fn the_path_after_proxy_is_forwarded() {
        assert_eq!(rest_of_path("/api/v1/namespaces/d/pods/web:80/proxy/a/b", "web:80"), ("/a/b".to_string(), false));
        assert_eq!(rest_of_path("/api/v1/namespaces/d/pods/web/proxy", "web"), ("/".to_string(), true));
    }
}
