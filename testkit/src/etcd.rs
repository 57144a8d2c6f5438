//! Debian's etcd on loopback ports with its own data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{free_port, wait_for_or, Error, Process, TestDir};

const ETCD: &str = "/usr/bin/etcd";

#[derive(Debug)]
pub struct Etcd {
    /// `http://127.0.0.1:PORT`, for `--etcd-servers`.
    pub endpoint: String,
    pub data_dir: PathBuf,
    process: Process,
    dir: TestDir,
}

impl Etcd {
    /// Start etcd and wait until it reports healthy; panics with its log on failure.
    pub async fn start() -> Etcd {
        match Self::try_start().await {
            Ok(e) => e,
            Err(e) => panic!("starting etcd: {e}"),
        }
    }

    pub async fn try_start() -> Result<Etcd, Error> {
        let dir = TestDir::new("etcd")?;
        let data_dir = dir.path().join("data");
        let client = free_port();
        let peer = free_port();
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args = vec![
            "--name".to_string(),
            "default".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            endpoint.clone(),
            "--advertise-client-urls".into(),
            endpoint.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster".into(),
            format!("default={peer_url}"),
            "--log-level".into(),
            "warn".into(),
        ];
        let process = Process::spawn("etcd", Path::new(ETCD), args, dir.path())?;
        let mut etcd = Etcd {
            endpoint,
            data_dir,
            process,
            dir,
        };
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    async fn wait_healthy(&mut self) -> Result<(), Error> {
        let url = format!("{}/health", self.endpoint);
        let http = reqwest::Client::new();
        let process = &mut self.process;
        let mut exited = None;
        // A loaded CI machine with several etcds fsyncing at once can take long to elect.
        let res = wait_for_or(Duration::from_secs(90), "etcd /health", || {
            let early = process.check_running().err();
            let http = http.clone();
            let url = url.clone();
            let stop = early.is_some();
            if let Some(e) = early {
                exited = Some(e);
            }
            async move {
                if stop {
                    return Some(());
                }
                let body = http.get(&url).send().await.ok()?.text().await.ok()?;
                body.contains("\"true\"").then_some(())
            }
        })
        .await;
        match exited {
            Some(e) => Err(e),
            None => res.map_err(|e| match e {
                Error::Timeout { what, waited } => Error::Timeout {
                    what: format!("{what}; etcd log tail:\n{}", self.process.log_tail(4096)),
                    waited,
                },
                e => e,
            }),
        }
    }

    /// Kill etcd (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Freeze etcd (SIGSTOP) without closing its sockets: requests go out and get no answer.
    pub fn pause(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Let a paused etcd run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.process.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// Stop if running, then start again on the same ports and data.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.process.kill();
        self.process.start_again()?;
        self.wait_healthy().await
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

    #[tokio::test]
    async fn etcd_keeps_its_data_across_restart() {
        let mut etcd = Etcd::start().await;
        let http = reqwest::Client::new();
        // v3 JSON gateway: key "a" = "b", base64 encoded.
        let put = http
            .post(format!("{}/v3/kv/put", etcd.endpoint))
            .body(r#"{"key":"YQ==","value":"Yg=="}"#)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
        etcd.stop();
        assert!(http
            .get(format!("{}/health", etcd.endpoint))
            .send()
            .await
            .is_err());
        etcd.restart().await.unwrap();
        let got = http
            .post(format!("{}/v3/kv/range", etcd.endpoint))
            .body(r#"{"key":"YQ=="}"#)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(got.contains("Yg=="), "{got}");
    }
}
