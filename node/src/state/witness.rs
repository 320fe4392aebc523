//! What this node has witnessed of each peer's audit log, and which peers are held. The
//! checks that update it live in `federation::trust`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// Meta key prefix of the witness records, one per peer.
pub(crate) const WITNESS_PREFIX: &str = "witness/";
/// What this node knows of one peer's audit log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WitnessRecord {
    /// The peer's latest checkpoint seen consistent (encoded `Signed`), empty if none yet.
    #[prost(bytes = "vec", tag = "1")]
    pub seen: Vec<u8>,
    /// When it was seen.
    #[prost(int64, tag = "2")]
    pub seen_ms: i64,
    /// Held: the peer's log contradicted what it had shown.
    #[prost(bool, tag = "3")]
    pub held: bool,
    /// Why, one line.
    #[prost(string, tag = "4")]
    pub reason: String,
    /// When it was held.
    #[prost(int64, tag = "5")]
    pub held_ms: i64,
    /// The checkpoint that contradicted `seen` (encoded `Signed`).
    #[prost(bytes = "vec", tag = "6")]
    pub offending: Vec<u8>,
}

/// Witness records of every peer, and a signal for connections to re-check their peer.
#[derive(Debug)]
pub struct Trust {
    logs: Mutex<BTreeMap<String, WitnessRecord>>,
    /// Consecutive signed `UNAVAILABLE` answers to consistency requests, per peer.
    busy: Mutex<HashMap<String, u32>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    changed: watch::Sender<u64>,
}

impl Trust {
    /// Loads the witness records.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let mut logs = BTreeMap::new();
        for (key, raw) in store.meta_prefix(WITNESS_PREFIX)? {
            let rec = WitnessRecord::decode(raw.as_slice()).map_err(|_| StoreError::Corrupt {
                path: store.path().to_path_buf(),
                detail: format!("witness record {key} does not decode"),
            })?;
            logs.insert(key[WITNESS_PREFIX.len()..].to_string(), rec);
        }
        Ok(Self {
            logs: Mutex::new(logs),
            busy: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        })
    }

    /// The witness record of `cc`.
    pub fn record(&self, cc: &str) -> Option<WitnessRecord> {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cc)
            .cloned()
    }

    /// True while `cc` is held.
    pub fn is_held(&self, cc: &str) -> bool {
        self.record(cc).is_some_and(|r| r.held)
    }

    /// Changes whenever a peer is held, re-accepted or revoked: connection tasks re-check.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes every watcher of [`Self::watch`]: live connections re-check their peer's pin
    /// and admin sessions their officer's credential.
    pub fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Forgets what was witnessed of `cc` (its card was replaced by the operator: the old
    /// baseline was signed by another identity). Pair with `federation::trust::forget_op` in the same commit.
    pub fn forget(&self, cc: &str) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cc);
        self.changed.send_modify(|n| *n += 1);
    }

    /// One more busy answer from `cc`; how many in a row.
    pub(crate) fn busy_again(&self, cc: &str) -> u32 {
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let n = b.entry(cc.to_string()).or_default();
        *n += 1;
        *n
    }

    pub(crate) fn busy_reset(&self, cc: &str) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cc);
    }

    pub(crate) fn set(&self, cc: &str, rec: WitnessRecord) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cc.to_string(), rec);
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn lock_for(&self, cc: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cc.to_string())
            .or_default()
            .clone()
    }
}
