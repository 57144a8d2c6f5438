//! Termination messages: the file a container writes its last words to
//! (`terminationMessagePath`), bind-mounted from the pod dir and read back
//! into `state.terminated.message`, with `FallbackToLogsOnError` taking the
//! tail of the log instead when the file is empty and the container failed.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::container::logs;
use crate::container::spec::BindMount;
use crate::runtime::{ContainerState, ObservedContainer};

/// The path the apiserver defaults `terminationMessagePath` to.
pub const DEFAULT_PATH: &str = "/dev/termination-log";
/// Upstream reads at most the last 4 KiB of the file.
pub const MAX_BYTES: u64 = 4096;
/// `FallbackToLogsOnError` takes the last 80 log lines, at most 2 KiB of them.
pub const FALLBACK_LINES: i64 = 80;
pub const FALLBACK_BYTES: usize = 2048;
/// How much of a log file's end is parsed for the fallback: 80 lines fit
/// unless they are very long, and a crash-looping container's whole log never
/// needs reading.
const LOG_WINDOW: u64 = 256 * 1024;

/// The container path of the message file; None when the pod asks for none.
/// A pod that skipped API defaulting (None) gets upstream's default.
pub fn container_path(c: &Container) -> Option<&str> {
    match c.termination_message_path.as_deref() {
        None => Some(DEFAULT_PATH),
        Some("") => None,
        Some(p) => Some(p),
    }
}

fn fallback_to_logs(c: &Container) -> bool {
    c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
}

/// The host file behind one attempt's message, under the pod dir as upstream's
/// `pods/<uid>/containers/<name>/`.
pub fn host_path(pod_dir: &Path, container: &str, restart_count: i32) -> PathBuf {
    pod_dir
        .join("containers")
        .join(container)
        .join(format!("{restart_count}.termination-log"))
}

/// Creates the empty message file for an attempt and returns its mount.
pub fn prepare(
    pod_dir: &Path,
    c: &Container,
    restart_count: i32,
) -> std::io::Result<Option<BindMount>> {
    let Some(path) = container_path(c) else {
        return Ok(None);
    };
    let host = host_path(pod_dir, &c.name, restart_count);
    if let Some(parent) = host.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&host, b"")?;
    // Any user the container runs as must be able to write it; the umask would narrow it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o666))?;
    Ok(Some(BindMount {
        host_path: host.display().to_string(),
        container_path: path.to_string(),
        read_only: false,
    }))
}

/// The last `max` bytes of a file, as upstream's tail.ReadAtMost.
fn read_at_most(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max))?;
    }
    let mut out = Vec::new();
    f.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// The tail of a log for `FallbackToLogsOnError`: last 80 lines, last 2 KiB.
fn log_tail(log: &Path) -> String {
    let Ok(mut b) = read_at_most(log, LOG_WINDOW) else {
        return String::new();
    };
    // A window that cut a record in half starts at the next whole one.
    if std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) > LOG_WINDOW {
        let cut = b
            .iter()
            .position(|c| *c == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        b.drain(..cut);
    }
    let records: Vec<logs::LogRecord> = b
        .split_inclusive(|c| *c == b'\n')
        .filter_map(logs::parse_line)
        .collect();
    let out = logs::render(
        &records,
        &logs::LogOptions {
            tail_lines: Some(FALLBACK_LINES),
            ..Default::default()
        },
    );
    let start = out.len().saturating_sub(FALLBACK_BYTES);
    String::from_utf8_lossy(&out[start..]).into_owned()
}

/// The message of an exited attempt, as upstream's getTerminationMessage:
/// the file's content, or with `FallbackToLogsOnError` the log's tail when the
/// file is empty and the container failed (not when it never ran).
pub fn read(
    pod_dir: &Path,
    log_dir: &Path,
    c: &Container,
    o: &ObservedContainer,
    start_error: bool,
) -> Option<String> {
    read_final(pod_dir, log_dir, c, o, start_error).0
}

