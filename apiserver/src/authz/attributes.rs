//! What a request asks to do (upstream's authorizer.Attributes), read from its method, path
//! and query as upstream's RequestInfoFactory reads them.

use crate::auth::UserInfo;

/// One request's verb and target. A non-resource request has only `verb` and `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// A resource request's attributes for `user` (SubjectAccessReview and tests build them).
    pub fn resource(user: UserInfo, verb: &str, group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Self {
        Attributes {
            user,
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Attributes { user, verb: verb.into(), path: path.into(), ..Default::default() }
    }

    /// Upstream's RequestInfoFactory.NewRequestInfo.
    pub fn from_request(user: UserInfo, method: &http::Method, path: &str, query: Option<&str>) -> Self {
        let non_resource = |user| Attributes::non_resource(user, &method.as_str().to_ascii_lowercase(), path);
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        if parts.len() < 3 || !(parts[0] == "api" || parts[0] == "apis") {
            return non_resource(user);
        }
        let mut rest = &parts[1..];
        let mut attrs = Attributes { path: path.into(), resource_request: true, ..Default::default() };
        if parts[0] == "apis" {
            if rest.len() < 3 {
                return non_resource(user);
            }
            attrs.api_group = rest[0].into();
            rest = &rest[1..];
        }
        attrs.api_version = rest[0].into();
        rest = &rest[1..];
        let mut by_method = false;
        if rest[0] == "watch" || rest[0] == "proxy" {
            if rest.len() < 2 {
                return non_resource(user);
            }
            attrs.verb = rest[0].into();
            rest = &rest[1..];
        } else {
            by_method = true;
            attrs.verb = match *method {
                http::Method::POST => "create",
                http::Method::GET | http::Method::HEAD => "get",
                http::Method::PUT => "update",
                http::Method::PATCH => "patch",
                http::Method::DELETE => "delete",
                _ => "",
            }
            .into();
        }
        if rest[0] == "namespaces" {
            if rest.len() > 1 {
                attrs.namespace = rest[1].into();
                // namespaces/<ns>/<resource>... ; namespaces/<ns>/status|finalize are the namespace's own.
                if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
                    rest = &rest[2..];
                }
            }
        }
        if rest.len() >= 3 && attrs.verb != "proxy" {
            attrs.subresource = rest[2].into();
        }
        if rest.len() >= 2 {
            attrs.name = rest[1].into();
        }
        attrs.resource = rest[0].into();
        if by_method && attrs.name.is_empty() && attrs.verb == "get" {
            let q = query.unwrap_or("");
            let watch = query_param(q, "watch").is_some_and(|v| v == "true" || v == "1");
            attrs.verb = if watch { "watch" } else { "list" }.into();
            // A list or watch of one name through metadata.name is about that name.
            if let Some(sel) = query_param(q, "fieldSelector") {
                if let Some(n) = sel.strip_prefix("metadata.name=").filter(|n| !n.contains(',')) {
                    attrs.name = n.trim_start_matches('=').into();
                }
            }
        }
        if by_method && attrs.name.is_empty() && attrs.verb == "delete" {
            attrs.verb = "deletecollection".into();
        }
        attrs.user = user;
        attrs
    }
}

/// A query parameter's percent-decoded value.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn attrs(m: Method, path: &str, q: Option<&str>) -> Attributes {
        Attributes::from_request(UserInfo::default(), &m, path, q)
    }

    fn brief(a: &Attributes) -> (String, String, String, String, String, String) {
        (a.verb.clone(), a.api_group.clone(), a.resource.clone(), a.subresource.clone(), a.namespace.clone(), a.name.clone())
    }

    fn t(v: &str, g: &str, r: &str, s: &str, ns: &str, n: &str) -> (String, String, String, String, String, String) {
        (v.into(), g.into(), r.into(), s.into(), ns.into(), n.into())
    }

    #[test]
    fn resource_requests_as_upstream_reads_them() {
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/namespaces/other/pods", None)), t("list", "", "pods", "", "other", ""));
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/pods", Some("watch=true"))), t("watch", "", "pods", "", "", ""));
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/watch/namespaces/a/pods/p", None)), t("watch", "", "pods", "", "a", "p"));
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/namespaces/a/pods/p/log", None)), t("get", "", "pods", "log", "a", "p"));
        assert_eq!(brief(&attrs(Method::POST, "/apis/apps/v1/namespaces/a/deployments", None)), t("create", "apps", "deployments", "", "a", ""));
        assert_eq!(brief(&attrs(Method::DELETE, "/api/v1/namespaces/a/configmaps", None)), t("deletecollection", "", "configmaps", "", "a", ""));
        assert_eq!(brief(&attrs(Method::PATCH, "/api/v1/nodes/n1/status", None)), t("patch", "", "nodes", "status", "", "n1"));
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/namespaces/a", None)), t("get", "", "namespaces", "", "a", "a"));
        assert_eq!(brief(&attrs(Method::PUT, "/api/v1/namespaces/a/finalize", None)), t("update", "", "namespaces", "finalize", "a", "a"));
        assert_eq!(brief(&attrs(Method::GET, "/api/v1/namespaces", None)), t("list", "", "namespaces", "", "", ""));
        let named = attrs(Method::GET, "/api/v1/namespaces/a/secrets", Some("fieldSelector=metadata.name%3Dtok&watch=1"));
        assert_eq!(brief(&named), t("watch", "", "secrets", "", "a", "tok"));
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource() {
        for p in ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/healthz", "/version", "/openapi/v3/apis/apps/v1"] {
            let a = attrs(Method::GET, p, None);
            assert!(!a.resource_request, "{p}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", p));
        }
        assert_eq!(attrs(Method::POST, "/foo", None).verb, "post");
    }
}
