//! Received messages as stored (schema 2): one [`ReceivedRecord`] per arrival, keyed by its
//! arrival sequence, whose envelope and receipt are stored once, in the audit log.
//!
//! The receive path appends, in the same job as the record, a `received` audit entry that
//! holds the envelope's signed body, signature and signer, and a `receipt_sent` entry that
//! holds the receipt's. When the encoded envelope (or receipt) rebuilt from that entry is
//! byte for byte the record's, the record leaves it out and refers to the entry by its log
//! index instead ([`Refs`], fields 11 and 12 appended to the record's encoding, which
//! `ReceivedRecord` ignores). Reads rebuild it from the entry, so every reader sees the
//! bytes as received; the audit entries and their verification are unchanged. Audit entries
//! are never rewritten (the Merkle nodes and signed checkpoints protect them), so a
//! reference stays valid; a record whose bytes do not match keeps them inline.

use prost::Message;
use trm_proto::audit::AuditKind;
use trm_proto::pb;

use super::{AuditEntry, Op, ReceivedRecord};

/// Where the envelope and the receipt left out of a stored record are: audit log indexes.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Refs {
    /// The `received` entry holding the envelope.
    #[prost(uint64, optional, tag = "11")]
    pub envelope_at: Option<u64>,
    /// The `receipt_sent` entry holding the receipt.
    #[prost(uint64, optional, tag = "12")]
    pub receipt_at: Option<u64>,
}

/// The encoded `Envelope` an audit entry holds.
fn envelope_of(e: &AuditEntry) -> Vec<u8> {
    pb::Envelope {
        body: e.signed_body.clone(),
        signature: e.signature.clone(),
        signer: e.signer.clone(),
    }
    .encode_to_vec()
}

/// The encoded `Signed` (receipt) an audit entry holds.
fn signed_of(e: &AuditEntry) -> Vec<u8> {
    pb::Signed {
        body: e.signed_body.clone(),
        signature: e.signature.clone(),
        signer: e.signer.clone(),
    }
    .encode_to_vec()
}

/// Whether entry `e` (of `kind`) holds `bytes` of `rec`, byte for byte.
fn holds(e: &AuditEntry, rec: &ReceivedRecord, kind: AuditKind, bytes: &[u8]) -> bool {
    let rebuilt = match kind {
        AuditKind::Received => envelope_of(e),
        _ => signed_of(e),
    };
    !bytes.is_empty()
        && e.kind == kind.as_str()
        && e.peer == rec.peer
        && e.message_id == rec.id
        && rebuilt == bytes
}

/// The references for `rec` to the audit entries among `rest` (the ops of its job after
/// it; the first `Audit` among them gets index `next_audit`).
pub(super) fn refs_in(rec: &ReceivedRecord, rest: &[Op], next_audit: u64) -> Refs {
    let mut refs = Refs::default();
    let audits = rest.iter().filter_map(|op| match op {
        Op::Audit(e) => Some(e),
        _ => None,
    });
    for (k, e) in audits.enumerate() {
        let at = next_audit + k as u64;
        if refs.envelope_at.is_none() && holds(e, rec, AuditKind::Received, &rec.envelope) {
            refs.envelope_at = Some(at);
        } else if refs.receipt_at.is_none() && holds(e, rec, AuditKind::ReceiptSent, &rec.receipt) {
            refs.receipt_at = Some(at);
        }
    }
    refs
}

impl Refs {
    /// The references that still hold `rec`'s envelope and receipt (`audit` reads an entry).
    pub(super) fn still_valid(
        self,
        rec: &ReceivedRecord,
        audit: impl Fn(u64) -> Option<Vec<u8>>,
    ) -> Refs {
        let check = |at: Option<u64>, kind: AuditKind, bytes: &[u8]| {
            at.filter(|i| {
                audit(*i)
                    .and_then(|v| AuditEntry::decode(v.as_slice()).ok())
                    .is_some_and(|e| holds(&e, rec, kind, bytes))
            })
        };
        Refs {
            envelope_at: check(self.envelope_at, AuditKind::Received, &rec.envelope),
            receipt_at: check(self.receipt_at, AuditKind::ReceiptSent, &rec.receipt),
        }
    }
}

