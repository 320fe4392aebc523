//! Wall-clock time in Unix milliseconds, and a clock that tests can move.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A clock: the system clock plus an offset that tests (and only tests) move forward, so
/// that deadlines and retention can be checked without waiting.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now according to this clock.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

pub use trm_proto::date::{format_ms, parse_date_ms};
