//! Watch streams served from the watch cache: synthetic ADDED for RV unset/0, history after
//! RV=N, 410 ERROR for a compacted N, BOOKMARK only when asked (and one shortly before the
//! timeout, as upstream), closed at timeoutSeconds. A watch-list (`sendInitialEvents=true`)
//! sends the state as ADDED and then a BOOKMARK annotated `k8s.io/initial-events-end`.

use super::codec::Format;
use super::{Query, SharedState};
use crate::registry::Store;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::protobuf::{self, wire::Writer};
use crate::table;
use crate::watch_cache::{CacheError, CacheEvent, EventType, Subscription};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Upstream's --min-request-timeout default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);
/// Upstream's cacheWatcher sends a bookmark this long before the watch's deadline, so the
/// client resumes from a fresh revision.
const PRE_TIMEOUT_BOOKMARK: Duration = Duration::from_secs(2);
/// The annotation on the bookmark that ends a watch-list's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

struct Filter {
    label: LabelSelector,
    field: FieldSelector,
    kind: &'static str,
}

impl Filter {
    fn matches(&self, v: &Value) -> bool {
        (self.label.is_empty() || self.label.matches(v)) && (self.field.is_empty() || self.field.matches(self.kind, v))
    }

    /// Turns a cache event into what a filtered watcher sees (upstream cacheWatcher.convertToWatchEvent).
    fn convert(&self, e: &CacheEvent) -> Option<EventType> {
        let cur = self.matches(&e.object.fields);
        let prev = e.prev.as_ref().is_some_and(|p| self.matches(&p.fields));
        match e.kind {
            EventType::Added => cur.then_some(EventType::Added),
            EventType::Modified => match (prev, cur) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
            EventType::Deleted => (prev || cur).then_some(EventType::Deleted),
        }
    }
}

struct Watcher {
    store: Arc<Store>,
    filter: Filter,
    format: Format,
    include_object: String,
    bookmarks: bool,
    pending: VecDeque<Arc<CacheEvent>>,
    sub: Subscription,
    /// The watched prefix, and the `seq` of the last live event queued: where a watcher that
    /// lagged behind the live ring resumes from the history.
    prefix: String,
    queued_seq: u64,
    last_rv: i64,
    last_bookmark: Instant,
    /// The pre-timeout bookmark was sent (or the watch is too short for one).
    pre_timeout_done: bool,
    /// A watch-list's initial-events-end bookmark, sent once the initial events are.
    initial_end: Option<i64>,
    deadline: Instant,
    /// One timer per watcher, re-armed only when it fires: events do not touch the timer wheel.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    sent_columns: bool,
    done: bool,
}

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Upstream's protobuf watch frame: a 4-byte big-endian length, then a meta/v1 WatchEvent
/// (1: type, 2: RawExtension whose raw bytes are the object in the protobuf envelope).
fn proto_frame(kind: &str, object: &Value) -> Bytes {
    let raw = match protobuf::encode(object) {
        Ok(raw) => raw,
        Err(e) => {
            // Only a stored object our encoder cannot express gets here; say so in-stream.
            tracing::warn!(error = %e, "watch: encoding an object as protobuf");
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": format!("unable to encode watch object: {e}"), "reason": "InternalError", "code": 500});
            return proto_frame_of("ERROR", protobuf::encode(&status).unwrap_or_default());
        }
    };
    proto_frame_of(kind, raw)
}

fn proto_frame_of(kind: &str, raw: Vec<u8>) -> Bytes {
    let mut ext = Writer::default();
    ext.bytes(1, &raw);
    let mut event = Writer::default();
    event.bytes(1, kind.as_bytes());
    event.bytes(2, &ext.buf);
    let mut out = Vec::with_capacity(4 + event.buf.len());
    out.extend_from_slice(&(event.buf.len() as u32).to_be_bytes());
    out.extend_from_slice(&event.buf);
    Bytes::from(out)
}

/// The frame of one event in the stream's encoding (JSON or protobuf).
fn frame_as(format: Format, kind: &str, object: &Value) -> Bytes {
    if format == Format::Protobuf { proto_frame(kind, object) } else { frame(kind, object) }
}

