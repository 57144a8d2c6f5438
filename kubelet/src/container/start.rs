//! Starting one container of a pod: pull the image, wire up its log FIFOs,
//! build its OCI spec, create and start it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::container::logs;
use crate::container::spec::{self as container_spec, BindMount, SpecInput};
use crate::container::termination_message;
use crate::context::Kubelet;
use crate::runtime::*;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    ImagePull(String),
    #[error("{0}")]
    ImageNeverPull(String),
    #[error("{0}")]
    Config(String),
    /// The container exists but could not start: upstream's StartError.
    #[error("{message}")]
    Start { id: String, message: String },
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
}

/// The event fieldPath of a container, as upstream: init containers are
/// `spec.initContainers{name}`.
pub fn field_path(pod: &Pod, name: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|ics| ics.iter().any(|c| c.name == name));
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// runAsNonRoot is in force for the container.
fn refuses_root(pod: &Pod, c: &Container) -> bool {
    crate::container::security_context::effective(pod, c).run_as_non_root == Some(true)
}

/// A container ID unique per pod, container and attempt.
pub fn container_id(pod_uid: &str, name: &str, restart_count: i32) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(format!("{pod_uid}/{name}/{restart_count}/{}", rand::random::<u64>()).as_bytes());
    hex::encode(h.finalize())
}