/// The message, and whether it is final: a dead container's file no longer
/// changes, but its log may still be draining from the FIFO.
fn read_final(
    pod_dir: &Path,
    log_dir: &Path,
    c: &Container,
    o: &ObservedContainer,
    start_error: bool,
) -> (Option<String>, bool) {
    let ContainerState::Exited { exit_code, .. } = o.state else {
        return (None, false);
    };
    let fallback = fallback_to_logs(c) && exit_code != 0 && !start_error;
    let from_file = match container_path(c) {
        None => None,
        Some(_) => match read_at_most(&host_path(pod_dir, &o.name, o.restart_count), MAX_BYTES) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return (
                    Some(format!("Error on reading termination log: {e}")),
                    false,
                )
            }
        },
    };
    match from_file {
        Some(m) if !m.is_empty() => (Some(m), true),
        _ if fallback => {
            let m = log_tail(&logs::log_path(log_dir, &o.name, o.restart_count));
            ((!m.is_empty()).then_some(m), false)
        }
        _ => (None, true),
    }
}

/// What status generation needs about a pod it has no kubelet context for.
#[derive(Default)]
struct PodEntry {
    pod_dir: PathBuf,
    log_dir: PathBuf,
    /// Final messages (or their absence) by container ID, so that a dead
    /// container's file is read once. Log fallbacks are not kept: the log
    /// copier may still be draining the FIFO when the exit is first seen.
    read: HashMap<String, Option<String>>,
}

/// Pod dirs by pod UID. The pod worker hands status generation no kubelet
/// context, so the places that have one register the pod here.
static PODS: LazyLock<Mutex<HashMap<String, PodEntry>>> = LazyLock::new(Default::default);

/// Makes a pod's message files findable by [`message`].
pub fn register(uid: &str, pod_dir: PathBuf, log_dir: PathBuf) {
    if let Ok(mut m) = PODS.lock() {
        let e = m.entry(uid.to_string()).or_default();
        if e.pod_dir != pod_dir {
            *e = PodEntry {
                pod_dir,
                log_dir,
                read: HashMap::new(),
            };
        }
    }
}

/// Forgets a pod whose directory is going away.
pub fn forget(uid: &str) {
    if let Ok(mut m) = PODS.lock() {
        m.remove(uid);
    }
}

