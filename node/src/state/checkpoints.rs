//! The node's latest signed checkpoint of its own audit log, shared by the receive path
//! (receipts carry it) and the checkpoint task (`audit`).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::RwLock;

use prost::Message;
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

use crate::identity::NodeKeys;
use crate::store::{Store, StoreError, CHECKPOINT_PREFIX};

/// The latest signed checkpoint, shared by the receive path and the checkpoint task.
#[derive(Debug, Default)]
pub struct Audit {
    /// Tree size and checkpoint of the latest one.
    pub(crate) latest: RwLock<Option<(u64, pb::Signed)>>,
    /// Checkpoints signed so far (the next one's sequence number minus one).
    pub(crate) count: AtomicU64,
    /// Held while a checkpoint is being signed (one at a time).
    pub(crate) signing: tokio::sync::Mutex<()>,
    /// Where the rollback tripwire is kept (none in tools that do not sign).
    pub(crate) tripwire: Option<PathBuf>,
}

impl Audit {
    /// Loads the checkpoints and checks that each one is signed by a key of this node's
    /// history valid at its time (the store already checked them against the log).
    /// `tripwire`: where to keep the rollback tripwire ([`tripwire_path`]).
    pub fn load(
        store: &Store,
        keys: &NodeKeys,
        country: &str,
        tripwire: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        let mut latest = None;
        let mut count = 0;
        for (key, raw) in store.meta_prefix(CHECKPOINT_PREFIX)? {
            latest = Some(verified(store, keys, country, &key, &raw)?);
            count += 1;
        }
        Ok(Self::with(latest, count, tripwire))
    }

    /// [`Audit::load`] checking only the latest checkpoint's signature (a fast start, see
    /// `Store::open`): the others are checked by [`verify_checkpoints`] in the background.
    pub fn load_latest(
        store: &Store,
        keys: &NodeKeys,
        country: &str,
        tripwire: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        let all = store.meta_prefix(CHECKPOINT_PREFIX)?;
        let latest = match all.last() {
            Some((key, raw)) => Some(verified(store, keys, country, key, raw)?),
            None => None,
        };
        Ok(Self::with(latest, all.len() as u64, tripwire))
    }

    fn with(latest: Option<(u64, pb::Signed)>, count: u64, tripwire: Option<PathBuf>) -> Self {
        Self {
            latest: RwLock::new(latest),
            count: AtomicU64::new(count),
            signing: tokio::sync::Mutex::new(()),
            tripwire,
        }
    }

    /// The latest signed checkpoint, carried in receipts.
    pub fn latest(&self) -> Option<pb::Signed> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, s)| s.clone())
    }

    /// Tree size of the latest checkpoint (0 if none).
    pub fn latest_size(&self) -> u64 {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |(n, _)| *n)
    }
}

/// Checks that every stored checkpoint is signed by a key of this node's history valid at
/// its time (what [`Audit::load`] checks at a full start); returns how many there are.
pub fn verify_checkpoints(
    store: &Store,
    keys: &NodeKeys,
    country: &str,
) -> Result<u64, StoreError> {
    let mut count = 0;
    for (key, raw) in store.meta_prefix(CHECKPOINT_PREFIX)? {
        verified(store, keys, country, &key, &raw)?;
        count += 1;
    }
    Ok(count)
}

/// The stored checkpoint `raw` (meta `key`), if this node signed it.
fn verified(
    store: &Store,
    keys: &NodeKeys,
    country: &str,
    key: &str,
    raw: &[u8],
) -> Result<(u64, pb::Signed), StoreError> {
    let bad = |detail: &str| StoreError::AuditLog {
        path: store.path().to_path_buf(),
        detail: format!("stored checkpoint {key} {detail}"),
    };
    let signed = pb::Signed::decode(raw).map_err(|_| bad("does not decode"))?;
    let cp = pb::Checkpoint::decode(signed.body.as_slice()).map_err(|_| bad("does not decode"))?;
    let key_ok = trm_proto::card::key_valid_at(&keys.history, &signed.signer, cp.time_ms)
        .is_some_and(|k| {
            signing::verify(&k, Tag::Checkpoint, &signed.body, &signed.signature).is_ok()
        });
    if !key_ok || cp.country != country {
        return Err(bad("is not signed by this node's key"));
    }
    Ok((cp.tree_size, signed))
}
