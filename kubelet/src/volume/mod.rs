//! Pod volumes on the node (emptyDir, hostPath, configMap, secret,
//! downwardAPI, projected) and the container's resolved env.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Service, Volume};
use kube::api::Api;

use crate::container_spec::BindMount;
use crate::context::Kubelet;
use crate::env::{self, EnvError, Sources};

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

/// A ConfigMap's or Secret's content, as env sees it and as files hold it.
#[derive(Debug, Clone, Default)]
struct SourceData {
    /// For env: a ConfigMap's `data` (not `binaryData`, as upstream), a Secret's values.
    text: BTreeMap<String, String>,
    /// For volumes: every key, bytes untouched (binaryData, binary secrets).
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct Fetched {
    config_maps: BTreeMap<String, Option<SourceData>>,
    secrets: BTreeMap<String, Option<SourceData>>,
    service_env: Vec<(String, String)>,
}

impl Fetched {
    fn config_map_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        Some(self.config_maps.get(name)?.as_ref()?.files.clone())
    }
    fn secret_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        Some(self.secrets.get(name)?.as_ref()?.files.clone())
    }
}

impl Sources for Fetched {
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
        Some(self.config_maps.get(name)?.as_ref()?.text.clone())
    }
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
        Some(self.secrets.get(name)?.as_ref()?.text.clone())
    }
    fn service_env(&self) -> Vec<(String, String)> {
        self.service_env.clone()
    }
}

