//! ferrokube-dns for a test: against an apiserver (or a static zone file),
//! answering on a given address, and the `kube-system/kube-dns` Service
//! objects of manifests/kube-dns.yaml that point pods at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{free_port, kubectl_ok, repo_root, try_bin, Error, Process, TestDir};

pub const DNS: &str = "ferrokube-dns";

#[derive(Debug)]
pub struct Dns {
    /// UDP and TCP address it answers on.
    pub addr: SocketAddr,
    /// `127.0.0.1:PORT` of /metrics, /health and /ready.
    pub metrics: SocketAddr,
    process: Process,
    _dir: TestDir,
}

impl Dns {
    /// Starts ferrokube-dns on `listen` watching the cluster of `kubeconfig`
    /// and waits for /ready (its caches synced). `extra` are more flags
    /// (`--upstream`, `--static-zone` in place of a kubeconfig, ...).
    pub async fn try_start<S: AsRef<str>>(
        kubeconfig: Option<&Path>,
        listen: SocketAddr,
        extra: &[S],
    ) -> Result<Dns, Error> {
        let program = try_bin(DNS)?;
        let dir = TestDir::new("dns")?;
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen.to_string(),
            "--metrics-bind-address".into(),
            metrics.to_string(),
        ];
        if let Some(kc) = kubeconfig {
            args.extend(["--kubeconfig".into(), kc.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.as_ref().to_string()));
        let process = Process::spawn(DNS, &program, args, dir.path())?;
        let mut dns = Dns {
            addr: listen,
            metrics,
            process,
            _dir: dir,
        };
        dns.wait_ready().await?;
        Ok(dns)
    }

    /// [`Dns::try_start`], panicking with the log on failure.
    pub async fn start<S: AsRef<str>>(kubeconfig: Option<&Path>, listen: SocketAddr, extra: &[S]) -> Dns {
        match Self::try_start(kubeconfig, listen, extra).await {
            Ok(d) => d,
            Err(e) => panic!("starting {DNS}: {e}"),
        }
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let url = format!("http://{}/ready", self.metrics);
        let client = reqwest::Client::new();
        let waited = Duration::from_secs(30);
        let deadline = std::time::Instant::now() + waited;
        loop {
            // An early exit is reported at once, with its log.
            self.process.check_running()?;
            let r = client.get(&url).timeout(Duration::from_secs(2)).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!("{DNS} /ready; log:\n{}", self.process.log_tail(4096)),
                    waited,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET `path` on the metrics port, as text.
    pub async fn http_get(&self, path: &str) -> Result<String, Error> {
        let url = format!("http://{}{path}", self.metrics);
        let r = reqwest::get(&url)
            .await
            .map_err(|e| Error::io(format!("GET {url}"), std::io::Error::other(e)))?;
        r.text()
            .await
            .map_err(|e| Error::io(format!("GET {url}"), std::io::Error::other(e)))
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_path_buf()
    }
}

/// manifests/kube-dns.yaml with the Service IP and the server's address.
pub fn kube_dns_manifest(service_ip: &str, server_ip: &str) -> Result<String, Error> {
    let path = repo_root().join("manifests/kube-dns.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(text
        .replace("${DNS_SERVICE_IP}", service_ip)
        .replace("${DNS_SERVER_IP}", server_ip))
}

/// Creates (or updates) `kube-system/kube-dns` with kubectl apply.
pub async fn apply_kube_dns(kubeconfig: &Path, service_ip: &str, server_ip: &str) -> Result<(), Error> {
    let dir = TestDir::new("kube-dns")?;
    let file = dir.path().join("kube-dns.yaml");
    std::fs::write(&file, kube_dns_manifest(service_ip, server_ip)?)
        .map_err(|e| Error::io("writing kube-dns.yaml", e))?;
    let f = file.display().to_string();
    kubectl_ok(kubeconfig, &["apply", "-f", f.as_str()]).await?;
    Ok(())
}
