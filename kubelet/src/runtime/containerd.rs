//! [`Runtime`] backed by containerd's gRPC services.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use containerd_client::services::v1::{
    container::Runtime as ContainerRuntime,
    containers_client::ContainersClient,
    snapshots::{
        snapshots_client::SnapshotsClient, MountsRequest, PrepareSnapshotRequest,
        RemoveSnapshotRequest,
    },
    tasks_client::TasksClient,
    version_client::VersionClient,
    CloseIoRequest, Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetRequest, KillRequest,
    ListContainersRequest, ListTasksRequest, ResizePtyRequest, StartRequest,
    UpdateContainerRequest, WaitRequest,
};
use containerd_client::types::v1::{Process, Status as ProcStatus};
use tonic::transport::Channel;
use tonic::Code;

use super::image_pull::{self, ns, SNAPSHOTTER};
use super::network_gate::NetworkGate;
use super::runtime_cache::RuntimeCache;
use super::*;
use crate::runtime::image_ref::Mirrors;

const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

pub struct Containerd {
    socket: PathBuf,
    channel: tokio::sync::RwLock<Option<Channel>>,
    mirrors: Mirrors,
    /// Serialises pulls of the same image so that concurrent pods share one download.
    pull_locks: tokio::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    images: image_pull::ImageCache,
    containers: RuntimeCache<Vec<ObservedContainer>>,
    network: NetworkGate,
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t.as_ref()?;
    let d = DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32)?;
    // containerd reports the zero time as year 1.
    (d.timestamp() > 0).then_some(d)
}

/// cgroup v1 keeps the OOM kill count until the task is deleted.
fn oom_killed(pod_uid: &str, id: &str) -> bool {
    let p = format!("/sys/fs/cgroup/memory/kubepods/pod{pod_uid}/{id}/memory.oom_control");
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
        })
        .is_some_and(|n| n > 0)
}

fn ignore_not_found(r: std::result::Result<(), tonic::Status>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(s.into()),
    }
}

impl Containerd {
    pub fn new(socket: impl AsRef<Path>, mirrors: Mirrors) -> Self {
        Containerd {
            socket: socket.as_ref().to_path_buf(),
            channel: tokio::sync::RwLock::new(None),
            mirrors,
            pull_locks: Default::default(),
            images: Default::default(),
            containers: Default::default(),
            network: Default::default(),
        }
    }

