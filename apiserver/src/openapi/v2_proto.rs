//! gnostic's OpenAPIv2 protobuf (package `openapi.v2`, google/gnostic openapiv2/OpenAPIv2.proto),
//! the encoding client-go reads `/openapi/v2` in. No crate ships these types, so the messages
//! the served document uses are declared here for prost, with the proto's field numbers; fields
//! the document never sets are left out (absent is what proto3 means by unset anyway).
//! Extension, enum and default values are gnostic `Any`s holding YAML text; JSON is YAML, so
//! they are written as JSON.

use serde_json::Value;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "12")]
    pub security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    pub security_definitions: Option<SecurityDefinitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    pub options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    pub head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "2")]
    pub summary: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    /// `parameter = 1` of the proto's oneof; the `json_reference` arm is never served.
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterKind {
    #[prost(message, tag = "1")]
    Body(BodyParameter),
    #[prost(message, tag = "2")]
    NonBody(NonBodyParameter),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    pub oneof: Option<ParameterKind>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyKind {
    #[prost(message, tag = "3")]
    Query(QueryParameterSubSchema),
    #[prost(message, tag = "4")]
    Path(PathParameterSubSchema),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "3, 4")]
    pub oneof: Option<NonBodyKind>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(string, tag = "7")]
    pub format: String,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(string, tag = "6")]
    pub format: String,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    /// `response = 1` of the proto's oneof.
    #[prost(message, optional, tag = "1")]
    pub response: Option<Response>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    /// `schema = 1` of the proto's oneof.
    #[prost(message, optional, tag = "1")]
    pub schema: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, tag = "1")]
    Schema(Schema),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub _ref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityDefinitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSecurityDefinitionsItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<SecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityDefinitionsItem {
    /// `api_key_security = 2` of the proto's oneof.
    #[prost(message, optional, tag = "2")]
    pub api_key_security: Option<ApiKeySecurity>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(string, tag = "4")]
    pub description: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecurityRequirement {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedStringArray>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedStringArray {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<StringArray>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StringArray {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn any(v: &Value) -> Any {
    Any { yaml: v.to_string() }
}

fn extensions(v: &Value) -> Vec<NamedAny> {
    v.as_object()
        .map(|o| o.iter().filter(|(k, _)| k.starts_with("x-")).map(|(k, x)| NamedAny { name: k.clone(), value: Some(any(x)) }).collect())
        .unwrap_or_default()
}

pub fn schema(v: &Value) -> Schema {
    let type_item = match v.get("type") {
        Some(Value::String(t)) => Some(TypeItem { value: vec![t.clone()] }),
        Some(Value::Array(ts)) => Some(TypeItem { value: ts.iter().filter_map(|t| t.as_str().map(String::from)).collect() }),
        _ => None,
    };
    let items = match v.get("items") {
        Some(Value::Array(a)) => Some(ItemsItem { schema: a.iter().map(schema).collect() }),
        Some(i @ Value::Object(_)) => Some(ItemsItem { schema: vec![schema(i)] }),
        _ => None,
    };
    let additional_properties = match v.get("additionalProperties") {
        Some(Value::Bool(x)) => Some(Box::new(AdditionalPropertiesItem { oneof: Some(AdditionalProperties::Boolean(*x)) })),
        Some(a @ Value::Object(_)) => Some(Box::new(AdditionalPropertiesItem { oneof: Some(AdditionalProperties::Schema(schema(a))) })),
        _ => None,
    };
    let properties = v.get("properties").and_then(Value::as_object).map(|p| Properties {
        additional_properties: p.iter().map(|(n, x)| NamedSchema { name: n.clone(), value: Some(schema(x)) }).collect(),
    });
    Schema {
        _ref: s(v, "$ref"),
        format: s(v, "format"),
        title: s(v, "title"),
        description: s(v, "description"),
        default: v.get("default").map(any),
        maximum: v.get("maximum").and_then(Value::as_f64).unwrap_or(0.0),
        minimum: v.get("minimum").and_then(Value::as_f64).unwrap_or(0.0),
        unique_items: b(v, "uniqueItems"),
        required: strings(v, "required"),
        r#enum: v.get("enum").and_then(Value::as_array).map(|a| a.iter().map(any).collect()).unwrap_or_default(),
        additional_properties,
        r#type: type_item,
        items,
        all_of: v.get("allOf").and_then(Value::as_array).map(|a| a.iter().map(schema).collect()).unwrap_or_default(),
        properties,
        read_only: b(v, "readOnly"),
        vendor_extension: extensions(v),
    }
}

fn parameter(p: &Value) -> ParametersItem {
    let kind = match p.get("in").and_then(Value::as_str) {
        Some("body") => ParameterKind::Body(BodyParameter {
            description: s(p, "description"),
            name: s(p, "name"),
            r#in: "body".into(),
            required: b(p, "required"),
            schema: p.get("schema").map(schema),
        }),
        Some("path") => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Path(PathParameterSubSchema {
                required: b(p, "required"),
                r#in: "path".into(),
                description: s(p, "description"),
                name: s(p, "name"),
                r#type: s(p, "type"),
                format: s(p, "format"),
                unique_items: b(p, "uniqueItems"),
            })),
        }),
        _ => ParameterKind::NonBody(NonBodyParameter {
            oneof: Some(NonBodyKind::Query(QueryParameterSubSchema {
                required: b(p, "required"),
                r#in: "query".into(),
                description: s(p, "description"),
                name: s(p, "name"),
                r#type: s(p, "type"),
                format: s(p, "format"),
                unique_items: b(p, "uniqueItems"),
            })),
        }),
    };
    ParametersItem { parameter: Some(Parameter { oneof: Some(kind) }) }
}

