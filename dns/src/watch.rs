//! Services and EndpointSlices from the apiserver, through kube-runtime
//! watchers, into the shared state. Nothing else is watched: pod records
//! are answered from the name alone (CoreDNS's `pods insecure`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::metrics::Metrics;
use crate::state::{ClusterState, SharedState};

/// How one kind's events change the state.
trait Kind: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static {
    fn apply(st: &mut ClusterState, o: &Self);
    fn delete(st: &mut ClusterState, ns: &str, name: &str);
    fn replace(st: &mut ClusterState, all: &[Self]);
}

impl Kind for Service {
    fn apply(st: &mut ClusterState, o: &Self) {
        st.apply_service(o)
    }
    fn delete(st: &mut ClusterState, ns: &str, name: &str) {
        st.delete_service(ns, name)
    }
    fn replace(st: &mut ClusterState, all: &[Self]) {
        st.replace_services(all)
    }
}

impl Kind for EndpointSlice {
    fn apply(st: &mut ClusterState, o: &Self) {
        st.apply_slice(o)
    }
    fn delete(st: &mut ClusterState, ns: &str, name: &str) {
        st.delete_slice(ns, name)
    }
    fn replace(st: &mut ClusterState, all: &[Self]) {
        st.replace_slices(all)
    }
}

/// Watches both kinds until the process ends; `/ready` turns 200 once both
/// have listed.
pub async fn run(client: kube::Client, state: SharedState, metrics: Arc<Metrics>) {
    let services_synced = Arc::new(AtomicBool::new(false));
    let slices_synced = Arc::new(AtomicBool::new(false));
    let mark = {
        let (a, b, m) = (services_synced.clone(), slices_synced.clone(), metrics.clone());
        move || {
            if a.load(Ordering::Relaxed) && b.load(Ordering::Relaxed) {
                m.ready.store(true, Ordering::Relaxed);
            }
        }
    };
    let m2 = mark.clone();
    tokio::join!(
        watch::<Service>(Api::all(client.clone()), state.clone(), services_synced, mark),
        watch::<EndpointSlice>(Api::all(client), state, slices_synced, m2),
    );
}

async fn watch<K: Kind>(api: Api<K>, state: SharedState, synced: Arc<AtomicBool>, mark: impl Fn()) {
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // A relist's objects, applied together at its end so that queries never
    // see a half-listed cluster.
    let mut relist: Vec<K> = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                continue;
            }
        };
        let mut st = state.write().unwrap_or_else(|e| e.into_inner());
        match ev {
            Event::Init => relist.clear(),
            Event::InitApply(o) => relist.push(o),
            Event::InitDone => {
                K::replace(&mut st, &relist);
                relist = Vec::new();
                synced.store(true, Ordering::Relaxed);
                mark();
            }
            Event::Apply(o) => K::apply(&mut st, &o),
            Event::Delete(o) => {
                let m = o.meta();
                K::delete(&mut st, m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default());
            }
        }
    }
}
