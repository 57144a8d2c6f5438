//! One sync of a running pod: carry out the plan from
//! [`compute_pod_actions`], probe, and write the status.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;

use super::sandbox::{
    create_sandbox, load_sandbox, prepare_sandbox, release_network, wire_network,
};
use super::state::grace_period;
use super::terminate::stop_container;
use super::{observe, WorkerState, VOLUME_RESYNC};
use crate::container::start::{start_container, StartError};
use crate::context::Kubelet;
use crate::pod::actions::{backoff_key, compute_pod_actions};
use crate::pod::status::{self as pod_status, PodFacts};
use crate::runtime::{ContainerState, ObservedContainer};
use crate::volume;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("runtime: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("status: {0}")]
    Status(#[from] crate::status_manager::StatusError),
}

pub(super) async fn sync(k: &Kubelet, pod: &Pod, state: &mut WorkerState) -> Result<(), SyncError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    state.start_time.get_or_insert_with(Utc::now);
    let t_sync = std::time::Instant::now();
    let mut observed = observe(k, &uid, state).await?;
    let observed_at = t_sync.elapsed();
    let mut sandbox = load_sandbox(k, &uid);
    if apimachinery::phase::is_pod_terminal(pod) {
        // A finished pod stops what still runs (sidecars, or everything past its
        // activeDeadlineSeconds), keeps its containers for logs and releases its network.
        let grace = grace_period(pod);
        for c in observed
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        {
            stop_container(k, &c.id, grace).await;
        }
        if sandbox.is_some() {
            release_network(k, &uid).await;
        }
        return Ok(());
    }
    let now = Utc::now();
    let plan = {
        let b = k.backoff.lock().await;
        compute_pod_actions(pod, &observed, sandbox.is_some(), &b, now)
    };
    if plan != Default::default() {
        tracing::debug!(pod = ?pod.metadata.name, ?plan, "pod actions");
    }
    for id in &plan.prune {
        let _ = k.runtime.remove_container(id).await;
    }
    if !plan.kill.is_empty() {
        let grace = grace_period(pod);
        for id in &plan.kill {
            stop_container(k, id, grace).await;
        }
        observed = observe(k, &uid, state).await?;
    }
    // ConfigMap, Secret and downward-API volumes follow their sources, as upstream's
    // volume manager resyncs them about once a minute.
    if state
        .volumes_refreshed
        .is_none_or(|t| t.elapsed() >= VOLUME_RESYNC)
    {
        if state.volumes_refreshed.is_some() {
            crate::volume::refresh(k, pod).await;
        }
        state.volumes_refreshed = Some(std::time::Instant::now());
    }
    let mut network = None;
    if plan.create_sandbox {
        for c in observed
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        {
            let _ = k.runtime.kill_container(&c.id, 9).await;
        }
        // With a gate in the runtime, CNI runs beside container creation below.
        let created = match k.runtime.network_gate() {
            Some(gate) if !plan.start.is_empty() => prepare_sandbox(k, pod).await.map(|ports| {
                network = Some((gate.open(&uid), ports));
                None
            }),
            _ => create_sandbox(k, pod).await.map(Some),
        };
        match created {
            Ok(s) => sandbox = s.or(sandbox),
            Err(e) => return sandbox_failed(k, pod, &spec, &observed, state, &e).await,
        }
    }
    for name in &plan.backoff {
        let key = backoff_key(&uid, name);
        let delay = k.backoff.lock().await.delay(&key).unwrap_or_default();
        let msg = format!(
            "back-off {}s restarting failed container={} pod={}_{}({})",
            delay.as_secs(),
            name,
            pod.metadata.name.clone().unwrap_or_default(),
            pod.metadata.namespace.clone().unwrap_or_default(),
            uid
        );
        if state.waiting.get(name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
            k.events.pod_event(
                pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container".into(),
                Some(format!("spec.containers{{{name}}}")),
            );
        }
        state
            .waiting
            .insert(name.clone(), ("CrashLoopBackOff".into(), msg));
    }
    let wired = async {
        let (setup, ports) = network?;
        let r = wire_network(k, &uid, pod, ports).await;
        setup.done(r.as_ref().map(|_| ()).map_err(Clone::clone));
        Some(r)
    };
    let ((), wired) = tokio::join!(start_containers(k, pod, &spec, &plan, state), wired);
    if let Some(gate) = k.runtime.network_gate() {
        gate.close(&uid);
    }
    match wired {
        Some(Ok(s)) => {
            // Containers created beside CNI got /etc/hosts without the pod's IP.
            if let Err(e) = volume::write_etc_hosts(k, pod, Some(&s.pod_ip)) {
                tracing::warn!(error = %e, "writing /etc/hosts with the pod IP");
            }
            sandbox = Some(s);
        }
        Some(Err(e)) => {
            // Containers created for the network that failed never started: drop them.
            for c in observe(k, &uid, state).await? {
                if matches!(c.state, ContainerState::Created | ContainerState::Unknown) {
                    let _ = k.runtime.remove_container(&c.id).await;
                }
            }
            let observed = observe(k, &uid, state).await?;
            return sandbox_failed(k, pod, &spec, &observed, state, &e).await;
        }
        None => {}
    }
    observed = observe(k, &uid, state).await?;
    let running: Vec<(String, String)> = observed
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .map(|c| (c.name.clone(), c.id.clone()))
        .collect();
    // Adopted containers (kubelet restarted): pick their output up again.
    for c in observed
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
    {
        if state.logging.insert(c.id.clone()) {
            if let Err(e) =
                crate::container::start::attach_logs(k, &uid, &c.name, c.restart_count, &c.id).await
            {
                tracing::debug!(id = %c.id, error = %e, "reattaching logs");
            }
        }
    }
    let mut probe_pod = pod.clone();
    if let Some(s) = &sandbox {
        probe_pod.status.get_or_insert_with(Default::default).pod_ip = Some(s.pod_ip.clone());
    }
    let outcome = state.prober.probe(k, &probe_pod, &running).await;
    for (name, id, msg) in &outcome.kill {
        k.events.pod_event(
            pod,
            "Normal",
            "Killing",
            msg.clone(),
            Some(format!("spec.containers{{{name}}}")),
        );
        stop_container(k, id, grace_period(pod)).await;
    }
    if !outcome.kill.is_empty() {
        observed = observe(k, &uid, state).await?;
    }
    // Waiting reasons only stand while the container is not running.
    for c in &observed {
        if matches!(c.state, ContainerState::Running { .. }) {
            state.waiting.remove(&c.name);
        }
    }
    let before_status = t_sync.elapsed();
    let r = write_status(k, pod, &observed, state, sandbox.map(|s| s.pod_ip)).await;
    if plan.create_sandbox || !plan.start.is_empty() {
        tracing::debug!(pod = ?pod.metadata.name, first_observe_ms = observed_at.as_millis(),
            before_status_ms = before_status.as_millis(), total_ms = t_sync.elapsed().as_millis(), "pod synced");
    }
    r
}