/// The pod's service variables; none without an API client or on API errors
/// (a container still starts, as upstream with an unsynced service lister).
async fn fetch_service_env(k: &Kubelet, pod: &Pod) -> Vec<(String, String)> {
    let Some(client) = k.client.clone() else {
        return Vec::new();
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let in_ns = if links {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        api.list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let api: Api<Service> = Api::namespaced(client, "default");
    let kubernetes = api.get_opt("kubernetes").await.ok().flatten();
    crate::service_env::from_services(&crate::service_env::select(pod, in_ns, kubernetes))
}

async fn fetch_config_map(k: &Kubelet, ns: &str, name: &str) -> Option<SourceData> {
    let api: Api<ConfigMap> = Api::namespaced(k.client.clone()?, ns);
    let cm = api.get_opt(name).await.ok().flatten()?;
    let text = cm.data.unwrap_or_default();
    let mut files: BTreeMap<String, Vec<u8>> = text
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    files.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    Some(SourceData { text, files })
}

async fn fetch_secret(k: &Kubelet, ns: &str, name: &str) -> Option<SourceData> {
    let api: Api<Secret> = Api::namespaced(k.client.clone()?, ns);
    let s = api.get_opt(name).await.ok().flatten()?;
    let mut files: BTreeMap<String, Vec<u8>> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    files.extend(
        s.string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    let text = files
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    Some(SourceData { text, files })
}

/// Fetches every ConfigMap and Secret the pod refers to.
async fn fetch(k: &Kubelet, pod: &Pod) -> Fetched {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = pod.spec.clone().unwrap_or_default();
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for ef in c.env_from.iter().flatten() {
            cms.extend(ef.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(ef.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                cms.extend(vf.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(vf.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(p.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(p.secret.as_ref().map(|s| s.name.clone()));
        }
    }
    let mut f = Fetched::default();
    use std::collections::btree_map::Entry;
    for n in cms {
        if let Entry::Vacant(e) = f.config_maps.entry(n) {
            let v = fetch_config_map(k, &ns, e.key()).await;
            e.insert(v);
        }
    }
    for n in secrets {
        if let Entry::Vacant(e) = f.secrets.entry(n) {
            let v = fetch_secret(k, &ns, e.key()).await;
            e.insert(v);
        }
    }
    f
}

fn volume_dir(k: &Kubelet, uid: &str, name: &str) -> PathBuf {
    k.pod_dir(uid).join("volumes").join(name)
}

/// Writes `files` (relative path → content) into `dir`, replacing what was
/// there: each file through a rename, so a reader never sees it half written,
/// and files no longer listed are removed.
fn write_files(dir: &Path, files: &[VolumeFile]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut keep = std::collections::HashSet::new();
    for (rel, data, mode) in files {
        // Refuse paths that would escape the volume.
        if rel.split('/').any(|p| p == "..") || rel.starts_with('/') {
            continue;
        }
        let p = dir.join(rel);
        keep.insert(p.clone());
        let mode = std::fs::Permissions::from_mode(mode.unwrap_or(0o644) as u32 & 0o777);
        if std::fs::read(&p).is_ok_and(|old| old == *data) {
            std::fs::set_permissions(&p, mode)?;
            continue;
        }
        let parent = p.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".{}.tmp",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&tmp, data)?;
        std::fs::set_permissions(&tmp, mode)?;
        std::fs::rename(&tmp, &p)?;
    }
    remove_unlisted(dir, &keep)
}

fn remove_unlisted(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if e.file_type()?.is_dir() {
            remove_unlisted(&p, keep)?;
        } else if !keep.contains(&p) {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// A file of a projected-style volume: relative path, content, mode.
type VolumeFile = (String, Vec<u8>, Option<i32>);

fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    match items {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|i| match data.get(&i.key) {
                Some(v) => Ok((i.path.clone(), v.clone(), i.mode.or(default_mode))),
                None => Err(format!(
                    "configmap references non-existent config key: {}",
                    i.key
                )),
            })
            .collect(),
        _ => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

/// One downward API file: a field of the pod, or a resource of one of its
/// containers (limits default to the node's allocatable, as upstream).
fn downward_item(
    k: &Kubelet,
    pod: &Pod,
    i: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
) -> Option<String> {
    if let Some(fr) = &i.field_ref {
        return Some(
            env::field_value(pod, &fr.field_path, &k.node_name, &k.node_ip).unwrap_or_default(),
        );
    }
    let r = i.resource_field_ref.as_ref()?;
    Some(downward_resource(pod, r, host_cpu_milli(), host_memory()))
}

/// A resourceFieldRef in a volume names its container (the API requires it).
fn downward_resource(
    pod: &Pod,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    node_cpu_milli: i64,
    node_mem: i64,
) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let c = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| Some(&c.name) == r.container_name.as_ref())
        .cloned()
        .unwrap_or_default();
    env::resource_value(
        &c,
        &r.resource,
        r.divisor.as_ref().map(|d| d.0.as_str()),
        node_cpu_milli,
        node_mem,
    )
}

/// Sets up one volume's host directory and returns its path.
async fn setup(k: &Kubelet, pod: &Pod, v: &Volume, f: &Fetched) -> Result<PathBuf, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = volume_dir(k, &uid, &v.name);
    let err = |message: String| VolumeError::Mount {
        volume: v.name.clone(),
        message,
    };
    if let Some(hp) = &v.host_path {
        let p = PathBuf::from(&hp.path);
        match hp.type_.as_deref() {
            Some("DirectoryOrCreate") => std::fs::create_dir_all(&p)?,
            Some("FileOrCreate") if !p.exists() => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&p, b"")?;
            }
            Some("Directory") if !p.is_dir() => {
                return Err(err(format!(
                    "hostPath type check failed: {} is not a directory",
                    hp.path
                )))
            }
            Some("File") if !p.is_file() => {
                return Err(err(format!(
                    "hostPath type check failed: {} is not a file",
                    hp.path
                )))
            }
            _ => {}
        }
        return Ok(p);
    }
    if let Some(ed) = &v.empty_dir {
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            if ed.medium.as_deref() == Some("Memory") {
                let size = ed
                    .size_limit
                    .as_ref()
                    .and_then(|q| apimachinery::Quantity::from_api(q).ok())
                    .map(|q| q.value());
                let opts = size.map(|s| format!("size={s}"));
                nix::mount::mount(
                    Some("tmpfs"),
                    &dir,
                    Some("tmpfs"),
                    nix::mount::MsFlags::empty(),
                    opts.as_deref(),
                )
                .map_err(|e| err(e.to_string()))?;
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        return Ok(dir);
    }
    let mut files = Vec::new();
    if let Some(cm) = &v.config_map {
        match f.config_map_files(&cm.name) {
            Some(d) => files = key_files(&d, cm.items.as_ref(), cm.default_mode).map_err(err)?,
            None if cm.optional == Some(true) => {}
            None => return Err(err(format!("configmap \"{}\" not found", cm.name))),
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        match f.secret_files(&name) {
            Some(d) => files = key_files(&d, s.items.as_ref(), s.default_mode).map_err(err)?,
            None if s.optional == Some(true) => {}
            None => return Err(err(format!("secret \"{name}\" not found"))),
        }
    } else if let Some(da) = &v.downward_api {
        for i in da.items.iter().flatten() {
            if let Some(val) = downward_item(k, pod, i) {
                files.push((i.path.clone(), val.into_bytes(), i.mode.or(da.default_mode)));
            }
        }
    } else if let Some(pr) = &v.projected {
        for src in pr.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                match f.config_map_files(&cm.name) {
                    Some(d) => files
                        .extend(key_files(&d, cm.items.as_ref(), pr.default_mode).map_err(err)?),
                    None if cm.optional == Some(true) => {}
                    None => return Err(err(format!("configmap \"{}\" not found", cm.name))),
                }
            }
            if let Some(s) = &src.secret {
                match f.secret_files(&s.name) {
                    Some(d) => {
                        files.extend(key_files(&d, s.items.as_ref(), pr.default_mode).map_err(err)?)
                    }
                    None if s.optional == Some(true) => {}
                    None => return Err(err(format!("secret \"{}\" not found", s.name))),
                }
            }
            if let Some(da) = &src.downward_api {
                for i in da.items.iter().flatten() {
                    if let Some(val) = downward_item(k, pod, i) {
                        files.push((i.path.clone(), val.into_bytes(), i.mode.or(pr.default_mode)));
                    }
                }
            }
        }
    } else {
        // Unsupported volume types get an empty directory rather than a crash.
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    write_files(&dir, &files)?;
    Ok(dir)
}

fn host_cpu_milli() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64 * 1000)
        .unwrap_or(1000)
}

fn host_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The subpath a mount uses: subPathExpr expanded from the container's env
/// (every variable must be set and non-empty), else subPath; it must stay
/// inside the volume. The messages are upstream's.
pub fn sub_path(
    vm: &k8s_openapi::api::core::v1::VolumeMount,
    env: &[(String, String)],
) -> Result<Option<String>, String> {
    let sp = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => {
            let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
            let v = env::expand_with(expr, |name| {
                let v = env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty());
                if v.is_none() {
                    missing.borrow_mut().insert(name.to_string());
                }
                Some(v.unwrap_or_default())
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                let names: Vec<String> = missing.into_iter().collect();
                return Err(format!("missing value for {}", names.join(", ")));
            }
            v
        }
        None => vm.sub_path.clone().unwrap_or_default(),
    };
    if sp.is_empty() {
        return Ok(None);
    }
    if sp.starts_with('/') {
        return Err(format!("error SubPath `{sp}` must not be an absolute path"));
    }
    if sp.split('/').any(|p| p == "..") {
        return Err(format!(
            "unable to provision SubPath `{sp}`: must not contain '..'"
        ));
    }
    Ok(Some(sp))
}

/// Sets up the container's volumes and resolves its env.
pub async fn resolve(k: &Kubelet, pod: &Pod, c: &Container) -> Result<Resolved, VolumeError> {
    let mut f = fetch(k, pod).await;
    f.service_env = fetch_service_env(k, pod).await;
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
            || v.projected.is_some();
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
        host_cpu_milli(),
        host_memory(),
    )?;
    let mut mounts = Vec::new();
    for (vm, mut host, read_only) in volumes {
        let sp = sub_path(vm, &env).map_err(|message| VolumeError::SubPath {
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
    std::fs::write(&hosts, crate::etc_hosts::hosts_file(pod, ip.as_deref()))?;
    // /etc/hostname holds the pod's hostname, as the runtime writes it for upstream's sandboxes.
    let hostname = k.pod_dir(&uid).join("hostname");
    std::fs::write(&hostname, format!("{}\n", crate::etc_hosts::hostname(pod)))?;
    for (host, path) in [(hosts, "/etc/hosts"), (hostname, "/etc/hostname")] {
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
    let f = fetch(k, pod).await;
    for v in live {
        if let Err(e) = setup(k, pod, v, &f).await {
            tracing::debug!(%uid, volume = %v.name, error = %e, "volume refresh");
        }
    }
}

/// Unmounts memory-backed emptyDirs before the pod dir is removed.
pub async fn teardown(k: &Kubelet, uid: &str) {
    crate::termination_message::forget(uid);
    let dir = k.pod_dir(uid).join("volumes");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn node_capacity() -> (i64, i64) {
    (host_cpu_milli(), host_memory())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn mount(sub_path: Option<&str>, expr: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: "v".into(),
            mount_path: "/m".into(),
            sub_path: sub_path.map(Into::into),
            sub_path_expr: expr.map(Into::into),
            ..Default::default()
        }
    }

    /// [sig-node] Variable Expansion should allow substituting values in a
    /// volume subpath, and should fail with an absolute path or backsteps.
    #[test]
    fn sub_path_expr_expands_from_the_env_and_stays_inside() {
        let env = vec![
            ("POD_NAME".to_string(), "web-0".to_string()),
            ("ABS".to_string(), "/tmp".to_string()),
            ("UP".to_string(), "..".to_string()),
            ("EMPTY".to_string(), String::new()),
        ];
        assert_eq!(
            sub_path(&mount(None, Some("logs/$(POD_NAME)")), &env),
            Ok(Some("logs/web-0".into()))
        );
        assert_eq!(
            sub_path(&mount(Some("plain"), None), &env),
            Ok(Some("plain".into()))
        );
        assert_eq!(sub_path(&mount(None, None), &env), Ok(None));
        assert_eq!(
            sub_path(&mount(None, Some("$(ABS)")), &env),
            Err("error SubPath `/tmp` must not be an absolute path".into())
        );
        assert!(sub_path(&mount(None, Some("$(UP)")), &env)
            .unwrap_err()
            .contains("must not contain '..'"));
        assert_eq!(
            sub_path(&mount(None, Some("$(NOPE)/$(EMPTY)")), &env),
            Err("missing value for EMPTY, NOPE".into())
        );
        assert!(sub_path(&mount(Some("../x"), None), &env).is_err());
    }

    /// [sig-storage] Downward API volume should provide container's cpu limit,
    /// memory request, and node allocatable as the default cpu limit.
    #[test]
    fn downward_api_resources_name_their_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [
                {"name": "a", "resources": {"limits": {"cpu": "1250m"}, "requests": {"memory": "32Mi"}}},
                {"name": "b"}
            ]}
        }))
        .unwrap();
        let sel = |c: &str, res: &str, div: Option<&str>| {
            k8s_openapi::api::core::v1::ResourceFieldSelector {
                container_name: Some(c.into()),
                resource: res.into(),
                divisor: div
                    .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
            }
        };
        let node_cpu = 2000;
        let node_mem = 4 << 30;
        assert_eq!(
            downward_resource(&pod, &sel("a", "limits.cpu", None), node_cpu, node_mem),
            "2"
        );
        assert_eq!(
            downward_resource(
                &pod,
                &sel("a", "limits.cpu", Some("1m")),
                node_cpu,
                node_mem
            ),
            "1250"
        );
        assert_eq!(
            downward_resource(
                &pod,
                &sel("a", "requests.memory", Some("1Mi")),
                node_cpu,
                node_mem
            ),
            "32"
        );
        assert_eq!(
            downward_resource(&pod, &sel("b", "limits.cpu", None), node_cpu, node_mem),
            "2"
        );
        assert_eq!(
            downward_resource(&pod, &sel("b", "limits.memory", None), node_cpu, node_mem),
            (4u64 << 30).to_string()
        );
    }

    #[test]
    fn rewriting_files_replaces_content_and_drops_unlisted_ones() {
        let d = tempfile::tempdir().unwrap();
        let f = |p: &str, c: &str| (p.to_string(), c.as_bytes().to_vec(), None);
        write_files(d.path(), &[f("a", "1"), f("sub/b", "2")]).unwrap();
        write_files(d.path(), &[f("a", "3"), f("c", "4")]).unwrap();
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).ok();
        assert_eq!(read("a").as_deref(), Some("3"));
        assert_eq!(read("c").as_deref(), Some("4"));
        assert_eq!(read("sub/b"), None);
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    /// [sig-storage] Downward API volume should update labels on modification:
    /// a refresh rewrites what a running container sees.
    #[tokio::test]
    async fn refresh_rewrites_set_up_volumes_from_the_latest_pod() {
        let root = tempfile::tempdir().unwrap();
        let k = crate::context::Kubelet {
            node_name: "n".into(),
            node_ip: "127.0.0.1".into(),
            root_dir: root.path().to_path_buf(),
            runtime: std::sync::Arc::new(crate::runtime::fake::FakeRuntime::default()),
            cni: crate::network::Cni {
                config: crate::network::CniConfig {
                    bin_dir: "/nonexistent".into(),
                    bridge: "x".into(),
                    pod_cidr: "10.0.0.0/24".into(),
                    ipam_dir: root.path().join("ipam"),
                },
            },
            client: None,
            status: crate::status_manager::StatusManager::new(Box::new(Nowhere)),
            events: crate::events::Recorder::new(None, "n"),
            backoff: Default::default(),
            pods: Default::default(),
            host_ports: Default::default(),
        };
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

    struct Nowhere;
    #[async_trait::async_trait]
    impl crate::status_manager::StatusWriter for Nowhere {
        async fn patch_status(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &k8s_openapi::api::core::v1::PodStatus,
        ) -> Result<(), crate::status_manager::StatusError> {
            Ok(())
        }
    }

    /// [sig-storage] ConfigMap binary data should be reflected in volume:
    /// bytes reach the file untouched, and only `data` is env.
    #[test]
    fn binary_data_reaches_files_untouched() {
        let bin = vec![0xde, 0xca, 0xfe, 0xba, 0xd0, 0xfe, 0xff];
        let mut f = Fetched::default();
        f.config_maps.insert(
            "cm".into(),
            Some(SourceData {
                text: [("a".to_string(), "x".to_string())].into(),
                files: [
                    ("a".to_string(), b"x".to_vec()),
                    ("bin".to_string(), bin.clone()),
                ]
                .into(),
            }),
        );
        let files = key_files(&f.config_map_files("cm").unwrap(), None, None).unwrap();
        assert!(files.contains(&("bin".to_string(), bin, None)));
        assert_eq!(f.config_map("cm").unwrap().len(), 1);
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
