//! The machine's CPU and memory, the node's capacity before reservations.

/// CPU in millicores and memory in bytes.
pub fn node_capacity() -> (i64, i64) {
    (host_cpu_milli(), host_memory())
}

pub fn host_cpu_milli() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64 * 1000)
        .unwrap_or(1000)
}

pub fn host_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