/// The stored value of `rec`: its encoding without what `refs` points at, then `refs`.
pub(super) fn store(rec: &ReceivedRecord, refs: &Refs) -> Vec<u8> {
    let inline = |at: Option<u64>, bytes: &Vec<u8>| match at {
        Some(_) => Vec::new(),
        None => bytes.clone(),
    };
    let bare = ReceivedRecord {
        id: rec.id.clone(),
        peer: rec.peer.clone(),
        kind: rec.kind.clone(),
        envelope: inline(refs.envelope_at, &rec.envelope),
        disclosures: rec.disclosures.clone(),
        erased: rec.erased.clone(),
        receipt: inline(refs.receipt_at, &rec.receipt),
        received_ms: rec.received_ms,
        case_ref: rec.case_ref.clone(),
    };
    let mut v = bare.encode_to_vec();
    refs.encode(&mut v).unwrap_or_default();
    v
}

/// The record stored as `v`, its envelope and receipt read back from the audit entries it
/// refers to (`audit` reads an entry). `Err`: what does not decode or is missing.
pub(super) fn load<B: AsRef<[u8]>>(
    v: &[u8],
    audit: impl Fn(u64) -> Option<B>,
) -> Result<ReceivedRecord, String> {
    let mut rec =
        ReceivedRecord::decode(v).map_err(|e| format!("received record does not decode ({e})"))?;
    let refs = Refs::decode(v).map_err(|e| format!("received record does not decode ({e})"))?;
    let entry = |i: u64| {
        audit(i)
            .and_then(|b| AuditEntry::decode(b.as_ref()).ok())
            .ok_or_else(|| {
                format!("audit entry {i}, which holds a received message's bytes, is missing")
            })
    };
    if let Some(i) = refs.envelope_at {
        rec.envelope = envelope_of(&entry(i)?);
    }
    if let Some(i) = refs.receipt_at {
        rec.receipt = signed_of(&entry(i)?);
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> (ReceivedRecord, [Op; 2]) {
        let env = pb::Envelope {
            body: vec![1; 300],
            signature: vec![2; 64],
            signer: vec![3; 32],
        };
        let receipt = pb::Signed {
            body: vec![4; 100],
            signature: vec![5; 64],
            signer: vec![6; 32],
        };
        let r = ReceivedRecord {
            id: vec![7; 16],
            peer: "IT".into(),
            kind: "referral".into(),
            envelope: env.encode_to_vec(),
            receipt: receipt.encode_to_vec(),
            received_ms: 9,
            case_ref: "IT-1".into(),
            ..Default::default()
        };
        let entry = |kind: AuditKind, body: &[u8], sig: &[u8], signer: &[u8]| {
            Op::Audit(AuditEntry {
                kind: kind.as_str().into(),
                peer: "IT".into(),
                message_id: vec![7; 16],
                signed_body: body.to_vec(),
                signature: sig.to_vec(),
                signer: signer.to_vec(),
                ..Default::default()
            })
        };
        let ops = [
            entry(AuditKind::Received, &env.body, &env.signature, &env.signer),
            entry(
                AuditKind::ReceiptSent,
                &receipt.body,
                &receipt.signature,
                &receipt.signer,
            ),
        ];
        (r, ops)
    }

    fn entries(ops: &[Op]) -> Vec<Vec<u8>> {
        ops.iter()
            .filter_map(|op| match op {
                Op::Audit(e) => Some(e.encode_to_vec()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_envelope_and_receipt_are_stored_once_and_read_back_byte_for_byte() {
        let (r, ops) = rec();
        let refs = refs_in(&r, &ops, 40);
        assert_eq!((refs.envelope_at, refs.receipt_at), (Some(40), Some(41)));
        let v = store(&r, &refs);
        assert!(
            v.len() + 300 < r.encoded_len(),
            "stored without its envelope"
        );
        let log = entries(&ops);
        let back = load(&v, |i| log.get((i - 40) as usize).cloned()).unwrap();
        assert_eq!(back, r);
        assert!(
            load(&v, |_| None::<Vec<u8>>).is_err(),
            "a missing entry is an error"
        );
    }

    #[test]
    fn bytes_that_do_not_match_an_entry_stay_inline() {
        let (mut r, mut ops) = rec();
        r.envelope.push(0); // not the canonical encoding the entry rebuilds
        if let Op::Audit(e) = &mut ops[1] {
            e.message_id = vec![8; 16]; // another message's receipt
        }
        let refs = refs_in(&r, &ops, 0);
        assert_eq!(refs, Refs::default());
        let v = store(&r, &refs);
        assert_eq!(load(&v, |_| None::<Vec<u8>>).unwrap(), r);
        // A record replaced later keeps only the references that still hold its bytes.
        let (r, ops) = rec();
        let log = entries(&ops);
        let refs = Refs {
            envelope_at: Some(1),
            receipt_at: Some(1),
        }
        .still_valid(&r, |i| log.get(i as usize).cloned());
        assert_eq!((refs.envelope_at, refs.receipt_at), (None, Some(1)));
    }
}
