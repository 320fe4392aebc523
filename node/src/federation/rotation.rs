//! Signing key rotation, and the `KeyAnnouncement` that tells peers about it.
//!
//! `trm-node key rotate --dir DIR [--overlap-days N]` runs with the node stopped (the store is
//! locked while the node runs). It makes a new Ed25519 key, endorsed by the current one
//! (`card::key_endorsement_bytes`, tag `trm/1 key`), closes the current key's validity N days
//! later (the overlap, during which messages already signed with it still verify), and, in
//! one store transaction, logs a `key` audit entry (the endorsement itself) and puts a
//! `KeyAnnouncement` for every pinned, non-revoked peer in the outbox, signed by the old key and
//! carrying the new card. Then it writes `keys/history.pb`, the new key and the new card.
//!
//! A receiver accepts the announcement only if it is signed by the key it has pinned as
//! current and the new card extends the pinned key history by exactly one key endorsed by it
//! ([`trm_proto::card::check_successor`]); then it pins the new card. Delivery sends an
//! announcement alone and waits for its receipt before the messages after it, which are signed
//! with the new key.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use prost::Message;
use rand::rngs::OsRng;
use rand::RngCore;
use trm_proto::card::{self, VerifiedCard};
use trm_proto::pb::{self, body::Payload, RejectReason};
use trm_proto::signing::{self, Tag};

use crate::base::config::NodeConfig;
use crate::base::vocab::Refusal;
use crate::identity::{self, NodeKeys};
use crate::state::ctx::Ctx;
use crate::state::peers::Peer;
use crate::store::{AuditEntry, Op, SentRecord, SentState, Store};
use trm_proto::audit::AuditKind;

