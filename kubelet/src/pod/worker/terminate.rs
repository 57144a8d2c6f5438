//! Stopping a pod: preStop, SIGTERM, SIGKILL at the deadline, then
//! releasing everything it held.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::time::Instant;

use super::sandbox::release_network;
use super::state::{transition, PodState, Update};
use super::{observe, Updates, WorkerState};
use crate::context::Kubelet;
use crate::runtime::{ContainerState, ObservedContainer};
use crate::volume;

/// How often a terminating pod's containers are checked for having exited.
const STOP_POLL: Duration = Duration::from_millis(200);

/// SIGTERM, then SIGKILL once `grace` has passed.
pub(super) async fn stop_container(k: &Kubelet, id: &str, grace: Duration) {
    let _ = k.runtime.kill_container(id, 15).await;
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let running = k
            .runtime
            .list_containers()
            .await
            .map(|cs| {
                cs.iter()
                    .any(|c| c.id == id && matches!(c.state, ContainerState::Running { .. }))
            })
            .unwrap_or(false);
        if !running {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = k.runtime.kill_container(id, 9).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes every trace of a pod: containers, network, namespaces, volumes.
pub async fn cleanup(k: &Kubelet, uid: &str, observed: &[ObservedContainer]) {
    for c in observed {
        if let Err(e) = k.runtime.remove_container(&c.id).await {
            tracing::warn!(id = %c.id, error = %e, "removing container");
        }
    }
    release_network(k, uid).await;
    volume::teardown(k, uid).await;
    let _ = tokio::fs::remove_dir_all(k.pod_dir(uid)).await;
}

/// Graceful termination: preStop, SIGTERM, SIGKILL at the deadline, release
/// everything, then the final DELETE with a UID precondition (unless the pod
/// is already `gone` from the API). Updates keep being read throughout, and
/// each one goes through [`transition`], so that a force delete moves the
/// deadline forward. Leaves `state` at [`PodState::Terminated`].
pub(super) async fn terminate(
    k: &Kubelet,
    uid: &str,
    pod: Pod,
    mut gone: bool,
    w: &mut WorkerState,
    updates: &mut Updates,
    state: &mut PodState,
) {
    let mut latest = pod.clone();
    let mut apply = |updates: &mut Updates, state: &mut PodState| {
        let desired = updates.latest();
        *state = transition(*state, Update::of(desired.as_ref()), Instant::now());
        match desired {
            Some(p) => latest = p,
            None => gone = true,
        }
    };
    let observed = observe(k, uid, w).await.unwrap_or_default();
    let running: Vec<&ObservedContainer> = observed
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .collect();
    for c in &running {
        k.events.pod_event(
            &pod,
            "Normal",
            "Killing",
            format!("Stopping container {}", c.name),
            Some(format!("spec.containers{{{}}}", c.name)),
        );
    }
    if deadline(*state) > Instant::now() {
        let pre_stop = crate::pod::lifecycle::run_pre_stop(k, &pod, &running, deadline(*state));
        tokio::pin!(pre_stop);
        loop {
            tokio::select! {
                _ = &mut pre_stop => break,
                _ = tokio::time::sleep_until(deadline(*state)) => break,
                _ = updates.changed() => apply(updates, state),
            }
        }
    }
    for c in &running {
        let _ = k.runtime.kill_container(&c.id, 15).await;
    }
    loop {
        let still: Vec<ObservedContainer> = observe(k, uid, w)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .collect();
        if still.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= deadline(*state) {
            for c in &still {
                let _ = k.runtime.kill_container(&c.id, 9).await;
            }
            break;
        }
        tokio::select! {
            _ = updates.changed() => apply(updates, state),
            _ = tokio::time::sleep_until(deadline(*state).min(now + STOP_POLL)) => {}
        }
    }
    let observed = observe(k, uid, w).await.unwrap_or_default();
    if !gone {
        let _ = super::sync::write_status(k, &latest, &observed, w, None).await;
    }
    cleanup(k, uid, &observed).await;
    *state = transition(*state, Update::Stopped, Instant::now());
    if gone {
        return;
    }
    if let Some(client) = &k.client {
        let ns = latest
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api
            .delete(latest.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await
        {
            tracing::debug!(error = %e, "final pod delete");
        }
    }
}

/// The deadline of a terminating pod; a pod not terminating has none to wait for.
fn deadline(state: PodState) -> Instant {
    match state {
        PodState::Terminating { deadline } => deadline,
        _ => Instant::now(),
    }
}

/// After a restart: containers and sandboxes of pods that no longer exist are removed.
pub async fn remove_orphans(k: &Kubelet, live: &std::collections::HashSet<String>) {
    let Ok(all) = k.runtime.list_containers().await else {
        return;
    };
    let mut by_pod: HashMap<String, Vec<ObservedContainer>> = HashMap::new();
    for c in all.into_iter().filter(|c| !live.contains(&c.pod_uid)) {
        by_pod.entry(c.pod_uid.clone()).or_default().push(c);
    }
    if let Ok(entries) = std::fs::read_dir(k.root_dir.join("pods")) {
        for e in entries.flatten() {
            let uid = e.file_name().to_string_lossy().to_string();
            if !live.contains(&uid) {
                by_pod.entry(uid).or_default();
            }
        }
    }
    for (uid, cs) in by_pod {
        tracing::info!(%uid, "removing orphaned pod");
        cleanup(k, &uid, &cs).await;
    }
}
