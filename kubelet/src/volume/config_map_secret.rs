//! configMap and secret volumes: one file per key, or the keys `items` names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, KeyToPath, SecretProjection, SecretVolumeSource,
};

use super::atomic_writer::VolumeFile;
use super::sources::Fetched;

/// The files of a key-to-path source; a missing key fails the mount, as upstream.
pub(super) fn key_files(
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

/// A source that is absent and optional gives no files; absent and required fails.
fn source_files(
    kind: &str,
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    optional: Option<bool>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    match data {
        Some(d) => key_files(&d, items, default_mode),
        None if optional == Some(true) => Ok(Vec::new()),
        None => Err(format!("{kind} \"{name}\" not found")),
    }
}

pub(super) fn config_map(
    f: &Fetched,
    cm: &ConfigMapVolumeSource,
) -> Result<Vec<VolumeFile>, String> {
    let data = f.config_map_files(&cm.name);
    source_files(
        "configmap",
        &cm.name,
        data,
        cm.optional,
        cm.items.as_ref(),
        cm.default_mode,
    )
}

pub(super) fn secret(f: &Fetched, s: &SecretVolumeSource) -> Result<Vec<VolumeFile>, String> {
    let name = s.secret_name.clone().unwrap_or_default();
    let data = f.secret_files(&name);
    source_files(
        "secret",
        &name,
        data,
        s.optional,
        s.items.as_ref(),
        s.default_mode,
    )
}

/// A projected volume's configMap source; the mode is the projected volume's.
pub(super) fn config_map_projection(
    f: &Fetched,
    cm: &ConfigMapProjection,
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    let data = f.config_map_files(&cm.name);
    source_files(
        "configmap",
        &cm.name,
        data,
        cm.optional,
        cm.items.as_ref(),
        default_mode,
    )
}

pub(super) fn secret_projection(
    f: &Fetched,
    s: &SecretProjection,
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    let data = f.secret_files(&s.name);
    source_files(
        "secret",
        &s.name,
        data,
        s.optional,
        s.items.as_ref(),
        default_mode,
    )
}

#[cfg(test)]
mod tests {
    use super::super::sources::SourceData;
    use super::*;
    use crate::container::env::Sources;

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
}
