//! Receive-side budgets per peer (token buckets) and erasures in progress.

/// What a peer's budget limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Rejections written to the audit log.
    LoggedRejection,
    /// Erasure requests carried out (each rotates the master key).
    Erasure,
}

impl Limit {
    /// (burst, seconds per refilled token).
    pub(crate) fn rate(self) -> (f64, f64) {
        match self {
            Limit::LoggedRejection => (LOGGED_REJECTIONS_BURST, 1.0),
            Limit::Erasure => (ERASURES_BURST, 6.0),
        }
    }
}

/// Per peer: at most this many logged rejections at once, then one per second.
pub const LOGGED_REJECTIONS_BURST: f64 = 100.0;
/// Per peer: at most this many erasure requests at once, then one per 6 seconds.
pub const ERASURES_BURST: f64 = 10.0;

/// Receive-side state shared by the node's tasks: per-peer budgets, erasures in progress, and
/// a test switch.
#[derive(Default)]
pub struct RecvState {
    buckets:
        std::sync::Mutex<std::collections::HashMap<(String, Limit), (f64, std::time::Instant)>>,
    /// Pending erasures being carried out by this process (meta keys).
    pub erasing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Test switch (fault injection): 1 = stop an erasure before it is carried out, 2 = after
    /// it is carried out and before it is confirmed (as a crash there would).
    pub erasure_stop_at: std::sync::atomic::AtomicU8,
}

impl RecvState {
    /// Takes one token of `peer`'s `limit` budget; false when it is spent.
    pub fn allow(&self, peer: &str, limit: Limit) -> bool {
        let (burst, per) = limit.rate();
        let now = std::time::Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = b.entry((peer.to_string(), limit)).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() / per).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
