//! Trust in peers beyond their pinned card: witnessing their audit logs, holding a peer whose
//! log was rolled back or rewritten, revocation, and the archive of every card ever pinned
//! (so that old signatures keep verifying in audits after a peer is removed or rotates).
//!
//! **Witnessing.** Every receipt carries the receiver's latest signed checkpoint. The sender
//! keeps, per peer, the last checkpoint it has seen proven consistent. A new checkpoint:
//! * with a larger tree size is accepted only with a consistency proof from the one seen,
//!   fetched over the peer protocol (`PeerRequest::Consistency`);
//! * with the same size must have the same root;
//! * with a smaller size (a receipt that overtook an older one, or a rolled-back log) is
//!   accepted only if the peer proves, with its checkpoint at the seen size, that its log still
//!   extends it; a log restored from an older copy cannot, so it is caught at the next exchange.
//!
//! A failure *holds* the peer: status says so, a warning names it, the metric
//! `peer_log_inconsistent{peer, kind}` counts it, an audit entry (kind `witness`) keeps the
//! offending signed checkpoint as evidence, delivery to it pauses and the receive path answers
//! its messages with `UNAVAILABLE` (they stay in its outbox) until an operator runs
//! `trm-admin peer trust CC`. Only a transport failure while fetching a proof (no complete
//! answer frame) or a signed `UNAVAILABLE` holds nothing; the check runs again at the next
//! receipt. Any other answer but a valid proof (malformed, unsigned, of the wrong kind) holds
//! the peer, and so does a stored baseline that no longer verifies. Evidence is logged only in
//! a form the offline verifier accepts ([`check_loggable`]): a hold without verifiable
//! evidence is logged as an unsigned `peer_held` entry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use trm_proto::card::VerifiedCard;
use trm_proto::merkle;
use trm_proto::pb::{self, peer_response};
use trm_proto::signing::{self, Tag, VerifyMemo};

use crate::base::metrics::Counter;
use crate::base::time::format_ms;
use crate::base::vocab::CallError;
use crate::state::ctx::Ctx;
use crate::state::witness::WITNESS_PREFIX;
pub use crate::state::witness::{Trust, WitnessRecord};
use crate::store::{AuditEntry, Op, StoreError};
use trm_proto::audit::AuditKind;

/// Meta key prefix of archived peer cards: `card/CC/<sha256 hex>`.
const CARD_PREFIX: &str = "card/";

/// Why this node must not accept a message from `peer` now, if it must not.
pub fn refuse_incoming(ctx: &Ctx, peer: &str) -> Option<String> {
    if let Some(why) = ctx.store.write_failure() {
        return Some(format!(
            "the receiver's audit log cannot be written ({why}); try again later"
        ));
    }
    if ctx.trust.is_held(peer) {
        return Some(
            "held: your audit log contradicts checkpoints you showed before (rolled back or \
             rewritten); messages are refused until the receiver's operator re-accepts you"
                .into(),
        );
    }
    None
}

/// Why delivery to `peer` is paused, if it is.
pub fn hold_outgoing(ctx: &Ctx, peer: &str) -> Option<String> {
    if let Some(why) = ctx.store.write_failure() {
        return Some(format!("paused: the audit log cannot be written ({why})"));
    }
    if ctx.peers.get(peer).is_some_and(|p| p.revoked) {
        return Some("paused: the peer is revoked".into());
    }
    if ctx.trust.is_held(peer) {
        return Some("paused: the peer's audit log is inconsistent (held)".into());
    }
    None
}

/// A checked checkpoint of a peer.
struct Seen {
    size: u64,
    root: merkle::Hash,
}

/// Checks a checkpoint of `peer` exactly as the offline verifier checks a `witness` entry
/// holding it (canonical body, `peer`'s key valid at the checkpoint's time, signature), so
/// that a checkpoint this node keeps as a baseline or as evidence verifies in every audit.
fn check_checkpoint(ctx: &Ctx, peer: &str, signed: &pb::Signed) -> Result<Seen, String> {
    let probe = AuditEntry {
        kind: WITNESS_KIND.into(),
        peer: peer.into(),
        signed_body: signed.body.clone(),
        signature: signed.signature.clone(),
        signer: signed.signer.clone(),
        ..Default::default()
    };
    check_loggable(ctx, &probe)?;
    let cp = pb::Checkpoint::decode(signed.body.as_slice())
        .map_err(|_| "checkpoint does not decode".to_string())?;
    let root: merkle::Hash = cp
        .root_hash
        .as_slice()
        .try_into()
        .map_err(|_| "root hash is not 32 bytes".to_string())?;
    Ok(Seen {
        size: cp.tree_size,
        root,
    })
}