impl Watcher {
    fn encode(&mut self, kind: EventType, e: &CacheEvent) -> Bytes {
        match self.format {
            Format::Table => {
                let rv = e.rv.to_string();
                let t = table::table(self.store.row.strategy, std::iter::once(&e.object.value()), &rv, None, &self.include_object, !self.sent_columns);
                self.sent_columns = true;
                frame(kind.as_str(), &t)
            }
            Format::Metadata => frame(kind.as_str(), &table::partial_metadata(&e.object.value())),
            Format::Protobuf => proto_frame(kind.as_str(), &e.object.value()),
            // The frame is encoded once per event and shared by every JSON watcher.
            _ => e.json_frame(kind),
        }
    }

    fn bookmark(&self, rv: i64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        frame_as(self.format, "BOOKMARK", &json!({"kind": self.store.row.kind(), "apiVersion": self.store.row.api_version(), "metadata": metadata}))
    }

    /// When the timer should next fire: the deadline, or the next bookmark before it.
    fn wake_at(&self) -> Instant {
        if !self.bookmarks {
            return self.deadline;
        }
        let next = (self.last_bookmark + BOOKMARK_EVERY).min(self.deadline);
        if self.pre_timeout_done { next } else { next.min(self.deadline - PRE_TIMEOUT_BOOKMARK) }
    }

    /// The next frame to send, or None when the stream is over.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                self.last_rv = self.last_rv.max(e.rv);
                if let Some(kind) = self.filter.convert(&e) {
                    return Some(self.encode(kind, &e));
                }
                continue;
            }
            // The initial events are all out (live ones are only queued once they are).
            if let Some(rv) = self.initial_end.take() {
                self.last_rv = self.last_rv.max(rv);
                return Some(self.bookmark(self.last_rv, true));
            }
            tokio::select! {
                r = self.sub.live.recv() => match r {
                    Ok(e) => {
                        if e.seq > self.sub.start_seq && e.seq > self.queued_seq && e.rv > self.sub.start_rv {
                            self.queued_seq = e.seq;
                            self.pending.push_back(e);
                        }
                    }
                    // Behind the live ring: carry on from the history, which is longer; past
                    // that the watch ends and the client resumes from its last RV.
                    Err(RecvError::Lagged(_)) => {
                        let from = self.queued_seq.max(self.sub.start_seq);
                        let Some(again) = self.store.cache.resume(&self.prefix, from) else { return None };
                        for e in &again.initial {
                            if e.rv > self.sub.start_rv {
                                self.queued_seq = self.queued_seq.max(e.seq);
                                self.pending.push_back(e.clone());
                            }
                        }
                        self.queued_seq = self.queued_seq.max(again.start_seq);
                        self.sub.live = again.live;
                        self.sub.start_seq = again.start_seq;
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut self.timer => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        self.done = true;
                        return None;
                    }
                    let pre_timeout = !self.pre_timeout_done && now + PRE_TIMEOUT_BOOKMARK >= self.deadline;
                    self.pre_timeout_done |= pre_timeout;
                    self.last_bookmark = now;
                    let wake = self.wake_at();
                    self.timer.as_mut().reset(wake);
                    if self.bookmarks {
                        // Lets an idle resource's bookmarks move on with the global revision.
                        self.store.cache.refresh().await;
                    }
                    // Read the revision first: every event up to it is then already queued for us,
                    // so an empty queue means the bookmark cannot overtake an event.
                    let rv = self.store.cache.revision();
                    tracing::trace!(rv, last = self.last_rv, queued = self.sub.live.len(), "watch bookmark tick");
                    // Before the timeout a bookmark goes out even at an unchanged revision.
                    if self.bookmarks && (rv > self.last_rv || pre_timeout) && self.sub.live.is_empty() {
                        self.last_rv = self.last_rv.max(rv);
                        return Some(self.bookmark(self.last_rv, false));
                    }
                }
            }
        }
    }
}

fn expired_frame(format: Format, requested: i64, oldest: i64) -> Bytes {
    frame_as(
        format,
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {requested} ({oldest})"), "reason": "Expired", "code": 410}),
    )
}