/// The termination message of an exited attempt of container `c` of `pod`.
pub fn message(
    pod: &Pod,
    c: &Container,
    o: &ObservedContainer,
    start_error: bool,
) -> Option<String> {
    if !matches!(o.state, ContainerState::Exited { .. }) {
        return None;
    }
    let uid = pod.metadata.uid.as_deref()?;
    let (pod_dir, log_dir) = {
        let m = PODS.lock().ok()?;
        let e = m.get(uid)?;
        if let Some(msg) = e.read.get(&o.id) {
            return msg.clone();
        }
        (e.pod_dir.clone(), e.log_dir.clone())
    };
    let (msg, fin) = read_final(&pod_dir, &log_dir, c, o, start_error);
    if fin {
        if let Ok(mut pods) = PODS.lock() {
            if let Some(e) = pods.get_mut(uid) {
                e.read.insert(o.id.clone(), msg.clone());
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn container(json: &str) -> Container {
        serde_json::from_str(json).unwrap()
    }

    fn exited(name: &str, rc: i32, code: i32) -> ObservedContainer {
        ObservedContainer {
            id: format!("{name}-{rc}"),
            pod_uid: "u".into(),
            pod_name: "p".into(),
            pod_namespace: "default".into(),
            name: name.into(),
            restart_count: rc,
            image: "busybox".into(),
            image_id: String::new(),
            state: ContainerState::Exited {
                exit_code: code,
                started_at: None,
                finished_at: Utc::now(),
            },
            created_at: Utc::now(),
            oom_killed: false,
        }
    }

    fn write_log(log_dir: &Path, name: &str, rc: i32, lines: &[&str]) {
        let p = logs::log_path(log_dir, name, rc);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut b = Vec::new();
        for l in lines {
            b.extend(logs::format_line(Utc::now(), "stdout", false, l.as_bytes()));
        }
        std::fs::write(p, b).unwrap();
    }

    #[test]
    fn default_path_is_mounted_from_a_world_writable_file() {
        let d = tempfile::tempdir().unwrap();
        let c = container(r#"{"name": "main"}"#);
        let m = prepare(d.path(), &c, 2).unwrap().unwrap();
        assert_eq!(m.container_path, DEFAULT_PATH);
        assert!(!m.read_only);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&m.host_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
        let none = container(r#"{"name": "main", "terminationMessagePath": ""}"#);
        assert_eq!(prepare(d.path(), &none, 0).unwrap(), None);
    }

    #[test]
    fn file_content_is_the_message_capped_at_4096_bytes() {
        let d = tempfile::tempdir().unwrap();
        let c = container(r#"{"name": "main", "terminationMessagePath": "/dev/custom"}"#);
        let m = prepare(d.path(), &c, 0).unwrap().unwrap();
        assert_eq!(m.container_path, "/dev/custom");
        std::fs::write(&m.host_path, "DONE").unwrap();
        let o = exited("main", 0, 0);
        assert_eq!(
            read(d.path(), d.path(), &c, &o, false).as_deref(),
            Some("DONE")
        );
        let long = format!("{}END", "x".repeat(5000));
        std::fs::write(&m.host_path, &long).unwrap();
        let got = read(d.path(), d.path(), &c, &o, false).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.ends_with("END"));
    }

    #[test]
    fn fallback_to_logs_only_on_error_with_an_empty_file() {
        let d = tempfile::tempdir().unwrap();
        let logs_dir = d.path().join("logs");
        let c =
            container(r#"{"name": "main", "terminationMessagePolicy": "FallbackToLogsOnError"}"#);
        prepare(d.path(), &c, 0).unwrap();
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
        write_log(&logs_dir, "main", 0, &refs);
        // Succeeded: empty, whatever the logs say.
        assert_eq!(
            read(d.path(), &logs_dir, &c, &exited("main", 0, 0), false),
            None
        );
        // Failed: the last 80 lines, trimmed to the last 2048 bytes.
        let got = read(d.path(), &logs_dir, &c, &exited("main", 0, 1), false).unwrap();
        assert!(got.ends_with("line 99\n"), "{got}");
        assert!(!got.contains("line 19\n"), "{got}");
        assert!(got.len() <= FALLBACK_BYTES);
        // A container that never ran has no logs to fall back to.
        assert_eq!(
            read(d.path(), &logs_dir, &c, &exited("main", 0, 128), true),
            None
        );
        // A file with content wins over the logs.
        std::fs::write(host_path(d.path(), "main", 0), "from file").unwrap();
        assert_eq!(
            read(d.path(), &logs_dir, &c, &exited("main", 0, 1), false).as_deref(),
            Some("from file")
        );
    }

    #[test]
    fn fallback_keeps_the_last_2048_bytes() {
        let d = tempfile::tempdir().unwrap();
        let logs_dir = d.path().join("logs");
        let c = container(
            r#"{"name": "main", "terminationMessagePolicy": "FallbackToLogsOnError", "terminationMessagePath": ""}"#,
        );
        let long = "y".repeat(3000);
        write_log(&logs_dir, "main", 0, &[&long, "tail"]);
        let got = read(d.path(), &logs_dir, &c, &exited("main", 0, 2), false).unwrap();
        assert_eq!(got.len(), FALLBACK_BYTES);
        assert!(got.ends_with("y\ntail\n"));
    }

    #[test]
    fn registered_pods_are_found_and_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let uid = format!("uid-{}", rand::random::<u64>());
        let mut pod = Pod::default();
        pod.metadata.uid = Some(uid.clone());
        let c = container(r#"{"name": "main"}"#);
        let m = prepare(d.path(), &c, 0).unwrap().unwrap();
        std::fs::write(&m.host_path, "bye").unwrap();
        let o = exited("main", 0, 0);
        assert_eq!(message(&pod, &c, &o, false), None);
        register(&uid, d.path().to_path_buf(), d.path().join("logs"));
        assert_eq!(message(&pod, &c, &o, false).as_deref(), Some("bye"));
        // Read once: a dead container's file is final.
        std::fs::remove_file(&m.host_path).unwrap();
        assert_eq!(message(&pod, &c, &o, false).as_deref(), Some("bye"));
        forget(&uid);
        assert_eq!(message(&pod, &c, &o, false), None);
    }
}
