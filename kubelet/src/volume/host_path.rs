//! hostPath: a path on the node, checked or created as its type asks.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::VolumeError;

pub(super) fn setup(name: &str, hp: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    let err = |message: String| VolumeError::Mount {
        volume: name.to_string(),
        message,
    };
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
    Ok(p)
}
