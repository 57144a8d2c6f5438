//! Verbs on objects: get, list, create, update, patch, delete, deletecollection and the
//! subresources, each written once over the generic Store.

use super::codec::{self, Format};
use super::{request, watch, Query, SharedState};
use crate::patch::PatchType;
use crate::registry::list::ListParams;
use crate::registry::strategy::Part;
use crate::registry::{DeleteOptions, DeleteOutcome, FieldValidation, Store, WriteOptions};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::table;
use crate::validation;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// How long a client may take to send its body; a slow one must not hold the connection.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads the body, refusing more than 3 MiB with 413 and a body that does not arrive within
/// the request timeout with 504.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(body, codec::MAX_BODY);
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::Timeout("Timeout: request did not complete within the allotted timeout".into()))?;
    read.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("length limit") || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit")) {
            codec::body_too_large()
        } else {
            ApiError::BadRequest(format!("unable to read the request body: {msg}"))
        }
    })
}

/// Upstream's default field manager: the User-Agent up to its first `/`.
fn default_manager(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(http::header::USER_AGENT)?.to_str().ok()?;
    let m: String = ua.split('/').next().unwrap_or("").chars().take(128).collect();
    (!m.is_empty()).then_some(m)
}

fn write_options(state: &SharedState, q: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("Invalid dry run value: {other}"))),
    };
    let force = match q.get("force") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("invalid value for force: {other}"))),
    };
    let field_manager = q.get("fieldManager").filter(|m| !m.is_empty()).map(String::from);
    if field_manager.as_ref().is_some_and(|m| m.len() > 128 || m.chars().any(|c| c.is_control())) {
        return Err(ApiError::BadRequest("fieldManager must be at most 128 printable characters".into()));
    }
    Ok(WriteOptions {
        dry_run,
        field_manager: field_manager.or_else(|| default_manager(headers)),
        force,
        field_validation: FieldValidation::parse(q.get("fieldValidation"))?,
        warnings: Default::default(),
        admission: Some(state.admission.clone()),
    })
}

/// Duplicate fields of a JSON body, which a parsed `Value` no longer shows: Strict refuses
/// them with the rest of the strict decoding errors in document order, Warn reports them.
fn check_duplicate_fields(store: &Store, dups: bool, body: &[u8], opts: &WriteOptions) -> Result<(), ApiError> {
    if opts.field_validation == FieldValidation::Ignore || !dups {
        return Ok(());
    }
    let errs = validation::strict_decoding_errors(&store.row.gvk(), body);
    if opts.field_validation == FieldValidation::Strict {
        return Err(ApiError::BadRequest(format!("strict decoding error: {}", errs.join(", "))));
    }
    errs.into_iter().filter(|e| e.starts_with("duplicate field")).for_each(|e| opts.warnings.add(e));
    Ok(())
}

fn list_params(store: &Store, q: &Query) -> Result<ListParams, ApiError> {
    let label = LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let field = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), store.row.kind()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let resource_version = match q.get("resourceVersion") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v}")))?),
    };
    validate_resource_version_match(q.get("resourceVersionMatch"), q.get("resourceVersion"))?;
    let limit = q.int("limit")?.unwrap_or(0);
    let continue_token = q.get("continue").filter(|c| !c.is_empty()).map(String::from);
    if continue_token.is_some() && resource_version.is_some_and(|rv| rv != 0) {
        return Err(ApiError::BadRequest("specifying resource version is not allowed when using continue".into()));
    }
    let exact = q.get("resourceVersionMatch") == Some("Exact");
    Ok(ListParams { label, field, limit, continue_token, resource_version, exact })
}

