//! Counters the node keeps for `status` and the Prometheus endpoint. Labels are peer
//! countries and message kinds only: never a case field value.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The node's counters, each with (peer, second label) labels: the one list of their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Messages signed and put in the outbox.
    Sent,
    /// Messages whose signed receipt was stored.
    Delivered,
    /// Messages received, stored and receipted.
    Received,
    /// Incoming messages this node rejected.
    Rejected,
    /// Messages the recipient rejected with a signed rejection.
    RejectedByPeer,
    /// Incoming duplicates answered with the first receipt again.
    Duplicate,
    /// Peer handshakes refused: certificate not pinned or absent.
    HandshakesRefused,
    /// Peer handshakes that failed otherwise or timed out.
    HandshakesFailed,
    /// Peer handshakes asked to validate their address with a QUIC Retry.
    HandshakesRetried,
    /// Peer handshakes refused by a listener limit.
    HandshakesLimited,
    /// Established peer connections closed by a listener limit.
    ConnectionsLimited,
    /// Peers held because their audit log contradicted what they showed before.
    PeerLogInconsistent,
    /// Rejections signed and sent past the per-peer logging limit, not logged.
    RejectedUnlogged,
}

/// How a counter appears on the Prometheus endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    /// Metric name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Name of the second label (the first is `peer`).
    pub label: &'static str,
}

impl Counter {
    /// Every counter, in the order the endpoint lists them.
    pub const ALL: [Counter; 13] = [
        Counter::Sent,
        Counter::Delivered,
        Counter::Received,
        Counter::Rejected,
        Counter::RejectedByPeer,
        Counter::Duplicate,
        Counter::HandshakesRefused,
        Counter::HandshakesFailed,
        Counter::HandshakesRetried,
        Counter::HandshakesLimited,
        Counter::ConnectionsLimited,
        Counter::PeerLogInconsistent,
        Counter::RejectedUnlogged,
    ];

    /// The counter's short name (`status`, docs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Counter::Sent => "sent",
            Counter::Delivered => "delivered",
            Counter::Received => "received",
            Counter::Rejected => "rejected",
            Counter::RejectedByPeer => "rejected_by_peer",
            Counter::Duplicate => "duplicate",
            Counter::HandshakesRefused => "handshakes_refused",
            Counter::HandshakesFailed => "handshakes_failed",
            Counter::HandshakesRetried => "handshakes_retried",
            Counter::HandshakesLimited => "handshakes_limited",
            Counter::ConnectionsLimited => "connections_limited",
            Counter::PeerLogInconsistent => "peer_log_inconsistent",
            Counter::RejectedUnlogged => "rejected_unlogged",
        }
    }

    /// The metric family; `listed` is false for the counters the endpoint shows only once
    /// counted, under the generic help text.
    pub const fn family(self) -> (Family, bool) {
        const fn f(name: &'static str, help: &'static str, label: &'static str) -> Family {
            Family { name, help, label }
        }
        const GENERIC: &str = "Node counter, by peer and kind.";
        match self {
            Counter::Sent => (f("trm_messages_sent_total", "Messages signed and put in the outbox, by recipient and kind.", "kind"), true),
            Counter::Delivered => (f("trm_messages_delivered_total", "Messages whose signed receipt was stored, by recipient and kind.", "kind"), true),
            Counter::Received => (f("trm_messages_received_total", "Messages received, stored and receipted, by sender and kind.", "kind"), true),
            Counter::Rejected => (f("trm_messages_rejected_total", "Incoming messages this node rejected, by sender and reason code.", "reason"), true),
            Counter::RejectedByPeer => (f("trm_messages_rejected_by_peer_total", "Messages the recipient rejected with a signed rejection, by recipient and kind.", "kind"), true),
            Counter::Duplicate => (f("trm_messages_duplicate_total", "Incoming duplicates answered with the first receipt again, by sender and kind.", "kind"), true),
            Counter::HandshakesRefused => (f("trm_handshakes_refused_total", "Peer handshakes refused because the client certificate is not pinned or absent, by reason (peer is empty).", "reason"), true),
            Counter::HandshakesFailed => (f("trm_handshakes_failed_total", "Peer handshakes that failed otherwise or timed out, by reason (peer is empty).", "reason"), true),
            Counter::HandshakesRetried => (f("trm_handshakes_retried_total", "Peer handshakes asked to validate their address with a QUIC Retry (peer and kind are empty).", "kind"), true),
            Counter::HandshakesLimited => (f("trm_handshakes_limited_total", "Peer handshakes refused by a listener limit, by limit (peer is empty).", "limit"), true),
            Counter::ConnectionsLimited => (f("trm_connections_limited_total", "Established peer connections closed by a listener limit, by peer and limit.", "limit"), true),
            Counter::PeerLogInconsistent => (f("trm_peer_log_inconsistent_total", GENERIC, "kind"), false),
            Counter::RejectedUnlogged => (f("trm_rejected_unlogged_total", GENERIC, "kind"), false),
        }
    }
}