fn parameters(v: &Value) -> Vec<ParametersItem> {
    v.get("parameters").and_then(Value::as_array).map(|a| a.iter().map(parameter).collect()).unwrap_or_default()
}

fn operation(op: &Value) -> Operation {
    let responses = op.get("responses").and_then(Value::as_object).map(|rs| Responses {
        response_code: rs
            .iter()
            .map(|(code, r)| NamedResponseValue {
                name: code.clone(),
                value: Some(ResponseValue {
                    response: Some(Response { description: s(r, "description"), schema: r.get("schema").map(|x| SchemaItem { schema: Some(schema(x)) }) }),
                }),
            })
            .collect(),
    });
    Operation {
        tags: strings(op, "tags"),
        summary: s(op, "summary"),
        description: s(op, "description"),
        operation_id: s(op, "operationId"),
        produces: strings(op, "produces"),
        consumes: strings(op, "consumes"),
        parameters: parameters(op),
        responses,
        schemes: strings(op, "schemes"),
        deprecated: b(op, "deprecated"),
        vendor_extension: extensions(op),
    }
}

fn path_item(item: &Value) -> PathItem {
    let op = |k: &str| item.get(k).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(item),
        vendor_extension: extensions(item),
    }
}

/// The gnostic message of a Swagger 2.0 JSON document.
pub fn document(doc: &Value) -> Document {
    let named_schemas = |k: &str| {
        doc.get(k)
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(n, x)| NamedSchema { name: n.clone(), value: Some(schema(x)) }).collect())
            .unwrap_or_default()
    };
    let security_definitions = doc.get("securityDefinitions").and_then(Value::as_object).map(|m| SecurityDefinitions {
        additional_properties: m
            .iter()
            .map(|(n, x)| NamedSecurityDefinitionsItem {
                name: n.clone(),
                value: Some(SecurityDefinitionsItem {
                    api_key_security: Some(ApiKeySecurity { r#type: s(x, "type"), name: s(x, "name"), r#in: s(x, "in"), description: s(x, "description") }),
                }),
            })
            .collect(),
    });
    let security = doc
        .get("security")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|req| SecurityRequirement {
                    additional_properties: req
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(n, scopes)| NamedStringArray {
                            name: n.clone(),
                            value: Some(StringArray { value: scopes.as_array().map(|s| s.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default() }),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    Document {
        swagger: s(doc, "swagger"),
        info: doc.get("info").map(|i| Info { title: s(i, "title"), version: s(i, "version") }),
        paths: doc.get("paths").and_then(Value::as_object).map(|p| Paths {
            vendor_extension: vec![],
            path: p.iter().map(|(n, item)| NamedPathItem { name: n.clone(), value: Some(path_item(item)) }).collect(),
        }),
        definitions: Some(Definitions { additional_properties: named_schemas("definitions") }),
        security,
        security_definitions,
        vendor_extension: extensions(doc),
    }
}

/// The protobuf bytes of a Swagger 2.0 JSON document.
pub fn encode(doc: &Value) -> Vec<u8> {
    prost::Message::encode_to_vec(&document(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use serde_json::json;

    #[test]
    fn a_schema_round_trips_its_shape_through_protobuf() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/pods": {"get": {"operationId": "listPod", "parameters": [{"name": "limit", "in": "query", "type": "integer"}],
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/PodList"}}},
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"}}}},
            "definitions": {"Pod": {"type": "object", "required": ["spec"], "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "containers": {"type": "array", "items": {"$ref": "#/definitions/Container"}, "x-kubernetes-patch-merge-key": "name"}},
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}]}},
        });
        let bytes = encode(&doc);
        let back = Document::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.swagger, "2.0");
        let pod = back.definitions.unwrap().additional_properties.into_iter().find(|d| d.name == "Pod").unwrap().value.unwrap();
        assert_eq!(pod.r#type.unwrap().value, vec!["object"]);
        assert_eq!(pod.required, vec!["spec"]);
        let gvk = &pod.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let yaml: Value = serde_yaml::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(yaml[0]["kind"], "Pod");
        let props = pod.properties.unwrap().additional_properties;
        let containers = props.iter().find(|p| p.name == "containers").unwrap().value.as_ref().unwrap();
        assert_eq!(containers.items.as_ref().unwrap().schema[0]._ref, "#/definitions/Container");
        let labels = props.iter().find(|p| p.name == "labels").unwrap().value.as_ref().unwrap();
        match &labels.additional_properties.as_ref().unwrap().oneof {
            Some(AdditionalProperties::Schema(s)) => assert_eq!(s.r#type.as_ref().unwrap().value, vec!["string"]),
            other => panic!("{other:?}"),
        }
        let path = &back.paths.unwrap().path[0];
        let get = path.value.as_ref().unwrap().get.as_ref().unwrap();
        assert_eq!(get.operation_id, "listPod");
        match &get.parameters[0].parameter.as_ref().unwrap().oneof {
            Some(ParameterKind::NonBody(NonBodyParameter { oneof: Some(NonBodyKind::Query(q)) })) => assert_eq!((q.name.as_str(), q.r#type.as_str()), ("limit", "integer")),
            other => panic!("{other:?}"),
        }
    }
}
