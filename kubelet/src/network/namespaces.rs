//! Pod namespaces (net, uts, ipc) kept alive as bind-mounted files so that
//! every container of the pod can join them by path.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("creating pod namespaces: {0}")]
    Create(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Paths of a pod's namespace files under the kubelet's root dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    pub dir: PathBuf,
}

impl PodNamespaces {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PodNamespaces { dir: dir.into() }
    }
    pub fn net(&self) -> PathBuf {
        self.dir.join("net")
    }
    pub fn uts(&self) -> PathBuf {
        self.dir.join("uts")
    }
    pub fn ipc(&self) -> PathBuf {
        self.dir.join("ipc")
    }

    /// True when the net namespace file is a live bind mount.
    pub fn exists(&self) -> bool {
        is_nsfs(&self.net())
    }

    /// Creates the namespaces in a throwaway thread (namespaces are per
    /// thread), sets the hostname and pins each one with a bind mount.
    pub async fn create(&self, hostname: &str) -> Result<(), NamespaceError> {
        std::fs::create_dir_all(&self.dir)?;
        let me = self.clone();
        let hostname = hostname.to_string();
        let joined = tokio::task::spawn_blocking(move || {
            std::thread::spawn(move || me.create_in_this_thread(&hostname))
                .join()
                .map_err(|_| NamespaceError::Create("namespace thread panicked".into()))?
        })
        .await
        .map_err(|e| NamespaceError::Create(e.to_string()))?;
        if joined.is_err() {
            self.remove();
        }
        joined
    }

    fn create_in_this_thread(&self, hostname: &str) -> Result<(), NamespaceError> {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        let e = |what: &str, err: nix::Error| NamespaceError::Create(format!("{what}: {err}"));
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
            .map_err(|err| e("unshare", err))?;
        nix::unistd::sethostname(hostname).map_err(|err| e("sethostname", err))?;
        let tid = nix::unistd::gettid();
        for (kind, target) in [
            ("net", self.net()),
            ("uts", self.uts()),
            ("ipc", self.ipc()),
        ] {
            std::fs::File::create(&target)?;
            let src = format!("/proc/self/task/{tid}/ns/{kind}");
            mount(
                Some(src.as_str()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|err| e(&format!("bind {src}"), err))?;
        }
        Ok(())
    }

    /// Unmounts and deletes the namespace files; missing ones are fine.
    pub fn remove(&self) {
        for p in [self.net(), self.uts(), self.ipc()] {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn is_nsfs(p: &Path) -> bool {
    // NSFS_MAGIC: the file is a bind mount of a namespace.
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type().0 == 0x6e736673)
        .unwrap_or(false)
}
