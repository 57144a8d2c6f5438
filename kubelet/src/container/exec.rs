//! Running processes in a container: hooks and probes (to completion) and
//! interactive sessions for /exec (through FIFOs).

use std::path::{Path, PathBuf};

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

/// Where the process of container `id` is kept for execs into it; under the
/// pod dir so that it goes with the pod.
pub fn process_file(pod_dir: &Path, container_id: &str) -> PathBuf {
    pod_dir.join("process").join(format!("{container_id}.json"))
}

/// Keeps a started container's OCI process for [`container_process_spec`].
pub fn save_process(
    pod_dir: &Path,
    container_id: &str,
    process: &serde_json::Value,
) -> std::io::Result<()> {
    let p = process_file(pod_dir, container_id);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(p, serde_json::to_vec(process).unwrap_or_default())
}

/// The process to exec in a container, as containerd's CRI builds it: the
/// container's own (user, groups, env, cwd, capabilities) with the args and
/// terminal replaced. A container started before its process was kept gets
/// the plain root process.
pub fn container_process_spec(
    root_dir: &Path,
    container_id: &str,
    cmd: &[String],
    tty: bool,
) -> serde_json::Value {
    let found = std::fs::read_dir(root_dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| process_file(&e.path(), container_id))
        .find_map(|p| std::fs::read(p).ok());
    with_command(found, cmd, tty)
}

/// [`container_process_spec`] when the pod is known: one file read, no scan.
pub fn pod_container_process_spec(
    pod_dir: &Path,
    container_id: &str,
    cmd: &[String],
    tty: bool,
) -> serde_json::Value {
    with_command(
        std::fs::read(process_file(pod_dir, container_id)).ok(),
        cmd,
        tty,
    )
}

fn with_command(kept: Option<Vec<u8>>, cmd: &[String], tty: bool) -> serde_json::Value {
    let found = kept.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(mut p) = found.filter(|p| p.is_object()) else {
        return process_spec(cmd, tty);
    };
    p["args"] = json!(cmd);
    p["terminal"] = json!(tty);
    if tty {
        if let Some(env) = p["env"].as_array_mut() {
            if !env
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.starts_with("TERM=")))
            {
                env.push(json!("TERM=xterm"));
            }
        }
    }
    p
}

pub fn exec_id() -> String {
    format!("exec-{:016x}", rand::random::<u64>())
}