/// Audit kind of a held peer's signed evidence (a checkpoint of the peer).
const WITNESS_KIND: AuditKind = AuditKind::Witness;
/// Audit kind of a peer held without verifiable evidence (an invalid checkpoint or a
/// malformed answer): no signed fields, the reason in `result`.
const HELD_KIND: AuditKind = AuditKind::PeerHeld;

/// Checks an entry this node is about to log about a peer's answer with the offline
/// verifier's own per-entry check ([`trm_proto::audit::check_log_entry`]), against this
/// node's key history and the peer's pinned card (a card every export includes).
pub fn check_loggable(ctx: &Ctx, entry: &AuditEntry) -> Result<(), String> {
    let cards: Vec<VerifiedCard> = ctx
        .peers
        .get(&entry.peer)
        .map(|p| p.card)
        .into_iter()
        .collect();
    let memo: &dyn VerifyMemo = &ctx.verified;
    trm_proto::audit::check_log_entry(ctx.country(), &ctx.keys.history, &cards, entry, Some(memo))
        .map(|_| ())
}

/// What fetching a consistency proof gave.
enum Fetched {
    /// The proof verified: the log at `second` extends the log at `first`.
    Consistent,
    /// The peer could not or did not prove it (signed rejection, wrong proof or checkpoint).
    Inconsistent(String),
    /// The network failed; try again at the next receipt.
    Unknown(String),
    /// A signed `UNAVAILABLE`: asked again at the next receipt, but only
    /// [`MAX_BUSY_ANSWERS`] times in a row.
    Busy,
}

/// Consistency requests a peer may answer with a signed `UNAVAILABLE` in a row before it is
/// held: an honest node is busy for moments, a peer that never proves its log escapes
/// witnessing.
pub const MAX_BUSY_ANSWERS: u32 = 10;

/// Asks `peer` to prove that its log at `older.size` is a prefix of its log at
/// `newer.size`, whose root must be `newer.root`.
async fn fetch_consistency(
    ctx: &Ctx,
    peer: &str,
    conn: &quinn::Connection,
    older: &Seen,
    newer: &Seen,
) -> Fetched {
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Consistency(
            pb::ConsistencyRequest {
                first: older.size,
                second: newer.size,
            },
        )),
    };
    let timeout = Duration::from_secs(ctx.cfg.limits.stream_timeout_secs.max(10));
    let resp: pb::PeerResponse =
        match crate::net::transport::request(conn, &req, ctx.cfg.limits.max_frame_bytes, timeout)
            .await
        {
            Ok(r) => r,
            // An answer arrived but is not a readable `PeerResponse`: the peer's answer, not the
            // network's failure.
            Err(crate::net::transport::RequestError::Frame(
                crate::net::transport::FrameIoError::Frame(e),
            )) => {
                return Fetched::Inconsistent(format!(
                    "malformed answer to a consistency request: {e}"
                ))
            }
            // No answer (connection lost, stream ended or reset, timeout): try again later.
            Err(e) => return Fetched::Unknown(e.to_string()),
        };
    match resp.kind {
        Some(peer_response::Kind::Consistency(p)) => check_proof(ctx, peer, &p, older, newer),
        Some(peer_response::Kind::Rejection(signed)) => {
            refused_proof(ctx, peer, &signed, older, newer)
        }
        Some(peer_response::Kind::Receipt(_)) => {
            Fetched::Inconsistent("answered a consistency request with a receipt".into())
        }
        None => Fetched::Inconsistent("answered a consistency request with an empty answer".into()),
    }
}

/// A consistency proof answered: it must be of the sizes asked, carry a checkpoint of the
/// newer size with the newer root, and verify.
fn check_proof(
    ctx: &Ctx,
    peer: &str,
    p: &pb::ConsistencyProof,
    older: &Seen,
    newer: &Seen,
) -> Fetched {
    let Some(cp) = p.checkpoint.as_ref() else {
        return Fetched::Inconsistent("consistency proof without its checkpoint".into());
    };
    let at = match check_checkpoint(ctx, peer, cp) {
        Ok(s) => s,
        Err(e) => return Fetched::Inconsistent(format!("proof's checkpoint: {e}")),
    };
    if p.first != older.size || p.second != newer.size || at.size != newer.size {
        return Fetched::Inconsistent("proof is for other tree sizes".into());
    }
    if at.root != newer.root {
        return Fetched::Inconsistent(format!(
            "two checkpoints of tree size {} with different roots",
            newer.size
        ));
    }
    let hashes: Option<Vec<merkle::Hash>> = p
        .hashes
        .iter()
        .map(|h| h.as_slice().try_into().ok())
        .collect();
    let Some(hashes) = hashes else {
        return Fetched::Inconsistent("proof hash is not 32 bytes".into());
    };
    match merkle::verify_consistency(older.size, newer.size, &older.root, &newer.root, &hashes) {
        Ok(()) => Fetched::Consistent,
        Err(e) => Fetched::Inconsistent(format!(
            "consistency proof {} -> {} fails: {e}",
            older.size, newer.size
        )),
    }
}