    /// The gRPC channel, reconnected lazily: containerd may be restarted under us.
    async fn ch(&self) -> Result<Channel> {
        if let Some(c) = self.channel.read().await.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            Duration::from_secs(5),
            containerd_client::connect(&self.socket),
        )
        .await
        .map_err(|_| RuntimeError::Unavailable("connect timed out".into()))?
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        *self.channel.write().await = Some(c.clone());
        Ok(c)
    }

    /// Drops the cached channel after a transport failure.
    async fn on_err<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(RuntimeError::Grpc(s)) = &r {
            if s.code() == Code::Unavailable || s.code() == Code::Unknown {
                *self.channel.write().await = None;
            }
        }
        r
    }

    pub async fn channel(&self) -> Result<Channel> {
        self.ch().await
    }

    async fn create_inner(&self, cfg: ContainerConfig) -> Result<()> {
        let ch = self.ch().await?;
        let t = std::time::Instant::now();
        let mounts = SnapshotsClient::new(ch.clone())
            .prepare(ns(PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: cfg.id.clone(),
                parent: cfg.image.chain_id.clone(),
                labels: HashMap::new(),
            }))
            .await;
        let mounts = match mounts {
            Ok(m) => m.into_inner().mounts,
            Err(s) if s.code() == Code::AlreadyExists => {
                SnapshotsClient::new(ch.clone())
                    .mounts(ns(MountsRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: cfg.id.clone(),
                    }))
                    .await?
                    .into_inner()
                    .mounts
            }
            Err(s) => return Err(s.into()),
        };
        let prepared = t.elapsed();
        let spec = prost_types::Any {
            type_url: SPEC_TYPE.into(),
            value: serde_json::to_vec(&cfg.spec).map_err(|e| RuntimeError::Other(e.to_string()))?,
        };
        let container = Container {
            id: cfg.id.clone(),
            labels: cfg.labels.clone(),
            image: cfg.image.name.clone(),
            runtime: Some(ContainerRuntime {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            spec: Some(spec),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: cfg.id.clone(),
            ..Default::default()
        };
        match ContainersClient::new(ch.clone())
            .create(ns(CreateContainerRequest {
                container: Some(container),
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(s.into()),
        }
        let created = t.elapsed();
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        TasksClient::new(ch)
            .create(ns(CreateTaskRequest {
                container_id: cfg.id.clone(),
                rootfs: mounts,
                stdin: path(&cfg.stdin),
                stdout: cfg.stdout.display().to_string(),
                stderr: if cfg.terminal {
                    String::new()
                } else {
                    cfg.stderr.display().to_string()
                },
                terminal: cfg.terminal,
                ..Default::default()
            }))
            .await
            .map_err(|s| RuntimeError::Start(s.message().to_string()))?;
        tracing::debug!(id = %cfg.id, snapshot_ms = prepared.as_millis(), container_ms = (created - prepared).as_millis(),
            task_ms = (t.elapsed() - created).as_millis(), "container created");
        Ok(())
    }

    async fn list_inner(&self) -> Result<Vec<ObservedContainer>> {
        let ch = self.ch().await?;
        let t = std::time::Instant::now();
        let containers = ContainersClient::new(ch.clone())
            .list(ns(ListContainersRequest {
                filters: vec![format!("labels.\"{LABEL_POD_UID}\"")],
            }))
            .await?
            .into_inner()
            .containers;
        let tasks = TasksClient::new(ch)
            .list(ns(ListTasksRequest {
                filter: String::new(),
            }))
            .await?
            .into_inner()
            .tasks;
        // containerd 1.6 fills only `id` (= the container ID) for init processes.
        let tasks: HashMap<String, _> = tasks
            .into_iter()
            .map(|t| {
                (
                    if t.container_id.is_empty() {
                        t.id.clone()
                    } else {
                        t.container_id.clone()
                    },
                    t,
                )
            })
            .collect();
        let out: Vec<ObservedContainer> = containers
            .into_iter()
            .map(|c| {
                let task = tasks.get(&c.id);
                observed(c, task)
            })
            .collect();
        tracing::debug!(
            containers = out.len(),
            ms = t.elapsed().as_millis(),
            "containers listed"
        );
        Ok(out)
    }

    /// One pod's containers, asking only their own shims for task state:
    /// listing every task waits on every shim, the slowest of a burst included.
    async fn list_pod_inner(&self, pod_uid: &str) -> Result<Vec<ObservedContainer>> {
        let ch = self.ch().await?;
        let containers = ContainersClient::new(ch.clone())
            .list(ns(ListContainersRequest {
                filters: vec![format!("labels.\"{LABEL_POD_UID}\"=={pod_uid:?}")],
            }))
            .await?
            .into_inner()
            .containers;
        let mut out = Vec::with_capacity(containers.len());
        for c in containers {
            let task = TasksClient::new(ch.clone())
                .get(ns(GetRequest {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                }))
                .await;
            let task = match task {
                Ok(r) => r.into_inner().process,
                Err(s) if s.code() == Code::NotFound => None,
                Err(s) => return Err(s.into()),
            };
            out.push(observed(c, task.as_ref()));
        }
        Ok(out)
    }
}

/// A container and its task (if any) as the pod logic sees them.
fn observed(c: Container, task: Option<&Process>) -> ObservedContainer {
    let l = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let started_at = c
        .labels
        .get(LABEL_STARTED_AT)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let state = match task {
        None => ContainerState::Unknown,
        Some(t) => match ProcStatus::try_from(t.status).unwrap_or(ProcStatus::Unknown) {
            ProcStatus::Created => ContainerState::Created,
            ProcStatus::Running | ProcStatus::Paused | ProcStatus::Pausing => {
                ContainerState::Running {
                    started_at: started_at.unwrap_or_else(Utc::now),
                }
            }
            ProcStatus::Stopped => ContainerState::Exited {
                exit_code: t.exit_status as i32,
                started_at,
                finished_at: ts(&t.exited_at).unwrap_or_else(Utc::now),
            },
            ProcStatus::Unknown => ContainerState::Unknown,
        },
    };
    let oom_killed = matches!(state, ContainerState::Exited { exit_code: 137, .. })
        && oom_killed(&l(LABEL_POD_UID), &c.id);
    ObservedContainer {
        pod_uid: l(LABEL_POD_UID),
        pod_name: l(LABEL_POD_NAME),
        pod_namespace: l(LABEL_POD_NAMESPACE),
        name: l(LABEL_CONTAINER_NAME),
        restart_count: l(LABEL_RESTART_COUNT).parse().unwrap_or(0),
        image: c
            .labels
            .get(LABEL_IMAGE)
            .cloned()
            .unwrap_or(c.image.clone()),
        image_id: c.labels.get(LABEL_IMAGE_ID).cloned().unwrap_or_default(),
        state,
        created_at: ts(&c.created_at).unwrap_or_else(Utc::now),
        oom_killed,
        id: c.id,
    }
}

#[async_trait::async_trait]
impl Runtime for Containerd {
    async fn version(&self) -> Result<String> {
        let ch = self.ch().await?;
        let r = VersionClient::new(ch)
            .version(())
            .await
            .map_err(RuntimeError::from);
        let v = self.on_err(r).await?.into_inner();
        Ok(format!(
            "containerd://{}",
            v.version.trim_start_matches('v')
        ))
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageInfo> {
        let ch = self.ch().await?;
        // A present image needs no lock: a burst of pods looks it up at once.
        if policy != PullPolicy::Always {
            let t = std::time::Instant::now();
            let r = image_pull::local(&ch, image, &self.images).await;
            if let Some(info) = self.on_err(r).await? {
                tracing::debug!(image, ms = t.elapsed().as_millis(), "image present");
                return Ok(info);
            }
            if policy == PullPolicy::Never {
                return Err(RuntimeError::ImageNeverPull(image.to_string()));
            }
        }
        let lock = {
            let mut locks = self.pull_locks.lock().await;
            locks.entry(image.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if policy != PullPolicy::Always {
            // Another pod may have pulled it while this one waited for the lock.
            let r = image_pull::local(&ch, image, &self.images).await;
            if let Some(info) = self.on_err(r).await? {
                return Ok(info);
            }
        }
        let r = image_pull::pull(&ch, &self.mirrors, image).await;
        self.images.forget(image);
        self.on_err(r).await
    }

    async fn create_container(&self, cfg: ContainerConfig) -> Result<()> {
        if let Some(uid) = cfg.labels.get(LABEL_POD_UID) {
            self.network.owner(&cfg.id, uid);
        }
        let r = self.create_inner(cfg).await;
        self.on_err(r).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.network
            .wait(id)
            .await
            .map_err(|m| RuntimeError::Other(format!("pod network not ready: {m}")))?;
        let ch = self.ch().await?;
        let t = std::time::Instant::now();
        TasksClient::new(ch.clone())
            .start(ns(StartRequest {
                container_id: id.into(),
                exec_id: String::new(),
            }))
            .await
            .map_err(|s| RuntimeError::Start(s.message().to_string()))?;
        let started = t.elapsed();
        let mut labels = HashMap::new();
        labels.insert(LABEL_STARTED_AT.to_string(), Utc::now().to_rfc3339());
        let r = ContainersClient::new(ch)
            .update(ns(UpdateContainerRequest {
                container: Some(Container {
                    id: id.into(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![format!("labels.{LABEL_STARTED_AT}")],
                }),
            }))
            .await
            .map(|_| ())
            .map_err(RuntimeError::from);
        tracing::debug!(%id, start_ms = started.as_millis(), label_ms = (t.elapsed() - started).as_millis(), "task started");
        self.on_err(r).await
    }

    async fn kill_container(&self, id: &str, signal: u32) -> Result<()> {
        let ch = self.ch().await?;
        let r = TasksClient::new(ch)
            .kill(ns(KillRequest {
                container_id: id.into(),
                exec_id: String::new(),
                signal,
                all: false,
            }))
            .await
            .map(|_| ());
        match r {
            // The process already exited.
            Err(s) if s.code() == Code::FailedPrecondition => Ok(()),
            other => self.on_err(ignore_not_found(other)).await,
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let ch = self.ch().await?;
        let mut tasks = TasksClient::new(ch.clone());
        let killed = tasks
            .kill(ns(KillRequest {
                container_id: id.into(),
                exec_id: String::new(),
                signal: 9,
                all: true,
            }))
            .await;
        if killed.is_ok() {
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                tasks.wait(ns(WaitRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                })),
            )
            .await;
        }
        ignore_not_found(
            tasks
                .delete(ns(DeleteTaskRequest {
                    container_id: id.into(),
                }))
                .await
                .map(|_| ()),
        )?;
        ignore_not_found(
            ContainersClient::new(ch.clone())
                .delete(ns(DeleteContainerRequest { id: id.into() }))
                .await
                .map(|_| ()),
        )?;
        ignore_not_found(
            SnapshotsClient::new(ch)
                .remove(ns(RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: id.into(),
                }))
                .await
                .map(|_| ()),
        )
    }

    async fn list_containers(&self) -> Result<Vec<ObservedContainer>> {
        let all = self
            .containers
            .get(|| async {
                let r = self.list_inner().await;
                self.on_err(r).await
            })
            .await?;
        Ok(all.as_ref().clone())
    }

    async fn list_pod_containers(&self, pod_uid: &str) -> Result<Vec<ObservedContainer>> {
        let r = self.list_pod_inner(pod_uid).await;
        self.on_err(r).await
    }

    async fn exec(&self, cfg: ExecConfig) -> Result<()> {
        let ch = self.ch().await?;
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut tasks = TasksClient::new(ch);
        tasks
            .exec(ns(ExecProcessRequest {
                container_id: cfg.container_id.clone(),
                stdin: path(&cfg.stdin),
                stdout: path(&cfg.stdout),
                stderr: path(&cfg.stderr),
                terminal: cfg.terminal,
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE.into(),
                    value: serde_json::to_vec(&cfg.process)
                        .map_err(|e| RuntimeError::Other(e.to_string()))?,
                }),
                exec_id: cfg.exec_id.clone(),
            }))
            .await?;
        if let Err(s) = tasks
            .start(ns(StartRequest {
                container_id: cfg.container_id.clone(),
                exec_id: cfg.exec_id.clone(),
            }))
            .await
        {
            let _ = tasks
                .delete_process(ns(DeleteProcessRequest {
                    container_id: cfg.container_id,
                    exec_id: cfg.exec_id,
                }))
                .await;
            return Err(RuntimeError::Start(s.message().to_string()));
        }
        Ok(())
    }

    async fn wait_exec(&self, container_id: &str, exec_id: &str) -> Result<i32> {
        let ch = self.ch().await?;
        let mut tasks = TasksClient::new(ch);
        let r = tasks
            .wait(ns(WaitRequest {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
            }))
            .await?
            .into_inner();
        let _ = tasks
            .delete_process(ns(DeleteProcessRequest {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
            }))
            .await;
        Ok(r.exit_status as i32)
    }

    fn network_gate(&self) -> Option<&NetworkGate> {
        Some(&self.network)
    }

    async fn close_exec_stdin(&self, container_id: &str, exec_id: &str) -> Result<()> {
        let ch = self.ch().await?;
        TasksClient::new(ch)
            .close_io(ns(CloseIoRequest {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                stdin: true,
            }))
            .await?;
        Ok(())
    }

    async fn resize_exec(&self, container_id: &str, exec_id: &str, w: u32, h: u32) -> Result<()> {
        let ch = self.ch().await?;
        TasksClient::new(ch)
            .resize_pty(ns(ResizePtyRequest {
                container_id: container_id.into(),
                exec_id: exec_id.into(),
                width: w,
                height: h,
            }))
            .await?;
        Ok(())
    }
}
