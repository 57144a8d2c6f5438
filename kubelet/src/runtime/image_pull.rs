//! Pulling an image over the OCI distribution protocol into containerd:
//! blobs into the content store, the image record into the images service,
//! layers unpacked into overlayfs snapshots through the diff service.

use std::collections::HashMap;

use containerd_client::services::v1::{
    content_client::ContentClient,
    diff_client::DiffClient,
    images_client::ImagesClient,
    snapshots::{
        snapshots_client::SnapshotsClient, CommitSnapshotRequest, PrepareSnapshotRequest,
        RemoveSnapshotRequest, StatSnapshotRequest,
    },
    ApplyRequest, CreateImageRequest, GetImageRequest, Image, InfoRequest, ReadContentRequest,
    UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor;
use futures::{Stream, StreamExt};
use oci_client::{client::ClientConfig, client::ClientProtocol, secrets::RegistryAuth, Reference};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::{ImageConfig, ImageInfo, Result, RuntimeError};
use crate::runtime::image_ref::{ImageRef, Mirrors};

pub const SNAPSHOTTER: &str = "overlayfs";

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawImageConfigInner {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawImageConfig {
    #[serde(default)]
    config: Option<RawImageConfigInner>,
    rootfs: RawRootfs,
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// chainID(n) = sha256(chainID(n-1) + " " + diffID(n)), as the OCI image spec defines.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => {
                let mut h = Sha256::new();
                h.update(format!("{prev} {d}").as_bytes());
                format!("sha256:{}", hex::encode(h.finalize()))
            }
        };
        out.push(next);
    }
    out
}

fn pull_err(image: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Pull {
        image: image.to_string(),
        message: e.to_string(),
    }
}

/// Attaches the containerd namespace to a request.
pub fn ns<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "containerd-namespace",
        tonic::metadata::MetadataValue::from_static("k8s.io"),
    );
    r
}

/// Reads a whole blob from the content store.
pub async fn read_blob(ch: &Channel, digest: &str) -> Result<Vec<u8>> {
    let mut stream = ContentClient::new(ch.clone())
        .read(ns(ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        }))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(msg) = stream.next().await {
        out.extend_from_slice(&msg?.data);
    }
    Ok(out)
}

async fn blob_exists(ch: &Channel, digest: &str) -> Result<bool> {
    match ContentClient::new(ch.clone())
        .info(ns(InfoRequest {
            digest: digest.to_string(),
        }))
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
        Err(s) => Err(s.into()),
    }
}

