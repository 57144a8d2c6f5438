//! The queue's notion of time, injectable so tests advance it by hand.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
pub struct FakeClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

impl FakeClock {
    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.base + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}
