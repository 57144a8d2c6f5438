//! The container-runtime boundary. Pod logic talks to [`Runtime`]; the real
//! implementation drives containerd over gRPC, the fake one lives in memory.

pub mod containerd;
pub mod fake;
pub mod image_pull;
pub mod image_ref;
pub mod network_gate;
pub mod runtime_cache;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Set on start so that a restarted kubelet can report startedAt.
pub const LABEL_STARTED_AT: &str = "io.ferrokube.startedAt";
pub const LABEL_IMAGE_ID: &str = "io.ferrokube.imageID";
/// The image name as written in the pod spec, reported back in status.image.
pub const LABEL_IMAGE: &str = "io.ferrokube.image";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("containerd unavailable: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("image pull failed for {image}: {message}")]
    Pull { image: String, message: String },
    #[error("image {0} is not present with pull policy Never")]
    ImageNeverPull(String),
    #[error("failed to start container: {0}")]
    Start(String),
    #[error("containerd error: {0}")]
    Grpc(#[from] tonic::Status),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The parts of an image's config that shape a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// An image present in the runtime.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// Canonical name, e.g. docker.io/library/busybox:latest.
    pub name: String,
    /// `name@sha256:...` of the manifest: status.imageID.
    pub image_id: String,
    pub config: ImageConfig,
    /// Top chain ID: the parent snapshot of a container's rootfs.
    pub chain_id: String,
}

/// The lifecycle state of a container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created but its task was never started.
    Created,
    Running {
        started_at: DateTime<Utc>,
    },
    Exited {
        exit_code: i32,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
    },
    Unknown,
}

/// A container found in the runtime, with the labels that tie it to a pod.
#[derive(Debug, Clone)]
pub struct ObservedContainer {
    pub id: String,
    pub pod_uid: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub name: String,
    pub restart_count: i32,
    pub image: String,
    pub image_id: String,
    pub state: ContainerState,
    pub created_at: DateTime<Utc>,
    /// The kernel OOM killer ended the last run.
    pub oom_killed: bool,
}

/// Everything the runtime needs to create one container.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub image: ImageInfo,
    /// OCI runtime spec JSON.
    pub spec: serde_json::Value,
    /// FIFO paths the task's stdout and stderr go to.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub stdin: Option<PathBuf>,
    pub terminal: bool,
}

/// A process to exec in a running container.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub container_id: String,
    pub exec_id: String,
    /// The OCI process spec JSON.
    pub process: serde_json::Value,
    pub stdin: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub terminal: bool,
}

/// Image pull policy as the pod spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Upstream's default: Always for `:latest` or untagged, else IfNotPresent.
    pub fn from_spec(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let last = image.rsplit('/').next().unwrap_or(image);
                if image.contains('@') {
                    PullPolicy::IfNotPresent
                } else if !last.contains(':') || last.ends_with(":latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        }
    }
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `containerd://1.6.20`.
    async fn version(&self) -> Result<String>;
    /// Returns the local image, pulling it as the policy says.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageInfo>;
    /// Creates the container, its rootfs snapshot and its task (not started).
    async fn create_container(&self, cfg: ContainerConfig) -> Result<()>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Sends a signal to the container's init process.
    async fn kill_container(&self, id: &str, signal: u32) -> Result<()>;
    /// Removes task, container and rootfs snapshot; missing parts are fine.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// All containers carrying the pod labels.
    async fn list_containers(&self) -> Result<Vec<ObservedContainer>>;
    /// The containers of one pod, as fresh as [`Runtime::list_containers`].
    async fn list_pod_containers(&self, pod_uid: &str) -> Result<Vec<ObservedContainer>> {
        let all = self.list_containers().await?;
        Ok(all.into_iter().filter(|c| c.pod_uid == pod_uid).collect())
    }
    /// Starts an exec'd process and returns a waiter for its exit code.
    async fn exec(&self, cfg: ExecConfig) -> Result<()>;
    /// Waits for an exec'd process and returns its exit code.
    async fn wait_exec(&self, container_id: &str, exec_id: &str) -> Result<i32>;
    async fn resize_exec(&self, container_id: &str, exec_id: &str, w: u32, h: u32) -> Result<()>;
    /// Closes an exec'd process's stdin: the shim keeps the FIFO open until told.
    async fn close_exec_stdin(&self, container_id: &str, exec_id: &str) -> Result<()>;
    /// For a runtime that holds a container's start until its pod's network
    /// is ready, so that CNI can run while the containers are created. None:
    /// the pod network must be ready before any container is created.
    fn network_gate(&self) -> Option<&network_gate::NetworkGate> {
        None
    }
}
