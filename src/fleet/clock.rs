//! Injected time. The core never reads the system clock.

use std::sync::Mutex;
use std::time::Duration;

/// A source of time and a way to wait.
///
/// Hosts pass a real clock; tests pass [`VirtualClock`], which jumps straight
/// to the next wake-up, so intervals and timeouts are tested without sleeps.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
    /// Waits for `d`.
    async fn sleep(&self, d: Duration);
}

/// A clock that only moves when someone sleeps on it.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: Mutex<Duration>,
}

impl VirtualClock {
    /// A virtual clock starting at `start` after the epoch.
    pub fn new(start: Duration) -> Self {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += d;
    }
}

#[async_trait::async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep(&self, d: Duration) {
        self.advance(d);
    }
}
