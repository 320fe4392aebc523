//! Who may start a handshake and who may hold a connection on the peer listener.
//!
//! Handshakes and established connections are counted apart, so that handshakes that never
//! complete cannot take the places of working connections:
//! - a handshake from an address QUIC has not validated is admitted only while fewer than
//!   `limits.retry_above_handshakes` such handshakes are in progress; beyond that it must
//!   first answer a QUIC Retry (which costs the listener no state), so spoofed or abandoned
//!   Initials hold at most that many places;
//! - a handshake from a validated address is admitted while fewer than
//!   `limits.max_handshakes_per_address` are in progress from its IP and fewer than
//!   `limits.max_handshakes` in all;
//! - every handshake must finish within `limits.handshake_timeout_secs`;
//! - an established connection needs one of `limits.max_connections` places and one of its
//!   peer's `limits.max_connections_per_peer`.
//!
//! - an address serving a penalty for failed authentication ([`crate::net::penalty`]) is
//!   refused at once, before anything else.
//!
//! Refused handshakes of clients that are not pinned are logged at warn, at most one line per
//! source address per [`LOG_EVERY`], with the certificate's SHA-256 and the address only; so
//! are refusals of penalised addresses (address and reason only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::base::config::Limits;
use crate::base::metrics::Counter;
use crate::net::penalty::{HandshakeEnd, Penalties, Settings, Verdict};
use crate::net::tls::HandshakeRefusal;

/// What to do with a new incoming handshake.
#[derive(Debug)]
pub enum Admit {
    /// Go ahead; the slot is held until the handshake ends.
    Accept(HandshakeSlot),
    /// Ask the client to prove its address first (QUIC Retry).
    Retry,
    /// Refuse at once.
    Refuse(Refused),
}

/// Why a handshake or a connection was refused by the limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Too many handshakes in progress.
    Handshakes,
    /// Too many handshakes in progress from this address.
    HandshakesFromAddress,
    /// An address that already failed to answer a Retry.
    Unvalidated,
    /// Too many established connections.
    Connections,
    /// Too many established connections from this peer.
    ConnectionsOfPeer,
    /// The address failed authentication too often and serves a penalty.
    Penalised,
}

impl Refused {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Handshakes => "handshakes",
            Self::HandshakesFromAddress => "handshakes_per_address",
            Self::Unvalidated => "unvalidated",
            Self::Connections => "connections",
            Self::ConnectionsOfPeer => "connections_per_peer",
            Self::Penalised => "failed_before",
        }
    }

    /// True if the handshake is dropped without an answer (`Incoming::ignore`) rather than
    /// refused with a CONNECTION_REFUSED close: a penalised address gets no answer at all, so
    /// the listener sends nothing to an address that proved hostile (or to whoever spoofs
    /// it), the client learns nothing about when the penalty ends, and a client that waits
    /// for its answer is held until its own timeout.
    pub fn silent(&self) -> bool {
        matches!(self, Self::Penalised)
    }
}

#[derive(Debug, Default)]
struct Counts {
    handshakes: usize,
    unvalidated: usize,
    per_address: HashMap<IpAddr, usize>,
    connections: usize,
    per_peer: HashMap<String, usize>,
}

/// The listener's counters and limits.
#[derive(Debug)]
pub struct Gate {
    max_handshakes: usize,
    per_address: usize,
    retry_above: usize,
    max_connections: usize,
    per_peer: usize,
    counts: Mutex<Counts>,
    penalties: Mutex<Penalties>,
    penalty_log: RefusalLog,
}