/// Upstream's ValidateListOptions for resourceVersionMatch: 422 on ListOptions.
fn validate_resource_version_match(rvm: Option<&str>, rv: Option<&str>) -> Result<(), ApiError> {
    let invalid = |message: String| {
        let cause = crate::types::FieldCause { reason: "FieldValueInvalid".into(), message, field: "resourceVersionMatch".into() };
        ApiError::Invalid { target: Default::default(), kind: "ListOptions.meta.k8s.io".into(), name: String::new(), causes: vec![cause] }
    };
    match (rvm.filter(|m| !m.is_empty()), rv.filter(|v| !v.is_empty())) {
        (None, _) => Ok(()),
        (Some(m @ ("Exact" | "NotOlderThan")), None) => Err(invalid(format!("Forbidden: resourceVersionMatch \"{m}\" is forbidden unless resourceVersion is provided"))),
        (Some("Exact"), Some("0")) => Err(invalid("Forbidden: resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"".into())),
        (Some("Exact" | "NotOlderThan"), Some(_)) => Ok(()),
        (Some(m), _) => Err(invalid(format!("Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""))),
    }
}

pub async fn dispatch(state: SharedState, req: Request<Body>) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let q = Query::parse(req.uri().query())?;
    let info = request::parse(&path).ok_or(ApiError::NotFoundPath)?;
    if let Some(c) = crate::registry::conversion::lookup(&info.group, &info.version, &info.resource) {
        return crate::registry::conversion::serve(state, c, req).await;
    }
    let store = state.registry.store(&info.group, &info.version, &info.resource).ok_or(ApiError::NotFoundPath)?;
    let row = store.row;
    if info.namespace.is_some() && !row.namespaced() {
        return Err(ApiError::NotFoundPath);
    }
    if let Some(sub) = &info.subresource {
        if !row.has_subresource(sub) {
            return Err(ApiError::NotFoundPath);
        }
    }
    // Namespaced objects named without a namespace are not addressable, and the all-namespaces
    // path only lists and watches.
    if row.namespaced() && info.namespace.is_none() && info.name.is_some() {
        return Err(ApiError::NotFoundPath);
    }
    if row.namespaced() && info.namespace.is_none() && req.method() != Method::GET {
        return Err(ApiError::MethodNotSupported);
    }
    // A declared length over the limit is refused without waiting for all of it.
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > codec::MAX_BODY as u64) {
        // Read (and drop) what arrives for a moment, so a client still writing its body can
        // read the answer; then refuse, closing the connection.
        let drain = axum::body::to_bytes(req.into_body(), codec::MAX_BODY);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        return Err(codec::body_too_large());
    }
    let ns = info.namespace.as_deref();
    let format = codec::negotiate(req.headers());
    if let Some(handler) = state.computed.get(row.group(), row.plural(), info.subresource.as_deref()) {
        return super::computed::serve(handler, req, ns, info.name.as_deref(), q.get("dryRun") == Some("All"), format).await;
    }
    let method = req.method().clone();
    let headers = req.headers().clone();
    match (method.clone(), info.name.as_deref(), info.subresource.as_deref()) {
        (Method::GET, Some(name), Some("log")) => crate::proxy::log(&state, &store, ns, name, &q).await,
        (Method::GET | Method::POST, Some(name), Some("exec")) => crate::proxy::exec(&state, &store, ns, name, &q, req).await,
        (Method::GET | Method::POST, Some(name), Some("portforward")) => crate::proxy::portforward(&state, &store, ns, name, &q, req).await,
        (Method::GET | Method::POST, Some(name), Some("attach")) => crate::proxy::attach(&state, &store, ns, name, &q, req).await,
        (_, Some(name), Some("proxy")) => crate::proxy::proxy(&state, &store, ns, name, req).await,
        (Method::GET, None, None) if q.flag("watch") && q.get("watch").is_some() => watch::serve(state, store, ns, &q, format).await,
        (Method::GET, None, None) => list(&store, ns, &q, format).await,
        (Method::GET, Some(name), Some("scale")) => Ok(codec::object_response(StatusCode::OK, &store.get_scale(ns, name).await?, format, &[])),
        (Method::GET, Some(name), None | Some("status")) => {
            let from_cache = q.get("resourceVersion") == Some("0");
            let obj = store.get(ns, name, from_cache).await?;
            Ok(single(&store, &obj, format, &q))
        }
        (Method::POST, None, None) => {
            let body = read_body(req.into_body()).await?;
            let (obj, dups) = codec::decode_object(&headers, &body)?;
            let opts = write_options(&state, &q, &headers)?;
            check_duplicate_fields(&store, dups, &body, &opts)?;
            let created = store.create(ns.or(row.namespaced().then_some("default")), obj, &opts).await?;
            Ok(codec::object_response(StatusCode::CREATED, &created, format, &opts.warnings.take()))
        }
        (Method::POST, Some(name), Some("eviction")) => {
            let body = read_body(req.into_body()).await?;
            let mut eviction = codec::decode_body(&headers, &body)?;
            crate::validation::decode::decode(&crate::types::Gvk::new("policy", "v1", "Eviction"), &mut eviction)
                .map_err(|e| ApiError::BadRequest(format!("Eviction in version \"v1\" cannot be handled as a Eviction: {e}")))?;
            if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str).filter(|n| *n != name) {
                return Err(ApiError::BadRequest(format!("name in URL does not match name in Eviction object: {name} != {n}")));
            }
            let opts = crate::registry::eviction::delete_options_of(&eviction)?;
            crate::registry::eviction::evict(&state.registry, &store, ns.unwrap_or("default"), name, opts).await?;
            Ok(codec::json_response(StatusCode::CREATED, &status::success(None)))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let body = read_body(req.into_body()).await?;
            let binding = codec::decode_body(&headers, &body)?;
            store.bind(ns, name, &binding).await?;
            Ok(codec::json_response(StatusCode::CREATED, &status::success(None)))
        }
        (Method::PUT, Some(name), sub) => {
            let body = read_body(req.into_body()).await?;
            let opts = write_options(&state, &q, &headers)?;
            if sub == Some("scale") {
                codec::decode_body(&headers, &body)?;
                let scale = store.update_scale(ns, name, &body, None, &opts).await?;
                return Ok(codec::object_response(StatusCode::OK, &scale, format, &[]));
            }
            let (obj, dups) = codec::decode_object(&headers, &body)?;
            check_duplicate_fields(&store, dups, &body, &opts)?;
            let part = part_of(sub)?;
            let updated = store.update(ns, name, obj, part, &opts).await?;
            Ok(codec::object_response(StatusCode::OK, &updated, format, &opts.warnings.take()))
        }
        (Method::PATCH, Some(name), sub) => {
            let ct = codec::content_type(&headers);
            let patch_type = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::UnsupportedMediaType(ct.clone()))?;
            let body = read_body(req.into_body()).await?;
            let opts = write_options(&state, &q, &headers)?;
            if sub == Some("scale") {
                let scale = store.update_scale(ns, name, &body, Some(patch_type), &opts).await?;
                return Ok(codec::object_response(StatusCode::OK, &scale, format, &[]));
            }
            if patch_type == PatchType::Apply && q.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::BadRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set".into()));
            }
            // A merge or strategic patch is a JSON object: its duplicate keys meet fieldValidation.
            if matches!(patch_type, PatchType::Merge | PatchType::StrategicMerge) && opts.field_validation != FieldValidation::Ignore && validation::has_duplicate_fields(&body) {
                let dups: Vec<String> = validation::strict_decoding_errors(&store.row.gvk(), &body).into_iter().filter(|e| e.starts_with("duplicate field")).collect();
                if opts.field_validation == FieldValidation::Strict {
                    return Err(ApiError::BadRequest(format!("strict decoding error: {}", dups.join(", "))));
                }
                dups.into_iter().for_each(|e| opts.warnings.add(e));
            }
            let existed = patch_type == PatchType::Apply && store.get(ns, name, false).await.is_ok();
            let patched = store.patch(ns, name, &body, patch_type, part_of(sub)?, &opts).await?;
            let code = if patch_type == PatchType::Apply && !existed { StatusCode::CREATED } else { StatusCode::OK };
            Ok(codec::object_response(code, &patched, format, &opts.warnings.take()))
        }
        (Method::DELETE, Some(name), None) => {
            let body = read_body(req.into_body()).await?;
            let opts = delete_options(&q, &headers, &body)?;
            match store.delete(ns, name, &opts).await? {
                DeleteOutcome::Pending(obj) => Ok(codec::object_response(StatusCode::ACCEPTED, &obj, format, &[])),
                DeleteOutcome::Deleted(obj) if row.strategy.return_deleted_object() => Ok(codec::object_response(StatusCode::OK, &obj, format, &[])),
                DeleteOutcome::Deleted(obj) => {
                    let details = json!({"name": name, "group": row.group(), "kind": row.plural(), "uid": obj.pointer("/metadata/uid")});
                    Ok(codec::json_response(StatusCode::OK, &status::success(Some(details))))
                }
            }
        }
        (Method::DELETE, None, None) => {
            let body = read_body(req.into_body()).await?;
            let opts = delete_options(&q, &headers, &body)?;
            delete_collection(&store, ns, &q, &opts, format).await
        }
        _ => Err(ApiError::MethodNotSupported),
    }
}

