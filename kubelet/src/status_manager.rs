//! Keeps the last status written per pod and PATCHes pods/status only when
//! it changed (strategic merge patch with metadata.uid as a precondition).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("patching pod status: {0}")]
    Patch(#[from] kube::Error),
}

/// Sink for pod status writes; the API client in production, a recorder in tests.
#[async_trait::async_trait]
pub trait StatusWriter: Send + Sync + 'static {
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), StatusError>;
}

pub struct ApiStatusWriter(pub kube::Client);

#[async_trait::async_trait]
impl StatusWriter for ApiStatusWriter {
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        status: &PodStatus,
    ) -> Result<(), StatusError> {
        let api: Api<Pod> = Api::namespaced(self.0.clone(), namespace);
        let body = json!({"metadata": {"uid": uid}, "status": status});
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(body))
            .await?;
        Ok(())
    }
}

/// Drops every write: for unit tests that read statuses from the manager.
#[cfg(test)]
pub(crate) struct Discard;

#[cfg(test)]
#[async_trait::async_trait]
impl StatusWriter for Discard {
    async fn patch_status(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &PodStatus,
    ) -> Result<(), StatusError> {
        Ok(())
    }
}

/// Versioned status per pod UID.
pub struct StatusManager {
    writer: Box<dyn StatusWriter>,
    last: Mutex<HashMap<String, (u64, serde_json::Value)>>,
}

impl StatusManager {
    pub fn new(writer: Box<dyn StatusWriter>) -> Self {
        StatusManager {
            writer,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Writes `status` unless it equals the last one written; returns whether it wrote.
    pub async fn set(&self, pod: &Pod, status: &PodStatus) -> Result<bool, StatusError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let v = serde_json::to_value(status).unwrap_or_default();
        {
            let last = self.last.lock().await;
            if last.get(&uid).is_some_and(|(_, s)| *s == v) {
                return Ok(false);
            }
        }
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.writer.patch_status(&ns, &name, &uid, status).await?;
        let mut last = self.last.lock().await;
        let version = last.get(&uid).map(|(n, _)| n + 1).unwrap_or(1);
        last.insert(uid, (version, v));
        Ok(true)
    }

    /// The last status written for a pod, for /pods.
    pub async fn get(&self, uid: &str) -> Option<PodStatus> {
        let last = self.last.lock().await;
        last.get(uid)
            .and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
    }

    pub async fn forget(&self, uid: &str) {
        self.last.lock().await.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    #[derive(Default, Clone)]
    struct Recorder(Arc<StdMutex<Vec<PodStatus>>>);

    #[async_trait::async_trait]
    impl StatusWriter for Recorder {
        async fn patch_status(
            &self,
            _: &str,
            _: &str,
            _: &str,
            s: &PodStatus,
        ) -> Result<(), StatusError> {
            self.0.lock().unwrap().push(s.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_only_on_change() {
        let rec = Recorder::default();
        let m = StatusManager::new(Box::new(rec.clone()));
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u".into());
        let s1 = PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        };
        assert!(m.set(&pod, &s1).await.unwrap());
        assert!(!m.set(&pod, &s1).await.unwrap());
        let s2 = PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        assert!(m.set(&pod, &s2).await.unwrap());
        assert_eq!(rec.0.lock().unwrap().len(), 2);
        assert_eq!(m.get("u").await.unwrap().phase.as_deref(), Some("Running"));
    }
}
