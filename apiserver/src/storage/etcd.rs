//! The etcd backend: values under `<prefix>/<resource>/...`, resourceVersion = mod_revision,
//! compare-and-swap through transactions on mod_revision.

use super::*;
use super::lease::LeaseManager;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions};
use futures::{FutureExt, StreamExt};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::paging::{next_page_keys, FIRST_PAGE_KEYS};

/// The largest gRPC message this client decodes. etcd takes values of up to 1.5 MiB (its
/// default --max-request-bytes), so a page of [`FIRST_PAGE_KEYS`] such values fits, and so
/// does a page sized to [`super::paging::PAGE_BYTES`] from the values seen before it; a
/// larger answer is asked for again in smaller pages.
/// How long one etcd request may take: an outage is answered (503 or 504) within 5 s.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(4_500);

pub const MAX_DECODING_MESSAGE_SIZE: usize = 256 << 20;

pub struct EtcdStorage {
    client: Client,
    kv: KvClient,
    watch: WatchClient,
    leases: LeaseManager,
    compacted: AtomicI64,
}

/// A response that would not fit in one gRPC message: the caller asks for fewer keys.
fn too_large(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted))
}

fn map_err(e: etcd_client::Error) -> StorageError {
    match &e {
        etcd_client::Error::GRpcStatus(s) => {
            let msg = s.message();
            if msg.contains("compacted") {
                return StorageError::Compacted { requested: 0, compacted: 0 };
            }
            match s.code() {
                tonic::Code::Unavailable => StorageError::Unavailable(msg.to_string()),
                // A deadline hit after the request left: etcd may still commit it.
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => StorageError::Timeout(msg.to_string()),
                // The connection broke under the request (etcd killed): it may have committed.
                tonic::Code::Unknown if msg.contains("transport") || msg.contains("connection") => StorageError::Timeout(msg.to_string()),
                _ => StorageError::Internal(msg.to_string()),
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => StorageError::Unavailable(e.to_string()),
        _ => StorageError::Internal(e.to_string()),
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
    }
}

impl EtcdStorage {
    /// Connects lazily: the server starts even while etcd is down and recovers when it returns.
    pub async fn connect(endpoints: &[String]) -> StorageResult<Self> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(opts)).await.map_err(map_err)?;
        let kv = client.kv_client().max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
        let watch = client.watch_client().max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE);
        Ok(EtcdStorage { client, kv, watch, leases: LeaseManager::default(), compacted: AtomicI64::new(0) })
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    fn note_compacted(&self, revision: i64) {
        self.compacted.fetch_max(revision, Ordering::SeqCst);
    }

    /// A shared lease for a write that expires after `ttl`.
    async fn lease(&self, ttl: Duration) -> StorageResult<i64> {
        let mut leases = self.client.lease_client();
        self.leases.lease_for(ttl, |seconds| async move { Ok(leases.grant(seconds, None).await.map_err(map_err)?.id()) }).await
    }

    async fn create_leased(&self, key: String, value: Bytes, lease: Option<i64>) -> StorageResult<i64> {
        let put = lease.map(|id| PutOptions::new().with_lease(id));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value.to_vec(), put)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists { key });
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    async fn update_leased(&self, key: String, value: Bytes, expected_revision: i64, lease: Option<i64>) -> StorageResult<i64> {
        let put = lease.map(|id| PutOptions::new().with_lease(id));
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected_revision)])
            .and_then([TxnOp::put(key.clone(), value.to_vec(), put)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            let current = Self::current_from(&resp).map(Box::new);
            return Err(StorageError::Conflict { key, current });
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
    }

    /// One range of at most `limit` keys from `start`; a response too large for one message
    /// is asked for again with half the keys (the caller sees `more` and continues).
    async fn range(&self, start: &str, end: &[u8], revision: i64, mut limit: i64) -> StorageResult<etcd_client::GetResponse> {
        loop {
            let mut o = GetOptions::new().with_range(end.to_vec()).with_limit(limit);
            if revision > 0 {
                o = o.with_revision(revision);
            }
            match self.kv().get(start, Some(o)).await {
                Ok(resp) => return Ok(resp),
                Err(e) if too_large(&e) && limit > 1 => {
                    tracing::debug!(start, limit, "etcd range too large for one message; halving the page");
                    limit /= 2;
                }
                Err(e) => {
                    return Err(match map_err(e) {
                        StorageError::Compacted { .. } => {
                            StorageError::Compacted { requested: revision, compacted: self.compacted.load(Ordering::SeqCst) }
                        }
                        other => other,
                    })
                }
            }
        }
    }

    /// The mod revision of `key` now, read in the failed branch of a txn.
    fn current_from(resp: &etcd_client::TxnResponse) -> Option<KeyValue> {
        resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(kv_of),
            _ => None,
        })
    }
}

