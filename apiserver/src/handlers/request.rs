//! Request info (upstream endpoints/request/requestinfo.go): which group, version, namespace,
//! resource, name and subresource a path names, and which verb the method means.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` or `/apis/<group>/<version>/...`; None when the path names no resource.
pub fn parse(path: &str) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut namespace = None;
    let mut cur: &[&str] = rest;
    if cur[0] == "namespaces" && cur.len() > 1 {
        // namespaces/{ns}/{resource}... unless it is the namespace's own subresource.
        if cur.len() > 2 && !matches!(cur[2], "status" | "finalize") {
            namespace = Some(cur[1].to_string());
            cur = &cur[2..];
        }
    }
    // Only a proxy subresource has more: the path it forwards.
    if cur.len() > 3 && cur[2] != "proxy" {
        return None;
    }
    Some(RequestInfo {
        group: group.into(),
        version: version.into(),
        namespace,
        resource: cur[0].into(),
        name: cur.get(1).map(|s| s.to_string()),
        subresource: cur.get(2).map(|s| s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!((p.namespace.as_deref(), p.resource.as_str(), p.name.as_deref(), p.subresource.as_deref()), (Some("default"), "pods", Some("web"), Some("status")));
        let p = parse("/api/v1/namespaces/foo").unwrap();
        assert_eq!((p.namespace, p.resource.as_str(), p.name.as_deref()), (None, "namespaces", Some("foo")));
        let p = parse("/api/v1/namespaces/foo/finalize").unwrap();
        assert_eq!((p.resource.as_str(), p.subresource.as_deref()), ("namespaces", Some("finalize")));
        let p = parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!((p.group.as_str(), p.namespace, p.name), ("apps", None, None));
        assert_eq!(parse("/api/v1/pods").unwrap().resource, "pods");
        assert!(parse("/api/v1").is_none());
        assert!(parse("/api/v1/namespaces/a/pods/b/c/d").is_none());
        assert!(parse("/api/v1//pods").is_none());
    }
}
