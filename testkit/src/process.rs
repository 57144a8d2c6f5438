//! A child process with its output captured to a log file, killed by PID on
//! drop; its log is printed when the test fails (or FERROKUBE_TEST_LOGS=1).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::reaper::{self, Live};
use crate::Error;

/// How much of a log to print on failure.
const TAIL_BYTES: u64 = 24 * 1024;

#[derive(Debug)]
pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    log: PathBuf,
    child: Option<Child>,
    token: Option<u64>,
}

impl Process {
    /// Spawn `program args` with stdout+stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        log_dir: &Path,
    ) -> Result<Process, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::spawn_with_env(
            name,
            program,
            args,
            Vec::<(OsString, OsString)>::new(),
            log_dir,
        )
    }

    pub fn spawn_with_env<I, S, E, K, V>(
        name: &str,
        program: &Path,
        args: I,
        envs: E,
        log_dir: &Path,
    ) -> Result<Process, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
        E: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut p = Process {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.into_iter().map(Into::into).collect(),
            envs: envs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            log: log_dir.join(format!("{name}.log")),
            child: None,
            token: None,
        };
        p.start()?;
        Ok(p)
    }

    fn start(&mut self) -> Result<(), Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(format!("opening {}", self.log.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("cloning log fd", e))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            name: self.name.clone(),
            program: self.program.clone(),
            source,
        })?;
        self.token = Some(reaper::register(Live::Process(child.id())));
        self.child = Some(child);
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `Some(status)` once the process has exited (or was never running).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// An error describing an early exit, with the log tail, if it exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        if self.child.is_none() {
            return Err(self.exited_error("not running".into()));
        }
        match self.exit_status() {
            Some(st) => Err(self.exited_error(st.to_string())),
            None => Ok(()),
        }
    }

    fn exited_error(&self, status: String) -> Error {
        Error::ExitedEarly {
            name: self.name.clone(),
            status,
            log: self.log.clone(),
            tail: self.log_tail(4096),
        }
    }

    /// SIGKILL (what `kill -9` does) and reap.
    pub fn kill(&mut self) {
        self.stop_with(Signal::SIGKILL, Duration::ZERO);
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        self.stop_with(Signal::SIGTERM, grace);
    }

    fn stop_with(&mut self, sig: Signal, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            if child.try_wait().ok().flatten().is_none() {
                let _ = kill(pid, sig);
                let deadline = Instant::now() + grace;
                while Instant::now() < deadline {
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if child.try_wait().ok().flatten().is_none() {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
            let _ = child.wait();
        }
        if let Some(t) = self.token.take() {
            reaper::forget(t);
        }
    }

    /// Stop (SIGTERM, then SIGKILL) and start the same command again; the log
    /// is appended to.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.terminate(Duration::from_secs(5));
        self.start()
    }

    /// Start again after [`kill`](Self::kill) or an exit.
    pub fn start_again(&mut self) -> Result<(), Error> {
        if self.is_running() {
            return Ok(());
        }
        self.stop_with(Signal::SIGKILL, Duration::ZERO);
        self.start()
    }

    /// The last `max` bytes of the log.
    pub fn log_tail(&self, max: u64) -> String {
        log_tail(&self.log, max)
    }

    /// Print the log tail to stderr (libtest captures it per test).
    pub fn print_log(&self) {
        eprintln!(
            "----- {} log ({}) -----\n{}\n----- end {} -----",
            self.name,
            self.log.display(),
            self.log_tail(TAIL_BYTES),
            self.name
        );
    }
}

/// Whether logs should be printed now: the thread is unwinding from a failed
/// assertion, or the user asked for them.
pub fn should_print_logs() -> bool {
    std::thread::panicking() || std::env::var_os("FERROKUBE_TEST_LOGS").is_some()
}

/// The last `max` bytes of the file at `path` (empty if unreadable).
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).to_string()
}

impl Drop for Process {
    fn drop(&mut self) {
        if should_print_logs() {
            self.print_log();
        }
        self.terminate(Duration::from_secs(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_the_log_and_drop_kills_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            ["-c", "echo hello-from-child; exec sleep 600"],
            dir.path(),
        )
        .unwrap();
        let pid = p.pid().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !p.log_tail(1024).contains("hello-from-child") {
            assert!(Instant::now() < deadline, "log never got the output");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(p.is_running());
        drop(p);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn early_exit_is_reported_with_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::spawn(
            "failing",
            Path::new("/bin/sh"),
            ["-c", "echo bad flag >&2; exit 3"],
            dir.path(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.is_running() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        let err = p.check_running().unwrap_err().to_string();
        assert!(err.contains("bad flag"), "{err}");
        assert!(err.contains("failing"), "{err}");
    }

    #[test]
    fn killed_process_can_start_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            Process::spawn("sleeper", Path::new("/bin/sleep"), ["600"], dir.path()).unwrap();
        let first = p.pid().unwrap();
        p.kill();
        assert!(!p.is_running());
        p.start_again().unwrap();
        assert!(p.is_running());
        assert_ne!(p.pid().unwrap(), first);
    }
}
