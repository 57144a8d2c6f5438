//! A test binary killed by SIGTERM (hack/test.sh's `timeout`, Ctrl-C) still
//! kills what testkit started for it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Process, TestDir};

const VICTIM: &str = "TESTKIT_SIGNAL_VICTIM";

/// Child mode: start a process, report its PID and dir, then wait to be killed.
#[test]
fn victim_holds_a_process_until_signalled() {
    if std::env::var_os(VICTIM).is_none() {
        return;
    }
    let dir = TestDir::new("victim").unwrap();
    let p = Process::spawn("sleeper", Path::new("/bin/sleep"), ["600"], dir.path()).unwrap();
    println!("PID {} DIR {}", p.pid().unwrap(), dir.path().display());
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn sigterm_to_the_test_binary_kills_its_processes_and_removes_its_dirs() {
    if std::env::var_os(VICTIM).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "victim_holds_a_process_until_signalled",
            "--nocapture",
        ])
        .env(VICTIM, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (pid, dir) = loop {
        let line = lines.next().expect("victim ended early").unwrap();
        if let Some(rest) = line.strip_prefix("PID ") {
            let (pid, dir) = rest.split_once(" DIR ").unwrap();
            break (pid.to_string(), dir.to_string());
        }
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    // The sleeper was reparented when its parent died, so nobody reaps it
    // here: wait for it to vanish or turn zombie.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            break;
        }
        assert!(Instant::now() < deadline, "sleeper {pid} survived: {stat}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!Path::new(&dir).exists(), "{dir} was left behind");
}
