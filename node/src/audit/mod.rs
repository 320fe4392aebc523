//! The node's own audit log as others see it: signed checkpoints of its Merkle tree,
//! consistency proofs for peers that witness it, and the offline-verifiable export.
//!
//! The entries themselves are written by whoever acts (receive, delivery, messages, admin) in
//! the same store transaction as the action; the store keeps the Merkle tree. This module
//! signs a `Checkpoint {country, tree_size, root_hash, time_ms}` (tag `trm/1 checkpoint`)
//! whenever `audit.checkpoint_every_entries` entries were added, or every
//! `audit.checkpoint_every_secs` seconds if any were, and once more at shutdown. Receipts carry
//! the latest one. Must never: sign a checkpoint of a tree size it has not committed, or put a
//! case field value anywhere.
//!
//! Checkpoints are chained: the n-th carries `sequence = n` and the SHA-256 of the body of the
//! one before, so an export with a checkpoint left out fails verification.
//!
//! **Rollback tripwire.** Each signed checkpoint is also written, after its commit, atomically
//! and synced, to `keys/last-checkpoint.pb` beside the keys, outside the store. At start the
//! store's log must reach that checkpoint (same root at its size); a store copied back from
//! an older copy is refused with one line naming both, unless `trm-node restore` left its
//! marker (the restore is then recorded in the log and the tripwire reset to the restored
//! store). Once a store has had a tripwire, a missing file is refused too.

pub mod export;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use serde_json::Value;
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

use crate::base::config::NodeConfig;
use crate::base::time::format_ms;
use crate::base::vocab::{CallError, Caller};
use crate::identity::NodeKeys;
pub use crate::state::checkpoints::Audit;
use crate::state::ctx::Ctx;
use crate::store::{checkpoint_key, Op, Store, StoreError};

/// Store metadata key: a restore not yet recorded in the audit log (JSON
/// `ops::backup::RestoreInfo`, written by the restore, logged and cleared by the node at start).
pub const RESTORE_PENDING: &str = "restore_pending";

/// File name of the rollback tripwire, in the folder of the signing key.
pub const TRIPWIRE_FILE: &str = "last-checkpoint.pb";
/// Store metadata key, non-empty once the node keeps a tripwire for this store.
pub const TRIPWIRE_ARMED: &str = "tripwire_armed";

/// The rollback tripwire's path: `last-checkpoint.pb` beside the signing key.
pub fn tripwire_path(dir: &Path, cfg: &NodeConfig) -> PathBuf {
    let key = dir.join(&cfg.paths.signing_key);
    key.parent().unwrap_or(dir).join(TRIPWIRE_FILE)
}

/// What the start-up check of the tripwire found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tripwire {
    /// The store reaches the last checkpoint this node signed.
    Holds,
    /// No tripwire yet (a new node, or one that never signed a checkpoint with this version).
    Missing,
    /// The store is behind or different, but `trm-node restore` recorded a restore.
    Restored,
}

/// Checks that `store` reaches the checkpoint in the tripwire at `path` (see the module
/// documentation); the error is one line naming the store, the file and what differs.
pub fn check_tripwire(
    store: &Store,
    keys: &NodeKeys,
    country: &str,
    path: &Path,
) -> Result<Tripwire, String> {
    let restored = store
        .meta(RESTORE_PENDING)
        .map_err(|e| e.to_string())?
        .is_some_and(|v| !v.is_empty());
    let refuse = |what: String| {
        if restored {
            Ok(Tripwire::Restored)
        } else {
            Err(format!(
                "store at {} {what}: it was rolled back or replaced other than by `trm-node restore`, or is corrupted; the node refuses to run on it (restore a backup with `trm-node restore`, or put back the store that matches {})",
                store.path().display(),
                path.display()
            ))
        }
    };
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let armed = store
                .meta(TRIPWIRE_ARMED)
                .map_err(|e| e.to_string())?
                .is_some_and(|v| !v.is_empty());
            return if armed {
                refuse(format!(
                    "has had a rollback tripwire but {} is missing",
                    path.display()
                ))
            } else {
                Ok(Tripwire::Missing)
            };
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let checkpoint = pb::Signed::decode(raw.as_slice()).ok().and_then(|s| {
        let cp = pb::Checkpoint::decode(s.body.as_slice()).ok()?;
        let key = trm_proto::card::key_valid_at(&keys.history, &s.signer, cp.time_ms)?;
        signing::verify(&key, Tag::Checkpoint, &s.body, &s.signature).ok()?;
        (cp.country == country).then_some(cp)
    });
    let Some(cp) = checkpoint else {
        return refuse(format!(
            "cannot be checked: {} is not a checkpoint signed by this node",
            path.display()
        ));
    };
    let len = store.audit_len();
    if len < cp.tree_size {
        return refuse(format!(
            "is behind the last checkpoint this node signed ({}: tree size {} at {}; the store's log has {len} entries)",
            path.display(),
            cp.tree_size,
            format_ms(cp.time_ms)
        ));
    }
    let root = store
        .audit_root_at(cp.tree_size)
        .map_err(|e| e.to_string())?;
    if root.as_slice() != cp.root_hash {
        return refuse(format!(
            "does not match the last checkpoint this node signed ({}: its first {} entries hash differently)",
            path.display(),
            cp.tree_size
        ));
    }
    Ok(Tripwire::Holds)
}