impl Gate {
    /// A gate with the configured limits.
    pub fn new(l: &Limits) -> Arc<Self> {
        Arc::new(Self {
            max_handshakes: l.max_handshakes,
            per_address: l.max_handshakes_per_address,
            retry_above: l.retry_above_handshakes,
            max_connections: l.max_connections,
            per_peer: l.max_connections_per_peer,
            counts: Mutex::new(Counts::default()),
            penalties: Mutex::new(Penalties::new(Settings::of(l))),
            penalty_log: RefusalLog::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn penalties(&self) -> std::sync::MutexGuard<'_, Penalties> {
        self.penalties.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on a new handshake from `ip` at `now`.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        validated: bool,
        may_retry: bool,
        now: Instant,
    ) -> Admit {
        if self.penalties().refused(ip, now).is_some() {
            return Admit::Refuse(Refused::Penalised);
        }
        let mut c = self.counts();
        if c.handshakes >= self.max_handshakes {
            return Admit::Refuse(Refused::Handshakes);
        }
        if !validated {
            if c.unvalidated < self.retry_above {
                c.handshakes += 1;
                c.unvalidated += 1;
                return Admit::Accept(HandshakeSlot {
                    gate: self.clone(),
                    ip: None,
                });
            }
            return if may_retry {
                Admit::Retry
            } else {
                Admit::Refuse(Refused::Unvalidated)
            };
        }
        let from = c.per_address.get(&ip).copied().unwrap_or(0);
        if from >= self.per_address {
            return Admit::Refuse(Refused::HandshakesFromAddress);
        }
        c.handshakes += 1;
        c.per_address.insert(ip, from + 1);
        Admit::Accept(HandshakeSlot {
            gate: self.clone(),
            ip: Some(ip),
        })
    }

    /// Takes a place for an established connection of `peer`.
    pub fn establish(self: &Arc<Self>, peer: &str) -> Result<ConnectionSlot, Refused> {
        let mut c = self.counts();
        if c.connections >= self.max_connections {
            return Err(Refused::Connections);
        }
        let of_peer = c.per_peer.get(peer).copied().unwrap_or(0);
        if of_peer >= self.per_peer {
            return Err(Refused::ConnectionsOfPeer);
        }
        c.connections += 1;
        c.per_peer.insert(peer.to_string(), of_peer + 1);
        Ok(ConnectionSlot {
            gate: self.clone(),
            peer: peer.to_string(),
        })
    }

    /// Records how a handshake from `ip` ended (for the penalty).
    pub fn ended(&self, ip: IpAddr, now: Instant, end: HandshakeEnd) -> Verdict {
        self.penalties().ended(ip, now, end)
    }

    /// Counts a handshake from `remote` refused by `why` at `Incoming`, and logs it: at debug,
    /// or for a penalised address at warn, at most one line per address per [`LOG_EVERY`].
    pub fn count_refusal(
        &self,
        metrics: &crate::base::metrics::Metrics,
        remote: std::net::SocketAddr,
        why: Refused,
        now: Instant,
    ) {
        metrics.inc(Counter::HandshakesLimited, "", why.label());
        if why == Refused::Penalised {
            if self.penalty_log.may_log(remote.ip(), now) {
                tracing::warn!(
                    remote = %remote,
                    "handshake refused at once: this address failed authentication too often \
                     (at most one line per address per 10 s)"
                );
            }
        } else {
            tracing::debug!(remote = %remote, limit = why.label(), "handshake refused by a limit");
        }
    }

    /// Forgets every failure record (the pins changed).
    pub fn forget_failures(&self) {
        self.penalties().clear();
    }

    /// Handshakes in progress, established connections (for tests and status).
    pub fn in_use(&self) -> (usize, usize) {
        let c = self.counts();
        (c.handshakes, c.connections)
    }
}

/// A handshake in progress; its place is freed when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    gate: Arc<Gate>,
    /// The validated source address, or None for an unvalidated one.
    ip: Option<IpAddr>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        c.handshakes = c.handshakes.saturating_sub(1);
        match self.ip {
            None => c.unvalidated = c.unvalidated.saturating_sub(1),
            Some(ip) => {
                if let Some(n) = c.per_address.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        c.per_address.remove(&ip);
                    }
                }
            }
        }
    }
}

/// An established connection; its places are freed when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    gate: Arc<Gate>,
    peer: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.gate.counts();
        c.connections = c.connections.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

/// At most one warn line per source address per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Addresses remembered at most; beyond that, lines are dropped (the counter still counts).
const LOG_MEMORY: usize = 4096;

/// Rate limit of the refused-handshake log.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl RefusalLog {
    /// True if a line about `ip` may be written now (and remembers that it was).
    pub fn may_log(&self, ip: IpAddr, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = last.get(&ip) {
            if now.duration_since(*t) < LOG_EVERY {
                return false;
            }
        }
        if last.len() >= LOG_MEMORY {
            last.retain(|_, t| now.duration_since(*t) < LOG_EVERY);
            if last.len() >= LOG_MEMORY {
                return false;
            }
        }
        last.insert(ip, now);
        true
    }
}

