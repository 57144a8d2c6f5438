//! The pods bound to this node, from a watch with fieldSelector
//! spec.nodeName=<node>, fed to the pod workers.

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

use crate::pod::worker::PodWorkers;

/// Runs forever; the watcher relists and rewatches on its own.
pub async fn run(
    client: kube::Client,
    node: String,
    workers: PodWorkers,
    on_synced: impl Fn(HashSet<String>) + Send + 'static,
) {
    let api: Api<Pod> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher::watcher(api, cfg).boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let mut first_sync = true;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(mut p)) | Ok(Event::InitApply(mut p)) => {
                // Kept per pod by the workers and /pods; nothing here reads it.
                p.metadata.managed_fields = None;
                if let Some(uid) = p.metadata.uid.clone() {
                    listed.insert(uid);
                }
                workers.update(p).await;
            }
            Ok(Event::Delete(p)) => {
                if let Some(uid) = p.metadata.uid {
                    workers.remove(&uid).await;
                }
            }
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitDone) => {
                // Pods that vanished while we weren't watching are torn down.
                for uid in workers.known().await {
                    if !listed.contains(&uid) {
                        workers.remove(&uid).await;
                    }
                }
                if first_sync {
                    on_synced(listed.clone());
                    first_sync = false;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pod watch");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}