/// Writes `signed` as the tripwire: temp file, sync, rename, sync the folder.
fn write_tripwire(path: &Path, signed: &pb::Signed) -> Result<(), StoreError> {
    crate::identity::write_private(path, &signed.encode_to_vec())
        .map_err(|e| StoreError::Io(format!("rollback tripwire: {e}")))
}

/// After a restore (or on the first start with a tripwire): sets the tripwire to the store's
/// latest checkpoint, or removes it if the store has none.
pub fn reset_tripwire(store: &Store, audit: &Audit) -> Result<(), StoreError> {
    let Some(path) = &audit.tripwire else {
        return Ok(());
    };
    match audit.latest() {
        Some(signed) => {
            write_tripwire(path, &signed)?;
            store.commit_blocking(vec![Op::PutMeta(TRIPWIRE_ARMED.into(), vec![1])])?;
        }
        None => {
            store.commit_blocking(vec![Op::PutMeta(TRIPWIRE_ARMED.into(), Vec::new())])?;
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io(format!("{}: {e}", path.display()))),
            }
            if let Some(dir) = path.parent() {
                crate::identity::fsync_dir(dir)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
            }
        }
    }
    Ok(())
}

/// Signs and stores a checkpoint of the log as committed now, if it grew since the last one;
/// returns the latest checkpoint.
pub async fn checkpoint_now(ctx: &Ctx) -> Result<Option<pb::Signed>, StoreError> {
    let _one_at_a_time = ctx.audit.signing.lock().await;
    let (size, root) = ctx.store.audit_head();
    if size == 0 || size <= ctx.audit.latest_size() {
        return Ok(ctx.audit.latest());
    }
    let previous = ctx
        .audit
        .latest()
        .map(|s| signing::sha256(&s.body).to_vec())
        .unwrap_or_default();
    let sequence = ctx.audit.count.load(Ordering::SeqCst) + 1;
    let cp = pb::Checkpoint {
        country: ctx.country().to_string(),
        tree_size: size,
        root_hash: root.to_vec(),
        time_ms: ctx.clock.now_ms(),
        sequence,
        previous,
    };
    let body = cp.encode_to_vec();
    let signed = pb::Signed {
        signature: signing::sign(&ctx.keys.signing, Tag::Checkpoint, &body).to_vec(),
        signer: ctx.keys.public_key().to_vec(),
        body,
    };
    ctx.store
        .commit(vec![
            Op::PutMeta(checkpoint_key(size), signed.encode_to_vec()),
            Op::PutMeta(TRIPWIRE_ARMED.into(), vec![1]),
        ])
        .await?;
    tracing::debug!(tree_size = size, "audit checkpoint signed");
    *ctx.audit.latest.write().unwrap_or_else(|p| p.into_inner()) = Some((size, signed.clone()));
    ctx.audit.count.store(sequence, Ordering::SeqCst);
    // After the commit: a tripwire ahead of the store would refuse a store that is not behind.
    if let Some(path) = ctx.audit.tripwire.clone() {
        let copy = signed.clone();
        tokio::task::spawn_blocking(move || write_tripwire(&path, &copy))
            .await
            .map_err(|_| StoreError::Closed)??;
    }
    Ok(Some(signed))
}

