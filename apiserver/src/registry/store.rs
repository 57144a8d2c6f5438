//! The generic Store (upstream pkg/registry/generic/registry/store.go): create, get, update,
//! patch, delete and deletecollection written once for every resource, configured by its row.

use super::decoding::{decode_for_write, FieldValidation, Verb, WarningRecorder};
use super::strategy::{self, Part};
use crate::patch::{self, PatchError, PatchType};
use crate::resources::ResourceRow;
use crate::status::{ApiError, Target};
use crate::storage::{guaranteed_update_from, DynStorage, KeyValue, StorageError, UpdateDecision, UpdateOutcome};
use crate::validation;
use crate::watch_cache::{decode_value, Obj, WatchCache};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct Store {
    pub row: &'static ResourceRow,
    pub storage: DynStorage,
    pub cache: Arc<WatchCache>,
    pub etcd_prefix: String,
    /// Values the kind draws from shared pools (Service cluster IPs and node ports), set once
    /// at start-up by whoever owns the pools.
    pub hooks: std::sync::OnceLock<Arc<dyn super::hooks::AllocationHooks>>,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// Server-side apply only.
    pub force: bool,
    pub field_validation: FieldValidation,
    /// The admission chain a create runs; None for the server's own writes.
    pub admission: Option<Arc<crate::admission::Chain>>,
    /// Where the decode step's warnings go (shared by clones of these options).
    pub warnings: WarningRecorder,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub propagation_policy: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug)]
pub enum DeleteOutcome {
    /// The object is gone; here is its last state.
    Deleted(Value),
    /// The object is marked for deletion (grace period or finalizers) and still exists.
    Pending(Value),
}

/// Errors inside a storage retry loop: either the backend's or an API answer.
pub(crate) enum OpError {
    Storage(StorageError),
    Api(ApiError),
    /// The object does not exist and the write creates it (server-side apply).
    CreateInstead(Value),
    /// The kind's hooks need these values reserved before the write can go on.
    Needs(Vec<super::hooks::Claim>),
}

impl From<StorageError> for OpError {
    fn from(e: StorageError) -> Self {
        OpError::Storage(e)
    }
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        OpError::Api(e)
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Maps a backend error onto the API's answer for `target`.
pub fn storage_error(target: Target, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => ApiError::NotFound(target),
        StorageError::AlreadyExists { .. } => ApiError::AlreadyExists(target),
        StorageError::Conflict { .. } => ApiError::conflict(target),
        StorageError::Compacted { requested, compacted } => {
            ApiError::Expired(format!("too old resource version: {requested} ({compacted})"))
        }
        StorageError::Unavailable(m) => ApiError::ServiceUnavailable(format!("etcd unavailable: {m}")),
        // Upstream answers an unknown outcome with a 504, never a 503 that would say nothing happened.
        StorageError::Timeout(_) => ApiError::Timeout("Timeout: request did not complete within requested timeout - context deadline exceeded".into()),
        StorageError::Internal(m) => ApiError::Internal(m),
    }
}

pub(crate) fn map_op(target: &Target, e: OpError) -> ApiError {
    match e {
        OpError::Storage(s) => storage_error(target.clone(), s),
        OpError::Api(a) => a,
        OpError::CreateInstead(_) => ApiError::NotFound(target.clone()),
        OpError::Needs(_) => ApiError::Internal("allocation retry escaped the store".into()),
    }
}

