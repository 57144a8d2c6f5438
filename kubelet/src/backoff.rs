//! Exponential crash back-off per container: 10s doubling to 5min, as
//! upstream's kubelet uses for CrashLoopBackOff and ImagePullBackOff.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default)]
pub struct Backoff {
    entries: HashMap<String, Duration>,
}

impl Backoff {
    /// True while `key` must wait: `since` (the last failure) + the current delay is in the future.
    pub fn in_backoff(&self, key: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self.entries.get(key) {
            Some(d) => now < since + chrono::Duration::from_std(*d).unwrap_or_default(),
            None => false,
        }
    }

    /// Records another failure: the first gives 10s, each next doubles, capped at 5min.
    pub fn next(&mut self, key: &str) -> Duration {
        let d = match self.entries.get(key) {
            None => INITIAL,
            Some(d) => (*d * 2).min(MAX),
        };
        self.entries.insert(key.to_string(), d);
        d
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..7).map(|_| b.next("k").as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn in_backoff_until_delay_elapses() {
        let mut b = Backoff::default();
        let t0 = Utc::now();
        assert!(!b.in_backoff("k", t0, t0));
        b.next("k");
        assert!(b.in_backoff("k", t0, t0 + chrono::Duration::seconds(9)));
        assert!(!b.in_backoff("k", t0, t0 + chrono::Duration::seconds(10)));
        b.reset("k");
        assert!(!b.in_backoff("k", t0, t0));
    }
}