/// The node's other metric families (gauges and the latency histogram), by name.
pub mod names {
    /// 1 while the node runs.
    pub const UP: &str = "trm_up";
    /// This node's country and version.
    pub const NODE_INFO: &str = "trm_node_info";
    /// Outbox depth by recipient.
    pub const OUTBOX_DEPTH: &str = "trm_outbox_depth";
    /// Age of the oldest outbox message by recipient.
    pub const OUTBOX_OLDEST_AGE: &str = "trm_outbox_oldest_age_seconds";
    /// Whether delivery to a peer works.
    pub const PEER_UP: &str = "trm_peer_up";
    /// Last successful delivery to a peer.
    pub const PEER_LAST_CONTACT: &str = "trm_peer_last_contact_timestamp_seconds";
    /// For how long delivery to a peer has been failing.
    pub const PEER_FAILING: &str = "trm_peer_failing_seconds";
    /// Delivery latency histogram.
    pub const DELIVERY_LATENCY: &str = "trm_delivery_latency_seconds";
    /// Overdue referrals by direction and peer.
    pub const REFERRALS_OVERDUE: &str = "trm_referrals_overdue";
    /// Audit log length.
    pub const AUDIT_ENTRIES: &str = "trm_audit_entries";
    /// Store size on disk.
    pub const STORE_SIZE: &str = "trm_store_size_bytes";
    /// Last restore time.
    pub const LAST_RESTORE: &str = "trm_last_restore_timestamp_seconds";
}

/// Named counters with (peer, kind) labels, plus a delivery latency histogram.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(Counter, String, String), u64>>,
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
    pub fn inc(&self, name: Counter, peer: &str, kind: &str) {
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
    pub fn counters(&self) -> Vec<(Counter, String, String, u64)> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((n, p, k), v)| (*n, p.clone(), k.clone(), *v))
            .collect()
    }

    /// Sum of `name` over all labels.
    pub fn total(&self, name: Counter) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_one_name_and_family() {
        let mut short: Vec<&str> = Counter::ALL.iter().map(|c| c.as_str()).collect();
        let mut long: Vec<&str> = Counter::ALL.iter().map(|c| c.family().0.name).collect();
        for c in Counter::ALL {
            let (f, _) = c.family();
            assert!(
                f.name.starts_with("trm_") && f.name.ends_with("_total"),
                "{c:?}"
            );
            assert!(f.name.contains(c.as_str()), "{c:?}: {}", f.name);
        }
        short.sort_unstable();
        short.dedup();
        long.sort_unstable();
        long.dedup();
        assert_eq!(
            (short.len(), long.len()),
            (Counter::ALL.len(), Counter::ALL.len())
        );
    }

    #[test]
    fn counters_count_by_labels() {
        let m = Metrics::default();
        m.inc(Counter::Received, "AL", "referral");
        m.inc(Counter::Received, "AL", "referral");
        m.inc(Counter::Received, "GR", "closure");
        m.inc(Counter::Rejected, "AL", "MALFORMED");
        assert_eq!(m.total(Counter::Received), 3);
        assert_eq!(m.total(Counter::Sent), 0);
        assert_eq!(
            m.counters(),
            [
                (Counter::Received, "AL".into(), "referral".into(), 2),
                (Counter::Received, "GR".into(), "closure".into(), 1),
                (Counter::Rejected, "AL".into(), "MALFORMED".into(), 1),
            ]
        );
    }
}