pub(crate) fn patch_error(e: PatchError, target: &Target) -> ApiError {
    match e {
        PatchError::Malformed(m) => ApiError::BadRequest(m),
        PatchError::NotApplicable(m) => ApiError::UnprocessableEntity(m),
        PatchError::Conflict { message, causes } => ApiError::Conflict { target: target.clone(), message, causes },
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// Stamps `rv` into a stored value for returning to a client.
fn with_rv(mut v: Value, rv: i64) -> Value {
    meta_mut(&mut v).insert("resourceVersion".into(), json!(rv.to_string()));
    v
}

fn parse_stored(bytes: &[u8]) -> Result<Value, OpError> {
    serde_json::from_slice(bytes).map_err(|e| OpError::Storage(StorageError::Internal(format!("corrupt stored object: {e}"))))
}

/// etcd's default `--max-request-bytes` (1.5 MiB), less room for the key and the txn around
/// the value: an object encoded larger would fail in etcd, so it is refused first.
const MAX_STORED_OBJECT: usize = 1536 * 1024 - 8 * 1024;

fn too_large(bytes: &Bytes) -> Option<ApiError> {
    (bytes.len() > MAX_STORED_OBJECT).then(|| ApiError::RequestEntityTooLarge(format!("limit is {MAX_STORED_OBJECT}")))
}

fn encode(v: &Value) -> Bytes {
    // resourceVersion lives in etcd's mod_revision, not in the value; copy only to drop it.
    if v.get("metadata").and_then(|m| m.get("resourceVersion")).is_none() {
        return Bytes::from(serde_json::to_vec(v).unwrap_or_default());
    }
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char).collect()
}

impl Store {
    pub(super) fn new(row: &'static ResourceRow, storage: DynStorage, etcd_prefix: &str) -> Self {
        let start = if row.strategy.create_only() { WatchCache::never_stored } else { WatchCache::start };
        let cache = start(storage.clone(), row.key_prefix(etcd_prefix, None), row.info.kind, row.api_version());
        Store { row, storage, cache, etcd_prefix: etcd_prefix.to_string(), hooks: std::sync::OnceLock::new() }
    }

    pub fn target(&self, name: &str) -> Target {
        Target::new(self.row.group(), self.row.plural(), name)
    }

    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        self.row.key(&self.etcd_prefix, ns, name)
    }

    pub fn prefix(&self, ns: Option<&str>) -> String {
        self.row.key_prefix(&self.etcd_prefix, ns)
    }

    /// Checks apiVersion/kind of a request body against this resource and fills them in.
    pub fn check_type(&self, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest("the object provided is not a JSON object".into()));
        }
        let want_av = self.row.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(av) if !av.is_empty() && av != want_av => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )))
            }
            _ => obj["apiVersion"] = json!(want_av),
        }
        match obj.get("kind").and_then(Value::as_str) {
            Some(k) if !k.is_empty() && k != self.row.kind() => {
                return Err(ApiError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    self.row.kind()
                )))
            }
            _ => obj["kind"] = json!(self.row.kind()),
        }
        if obj.get("metadata").is_some_and(|m| !m.is_object() && !m.is_null()) {
            return Err(ApiError::BadRequest("metadata must be an object".into()));
        }
        Ok(())
    }

    fn check_namespace_field(&self, obj: &mut Value, ns: Option<&str>) -> Result<(), ApiError> {
        if !self.row.namespaced() {
            meta_mut(obj).remove("namespace");
            return Ok(());
        }
        let ns = ns.unwrap_or("default");
        match meta_str(obj, "namespace") {
            Some(n) if !n.is_empty() && n != ns => Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            )),
            _ => {
                meta_mut(obj).insert("namespace".into(), json!(ns));
                Ok(())
            }
        }
    }

    fn validate_create(&self, obj: &Value, name: &str) -> Result<(), ApiError> {
        let causes = strategy::validate_create(self.row, obj);
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(self.target(name), self.row.kind(), causes)) }
    }

    /// Create: fills server metadata, runs defaulting, admission and validation, then
    /// writes only if the key is absent.
    pub async fn create(&self, ns: Option<&str>, mut obj: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
        self.check_type(&mut obj)?;
        for w in decode_for_write(self.row, &mut obj, Verb::Create, opts.field_validation)? {
            opts.warnings.add(w);
        }
        self.check_namespace_field(&mut obj, ns)?;
        let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
        if name.is_empty() {
            if let Some(gen) = meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
                name = format!("{gen}{}", random_suffix());
                meta_mut(&mut obj).insert("name".into(), json!(name));
            }
        }
        // Admission sees what the client sent, before the uid (which a Job's defaulted
        // selector names) and the defaults.
        if let Some(chain) = &opts.admission {
            let ns = ns.filter(|_| self.row.namespaced()).or(self.row.namespaced().then_some("default"));
            let attrs = crate::admission::Attributes { row: self.row, operation: crate::admission::Operation::Create, namespace: ns, name: &name, dry_run: opts.dry_run };
            chain.admit(&attrs, &mut obj).await?;
        }
        // The uid comes before defaulting: a Job's generated selector names it.
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now()));
            for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(k);
            }
        }
        self.row.strategy.default(&mut obj);
        strategy::prepare_for_create(self.row, &mut obj);
        validation::decode::fill_required_status_zeroes(&self.row.gvk(), &mut obj);
        self.validate_create(&obj, &name)?;
        let hooks = self.hooks.get();
        if let Some(h) = hooks {
            h.begin_create(&mut obj, opts.dry_run).await?;
        }
        if let Some(manager) = &opts.field_manager {
            patch::record_update(&self.row.gvk(), None, &mut obj, manager, &now());
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let key = self.key(ns, &name);
        let bytes = encode(&obj);
        let written = match too_large(&bytes) {
            Some(e) => Err(e),
            None => self.storage.create(&key, bytes).await.map_err(|e| storage_error(self.target(&name), e)),
        };
        match written {
            Ok(rev) => Ok(with_rv(obj, rev)),
            Err(e) => {
                if let Some(h) = hooks {
                    h.abort_create(&obj).await;
                }
                Err(e)
            }
        }
    }

    /// Get: `resourceVersion=0` may be served from the cache, otherwise from storage.
    pub async fn get(&self, ns: Option<&str>, name: &str, from_cache: bool) -> Result<Value, ApiError> {
        let key = self.key(ns, name);
        if from_cache && self.cache.is_ready() {
            return match self.cache.get(&key) {
                Some(o) => Ok(o.value()),
                None => Err(ApiError::NotFound(self.target(name))),
            };
        }
        match self.storage.get(&key).await.map_err(|e| storage_error(self.target(name), e))? {
            Some(kv) => decode_value(&kv.value, kv.mod_revision)
                .ok_or_else(|| ApiError::Internal("corrupt stored object".into())),
            None => Err(ApiError::NotFound(self.target(name))),
        }
    }

    /// A cached object by name, for list-heavy callers.
    pub fn cached(&self, ns: Option<&str>, name: &str) -> Option<Obj> {
        self.cache.get(&self.key(ns, name))
    }

    /// The watch cache's copy of `key` as a starting point for a write: a stale one costs a
    /// conflict, a current one spares an etcd read on every update, bind, status write and delete.
    fn cached_kv(&self, key: &str) -> Option<KeyValue> {
        self.cache.get(key).map(|o| KeyValue {
            key: key.to_string(),
            value: o.json.clone(),
            mod_revision: o.rv,
            create_revision: 0,
        })
    }

    /// The shared write path of update and patch: `mutate` turns the current object (with its
    /// resourceVersion) into the desired one; the strategy and validation do the rest.
    pub(crate) async fn write<F>(
        &self,
        ns: Option<&str>,
        name: &str,
        part: Part,
        verb: Verb,
        opts: &WriteOptions,
        mut mutate: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
    {
        let hooks = self.hooks.get().filter(|_| part == Part::Main);
        let mut reserved = super::hooks::Reserved::default();
        loop {
            let res = self.write_once(ns, name, part, verb, opts, &mut mutate, hooks, &reserved).await;
            let Some(h) = hooks else { return res.map(|(v, _, _)| v).map_err(|e| map_op(&self.target(name), e)) };
            match res {
                Err(OpError::Needs(claims)) => {
                    if let Err(e) = h.reserve(claims, &mut reserved).await {
                        h.finish_update(None, None, reserved).await;
                        return Err(e);
                    }
                }
                Ok((v, old, deleted)) => {
                    let old = old.filter(|_| !opts.dry_run);
                    h.finish_update(old.as_ref(), if deleted { None } else { Some(&v) }, reserved).await;
                    return Ok(v);
                }
                Err(e) => {
                    h.finish_update(None, None, reserved).await;
                    return Err(map_op(&self.target(name), e));
                }
            }
        }
    }

    /// One attempt of `write`; with hooks, also the stored object it replaced (None when
    /// nothing was written) or the reservations it still needs.
    #[allow(clippy::too_many_arguments)]
    async fn write_once<F>(
        &self,
        ns: Option<&str>,
        name: &str,
        part: Part,
        verb: Verb,
        opts: &WriteOptions,
        mutate: &mut F,
        hooks: Option<&Arc<dyn super::hooks::AllocationHooks>>,
        reserved: &super::hooks::Reserved,
    ) -> Result<(Value, Option<Value>, bool), OpError>
    where
        F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
    {
        let key = self.key(ns, name);
        let target = self.target(name);
        let gvk = self.row.gvk();
        let row = self.row;
        let mut replaced: Option<Value> = None;
        let mut dry: Option<Value> = None;
        // The value of the last attempted write: the answer, without parsing what was stored.
        let mut written: Option<Value> = None;
        // Warnings of the last attempt only: a retried attempt decodes again.
        let mut warnings: Vec<String> = Vec::new();
        let outcome = guaranteed_update_from::<OpError, _>(&*self.storage, &key, self.cached_kv(&key), |current| {
            let Some(current) = current else {
                // Create through update (server-side apply of a new object).
                let mut obj = mutate(None)?;
                meta_mut(&mut obj).insert("name".into(), json!(name));
                return Err(OpError::CreateInstead(obj));
            };
            let old = with_rv(parse_stored(&current.value)?, current.mod_revision);
            let mut new = mutate(Some(&old))?;
            if !new.is_object() {
                return Err(ApiError::BadRequest("the object provided is not a JSON object".into()).into());
            }
            self.check_type(&mut new)?;
            if part != Part::Binding {
                warnings = decode_for_write(row, &mut new, verb, opts.field_validation)?;
            }
            if let Some(n) = meta_str(&new, "name") {
                if n != name {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
            }
            self.check_namespace_field(&mut new, ns)?;
            let rv_ok = match meta_str(&new, "resourceVersion") {
                None | Some("") => true,
                Some(rv) => rv == current.mod_revision.to_string(),
            };
            if !rv_ok {
                return Err(ApiError::conflict(target.clone()).into());
            }
            if part == Part::Main {
                row.strategy.default(&mut new);
            }
            let mut new = strategy::prepare_for_update(row, part, &old, new);
            validation::decode::fill_required_status_zeroes(&gvk, &mut new);
            let old_uid = meta_str(&old, "uid").unwrap_or("");
            if let Some(uid) = meta_str(&new, "uid") {
                if uid != old_uid {
                    return Err(ApiError::Conflict {
                        target: target.clone(),
                        message: format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"),
                        causes: vec![],
                    }
                    .into());
                }
            }
            meta_mut(&mut new).insert("uid".into(), json!(old_uid));
            if let Some(h) = hooks {
                h.update(&old, &mut new, reserved).map_err(|e| match e {
                    super::hooks::UpdateHookError::Api(a) => OpError::Api(a),
                    super::hooks::UpdateHookError::Needs(c) => OpError::Needs(c),
                })?;
            }
            let causes = if part == Part::Binding { Vec::new() } else { strategy::validate_update(row, &new, &old) };
            if !causes.is_empty() {
                return Err(ApiError::invalid(target.clone(), row.kind(), causes).into());
            }
            if let Some(manager) = &opts.field_manager {
                patch::record_update(&gvk, Some(&old), &mut new, manager, &now());
            }
            if same_but_bookkeeping(&old, &new) {
                return Ok(UpdateDecision::Unchanged);
            }
            // An object being deleted whose last finalizer went away is removed now.
            let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
            let grace = new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
            if deleting && grace == 0 && !strategy::blocks_deletion(row, &new) {
                if opts.dry_run {
                    dry = Some(new);
                    return Ok(UpdateDecision::Unchanged);
                }
                replaced = Some(old);
                return Ok(UpdateDecision::Delete);
            }
            if opts.dry_run {
                dry = Some(new);
                return Ok(UpdateDecision::Unchanged);
            }
            meta_mut(&mut new).remove("resourceVersion");
            let bytes = encode(&new);
            if let Some(e) = too_large(&bytes) {
                return Err(e.into());
            }
            written = Some(new);
            replaced = Some(old);
            Ok(UpdateDecision::Write(bytes))
        })
        .await;
        warnings.into_iter().for_each(|w| opts.warnings.add(w));
        match outcome {
            Ok(_) if dry.is_some() => Ok((dry.unwrap_or_default(), None, false)),
            Ok(UpdateOutcome::Written(kv)) if written.is_some() => Ok((with_rv(written.unwrap_or_default(), kv.mod_revision), replaced, false)),
            Ok(UpdateOutcome::Written(kv)) | Ok(UpdateOutcome::Unchanged(kv)) => {
                Ok((with_rv(parse_stored(&kv.value)?, kv.mod_revision), None, false))
            }
            Ok(UpdateOutcome::Deleted(kv, rev)) => Ok((with_rv(parse_stored(&kv.value)?, rev), replaced, true)),
            Err(OpError::CreateInstead(obj)) => Ok((self.create(ns, obj, opts).await?, None, false)),
            Err(OpError::Storage(StorageError::NotFound { .. })) => Err(ApiError::NotFound(target).into()),
            Err(e) => Err(e),
        }
    }

    /// Update (PUT) of the main resource or a subresource part. Creating through PUT is refused.
    pub async fn update(&self, ns: Option<&str>, name: &str, obj: Value, part: Part, opts: &WriteOptions) -> Result<Value, ApiError> {
        let target = self.target(name);
        self.write(ns, name, part, Verb::Update, opts, |current| match current {
            Some(_) => Ok(obj.clone()),
            None => Err(ApiError::NotFound(target.clone())),
        })
        .await
    }

    /// PATCH of any of the four types; apply creates a missing object.
    pub async fn patch(
        &self,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        patch_type: PatchType,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let target = self.target(name);
        let gvk = self.row.gvk();
        let applied: Option<Value> = if patch_type == PatchType::Apply {
            let mut v: Value = serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
            if !v.is_object() {
                return Err(ApiError::BadRequest("apply patch must be an object".into()));
            }
            // Upstream decodes the apply configuration as unstructured, which needs both.
            for (key, word) in [("kind", "Kind"), ("apiVersion", "Version")] {
                if v.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(ApiError::BadRequest(format!("Object '{word}' is missing in '{}'", String::from_utf8_lossy(body))));
                }
            }
            // The apply configuration is typed too: its unknown fields meet fieldValidation here.
            for w in decode_for_write(self.row, &mut v, Verb::Update, opts.field_validation)? {
                opts.warnings.add(w);
            }
            Some(v)
        } else {
            None
        };
        let manager = opts.field_manager.clone();
        if patch_type == PatchType::Apply && manager.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::BadRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set".into()));
        }
        let force = opts.force;
        let mut write_opts = opts.clone();
        if patch_type == PatchType::Apply {
            // Apply records its own managedFields entry.
            write_opts.field_manager = None;
        }
        let verb = if patch_type == PatchType::Apply { Verb::Update } else { Verb::Patch };
        self.write(ns, name, part, verb, &write_opts, |current| match (&applied, current) {
            (Some(applied), current) => {
                let mut applied = applied.clone();
                if applied.get("metadata").is_none_or(Value::is_null) {
                    applied["metadata"] = json!({});
                }
                // The apply configuration names the object it is about: it must be the URL's.
                match meta_str(&applied, "name") {
                    Some(n) if !n.is_empty() && n != name => {
                        return Err(ApiError::BadRequest(format!("the name of the object ({n}) does not match the name on the URL ({name})")));
                    }
                    _ => {
                        meta_mut(&mut applied).insert("name".into(), json!(name));
                    }
                }
                patch::server_side_apply(&gvk, current, &applied, manager.as_deref().unwrap_or(""), force, &now())
                    .map_err(|e| patch_error(e, &target))
            }
            (None, Some(current)) => {
                let mut patched = patch::apply_patch(&gvk, current, body, patch_type).map_err(|e| patch_error(e, &target))?;
                // A patch that does not name a resourceVersion is unconditional.
                if body_sets_rv(body, patch_type) {
                    return Ok(patched);
                }
                if patched.get("metadata").is_some_and(Value::is_object) {
                    meta_mut(&mut patched).remove("resourceVersion");
                }
                Ok(patched)
            }
            (None, None) => Err(ApiError::NotFound(target.clone())),
        })
        .await
    }

    /// Delete with preconditions, grace period and finalizers.
    pub async fn delete(&self, ns: Option<&str>, name: &str, opts: &DeleteOptions) -> Result<DeleteOutcome, ApiError> {
        let key = self.key(ns, name);
        let target = self.target(name);
        let row = self.row;
        let mut pending: Option<Value> = None;
        let mut dry: Option<Value> = None;
        let outcome = guaranteed_update_from::<OpError, _>(&*self.storage, &key, self.cached_kv(&key), |current| {
            let Some(current) = current else { return Err(ApiError::NotFound(target.clone()).into()) };
            let mut obj = parse_stored(&current.value)?;
            let uid = meta_str(&obj, "uid").unwrap_or("").to_string();
            if let Some(want) = opts.uid.as_deref().filter(|u| !u.is_empty()) {
                if want != uid {
                    return Err(ApiError::Conflict {
                        target: target.clone(),
                        message: format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                        causes: vec![],
                    }
                    .into());
                }
            }
            if let Some(want) = opts.resource_version.as_deref().filter(|r| !r.is_empty()) {
                let have = current.mod_revision.to_string();
                if want != have {
                    return Err(ApiError::Conflict {
                        target: target.clone(),
                        message: format!(
                            "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                        ),
                        causes: vec![],
                    }
                    .into());
                }
            }
            let grace = row.strategy.grace_period(&obj, opts.grace_period_seconds);
            let mut changed = false;
            if let Some(f) = strategy::propagation_finalizer(opts.propagation_policy.as_deref()) {
                if !strategy::finalizers(&obj).iter().any(|x| x == f) && row.strategy.takes_propagation_finalizers() {
                    let m = meta_mut(&mut obj);
                    let list = m.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(a) = list.as_array_mut() {
                        a.push(json!(f));
                        changed = true;
                    }
                }
            }
            let already = obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
            let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
            if strategy::blocks_deletion(row, &obj) || grace > 0 {
                let new_grace = already.map_or(grace, |a| a.min(grace));
                if !deleting || already != Some(new_grace) {
                    let ts = chrono::Utc::now() + chrono::Duration::seconds(new_grace);
                    let m = meta_mut(&mut obj);
                    m.insert("deletionTimestamp".into(), json!(ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(new_grace));
                    changed = true;
                }
                if row.strategy.mark_deleting(&mut obj) {
                    changed = true;
                }
                if strategy::blocks_deletion(row, &obj) || new_grace > 0 {
                    let out = with_rv(obj.clone(), current.mod_revision);
                    if opts.dry_run {
                        dry = Some(out);
                        return Ok(UpdateDecision::Unchanged);
                    }
                    pending = Some(obj.clone());
                    return Ok(if changed { UpdateDecision::Write(encode(&obj)) } else { UpdateDecision::Unchanged });
                }
            }
            if opts.dry_run {
                dry = Some(with_rv(obj, current.mod_revision));
                return Ok(UpdateDecision::Unchanged);
            }
            pending = None;
            Ok(UpdateDecision::Delete)
        })
        .await;
        if let Some(d) = dry {
            return Ok(DeleteOutcome::Deleted(d));
        }
        match outcome {
            Ok(UpdateOutcome::Deleted(kv, _)) => {
                let obj = parse_stored(&kv.value).map_err(|e| map_op(&target, e))?;
                if let Some(h) = self.hooks.get() {
                    h.after_delete(&obj).await;
                }
                Ok(DeleteOutcome::Deleted(with_rv(obj, kv.mod_revision)))
            }
            Ok(UpdateOutcome::Written(kv)) | Ok(UpdateOutcome::Unchanged(kv)) => {
                let _ = pending;
                // Namespace lifecycle admission reads the cache: the deleter's next create
                // must already see Terminating, so wait until the cache holds this write.
                if row.strategy.deletion_gates_admission() {
                    self.cache.wait_for(kv.mod_revision, std::time::Duration::from_secs(5)).await;
                }
                Ok(DeleteOutcome::Pending(with_rv(parse_stored(&kv.value).map_err(|e| map_op(&target, e))?, kv.mod_revision)))
            }
            Err(OpError::Storage(StorageError::NotFound { .. })) => Err(ApiError::NotFound(target)),
            Err(e) => Err(map_op(&target, e)),
        }
    }
}

/// Whether a patch body itself names metadata.resourceVersion (then it is a precondition).
fn body_sets_rv(body: &[u8], patch_type: PatchType) -> bool {
    match patch_type {
        PatchType::Json => std::str::from_utf8(body).is_ok_and(|s| s.contains("/metadata/resourceVersion")),
        _ => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.pointer("/metadata/resourceVersion").cloned())
            .is_some_and(|v| !v.is_null()),
    }
}