fn part_of(sub: Option<&str>) -> Result<Part, ApiError> {
    match sub {
        None => Ok(Part::Main),
        Some("status") => Ok(Part::Status),
        Some("finalize") => Ok(Part::Finalize),
        Some(_) => Err(ApiError::MethodNotSupported),
    }
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = codec::decode_body(headers, body)?;
        let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
            serde_json::from_value(v).map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?;
        opts.grace_period_seconds = typed.grace_period_seconds;
        opts.propagation_policy = typed.propagation_policy;
        if let Some(p) = typed.preconditions {
            opts.uid = p.uid;
            opts.resource_version = p.resource_version;
        }
        opts.dry_run = typed.dry_run.is_some_and(|d| d.iter().any(|x| x == "All"));
    }
    if let Some(g) = q.int("gracePeriodSeconds")? {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = q.get("propagationPolicy") {
        if !matches!(p, "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::BadRequest(format!("unsupported propagationPolicy: {p}")));
        }
        opts.propagation_policy = Some(p.into());
    }
    if q.get("dryRun") == Some("All") {
        opts.dry_run = true;
    }
    Ok(opts)
}

/// One object in the negotiated form (object, Table with one row, or metadata).
fn single(store: &Store, obj: &Value, format: Format, q: &Query) -> Response {
    match format {
        Format::Table => {
            let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            let t = table::table(store.row.strategy, std::iter::once(obj), rv, None, q.get("includeObject").unwrap_or("Metadata"), true);
            codec::json_response(StatusCode::OK, &t)
        }
        Format::Metadata => codec::json_response(StatusCode::OK, &table::partial_metadata(obj)),
        _ => codec::object_response(StatusCode::OK, obj, format, &[]),
    }
}