impl Storage for EtcdStorage {
    fn create(&self, key: &str, value: Bytes) -> BoxFuture<'_, StorageResult<i64>> {
        self.create_leased(key.to_string(), value, None).boxed()
    }

    fn create_with_ttl(&self, key: &str, value: Bytes, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move {
            let lease = self.lease(ttl).await?;
            self.create_leased(key, value, Some(lease)).await
        }
        .boxed()
    }

    fn get(&self, key: &str) -> BoxFuture<'_, StorageResult<Option<KeyValue>>> {
        let key = key.to_string();
        async move {
            let resp = self.kv().get(key, None).await.map_err(map_err)?;
            Ok(resp.kvs().first().map(kv_of))
        }
        .boxed()
    }

    fn list(&self, prefix: &str, opts: ListOptions) -> BoxFuture<'_, StorageResult<ListResult>> {
        let prefix = prefix.to_string();
        async move {
            let end = prefix_end(&prefix);
            let mut start = opts.start_key.clone().unwrap_or_else(|| prefix.clone());
            if opts.limit > 0 {
                let resp = self.range(&start, &end, opts.revision, opts.limit).await?;
                let revision = if opts.revision > 0 { opts.revision } else { resp.header().map(|h| h.revision()).unwrap_or_default() };
                return Ok(ListResult { items: resp.kvs().iter().map(kv_of).collect(), revision, more: resp.more() });
            }
            // Unlimited: pages at the first page's revision, each sized from the values seen
            // so far, so that no single response holds the whole resource.
            let mut revision = opts.revision;
            let mut items = Vec::new();
            let mut page = FIRST_PAGE_KEYS;
            loop {
                let resp = self.range(&start, &end, revision, page).await?;
                if revision == 0 {
                    revision = resp.header().map(|h| h.revision()).unwrap_or_default();
                }
                let bytes: usize = resp.kvs().iter().map(|kv| kv.key().len() + kv.value().len()).sum();
                items.extend(resp.kvs().iter().map(kv_of));
                let Some(last) = resp.kvs().last().filter(|_| resp.more()) else {
                    return Ok(ListResult { items, revision, more: false });
                };
                start = format!("{}\0", String::from_utf8_lossy(last.key()));
                page = next_page_keys(bytes, resp.kvs().len());
            }
        }
        .boxed()
    }

    fn update(&self, key: &str, value: Bytes, expected_revision: i64) -> BoxFuture<'_, StorageResult<i64>> {
        self.update_leased(key.to_string(), value, expected_revision, None).boxed()
    }

    fn update_with_ttl(&self, key: &str, value: Bytes, expected_revision: i64, ttl: Duration) -> BoxFuture<'_, StorageResult<i64>> {
        let key = key.to_string();
        async move {
            let lease = self.lease(ttl).await?;
            self.update_leased(key, value, expected_revision, Some(lease)).await
        }
        .boxed()
    }

    fn delete(&self, key: &str, expected_revision: Option<i64>) -> BoxFuture<'_, StorageResult<(KeyValue, i64)>> {
        let key = key.to_string();
        async move {
            // One round trip: the delete hands back what it removed (prev_kv), and a failed
            // compare hands back what is there now.
            let del = TxnOp::delete(key.clone(), Some(DeleteOptions::new().with_prev_key()));
            let txn = match expected_revision {
                Some(r) => Txn::new()
                    .when([Compare::mod_revision(key.clone(), CompareOp::Equal, r)])
                    .and_then([del])
                    .or_else([TxnOp::get(key.clone(), None)]),
                None => Txn::new().and_then([del]),
            };
            let resp = self.kv().txn(txn).await.map_err(map_err)?;
            if !resp.succeeded() {
                return match Self::current_from(&resp) {
                    None => Err(StorageError::NotFound { key }),
                    Some(c) => Err(StorageError::Conflict { key, current: Some(Box::new(c)) }),
                };
            }
            let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
            let removed = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().map(kv_of),
                _ => None,
            });
            match removed {
                Some(old) => Ok((old, revision)),
                None => Err(StorageError::NotFound { key }),
            }
        }
        .boxed()
    }

    fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        progress: Arc<tokio::sync::Notify>,
    ) -> BoxFuture<'_, StorageResult<EventStream>> {
        let prefix = prefix.to_string();
        async move {
            let mut opts = WatchOptions::new().with_range(prefix_end(&prefix)).with_prev_key();
            if start_revision > 0 {
                opts = opts.with_start_revision(start_revision);
            }
            let mut client = self.watch.clone();
            let stream = client.watch(prefix.clone(), Some(opts)).await.map_err(map_err)?;
            let (mut sender, mut responses) = stream.split();
            // The first response says whether the watch was created or refused as compacted.
            let first = responses.message().await.map_err(map_err)?;
            let mut pending = Vec::new();
            if let Some(first) = first {
                if first.compact_revision() > 0 || first.canceled() {
                    self.note_compacted(first.compact_revision());
                    return Err(StorageError::Compacted { requested: start_revision, compacted: first.compact_revision() });
                }
                pending.extend(convert_events(&first));
            }
            tracing::trace!(%prefix, start_revision, "etcd watch created");
            let task = tokio::spawn(async move {
                loop {
                    progress.notified().await;
                    tracing::trace!("requesting etcd watch progress");
                    if sender.request_progress().await.is_err() {
                        return;
                    }
                }
            });
            let guard = Arc::new(AbortOnDrop(task));
            let live = futures::stream::unfold((responses, guard), |(mut responses, guard)| async move {
                match responses.message().await {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            let err = StorageError::Compacted { requested: 0, compacted: resp.compact_revision() };
                            return Some((vec![Err(err)], (responses, guard)));
                        }
                        if resp.canceled() {
                            let err = StorageError::Unavailable(format!("watch canceled: {}", resp.cancel_reason()));
                            return Some((vec![Err(err)], (responses, guard)));
                        }
                        let mut events: Vec<_> = convert_events(&resp).into_iter().map(Ok).collect();
                        if events.is_empty() && !resp.created() {
                            // A progress notification: everything up to the header revision was sent.
                            events.push(Ok(StorageEvent {
                                kind: EventKind::Progress,
                                key: String::new(),
                                value: Bytes::new(),
                                mod_revision: resp.header().map(|h| h.revision()).unwrap_or_default(),
                                prev: None,
                            }));
                        }
                        Some((events, (responses, guard)))
                    }
                    Ok(None) => Some((
                        vec![Err(StorageError::Unavailable("watch stream ended".into()))],
                        (responses, guard),
                    )),
                    Err(e) => Some((vec![Err(map_err(e))], (responses, guard))),
                }
            })
            .flat_map(futures::stream::iter);
            Ok(futures::stream::iter(pending.into_iter().map(Ok)).chain(live).boxed())
        }
        .boxed()
    }

    fn probe(&self, prefix: &str) -> BoxFuture<'_, StorageResult<Probe>> {
        let prefix = prefix.to_string();
        async move {
            // Sorted by mod revision with limit 1: the newest key, plus the range's total count.
            let o = GetOptions::new()
                .with_range(prefix_end(&prefix))
                .with_keys_only()
                .with_sort(SortTarget::Mod, SortOrder::Descend)
                .with_limit(1);
            let resp = self.kv().get(prefix, Some(o)).await.map_err(map_err)?;
            Ok(Probe {
                revision: resp.header().map(|h| h.revision()).unwrap_or_default(),
                count: resp.count(),
                max_mod_revision: resp.kvs().first().map(|kv| kv.mod_revision()).unwrap_or_default(),
            })
        }
        .boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, StorageResult<i64>> {
        async move {
            // A count-only read of a key nobody writes is the cheapest way to learn the revision.
            let resp = self
                .kv()
                .get("/ferrokube-revision-probe", Some(GetOptions::new().with_count_only()))
                .await
                .map_err(map_err)?;
            Ok(resp.header().map(|h| h.revision()).unwrap_or_default())
        }
        .boxed()
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, StorageResult<()>> {
        async move {
            match self.kv().compact(revision, None).await.map_err(map_err) {
                Ok(_) | Err(StorageError::Compacted { .. }) => {
                    self.note_compacted(revision);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn compacted_revision(&self) -> i64 {
        self.compacted.load(Ordering::SeqCst)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn convert_events(resp: &etcd_client::WatchResponse) -> Vec<StorageEvent> {
    resp.events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            let prev = e.prev_kv().map(|p| Bytes::copy_from_slice(p.value()));
            Some(match e.event_type() {
                etcd_client::EventType::Put => StorageEvent {
                    kind: EventKind::Put,
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: Bytes::copy_from_slice(kv.value()),
                    mod_revision: kv.mod_revision(),
                    prev,
                },
                etcd_client::EventType::Delete => StorageEvent {
                    kind: EventKind::Delete,
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    value: prev.clone().unwrap_or_default(),
                    mod_revision: kv.mod_revision(),
                    prev,
                },
            })
        })
        .collect()
}
