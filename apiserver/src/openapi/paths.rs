//! The `paths` of a group-version document: one path item per resource, collection and
//! subresource, with upstream's operation extensions and query parameters.

use super::schemas::{definitions, ref_name};
use crate::types::{Gvk, ResourceInfo};
use serde_json::{json, Map, Value};

const PATCH_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn schema_ref(def: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{def}") })
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": { "type": ty, "uniqueItems": true } })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": format!("{name} of the object"),
            "schema": { "type": "string", "uniqueItems": true } })
}

fn write_params(with_force: bool) -> Vec<Value> {
    let mut params = vec![
        query("dryRun", "When present, indicates that modifications should not be persisted.", "string"),
        query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            "string",
        ),
    ];
    if with_force {
        params.push(query(
            "force",
            "Force is going to \"force\" Apply requests.",
            "boolean",
        ));
    }
    params
}

fn list_params() -> Vec<Value> {
    [
        "allowWatchBookmarks:boolean",
        "continue:string",
        "fieldSelector:string",
        "labelSelector:string",
        "limit:integer",
        "resourceVersion:string",
        "resourceVersionMatch:string",
        "sendInitialEvents:boolean",
        "timeoutSeconds:integer",
        "watch:boolean",
    ]
    .iter()
    .map(|p| {
        let (name, ty) = p.split_once(':').unwrap_or((p, "string"));
        query(name, name, ty)
    })
    .collect()
}

fn responses(def: Option<&str>, codes: &[&str]) -> Value {
    let schema = def
        .map(schema_ref)
        .unwrap_or_else(|| json!({"type": "object"}));
    let content: Map<String, Value> = RESPONSE_TYPES
        .iter()
        .map(|t| (t.to_string(), json!({ "schema": schema.clone() })))
        .collect();
    let mut out = Map::new();
    for code in codes {
        let description = if *code == "201" {
            "Created"
        } else if *code == "202" {
            "Accepted"
        } else {
            "OK"
        };
        out.insert(
            code.to_string(),
            json!({ "description": description, "content": content.clone() }),
        );
    }
    out.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

fn body(def: Option<&str>, types: &[&str]) -> Value {
    let schema = def
        .map(schema_ref)
        .unwrap_or_else(|| json!({"type": "object"}));
    let content: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({ "schema": schema.clone() })))
        .collect();
    json!({ "content": content, "required": true })
}

fn gvk_ext(gvk: &Gvk) -> Value {
    json!({ "group": gvk.group, "version": gvk.version, "kind": gvk.kind })
}

struct Op<'a> {
    action: &'a str,
    description: String,
    gvk: &'a Gvk,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op<'_> {
    fn into_value(self) -> Value {
        let mut op = json!({
            "description": self.description,
            "operationId": format!("{}{}", self.action, self.gvk.kind),
            "parameters": self.params,
            "responses": self.responses,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": gvk_ext(self.gvk),
        });
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        op
    }
}

/// Path items of one object (`.../{name}` or `.../{name}/<sub>`): get, put, patch, and delete
/// when `deletable`.
fn object_item(
    gvk: &Gvk,
    def: Option<&str>,
    what: &str,
    params: Vec<Value>,
    deletable: bool,
) -> Value {
    let get = Op {
        action: "get",
        description: format!("read {what}"),
        gvk,
        params: vec![],
        body: None,
        responses: responses(def, &["200"]),
    };
    let put = Op {
        action: "put",
        description: format!("replace {what}"),
        gvk,
        params: write_params(false),
        body: Some(body(
            def,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )),
        responses: responses(def, &["200", "201"]),
    };
    let patch = Op {
        action: "patch",
        description: format!("partially update {what}"),
        gvk,
        params: write_params(true),
        body: Some(body(Some(PATCH_DEF), PATCH_TYPES)),
        responses: responses(def, &["200", "201"]),
    };
    let mut item = json!({ "get": get.into_value(), "put": put.into_value(), "patch": patch.into_value(), "parameters": params });
    if deletable {
        let delete = Op {
            action: "delete",
            description: format!("delete {what}"),
            gvk,
            params: vec![
                query("dryRun", "dryRun", "string"),
                query("gracePeriodSeconds", "gracePeriodSeconds", "integer"),
                query("propagationPolicy", "propagationPolicy", "string"),
            ],
            body: Some(body(Some(DELETE_OPTIONS_DEF), &["application/json"])),
            responses: responses(def, &["200", "202"]),
        };
        item["delete"] = delete.into_value();
    }
    item
}

