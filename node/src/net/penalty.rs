//! The penalty for failed authentication: a source IP address whose peer handshakes failed
//! `limits.failed_handshakes_per_address` times is refused at `Incoming` (before any
//! cryptography) for `limits.failed_handshake_backoff_secs`, doubled at every further offence
//! up to `limits.failed_handshake_backoff_max_secs`.
//!
//! - A failure counts when the handshake proves its source address: the client certificate
//!   was not pinned or absent (the client had to read the server's flight to send it), or any
//!   other failure of a handshake from an address QUIC validated with a Retry. A failure of an
//!   unvalidated address (which anyone can spoof) and a timeout (which packet loss causes)
//!   do not count; those are bounded by the handshake limits and the timeout instead.
//! - After a penalty ends the address is on probation: its next failure is the next offence at
//!   once, with twice the backoff. A failure of a handshake admitted before the penalty began
//!   changes nothing.
//! - A handshake that authenticates a pinned peer clears the address's record, and so does a
//!   record left alone for the longest backoff after its last event (its offences are then
//!   forgiven).
//! - At most [`PENALTY_MEMORY`] addresses are remembered. When the table is full, forgiven
//!   records go first, then the record with the fewest failures that is not serving a
//!   penalty; an address serving a penalty is never evicted (so it is never let in early),
//!   and a new address that finds every place taken by penalised ones is not remembered.
//!
//! The decisions are pure: they take the address, the time and the outcome.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::base::config::Limits;
use crate::net::tls::HandshakeRefusal;

/// Addresses remembered at most (a record is about 40 bytes: well under 1 MiB in all).
pub const PENALTY_MEMORY: usize = 4096;

/// How a peer handshake ended, as far as the penalty is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeEnd {
    /// A pinned peer was authenticated.
    Authenticated,
    /// The client certificate was not pinned or absent.
    AuthenticationFailed,
    /// Any other failure (TLS alert, protocol error, the client closed).
    Failed {
        /// QUIC had validated the source address with a Retry.
        address_validated: bool,
    },
    /// The handshake timed out (ours or QUIC's idle timeout).
    TimedOut,
}

impl HandshakeEnd {
    /// Classifies a failed server-side handshake from an address `validated` or not.
    pub fn of(e: &quinn::ConnectionError, validated: bool) -> Self {
        match (HandshakeRefusal::of(e), e) {
            (HandshakeRefusal::NotPinned(_) | HandshakeRefusal::NoCertificate, _) => {
                Self::AuthenticationFailed
            }
            (_, quinn::ConnectionError::TimedOut) => Self::TimedOut,
            _ => Self::Failed {
                address_validated: validated,
            },
        }
    }

    /// True if this end counts as a failure against its source address.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Self::AuthenticationFailed
                | Self::Failed {
                    address_validated: true
                }
        )
    }
}

/// The configured penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Failures before the first penalty (0 = no penalty).
    pub threshold: u32,
    /// First penalty.
    pub first: Duration,
    /// Longest penalty; also how long a quiet record is kept.
    pub max: Duration,
    /// Addresses remembered at most.
    pub capacity: usize,
}

impl Settings {
    /// The settings of `limits`.
    pub fn of(l: &Limits) -> Self {
        Self {
            threshold: l.failed_handshakes_per_address,
            first: Duration::from_secs(l.failed_handshake_backoff_secs),
            max: Duration::from_secs(l.failed_handshake_backoff_max_secs),
            capacity: PENALTY_MEMORY,
        }
    }