/// Streams bytes into the content store and commits them under `digest`.
async fn write_blob<S>(
    ch: &Channel,
    digest: &str,
    size: i64,
    data: S,
    labels: HashMap<String, String>,
) -> Result<()>
where
    S: Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    let reference = format!("ferrokube-{}-{}", digest, rand::random::<u32>());
    let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
    let digest_s = digest.to_string();
    let producer = tokio::spawn(async move {
        let mut data = data;
        let mut offset = 0i64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            // gRPC messages are capped at 4 MiB by default.
            for piece in chunk.chunks(1 << 20) {
                let req = WriteContentRequest {
                    action: WriteAction::Write as i32,
                    r#ref: reference.clone(),
                    total: size,
                    expected: digest_s.clone(),
                    offset,
                    data: piece.to_vec(),
                    labels: HashMap::new(),
                };
                offset += piece.len() as i64;
                if tx.send(req).await.is_err() {
                    return Ok::<(), std::io::Error>(());
                }
            }
        }
        let _ = tx
            .send(WriteContentRequest {
                action: WriteAction::Commit as i32,
                r#ref: reference,
                total: size,
                expected: digest_s,
                offset,
                data: vec![],
                labels,
            })
            .await;
        Ok(())
    });
    let res = ContentClient::new(ch.clone())
        .write(ns(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await;
    let outcome = match res {
        Ok(resp) => {
            let mut s = resp.into_inner();
            let mut r = Ok(());
            while let Some(m) = s.next().await {
                if let Err(e) = m {
                    r = Err(e);
                    break;
                }
            }
            r
        }
        Err(e) => Err(e),
    };
    let produced = producer
        .await
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
    match outcome {
        Ok(()) => {}
        Err(s) if s.code() == tonic::Code::AlreadyExists => {}
        Err(s) => return Err(s.into()),
    }
    produced?;
    Ok(())
}

fn one_shot(
    data: Vec<u8>,
) -> futures::stream::Iter<std::vec::IntoIter<std::io::Result<bytes::Bytes>>> {
    futures::stream::iter(vec![Ok(bytes::Bytes::from(data))])
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pulls `name` (as written in the pod spec) and returns the local image.
pub async fn pull(ch: &Channel, mirrors: &Mirrors, name: &str) -> Result<ImageInfo> {
    let r = ImageRef::parse(name).map_err(|e| pull_err(name, e))?;
    let canonical = r.canonical();
    let ep = mirrors.endpoint(&r);
    let reference = match (&r.tag, &r.digest) {
        (_, Some(d)) => Reference::with_digest(ep.host.clone(), r.repository.clone(), d.clone()),
        (Some(t), None) => Reference::with_tag(ep.host.clone(), r.repository.clone(), t.clone()),
        (None, None) => Reference::with_tag(ep.host.clone(), r.repository.clone(), "latest".into()),
    };
    let protocol = if ep.insecure {
        ClientProtocol::HttpsExcept(vec![ep.host.clone()])
    } else {
        ClientProtocol::Https
    };
    let client = oci_client::Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    });
    let auth = RegistryAuth::Anonymous;
    let (mut raw, mut digest) = client
        .pull_manifest_raw(&reference, &auth, MANIFEST_TYPES)
        .await
        .map_err(|e| pull_err(name, e))?;
    let mut manifest: RawManifest = serde_json::from_slice(&raw).map_err(|e| pull_err(name, e))?;
    if let Some(list) = &manifest.manifests {
        let chosen = list
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == go_arch())
            })
            .or_else(|| list.first())
            .ok_or_else(|| pull_err(name, "empty image index"))?;
        let by_digest =
            Reference::with_digest(ep.host.clone(), r.repository.clone(), chosen.digest.clone());
        (raw, digest) = client
            .pull_manifest_raw(&by_digest, &auth, MANIFEST_TYPES)
            .await
            .map_err(|e| pull_err(name, e))?;
        manifest = serde_json::from_slice(&raw).map_err(|e| pull_err(name, e))?;
    }
    if digest.is_empty() {
        digest = sha256_digest(&raw);
    }
    let config_desc = manifest
        .config
        .as_ref()
        .ok_or_else(|| pull_err(name, "manifest has no config"))?;
    let mut config_bytes = Vec::new();
    client
        .pull_blob(&reference, config_desc.digest.as_str(), &mut config_bytes)
        .await
        .map_err(|e| pull_err(name, e))?;
    let config: RawImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| pull_err(name, e))?;
    let chains = chain_ids(&config.rootfs.diff_ids);
    if chains.len() != manifest.layers.len() {
        return Err(pull_err(name, "layer count does not match diff_ids"));
    }

    for layer in &manifest.layers {
        if blob_exists(ch, &layer.digest).await? {
            continue;
        }
        let s = client
            .pull_blob_stream(&reference, layer.digest.as_str())
            .await
            .map_err(|e| pull_err(name, e))?;
        write_blob(ch, &layer.digest, layer.size, s.stream, HashMap::new()).await?;
    }
    let mut config_labels = HashMap::new();
    if let Some(top) = chains.last() {
        config_labels.insert(
            format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
            top.clone(),
        );
    }
    if !blob_exists(ch, &config_desc.digest).await? {
        write_blob(
            ch,
            &config_desc.digest,
            config_desc.size,
            one_shot(config_bytes.clone()),
            config_labels,
        )
        .await?;
    }
    let mut manifest_labels = HashMap::new();
    manifest_labels.insert(
        "containerd.io/gc.ref.content.config".to_string(),
        config_desc.digest.clone(),
    );
    for (i, l) in manifest.layers.iter().enumerate() {
        manifest_labels.insert(
            format!("containerd.io/gc.ref.content.l.{i}"),
            l.digest.clone(),
        );
    }
    if !blob_exists(ch, &digest).await? {
        write_blob(
            ch,
            &digest,
            raw.len() as i64,
            one_shot(raw.to_vec()),
            manifest_labels,
        )
        .await?;
    }
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
    let target = Descriptor {
        media_type,
        digest: digest.clone(),
        size: raw.len() as i64,
        annotations: HashMap::new(),
    };
    put_image_record(ch, &canonical, target).await?;
    let layers: Vec<Descriptor> = manifest
        .layers
        .iter()
        .map(|l| Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            annotations: HashMap::new(),
        })
        .collect();
    unpack(ch, &layers, &chains).await?;
    Ok(ImageInfo {
        name: canonical.clone(),
        image_id: image_id(&canonical, &digest),
        config: image_config(config.config.unwrap_or_default()),
        chain_id: chains.last().cloned().unwrap_or_default(),
    })
}

