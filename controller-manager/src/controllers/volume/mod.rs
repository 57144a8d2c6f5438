//! Persistent storage: the PV controller that binds claims to volumes and
//! honours reclaim policies, and the node-local provisioner behind the
//! default StorageClass.

pub mod local_path;
pub mod persistentvolume;