/// Logs (rate-limited) and counts a refused peer handshake from `remote`, and records it
/// against the address (`validated` by QUIC or not), which may begin a penalty.
pub fn refused_handshake(
    metrics: &crate::base::metrics::Metrics,
    log: &RefusalLog,
    gate: &Gate,
    remote: std::net::SocketAddr,
    validated: bool,
    error: &quinn::ConnectionError,
) {
    let end = HandshakeEnd::of(error, validated);
    if let Verdict::Penalised(d) = gate.ended(remote.ip(), Instant::now(), end) {
        tracing::debug!(remote = %remote, secs = d.as_secs(), "address penalised for failed authentication");
    }
    let why = HandshakeRefusal::of(error);
    match why {
        HandshakeRefusal::Other => {
            tracing::debug!(remote = %remote, error = %error, "handshake failed");
            metrics.inc(Counter::HandshakesFailed, "", why.label());
        }
        HandshakeRefusal::NotPinned(fp) => {
            metrics.inc(Counter::HandshakesRefused, "", why.label());
            if log.may_log(remote.ip(), Instant::now()) {
                tracing::warn!(
                    remote = %remote,
                    cert_sha256 = %hex::encode(fp),
                    "handshake refused: client certificate not pinned (at most one line per address per 10 s)"
                );
            }
        }
        HandshakeRefusal::NoCertificate => {
            metrics.inc(Counter::HandshakesRefused, "", why.label());
            if log.may_log(remote.ip(), Instant::now()) {
                tracing::warn!(
                    remote = %remote,
                    cert_sha256 = "none",
                    "handshake refused: no client certificate (at most one line per address per 10 s)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_handshakes: 4,
            max_handshakes_per_address: 2,
            retry_above_handshakes: 1,
            max_connections: 2,
            max_connections_per_peer: 1,
            ..Limits::default()
        }
    }

    #[test]
    fn unvalidated_handshakes_beyond_the_threshold_must_retry() {
        let g = Gate::new(&limits());
        let t = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = g.admit(ip, false, true, t);
        assert!(matches!(a, Admit::Accept(_)));
        assert!(matches!(g.admit(ip, false, true, t), Admit::Retry));
        assert!(matches!(
            g.admit(ip, false, false, t),
            Admit::Refuse(Refused::Unvalidated)
        ));
        // Validated ones still get in, up to the per-address cap.
        let b = g.admit(ip, true, false, t);
        let c = g.admit(ip, true, false, t);
        assert!(matches!(b, Admit::Accept(_)) && matches!(c, Admit::Accept(_)));
        assert!(matches!(
            g.admit(ip, true, false, t),
            Admit::Refuse(Refused::HandshakesFromAddress)
        ));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let d = g.admit(other, true, false, t);
        assert!(matches!(d, Admit::Accept(_)));
        assert!(matches!(
            g.admit("192.0.2.3".parse().unwrap(), true, false, t),
            Admit::Refuse(Refused::Handshakes)
        ));
        drop((a, b, c, d));
        assert_eq!(g.in_use(), (0, 0));
        assert!(matches!(g.admit(ip, false, true, t), Admit::Accept(_)));
    }

    #[test]
    fn connections_are_capped_per_peer_and_in_all() {
        let g = Gate::new(&limits());
        let it = g.establish("IT").unwrap();
        assert_eq!(g.establish("IT").unwrap_err(), Refused::ConnectionsOfPeer);
        let al = g.establish("AL").unwrap();
        assert_eq!(g.establish("FR").unwrap_err(), Refused::Connections);
        drop(it);
        assert!(g.establish("IT").is_ok());
        drop(al);
    }

    #[test]
    fn refusal_lines_are_rate_limited_per_address() {
        let log = RefusalLog::default();
        let t = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(log.may_log(a, t));
        assert!(!log.may_log(a, t + Duration::from_secs(9)));
        assert!(log.may_log(b, t + Duration::from_secs(1)));
        assert!(log.may_log(a, t + Duration::from_secs(10)));
    }
}
