//! Everything the harness starts or creates, so it can be undone even when
//! the owner is never dropped (a `static` shared cluster): the registry is
//! emptied by an `atexit` hook when the test binary exits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

/// One thing to undo.
#[derive(Debug, Clone)]
pub enum Live {
    /// A process we spawned.
    Process(u32),
    /// containerd shims (and their containers) serving this socket.
    ContainerdShims(PathBuf),
    /// A network interface (a CNI bridge, a cluster's dummy host interface) to delete.
    Link(String),
    /// An nft table (family ip) a service proxy programmed.
    NftTable(String),
    /// A sysctl to put back to `value` once no slot under `slot_dir` but `slot` is held
    /// (route_localnet, which every cluster's proxies need while any cluster runs).
    Sysctl { path: PathBuf, value: String, slot_dir: PathBuf, slot: u8 },
    /// A temp dir: unmount everything under it, then remove it.
    Dir(PathBuf),
}

static LIVE: Mutex<BTreeMap<u64, Live>> = Mutex::new(BTreeMap::new());
static NEXT: Mutex<u64> = Mutex::new(0);
static HOOK: Once = Once::new();

extern "C" fn at_exit() {
    let all: Vec<Live> = {
        let mut guard = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *guard).into_values().collect()
    };
    // Processes first, then what they held.
    let rank = |l: &Live| match l {
        Live::Process(_) => 0,
        Live::ContainerdShims(_) => 1,
        Live::Link(_) | Live::NftTable(_) | Live::Sysctl { .. } => 2,
        Live::Dir(_) => 3,
    };
    let mut all = all;
    all.sort_by_key(rank);
    for l in &all {
        undo(l);
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    // Only async-signal-safe work here: hand the signal to the cleanup thread.
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) on a pipe fd is async-signal-safe.
        unsafe {
            nix::libc::write(fd, &b as *const u8 as *const nix::libc::c_void, 1);
        }
    }
}

/// On SIGINT/SIGTERM (Ctrl-C, `timeout`), undo everything, then exit as the
/// signal would have: atexit hooks do not run when a signal kills us.
fn install_signal_cleanup() {
    let Ok((rd, wr)) = nix::unistd::pipe() else {
        return;
    };
    SIGNAL_PIPE.store(wr.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(wr);
    let spawned = std::thread::Builder::new()
        .name("testkit-reaper".into())
        .spawn(move || {
            let mut f = std::fs::File::from(rd);
            let mut b = [0u8; 1];
            if std::io::Read::read_exact(&mut f, &mut b).is_ok() {
                at_exit();
                std::process::exit(128 + b[0] as i32);
            }
        });
    if spawned.is_err() {
        return;
    }
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only calls write(2).
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// Record `live`; undone by [`release`] or at process exit.
pub fn register(live: Live) -> u64 {
    HOOK.call_once(|| {
        // SAFETY: registering a plain extern "C" fn with libc's atexit.
        unsafe {
            nix::libc::atexit(at_exit);
        }
        install_signal_cleanup();
    });
    let id = {
        let mut n = NEXT.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        *n
    };
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, live);
    id
}

/// Undo `id` now and forget it.
pub fn release(id: u64) {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    if let Some(l) = live {
        undo(&l);
    }
}

/// Forget `id` without undoing it (the owner already did).
pub fn forget(id: u64) {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
}

fn undo(live: &Live) {
    match live {
        Live::Process(pid) => {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        Live::ContainerdShims(socket) => kill_shims(socket),
        Live::Link(name) => {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", name])
                .stderr(std::process::Stdio::null())
                .status();
        }
        Live::NftTable(name) => {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", name])
                .stderr(std::process::Stdio::null())
                .status();
        }
        Live::Sysctl { path, value, slot_dir, slot } => {
            if !other_slot_held(slot_dir, *slot) {
                let _ = std::fs::write(path, value);
            }
        }
        Live::Dir(dir) => {
            unmount_under(dir);
            if std::env::var_os("FERROKUBE_KEEP_TEST_DIRS").is_none() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Whether a slot lock under `dir` other than `own` is held (by any process).
fn other_slot_held(dir: &Path, own: u8) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        if name == format!("slot-{own}") {
            return false;
        }
        match std::fs::File::options().write(true).open(e.path()) {
            Ok(f) => nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err(),
            Err(_) => false,
        }
    })
}

/// PIDs of containerd shims started for `socket` (their command line names
/// the containerd address), then every direct child of those (container
/// inits: killing a PID-namespace init kills the namespace).
pub fn shim_and_container_pids(socket: &Path) -> (Vec<u32>, Vec<u32>) {
    let socket = socket.to_string_lossy().to_string();
    let mut shims = Vec::new();
    let mut parents: Vec<(u32, u32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (shims, Vec::new());
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            let is_shim = args
                .first()
                .map(|a| a.contains("containerd-shim"))
                .unwrap_or(false);
            if is_shim && args.iter().any(|a| *a == socket) {
                shims.push(pid);
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(ppid) = parse_ppid(&stat) {
                parents.push((pid, ppid));
            }
        }
    }
    let children = parents
        .iter()
        .filter(|(_, ppid)| shims.contains(ppid))
        .map(|(pid, _)| *pid)
        .collect();
    (shims, children)
}

/// The PPID field of /proc/<pid>/stat (the comm field may hold spaces and
/// parentheses, so parse from the last ')').
fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn kill_shims(socket: &Path) {
    let (shims, children) = shim_and_container_pids(socket);
    for pid in children.iter().chain(shims.iter()) {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Lazily unmount everything at or below `dir` (netns bind mounts, container
/// rootfs overlays), so the dir can be removed.
pub fn unmount_under(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_command_name() {
        assert_eq!(parse_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn released_entries_are_undone_once() {
        let dir = tempfile::tempdir().unwrap().keep();
        let id = register(Live::Dir(dir.clone()));
        release(id);
        assert!(!dir.exists());
        release(id);
    }
}

/// Undoes one registered thing when dropped.
#[derive(Debug)]
pub struct Guard(u64);

impl Guard {
    pub fn new(live: Live) -> Guard {
        Guard(register(live))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        release(self.0);
    }
}
