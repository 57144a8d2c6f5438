//! Watches on pods and nodes feeding the scheduler's event handlers. Both
//! go through plain watchers: the scheduler cache is their store, and a
//! second full copy of every object (a reflector Store) would double the
//! scheduler's memory. What the scheduler never reads (managedFields, the
//! last-applied annotation) is dropped on arrival.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use crate::scheduler::Scheduler;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Strips the bookkeeping no plugin reads: on a 5,000-node cluster with
/// server-side apply, managedFields alone can outweigh the rest.
pub fn strip_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Starts both watches; they run until the returned tasks are aborted.
pub fn start(client: kube::Client, scheduler: Arc<Scheduler>) -> Vec<tokio::task::JoinHandle<()>> {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client);

    let s = scheduler.clone();
    let pod_task = tokio::spawn(async move {
        let stream = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .modify(|p: &mut Pod| strip_metadata(&mut p.metadata));
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
        let stream = watcher::watcher(nodes, watcher::Config::default())
            .default_backoff()
            .modify(|n: &mut Node| strip_metadata(&mut n.metadata));
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
    vec![pod_task, node_task]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_is_stripped_and_the_rest_kept() {
        let mut meta = ObjectMeta {
            name: Some("p".into()),
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{}".to_string()),
                    ("keep".to_string(), "me".to_string()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![Default::default()]),
            ..Default::default()
        };
        strip_metadata(&mut meta);
        assert!(meta.managed_fields.is_none());
        assert_eq!(meta.annotations.unwrap().keys().collect::<Vec<_>>(), vec!["keep"]);
    }
}