/// Whether an update changes nothing but what every write changes: resourceVersion and the
/// managedFields timestamps. Compared in place: cloning whole objects for this cost more
/// than the rest of a bind.
fn same_but_bookkeeping(old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else { return old == new };
    let empty = serde_json::Map::new();
    let om = o.get("metadata").and_then(Value::as_object).unwrap_or(&empty);
    let nm = n.get("metadata").and_then(Value::as_object).unwrap_or(&empty);
    same_except(o, n, "metadata", |_, a, b| a == b)
        && same_except(om, nm, "resourceVersion", |k, a, b| {
            if k == "managedFields" { same_managed_fields(a, b) } else { a == b }
        })
}

fn same_managed_fields(old: &Value, new: &Value) -> bool {
    match (old.as_array(), new.as_array()) {
        (Some(o), Some(n)) => {
            o.len() == n.len()
                && o.iter().zip(n).all(|(a, b)| match (a.as_object(), b.as_object()) {
                    (Some(a), Some(b)) => same_except(a, b, "time", |_, x, y| x == y),
                    _ => a == b,
                })
        }
        _ => old == new,
    }
}

/// Whether two maps hold the same keys but `skip`, and `same` holds for each value pair.
fn same_except(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: &str,
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let count = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| *k != skip).count();
    count(a) == count(b)
        && a.iter().filter(|(k, _)| *k != skip).all(|(k, v)| b.get(k).is_some_and(|w| same(k, v, w)))
}

#[cfg(test)]
mod tests {
    use super::same_but_bookkeeping;
    use serde_json::json;

    #[test]
    fn no_op_updates_ignore_only_resource_version_and_managed_times() {
        let old = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "5",
            "managedFields": [{"manager": "m", "operation": "Update", "time": "2026-01-01T00:00:00Z"}]},
            "spec": {"nodeName": "n"}});
        let mut same = old.clone();
        same["metadata"]["resourceVersion"] = json!("9");
        same["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        assert!(same_but_bookkeeping(&old, &same));
        let mut no_rv = old.clone();
        no_rv["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        assert!(same_but_bookkeeping(&old, &no_rv));
        for change in [
            json!({"spec": {"nodeName": "m"}}),
            json!({"status": {}}),
            json!({"metadata": {"labels": {"a": "b"}}}),
            json!({"metadata": {"managedFields": [{"manager": "other", "operation": "Update"}]}}),
        ] {
            let mut changed = old.clone();
            json_patch::merge(&mut changed, &change);
            assert!(!same_but_bookkeeping(&old, &changed), "{change}");
        }
        let mut dropped = old.clone();
        dropped.as_object_mut().unwrap().remove("spec");
        assert!(!same_but_bookkeeping(&old, &dropped));
    }
}