fn image_config(c: RawImageConfigInner) -> ImageConfig {
    ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
    }
}

async fn put_image_record(ch: &Channel, name: &str, target: Descriptor) -> Result<()> {
    let image = Image {
        name: name.to_string(),
        target: Some(target),
        ..Default::default()
    };
    let mut images = ImagesClient::new(ch.clone());
    match images
        .create(ns(CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            images
                .update(ns(UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                }))
                .await?;
            Ok(())
        }
        Err(s) => Err(s.into()),
    }
}

/// Applies each layer on top of its parent snapshot; already unpacked layers are skipped.
async fn unpack(ch: &Channel, layers: &[Descriptor], chains: &[String]) -> Result<()> {
    let mut snaps = SnapshotsClient::new(ch.clone());
    let mut parent = String::new();
    for (layer, chain) in layers.iter().zip(chains) {
        let exists = snaps
            .stat(ns(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: chain.clone(),
            }))
            .await
            .is_ok();
        if !exists {
            let key = format!("extract-{}-{}", rand::random::<u64>(), chain);
            let mounts = snaps
                .prepare(ns(PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent: parent.clone(),
                    labels: HashMap::new(),
                }))
                .await?
                .into_inner()
                .mounts;
            let applied = DiffClient::new(ch.clone())
                .apply(ns(ApplyRequest {
                    diff: Some(layer.clone()),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                }))
                .await;
            if let Err(e) = applied {
                let _ = snaps
                    .remove(ns(RemoveSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key,
                    }))
                    .await;
                return Err(e.into());
            }
            let committed = snaps
                .commit(ns(CommitSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    name: chain.clone(),
                    key: key.clone(),
                    labels: HashMap::new(),
                }))
                .await;
            match committed {
                Ok(_) => {}
                // Another pull of the same image won the race.
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    let _ = snaps
                        .remove(ns(RemoveSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            key,
                        }))
                        .await;
                }
                Err(s) => return Err(s.into()),
            }
        }
        parent = chain.clone();
    }
    Ok(())
}

/// Images already read from the content store, by canonical name, with the
/// digest their image record pointed at. Every container of every pod looks
/// its image up; this spares re-reading manifest and config and re-checking
/// each layer while the record still points at the same manifest.
/// An entry checked against containerd within FRESH is used without asking
/// again, so a burst of pods of one image asks once.
#[derive(Default)]
pub struct ImageCache(std::sync::Mutex<HashMap<String, CachedImage>>);

struct CachedImage {
    target: String,
    info: ImageInfo,
    checked: std::time::Instant,
}

const FRESH: std::time::Duration = std::time::Duration::from_secs(5);

impl ImageCache {
    fn fresh(&self, canonical: &str) -> Option<ImageInfo> {
        let m = self.0.lock().ok()?;
        m.get(canonical)
            .filter(|c| c.checked.elapsed() < FRESH)
            .map(|c| c.info.clone())
    }
    fn get(&self, canonical: &str, target: &str) -> Option<ImageInfo> {
        let m = self.0.lock().ok()?;
        m.get(canonical)
            .filter(|c| c.target == target)
            .map(|c| c.info.clone())
    }
    /// After a pull the name may point at another manifest.
    pub fn forget(&self, name: &str) {
        if let (Ok(r), Ok(mut m)) = (ImageRef::parse(name), self.0.lock()) {
            m.remove(&r.canonical());
        }
    }
    fn put(&self, canonical: &str, target: &str, info: &ImageInfo) {
        if let Ok(mut m) = self.0.lock() {
            let c = CachedImage {
                target: target.to_string(),
                info: info.clone(),
                checked: std::time::Instant::now(),
            };
            m.insert(canonical.to_string(), c);
        }
    }
}

