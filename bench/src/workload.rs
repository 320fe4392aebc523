//! Synthetic referrals of about 1 KiB of released fields, signed exactly as the node signs
//! them, and fast pre-filling of a stopped node's store through the library.

use std::path::Path;

use anyhow::{anyhow, Result};
use prost::Message;
use rand::RngCore;
use trm_node::identity::NodeKeys;
use trm_node::store::casedata;
use trm_node::store::vault::Vault;
use trm_node::store::{AuditEntry, Op, ReceivedRecord, SentRecord, SentState, Store};
use trm_proto::pb::{self, body::Payload};
use trm_proto::signing::{self, Tag};
use trm_proto::{commit, template};

/// The synthetic ~1 KiB case (it lives in the tests' harness, which sends it too).
pub use trm_tests::case_json;

/// The committed fields of [`case_json`], as the node stores them.
pub fn case_fields(case_ref: &str, to: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let case = template::Template::core()
        .parse_case(&case_json(case_ref, to))
        .map_err(|e| anyhow!("synthetic case refused: {e:?}"))?;
    Ok(case.committed_fields())
}

/// Builds a referral from `from` to `to` as the node does (commitments with decoys, every
/// field released), signed with `keys`. Returns `(message id, Transmission, envelope hash)`.
pub fn referral(
    keys: &NodeKeys,
    from: &str,
    to: &str,
    case_ref: &str,
    fields: &[(String, Vec<u8>)],
    created_ms: i64,
) -> Result<(Vec<u8>, pb::Transmission, [u8; 32])> {
    let mut rng = rand::rngs::OsRng;
    let c = commit::commit(fields, &mut rng)?;
    let mut id = vec![0u8; 16];
    rng.fill_bytes(&mut id);
    let body = pb::Body {
        version: trm_proto::PROTOCOL_VERSION,
        message_id: id.clone(),
        sender: from.into(),
        recipient: to.into(),
        created_ms,
        in_reply_to: vec![],
        case_ref: case_ref.into(),
        payload: Some(Payload::Referral(pb::Referral {
            template_version: template::TEMPLATE_VERSION.into(),
            digests: c.digest_bytes(),
            extensions: vec![],
            urgency: pb::Urgency::Routine as i32,
            response_due_ms: 0,
            phase: pb::Phase::Identification as i32,
            ..Default::default()
        })),
    };
    let body = body.encode_to_vec();
    let signature = signing::sign(&keys.signing, Tag::Envelope, &body).to_vec();
    let hash = signing::envelope_hash(&body, &signature);
    let t = pb::Transmission {
        envelope: Some(pb::Envelope {
            body,
            signature,
            signer: keys.public_key().to_vec(),
        }),
        disclosures: c.disclosures,
    };
    Ok((id, t, hash))
}

/// Released field bytes (paths + values) of one transmission, and its encoded size.
pub fn sizes(t: &pb::Transmission) -> (usize, usize) {
    let fields = t
        .disclosures
        .iter()
        .map(|d| d.path.len() + d.value.len())
        .sum();
    (fields, t.encoded_len())
}

/// Writes `n` signed referrals to `to` into the outbox of the stopped node in `dir`, exactly
/// as `messages::enqueue` would (sent record, outbox entry and audit entry per message), in
/// transactions of `batch` messages. Returns the message ids in outbox order.
pub fn prefill_outbox(
    dir: &Path,
    from: &str,
    to: &str,
    n: usize,
    batch: usize,
) -> Result<Vec<Vec<u8>>> {
    let cfg = trm_node::base::config::NodeConfig::load(dir)?;
    let keys = NodeKeys::load(dir, &cfg)?;
    let store = Store::open(&dir.join(&cfg.paths.store))?;
    let vault = Vault::open(
        store.clone(),
        &dir.join(&cfg.paths.store_key),
        keys.store_key,
    )?;
    let template = template::Template::core();
    let mut ids = Vec::with_capacity(n);
    let mut ops = Vec::with_capacity(batch * 16);
    let mut uses = Vec::with_capacity(batch);
    for i in 0..n {
        let now = trm_node::base::time::now_ms();
        // Every referral is its own case: the lifecycle allows one open referral per case.
        let case_ref = format!("{from}-BENCH-{i:08}");
        let fields = case_fields(&case_ref, to)?;
        let (id, t, hash) = referral(&keys, from, to, &case_ref, &fields, now)?;
        let env = t.envelope.clone().unwrap_or_default();
        let mut ku = vault
            .try_begin()
            .ok_or_else(|| anyhow!("the store key is being rotated"))?;
        let scope = casedata::case_scope(&case_ref);
        let mut seal_as = |part| {
            casedata::seal(
                &vault,
                &mut ku,
                &scope,
                &casedata::sent_record(&id, part),
                &t.disclosures,
                |p| template.category_of(p),
                &mut ops,
            )
        };
        let sealed = seal_as(casedata::SentPart::Released)?;
        let committed = seal_as(casedata::SentPart::Committed)?;
        uses.push(ku);
        ops.push(Op::Enqueue(SentRecord {
            id: id.clone(),
            peer: to.into(),
            case_id: case_ref.clone(),
            kind: "referral".into(),
            envelope: env.encode_to_vec(),
            released: sealed.clone(),
            state: SentState::Pending as u32,
            answer: vec![],
            answered_ms: 0,
            created_ms: now,
            outbox_seq: 0,
            officer: "Benchmark Officer".into(),
            committed,
            erased: vec![],
            earlier_envelope_hashes: vec![],
        }));
        ops.push(Op::Audit(AuditEntry {
            time_ms: now,
            kind: "sent".into(),
            peer: to.into(),
            message_id: id.clone(),
            envelope_hash: hash.to_vec(),
            signature: env.signature,
            signer: env.signer,
            officer: "Benchmark Officer".into(),
            call: "referral".into(),
            target: case_ref,
            result: "enqueued".into(),
            signed_body: env.body,
            ..Default::default()
        }));
        ids.push(id);
        if uses.len() >= batch || i + 1 == n {
            store.commit_blocking(std::mem::take(&mut ops))?;
            uses.clear();
        }
    }
    store.flush()?;
    Ok(ids)
}