fn collection_item(
    gvk: &Gvk,
    def: Option<&str>,
    plural: &str,
    params: Vec<Value>,
    writable: bool,
) -> Value {
    let list = Op {
        action: "list",
        description: format!("list or watch objects of kind {}", gvk.kind),
        gvk,
        params: list_params(),
        body: None,
        responses: responses(None, &["200"]),
    };
    let mut item = json!({ "get": list.into_value(), "parameters": params });
    if writable {
        let post = Op {
            action: "post",
            description: format!("create {}", gvk.kind),
            gvk,
            params: write_params(false),
            body: Some(body(
                def,
                &[
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                ],
            )),
            responses: responses(def, &["200", "201", "202"]),
        };
        let delete = Op {
            action: "deletecollection",
            description: format!("delete collection of {plural}"),
            gvk,
            params: list_params(),
            body: Some(body(Some(DELETE_OPTIONS_DEF), &["application/json"])),
            responses: responses(Some(STATUS_DEF), &["200"]),
        };
        item["post"] = post.into_value();
        item["delete"] = delete.into_value();
    }
    item
}

/// The full document for the resources of one group-version.
pub fn group_version_document(resources: &[&ResourceInfo]) -> Value {
    let defs = definitions();
    let mut paths = Map::new();
    let mut wanted: Vec<String> = vec![STATUS_DEF.into(), DELETE_OPTIONS_DEF.into()];
    let scale_gvk = Gvk::new("autoscaling", "v1", "Scale");
    for r in resources {
        let gvk = r.gvk();
        let def = defs.root_for(&gvk).map(str::to_string);
        wanted.extend(def.clone());
        let def = def.as_deref();
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let (base, scope_params) = if r.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                vec![path_param("namespace")],
            )
        } else {
            (format!("{prefix}/{}", r.plural), vec![])
        };
        let mut named_params = scope_params.clone();
        named_params.insert(0, path_param("name"));
        let what = format!("the specified {}", r.kind);
        paths.insert(
            base.clone(),
            collection_item(&gvk, def, r.plural, scope_params, true),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            object_item(&gvk, def, &what, named_params.clone(), true),
        );
        if r.namespaced {
            paths.insert(
                format!("{prefix}/{}", r.plural),
                collection_item(&gvk, def, r.plural, vec![], false),
            );
        }
        for sub in r.subresources {
            let path = format!("{base}/{{name}}/{sub}");
            match *sub {
                "status" => {
                    paths.insert(
                        path,
                        object_item(
                            &gvk,
                            def,
                            &format!("status of {what}"),
                            named_params.clone(),
                            false,
                        ),
                    );
                }
                "scale" => {
                    let scale_def = defs.root_for(&scale_gvk).map(str::to_string);
                    wanted.extend(scale_def.clone());
                    paths.insert(
                        path,
                        object_item(
                            &scale_gvk,
                            scale_def.as_deref(),
                            &format!("scale of {what}"),
                            named_params.clone(),
                            false,
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    let mut schemas = Map::new();
    for name in defs.closure(wanted) {
        if let Some(schema) = defs.schemas.get(&name) {
            schemas.insert(name, schema.clone());
        }
    }
    schemas.insert(PATCH_DEF.into(), json!({
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        "type": "object",
    }));
    debug_assert!(ref_name(&schema_ref(PATCH_DEF)).is_some());
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}
