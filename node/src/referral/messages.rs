//! Building, signing and enqueueing outgoing messages. A message is acknowledged to the
//! officer only once it is in the durable outbox together with its audit entry.

use std::sync::Arc;

use prost::Message;
use rand::RngCore;
use trm_proto::pb::{self, body::Payload};
use trm_proto::signing;

use crate::base::metrics::Counter;
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op, SentRecord, SentState, StoreError};
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

/// [`enqueue`], with `extra` writes committed in the same transaction.
pub async fn enqueue_with(
    ctx: &Arc<Ctx>,
    out: Outgoing,
    extra: Vec<Op>,
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
    let hash = signing::envelope_hash(&envelope.body, &envelope.signature);
    let audit = AuditEntry {
        time_ms: now,
        kind: AuditKind::Sent.into(),
        peer: out.to.clone(),
        message_id: id.clone(),
        envelope_hash: hash.to_vec(),
        signature: envelope.signature.clone(),
        signer: envelope.signer.clone(),
        officer: out.officer.clone(),
        call: kind.into(),
        target: out.case_ref.clone(),
        result: "enqueued".into(),
        signed_body: envelope.body.clone(),
        ..Default::default()
    };
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let scope = crate::store::casedata::sent_scope(&out.case_id, &out.to, &out.case_ref);
    let cat = |p: &str| ctx.template.category_of(p);
    use crate::store::casedata::{sent_record, SentPart};
    let released = crate::store::casedata::seal(
        &ctx.vault,
        &mut ku,
        &scope,
        &sent_record(&id, SentPart::Released),
        &out.released,
        cat,
        &mut ops,
    )?;
    let committed = crate::store::casedata::seal(
        &ctx.vault,
        &mut ku,
        &scope,
        &sent_record(&id, SentPart::Committed),
        &out.committed,
        cat,
        &mut ops,
    )?;
    let record = SentRecord {
        id: id.clone(),
        peer: out.to.clone(),
        case_id: out.case_id,
        kind: kind.into(),
        envelope: envelope.encode_to_vec(),
        released,
        state: SentState::Pending as u32,
        answer: vec![],
        answered_ms: 0,
        created_ms: now,
        outbox_seq: 0,
        officer: out.officer,
        committed,
        erased: vec![],
        earlier_envelope_hashes: vec![],
    };
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
