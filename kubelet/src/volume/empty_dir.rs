//! emptyDir: a directory under the pod, on tmpfs when its medium is Memory.

use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use super::VolumeError;

/// Creates the directory once; later setups keep what the pod wrote.
pub(super) fn setup(name: &str, dir: &Path, ed: &EmptyDirVolumeSource) -> Result<(), VolumeError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if ed.medium.as_deref() == Some("Memory") {
            let size = ed
                .size_limit
                .as_ref()
                .and_then(|q| apimachinery::Quantity::from_api(q).ok())
                .map(|q| q.value());
            let opts = size.map(|s| format!("size={s}"));
            nix::mount::mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                opts.as_deref(),
            )
            .map_err(|e| VolumeError::Mount {
                volume: name.to_string(),
                message: e.to_string(),
            })?;
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    Ok(())
}

/// Unmounts the memory-backed ones, so that removing the pod dir frees them.
pub(super) fn teardown(volumes_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(volumes_dir) {
        for e in entries.flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
