//! `audit export`: the bundle of the node's log, produced in order, a bounded piece at a time.
//!
//! [`prepare`] does what the export decides once (logs the export record, signs a checkpoint,
//! collects cards, checkpoints and their proofs, finds the entries); [`Bundle::next_piece`]
//! then yields the encoded `AuditBundle` in order (docs/PROTOCOL.md §10), reading at most
//! [`LEAVES_PER_READ`] entries of the store at a time: the same bytes `prost` would encode for
//! the whole message, without holding it. The legacy one-frame call collects the pieces; the
//! streamed call sends them as chunks (docs/PROTOCOL.md §10.1).

use std::ops::Range;

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use serde_json::Value;
use trm_proto::auditpb::{ExportedEntry, Proof};
use trm_proto::pb;

use crate::base::time::format_ms;
use crate::base::vocab::{CallError, Caller};
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op, Store, CHECKPOINT_PREFIX};
use trm_proto::audit::AuditKind;

/// Entries read from the store at a time.
pub const LEAVES_PER_READ: usize = 256;

/// An export decided: its head and tail encoded, the entries still to read.
pub struct Bundle {
    head: Option<Vec<u8>>,
    tail: Option<Vec<u8>>,
    entries: Range<u64>,
    tree_size: u64,
}

/// Appends a length-delimited field `number` holding `bytes`.
fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

impl Bundle {
    /// The next piece of the encoded bundle, `None` after the last.
    pub fn next_piece(&mut self, store: &Store) -> Result<Option<Vec<u8>>, CallError> {
        if let Some(head) = self.head.take() {
            return Ok(Some(head));
        }
        if self.entries.is_empty() {
            return Ok(self.tail.take());
        }
        let leaves = store.audit_leaves_range(self.entries.start, LEAVES_PER_READ)?;
        let mut out = Vec::new();
        for leaf in leaves {
            let index = self.entries.start;
            if index >= self.entries.end {
                break;
            }
            let inclusion = store.audit_inclusion_proof(index, self.tree_size)?;
            let e = ExportedEntry {
                entry: leaf,
                inclusion: inclusion.into_iter().map(|h| h.to_vec()).collect(),
            };
            put_bytes(&mut out, 5, &e.encode_to_vec());
            self.entries.start += 1;
        }
        if out.is_empty() {
            return Err(CallError::msg(
                "the audit log ended before its last checkpoint",
            ));
        }
        Ok(Some(out))
    }

    /// The whole bundle in memory (the one-frame `AuditExport`).
    pub fn collect(mut self, store: &Store) -> Result<Vec<u8>, CallError> {
        let mut out = Vec::new();
        while let Some(piece) = self.next_piece(store)? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

/// `audit export`: a bundle of every entry (no range), or of every entry from the first to
/// the last whose time is within `[from_ms, to_ms]` (0 = open; consecutive indices, so an
/// entry at the edges may lie outside the range), proven against a checkpoint signed now,
/// with every checkpoint and the consistency proofs between them, this node's card and every
/// peer card it pinned. It first logs an export record (kind `export`), so that the last
/// checkpoint is always signed after it and a full bundle shows when it was made. Returns the
/// summary and the bundle to produce.
pub async fn prepare(
    ctx: &Ctx,
    caller: &Caller,
    from_ms: i64,
    to_ms: i64,
) -> Result<(Value, Bundle), CallError> {
    if from_ms != 0 && to_ms != 0 && to_ms < from_ms {
        return Err(CallError::msg("--to is before --from"));
    }
    let full = from_ms == 0 && to_ms == 0;
    ctx.store
        .commit(vec![Op::Audit(AuditEntry {
            time_ms: ctx.clock.now_ms(),
            kind: AuditKind::Export.into(),
            officer: caller.name.clone(),
            role: caller.role.name().into(),
            call: "audit export".into(),
            target: if full {
                "whole log".into()
            } else {
                format!("from {} to {}", format_ms(from_ms), format_ms(to_ms))
            },
            result: "started".into(),
            ..Default::default()
        })])
        .await?;
    super::checkpoint_now(ctx).await?;
    let (checkpoints, consistency, tree_size) = checkpoints_and_proofs(&ctx.store)?;
    let entries = if full {
        0..tree_size
    } else {
        entries_between(&ctx.store, tree_size, from_ms, to_ms)?
    };
    let peer_cards = crate::federation::trust::archived_cards(ctx)?;
    let summary = trm_admin_api::answers::AuditExported {
        country: ctx.country().to_string(),
        entries: entries.end - entries.start,
        tree_size,
        checkpoints: checkpoints.len() as u64,
        peer_cards: peer_cards.len() as u64,
        from: format_ms(from_ms),
        to: format_ms(to_ms),
        coverage: if full { "complete" } else { "partial" }.into(),
    };
    let summary = serde_json::to_value(summary).map_err(|e| CallError::msg(e.to_string()))?;
    let head = trm_proto::auditpb::AuditBundle {
        version: trm_proto::audit::BUNDLE_VERSION,
        country: ctx.country().to_string(),
        card: ctx.own_card.clone(),
        peer_cards,
        ..Default::default()
    };
    let tail = trm_proto::auditpb::AuditBundle {
        checkpoints,
        consistency,
        ..Default::default()
    };
    let bundle = Bundle {
        head: Some(head.encode_to_vec()),
        tail: Some(tail.encode_to_vec()),
        entries,
        tree_size,
    };
    Ok((summary, bundle))
}

/// Every stored checkpoint (encoded), the consistency proofs between consecutive ones, and
/// the tree size of the last.
type CheckpointChain = (Vec<Vec<u8>>, Vec<Proof>, u64);

/// The node's [`CheckpointChain`] as stored.
fn checkpoints_and_proofs(store: &Store) -> Result<CheckpointChain, CallError> {
    let mut checkpoints = Vec::new();
    let mut sizes = Vec::new();
    for (_, raw) in store.meta_prefix(CHECKPOINT_PREFIX)? {
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
        let hashes = store.audit_consistency_proof(pair[0], pair[1])?;
        consistency.push(Proof {
            hashes: hashes.into_iter().map(|h| h.to_vec()).collect(),
        });
    }
    Ok((checkpoints, consistency, tree_size))
}

/// The indices from the first to the last of the log's first `size` entries written within
/// `from_ms..=to_ms` (0: open end), entries between them included whatever their time: a
/// partial bundle is contiguous. Reads the log in order, a bounded piece at a time.
fn entries_between(
    store: &Store,
    size: u64,
    from_ms: i64,
    to_ms: i64,
) -> Result<Range<u64>, CallError> {
    let (mut first, mut last) = (None, None);
    let mut index = 0u64;
    while index < size {
        let leaves = store.audit_leaves_range(index, LEAVES_PER_READ)?;
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            if index >= size {
                break;
            }
            let e = AuditEntry::decode(leaf.as_slice())?;
            if !((from_ms != 0 && e.time_ms < from_ms) || (to_ms != 0 && e.time_ms > to_ms)) {
                first.get_or_insert(index);
                last = Some(index);
            }
            index += 1;
        }
    }
    match (first, last) {
        (Some(a), Some(b)) => Ok(a..b + 1),
        _ => Err(CallError::msg("no audit entry in that time range")),
    }
}