/// Starts the containers the plan names, in order; an init container ends the round.
pub(super) async fn start_containers(
    k: &Kubelet,
    pod: &Pod,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    plan: &crate::pod::actions::PodActions,
    state: &mut WorkerState,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for s in &plan.start {
        let Some(c) = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == s.name)
        else {
            continue;
        };
        let image = c.image.clone().unwrap_or_default();
        if let Some(at) = state.image_failed_at.get(&c.name) {
            if state.image_backoff.in_backoff(&c.name, *at, Utc::now()) {
                state.waiting.insert(
                    c.name.clone(),
                    (
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image \"{image}\""),
                    ),
                );
                continue;
            }
        }
        let resolved = match volume::resolve(k, pod, c).await {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                if state.waiting.get(&c.name).map(|w| &w.1) != Some(&msg) {
                    k.events
                        .pod_event(pod, "Warning", e.event_reason(), msg.clone(), None);
                }
                state
                    .waiting
                    .insert(c.name.clone(), (e.waiting_reason().into(), msg));
                if s.init {
                    break;
                }
                continue;
            }
        };
        if s.restart_count > 0 {
            k.backoff.lock().await.next(&backoff_key(&uid, &c.name));
        }
        let t = std::time::Instant::now();
        let started =
            start_container(k, pod, c, s.restart_count, resolved.env, resolved.mounts).await;
        tracing::debug!(pod = ?pod.metadata.name, container = %c.name, result = ?started,
        ms = t.elapsed().as_millis(), "start container");
        match started {
            Ok(id) => {
                state.logging.insert(id.clone());
                if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    if let Err(e) =
                        crate::pod::lifecycle::run_handler(k, pod, c, &id, h, deadline).await
                    {
                        let field = Some(format!("spec.containers{{{}}}", c.name));
                        k.events.pod_event(
                            pod,
                            "Warning",
                            "FailedPostStartHook",
                            format!("PostStartHook failed: {e}"),
                            field,
                        );
                        stop_container(k, &id, Duration::from_secs(2)).await;
                    }
                }
                state.waiting.remove(&c.name);
                state.image_failed_at.remove(&c.name);
                state.image_backoff.reset(&c.name);
            }
            Err(StartError::ImagePull(msg)) => {
                k.events.pod_event(
                    pod,
                    "Warning",
                    "Failed",
                    msg.clone(),
                    Some(format!("spec.containers{{{}}}", c.name)),
                );
                state.image_backoff.next(&c.name);
                state.image_failed_at.insert(c.name.clone(), Utc::now());
                state
                    .waiting
                    .insert(c.name.clone(), ("ErrImagePull".into(), msg));
            }
            Err(StartError::ImageNeverPull(msg)) => {
                k.events.pod_event(
                    pod,
                    "Warning",
                    "ErrImageNeverPull",
                    msg.clone(),
                    Some(format!("spec.containers{{{}}}", c.name)),
                );
                state
                    .waiting
                    .insert(c.name.clone(), ("ErrImageNeverPull".into(), msg));
            }
            Err(StartError::Start { id, message }) => {
                state.waiting.remove(&c.name);
                state.start_errors.insert(id, message);
            }
            Err(StartError::Config(msg)) => {
                state
                    .waiting
                    .insert(c.name.clone(), ("CreateContainerConfigError".into(), msg));
            }
            Err(StartError::Runtime(e)) => {
                state
                    .waiting
                    .insert(c.name.clone(), ("ContainerCreating".into(), e.to_string()));
            }
        }
        if s.init {
            break;
        }
    }
}