/// A rejection answered a consistency request: a signed `UNAVAILABLE` is "busy"; anything
/// else (or unsigned) means the peer cannot prove its log extends what it showed.
fn refused_proof(
    ctx: &Ctx,
    peer: &str,
    signed: &pb::Signed,
    older: &Seen,
    newer: &Seen,
) -> Fetched {
    let Some(p) = ctx.peers.get(peer) else {
        return Fetched::Unknown("the peer is no longer pinned".into());
    };
    let r = match pb::Rejection::decode(signed.body.as_slice()) {
        Ok(r) => r,
        Err(_) => {
            return Fetched::Inconsistent(
                "answered a consistency request with a rejection that does not decode".into(),
            )
        }
    };
    let signed_ok = p
        .card
        .key_valid_at(&signed.signer, ctx.clock.now_ms())
        .is_some_and(|k| {
            signing::verify(&k, Tag::Rejection, &signed.body, &signed.signature).is_ok()
        });
    if !signed_ok {
        return Fetched::Inconsistent(
            "answered a consistency request with a rejection not signed by its current key".into(),
        );
    }
    if r.reason == pb::RejectReason::Unavailable as i32 {
        // A signed "busy, try later" states nothing about the log: asked again at the
        // next receipt.
        return Fetched::Busy;
    }
    Fetched::Inconsistent(format!(
        "it cannot prove that its log of {} entries extends the {} it showed: {}",
        newer.size,
        older.size,
        bounded(&r.detail)
    ))
}

/// At most 200 characters of peer-supplied text, for logs and audit entries.
fn bounded(text: &str) -> String {
    let mut t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t
}

/// Witnesses `peer`'s checkpoint from a receipt; holds the peer if its log contradicts what
/// it showed before. `conn` is the connection the receipt came on.
pub async fn witness(ctx: &Ctx, peer: &str, conn: &quinn::Connection, signed: pb::Signed) {
    let lock = ctx.trust.lock_for(peer);
    let _serial = lock.lock().await;
    let rec = ctx.trust.record(peer).unwrap_or_default();
    if rec.held {
        return;
    }
    let new = match check_checkpoint(ctx, peer, &signed) {
        Ok(s) => s,
        Err(e) => {
            return hold(
                ctx,
                peer,
                rec,
                None,
                "invalid",
                format!("invalid checkpoint: {e}"),
            )
            .await
        }
    };
    if rec.seen.is_empty() {
        return accept(ctx, peer, rec, &signed).await;
    }
    // A baseline that no longer verifies (a store edited, or a card that no longer vouches
    // for it) is not silently replaced: nothing can then show the peer's log still extends it.
    let old = match pb::Signed::decode(rec.seen.as_slice())
        .map_err(|_| "does not decode".to_string())
        .and_then(|s| check_checkpoint(ctx, peer, &s))
    {
        Ok(old) => old,
        Err(e) => {
            return hold(
                ctx,
                peer,
                rec,
                Some(&signed),
                "baseline",
                format!("the checkpoint it showed before no longer verifies: {e}"),
            )
            .await
        }
    };
    let outcome = match new.size.cmp(&old.size) {
        std::cmp::Ordering::Equal if new.root == old.root => return,
        std::cmp::Ordering::Equal => Fetched::Inconsistent(format!(
            "two checkpoints of tree size {} with different roots",
            new.size
        )),
        std::cmp::Ordering::Greater => fetch_consistency(ctx, peer, conn, &old, &new).await,
        std::cmp::Ordering::Less => {
            match fetch_consistency(ctx, peer, conn, &new, &old).await {
                // An older checkpoint that arrived late: keep the newer one.
                Fetched::Consistent => return,
                Fetched::Inconsistent(why) => Fetched::Inconsistent(format!(
                    "rolled back: it now shows a log of {} entries after showing {}; {why}",
                    new.size, old.size
                )),
                unknown => unknown,
            }
        }
    };
    settle(ctx, peer, rec, &signed, (&old, &new), outcome).await;
}

