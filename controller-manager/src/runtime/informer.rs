//! Shared informers: one watch per kind feeding one cache (a reflector
//! store), with change handlers that controllers register before start.
//! The handler sees the old and the new object, as client-go's
//! ResourceEventHandler does, so a controller can react to label changes.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

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

pub struct Informer<K: Resource<DynamicType = ()> + Clone + 'static> {
    api: Api<K>,
    synced: tokio::sync::watch::Sender<bool>,
    relist: Arc<tokio::sync::Notify>,
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
            relist: Arc::new(tokio::sync::Notify::new()),
            store,
            writer: Some(writer),
            handlers: Vec::new(),
        }
    }

    pub fn synced(&self) -> Synced {
        Synced(self.synced.subscribe())
    }

    /// Notify to drop the watch and list again: a safety valve for a cache
    /// that misses events (observed against an apiserver under load).
    pub fn relister(&self) -> Arc<tokio::sync::Notify> {
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
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => match ev {
                        Some(ev) => ev,
                        None => break,
                    },
                    _ = relist.notified() => {
                        tracing::info!(kind = %K::kind(&()), "relisting");
                        stream = watcher(api.clone(), watcher::Config::default()).boxed();
                        continue;
                    }
                };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                match &ev {
                    Event::Init => {
                        before_relist = store.state();
                        relisted.clear();
                        writer.apply_watcher_event(&ev);
                    }
                    Event::InitApply(obj) | Event::Apply(obj) => {
                        let key = ObjectRef::from_obj(obj);
                        let old = store.get(&key);
                        if matches!(ev, Event::InitApply(_)) {
                            relisted.insert(key);
                        }
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
                        synced.send_replace(true);
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

    pub fn relister<K>(&mut self) -> Arc<tokio::sync::Notify>
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
