//! A private containerd (own root, state and socket; CRI plugin off) for one
//! kubelet or one runtime integration test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::reaper::{Guard, Live};
use crate::{wait_for_or, Error, Process, TestDir};

const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";

#[derive(Debug)]
pub struct Containerd {
    /// The gRPC socket, for `--containerd-socket`.
    pub socket: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    process: Process,
    // Kills shims and their containers after containerd, before the dir goes.
    _shims: Guard,
    dir: TestDir,
}

/// The config.toml for a containerd living entirely under `dir`.
pub fn config_toml(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# The kubelet talks to containerd's own API, not CRI.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    )
}

impl Containerd {
    /// Start containerd and wait until its socket answers; panics on failure.
    pub async fn start() -> Containerd {
        match Self::try_start().await {
            Ok(c) => c,
            Err(e) => panic!("starting containerd: {e}"),
        }
    }

    pub async fn try_start() -> Result<Containerd, Error> {
        let dir = TestDir::new("containerd")?;
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml(dir.path()))
            .map_err(|e| Error::io("writing containerd config.toml", e))?;
        let socket = dir.path().join("containerd.sock");
        let shims = Guard::new(Live::ContainerdShims(socket.clone()));
        let process = Process::spawn(
            "containerd",
            Path::new(CONTAINERD),
            ["--config".into(), config.display().to_string()],
            dir.path(),
        )?;
        let mut c = Containerd {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            socket,
            process,
            _shims: shims,
            dir,
        };
        c.wait_ready().await?;
        Ok(c)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let socket = self.socket.clone();
        let process = &mut self.process;
        let mut exited = None;
        let res = wait_for_or(Duration::from_secs(30), "containerd socket", || {
            let early = process.check_running().err();
            let stop = early.is_some();
            if early.is_some() {
                exited = early;
            }
            let socket = socket.clone();
            async move {
                if stop {
                    return Some(());
                }
                let out = tokio::process::Command::new(CTR)
                    .arg("--address")
                    .arg(&socket)
                    .arg("version")
                    .output()
                    .await
                    .ok()?;
                out.status.success().then_some(())
            }
        })
        .await;
        match exited {
            Some(e) => Err(e),
            None => res,
        }
    }

    /// `ctr --address <socket> -n k8s.io <args>`: stdout, or the error.
    pub fn ctr(&self, args: &[&str]) -> Result<String, Error> {
        let out = Command::new(CTR)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .map_err(|e| Error::io("running ctr", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(Error::Command {
                command: format!("ctr {}", args.join(" ")),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).to_string(),
            })
        }
    }

    /// IDs of the containers in the k8s.io namespace.
    pub fn container_ids(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .ctr(&["containers", "list", "-q"])?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// Labels of every container in k8s.io (via `ctr containers info`).
    pub fn container_labels(&self) -> Result<Vec<serde_json::Value>, Error> {
        let mut all = Vec::new();
        for id in self.container_ids()? {
            let info = self.ctr(&["containers", "info", &id])?;
            let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
            all.push(v.get("Labels").cloned().unwrap_or_default());
        }
        Ok(all)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_in_the_temp_dir_and_disables_cri() {
        let toml = config_toml(Path::new("/tmp/x"));
        assert!(toml.contains(r#"root = "/tmp/x/root""#));
        assert!(toml.contains(r#"state = "/tmp/x/state""#));
        assert!(toml.contains(r#"address = "/tmp/x/containerd.sock""#));
        assert!(toml.contains("io.containerd.grpc.v1.cri"));
    }

    #[tokio::test]
    async fn private_containerd_answers_on_its_own_socket() {
        let c = Containerd::start().await;
        let out = c.ctr(&["namespaces", "list"]).unwrap();
        assert!(out.contains("NAME"), "{out}");
        assert!(c.container_ids().unwrap().is_empty());
        let plugins = c.ctr(&["plugins", "list"]).unwrap();
        let cri_running = plugins.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 2 && cols[0] == "io.containerd.grpc.v1" && cols[1] == "cri"
        });
        assert!(!cri_running, "{plugins}");
        let dir = c.dir().to_path_buf();
        drop(c);
        assert!(!dir.exists());
    }
}
