//! Shared informers: one watch per kind feeding one cache (a reflector
//! store), with change handlers that controllers register before start.
//! The handler sees the old and the new object, as client-go's
//! ResourceEventHandler does, so a controller can react to label changes.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use super::{Key, WorkQueue};

/// Called with (old, new): add = (None, Some), update = (Some, Some),
/// delete = (Some, None).
pub type Handler<K> = Arc<dyn Fn(Option<&K>, Option<&K>) + Send + Sync>;

/// Resolves once an informer has finished its first list. (kube's
/// `Store::wait_until_ready` wakes only one of several waiters.)
#[derive(Clone)]
pub struct Synced(tokio::sync::watch::Receiver<bool>);

impl Synced {
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Wait for every informer a controller reads.
pub async fn wait_synced(all: &[Synced]) {
    for s in all {
        s.wait().await;
    }
}

/// The informer's full lists, numbered: a controller that wrote at list
/// epoch `e` knows its cache shows that write once list `e + 1` or later has
/// completed, whatever the watch delivered or lost in between. It can also
/// ask for such a list when the cache looks stuck.
#[derive(Clone)]
pub struct Relister(Arc<RelistState>);

struct RelistState {
    /// Lists begun so far; a list with a higher number was requested after
    /// everything that happened before the number was read.
    started: AtomicU64,
    /// The number of the last list that completed.
    completed: AtomicU64,
    notify: tokio::sync::Notify,
    last_request: Mutex<Option<Instant>>,
}

/// At most one requested relist per kind in this period: a stuck cache asks
/// from every sync, and one list answers them all.
const RELIST_MIN_INTERVAL: Duration = Duration::from_secs(2);

impl Relister {
    pub(crate) fn new() -> Self {
        Relister(Arc::new(RelistState {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
            last_request: Mutex::new(None),
        }))
    }

    /// The current epoch: record it right after a write.
    pub fn epoch(&self) -> u64 {
        self.0.started.load(Ordering::SeqCst)
    }

    /// Has a list begun after `epoch` completed (so the cache is at least as
    /// new as anything written before `epoch` was read)?
    pub fn fresh_since(&self, epoch: u64) -> bool {
        self.0.completed.load(Ordering::SeqCst) > epoch
    }

    /// Ask for a full list (rate-limited): the safety valve for a watch that
    /// lost events without telling us.
    /// True when this call asked for the list.
    pub fn request(&self) -> bool {
        let mut last = self.0.last_request.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= RELIST_MIN_INTERVAL) {
            *last = Some(Instant::now());
            self.0.notify.notify_one();
            return true;
        }
        false
    }

