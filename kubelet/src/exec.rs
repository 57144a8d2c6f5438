//! Running processes in a container: hooks and probes (to completion) and
//! interactive sessions for /exec (through FIFOs).

use std::path::PathBuf;

use serde_json::json;

use crate::context::Kubelet;
use crate::runtime::{ExecConfig, RuntimeError};

/// The OCI process spec for an exec'd command.
pub fn process_spec(cmd: &[String], tty: bool) -> serde_json::Value {
    json!({
        "terminal": tty,
        "user": {"uid": 0, "gid": 0},
        "args": cmd,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
    })
}

pub fn exec_id() -> String {
    format!("exec-{:016x}", rand::random::<u64>())
}

/// Runs `cmd` in the container and returns its exit code, discarding output.
pub async fn run_to_completion(
    k: &Kubelet,
    container_id: &str,
    cmd: Vec<String>,
) -> Result<i32, RuntimeError> {
    let id = exec_id();
    k.runtime
        .exec(ExecConfig {
            container_id: container_id.into(),
            exec_id: id.clone(),
            process: process_spec(&cmd, false),
            stdin: None,
            stdout: None,
            stderr: None,
            terminal: false,
        })
        .await?;
    k.runtime.wait_exec(container_id, &id).await
}

/// FIFO paths of one interactive exec session.
pub struct SessionFifos {
    pub dir: PathBuf,
    pub stdin: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

pub fn make_fifos(
    base: &std::path::Path,
    id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> std::io::Result<SessionFifos> {
    let dir = base.join(id);
    std::fs::create_dir_all(&dir)?;
    let mk = |want: bool, name: &str| -> std::io::Result<Option<PathBuf>> {
        if !want {
            return Ok(None);
        }
        let p = dir.join(name);
        match nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(Some(p)),
            Err(e) => Err(e.into()),
        }
    };
    Ok(SessionFifos {
        stdin: mk(stdin, "stdin")?,
        stdout: mk(stdout, "stdout")?,
        stderr: mk(stderr, "stderr")?,
        dir,
    })
}
