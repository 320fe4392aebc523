//! Counters the node keeps for `status` and the Prometheus endpoint. Labels are peer
//! countries and message kinds only: never a case field value.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named counters with (peer, kind) labels, plus a delivery latency histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String, String), u64>>,
    latency: Mutex<Histogram>,
}

/// Upper bounds of the delivery latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0];

/// A cumulative histogram in the Prometheus sense.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// Count per bucket of [`LATENCY_BUCKETS`] (not cumulative), then +Inf.
    pub buckets: [u64; 11],
    /// Sum of observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Metrics {
    /// Adds one to `name{peer, kind}`.
    pub fn inc(&self, name: &'static str, peer: &str, kind: &str) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((name, peer.to_string(), kind.to_string()))
            .or_default() += 1;
    }

    /// Records one delivery latency.
    pub fn observe_latency(&self, secs: f64) {
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += secs;
        h.count += 1;
    }

    /// A snapshot of every counter.
    pub fn counters(&self) -> Vec<(&'static str, String, String, u64)> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((n, p, k), v)| (*n, p.clone(), k.clone(), *v))
            .collect()
    }

    /// Sum of `name` over all labels.
    pub fn total(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((n, _, _), _)| *n == name)
            .map(|(_, v)| *v)
            .sum()
    }

    /// The latency histogram.
    pub fn latency(&self) -> Histogram {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