fn stream_response(format: Format, body: Body) -> Response {
    let mut r = Response::new(body);
    let content_type = if format == Format::Protobuf { PROTOBUF_WATCH } else { "application/json" };
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

const PROTOBUF_WATCH: &str = "application/vnd.kubernetes.protobuf;stream=watch";

pub async fn serve(_state: SharedState, store: Arc<Store>, ns: Option<&str>, q: &Query, format: Format) -> Result<Response, ApiError> {
    let label = LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let field = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), store.row.kind()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let rv = match q.get("resourceVersion") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v}")))?),
    };
    let timeout = q.int("timeoutSeconds")?.filter(|t| *t > 0).map(|t| Duration::from_secs(t as u64)).unwrap_or(DEFAULT_TIMEOUT);
    let bookmarks = q.flag("allowWatchBookmarks") && q.get("allowWatchBookmarks").is_some();
    let send_initial = match q.get("sendInitialEvents") {
        None => None,
        Some(v) => Some(parse_bool(v).ok_or_else(|| ApiError::BadRequest(format!("invalid value for sendInitialEvents: {v:?}")))?),
    };
    validate_watch_options(send_initial, q.get("resourceVersionMatch").filter(|m| !m.is_empty()), bookmarks, q.get("continue").is_some_and(|c| !c.is_empty()))?;
    let prefix = store.prefix(ns);
    // Kinds without a protobuf message (none of the built-ins) are served as JSON, as a
    // client's Accept list always allows.
    let format = match format {
        Format::Protobuf if protobuf::descriptors::message_for(&store.row.api_version(), store.row.kind()).is_none() => Format::Json,
        f => f,
    };
    // RV unset: a consistent start; RV=N in the future: wait for the cache to get there.
    // Without initial events only the position matters, so RV unset starts at the cache's.
    match rv {
        None if send_initial == Some(false) => {}
        None => {
            store.cache.wait_fresh(Duration::from_secs(3)).await.map_err(|e| match e {
                CacheError::Storage(s) => crate::registry::store::storage_error(store.target(""), s),
                _ => ApiError::ServiceUnavailable("the watch cache is not ready".into()),
            })?;
        }
        Some(0) => {}
        // As upstream's cacher: a revision the cache does not reach within 3 s is a 504.
        Some(n) => {
            if !store.cache.wait_for(n, Duration::from_secs(3)).await && store.cache.is_ready() {
                return Err(ApiError::Timeout(format!("Too large resource version: {n}, current: {}", store.cache.revision())));
            }
        }
    }
    // sendInitialEvents decides the initial events whatever the RV (the RV is then only a
    // lower bound); without it, RV=N is a position in history.
    let from = match (send_initial, rv) {
        (Some(true), _) => None,
        (Some(false), None | Some(0)) => Some(store.cache.revision()),
        (_, None | Some(0)) => None,
        (_, Some(n)) => Some(n),
    };
    let sub = match store.cache.subscribe(&prefix, from) {
        Ok(s) => s,
        Err(CacheError::TooOld { requested, oldest }) => {
            return Ok(stream_response(format, Body::from(expired_frame(format, requested, oldest))));
        }
        Err(CacheError::NotReady) => return Err(ApiError::ServiceUnavailable("the watch cache is not ready".into())),
        Err(CacheError::Storage(s)) => return Err(crate::registry::store::storage_error(store.target(""), s)),
    };
    let kind = store.row.kind();
    let last_rv = from.unwrap_or(0);
    let mut watcher = Watcher {
        filter: Filter { label, field, kind },
        format,
        include_object: q.get("includeObject").unwrap_or("Metadata").to_string(),
        bookmarks,
        pending: sub.initial.iter().cloned().collect(),
        initial_end: (send_initial == Some(true)).then_some(sub.snapshot_rv),
        pre_timeout_done: timeout <= PRE_TIMEOUT_BOOKMARK,
        last_rv,
        queued_seq: sub.start_seq,
        prefix: prefix.clone(),
        sub,
        last_bookmark: Instant::now(),
        deadline: Instant::now() + timeout,
        timer: Box::pin(tokio::time::sleep(timeout)),
        sent_columns: false,
        done: false,
        store,
    };
    let wake = watcher.wake_at();
    watcher.timer.as_mut().reset(wake);
    let stream = futures::stream::unfold(watcher, |mut w| async move { w.next().await.map(|b| (Ok::<_, std::io::Error>(b), w)) });
    Ok(stream_response(format, Body::from_stream(stream.boxed())))
}

