//! Test support for issue 10's pins, key freshness and officers (tests/tests/trust_pins.rs):
//! identity cards built from chosen certificates and keys, rotation successors, key
//! announcements, and a signature that only lax Ed25519 verification accepts.

use ed25519_dalek::SigningKey;
use prost::Message;
use sha2::Digest;
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

/// One signing key of a card's history with its validity (`until` 0 = open).
pub struct KeySpec<'a> {
    pub key: &'a SigningKey,
    pub from: i64,
    pub until: i64,
}

/// What a crafted card says.
pub struct CardSpec<'a> {
    pub country: &'a str,
    pub tls_cert_der: &'a [u8],
    pub from: i64,
    pub until: i64,
    /// Oldest first; the last key signs the card. Each key after the first is endorsed by the
    /// one before it (while open, as `trm-node key rotate` does).
    pub keys: Vec<KeySpec<'a>>,
}

/// The key records of `keys`, each endorsed by the one before.
pub fn history(keys: &[KeySpec<'_>]) -> Vec<pb::KeyRecord> {
    let mut out: Vec<pb::KeyRecord> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let mut r = pb::KeyRecord {
            public_key: k.key.verifying_key().to_bytes().to_vec(),
            valid_from_ms: k.from,
            valid_until_ms: 0,
            endorsement: vec![],
            endorser: vec![],
        };
        if i > 0 {
            let prev = keys[i - 1].key;
            r.endorser = prev.verifying_key().to_bytes().to_vec();
            r.endorsement =
                signing::sign(prev, Tag::Key, &trm_proto::card::key_endorsement_bytes(&r)).to_vec();
        }
        r.valid_until_ms = k.until;
        out.push(r);
    }
    out
}

/// The signed card file of `spec`.
pub fn card(spec: &CardSpec<'_>) -> Vec<u8> {
    let current = spec.keys.last().expect("at least one key").key;
    let c = pb::Card {
        version: 1,
        country: spec.country.into(),
        name: format!("{} made-up unit", spec.country),
        addresses: vec!["127.0.0.1:9".into()],
        tls_cert_der: spec.tls_cert_der.to_vec(),
        signing_key: current.verifying_key().to_bytes().to_vec(),
        acceptance: trm_proto::template::ALL_CATEGORIES
            .iter()
            .map(|c| *c as i32)
            .collect(),
        valid_from_ms: spec.from,
        valid_until_ms: spec.until,
        key_history: history(&spec.keys),
        issued_ms: spec.from,
    };
    trm_proto::card::sign_card(&c, current)
}

/// A `KeyAnnouncement` of `next_card` from `from` to `to`, made at `created_ms` and signed by
/// `signer` (the sender's pinned current key, for a genuine one).
pub fn announcement(
    signer: &SigningKey,
    from: &str,
    to: &str,
    next_card: &[u8],
    created_ms: i64,
) -> pb::Envelope {
    let next = pb::Card::decode(
        pb::Signed::decode(next_card)
            .expect("card is a Signed")
            .body
            .as_slice(),
    )
    .expect("card body");
    let body = pb::Body {
        version: 1,
        message_id: rand::random::<[u8; 16]>().to_vec(),
        sender: from.into(),
        recipient: to.into(),
        created_ms,
        in_reply_to: vec![],
        case_ref: String::new(),
        payload: Some(pb::body::Payload::KeyAnnouncement(pb::KeyAnnouncement {
            key: next.key_history.last().cloned(),
            card: next_card.to_vec(),
        })),
    };
    crate::raw::envelope(signer, &body)
}

/// A signature by `key` over `tag || body` whose R is the identity point (small order):
/// `S = H(R || A || M) · a`, so `[S]B = R + [H]A` holds and lax (cofactorless) verification
/// accepts it, while `verify_strict` refuses it for its small-order R.
pub fn small_order_r_signature(key: &SigningKey, tag: Tag, body: &[u8]) -> [u8; 64] {
    use curve25519_dalek::scalar::Scalar;
    let mut r = [0u8; 32];
    r[0] = 1; // the identity point (0, 1)
    let a = key.verifying_key().to_bytes();
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(a);
    h.update(signing::signing_bytes(tag, body));
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = k * key.to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// The raw card `node` has pinned for `cc`, if any.
pub fn pinned_card(node: &crate::TestNode, cc: &str) -> Option<Vec<u8>> {
    node.ctx().peers.get(cc).map(|p| p.card.raw)
}

/// The officer name of the certificate `cert_der` in `node`'s pin set, if pinned now.
pub fn pinned_for(node: &crate::TestNode, cert_der: &[u8]) -> Option<String> {
    node.ctx().peers.pins().lookup(cert_der).map(|p| p.who)
}

pub use crate::bins::Ran;

/// Runs `trm-admin ARGS` (no TRM_CRED inherited), killed after 30 s.
pub fn trm_admin(args: &[&str]) -> Ran {
    crate::bins::run("trm-admin", args)
}
