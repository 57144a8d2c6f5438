//! Pod volumes on the node, one file per volume type (emptyDir, hostPath,
//! configMap and secret, downwardAPI, projected, persistentVolumeClaim), and the container's
//! resolved env and bind mounts.

mod atomic_writer;
mod config_map_secret;
mod downward_api;
mod empty_dir;
mod host_path;
mod persistent_volume_claim;
mod projected;
mod sources;
mod sub_path;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::container::env::{self, EnvError};
use crate::container::spec::BindMount;
use crate::context::Kubelet;
use sources::Fetched;

pub use self::sub_path::sub_path;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    Mount { volume: String, message: String },
    #[error("{0}")]
    Env(#[from] EnvError),
    /// A subPath or subPathExpr that is absolute, steps out, or names a missing variable.
    #[error("failed to prepare subPath for volumeMount \"{volume}\" of container \"{container}\": {message}")]
    SubPath {
        volume: String,
        container: String,
        message: String,
    },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl VolumeError {
    /// The waiting reason the container shows, as upstream.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            VolumeError::Env(_) | VolumeError::SubPath { .. } => "CreateContainerConfigError",
            _ => "ContainerCreating",
        }
    }
    pub fn event_reason(&self) -> &'static str {
        match self {
            VolumeError::Env(_) | VolumeError::SubPath { .. } => "Failed",
            _ => "FailedMount",
        }
    }
}

pub struct Resolved {
    pub env: Vec<(String, String)>,
    pub mounts: Vec<BindMount>,
}

fn volume_dir(k: &Kubelet, uid: &str, name: &str) -> PathBuf {
    k.pod_dir(uid).join("volumes").join(name)
}

/// Sets up one volume's host directory and returns its path.
async fn setup(k: &Kubelet, pod: &Pod, v: &Volume, f: &Fetched) -> Result<PathBuf, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = volume_dir(k, &uid, &v.name);
    if let Some(hp) = &v.host_path {
        return host_path::setup(&v.name, hp);
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        return persistent_volume_claim::setup(k, pod, &v.name, pvc).await;
    }
    if let Some(ed) = &v.empty_dir {
        empty_dir::setup(&v.name, &dir, ed)?;
        return Ok(dir);
    }
    let files = if let Some(cm) = &v.config_map {
        config_map_secret::config_map(f, cm)
    } else if let Some(s) = &v.secret {
        config_map_secret::secret(f, s)
    } else if let Some(da) = &v.downward_api {
        Ok(downward_api::volume(k, pod, da))
    } else if let Some(pr) = &v.projected {
        projected::files(k, pod, pr, f, &dir).await
    } else {
        // Unsupported volume types get an empty directory rather than a crash.
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    };
    let files = files.map_err(|message| VolumeError::Mount {
        volume: v.name.clone(),
        message,
    })?;
    atomic_writer::write_files(&dir, &files)?;
    Ok(dir)
}

/// Sets up the container's volumes and resolves its env.
/// The pod's kubelet-managed /etc/hosts. Written in place (same inode), so a container that
/// already bind-mounts it sees the pod's own line once the network has given the pod its IP:
/// CNI can still be running when the first containers are created.
pub fn write_etc_hosts(k: &Kubelet, pod: &Pod, ip: Option<&str>) -> std::io::Result<()> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    std::fs::write(k.pod_dir(&uid).join("etc-hosts"), crate::container::etc_hosts::hosts_file(pod, ip))
}

