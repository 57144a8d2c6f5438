//! Debian's docker-registry on a free loopback port, optionally with the
//! demo images (hack/lib/images.sh) pushed to it.

use std::path::Path;
use std::time::Duration;

use crate::{free_port, repo_root, wait_for_or, Error, Process, TestDir};

const REGISTRY: &str = "/usr/bin/docker-registry";

#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    process: Process,
    dir: TestDir,
}

/// docker-registry's config: loopback only, storage under `dir`.
pub fn config_yaml(dir: &Path, addr: &str) -> String {
    format!(
        r#"version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {}/data
  delete:
    enabled: true
http:
  addr: {addr}
"#,
        dir.display()
    )
}

impl Registry {
    /// An empty registry; panics on failure.
    pub async fn start() -> Registry {
        match Self::try_start().await {
            Ok(r) => r,
            Err(e) => panic!("starting docker-registry: {e}"),
        }
    }

    /// A registry holding library/busybox and library/nginx (latest, 1.0, 2.0),
    /// built by `hack/lib/images.sh` if `_output/images` lacks them.
    pub async fn start_with_images() -> Registry {
        let r = Self::start().await;
        if let Err(e) = r.push_images().await {
            panic!("pushing images to {}: {e}", r.addr);
        }
        r
    }

    pub async fn try_start() -> Result<Registry, Error> {
        let dir = TestDir::new("registry")?;
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(&config, config_yaml(dir.path(), &addr))
            .map_err(|e| Error::io("writing registry config", e))?;
        let process = Process::spawn(
            "registry",
            Path::new(REGISTRY),
            ["serve".to_string(), config.display().to_string()],
            dir.path(),
        )?;
        let mut r = Registry { addr, process, dir };
        r.wait_ready().await?;
        Ok(r)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let url = format!("http://{}/v2/", self.addr);
        let http = reqwest::Client::new();
        let process = &mut self.process;
        let mut exited = None;
        let res = wait_for_or(Duration::from_secs(30), "registry /v2/", || {
            let early = process.check_running().err();
            let stop = early.is_some();
            if early.is_some() {
                exited = early;
            }
            let (http, url) = (http.clone(), url.clone());
            async move {
                if stop {
                    return Some(());
                }
                let resp = http.get(&url).send().await.ok()?;
                resp.status().is_success().then_some(())
            }
        })
        .await;
        match exited {
            Some(e) => Err(e),
            None => res,
        }
    }

    /// `hack/lib/images.sh push <addr>` (builds the archives first if missing).
    pub async fn push_images(&self) -> Result<(), Error> {
        let script = repo_root().join("hack/lib/images.sh");
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .arg("push")
            .arg(&self.addr)
            .output()
            .await
            .map_err(|e| Error::io(format!("running {}", script.display()), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Command {
                command: format!("{} push {}", script.display(), self.addr),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            })
        }
    }

    /// Tags of `repo` (e.g. "library/nginx") as the registry lists them.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, Error> {
        let url = format!("http://{}/v2/{repo}/tags/list", self.addr);
        let body: serde_json::Value = reqwest::get(&url)
            .await
            .map_err(|e| Error::io(url.clone(), std::io::Error::other(e)))?
            .json()
            .await
            .map_err(|e| Error::io(url.clone(), std::io::Error::other(e)))?;
        Ok(body["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_serves_the_demo_images() {
        let r = Registry::start_with_images().await;
        let mut busybox = r.tags("library/busybox").await.unwrap();
        busybox.sort();
        assert_eq!(busybox, vec!["latest"]);
        let mut nginx = r.tags("library/nginx").await.unwrap();
        nginx.sort();
        assert_eq!(nginx, vec!["1.0", "2.0", "latest"]);
    }
}