/// Runs `cmd` in the container and returns its exit code, discarding output.
pub async fn run_to_completion(
    k: &Kubelet,
    pod_uid: &str,
    container_id: &str,
    cmd: Vec<String>,
) -> Result<i32, RuntimeError> {
    let id = exec_id();
    k.runtime
        .exec(ExecConfig {
            container_id: container_id.into(),
            exec_id: id.clone(),
            process: pod_container_process_spec(&k.pod_dir(pod_uid), container_id, &cmd, false),
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

/// An interactive exec of `command` in container `container_id`, its stdio carried by
/// `streams` (either transport): output until the process's pipes close, then its exit
/// Status.
pub async fn session(
    k: std::sync::Arc<Kubelet>,
    streams: crate::container::streaming::Streams,
    container_id: String,
    command: Vec<String>,
    opts: crate::container::streaming::Options,
) {
    use crate::container::streaming::{exit_status, failure, Input, Output};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exec_id = exec_id();
    let tty = opts.tty;
    // The shim needs both output paths (an empty one fails); unwanted output is discarded.
    let fifos = match make_fifos(&k.root_dir.join("exec"), &exec_id, opts.stdin, true, !tty) {
        Ok(f) => f,
        Err(e) => {
            let _ = streams.output.send(Output::Exit(failure("InternalError", e.to_string()))).await;
            return;
        }
    };
    let open_rx = |p: &Option<PathBuf>| -> std::io::Result<Option<(tokio::net::unix::pipe::Receiver, tokio::net::unix::pipe::Sender)>> {
        match p {
            None => Ok(None),
            Some(p) => {
                let r = tokio::net::unix::pipe::OpenOptions::new().open_receiver(p)?;
                let hold = tokio::net::unix::pipe::OpenOptions::new().open_sender(p)?;
                Ok(Some((r, hold)))
            }
        }
    };
    let opened = (|| -> std::io::Result<_> {
        let out = open_rx(&fifos.stdout)?;
        let err = open_rx(&fifos.stderr)?;
        let input = match &fifos.stdin {
            Some(p) => Some(tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_sender(p)?),
            None => None,
        };
        Ok((out, err, input))
    })();
    let (out, err, input) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = streams.output.send(Output::Exit(failure("InternalError", e.to_string()))).await;
            let _ = std::fs::remove_dir_all(&fifos.dir);
            return;
        }
    };
    let cfg = ExecConfig {
        container_id: container_id.clone(),
        exec_id: exec_id.clone(),
        // As containerd's CRI does: the container's own user, env and cwd.
        process: container_process_spec(&k.root_dir, &container_id, &command, tty),
        stdin: fifos.stdin.clone(),
        stdout: fifos.stdout.clone(),
        stderr: fifos.stderr.clone(),
        terminal: tty,
    };
    let started = k.runtime.exec(cfg).await;
    let mut pumps = Vec::new();
    for (is_err, pipe, wanted) in [(false, out, opts.stdout), (true, err, opts.stderr)] {
        if let Some((mut r, hold)) = pipe {
            drop(hold);
            let tx = streams.output.clone();
            pumps.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) if !wanted => {}
                        Ok(n) => {
                            let b = bytes::Bytes::copy_from_slice(&buf[..n]);
                            let o = if is_err { Output::Stderr(b) } else { Output::Stdout(b) };
                            if tx.send(o).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    if let Err(e) = started {
        for p in pumps {
            p.abort();
        }
        let _ = streams.output.send(Output::Exit(failure("InternalError", e.to_string()))).await;
        let _ = std::fs::remove_dir_all(&fifos.dir);
        return;
    }
    // Client → process: stdin, resize, close.
    let k2 = k.clone();
    let (cid, eid) = (container_id.clone(), exec_id.clone());
    let mut input_rx = streams.input;
    let reader = tokio::spawn(async move {
        let mut input = input;
        while let Some(i) = input_rx.recv().await {
            match i {
                Input::Stdin(data) => {
                    if let Some(w) = input.as_mut() {
                        let _ = w.write_all(&data).await;
                    }
                }
                Input::Resize { width, height } => {
                    let _ = k2.runtime.resize_exec(&cid, &eid, width.into(), height.into()).await;
                }
                Input::StdinEof => {
                    if let Some(mut w) = input.take() {
                        let _ = w.flush().await;
                        drop(w);
                        let _ = k2.runtime.close_exec_stdin(&cid, &eid).await;
                    }
                }
            }
        }
    });
    let code = k.runtime.wait_exec(&container_id, &exec_id).await.unwrap_or(1);
    for p in pumps {
        let _ = p.await;
    }
    let _ = streams.output.send(Output::Exit(exit_status(code, &command))).await;
    reader.abort();
    let _ = std::fs::remove_dir_all(&fifos.dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_takes_the_containers_process_with_new_args() {
        let d = tempfile::tempdir().unwrap();
        let pod_dir = d.path().join("pods").join("u1");
        let process = json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 2000},
            "args": ["sleep", "3600"],
            "env": ["PATH=/bin", "A=1"],
            "cwd": "/work",
        });
        save_process(&pod_dir, "c1", &process).unwrap();
        let cmd = vec!["id".to_string()];
        let p = container_process_spec(d.path(), "c1", &cmd, true);
        assert_eq!(p["args"], json!(["id"]));
        assert_eq!(p["user"], json!({"uid": 1000, "gid": 2000}));
        assert_eq!(p["cwd"], json!("/work"));
        assert_eq!(p["terminal"], json!(true));
        assert_eq!(p["env"], json!(["PATH=/bin", "A=1", "TERM=xterm"]));
        assert_eq!(pod_container_process_spec(&pod_dir, "c1", &cmd, true), p);
        // Unknown containers get the plain root process.
        let p = container_process_spec(d.path(), "other", &cmd, false);
        assert_eq!(p, process_spec(&cmd, false));
    }
}