fn mkfifo(p: &Path) -> std::io::Result<()> {
    match nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// Opens a FIFO's read side and starts copying it into the CRI log file (and to clients
/// attached to the container). A stdin FIFO left by an earlier kubelet is reopened.
pub async fn attach_logs(
    k: &Kubelet,
    pod_uid: &str,
    name: &str,
    restart_count: i32,
    id: &str,
) -> std::io::Result<Vec<tokio::net::unix::pipe::Sender>> {
    let stdin = crate::container::attach::stdin_fifo(&k.fifo_dir(pod_uid), id);
    let reopen = stdin.exists().then_some(false);
    attach_stdio(k, pod_uid, name, restart_count, id, reopen, true).await
}

/// [`attach_logs`] for a new container: `stdin` is Some(stdinOnce) when the container
/// has `stdin: true`; a `tty` container has no stderr FIFO.
pub async fn attach_stdio(
    k: &Kubelet,
    pod_uid: &str,
    name: &str,
    restart_count: i32,
    id: &str,
    stdin: Option<bool>,
    stderr: bool,
) -> std::io::Result<Vec<tokio::net::unix::pipe::Sender>> {
    let fifo_dir = k.fifo_dir(pod_uid);
    tokio::fs::create_dir_all(&fifo_dir).await?;
    let log = logs::log_path(&k.log_dir(pod_uid), name, restart_count);
    if let Some(parent) = log.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .await?;
    let file = Arc::new(tokio::sync::Mutex::new(file));
    let streams: &[&'static str] = if stderr { &["stdout", "stderr"] } else { &["stdout"] };
    let stdin_writer = match stdin {
        Some(_) => {
            let p = crate::container::attach::stdin_fifo(&fifo_dir, id);
            mkfifo(&p)?;
            // Read-write, so the open neither blocks nor fails before the shim opens its end.
            Some(tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_sender(&p)?)
        }
        None => None,
    };
    let hub = crate::container::attach::Hub::register(id, streams.len(), stdin_writer, stdin == Some(true));
    let mut holders = Vec::new();
    for stream in streams {
        let p = fifo_dir.join(format!("{id}.{stream}"));
        mkfifo(&p)?;
        let rx = tokio::net::unix::pipe::OpenOptions::new().open_receiver(&p)?;
        // Holding a writer until the shim opens its own keeps the reader from seeing EOF early.
        holders.push(tokio::net::unix::pipe::OpenOptions::new().open_sender(&p)?);
        let f = file.clone();
        tokio::spawn(logs::copy_stream(rx, stream, f, Some((hub.clone(), id.to_string()))));
    }
    Ok(holders)
}

/// Pulls `image_name` with Pulling and Pulled events around it.
async fn pull_image(
    k: &Kubelet,
    pod: &Pod,
    image_name: &str,
    policy: PullPolicy,
    field: Option<String>,
) -> std::result::Result<crate::runtime::ImageInfo, StartError> {
    k.events.pod_event(
        pod,
        "Normal",
        "Pulling",
        format!("Pulling image \"{image_name}\""),
        field.clone(),
    );
    let t0 = std::time::Instant::now();
    let image = k
        .runtime
        .ensure_image(image_name, policy)
        .await
        .map_err(|e| {
            StartError::ImagePull(format!("Failed to pull image \"{image_name}\": {e}"))
        })?;
    k.events.pod_event(
        pod,
        "Normal",
        "Pulled",
        format!(
            "Successfully pulled image \"{image_name}\" in {:?}",
            t0.elapsed()
        ),
        field,
    );
    Ok(image)
}

/// Pulls, creates and starts container `c` of `pod` as attempt `restart_count`.
pub async fn start_container(
    k: &Kubelet,
    pod: &Pod,
    c: &Container,
    restart_count: i32,
    env: Vec<(String, String)>,
    mounts: Vec<BindMount>,
) -> std::result::Result<String, StartError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let image_name = c.image.clone().unwrap_or_default();
    let policy = PullPolicy::from_spec(c.image_pull_policy.as_deref(), &image_name);
    let field = Some(field_path(pod, &c.name));
    // A refused container is retried every sync: when the image is already
    // here, refuse it before pulling again (no registry trip, no Pulling event).
    if policy != PullPolicy::Never && refuses_root(pod, c) {
        if let Ok(local) = k.runtime.ensure_image(&image_name, PullPolicy::Never).await {
            if let Err(e) = crate::container::security_context::verify_run_as_non_root(
                pod,
                c,
                &local.config.user,
            ) {
                k.events
                    .pod_event(pod, "Warning", "Failed", format!("Error: {e}"), field);
                return Err(StartError::Config(e.to_string()));
            }
        }
    }
    // As upstream's image manager: an image already here under IfNotPresent or
    // Never gives one "already present" event; otherwise Pulling, then Pulled.
    let present = match policy {
        PullPolicy::Always => None,
        _ => k
            .runtime
            .ensure_image(&image_name, PullPolicy::Never)
            .await
            .ok(),
    };
    let image = match present {
        Some(i) => {
            k.events.pod_event(
                pod,
                "Normal",
                "Pulled",
                format!("Container image \"{image_name}\" already present on machine"),
                field.clone(),
            );
            i
        }
        None if policy == PullPolicy::Never => {
            return Err(StartError::ImageNeverPull(format!(
                "Container image \"{image_name}\" is not present with pull policy of Never"
            )))
        }
        None => pull_image(k, pod, &image_name, policy, field.clone()).await?,
    };
    // Checked against the pulled image's USER, as upstream does before creating.
    if let Err(e) =
        crate::container::security_context::verify_run_as_non_root(pod, c, &image.config.user)
    {
        k.events
            .pod_event(pod, "Warning", "Failed", format!("Error: {e}"), field);
        return Err(StartError::Config(e.to_string()));
    }
    let id = container_id(&uid, &c.name, restart_count);
    termination_message::register(&uid, k.pod_dir(&uid), k.log_dir(&uid));
    let mut mounts = mounts;
    if let Some(m) = termination_message::prepare(&k.pod_dir(&uid), c, restart_count)
        .map_err(RuntimeError::from)?
    {
        // A volume the user mounts at the same path wins.
        if !mounts.iter().any(|v| v.container_path == m.container_path) {
            mounts.push(m);
        }
    }
    let ns = k.namespaces(&uid);
    let spec = container_spec::build(
        pod,
        c,
        &SpecInput {
            image: &image.config,
            env,
            mounts,
            namespaces: &ns,
            cgroups_path: format!("/kubepods/pod{uid}/{id}"),
        },
    );
    // Execs into the container (probes, hooks, kubectl exec) run as its process does.
    crate::container::exec::save_process(&k.pod_dir(&uid), &id, &spec["process"])
        .map_err(RuntimeError::from)?;
    let mut labels = HashMap::new();
    labels.insert(LABEL_POD_UID.to_string(), uid.clone());
    labels.insert(
        LABEL_POD_NAME.to_string(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAMESPACE.to_string(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_CONTAINER_NAME.to_string(), c.name.clone());
    labels.insert(LABEL_RESTART_COUNT.to_string(), restart_count.to_string());
    labels.insert(LABEL_IMAGE.to_string(), image_name.clone());
    labels.insert(LABEL_IMAGE_ID.to_string(), image.image_id.clone());
    let tty = c.tty.unwrap_or(false);
    let stdin = c.stdin.unwrap_or(false).then_some(c.stdin_once.unwrap_or(false));
    let holders = attach_stdio(k, &uid, &c.name, restart_count, &id, stdin, !tty)
        .await
        .map_err(RuntimeError::from)?;
    let fifo_dir = k.fifo_dir(&uid);
    let cfg = ContainerConfig {
        id: id.clone(),
        labels,
        image,
        spec,
        stdout: fifo_dir.join(format!("{id}.stdout")),
        stderr: fifo_dir.join(format!("{id}.stderr")),
        stdin: stdin.map(|_| crate::container::attach::stdin_fifo(&fifo_dir, &id)),
        terminal: tty,
    };
    let created = k.runtime.create_container(cfg).await;
    drop(holders);
    match created {
        Ok(()) => {}
        Err(RuntimeError::Start(m)) => {
            let message = format!("failed to create containerd task: {m}");
            k.events
                .pod_event(pod, "Warning", "Failed", format!("Error: {message}"), field);
            return Err(StartError::Start { id, message });
        }
        Err(e) => return Err(e.into()),
    }
    k.events.pod_event(
        pod,
        "Normal",
        "Created",
        format!("Created container {}", c.name),
        field.clone(),
    );
    match k.runtime.start_container(&id).await {
        Ok(()) => {}
        Err(RuntimeError::Start(m)) => {
            let message = format!("failed to start containerd task: {m}");
            k.events
                .pod_event(pod, "Warning", "Failed", format!("Error: {message}"), field);
            return Err(StartError::Start { id, message });
        }
        Err(e) => return Err(e.into()),
    }
    k.events.pod_event(
        pod,
        "Normal",
        "Started",
        format!("Started container {}", c.name),
        field,
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::fake::FakeNetwork;
    use crate::runtime::fake::FakeRuntime;

    fn kubelet(rt: Arc<FakeRuntime>, root: &Path) -> Kubelet {
        Kubelet::for_tests(root, rt, Arc::new(FakeNetwork::default()))
    }

    fn pod() -> (Pod, Container) {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        (p, c)
    }

    #[tokio::test]
    async fn pulls_creates_and_starts_with_pod_labels() {
        let root = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::with_image("busybox"));
        let k = kubelet(rt.clone(), root.path());
        let (p, c) = pod();
        let id = start_container(&k, &p, &c, 2, vec![], vec![])
            .await
            .unwrap();
        let calls = rt.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                "pull busybox".to_string(),
                format!("create {id}"),
                format!("start {id}")
            ]
        );
        let cs = rt.list_containers().await.unwrap();
        assert_eq!(cs[0].pod_uid, "u1");
        assert_eq!(cs[0].name, "c");
        assert_eq!(cs[0].restart_count, 2);
        assert!(logs::log_path(&k.log_dir("u1"), "c", 2).exists());
    }

    #[tokio::test]
    async fn termination_log_is_mounted_from_the_pod_dir() {
        let root = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::with_image("busybox"));
        let k = kubelet(rt.clone(), root.path());
        let (p, c) = pod();
        start_container(&k, &p, &c, 1, vec![], vec![])
            .await
            .unwrap();
        // The fake keeps no spec: the mount itself is termination_message's and container_spec's to test.
        let host = termination_message::host_path(&k.pod_dir("u1"), "c", 1);
        assert_eq!(std::fs::read(&host).unwrap(), b"");
    }

    /// runAsNonRoot with an image that runs as root: CreateContainerConfigError, no container.
    #[tokio::test]
    async fn run_as_non_root_refuses_a_root_image_before_creating() {
        let root = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::with_image("busybox"));
        let k = kubelet(rt.clone(), root.path());
        let (mut p, _) = pod();
        p.spec.as_mut().unwrap().security_context =
            Some(k8s_openapi::api::core::v1::PodSecurityContext {
                run_as_non_root: Some(true),
                ..Default::default()
            });
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        match start_container(&k, &p, &c, 0, vec![], vec![]).await {
            Err(StartError::Config(m)) => assert!(
                m.starts_with("container has runAsNonRoot and image will run as root"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(rt.containers.lock().unwrap().is_empty());
        // The image was already here: one lookup (the local one), no second pull.
        let calls = rt.calls.lock().unwrap().clone();
        assert_eq!(calls, vec!["pull busybox".to_string()]);
    }

    #[test]
    fn init_containers_have_their_own_field_path() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}
        }))
        .unwrap();
        assert_eq!(field_path(&p, "i"), "spec.initContainers{i}");
        assert_eq!(field_path(&p, "c"), "spec.containers{c}");
    }

    #[tokio::test]
    async fn missing_image_is_an_image_pull_error() {
        let root = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::default());
        let k = kubelet(rt.clone(), root.path());
        let (p, c) = pod();
        match start_container(&k, &p, &c, 0, vec![], vec![]).await {
            Err(StartError::ImagePull(m)) => {
                assert!(m.starts_with("Failed to pull image \"busybox\""), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(rt.containers.lock().unwrap().is_empty());
    }
}
