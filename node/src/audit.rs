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

use std::sync::{Arc, RwLock};
use std::time::Duration;

use prost::Message;
use serde_json::{json, Value};
use trm_proto::auditpb::{AuditBundle, ExportedEntry, Proof};
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

use crate::admin::CallError;
use crate::identity::NodeKeys;
use crate::node::Ctx;
use crate::store::{checkpoint_key, AuditEntry, Op, Store, StoreError, CHECKPOINT_PREFIX};
use crate::time::format_ms;

/// The latest signed checkpoint, shared by the receive path and the checkpoint task.
#[derive(Debug, Default)]
pub struct Audit {
    latest: RwLock<Option<(u64, pb::Signed)>>,
    signing: tokio::sync::Mutex<()>,
}

impl Audit {
    /// Loads the checkpoints and checks that each one is signed by a key of this node's
    /// history valid at its time (the store already checked them against the log).
    pub fn load(store: &Store, keys: &NodeKeys, country: &str) -> Result<Self, StoreError> {
        let mut latest = None;
        for (key, raw) in store.meta_prefix(CHECKPOINT_PREFIX)? {
            let bad = |detail: &str| StoreError::AuditLog {
                path: store.path().to_path_buf(),
                detail: format!("stored checkpoint {key} {detail}"),
            };
            let signed = pb::Signed::decode(raw.as_slice()).map_err(|_| bad("does not decode"))?;
            let cp = pb::Checkpoint::decode(signed.body.as_slice())
                .map_err(|_| bad("does not decode"))?;
            let key_ok = trm_proto::card::key_valid_at(&keys.history, &signed.signer, cp.time_ms)
                .is_some_and(|k| {
                    signing::verify(&k, Tag::Checkpoint, &signed.body, &signed.signature).is_ok()
                });
            if !key_ok || cp.country != country {
                return Err(bad("is not signed by this node's key"));
            }
            latest = Some((cp.tree_size, signed));
        }
        Ok(Self {
            latest: RwLock::new(latest),
            signing: tokio::sync::Mutex::new(()),
        })
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

/// Signs and stores a checkpoint of the log as committed now, if it grew since the last one;
/// returns the latest checkpoint.
pub async fn checkpoint_now(ctx: &Ctx) -> Result<Option<pb::Signed>, StoreError> {
    let _one_at_a_time = ctx.audit.signing.lock().await;
    let (size, root) = ctx.store.audit_head();
    if size == 0 || size <= ctx.audit.latest_size() {
        return Ok(ctx.audit.latest());
    }
    let cp = pb::Checkpoint {
        country: ctx.country().to_string(),
        tree_size: size,
        root_hash: root.to_vec(),
        time_ms: ctx.clock.now_ms(),
    };
    let body = cp.encode_to_vec();
    let signed = pb::Signed {
        signature: signing::sign(&ctx.keys.signing, Tag::Checkpoint, &body).to_vec(),
        signer: ctx.keys.public_key().to_vec(),
        body,
    };
    ctx.store
        .commit(vec![Op::PutMeta(
            checkpoint_key(size),
            signed.encode_to_vec(),
        )])
        .await?;
    tracing::debug!(tree_size = size, "audit checkpoint signed");
    *ctx.audit.latest.write().unwrap_or_else(|p| p.into_inner()) = Some((size, signed.clone()));
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
) -> Result<pb::ConsistencyProof, String> {
    let raw = ctx
        .store
        .meta(&checkpoint_key(req.second))
        .map_err(|e| format!("store unavailable: {e}"))?
        .ok_or_else(|| format!("this node has no checkpoint at tree size {}", req.second))?;
    let checkpoint =
        pb::Signed::decode(raw.as_slice()).map_err(|_| "stored checkpoint unreadable")?;
    let hashes = ctx
        .store
        .audit_consistency_proof(req.first, req.second)
        .map_err(|e| e.to_string())?;
    Ok(pb::ConsistencyProof {
        first: req.first,
        second: req.second,
        hashes: hashes.into_iter().map(|h| h.to_vec()).collect(),
        checkpoint: Some(checkpoint),
    })
}

/// `audit export`: a bundle of the entries whose time is within `[from_ms, to_ms]` (0 = open),
/// proven against a checkpoint signed now, with every checkpoint and the consistency proofs
/// between them, this node's card and every peer card it pinned.
pub async fn export(ctx: &Ctx, from_ms: i64, to_ms: i64) -> Result<(Value, Vec<u8>), CallError> {
    if from_ms != 0 && to_ms != 0 && to_ms < from_ms {
        return Err(CallError::msg("--to is before --from"));
    }
    checkpoint_now(ctx).await?;
    let mut checkpoints = Vec::new();
    let mut sizes = Vec::new();
    for (_, raw) in ctx.store.meta_prefix(CHECKPOINT_PREFIX)? {
        let size = pb::Signed::decode(raw.as_slice())
            .ok()
            .and_then(|s| pb::Checkpoint::decode(s.body.as_slice()).ok())
            .map(|c| c.tree_size)
            .ok_or_else(|| CallError::msg("a stored checkpoint is unreadable"))?;
        sizes.push(size);
        checkpoints.push(raw);
    }
    let tree_size = sizes.last().copied().unwrap_or(0);
    let mut consistency = Vec::with_capacity(sizes.len().saturating_sub(1));
    for pair in sizes.windows(2) {
        let hashes = ctx.store.audit_consistency_proof(pair[0], pair[1])?;
        consistency.push(Proof {
            hashes: hashes.into_iter().map(|h| h.to_vec()).collect(),
        });
    }
    let mut entries = Vec::new();
    for (index, leaf) in (0..tree_size).zip(ctx.store.audit_leaves(0)?) {
        let e = AuditEntry::decode(leaf.as_slice())?;
        if (from_ms != 0 && e.time_ms < from_ms) || (to_ms != 0 && e.time_ms > to_ms) {
            continue;
        }
        let inclusion = ctx.store.audit_inclusion_proof(index, tree_size)?;
        entries.push(ExportedEntry {
            entry: leaf,
            inclusion: inclusion.into_iter().map(|h| h.to_vec()).collect(),
        });
    }
    let peer_cards = crate::trust::archived_cards(ctx)?;
    let bundle = AuditBundle {
        version: trm_proto::audit::BUNDLE_VERSION,
        country: ctx.country().to_string(),
        card: ctx.own_card.clone(),
        peer_cards,
        entries,
        checkpoints,
        consistency,
    };
    let summary = json!({
        "country": ctx.country(),
        "entries": bundle.entries.len(),
        "tree_size": tree_size,
        "checkpoints": bundle.checkpoints.len(),
        "peer_cards": bundle.peer_cards.len(),
        "from": format_ms(from_ms),
        "to": format_ms(to_ms),
    });
    Ok((summary, bundle.encode_to_vec()))
}

/// The audit part of `status`.
pub fn status_json(ctx: &Ctx) -> Value {
    let (size, root) = ctx.store.audit_head();
    let latest = ctx
        .audit
        .latest()
        .and_then(|s| pb::Checkpoint::decode(s.body.as_slice()).ok());
    let failure = ctx.store.write_failure();
    json!({
        "entries": size,
        "root": hex::encode(root),
        "checkpoint_size": latest.as_ref().map_or(0, |c| c.tree_size),
        "checkpoint_time": format_ms(latest.as_ref().map_or(0, |c| c.time_ms)),
        "writable": failure.is_none(),
        "write_failure": failure.clone().unwrap_or_default(),
        "processing": if failure.is_some() {
            "stopped: the audit log cannot be written, no message is accepted or sent"
        } else {
            "accepting and sending"
        },
    })
}
