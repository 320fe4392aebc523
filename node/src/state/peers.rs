//! The pinned peers: verified identity cards in memory, mirrored into the TLS pin set, plus
//! each peer's reachability as seen by the delivery worker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use trm_proto::card::VerifiedCard;
use trm_proto::pb;

use crate::net::tls::{Pin, Pins};
use crate::store::{PeerRecord, Store, StoreError};

/// One pinned peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its verified card.
    pub card: VerifiedCard,
    /// Revoked by the operator.
    pub revoked: bool,
    /// The agreement behind the partnership, as recorded with it.
    pub agreement: Agreement,
}

/// The agreement behind a partnership (`peer add --agreement --legal-basis`); "" = none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Its reference ("MoU IT-AL 2026/03").
    pub reference: String,
    /// Its legal basis.
    pub legal_basis: String,
}

impl Agreement {
    /// As recorded in the peer's store record.
    pub fn of(rec: &PeerRecord) -> Self {
        Self {
            reference: rec.agreement.clone(),
            legal_basis: rec.legal_basis.clone(),
        }
    }

    /// No agreement recorded.
    pub fn is_none(&self) -> bool {
        self.reference.is_empty() && self.legal_basis.is_empty()
    }
}

/// Reachability of one peer, as the delivery worker last saw it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Health {
    /// Last successful exchange (Unix ms), 0 if never.
    pub last_contact_ms: i64,
    /// Since when delivery has been failing (Unix ms), 0 if it is not.
    pub failing_since_ms: i64,
    /// Last delivery error, one line.
    pub last_error: String,
    /// Consecutive failed attempts.
    pub attempts: u32,
}

/// Pinned peers and their health.
#[derive(Debug)]
pub struct PeerTable {
    peers: RwLock<BTreeMap<String, Peer>>,
    health: Mutex<BTreeMap<String, Health>>,
    pins: Arc<Pins>,
}

impl PeerTable {
    /// Loads every peer from the store and pins its certificate.
    pub fn load(store: &Store, pins: Arc<Pins>) -> Result<Self, StoreError> {
        let table = Self {
            peers: RwLock::new(BTreeMap::new()),
            health: Mutex::new(BTreeMap::new()),
            pins,
        };
        for (cc, rec) in store.peers()? {
            match trm_proto::card::verify_card(&rec.card) {
                Ok(card) => table.put_agreed(card, rec.revoked, Agreement::of(&rec)),
                Err(e) => {
                    tracing::error!(peer = %cc, error = %e, "stored card no longer verifies; peer ignored")
                }
            }
        }
        Ok(table)
    }

    /// Adds or replaces a peer and updates the pins, keeping the agreement recorded for its
    /// country (a rotated or revoked card is the same partnership).
    pub fn put(&self, card: VerifiedCard, revoked: bool) {
        let agreement = self
            .get(card.country())
            .map(|p| p.agreement)
            .unwrap_or_default();
        self.put_agreed(card, revoked, agreement);
    }

    /// Adds or replaces a peer with its agreement and updates the pins.
    pub fn put_agreed(&self, card: VerifiedCard, revoked: bool, agreement: Agreement) {
        let cc = card.country().to_string();
        let pin = Pin {
            who: cc.clone(),
            not_before_ms: card.card.valid_from_ms,
            not_after_ms: card.card.valid_until_ms,
        };
        // The table first, then the pins (one step): a connection woken by the pin change
        // re-checks against both and sees the new card, never a moment without it.
        let cert = card.card.tls_cert_der.clone();
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                cc.clone(),
                Peer {
                    card,
                    revoked,
                    agreement,
                },
            );
        self.pins
            .replace_who(&cc, (!revoked).then_some((cert.as_slice(), pin)));
    }

    /// Removes a peer and its pin.
    pub fn remove(&self, cc: &str) -> bool {
        self.pins.remove_who(cc);
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cc)
            .is_some()
    }

    /// A peer by country.
    pub fn get(&self, cc: &str) -> Option<Peer> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(cc)
            .cloned()
    }

    /// Every peer.
    pub fn all(&self) -> Vec<Peer> {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Why `card` may not be pinned for its country, if it may not: its TLS certificate or
    /// one of its signing keys is already pinned for another country (revoked ones included)
    /// or is this node's own (`own_cert`, `own_history`).
    pub fn conflict(
        &self,
        card: &VerifiedCard,
        own_cert: &[u8],
        own_history: &[pb::KeyRecord],
    ) -> Option<String> {
        let keys = |h: &[pb::KeyRecord]| -> Vec<Vec<u8>> {
            h.iter().map(|k| k.public_key.clone()).collect()
        };
        let theirs = keys(&card.card.key_history);
        let shares_key = |h: &[pb::KeyRecord]| keys(h).iter().any(|k| theirs.contains(k));
        if card.card.tls_cert_der == own_cert {
            return Some("its TLS certificate is this node's own".into());
        }
        if shares_key(own_history) {
            return Some("one of its signing keys is this node's own".into());
        }
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        for (cc, p) in peers.iter().filter(|(cc, _)| *cc != card.country()) {
            if p.card.card.tls_cert_der == card.card.tls_cert_der {
                return Some(format!(
                    "its TLS certificate {} is pinned for {cc}",
                    card.tls_fingerprint()
                ));
            }
            if shares_key(&p.card.card.key_history) {
                return Some(format!("one of its signing keys is pinned for {cc}"));
            }
        }
        None
    }

    /// The pin set shared with the TLS verifiers.
    pub fn pins(&self) -> &Arc<Pins> {
        &self.pins
    }

    /// Records a successful exchange with `cc`.
    pub fn contact_ok(&self, cc: &str, now_ms: i64) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let e = h.entry(cc.to_string()).or_default();
        if e.failing_since_ms != 0 {
            tracing::info!(peer = %cc, "peer reachable again");
        }
        e.last_contact_ms = now_ms;
        e.failing_since_ms = 0;
        e.attempts = 0;
        e.last_error.clear();
    }

    /// Records a failed attempt; returns the number of consecutive failures.
    pub fn contact_failed(&self, cc: &str, now_ms: i64, error: &str) -> u32 {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let e = h.entry(cc.to_string()).or_default();
        if e.failing_since_ms == 0 {
            e.failing_since_ms = now_ms;
        }
        e.attempts = e.attempts.saturating_add(1);
        e.last_error = error.to_string();
        e.attempts
    }

    /// Health of `cc`.
    pub fn health(&self, cc: &str) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cc)
            .cloned()
            .unwrap_or_default()
    }
}

/// Builds the stored record of a newly added peer.
pub fn record(card: &VerifiedCard, now_ms: i64) -> PeerRecord {
    PeerRecord {
        card: card.raw.clone(),
        added_ms: now_ms,
        revoked: false,
        revoked_ms: 0,
        agreement: String::new(),
        legal_basis: String::new(),
    }
}