/// FailedCreatePodSandBox: an event, and the containers wait in ContainerCreating.
pub(super) async fn sandbox_failed(
    k: &Kubelet,
    pod: &Pod,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    observed: &[ObservedContainer],
    state: &mut WorkerState,
    e: &str,
) -> Result<(), SyncError> {
    k.events.pod_event(
        pod,
        "Warning",
        "FailedCreatePodSandBox",
        format!("Failed to create pod sandbox: {e}"),
        None,
    );
    for c in &spec.containers {
        state
            .waiting
            .insert(c.name.clone(), ("ContainerCreating".into(), String::new()));
    }
    write_status(k, pod, observed, state, None).await
}

pub(super) async fn write_status(
    k: &Kubelet,
    pod: &Pod,
    observed: &[ObservedContainer],
    state: &WorkerState,
    pod_ip: Option<String>,
) -> Result<(), SyncError> {
    let facts = PodFacts {
        pod_ip: pod_ip.or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone())),
        host_ip: k.node_ip.clone(),
        start_time: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(crate::ktime::chrono)
            .or(state.start_time),
        waiting: state.waiting.clone(),
        ready: spec_ready(pod, state),
        started: spec_started(pod, state),
        start_errors: state.start_errors.clone(),
        sandbox_ready: load_sandbox(k, pod.metadata.uid.as_deref().unwrap_or_default()).is_some(),
    };
    let status = pod_status::generate(pod, observed, &facts, Utc::now());
    k.status.set(pod, &status).await?;
    Ok(())
}

pub(super) fn spec_ready(pod: &Pod, state: &WorkerState) -> HashMap<String, bool> {
    let mut m = HashMap::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(r) = state.prober.ready(&c.name, c.readiness_probe.is_some()) {
            m.insert(c.name.clone(), r);
        } else if c.readiness_probe.is_some() || c.startup_probe.is_some() {
            m.insert(c.name.clone(), false);
        }
    }
    m
}

pub(super) fn spec_started(pod: &Pod, state: &WorkerState) -> HashMap<String, bool> {
    let mut m = HashMap::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(s) = state.prober.started(&c.name) {
            m.insert(c.name.clone(), s);
        } else if c.startup_probe.is_some() {
            m.insert(c.name.clone(), false);
        }
    }
    m
}