/// Go's strconv.ParseBool, as upstream decodes boolean query parameters.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Upstream's validation of a watch's ListOptions (apimachinery's validateWatchOptions, plus
/// the watch cache's refusal of initial events without bookmarks): a 422 on ListOptions.
fn validate_watch_options(send_initial: Option<bool>, rvm: Option<&str>, bookmarks: bool, has_continue: bool) -> Result<(), ApiError> {
    use crate::types::FieldCause;
    let forbidden = |field: &str, detail: String| FieldCause { reason: "FieldValueForbidden".into(), message: format!("Forbidden: {detail}"), field: field.into() };
    let mut causes = Vec::new();
    if let Some(initial) = send_initial {
        if rvm != Some("NotOlderThan") {
            causes.push(forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into()));
        }
        if initial && !bookmarks {
            causes.push(forbidden("allowWatchBookmarks", "allowWatchBookmarks must be set to true when sendInitialEvents is true".into()));
        }
    }
    if let Some(m) = rvm {
        if send_initial.is_none() {
            causes.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into()));
        }
        if m != "NotOlderThan" {
            causes.push(FieldCause {
                reason: "FieldValueNotSupported".into(),
                message: format!("Unsupported value: \"{m}\": supported values: \"NotOlderThan\""),
                field: "resourceVersionMatch".into(),
            });
        }
        if has_continue {
            causes.push(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided".into()));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid { target: Default::default(), kind: "ListOptions.meta.k8s.io".into(), name: String::new(), causes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch_cache::decode;

    fn ev(kind: EventType, cur: Value, prev: Option<Value>) -> CacheEvent {
        let o = decode("/k", &serde_json::to_vec(&cur).unwrap(), 5).unwrap();
        let p = prev.map(|p| decode("/k", &serde_json::to_vec(&p).unwrap(), 4).unwrap());
        CacheEvent::new(kind, o, p, 5)
    }

    #[test]
    fn watch_options_are_validated_as_upstream() {
        assert!(validate_watch_options(None, None, false, false).is_ok());
        assert!(validate_watch_options(Some(true), Some("NotOlderThan"), true, false).is_ok());
        assert!(validate_watch_options(Some(false), Some("NotOlderThan"), false, false).is_ok());
        let fields = |r: Result<(), ApiError>| match r {
            Err(ApiError::Invalid { causes, .. }) => causes.into_iter().map(|c| c.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(validate_watch_options(Some(true), None, true, false)), ["resourceVersionMatch"]);
        assert_eq!(fields(validate_watch_options(Some(true), Some("NotOlderThan"), false, false)), ["allowWatchBookmarks"]);
        assert_eq!(fields(validate_watch_options(None, Some("NotOlderThan"), true, false)), ["resourceVersionMatch"]);
        assert_eq!(fields(validate_watch_options(Some(true), Some("Exact"), true, false)), ["resourceVersionMatch", "resourceVersionMatch"]);
    }

    #[test]
    fn selector_transitions_become_added_and_deleted() {
        let f = Filter { label: LabelSelector::default(), field: FieldSelector::parse("spec.nodeName=n1", "Pod").unwrap(), kind: "Pod" };
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(f.convert(&ev(EventType::Modified, bound.clone(), Some(unbound.clone()))), Some(EventType::Added));
        assert_eq!(f.convert(&ev(EventType::Modified, unbound.clone(), Some(bound.clone()))), Some(EventType::Deleted));
        assert_eq!(f.convert(&ev(EventType::Modified, bound.clone(), Some(bound.clone()))), Some(EventType::Modified));
        assert_eq!(f.convert(&ev(EventType::Modified, unbound.clone(), Some(unbound))), None);
        assert_eq!(f.convert(&ev(EventType::Deleted, bound.clone(), Some(bound))), Some(EventType::Deleted));
    }
}