/// A store filled by [`fill_received`], still open.
pub struct Filled {
    /// The open store (dropping it closes it without a clean-shutdown record).
    pub store: Store,
    /// The encoded size of the transmission stored `n` times (what arrived on the wire).
    pub encoded: usize,
}

/// Stores `n` received referrals from `from` in the stopped node in `dir`, as the receive
/// path does (received record, "received" and "receipt_sent" audit entries), signed by
/// `from_keys`, in transactions of `batch` messages, and closes the store without a
/// clean-shutdown record (as a crash would). Signing every message would dominate the fill
/// time, so one signed transmission is stored under `n` fresh ids: the stored bytes have the
/// real size and shape, which is what the store's growth depends on.
pub fn prefill_received(
    dir: &Path,
    from: &str,
    from_keys: &NodeKeys,
    n: usize,
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<()> {
    let filled = fill_received(dir, from, from_keys, n, batch, progress)?;
    filled.store.flush()?;
    Ok(())
}

/// [`prefill_received`], handing back the open store and the transmission's encoded size.
pub fn fill_received(
    dir: &Path,
    from: &str,
    from_keys: &NodeKeys,
    n: usize,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Filled> {
    let cfg = trm_node::base::config::NodeConfig::load(dir)?;
    let keys = NodeKeys::load(dir, &cfg)?;
    let store = Store::open(&dir.join(&cfg.paths.store))?;
    let case_ref = format!("{from}-BENCH-0001");
    let fields = case_fields(&case_ref, &cfg.country)?;
    let (_, t, hash) = referral(
        from_keys,
        from,
        &cfg.country,
        &case_ref,
        &fields,
        trm_node::base::time::now_ms(),
    )?;
    let encoded = t.encoded_len();
    let sealed = seal_received(dir, &cfg, &store, keys.store_key, from, &case_ref, &t)?;
    let env = t.envelope.unwrap_or_default();
    let envelope = env.encode_to_vec();
    let receipt = pb::Signed {
        body: vec![0u8; 120],
        signature: vec![0u8; 64],
        signer: keys.public_key().to_vec(),
    };
    let receipt_bytes = receipt.encode_to_vec();
    let mut ops = Vec::with_capacity(batch * 3);
    let mut rng = rand::rngs::OsRng;
    for i in 0..n {
        let mut id = vec![0u8; 16];
        rng.fill_bytes(&mut id);
        let now = trm_node::base::time::now_ms();
        ops.push(Op::Receive(ReceivedRecord {
            id: id.clone(),
            peer: from.into(),
            kind: "referral".into(),
            envelope: envelope.clone(),
            disclosures: sealed.clone(),
            receipt: receipt_bytes.clone(),
            received_ms: now,
            case_ref: case_ref.clone(),
            ..Default::default()
        }));
        // The two entries the receive path writes (`exchange::receive::receive_audits`).
        let entry = |kind: &str, s: &pb::Signed| AuditEntry {
            time_ms: now,
            kind: kind.into(),
            peer: from.into(),
            message_id: id.clone(),
            envelope_hash: hash.to_vec(),
            signature: s.signature.clone(),
            signer: s.signer.clone(),
            call: if kind == "received" {
                "referral".into()
            } else {
                String::new()
            },
            target: if kind == "received" {
                case_ref.clone()
            } else {
                String::new()
            },
            result: "stored".into(),
            signed_body: s.body.clone(),
            ..Default::default()
        };
        let as_signed = pb::Signed {
            body: env.body.clone(),
            signature: env.signature.clone(),
            signer: env.signer.clone(),
        };
        ops.push(Op::Audit(entry("received", &as_signed)));
        ops.push(Op::Audit(entry("receipt_sent", &receipt)));
        if ops.len() >= batch * 3 || i + 1 == n {
            store.commit_blocking(std::mem::take(&mut ops))?;
            progress(i + 1);
        }
    }
    Ok(Filled { store, encoded })
}

/// The received values of `t`, sealed as the receive path seals them (one scope for the
/// fill; the record label is the first message's, so only that one opens: it is fill data).
fn seal_received(
    dir: &Path,
    cfg: &trm_node::base::config::NodeConfig,
    store: &Store,
    store_key: [u8; 32],
    from: &str,
    case_ref: &str,
    t: &pb::Transmission,
) -> Result<Vec<trm_node::store::SealedGroup>> {
    let vault = Vault::open(store.clone(), &dir.join(&cfg.paths.store_key), store_key)?;
    let template = template::Template::core();
    let mut key_ops = Vec::new();
    let mut ku = vault
        .try_begin()
        .ok_or_else(|| anyhow!("the store key is being rotated"))?;
    let sealed = casedata::seal(
        &vault,
        &mut ku,
        &casedata::received_scope(from, case_ref),
        &casedata::received_record(from, b"bench-fill"),
        &t.disclosures,
        |p| template.category_of(p),
        &mut key_ops,
    )?;
    store.commit_blocking(key_ops)?;
    Ok(sealed)
}
