//! Giving freed heap back to the kernel. glibc keeps freed pages inside its
//! arenas: after a burst (thousands of pending pods queued, decoded and
//! bound) the scheduler's live data shrinks but its RSS would not. Upstream
//! Go returns such pages through its scavenger; here a small task does it
//! when enough free memory has piled up.

use std::time::Duration;

/// Free heap bytes above which a trim pays for its page walk.
const TRIM_THRESHOLD: usize = 8 << 20;
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Two arenas: the scheduler's allocations come from a couple of tokio
/// workers, and every extra arena holds its own free pages.
pub fn limit_arenas() {
    // SAFETY: mallopt only tunes the allocator; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Bytes the allocator holds free (not returned to the kernel).
pub fn free_heap_bytes() -> usize {
    // SAFETY: mallinfo2 reads allocator statistics under its own locks.
    let info = unsafe { libc::mallinfo2() };
    info.fordblks
}

/// Returns free heap pages to the kernel; true if any were released.
pub fn trim() -> bool {
    // SAFETY: malloc_trim is thread-safe; 0 keeps no extra pad at the top.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Runs forever, trimming whenever free heap has grown by more than the
/// threshold since the last look. Trimmed chunks still count as free, so
/// the baseline follows the free figure down as memory is reused.
pub async fn trim_freed_memory() {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut baseline = 0usize;
    loop {
        tick.tick().await;
        let free = free_heap_bytes();
        if free > baseline + TRIM_THRESHOLD {
            let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
            tracing::debug!(released, free, "trimmed the heap");
        }
        baseline = free;
    }
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_gives_a_freed_burst_back_to_the_kernel() {
        // Small blocks with a survivor every so often: the freed space cannot
        // shrink the heap's top, only a trim releases its pages.
        let mut blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1024]).collect();
        let survivors: Vec<Vec<u8>> = blocks.iter_mut().step_by(64).map(std::mem::take).collect();
        drop(blocks);
        let before = rss_bytes();
        assert!(free_heap_bytes() > TRIM_THRESHOLD, "the freed burst shows as free heap");
        assert!(trim(), "trim released pages");
        let after = rss_bytes();
        assert!(after + (16 << 20) < before, "RSS {before} -> {after}");
        drop(survivors);
    }
}
