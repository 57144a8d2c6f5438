//! An in-memory [`Runtime`] for pod-logic tests.

use std::collections::HashMap;
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

    fn record(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<String> {
        Ok("containerd://fake".into())
    }

    async fn ensure_image(&self, image: &str, _policy: PullPolicy) -> Result<ImageInfo> {
        self.record(format!("pull {image}"));
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
        self.exit(id, 128 + signal as i32);
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