/// Why a rotation failed. Nothing was changed unless the error says so.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::base::config::ConfigError),
    /// Keys.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The store could not be opened or written.
    #[error("{0} (is the node running? stop it before rotating its key)")]
    Store(#[from] crate::store::StoreError),
    /// An earlier rotation stopped half-way.
    #[error("{0} exists: an earlier rotation was interrupted after logging it; move that file back to the signing key path if keys/history.pb ends with its key, otherwise delete it, then retry")]
    Interrupted(PathBuf),
    /// The overlap is longer than peers accept.
    #[error("--overlap-days {0} is too long: at most 30 days (peers refuse a longer overlap)")]
    Overlap(u32),
    /// The new key history does not verify (a bug).
    #[error("new key history: {0}")]
    History(#[from] card::CardError),
}

/// What a rotation did.
#[derive(Debug)]
pub struct RotateReport {
    /// Fingerprint of the old key.
    pub old_key: String,
    /// Fingerprint of the new key.
    pub new_key: String,
    /// Until when the old key stays valid (Unix ms).
    pub old_valid_until_ms: i64,
    /// Peers an announcement was queued for.
    pub announced_to: Vec<String>,
}

/// Rotates the signing key of the (stopped) node in `dir`; the old key stays valid for
/// `overlap_days` (at most 30: peers refuse a longer overlap).
pub fn rotate(dir: &Path, overlap_days: u32, now_ms: i64) -> Result<RotateReport, RotateError> {
    if i64::from(overlap_days) * 86_400_000 > card::MAX_OVERLAP_MS {
        return Err(RotateError::Overlap(overlap_days));
    }
    rotate_with_overlap_ms(dir, i64::from(overlap_days) * 86_400_000, now_ms)
}

/// [`rotate`] with the overlap in milliseconds (tests use overlaps of seconds).
pub fn rotate_with_overlap_ms(
    dir: &Path,
    overlap_ms: i64,
    now_ms: i64,
) -> Result<RotateReport, RotateError> {
    if !(0..=card::MAX_OVERLAP_MS).contains(&overlap_ms) {
        return Err(RotateError::Overlap(
            u32::try_from(overlap_ms / 86_400_000).unwrap_or(u32::MAX),
        ));
    }
    let cfg = NodeConfig::load(dir)?;
    let old = NodeKeys::load(dir, &cfg)?;
    let key_path = dir.join(&cfg.paths.signing_key);
    let next_path = key_path.with_extension("next");
    if next_path.exists() {
        return Err(RotateError::Interrupted(next_path));
    }
    let store = Store::open(&dir.join(&cfg.paths.store))?;

    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let new_key = SigningKey::from_bytes(&secret);
    let until = now_ms.saturating_add(overlap_ms);
    let NextKey {
        history,
        record,
        endorsed,
    } = next_history(&old, &new_key, now_ms, until)?;

    let new_keys = NodeKeys {
        signing: new_key,
        history: history.clone(),
        tls_cert: old.tls_cert.clone(),
        tls_key: old.tls_key.clone_key(),
        store_key: old.store_key,
    };
    let new_card = new_keys.card_in(dir, &cfg);

    let mut ops = vec![rotation_audit(&record, endorsed, until, now_ms)];
    let mut announced_to = Vec::new();
    for (cc, peer) in store.peers()? {
        if peer.revoked {
            continue;
        }
        ops.extend(announcement(
            &cfg,
            &old.signing,
            &cc,
            &record,
            &new_card,
            now_ms,
        ));
        announced_to.push(cc);
    }

    identity::write_private(&next_path, &secret)?;
    zeroize::Zeroize::zeroize(&mut secret);
    store.commit_blocking(ops)?;
    store.flush()?;
    identity::write_history(dir, &history)?;
    identity::rename_durably(&next_path, &key_path)?;
    identity::write_public(&dir.join(&cfg.paths.card), &new_card)?;
    Ok(RotateReport {
        old_key: signing::fingerprint(&old.public_key()),
        new_key: signing::fingerprint(&new_keys.public_key()),
        old_valid_until_ms: until,
        announced_to,
    })
}

/// The key history after a rotation to `new_key` at `now_ms`.
struct NextKey {
    /// The old history, its last key valid until the overlap ends, then the new key's record.
    history: Vec<pb::KeyRecord>,
    /// The new key's record, endorsed by the old key.
    record: pb::KeyRecord,
    /// The bytes the old key signed to endorse the new one.
    endorsed: Vec<u8>,
}

/// The key history of `old` with `new_key` appended (endorsed by the old key), the old key
/// ending at `until`; verified.
fn next_history(
    old: &NodeKeys,
    new_key: &SigningKey,
    now_ms: i64,
    until: i64,
) -> Result<NextKey, RotateError> {
    let old_pk = old.public_key().to_vec();
    let mut history = old.history.clone();
    if let Some(last) = history.last_mut() {
        if last.valid_until_ms == 0 || last.valid_until_ms > until {
            last.valid_until_ms = until;
        }
    }
    let mut record = pb::KeyRecord {
        public_key: new_key.verifying_key().to_bytes().to_vec(),
        valid_from_ms: now_ms,
        valid_until_ms: 0,
        endorsement: vec![],
        endorser: old_pk,
    };
    let endorsed = card::key_endorsement_bytes(&record);
    record.endorsement = signing::sign(&old.signing, Tag::Key, &endorsed).to_vec();
    history.push(record.clone());
    card::verify_key_history(&history)?;
    Ok(NextKey {
        history,
        record,
        endorsed,
    })
}

/// The audit entry of a rotation to the key of `record`, the old key valid until `until`.
fn rotation_audit(record: &pb::KeyRecord, endorsed: Vec<u8>, until: i64, now_ms: i64) -> Op {
    Op::Audit(AuditEntry {
        time_ms: now_ms,
        kind: AuditKind::Key.into(),
        officer: "trm-node key rotate".into(),
        call: "rotate".into(),
        target: signing::fingerprint(&record.public_key),
        result: format!(
            "ok: old key valid until {}",
            crate::base::time::format_ms(until)
        ),
        signed_body: endorsed,
        signature: record.endorsement.clone(),
        signer: record.endorser.clone(),
        ..Default::default()
    })
}

/// The outbox and audit ops of one announcement to `to`, signed by `old`.
fn announcement(
    cfg: &NodeConfig,
    old: &SigningKey,
    to: &str,
    record: &pb::KeyRecord,
    new_card: &[u8],
    now_ms: i64,
) -> Vec<Op> {
    let mut id = vec![0u8; 16];
    OsRng.fill_bytes(&mut id);
    let body = pb::Body {
        version: trm_proto::PROTOCOL_VERSION,
        message_id: id.clone(),
        sender: cfg.country.clone(),
        recipient: to.to_string(),
        created_ms: now_ms,
        in_reply_to: vec![],
        case_ref: String::new(),
        payload: Some(Payload::KeyAnnouncement(pb::KeyAnnouncement {
            key: Some(record.clone()),
            card: new_card.to_vec(),
        })),
    }
    .encode_to_vec();
    let signature = signing::sign(old, Tag::Envelope, &body).to_vec();
    let signer = old.verifying_key().to_bytes().to_vec();
    let hash = signing::envelope_hash(&body, &signature);
    let audit = AuditEntry {
        time_ms: now_ms,
        kind: AuditKind::Sent.into(),
        peer: to.into(),
        message_id: id.clone(),
        envelope_hash: hash.to_vec(),
        signature: signature.clone(),
        signer: signer.clone(),
        officer: "trm-node key rotate".into(),
        call: "key_announcement".into(),
        result: "enqueued".into(),
        signed_body: body.clone(),
        ..Default::default()
    };
    let envelope = pb::Envelope {
        body,
        signature,
        signer,
    };
    vec![
        Op::Enqueue(SentRecord {
            id,
            peer: to.into(),
            case_id: String::new(),
            kind: "key_announcement".into(),
            envelope: envelope.encode_to_vec(),
            released: vec![],
            state: SentState::Pending as u32,
            answer: vec![],
            answered_ms: 0,
            created_ms: now_ms,
            outbox_seq: 0,
            officer: "trm-node key rotate".into(),
            committed: vec![],
            erased: vec![],
            earlier_envelope_hashes: vec![],
        }),
        Op::Audit(audit),
    ]
}

/// Before delivery: a queued message signed by a key of this node whose validity has ended
/// (rotated past its overlap) would be refused by the receiver whatever it claims, so it is
/// signed again by the current key. Same message id and payload; `created_ms` becomes now,
/// because receivers and auditors check the key at the message's time and the new key was
/// not valid before the rotation. The new envelope replaces the stored one, with a `sent`
/// audit entry (result `re-signed`), before it leaves. Key announcements are never re-signed:
/// they must carry the old key's signature.
pub async fn resign_if_retired(ctx: &Ctx, mut rec: SentRecord) -> Result<SentRecord, String> {
    if rec.kind == "key_announcement" {
        return Ok(rec);
    }
    let env = pb::Envelope::decode(rec.envelope.as_slice())
        .map_err(|e| format!("stored message unreadable: {e}"))?;
    let now = ctx.clock.now_ms();
    if env.signer == ctx.keys.public_key() || card::key_open_at(&ctx.keys.history, &env.signer, now)
    {
        return Ok(rec);
    }
    let mut body = pb::Body::decode(env.body.as_slice())
        .map_err(|e| format!("stored message unreadable: {e}"))?;
    // The peer may have stored this signing already and lost our copy of its receipt: its
    // answer to the new signing is then that first receipt, which names the old hash.
    rec.earlier_envelope_hashes
        .push(signing::envelope_hash(&env.body, &env.signature).to_vec());
    body.created_ms = now;
    let sealed = ctx.keys.seal(&body);
    let hash = signing::envelope_hash(&sealed.body, &sealed.signature);
    let audit = AuditEntry {
        time_ms: now,
        kind: AuditKind::Sent.into(),
        peer: rec.peer.clone(),
        message_id: rec.id.clone(),
        envelope_hash: hash.to_vec(),
        signature: sealed.signature.clone(),
        signer: sealed.signer.clone(),
        officer: rec.officer.clone(),
        call: rec.kind.clone(),
        target: body.case_ref.clone(),
        result: "re-signed: its key was retired".into(),
        signed_body: sealed.body.clone(),
        ..Default::default()
    };
    rec.envelope = sealed.encode_to_vec();
    ctx.store
        .commit(vec![Op::PutSent(rec.clone()), Op::Audit(audit)])
        .await
        .map_err(|e| format!("cannot store the re-signed message: {e}"))?;
    tracing::info!(peer = %rec.peer, message = %hex::encode(&rec.id), "queued message re-signed with the current key");
    Ok(rec)
}

/// For an incoming `KeyAnnouncement` from `peer` (whose envelope signature was verified with
/// a key of the pinned card), the new card to pin; `None` for any other payload.
pub fn announced_card(
    pinned: &Peer,
    env: &pb::Envelope,
    body: &pb::Body,
) -> Result<Option<VerifiedCard>, Refusal> {
    let Some(Payload::KeyAnnouncement(a)) = &body.payload else {
        return Ok(None);
    };
    let refuse = |d: String| Refusal::new(RejectReason::KeyNotValid, d);
    if a.card == pinned.card.raw {
        // A retry of an announcement already applied (its receipt was lost): the duplicate
        // check answers it with the first receipt.
        return Ok(Some(pinned.card.clone()));
    }
    if env.signer != pinned.card.card.signing_key {
        return Err(refuse(
            "a key announcement must be signed by the sender's current pinned key".into(),
        ));
    }
    let next = card::verify_card(&a.card).map_err(|e| refuse(format!("announced card: {e}")))?;
    if a.key.as_ref() != next.card.key_history.last() {
        return Err(refuse(
            "the announced key is not the new card's current key".into(),
        ));
    }
    card::check_successor(&pinned.card, &next, body.created_ms)
        .map_err(|e| refuse(format!("announced card: {e}")))?;
    Ok(Some(next))
}

/// The ops that pin `next` in place of the current card of its country.
pub fn pin_ops(ctx: &Ctx, next: &VerifiedCard) -> Vec<Op> {
    let cc = next.country().to_string();
    let mut rec = ctx
        .store
        .peer(&cc)
        .ok()
        .flatten()
        .unwrap_or_else(|| crate::state::peers::record(next, ctx.clock.now_ms()));
    rec.card = next.raw.clone();
    vec![
        Op::PutPeer(cc, rec),
        crate::federation::trust::archive_card(next),
    ]
}

/// After the announcement is stored: pins the new card in memory.
pub fn pin(ctx: &Ctx, next: VerifiedCard) {
    tracing::info!(peer = %next.country(), key = %next.signing_fingerprint(), "peer rotated its signing key; new card pinned");
    let revoked = ctx.peers.get(next.country()).is_some_and(|p| p.revoked);
    ctx.peers.put(next, revoked);
}

/// Delivery order: an announcement goes first and alone (messages already in flight aside),
/// and every other message waits for its receipt, so that a message re-signed with the new
/// key never reaches the peer before the new key does. Returns the batch to send now and
/// updates `barrier`, the id of the announcement in flight.
pub fn order_batch(
    mut batch: Vec<SentRecord>,
    barrier: &mut Option<Vec<u8>>,
    inflight: &std::collections::HashSet<Vec<u8>>,
) -> Vec<SentRecord> {
    if barrier.as_ref().is_some_and(|b| inflight.contains(b)) {
        return vec![];
    }
    *barrier = None;
    if let Some(pos) = batch.iter().position(|r| r.kind == "key_announcement") {
        let announcement = batch.swap_remove(pos);
        *barrier = Some(announcement.id.clone());
        return vec![announcement];
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn rec(id: u8, kind: &str) -> SentRecord {
        SentRecord {
            id: vec![id],
            kind: kind.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_announcement_goes_first_and_alone_and_the_rest_waits_for_its_receipt() {
        let mut barrier = None;
        let batch = vec![
            rec(1, "referral"),
            rec(2, "key_announcement"),
            rec(3, "follow_up"),
        ];
        let out = order_batch(batch, &mut barrier, &HashSet::new());
        assert_eq!(out.iter().map(|r| r.id[0]).collect::<Vec<_>>(), vec![2]);
        assert_eq!(barrier, Some(vec![2]));
        // While it is in flight nothing else leaves, not even what was queued before it.
        let inflight: HashSet<Vec<u8>> = [vec![2]].into();
        assert!(order_batch(vec![rec(1, "referral")], &mut barrier, &inflight).is_empty());
        // Once answered, the rest goes.
        let out = order_batch(
            vec![rec(1, "referral"), rec(3, "follow_up")],
            &mut barrier,
            &HashSet::new(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(barrier, None);
    }
}