/// Acts on what checking a new checkpoint against the one seen (`seen.0`, then `seen.1`
/// the new one) found: accept it, ask again later, or hold the peer.
async fn settle(
    ctx: &Ctx,
    peer: &str,
    rec: WitnessRecord,
    signed: &pb::Signed,
    seen: (&Seen, &Seen),
    outcome: Fetched,
) {
    let (old, new) = seen;
    if !matches!(outcome, Fetched::Busy | Fetched::Unknown(_)) {
        ctx.trust.busy_reset(peer);
    }
    match outcome {
        Fetched::Consistent => accept(ctx, peer, rec, signed).await,
        Fetched::Unknown(e) => {
            tracing::debug!(peer = %peer, error = %e, "could not check the peer's audit log now");
        }
        Fetched::Busy => {
            let n = ctx.trust.busy_again(peer);
            if n >= MAX_BUSY_ANSWERS {
                ctx.trust.busy_reset(peer);
                let why = format!(
                    "answered {n} consistency requests in a row with UNAVAILABLE: it does not prove that its log of {} entries extends the {} it showed",
                    new.size, old.size
                );
                hold(ctx, peer, rec, None, "unproven", why).await;
            } else {
                tracing::debug!(peer = %peer, times = n, "the peer is busy (signed UNAVAILABLE); asked again at the next receipt");
            }
        }
        Fetched::Inconsistent(why) => {
            let kind = if new.size < old.size {
                "rolled_back"
            } else {
                "rewritten"
            };
            hold(ctx, peer, rec, Some(signed), kind, why).await;
        }
    }
}

/// The store write that forgets the witness record of `cc`; see [`Trust::forget`].
pub fn forget_op(cc: &str) -> Op {
    Op::DeleteMeta(format!("{WITNESS_PREFIX}{cc}"))
}

async fn accept(ctx: &Ctx, peer: &str, mut rec: WitnessRecord, signed: &pb::Signed) {
    rec.seen = signed.encode_to_vec();
    rec.seen_ms = ctx.clock.now_ms();
    let op = Op::PutMeta(format!("{WITNESS_PREFIX}{peer}"), rec.encode_to_vec());
    match ctx.store.commit(vec![op]).await {
        Ok(_) => ctx.trust.set(peer, rec),
        Err(e) => tracing::warn!(peer = %peer, error = %e, "cannot store the peer's checkpoint"),
    }
}

async fn hold(
    ctx: &Ctx,
    peer: &str,
    mut rec: WitnessRecord,
    evidence: Option<&pb::Signed>,
    kind: &'static str,
    reason: String,
) {
    let now = ctx.clock.now_ms();
    rec.held = true;
    rec.reason = reason.clone();
    rec.held_ms = now;
    rec.offending = evidence.map(|s| s.encode_to_vec()).unwrap_or_default();
    tracing::warn!(
        peer = %peer,
        reason = %reason,
        "peer {peer}'s audit log contradicts the checkpoints it showed before (rolled back or \
         rewritten); its messages are held until an operator runs `trm-admin peer trust {peer}`"
    );
    ctx.metrics.inc(Counter::PeerLogInconsistent, peer, kind);
    let mut entry = AuditEntry {
        time_ms: now,
        kind: WITNESS_KIND.into(),
        peer: peer.into(),
        signed_body: evidence.map(|s| s.body.clone()).unwrap_or_default(),
        signature: evidence.map(|s| s.signature.clone()).unwrap_or_default(),
        signer: evidence.map(|s| s.signer.clone()).unwrap_or_default(),
        call: kind.into(),
        result: format!("held: {reason}"),
        ..Default::default()
    };
    // Only evidence the offline verifier accepts is logged as `witness`; without it the hold
    // is logged unsigned, so that no export fails to verify because of it.
    if evidence.is_none() || check_loggable(ctx, &entry).is_err() {
        entry.kind = HELD_KIND.into();
        entry.signed_body.clear();
        entry.signature.clear();
        entry.signer.clear();
        rec.offending.clear();
    }
    let ops = vec![
        Op::PutMeta(format!("{WITNESS_PREFIX}{peer}"), rec.encode_to_vec()),
        Op::Audit(entry),
    ];
    if let Err(e) = ctx.store.commit(ops).await {
        tracing::error!(peer = %peer, error = %e, "cannot store that the peer is held; holding it in memory");
    }
    ctx.trust.set(peer, rec);
}