/// The checkpoint task: runs until shutdown, then signs a last checkpoint.
pub async fn run(ctx: Arc<Ctx>) {
    let every_entries = ctx.cfg.audit.checkpoint_every_entries.max(1);
    let every = Duration::from_secs(ctx.cfg.audit.checkpoint_every_secs.max(1));
    let mut sizes = ctx.store.watch_audit_size();
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = sizes.changed() => {
                if changed.is_err() {
                    break;
                }
                let size = *sizes.borrow_and_update();
                if size < ctx.audit.latest_size() + every_entries {
                    continue;
                }
            }
            _ = shutdown.changed() => break,
        }
        if let Err(e) = checkpoint_now(&ctx).await {
            tracing::warn!(error = %e, "cannot sign an audit checkpoint");
        }
    }
    if let Err(e) = checkpoint_now(&ctx).await {
        tracing::warn!(error = %e, "cannot sign the last audit checkpoint");
    }
}

/// Answers a peer's consistency request: the proof from `first` to `second` and this node's
/// signed checkpoint at `second`. Fails (the caller answers with a signed rejection) if this
/// node never signed a checkpoint at `second`.
pub fn consistency(
    ctx: &Ctx,
    req: &pb::ConsistencyRequest,
) -> Result<pb::ConsistencyProof, ConsistencyRefusal> {
    let raw = ctx
        .store
        .meta(&checkpoint_key(req.second))
        .map_err(|e| ConsistencyRefusal::Unavailable(format!("store unavailable: {e}")))?
        .ok_or_else(|| {
            ConsistencyRefusal::NoSuchCheckpoint(format!(
                "this node has no checkpoint at tree size {}",
                req.second
            ))
        })?;
    let checkpoint = pb::Signed::decode(raw.as_slice())
        .map_err(|_| ConsistencyRefusal::Unavailable("stored checkpoint unreadable".into()))?;
    let hashes = ctx
        .store
        .audit_consistency_proof(req.first, req.second)
        .map_err(|e| ConsistencyRefusal::NoSuchCheckpoint(e.to_string()))?;
    Ok(pb::ConsistencyProof {
        first: req.first,
        second: req.second,
        hashes: hashes.into_iter().map(|h| h.to_vec()).collect(),
        checkpoint: Some(checkpoint),
    })
}

/// Why a consistency request is not answered with a proof.
#[derive(Debug)]
pub enum ConsistencyRefusal {
    /// The request names sizes this node never signed, or that do not make a proof: the
    /// asking peer learns that this log does not extend what it saw (`MALFORMED`).
    NoSuchCheckpoint(String),
    /// This node cannot read its own store right now: nothing about its log is claimed, the
    /// peer asks again later (`UNAVAILABLE`).
    Unavailable(String),
}

/// `audit export` in one frame (`AuditExport`): the summary and the whole bundle.
pub async fn export(
    ctx: &Ctx,
    caller: &Caller,
    from_ms: i64,
    to_ms: i64,
) -> Result<(Value, Vec<u8>), CallError> {
    let (summary, bundle) = export::prepare(ctx, caller, from_ms, to_ms).await?;
    Ok((summary, bundle.collect(&ctx.store)?))
}

/// The audit part of `status`.
pub fn status_json(ctx: &Ctx) -> trm_admin_api::answers::AuditStatus {
    let (size, root) = ctx.store.audit_head();
    let latest = ctx
        .audit
        .latest()
        .and_then(|s| pb::Checkpoint::decode(s.body.as_slice()).ok());
    let failure = ctx.store.write_failure();
    trm_admin_api::answers::AuditStatus {
        entries: size,
        root: hex::encode(root),
        checkpoint_size: latest.as_ref().map_or(0, |c| c.tree_size),
        checkpoint_time: format_ms(latest.as_ref().map_or(0, |c| c.time_ms)),
        writable: failure.is_none(),
        processing: if failure.is_some() {
            "stopped: the audit log cannot be written, no message is accepted or sent"
        } else {
            "accepting and sending"
        }
        .to_string(),
        write_failure: failure.unwrap_or_default(),
    }
}
