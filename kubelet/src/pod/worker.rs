//! One worker per pod UID drives the pod through sync → terminating →
//! terminated. A newer desired pod replaces a pending one (watch channel).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use tokio::sync::{watch, Mutex};

use crate::container::start::{start_container, StartError};
use crate::context::{Kubelet, SandboxState};
use crate::network::PortMapping;
use crate::pod::actions::{backoff_key, compute_pod_actions};
use crate::pod::status::{self as pod_status, PodFacts};
use crate::runtime::{ContainerState, ObservedContainer};
use crate::volume;

/// How often a worker re-checks its pod without being told: exits and back-offs.
const RESYNC: Duration = Duration::from_secs(1);

/// The set of pod workers, keyed by pod UID.
#[derive(Clone)]
pub struct PodWorkers {
    k: Arc<Kubelet>,
    workers: Arc<Mutex<HashMap<String, watch::Sender<Option<Pod>>>>>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PodWorkers {
    pub fn new(k: Arc<Kubelet>) -> Self {
        PodWorkers {
            k,
            workers: Default::default(),
            tasks: Default::default(),
        }
    }

    /// Hands the newest desired pod to its worker, starting one if needed.
    pub async fn update(&self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.k.pods.write().await.insert(uid.clone(), pod.clone());
        let mut workers = self.workers.lock().await;
        if let Some(tx) = workers.get(&uid) {
            if tx.send(Some(pod.clone())).is_ok() {
                return;
            }
        }
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        let k = self.k.clone();
        let all = self.workers.clone();
        let handle = tokio::spawn(async move {
            run(k.clone(), uid.clone(), rx).await;
            all.lock().await.remove(&uid);
            k.pods.write().await.remove(&uid);
            k.status.forget(&uid).await;
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle.abort_handle());
        }
    }

    /// The pod is gone from the API: tear it down without waiting for a grace period.
    pub async fn remove(&self, uid: &str) {
        if let Some(tx) = self.workers.lock().await.get(uid) {
            let _ = tx.send(None);
        }
    }

    /// Stops every worker where it stands, leaving containers running: what a
    /// kubelet crash or restart looks like to the runtime.
    pub fn shutdown(&self) {
        if let Ok(t) = self.tasks.lock() {
            t.iter().for_each(|h| h.abort());
        }
    }

    pub async fn known(&self) -> Vec<String> {
        self.workers.lock().await.keys().cloned().collect()
    }
}

/// Per-pod memory that the runtime doesn't hold.
#[derive(Default)]
struct WorkerState {
    waiting: HashMap<String, (String, String)>,
    start_errors: HashMap<String, String>,
    image_backoff: crate::backoff::Backoff,
    image_failed_at: HashMap<String, chrono::DateTime<Utc>>,
    start_time: Option<chrono::DateTime<Utc>>,
    prober: crate::prober::PodProber,
    /// Containers whose output is being copied into their log file.
    logging: std::collections::HashSet<String>,
    /// When the projected volumes were last rewritten from their sources.
    volumes_refreshed: Option<std::time::Instant>,
}

/// How often ConfigMap, Secret and downward-API volumes are rewritten.
const VOLUME_RESYNC: Duration = Duration::from_secs(60);

async fn run(k: Arc<Kubelet>, uid: String, mut rx: watch::Receiver<Option<Pod>>) {
    let mut state = WorkerState::default();
    loop {
        let desired = rx.borrow_and_update().clone();
        match desired {
            None => {
                // Gone from the API: nothing to wait for, release everything now.
                let observed = observe(&k, &uid, &state).await.unwrap_or_default();
                cleanup(&k, &uid, &observed).await;
                return;
            }
            Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                terminate(&k, &pod, &mut state, true).await;
                return;
            }
            Some(pod) => {
                if let Err(e) = sync(&k, &pod, &mut state).await {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "sync failed");
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("runtime: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("status: {0}")]
    Status(#[from] crate::status_manager::StatusError),
}

/// The pod's containers, with failed starts shown as exited with 128.
async fn observe(
    k: &Kubelet,
    uid: &str,
    state: &WorkerState,
) -> Result<Vec<ObservedContainer>, SyncError> {
    let mut v: Vec<ObservedContainer> = k.runtime.list_pod_containers(uid).await?;
    for c in &mut v {
        if state.start_errors.contains_key(&c.id)
            && matches!(c.state, ContainerState::Unknown | ContainerState::Created)
        {
            c.state = ContainerState::Exited {
                exit_code: 128,
                started_at: None,
                finished_at: c.created_at,
            };
        }
    }
    Ok(v)
}

fn load_sandbox(k: &Kubelet, uid: &str) -> Option<SandboxState> {
    if !k.namespaces(uid).exists() {
        return None;
    }
    let b = std::fs::read(k.sandbox_file(uid)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for p in c.ports.iter().flatten() {
            if let Some(hp) = p.host_port.filter(|h| *h > 0) {
                out.push(PortMapping {
                    host_port: hp,
                    container_port: p.container_port,
                    protocol: p
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into())
                        .to_lowercase(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                });
            }
        }
    }
    out
}

async fn create_sandbox(k: &Kubelet, pod: &Pod) -> Result<SandboxState, String> {
    let ports = prepare_sandbox(k, pod).await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    wire_network(k, &uid, pod, ports).await
}

/// The pod's namespaces and host ports: everything a container needs to be created.
async fn prepare_sandbox(k: &Kubelet, pod: &Pod) -> Result<Vec<PortMapping>, String> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = k.namespaces(&uid);
    ns.remove();
    ns.create(pod.metadata.name.as_deref().unwrap_or("pod"))
        .await
        .map_err(|e| e.to_string())?;
    let ports = host_ports(pod);
    let mut held = Vec::new();
    for p in ports.iter().filter(|p| p.protocol == "tcp") {
        let ip = if p.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            p.host_ip.as_str()
        };
        match std::net::TcpListener::bind((ip, p.host_port as u16)) {
            Ok(l) => held.push(l),
            Err(e) => {
                ns.remove();
                return Err(format!(
                    "cannot open hostport {} for pod {}: {e}",
                    p.host_port,
                    pod.metadata.name.clone().unwrap_or_default()
                ));
            }
        }
    }
    if let Ok(mut hp) = k.host_ports.lock() {
        hp.insert(uid.clone(), held);
    }
    Ok(ports)
}

/// CNI ADD in the pod's net namespace, then the sandbox record; a failure undoes both.
async fn wire_network(
    k: &Kubelet,
    uid: &str,
    pod: &Pod,
    ports: Vec<PortMapping>,
) -> Result<SandboxState, String> {
    let t = std::time::Instant::now();
    let ns = k.namespaces(uid);
    let ip = match k.cni.add(uid, &ns.net(), &ports).await {
        Ok(ip) => ip,
        Err(e) => {
            let _ = k.cni.del(uid, &ns.net(), &ports).await;
            ns.remove();
            return Err(e.to_string());
        }
    };
    tracing::debug!(pod = ?pod.metadata.name, cni_ms = t.elapsed().as_millis(), "pod network ready");
    let st = SandboxState {
        pod_ip: ip,
        ports,
        created_at: Utc::now().to_rfc3339(),
    };
    std::fs::write(
        k.sandbox_file(uid),
        serde_json::to_vec(&st).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(st)
}

async fn sync(k: &Kubelet, pod: &Pod, state: &mut WorkerState) -> Result<(), SyncError> {
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
        Some(Ok(s)) => sandbox = Some(s),
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
async fn start_containers(
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
async fn sandbox_failed(
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

async fn write_status(
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

fn spec_ready(pod: &Pod, state: &WorkerState) -> HashMap<String, bool> {
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

fn spec_started(pod: &Pod, state: &WorkerState) -> HashMap<String, bool> {
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

/// The pod's terminationGracePeriodSeconds (30 s by default).
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64)
}

/// SIGTERM, then SIGKILL once `grace` has passed.
async fn stop_container(k: &Kubelet, id: &str, grace: Duration) {
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

async fn release_network(k: &Kubelet, uid: &str) {
    if let Ok(mut hp) = k.host_ports.lock() {
        hp.remove(uid);
    }
    let ns = k.namespaces(uid);
    let ports = load_sandbox(k, uid).map(|s| s.ports).unwrap_or_default();
    if let Err(e) = k.cni.del(uid, &ns.net(), &ports).await {
        tracing::warn!(uid, error = %e, "CNI DEL");
    }
    ns.remove();
    let _ = std::fs::remove_file(k.sandbox_file(uid));
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

/// Graceful termination: preStop, SIGTERM, SIGKILL after the grace period,
/// release everything, then the final DELETE with a UID precondition.
async fn terminate(k: &Kubelet, pod: &Pod, state: &mut WorkerState, delete_from_api: bool) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // The deletion's own grace period wins over the spec's.
    let grace = match pod.metadata.deletion_grace_period_seconds {
        Some(secs) => Duration::from_secs(secs.max(0) as u64),
        None => grace_period(pod),
    };
    let deadline = tokio::time::Instant::now() + grace;
    let observed = observe(k, &uid, state).await.unwrap_or_default();
    let running: Vec<&ObservedContainer> = observed
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .collect();
    for c in &running {
        k.events.pod_event(
            pod,
            "Normal",
            "Killing",
            format!("Stopping container {}", c.name),
            Some(format!("spec.containers{{{}}}", c.name)),
        );
    }
    crate::pod::lifecycle::run_pre_stop(k, pod, &running, deadline).await;
    for c in &running {
        let _ = k.runtime.kill_container(&c.id, 15).await;
    }
    loop {
        let still: Vec<ObservedContainer> = observe(k, &uid, state)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .collect();
        if still.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for c in &still {
                let _ = k.runtime.kill_container(&c.id, 9).await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let observed = observe(k, &uid, state).await.unwrap_or_default();
    let _ = write_status(k, pod, &observed, state, None).await;
    cleanup(k, &uid, &observed).await;
    if delete_from_api {
        if let Some(client) = &k.client {
            let ns = pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            if let Err(e) = api
                .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
                .await
            {
                tracing::debug!(error = %e, "final pod delete");
            }
        }
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