/// Looks an image up in containerd (pulled earlier or imported by a user) and
/// makes sure its layers are unpacked.
pub async fn local(ch: &Channel, name: &str, cache: &ImageCache) -> Result<Option<ImageInfo>> {
    let r = ImageRef::parse(name).map_err(|e| pull_err(name, e))?;
    let canonical = r.canonical();
    if let Some(info) = cache.fresh(&canonical) {
        return Ok(Some(info));
    }
    let image = match ImagesClient::new(ch.clone())
        .get(ns(GetImageRequest {
            name: canonical.clone(),
        }))
        .await
    {
        Ok(resp) => resp.into_inner().image,
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
        Err(s) => return Err(s.into()),
    };
    let Some(target) = image.and_then(|i| i.target) else {
        return Ok(None);
    };
    if let Some(info) = cache.get(&canonical, &target.digest) {
        // A snapshot holds its parents, so the top one standing means all are unpacked.
        let top = SnapshotsClient::new(ch.clone())
            .stat(ns(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: info.chain_id.clone(),
            }))
            .await;
        if top.is_ok() {
            cache.put(&canonical, &target.digest, &info);
            return Ok(Some(info));
        }
    }
    let mut manifest_digest = target.digest.clone();
    let mut raw = match read_blob(ch, &manifest_digest).await {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let mut manifest: RawManifest = serde_json::from_slice(&raw).map_err(|e| pull_err(name, e))?;
    if let Some(list) = &manifest.manifests {
        let Some(chosen) = list
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == go_arch())
            })
            .or_else(|| list.first())
        else {
            return Ok(None);
        };
        manifest_digest = chosen.digest.clone();
        raw = match read_blob(ch, &manifest_digest).await {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        manifest = serde_json::from_slice(&raw).map_err(|e| pull_err(name, e))?;
    }
    let Some(cd) = manifest.config else {
        return Ok(None);
    };
    let config: RawImageConfig = match read_blob(ch, &cd.digest).await {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| pull_err(name, e))?,
        Err(_) => return Ok(None),
    };
    let chains = chain_ids(&config.rootfs.diff_ids);
    let layers: Vec<Descriptor> = manifest
        .layers
        .iter()
        .map(|l| Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            annotations: HashMap::new(),
        })
        .collect();
    if layers.len() != chains.len() {
        return Err(pull_err(name, "layer count does not match diff_ids"));
    }
    unpack(ch, &layers, &chains).await?;
    let info = ImageInfo {
        name: canonical.clone(),
        image_id: image_id(&canonical, &manifest_digest),
        config: image_config(config.config.unwrap_or_default()),
        chain_id: chains.last().cloned().unwrap_or_default(),
    };
    cache.put(&canonical, &target.digest, &info);
    Ok(Some(info))
}

/// status.imageID: the repository pinned to the manifest digest.
pub fn image_id(canonical: &str, digest: &str) -> String {
    let no_digest = canonical.split('@').next().unwrap_or(canonical);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let repo = match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    };
    format!("{repo}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_of_one_layer_is_its_diff_id() {
        let c = chain_ids(&["sha256:a".into()]);
        assert_eq!(c, vec!["sha256:a".to_string()]);
    }

    #[test]
    fn chain_id_follows_oci_spec() {
        let c = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        let expect = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:a sha256:b"))
        );
        assert_eq!(c[1], expect);
    }

    #[test]
    fn image_id_pins_repository_to_digest() {
        assert_eq!(
            image_id("127.0.0.1:5000/library/busybox:latest", "sha256:x"),
            "127.0.0.1:5000/library/busybox@sha256:x"
        );
        assert_eq!(
            image_id("docker.io/library/busybox:1.0", "sha256:x"),
            "docker.io/library/busybox@sha256:x"
        );
    }
}
