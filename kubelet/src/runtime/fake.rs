//! An in-memory [`Runtime`] for pod-logic tests.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::Utc;

use super::*;

#[derive(Default)]
pub struct FakeRuntime {
    pub containers: Mutex<HashMap<String, ObservedContainer>>,
    /// Images that exist; anything else fails to pull.
    pub images: Mutex<HashMap<String, ImageInfo>>,
    /// Calls made, in order, for assertions.
    pub calls: Mutex<Vec<String>>,
    /// Names of the containers created, in order.
    pub created: Mutex<Vec<String>>,
    /// Container names whose process ignores SIGTERM, so only SIGKILL stops them.
    pub ignore_sigterm: Mutex<HashSet<String>>,
    /// Held for writing, it keeps image pulls waiting: a sync caught midway.
    pub pull_gate: tokio::sync::RwLock<()>,
    /// Woken on every call, for [`FakeRuntime::wait_for`].
    changed: tokio::sync::Notify,
}

impl FakeRuntime {
    pub fn with_image(name: &str) -> Self {
        let f = FakeRuntime::default();
        f.images.lock().unwrap().insert(
            name.to_string(),
            ImageInfo {
                name: name.into(),
                image_id: format!("{name}@sha256:0"),
                ..Default::default()
            },
        );
        f
    }

    /// Makes a running container exit, as if its process ended.
    pub fn exit(&self, id: &str, code: i32) {
        if let Some(c) = self.containers.lock().unwrap().get_mut(id) {
            let started_at = match c.state {
                ContainerState::Running { started_at } => Some(started_at),
                _ => None,
            };
            c.state = ContainerState::Exited {
                exit_code: code,
                started_at,
                finished_at: Utc::now(),
            };
        }
    }

    /// Waits until `done` holds for the calls made so far.
    pub async fn wait_for(&self, done: impl Fn(&[String]) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so no call slips in between.
            changed.as_mut().enable();
            if done(&self.calls.lock().unwrap()) {
                return;
            }
            changed.await;
        }
    }

    fn record(&self, s: String) {
        self.calls.lock().unwrap().push(s);
        self.changed.notify_waiters();
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<String> {
        Ok("containerd://fake".into())
    }

    async fn ensure_image(&self, image: &str, _policy: PullPolicy) -> Result<ImageInfo> {
        self.record(format!("pull {image}"));
        let _held = self.pull_gate.read().await;
        self.images
            .lock()
            .unwrap()
            .get(image)
            .cloned()
            .ok_or_else(|| RuntimeError::Pull {
                image: image.into(),
                message: "not found".into(),
            })
    }

    async fn create_container(&self, cfg: ContainerConfig) -> Result<()> {
        self.record(format!("create {}", cfg.id));
        let l = |k: &str| cfg.labels.get(k).cloned().unwrap_or_default();
        self.created.lock().unwrap().push(l(LABEL_CONTAINER_NAME));
        self.containers.lock().unwrap().insert(
            cfg.id.clone(),
            ObservedContainer {
                id: cfg.id.clone(),
                pod_uid: l(LABEL_POD_UID),
                pod_name: l(LABEL_POD_NAME),
                pod_namespace: l(LABEL_POD_NAMESPACE),
                name: l(LABEL_CONTAINER_NAME),
                restart_count: l(LABEL_RESTART_COUNT).parse().unwrap_or(0),
                image: l(LABEL_IMAGE),
                image_id: cfg.image.image_id.clone(),
                state: ContainerState::Created,
                created_at: Utc::now(),
                oom_killed: false,
            },
        );
        Ok(())
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.record(format!("start {id}"));
        let mut cs = self.containers.lock().unwrap();
        let c = cs
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        c.state = ContainerState::Running {
            started_at: Utc::now(),
        };
        Ok(())
    }

    async fn kill_container(&self, id: &str, signal: u32) -> Result<()> {
        self.record(format!("kill {id} {signal}"));
        let name = self
            .containers
            .lock()
            .unwrap()
            .get(id)
            .map(|c| c.name.clone());
        let ignored =
            signal == 15 && name.is_some_and(|n| self.ignore_sigterm.lock().unwrap().contains(&n));
        if !ignored {
            self.exit(id, 128 + signal as i32);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.record(format!("remove {id}"));
        self.containers.lock().unwrap().remove(id);
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<ObservedContainer>> {
        Ok(self.containers.lock().unwrap().values().cloned().collect())
    }

    async fn exec(&self, cfg: ExecConfig) -> Result<()> {
        self.record(format!("exec {}", cfg.container_id));
        Ok(())
    }

    async fn wait_exec(&self, _c: &str, _e: &str) -> Result<i32> {
        Ok(0)
    }

    async fn resize_exec(&self, _c: &str, _e: &str, _w: u32, _h: u32) -> Result<()> {
        Ok(())
    }

    async fn close_exec_stdin(&self, _c: &str, _e: &str) -> Result<()> {
        Ok(())
    }
}
