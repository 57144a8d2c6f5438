//! The real kubectl (1.33), always with a fresh discovery cache.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use crate::Error;

/// The kubectl binary the e2e tests drive (matches the server's v1.33).
pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

fn command<S: AsRef<OsStr>>(kubeconfig: &Path, args: &[S], cache: &Path) -> Command {
    let program = std::env::var_os("FERROKUBE_KUBECTL").unwrap_or_else(|| KUBECTL.into());
    let mut cmd = Command::new(program);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd
}

fn spawn_error(e: std::io::Error) -> Output {
    // Report a missing kubectl as a failed command, not a panic.
    Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
        stdout: Vec::new(),
        stderr: format!("cannot run {KUBECTL}: {e}").into_bytes(),
    }
}

/// Run kubectl with `args` against `kubeconfig`; blocks until it exits.
pub fn kubectl<S: AsRef<OsStr>>(kubeconfig: &Path, args: &[S]) -> Output {
    let cache = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return spawn_error(e),
    };
    command(kubeconfig, args, cache.path())
        .output()
        .unwrap_or_else(spawn_error)
}

/// [`kubectl`] without blocking the async runtime.
pub async fn kubectl_async<S: AsRef<OsStr>>(kubeconfig: &Path, args: &[S]) -> Output {
    let cache = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return spawn_error(e),
    };
    let mut cmd: tokio::process::Command = command(kubeconfig, args, cache.path()).into();
    cmd.kill_on_drop(true);
    cmd.output().await.unwrap_or_else(spawn_error)
}

/// Run kubectl and return its stdout, or an error with stderr if it failed.
pub async fn kubectl_ok<S: AsRef<OsStr>>(kubeconfig: &Path, args: &[S]) -> Result<String, Error> {
    let out = kubectl_async(kubeconfig, args).await;
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().to_string())
        .collect();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(Error::Command {
            command: format!("kubectl {}", shown.join(" ")),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_version_runs_with_a_fresh_cache() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("none");
        let out = kubectl(&kc, &["version", "--client", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"minor\": \"33\""));
    }
}
