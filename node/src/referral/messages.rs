//! Building, signing and enqueueing outgoing messages. A message is acknowledged to the
//! officer only once it is in the durable outbox together with its audit entry.

use std::sync::Arc;

use prost::Message;
use rand::RngCore;
use trm_proto::pb::{self, body::Payload};
use trm_proto::signing;

use crate::base::metrics::Counter;
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op, SealedGroup, SentRecord, SentState, StoreError};
use trm_proto::audit::AuditKind;

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The recipient is not a pinned peer.
    #[error("unknown peer {0}: add its identity card first (`trm-admin peer add CARD`)")]
    UnknownPeer(String),
    /// The recipient is revoked.
    #[error("peer {0} is revoked")]
    Revoked(String),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failure.
    #[error(transparent)]
    Vault(#[from] crate::store::vault::VaultError),
    /// The message is not in order for the referral it belongs to.
    #[error("{0}")]
    OutOfOrder(String),
}

/// The name of a body's payload kind, for listings, metrics and the audit log (the same
/// names the offline verifier uses).
pub fn kind_name(body: &pb::Body) -> &'static str {
    trm_proto::audit::payload_kind(body)
}

/// A message to send.
pub struct Outgoing {
    /// Recipient country.
    pub to: String,
    /// Local case id ("" for messages about no case).
    pub case_id: String,
    /// Pseudonymous case reference.
    pub case_ref: String,
    /// Message this answers, if any.
    pub in_reply_to: Vec<u8>,
    /// Payload.
    pub payload: Payload,
    /// Field disclosures released with it.
    pub released: Vec<pb::FieldDisclosure>,
    /// Every committed field with its salt (kept locally for later releases).
    pub committed: Vec<pb::FieldDisclosure>,
    /// Officer sending it.
    pub officer: String,
}

/// Builds, signs and durably enqueues a message; returns its id once it is on disk.
pub async fn enqueue(ctx: &Arc<Ctx>, out: Outgoing) -> Result<Vec<u8>, SendError> {
    enqueue_with(ctx, out, vec![]).await
}

/// Fills the empty referral id of every [`Op::BindApproval`] in `ops` with `id`.
fn bind_to(ops: &mut [Op], id: &[u8]) {
    for op in ops {
        if let Op::BindApproval { referral_id, .. } = op {
            if referral_id.is_empty() {
                referral_id.extend_from_slice(id);
            }
        }
    }
}

/// [`enqueue`], with `extra` writes committed in the same transaction (an
/// [`Op::BindApproval`] with an empty referral id binds to the message enqueued here).
pub async fn enqueue_with(
    ctx: &Arc<Ctx>,
    out: Outgoing,
    mut extra: Vec<Op>,
) -> Result<Vec<u8>, SendError> {
    let peer = ctx
        .peers
        .get(&out.to)
        .ok_or_else(|| SendError::UnknownPeer(out.to.clone()))?;
    if peer.revoked {
        return Err(SendError::Revoked(out.to));
    }
    let mut id = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    bind_to(&mut extra, &id);
    let now = ctx.clock.now_ms();
    let body = pb::Body {
        version: trm_proto::PROTOCOL_VERSION,
        message_id: id.clone(),
        sender: ctx.country().to_string(),
        recipient: out.to.clone(),
        created_ms: now,
        in_reply_to: out.in_reply_to,
        case_ref: out.case_ref.clone(),
        payload: Some(out.payload),
    };
    let kind = kind_name(&body);
    let thread = ctx.store.thread(&out.to, &body.case_ref)?;
    let thread_op = crate::referral::lifecycle::transition(
        thread.as_ref(),
        crate::referral::lifecycle::Direction::Outgoing,
        &out.to,
        &body,
        now,
    )
    .map_err(|r| SendError::OutOfOrder(r.detail))?
    .map(Op::PutThread);
    let envelope = ctx.keys.seal(&body);
    let audit = sent_audit(&body, &envelope, &out.officer, kind, now);
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let scope = crate::store::casedata::sent_scope(&out.case_id, &out.to, &out.case_ref);
    let sealed = seal_sent(
        ctx,
        &mut ku,
        &scope,
        &id,
        (&out.released, &out.committed),
        &mut ops,
    )?;
    let record = pending_record(&body, &envelope, kind, out.case_id, out.officer, sealed);
    if thread_op.is_some() {
        // Re-checked in the commit's transaction: of two concurrent moves of one thread,
        // only the first commits.
        ops.push(Op::ExpectThread {
            peer: out.to.clone(),
            case_ref: body.case_ref.clone(),
            expected: thread,
        });
    }
    ops.push(Op::Enqueue(record));
    ops.push(Op::Audit(audit));
    ops.extend(thread_op);
    ops.extend(extra);
    let outcomes = ctx.store.commit(ops).await?;
    if outcomes.contains(&crate::store::Outcome::Conflict) {
        return Err(SendError::OutOfOrder(
            "the referral changed while this message was prepared; try again".into(),
        ));
    }
    drop(ku);
    ctx.metrics.inc(Counter::Sent, &out.to, kind);
    ctx.delivery.wake(ctx, &out.to);
    Ok(id)
}