/// `peer trust CC`: re-accepts a held peer. Its latest checkpoint (the one that contradicted
/// the earlier ones) becomes the new baseline for witnessing.
pub async fn trust(
    ctx: &Arc<Ctx>,
    cc: &str,
) -> Result<trm_admin_api::answers::PeerTrusted, CallError> {
    let mut rec = ctx
        .trust
        .record(cc)
        .filter(|r| r.held)
        .ok_or_else(|| CallError::msg(format!("peer {cc} is not held")))?;
    let was = std::mem::take(&mut rec.reason);
    rec.held = false;
    rec.seen = std::mem::take(&mut rec.offending);
    rec.seen_ms = ctx.clock.now_ms();
    ctx.store
        .commit(vec![Op::PutMeta(
            format!("{WITNESS_PREFIX}{cc}"),
            rec.encode_to_vec(),
        )])
        .await?;
    ctx.trust.set(cc, rec);
    tracing::warn!(peer = %cc, was = %was, "peer re-accepted by an operator; its audit log is witnessed from its current checkpoint on");
    ctx.delivery.wake(ctx, cc);
    Ok(trm_admin_api::answers::PeerTrusted {
        trusted: cc.to_string(),
        was_held_for: was,
    })
}

/// `peer revoke CC`: unpins the peer's certificate (new handshakes fail), closes its open
/// connections, rejects its later messages and pauses delivery to it. Its card stays in the
/// store and the archive, so its earlier signatures still verify in audits.
pub async fn revoke(
    ctx: &Arc<Ctx>,
    cc: &str,
) -> Result<trm_admin_api::answers::PeerRevoked, CallError> {
    let peer = ctx
        .peers
        .get(cc)
        .ok_or_else(|| CallError::msg(format!("unknown peer {cc}")))?;
    let now = ctx.clock.now_ms();
    let mut rec = ctx
        .store
        .peer(cc)?
        .unwrap_or_else(|| crate::state::peers::record(&peer.card, now));
    if rec.revoked {
        return Err(CallError::msg(format!(
            "peer {cc} was already revoked at {}",
            format_ms(rec.revoked_ms)
        )));
    }
    rec.revoked = true;
    rec.revoked_ms = now;
    ctx.store
        .commit(vec![Op::PutPeer(cc.to_string(), rec)])
        .await?;
    ctx.peers.put(peer.card, true);
    ctx.trust.notify();
    ctx.delivery.wake(ctx, cc);
    tracing::warn!(peer = %cc, "peer revoked: connections closed, handshakes and messages refused");
    Ok(trm_admin_api::answers::PeerRevoked {
        revoked: cc.to_string(),
        at: format_ms(now),
    })
}

/// The op that archives a peer card, so audits can verify its signatures for ever.
pub fn archive_card(card: &VerifiedCard) -> Op {
    Op::PutMeta(
        format!(
            "{CARD_PREFIX}{}/{}",
            card.country(),
            hex::encode(signing::sha256(&card.raw))
        ),
        card.raw.clone(),
    )
}

/// Every peer card this node pinned (archived or pinned now), deduplicated.
pub fn archived_cards(ctx: &Ctx) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out: BTreeSet<Vec<u8>> = ctx
        .store
        .meta_prefix(CARD_PREFIX)?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    out.extend(ctx.store.peers()?.into_values().map(|p| p.card));
    Ok(out.into_iter().collect())
}

/// The witness part of a peer's `status`, and the state that overrides reachability.
pub fn peer_json(
    ctx: &Ctx,
    cc: &str,
) -> (Option<&'static str>, trm_admin_api::answers::PeerAuditLog) {
    let rec = ctx.trust.record(cc).unwrap_or_default();
    let seen = pb::Signed::decode(rec.seen.as_slice())
        .ok()
        .and_then(|s| pb::Checkpoint::decode(s.body.as_slice()).ok())
        .filter(|_| !rec.seen.is_empty());
    let state = if rec.held {
        Some("held: audit log inconsistent")
    } else if hold_outgoing(ctx, cc).is_some() && !ctx.peers.get(cc).is_some_and(|p| p.revoked) {
        Some("paused")
    } else {
        None
    };
    (
        state,
        trm_admin_api::answers::PeerAuditLog {
            held: rec.held,
            reason: rec.reason,
            held_since: format_ms(rec.held_ms),
            seen_tree_size: seen.as_ref().map_or(0, |c| c.tree_size),
            seen_checkpoint_time: format_ms(seen.as_ref().map_or(0, |c| c.time_ms)),
        },
    )
}
