//! Watches on pods and nodes feeding the scheduler's event handlers. Pods
//! go through a plain watcher: the scheduler cache is their store, and a
//! second full copy of every pod would double the scheduler's memory.
//! Nodes go through a reflector whose Store others may read.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::scheduler::Scheduler;

/// Read-only views of what the reflectors hold.
pub struct Stores {
    pub nodes: Store<Node>,
}

/// Starts both watches; they run until the returned tasks are aborted.
pub fn start(client: kube::Client, scheduler: Arc<Scheduler>) -> (Stores, Vec<tokio::task::JoinHandle<()>>) {
    let (node_store, node_writer) = reflector::store::<Node>();
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);

    let s = scheduler.clone();
    let pod_task = tokio::spawn(async move {
        let stream = watcher::watcher(pods, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => s.pods_relist_started(),
                Ok(Event::InitApply(p)) | Ok(Event::Apply(p)) => s.on_pod_apply(p),
                Ok(Event::InitDone) => s.pods_relist_done(),
                Ok(Event::Delete(p)) => s.on_pod_delete(&p),
                Err(e) => tracing::warn!(error = %e, "pod watch"),
            }
        }
    });
    let s = scheduler;
    let node_task = tokio::spawn(async move {
        let stream = reflector::reflector(
            node_writer,
            watcher::watcher(nodes, watcher::Config::default()).default_backoff(),
        );
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => s.nodes_relist_started(),
                Ok(Event::InitApply(n)) | Ok(Event::Apply(n)) => s.on_node_apply(n),
                Ok(Event::InitDone) => s.nodes_relist_done(),
                Ok(Event::Delete(n)) => s.on_node_delete(&n),
                Err(e) => tracing::warn!(error = %e, "node watch"),
            }
        }
    });
    (Stores { nodes: node_store }, vec![pod_task, node_task])
}
