//! ferrokube-apiserver against a given etcd, with an admin kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, try_bin, wait_for_or, Error, Etcd, Process, TestDir};

pub const APISERVER: &str = "ferrokube-apiserver";

#[derive(Debug)]
pub struct ApiServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Admin kubeconfig (user admin, group system:masters).
    pub kubeconfig: PathBuf,
    /// `--cert-dir`: ca.crt/ca.key, serving and kubelet-client certs.
    pub cert_dir: PathBuf,
    pub port: u16,
    process: Process,
    dir: TestDir,
}

impl ApiServer {
    /// Start against `etcd` and wait for /readyz; panics with the log on failure.
    pub async fn start(etcd: &Etcd) -> ApiServer {
        match Self::try_start(etcd, &[] as &[&str]).await {
            Ok(a) => a,
            Err(e) => panic!("starting {APISERVER}: {e}"),
        }
    }

    /// Start with extra flags (e.g. `--default-unreachable-toleration-seconds=10`).
    pub async fn start_with_args<S: AsRef<str>>(etcd: &Etcd, extra: &[S]) -> ApiServer {
        match Self::try_start(etcd, extra).await {
            Ok(a) => a,
            Err(e) => panic!("starting {APISERVER}: {e}"),
        }
    }

    pub async fn try_start<S: AsRef<str>>(etcd: &Etcd, extra: &[S]) -> Result<ApiServer, Error> {
        let program = try_bin(APISERVER)?;
        let dir = TestDir::new("apiserver")?;
        let cert_dir = dir.subdir("certs")?;
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        // Issuing the admin kubeconfig first also creates the cluster CA,
        // which the server then reuses.
        issue_kubeconfig(
            &program,
            &cert_dir,
            &url,
            "admin",
            &["system:masters"],
            &kubeconfig,
        )?;
        let mut args: Vec<String> = vec![
            "--etcd-servers".into(),
            etcd.endpoint.clone(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            port.to_string(),
            "--cert-dir".into(),
            cert_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.as_ref().to_string()));
        let process = Process::spawn("apiserver", &program, args, dir.path())?;
        let mut api = ApiServer {
            url,
            kubeconfig,
            cert_dir,
            port,
            process,
            dir,
        };
        api.wait_ready().await?;
        Ok(api)
    }

    /// Wait until /readyz answers 200 over HTTPS (verified with the CA).
    pub async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let process = &mut self.process;
        let mut exited = None;
        let res = wait_for_or(Duration::from_secs(60), "apiserver /readyz", || {
            let early = process.check_running().err();
            let stop = early.is_some();
            if early.is_some() {
                exited = early;
            }
            let client = client.clone();
            async move {
                if stop {
                    return Some(());
                }
                let req = http::Request::get("/readyz").body(Vec::new()).ok()?;
                client.request_text(req).await.ok().map(|_| ())
            }
        })
        .await;
        match exited {
            Some(e) => Err(e),
            None => res,
        }
    }

    /// A kube client authenticated as admin.
    pub async fn client(&self) -> kube::Client {
        match client_from_kubeconfig(&self.kubeconfig).await {
            Ok(c) => c,
            Err(e) => panic!("client for {}: {e}", self.url),
        }
    }

    /// A kubeconfig for `user` in `groups`, signed by the cluster CA; panics on failure.
    pub fn issue_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        match self.try_issue_kubeconfig(user, groups) {
            Ok(p) => p,
            Err(e) => panic!("issuing kubeconfig for {user}: {e}"),
        }
    }

    pub fn try_issue_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf, Error> {
        let out = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", user.replace([':', '/'], "_")));
        let program = try_bin(APISERVER)?;
        issue_kubeconfig(&program, &self.cert_dir, &self.url, user, groups, &out)?;
        Ok(out)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.cert_dir.join("ca.crt")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Restart the apiserver process (same flags, same etcd) and wait for /readyz.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.process.restart()?;
        self.wait_ready().await
    }
}

/// `ferrokube-apiserver kubeconfig --cert-dir .. --server .. --user .. --group .. --out ..`.
pub fn issue_kubeconfig(
    program: &Path,
    cert_dir: &Path,
    server: &str,
    user: &str,
    groups: &[&str],
    out: &Path,
) -> Result<(), Error> {
    let mut cmd = Command::new(program);
    cmd.arg("kubeconfig")
        .arg("--cert-dir")
        .arg(cert_dir)
        .arg("--server")
        .arg(server)
        .arg("--user")
        .arg(user);
    for g in groups {
        cmd.arg("--group").arg(g);
    }
    cmd.arg("--out").arg(out);
    let output = cmd
        .output()
        .map_err(|e| Error::io(format!("running {} kubeconfig", program.display()), e))?;
    if !output.status.success() || !out.is_file() {
        return Err(Error::Command {
            command: format!("{APISERVER} kubeconfig --user {user}"),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(())
}

/// A kube client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, Error> {
    // Several rustls providers may be compiled in; pick ring explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(apimachinery::kubeconfig::client(Some(path)).await?)
}