    pub(crate) fn list_started(&self) -> u64 {
        self.0.started.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn list_completed(&self, id: u64) {
        self.0.completed.fetch_max(id, Ordering::SeqCst);
    }
}

/// Back-off between failed list/watch attempts (kube's watcher retries at once).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct Informer<K: Resource<DynamicType = ()> + Clone + 'static> {
    api: Api<K>,
    synced: tokio::sync::watch::Sender<bool>,
    relist: Relister,
    store: Store<K>,
    writer: Option<reflector::store::Writer<K>>,
    handlers: Vec<Handler<K>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        Informer {
            api,
            synced: tokio::sync::watch::channel(false).0,
            relist: Relister::new(),
            store,
            writer: Some(writer),
            handlers: Vec::new(),
        }
    }

    pub fn synced(&self) -> Synced {
        Synced(self.synced.subscribe())
    }

    /// The handle to this informer's list epochs and relists.
    pub fn relister(&self) -> Relister {
        self.relist.clone()
    }

    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    pub fn on_change(&mut self, f: impl Fn(Option<&K>, Option<&K>) + Send + Sync + 'static) {
        self.handlers.push(Arc::new(f));
    }

    /// Every change of an object enqueues the object's own key.
    pub fn enqueue_self(&mut self, queue: &WorkQueue<Key>) {
        let q = queue.clone();
        self.on_change(move |old, new| {
            if let Some(o) = new.or(old) {
                q.add(Key::of(o.meta()));
            }
        });
    }

    /// A change of a dependent enqueues its controller of kind `owner_kind`; the old state
    /// counts too, so that a released dependent still wakes its former owner.
    pub fn enqueue_controller(&mut self, queue: &WorkQueue<Key>, owner_kind: &'static str) {
        let q = queue.clone();
        self.on_change(move |old, new| {
            for o in [old, new].into_iter().flatten() {
                let meta = o.meta();
                if let Some(c) = crate::podutil::controller_of(meta).filter(|c| c.kind == owner_kind) {
                    q.add(Key::namespaced(meta.namespace.as_deref().unwrap_or_default(), &c.name));
                }
            }
        });
    }

    /// Start the watch; a no-op when already started.
    pub fn start(&mut self) {
        let Some(mut writer) = self.writer.take() else { return };
        let handlers = std::mem::take(&mut self.handlers);
        let store = self.store.clone();
        let api = self.api.clone();
        let synced = self.synced.clone();
        let relist = self.relist.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
            let mut relisted: HashSet<ObjectRef<K>> = HashSet::new();
            let mut before_relist: Vec<Arc<K>> = Vec::new();
            let mut changed: Vec<(Option<Arc<K>>, ObjectRef<K>)> = Vec::new();
            let mut list_id = 0;
            let mut retry = RETRY_MIN;
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => match ev {
                        Some(ev) => ev,
                        None => break,
                    },
                    _ = relist.0.notify.notified() => {
                        tracing::info!(kind = %K::kind(&()), "relisting");
                        stream = watcher(api.clone(), watcher::Config::default()).boxed();
                        continue;
                    }
                };
                let ev = match ev {
                    Ok(ev) => {
                        retry = RETRY_MIN;
                        ev
                    }
                    Err(e) => {
                        tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                        // kube's watcher carries on with the same stream after a
                        // stream error (a frame it could not read is simply
                        // skipped), so the cache may now lack an event: list
                        // again. A 410 already makes it relist by itself.
                        if matches!(e, watcher::Error::WatchFailed(_)) {
                            stream = watcher(api.clone(), watcher::Config::default()).boxed();
                        }
                        continue;
                    }
                };
                match &ev {
                    Event::Init => {
                        list_id = relist.list_started();
                        before_relist = store.state();
                        relisted.clear();
                        changed.clear();
                        writer.apply_watcher_event(&ev);
                    }
                    Event::InitApply(obj) => {
                        let key = ObjectRef::from_obj(obj);
                        let old = store.get(&key);
                        relisted.insert(key.clone());
                        writer.apply_watcher_event(&ev);
                        // The store shows the list only at InitDone; a handler
                        // fired now would wake a controller that reads the
                        // old state and then hears nothing more.
                        let same = old.as_ref().is_some_and(|o| {
                            o.meta().resource_version.is_some() && o.meta().resource_version == obj.meta().resource_version
                        });
                        if !same {
                            changed.push((old, key));
                        }
                    }
                    Event::Apply(obj) => {
                        let old = store.get(&ObjectRef::from_obj(obj));
                        writer.apply_watcher_event(&ev);
                        for h in &handlers {
                            h(old.as_deref(), Some(obj));
                        }
                    }
                    Event::Delete(obj) => {
                        writer.apply_watcher_event(&ev);
                        for h in &handlers {
                            h(Some(obj), None);
                        }
                    }
                    Event::InitDone => {
                        writer.apply_watcher_event(&ev);
                        relist.list_completed(list_id);
                        synced.send_replace(true);
                        for (old, key) in changed.drain(..) {
                            let Some(new) = store.get(&key) else { continue };
                            for h in &handlers {
                                h(old.as_deref(), Some(&new));
                            }
                        }
                        // Objects deleted while we were not watching.
                        for gone in before_relist.drain(..) {
                            if !relisted.contains(&ObjectRef::from_obj(&*gone)) {
                                for h in &handlers {
                                    h(Some(&gone), None);
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The set of shared informers, one per kind, handed to each controller
/// while it is being set up.
pub struct Informers {
    client: Client,
    by_kind: HashMap<TypeId, Box<dyn Any + Send>>,
    starters: Vec<Box<dyn FnOnce(&mut HashMap<TypeId, Box<dyn Any + Send>>) + Send>>,
}

impl Informers {
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            by_kind: HashMap::new(),
            starters: Vec::new(),
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The cluster-wide informer for `K`, created on first use.
    pub fn get<K>(&mut self) -> &mut Informer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let id = TypeId::of::<K>();
        if !self.by_kind.contains_key(&id) {
            let inf = Informer::<K>::new(Api::all(self.client.clone()));
            self.by_kind.insert(id, Box::new(inf));
            self.starters.push(Box::new(move |m| {
                if let Some(inf) = m.get_mut(&id).and_then(|b| b.downcast_mut::<Informer<K>>()) {
                    inf.start();
                }
            }));
        }
        self.by_kind
            .get_mut(&id)
            .and_then(|b| b.downcast_mut::<Informer<K>>())
            .expect("informer registered under its own TypeId")
    }

    pub fn store<K>(&mut self) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get::<K>().store()
    }

    pub fn relister<K>(&mut self) -> Relister
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get::<K>().relister()
    }

    pub fn synced<K>(&mut self) -> Synced
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get::<K>().synced()
    }

    /// Start every informer that was asked for.
    pub fn start(&mut self) {
        for s in std::mem::take(&mut self.starters) {
            s(&mut self.by_kind);
        }
    }
}