pub async fn resolve(k: &Kubelet, pod: &Pod, c: &Container) -> Result<Resolved, VolumeError> {
    let mut f = sources::fetch(k, pod).await;
    f.service_env = sources::fetch_service_env(k, pod).await;
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut volumes = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(v) = spec.volumes.iter().flatten().find(|v| v.name == vm.name) else {
            return Err(VolumeError::Mount {
                volume: vm.name.clone(),
                message: "volume not found in pod spec".into(),
            });
        };
        let host = setup(k, pod, v, &f).await?;
        let read_only = vm.read_only.unwrap_or(false)
            || v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some()
            || v.persistent_volume_claim.as_ref().is_some_and(|c| c.read_only == Some(true));
        volumes.push((vm, host, read_only));
    }
    // Volumes are set up before the env is resolved, as upstream mounts before
    // it generates the container's config; subPathExpr needs the env.
    let env = env::resolve(
        pod,
        c,
        &f,
        &k.node_name,
        &k.node_ip,
        crate::node::capacity::host_cpu_milli(),
        crate::node::capacity::host_memory(),
    )?;
    let mut mounts = Vec::new();
    for (vm, mut host, read_only) in volumes {
        let sp = sub_path::sub_path(vm, &env).map_err(|message| VolumeError::SubPath {
            volume: vm.name.clone(),
            container: c.name.clone(),
            message,
        })?;
        if let Some(sp) = sp {
            host = host.join(sp);
            if !host.exists() {
                std::fs::create_dir_all(&host)?;
            }
        }
        mounts.push(BindMount {
            host_path: host.display().to_string(),
            container_path: vm.mount_path.clone(),
            read_only,
        });
    }
    // Every pod gets an /etc/hosts naming itself, like upstream's kubelet-managed hosts file.
    let hosts = k.pod_dir(&uid).join("etc-hosts");
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .or_else(|| {
            std::fs::read(k.sandbox_file(&uid))
                .ok()
                .and_then(|b| serde_json::from_slice::<crate::context::SandboxState>(&b).ok())
                .map(|s| s.pod_ip)
        });
    write_etc_hosts(k, pod, ip.as_deref())?;
    // /etc/hostname holds the pod's hostname, as the runtime writes it for upstream's sandboxes.
    let hostname = k.pod_dir(&uid).join("hostname");
    std::fs::write(
        &hostname,
        format!("{}\n", crate::container::etc_hosts::hostname(pod)),
    )?;
    let mut files = vec![(hosts, "/etc/hosts"), (hostname, "/etc/hostname")];
    // The sandbox's resolv.conf (network::dns), once it has been written.
    let resolv = crate::network::dns::resolv_conf_path(k, &uid);
    if resolv.exists() {
        files.push((resolv, "/etc/resolv.conf"));
    }
    for (host, path) in files {
        // A volume the user mounts at the same path wins.
        if !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == path)
        {
            mounts.push(BindMount {
                host_path: host.display().to_string(),
                container_path: path.into(),
                read_only: false,
            });
        }
    }
    Ok(Resolved { env, mounts })
}

/// Rewrites the pod's configMap, secret, downwardAPI and projected volumes
/// from the API and the latest pod, as upstream's volume manager does
/// periodically, so that updates reach running containers. Volumes not set up
/// yet are left to [`resolve`]; one whose source is gone keeps its content.
pub async fn refresh(k: &Kubelet, pod: &Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let live: Vec<&Volume> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
        .filter(|v| volume_dir(k, &uid, &v.name).exists())
        .collect();
    if live.is_empty() {
        return;
    }
    let f = sources::fetch(k, pod).await;
    for v in live {
        if let Err(e) = setup(k, pod, v, &f).await {
            tracing::debug!(%uid, volume = %v.name, error = %e, "volume refresh");
        }
    }
}

/// Unmounts memory-backed emptyDirs before the pod dir is removed.
pub async fn teardown(k: &Kubelet, uid: &str) {
    crate::container::termination_message::forget(uid);
    empty_dir::teardown(&k.pod_dir(uid).join("volumes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [sig-storage] Downward API volume should update labels on modification:
    /// a refresh rewrites what a running container sees.
    #[tokio::test]
    async fn refresh_rewrites_set_up_volumes_from_the_latest_pod() {
        let root = tempfile::tempdir().unwrap();
        let k = crate::context::Kubelet::for_tests(
            root.path(),
            std::sync::Arc::new(crate::runtime::fake::FakeRuntime::default()),
            std::sync::Arc::new(crate::network::fake::FakeNetwork::default()),
        );
        let mk = |labels: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": "default", "uid": "u1", "labels": labels},
                "spec": {
                    "volumes": [
                        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                        {"name": "later", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
                    ],
                    "containers": [{"name": "c", "volumeMounts": [{"name": "info", "mountPath": "/i"}]}]
                }
            }))
            .unwrap()
        };
        let p = mk(serde_json::json!({"a": "1"}));
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        resolve(&k, &p, &c).await.unwrap();
        let file = volume_dir(&k, "u1", "info").join("labels");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a=\"1\"");
        refresh(&k, &mk(serde_json::json!({"a": "2"}))).await;
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a=\"2\"");
        // A volume no container has mounted yet is not created by a refresh.
        assert!(!volume_dir(&k, "u1", "later").exists());
    }

    #[test]
    fn sub_path_errors_are_config_errors() {
        let e = VolumeError::SubPath {
            volume: "v".into(),
            container: "c".into(),
            message: "m".into(),
        };
        assert_eq!(e.waiting_reason(), "CreateContainerConfigError");
        assert_eq!(e.event_reason(), "Failed");
    }
}