/// The outbox record of a new message (`body` sealed in `envelope`), with its sealed
/// (released, committed) disclosures.
fn pending_record(
    body: &pb::Body,
    envelope: &pb::Envelope,
    kind: &str,
    case_id: String,
    officer: String,
    (released, committed): (Vec<SealedGroup>, Vec<SealedGroup>),
) -> SentRecord {
    SentRecord {
        id: body.message_id.clone(),
        peer: body.recipient.clone(),
        case_id,
        kind: kind.into(),
        envelope: envelope.encode_to_vec(),
        released,
        state: SentState::Pending as u32,
        answer: vec![],
        answered_ms: 0,
        created_ms: body.created_ms,
        outbox_seq: 0,
        officer,
        committed,
        erased: vec![],
        earlier_envelope_hashes: vec![],
    }
}

/// The `sent` audit entry of a message enqueued by `officer`.
fn sent_audit(
    body: &pb::Body,
    envelope: &pb::Envelope,
    officer: &str,
    kind: &str,
    now: i64,
) -> AuditEntry {
    let hash = signing::envelope_hash(&envelope.body, &envelope.signature);
    AuditEntry {
        time_ms: now,
        kind: AuditKind::Sent.into(),
        peer: body.recipient.clone(),
        message_id: body.message_id.clone(),
        envelope_hash: hash.to_vec(),
        signature: envelope.signature.clone(),
        signer: envelope.signer.clone(),
        officer: officer.to_string(),
        call: kind.into(),
        target: body.case_ref.clone(),
        result: "enqueued".into(),
        signed_body: envelope.body.clone(),
        ..Default::default()
    }
}

/// Seals the (released, committed) disclosures of message `id` in `scope`; the vault writes
/// go to `ops`.
fn seal_sent(
    ctx: &Ctx,
    ku: &mut crate::store::vault::KeyUse<'_>,
    scope: &str,
    id: &[u8],
    (released, committed): (&[pb::FieldDisclosure], &[pb::FieldDisclosure]),
    ops: &mut Vec<Op>,
) -> Result<(Vec<SealedGroup>, Vec<SealedGroup>), SendError> {
    use crate::store::casedata::{seal, sent_record, SentPart};
    let cat = |p: &str| ctx.template.category_of(p);
    let released = seal(
        &ctx.vault,
        ku,
        scope,
        &sent_record(id, SentPart::Released),
        released,
        cat,
        ops,
    )?;
    let committed = seal(
        &ctx.vault,
        ku,
        scope,
        &sent_record(id, SentPart::Committed),
        committed,
        cat,
        ops,
    )?;
    Ok((released, committed))
}