async fn list(store: &Arc<Store>, ns: Option<&str>, q: &Query, format: Format) -> Result<Response, ApiError> {
    let params = list_params(store, q)?;
    let out = store.list(ns, &params).await?;
    let rv = out.resource_version.to_string();
    match format {
        Format::Table => {
            let values: Vec<Value> = out.items.iter().map(|o| o.value()).collect();
            let t = table::table(
                store.row.strategy,
                values.iter(),
                &rv,
                out.continue_token.as_deref(),
                q.get("includeObject").unwrap_or("Metadata"),
                true,
            );
            Ok(codec::json_response(StatusCode::OK, &t))
        }
        Format::Metadata => {
            let items: Vec<Value> = out.items.iter().map(|o| table::partial_metadata(&o.value())).collect();
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &out.continue_token {
                meta["continue"] = json!(c);
            }
            Ok(codec::json_response(StatusCode::OK, &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items})))
        }
        Format::Protobuf => {
            let items: Vec<Value> = out.items.iter().map(|o| o.value()).collect();
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &out.continue_token {
                meta["continue"] = json!(c);
            }
            let v = json!({"kind": format!("{}List", store.row.kind()), "apiVersion": store.row.api_version(), "metadata": meta, "items": items});
            Ok(codec::object_response(StatusCode::OK, &v, format, &[]))
        }
        Format::Json => {
            // Items are stored pre-encoded in the cache: splice them instead of re-serializing.
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &out.continue_token {
                meta["continue"] = json!(c);
            }
            let head = format!(
                "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                store.row.kind(),
                store.row.api_version(),
                meta
            );
            let size: usize = out.items.iter().map(|o| o.json.len() + 1).sum::<usize>() + head.len() + 2;
            let mut buf = BytesMut::with_capacity(size);
            buf.put_slice(head.as_bytes());
            for (i, o) in out.items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                buf.put_slice(&o.json);
            }
            buf.put_slice(b"]}");
            Ok(codec::raw_json_response(StatusCode::OK, buf.freeze()))
        }
    }
}

async fn delete_collection(store: &Arc<Store>, ns: Option<&str>, q: &Query, opts: &DeleteOptions, format: Format) -> Result<Response, ApiError> {
    let mut params = list_params(store, q)?;
    params.limit = 0;
    params.continue_token = None;
    let out = store.list(ns, &params).await?;
    let mut deleted = Vec::new();
    for o in &out.items {
        let name = o.fields.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let obj_ns = o.fields.pointer("/metadata/namespace").and_then(Value::as_str);
        match store.delete(obj_ns.or(ns), name, opts).await {
            Ok(DeleteOutcome::Deleted(v)) | Ok(DeleteOutcome::Pending(v)) => deleted.push(v),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let v = json!({"kind": format!("{}List", store.row.kind()), "apiVersion": store.row.api_version(), "metadata": {"resourceVersion": out.resource_version.to_string()}, "items": deleted});
    Ok(codec::object_response(StatusCode::OK, &v, format, &[]))
}