    /// The penalty of the `offence`th offence (1-based).
    fn backoff(&self, offence: u32) -> Duration {
        let doublings = offence.saturating_sub(1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    /// Counted failures since the last offence (or since the record began).
    failures: u32,
    /// Offences so far.
    offences: u32,
    /// End of the last penalty, if any.
    until: Option<Instant>,
    /// Last counted failure.
    last: Instant,
}

impl Record {
    fn serving(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Forgiven: quiet for the longest backoff since its last failure and its last penalty.
    fn forgiven(&self, now: Instant, max: Duration) -> bool {
        let quiet_since = self.until.map_or(self.last, |u| u.max(self.last));
        now.saturating_duration_since(quiet_since) >= max
    }
}

/// What a counted failure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing new (not counted, below the threshold, or already serving a penalty).
    Noted,
    /// A penalty began: the address is refused for this long.
    Penalised(Duration),
    /// The table is full of penalised addresses: this one is not remembered.
    NotRemembered,
}

/// The failure records of source addresses.
#[derive(Debug)]
pub struct Penalties {
    s: Settings,
    table: HashMap<IpAddr, Record>,
}

impl Penalties {
    /// An empty table.
    pub fn new(s: Settings) -> Self {
        Self {
            s,
            table: HashMap::new(),
        }
    }

    /// If `ip` is serving a penalty at `now`, how long it has left.
    pub fn refused(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let r = self.table.get(&ip)?;
        r.until
            .filter(|u| now < *u)
            .map(|u| u.saturating_duration_since(now))
    }

    /// Records how a handshake from `ip` ended at `now`.
    pub fn ended(&mut self, ip: IpAddr, now: Instant, end: HandshakeEnd) -> Verdict {
        if end == HandshakeEnd::Authenticated {
            self.table.remove(&ip);
            return Verdict::Noted;
        }
        if self.s.threshold == 0 || !end.counts() {
            return Verdict::Noted;
        }
        if !self.table.contains_key(&ip) && !self.make_room(now) {
            return Verdict::NotRemembered;
        }
        let s = self.s;
        let r = self.table.entry(ip).or_insert(Record {
            failures: 0,
            offences: 0,
            until: None,
            last: now,
        });
        if r.forgiven(now, s.max) {
            *r = Record {
                failures: 0,
                offences: 0,
                until: None,
                last: now,
            };
        }
        r.last = now;
        if r.serving(now) {
            return Verdict::Noted;
        }
        r.failures += 1;
        if r.until.is_none() && r.failures < s.threshold {
            return Verdict::Noted;
        }
        r.offences = r.offences.saturating_add(1);
        r.failures = 0;
        let backoff = s.backoff(r.offences);
        r.until = Some(now + backoff);
        Verdict::Penalised(backoff)
    }

    /// Forgets every record (the pins changed: failures counted against the old set are
    /// stale).
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Addresses remembered (tests and status).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Makes a place for one more address if the table is full; false if every place is
    /// held by an address serving a penalty.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.table.len() < self.s.capacity {
            return true;
        }
        let max = self.s.max;
        self.table.retain(|_, r| !r.forgiven(now, max));
        if self.table.len() < self.s.capacity {
            return true;
        }
        let victim = self
            .table
            .iter()
            .filter(|(_, r)| !r.serving(now))
            .min_by_key(|(_, r)| (r.offences, r.failures, r.last))
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.table.remove(&ip);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: HandshakeEnd = HandshakeEnd::AuthenticationFailed;
    const OK: HandshakeEnd = HandshakeEnd::Authenticated;

    fn settings(capacity: usize) -> Settings {
        Settings {
            threshold: 3,
            first: Duration::from_secs(1),
            max: Duration::from_secs(8),
            capacity,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    /// `(at ms, address, outcome or None to ask, expected verdict or refusal in ms)`.
    enum Step {
        End(u64, u8, HandshakeEnd, Verdict),
        Ask(u64, u8, Option<u64>),
    }

    fn run(name: &str, capacity: usize, steps: &[Step]) {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut p = Penalties::new(settings(capacity));
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::End(ms, a, end, want) => {
                    assert_eq!(p.ended(ip(a), at(ms), end), want, "{name}: step {i}")
                }
                Step::Ask(ms, a, want) => assert_eq!(
                    p.refused(ip(a), at(ms)),
                    want.map(Duration::from_millis),
                    "{name}: step {i}"
                ),
            }
            assert!(p.len() <= capacity, "{name}: step {i}: table over capacity");
        }
    }

    const S1: Duration = Duration::from_secs(1);
    const S2: Duration = Duration::from_secs(2);
    const S4: Duration = Duration::from_secs(4);
    const S8: Duration = Duration::from_secs(8);

    #[test]
    fn penalties_grow_clear_and_are_forgiven() {
        use Step::*;
        use Verdict::*;
        let validated_other = HandshakeEnd::Failed {
            address_validated: true,
        };
        let spoofable = HandshakeEnd::Failed {
            address_validated: false,
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Step>)> = vec![
            ("threshold reached: refused for the first backoff", vec![
                End(0, 1, FAIL, Noted), End(10, 1, FAIL, Noted), Ask(10, 1, None),
                End(20, 1, FAIL, Penalised(S1)), Ask(20, 1, Some(1000)), Ask(1019, 1, Some(1)),
                Ask(1020, 1, None), Ask(20, 2, None),
            ]),
            ("probation: the next failure doubles at once, up to the max", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(1000, 1, FAIL, Penalised(S2)), End(3000, 1, FAIL, Penalised(S4)),
                End(7000, 1, FAIL, Penalised(S8)), End(15000, 1, FAIL, Penalised(S8)),
                Ask(22999, 1, Some(1)),
            ]),
            ("failures while serving change nothing", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(500, 1, FAIL, Noted), End(900, 1, FAIL, Noted), Ask(999, 1, Some(1)),
                Ask(1000, 1, None),
            ]),
            ("an authenticated handshake clears the record", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(1000, 1, OK, Noted), End(1000, 1, FAIL, Noted), End(1000, 1, FAIL, Noted),
                End(1000, 1, FAIL, Penalised(S1)),
            ]),
            ("success below the threshold resets the count", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, OK, Noted),
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), Ask(0, 1, None),
            ]),
            ("quiet for the max backoff: forgiven", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(9000, 1, FAIL, Noted), End(9000, 1, FAIL, Noted),
                End(9000, 1, FAIL, Penalised(S1)),
                End(30_000, 2, FAIL, Noted), End(37_999, 2, FAIL, Noted),
                End(45_998, 2, FAIL, Penalised(S1)),
            ]),
            ("timeouts and spoofable failures do not count; validated ones do", vec![
                End(0, 1, HandshakeEnd::TimedOut, Noted), End(0, 1, spoofable, Noted),
                End(0, 1, HandshakeEnd::TimedOut, Noted), End(0, 1, spoofable, Noted),
                Ask(0, 1, None), End(0, 1, validated_other, Noted), End(0, 1, FAIL, Noted),
                End(0, 1, validated_other, Penalised(S1)),
            ]),
        ];
        for (name, steps) in cases {
            run(name, 16, &steps);
        }
    }

    #[test]
    fn a_full_table_evicts_the_least_offending_never_a_penalised_address() {
        use Step::*;
        use Verdict::*;
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Step>)> = vec![
            ("the one not serving with the fewest failures goes", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(0, 2, FAIL, Noted), End(0, 2, FAIL, Noted),
                // Full (capacity 2): 3 takes 2's place, 1 keeps serving.
                End(10, 3, FAIL, Noted), Ask(10, 1, Some(990)),
                End(10, 3, FAIL, Noted), End(10, 3, FAIL, Penalised(S1)),
                // Both serving: 4 is not remembered, and nobody is let in early.
                End(20, 4, FAIL, NotRemembered), Ask(20, 1, Some(980)), Ask(20, 3, Some(990)),
            ]),
            ("forgiven records go first", vec![
                End(0, 1, FAIL, Noted), End(0, 1, FAIL, Noted), End(0, 1, FAIL, Penalised(S1)),
                End(0, 2, FAIL, Noted),
                End(9000, 3, FAIL, Noted), End(9000, 3, FAIL, Noted),
                End(9000, 3, FAIL, Penalised(S1)),
            ]),
        ];
        for (name, steps) in cases {
            run(name, 2, &steps);
        }
    }

    #[test]
    fn threshold_zero_never_penalises() {
        let mut p = Penalties::new(Settings {
            threshold: 0,
            ..settings(4)
        });
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.ended(ip(1), t, FAIL), Verdict::Noted);
        }
        assert_eq!(p.refused(ip(1), t), None);
        assert!(p.is_empty());
    }

    #[test]
    fn handshake_ends_are_classified_by_what_they_prove() {
        let closed = quinn::ConnectionError::TimedOut;
        assert_eq!(HandshakeEnd::of(&closed, true), HandshakeEnd::TimedOut);
        let reset = quinn::ConnectionError::Reset;
        assert_eq!(
            HandshakeEnd::of(&reset, false),
            HandshakeEnd::Failed {
                address_validated: false
            }
        );
        assert!(!HandshakeEnd::of(&reset, false).counts());
        assert!(HandshakeEnd::of(&reset, true).counts());
        assert!(!HandshakeEnd::TimedOut.counts());
        assert!(!HandshakeEnd::Authenticated.counts());
        assert!(HandshakeEnd::AuthenticationFailed.counts());
    }
}
