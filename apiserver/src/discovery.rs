//! Discovery documents: aggregated discovery v2 (APIGroupDiscoveryList, chosen by Accept) and
//! the legacy APIVersions / APIGroupList / APIResourceList, all derived from the resource table.

use crate::resources::{self, ResourceRow};
use http::HeaderMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{json, Value};

pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_CONTENT_TYPE_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated version (if any) the Accept header asks for first.
pub fn wants_aggregated(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let is = |p: &str| params.contains(&p);
        if params.first() == Some(&"application/json") && is("g=apidiscovery.k8s.io") && is("as=APIGroupDiscoveryList") {
            if is("v=v2") {
                return Some("v2");
            }
            if is("v=v2beta1") {
                return Some("v2beta1");
            }
        }
        if params.first() == Some(&"application/json") && params.len() == 1 {
            return None;
        }
    }
    None
}

fn resource_discovery(row: &ResourceRow) -> Value {
    let subresources: Vec<Value> = row
        .info
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, k) = resources::subresource_kind(row, sub);
            let kind = json!({"group": g.unwrap_or(row.info.group), "version": v.unwrap_or(row.info.version), "kind": k});
            json!({"subresource": sub, "responseKind": kind, "verbs": resources::verbs(row, Some(sub))})
        })
        .collect();
    let mut r = json!({
        "resource": row.info.plural,
        "responseKind": {"group": row.info.group, "version": row.info.version, "kind": row.info.kind},
        "scope": if row.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": row.info.singular,
        "verbs": resources::verbs(row, None),
    });
    if !row.info.short_names.is_empty() {
        r["shortNames"] = json!(row.info.short_names);
    }
    if !row.info.categories.is_empty() {
        r["categories"] = json!(row.info.categories);
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

fn group_discovery(rows: &[&'static ResourceRow], group: &str) -> Value {
    let versions: Vec<Value> = resources::group_versions(rows)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            let rs: Vec<Value> = rows.iter().filter(|r| r.info.group == g && r.info.version == v).map(|r| resource_discovery(r)).collect();
            json!({"version": v, "resources": rs, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// `/api` (core only) or `/apis` (every named group), aggregated.
pub fn aggregated(rows: &[&'static ResourceRow], core: bool, version: &str) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions(rows) {
        if (g.is_empty() == core) && !groups.contains(&g) {
            groups.push(g);
        }
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": groups.into_iter().map(|g| group_discovery(rows, g)).collect::<Vec<_>>(),
    })
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> meta::APIVersions {
    meta::APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![meta::ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: server_address.into(),
        }],
    }
}

fn api_group(rows: &[&'static ResourceRow], group: &str) -> meta::APIGroup {
    let versions: Vec<meta::GroupVersionForDiscovery> = resources::group_versions(rows)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| meta::GroupVersionForDiscovery { group_version: format!("{g}/{v}"), version: v.into() })
        .collect();
    meta::APIGroup {
        name: group.into(),
        preferred_version: versions.first().cloned(),
        versions,
        server_address_by_client_cidrs: None,
    }
}

/// Legacy `/apis`.
pub fn api_group_list(rows: &[&'static ResourceRow]) -> meta::APIGroupList {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions(rows) {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    meta::APIGroupList { groups: groups.into_iter().map(|g| api_group(rows, g)).collect() }
}

/// Legacy `/apis/<group>`; None for an unknown group.
pub fn group(rows: &[&'static ResourceRow], group: &str) -> Option<meta::APIGroup> {
    resources::group_versions(rows).iter().any(|(g, _)| *g == group).then(|| api_group(rows, group))
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`; None for an unknown group-version.
pub fn api_resource_list(rows: &[&'static ResourceRow], group: &str, version: &str) -> Option<meta::APIResourceList> {
    let rows: Vec<&ResourceRow> = rows.iter().copied().filter(|r| r.info.group == group && r.info.version == version).collect();
    if rows.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for row in rows {
        list.push(meta::APIResource {
            name: row.info.plural.into(),
            singular_name: row.info.singular.into(),
            namespaced: row.namespaced(),
            kind: row.info.kind.into(),
            verbs: resources::verbs(row, None).iter().map(|s| s.to_string()).collect(),
            short_names: (!row.info.short_names.is_empty()).then(|| row.info.short_names.iter().map(|s| s.to_string()).collect()),
            categories: (!row.info.categories.is_empty()).then(|| row.info.categories.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        });
        for sub in row.info.subresources {
            let (g, v, k) = resources::subresource_kind(row, sub);
            list.push(meta::APIResource {
                name: format!("{}/{sub}", row.info.plural),
                singular_name: String::new(),
                namespaced: row.namespaced(),
                kind: k.into(),
                group: g.map(String::from),
                version: v.map(String::from),
                verbs: resources::verbs(row, Some(sub)).iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            });
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(meta::APIResourceList { group_version: gv, resources: list })
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0-ferrokube",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<&'static ResourceRow> {
        crate::resources::RESOURCES.iter().collect()
    }

    #[test]
    fn kubectl_accept_gets_aggregated_v2() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json".parse().unwrap(),
        );
        assert_eq!(wants_aggregated(&h), Some("v2"));
        h.insert(http::header::ACCEPT, "application/json, */*".parse().unwrap());
        assert_eq!(wants_aggregated(&h), None);
    }

    #[test]
    fn aggregated_core_has_pods_with_subresources() {
        let d = aggregated(&rows(), true, "v2");
        assert_eq!(d["items"][0]["metadata"]["name"], "");
        let pods = d["items"][0]["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap().clone();
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        assert_eq!(pods["shortNames"][0], "po");
        assert!(pods["subresources"].as_array().unwrap().iter().any(|s| s["subresource"] == "status"));
        let apis = aggregated(&rows(), false, "v2");
        let apps = apis["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap().clone();
        let deploy = apps["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "deployments").unwrap().clone();
        let scale = deploy["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "scale").unwrap().clone();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
    }

    #[test]
    fn legacy_lists() {
        let l = api_resource_list(&rows(), "", "v1").unwrap();
        assert!(l.resources.iter().any(|r| r.name == "pods/status"));
        assert!(api_resource_list(&rows(), "nope", "v1").is_none());
        assert!(api_group_list(&rows()).groups.iter().any(|g| g.name == "apps"));
    }
}
