//! Identity cards: a node's public, self-signed description.
//!
//! A card file holds one encoded `Signed` whose body is a `Card`, signed with tag
//! `trm/1 card` by the card's current signing key (`Card.signing_key`, also the last entry of
//! `key_history`). Each key after the first is endorsed by the key before it.

use ed25519_dalek::{SigningKey, VerifyingKey};
use prost::Message;

use crate::pb::{self, Category};
use crate::signing::{self, SignatureError, Tag};

/// Why a card was refused.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Not a `Signed` holding a `Card`.
    #[error("not an identity card: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Unknown card version.
    #[error("unsupported card version {0}")]
    Version(u32),
    /// Country is not two upper-case ASCII letters.
    #[error("invalid country code {0:?}")]
    Country(String),
    /// The signing key is invalid or weak.
    #[error("signing key: {0}")]
    Key(SignatureError),
    /// The card was not signed by its own current key.
    #[error("card is not signed by its own signing key")]
    Signer,
    /// The self-signature does not verify.
    #[error("card self-signature does not verify")]
    Signature,
    /// The key history is empty, does not end with the current key, or an endorsement fails.
    #[error("key history: {0}")]
    History(String),
    /// The card carries no TLS certificate.
    #[error("card carries no TLS certificate")]
    NoCertificate,
    /// Validity interval is empty.
    #[error("card validity is empty")]
    Validity,
    /// A rotation successor changes what only the operator may change.
    #[error("successor card: {0}")]
    Successor(String),
}

/// A card whose self-signature and key history were checked.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCard {
    /// The decoded card.
    pub card: pb::Card,
    /// The card file's exact bytes (an encoded `Signed`).
    pub raw: Vec<u8>,
}

impl VerifiedCard {
    /// Country code.
    pub fn country(&self) -> &str {
        &self.card.country
    }

    /// Current signing key.
    pub fn signing_key(&self) -> VerifyingKey {
        // Checked in `verify_card`.
        signing::parse_public_key(&self.card.signing_key).expect("verified card key")
    }

    /// Fingerprint of the current signing key.
    pub fn signing_fingerprint(&self) -> String {
        signing::fingerprint(&self.card.signing_key)
    }

    /// Fingerprint of the pinned TLS certificate.
    pub fn tls_fingerprint(&self) -> String {
        signing::fingerprint(&self.card.tls_cert_der)
    }

    /// Categories this node accepts.
    pub fn acceptance(&self) -> Vec<Category> {
        self.card
            .acceptance
            .iter()
            .filter_map(|c| Category::try_from(*c).ok())
            .collect()
    }

    /// The key of the history that may have signed at `time_ms`, if `public_key` is one.
    pub fn key_valid_at(&self, public_key: &[u8], time_ms: i64) -> Option<VerifyingKey> {
        key_valid_at(&self.card.key_history, public_key, time_ms)
    }
}

/// Looks `public_key` up in `history` and returns it if it was valid at `time_ms`.
pub fn key_valid_at(
    history: &[pb::KeyRecord],
    public_key: &[u8],
    time_ms: i64,
) -> Option<VerifyingKey> {
    record_valid_at(history, public_key, time_ms)
        .and_then(|k| signing::parse_public_key(&k.public_key).ok())
}

/// The record of `public_key` in `history`, if the key was valid at `time_ms`.
pub fn record_valid_at<'a>(
    history: &'a [pb::KeyRecord],
    public_key: &[u8],
    time_ms: i64,
) -> Option<&'a pb::KeyRecord> {
    history
        .iter()
        .find(|k| k.public_key == public_key)
        .filter(|k| {
            time_ms >= k.valid_from_ms && (k.valid_until_ms == 0 || time_ms < k.valid_until_ms)
        })
}

/// True if `public_key` is in `history` and its validity had not ended at `time_ms` (it may
/// not have begun yet). The receiver checks this at its own clock minus the allowed skew, so a
/// key retired past its overlap is refused whatever time the message claims.
pub fn key_open_at(history: &[pb::KeyRecord], public_key: &[u8], time_ms: i64) -> bool {
    history
        .iter()
        .find(|k| k.public_key == public_key)
        .is_some_and(|k| k.valid_until_ms == 0 || time_ms < k.valid_until_ms)
}

/// Longest overlap a rotation may give the old key: its validity ends at most this long
/// after the announcement (30 days).
pub const MAX_OVERLAP_MS: i64 = 30 * 86_400_000;

/// The bytes the previous key signs (tag `trm/1 key`) to endorse `record`.
pub fn key_endorsement_bytes(record: &pb::KeyRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&record.public_key);
    out.extend_from_slice(&record.valid_from_ms.to_be_bytes());
    out.extend_from_slice(&record.valid_until_ms.to_be_bytes());
    out
}

/// Checks that every key after the first is endorsed by its predecessor.
pub fn verify_key_history(history: &[pb::KeyRecord]) -> Result<(), CardError> {
    if history.is_empty() {
        return Err(CardError::History("empty".into()));
    }
    for (i, rec) in history.iter().enumerate() {
        signing::parse_public_key(&rec.public_key)
            .map_err(|e| CardError::History(format!("key {i}: {e}")))?;
        if i == 0 {
            continue;
        }
        let prev = &history[i - 1];
        if rec.endorser != prev.public_key {
            return Err(CardError::History(format!(
                "key {i} is not endorsed by the key before it"
            )));
        }
        let endorsed = |record: &pb::KeyRecord| {
            signing::verify_with_bytes(
                &prev.public_key,
                Tag::Key,
                &key_endorsement_bytes(record),
                &rec.endorsement,
            )
            .is_ok()
        };
        // A key is endorsed while still open (`valid_until_ms == 0`); closing its validity at
        // the next rotation only shortens it, and is covered by the card's self-signature.
        let open = pb::KeyRecord {
            valid_until_ms: 0,
            ..rec.clone()
        };
        if !(endorsed(rec) || rec.valid_until_ms != 0 && endorsed(&open)) {
            return Err(CardError::History(format!(
                "key {i}: endorsement does not verify"
            )));
        }
    }
    Ok(())
}

/// Checks that `next` may replace the pinned card `pinned` after a key rotation announced at
/// `announced_ms`: same country, the same TLS certificate (a new certificate needs the
/// operator's `peer add --replace`), a validity within the pinned one (a rotation never extends
/// a card), the pinned key history kept as it was (a key's validity may only be closed, not
/// before the announcement and at most [`MAX_OVERLAP_MS`] after it), and exactly one new key,
/// valid from the announcement on, endorsed by the pinned card's current signing key. Both
/// cards must already be verified.
pub fn check_successor(
    pinned: &VerifiedCard,
    next: &VerifiedCard,
    announced_ms: i64,
) -> Result<(), CardError> {
    if next.country() != pinned.country() {
        return Err(CardError::History(
            "the new card is for another country".into(),
        ));
    }
    if next.card.tls_cert_der != pinned.card.tls_cert_der {
        return Err(CardError::Successor(
            "the new card carries another TLS certificate; only the operator can pin it (peer add --replace)".into(),
        ));
    }
    if next.card.valid_from_ms < pinned.card.valid_from_ms
        || next.card.valid_until_ms > pinned.card.valid_until_ms
    {
        return Err(CardError::Successor(
            "the new card extends the pinned card's validity".into(),
        ));
    }
    let old = &pinned.card.key_history;
    let new = &next.card.key_history;
    if new.len() != old.len() + 1 {
        return Err(CardError::History(format!(
            "the new card must add exactly one key to the {} pinned ones, it has {}",
            old.len(),
            new.len()
        )));
    }
    for (i, (a, b)) in old.iter().zip(new).enumerate() {
        let closed_later = a.valid_until_ms == 0
            && b.valid_until_ms >= announced_ms
            && b.valid_until_ms <= announced_ms.saturating_add(MAX_OVERLAP_MS);
        if a.public_key != b.public_key
            || a.valid_from_ms != b.valid_from_ms
            || a.endorsement != b.endorsement
            || a.endorser != b.endorser
            || (a.valid_until_ms != b.valid_until_ms && !closed_later)
        {
            return Err(CardError::History(format!(
                "key {i} of the pinned history was changed"
            )));
        }
    }
    let Some(added) = new.last() else {
        return Err(CardError::History("empty".into()));
    };
    if added.endorser != pinned.card.signing_key {
        return Err(CardError::History(
            "the new key is not endorsed by the pinned current key".into(),
        ));
    }
    if added.valid_from_ms < announced_ms {
        return Err(CardError::Successor(
            "the new key is valid from before its announcement".into(),
        ));
    }
    // The key it replaces must be closed by this rotation (bounded overlap) if it was open.
    if let (Some(a), Some(b)) = (
        old.last(),
        old.len().checked_sub(1).and_then(|i| new.get(i)),
    ) {
        if a.valid_until_ms == 0 && b.valid_until_ms == 0 {
            return Err(CardError::Successor(
                "the replaced key is left open: its overlap must end".into(),
            ));
        }
    }
    Ok(())
}

/// Verifies a card file's bytes: decoding, self-signature, key history and basic fields.
pub fn verify_card(raw: &[u8]) -> Result<VerifiedCard, CardError> {
    let signed = pb::Signed::decode(raw)?;
    let card = pb::Card::decode(signed.body.as_slice())?;
    if card.version != 1 {
        return Err(CardError::Version(card.version));
    }
    if !valid_country(&card.country) {
        return Err(CardError::Country(card.country));
    }
    let key = signing::parse_public_key(&card.signing_key).map_err(CardError::Key)?;
    if signed.signer != card.signing_key {
        return Err(CardError::Signer);
    }
    signing::verify(&key, Tag::Card, &signed.body, &signed.signature)
        .map_err(|_| CardError::Signature)?;
    verify_key_history(&card.key_history)?;
    if card.key_history.last().map(|k| &k.public_key) != Some(&card.signing_key) {
        return Err(CardError::History(
            "does not end with the current signing key".into(),
        ));
    }
    if card.tls_cert_der.is_empty() {
        return Err(CardError::NoCertificate);
    }
    if card.valid_until_ms <= card.valid_from_ms {
        return Err(CardError::Validity);
    }
    Ok(VerifiedCard {
        card,
        raw: raw.to_vec(),
    })
}

/// Signs `card` with `key` (which must be `card.signing_key`) and returns the card file bytes.
pub fn sign_card(card: &pb::Card, key: &SigningKey) -> Vec<u8> {
    let body = card.encode_to_vec();
    let signature = signing::sign(key, Tag::Card, &body);
    pb::Signed {
        body,
        signature: signature.to_vec(),
        signer: key.verifying_key().to_bytes().to_vec(),
    }
    .encode_to_vec()
}

/// True for two upper-case ASCII letters (ISO 3166-1 alpha-2 shape).
pub fn valid_country(cc: &str) -> bool {
    cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn card_for(key: &SigningKey) -> pb::Card {
        let pk = key.verifying_key().to_bytes().to_vec();
        pb::Card {
            version: 1,
            country: "AL".into(),
            name: "Tirana NRU".into(),
            addresses: vec!["127.0.0.1:4433".into()],
            tls_cert_der: vec![1, 2, 3],
            signing_key: pk.clone(),
            acceptance: vec![Category::Reference as i32],
            valid_from_ms: 0,
            valid_until_ms: 10,
            key_history: vec![pb::KeyRecord {
                public_key: pk,
                valid_from_ms: 0,
                valid_until_ms: 0,
                endorsement: vec![],
                endorser: vec![],
            }],
            issued_ms: 0,
        }
    }

    #[test]
    fn signed_card_verifies_and_any_flip_fails() {
        let k = SigningKey::generate(&mut OsRng);
        let raw = sign_card(&card_for(&k), &k);
        let v = verify_card(&raw).expect("verifies");
        assert_eq!(v.country(), "AL");
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            assert!(verify_card(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn card_signed_by_other_key_fails() {
        let k = SigningKey::generate(&mut OsRng);
        let other = SigningKey::generate(&mut OsRng);
        let raw = sign_card(&card_for(&k), &other);
        assert!(matches!(verify_card(&raw), Err(CardError::Signer)));
    }

    #[test]
    fn rotated_history_needs_endorsement() {
        let k1 = SigningKey::generate(&mut OsRng);
        let k2 = SigningKey::generate(&mut OsRng);
        let mut card = card_for(&k2);
        let mut rec2 = pb::KeyRecord {
            public_key: k2.verifying_key().to_bytes().to_vec(),
            valid_from_ms: 5,
            valid_until_ms: 0,
            endorsement: vec![],
            endorser: k1.verifying_key().to_bytes().to_vec(),
        };
        rec2.endorsement = signing::sign(&k1, Tag::Key, &key_endorsement_bytes(&rec2)).to_vec();
        let rec1 = pb::KeyRecord {
            public_key: k1.verifying_key().to_bytes().to_vec(),
            valid_from_ms: 0,
            valid_until_ms: 8,
            ..Default::default()
        };
        card.key_history = vec![rec1, rec2.clone()];
        let v = verify_card(&sign_card(&card, &k2)).expect("endorsed history verifies");
        assert!(v.key_valid_at(&k1.verifying_key().to_bytes(), 7).is_some());
        assert!(v.key_valid_at(&k1.verifying_key().to_bytes(), 8).is_none());

        // An endorsement by a key that is not the previous one fails.
        let k3 = SigningKey::generate(&mut OsRng);
        rec2.endorsement = signing::sign(&k3, Tag::Key, &key_endorsement_bytes(&rec2)).to_vec();
        card.key_history[1] = rec2;
        assert!(matches!(
            verify_card(&sign_card(&card, &k2)),
            Err(CardError::History(_))
        ));
    }

    fn endorse(prev: &SigningKey, next: &SigningKey, from: i64) -> pb::KeyRecord {
        let mut rec = pb::KeyRecord {
            public_key: next.verifying_key().to_bytes().to_vec(),
            valid_from_ms: from,
            valid_until_ms: 0,
            endorsement: vec![],
            endorser: prev.verifying_key().to_bytes().to_vec(),
        };
        rec.endorsement = signing::sign(prev, Tag::Key, &key_endorsement_bytes(&rec)).to_vec();
        rec
    }

    #[test]
    fn closing_an_endorsed_key_keeps_the_chain_and_successors_are_checked() {
        let (k1, k2, k3) = (
            SigningKey::generate(&mut OsRng),
            SigningKey::generate(&mut OsRng),
            SigningKey::generate(&mut OsRng),
        );
        let mut card = card_for(&k2);
        let mut first = card_for(&k1).key_history[0].clone();
        first.valid_until_ms = 9;
        card.key_history = vec![first, endorse(&k1, &k2, 5)];
        let pinned = verify_card(&sign_card(&card, &k2)).expect("two keys");

        // Rotation to k3 closes k2 (endorsed while open) at 20.
        let mut next = card_for(&k3);
        let mut hist = card.key_history.clone();
        hist[1].valid_until_ms = 20;
        hist.push(endorse(&k2, &k3, 12));
        next.key_history = hist.clone();
        let next_v = verify_card(&sign_card(&next, &k3)).expect("closed key still endorsed");
        assert!(check_successor(&pinned, &next_v, 12).is_ok());
        // Closed before the announcement: refused.
        assert!(check_successor(&pinned, &next_v, 21).is_err());
        // A key endorsed by a key that is not the current one: refused.
        let mut bad = hist.clone();
        bad[2] = endorse(&k1, &k3, 12);
        next.key_history = bad;
        assert!(verify_card(&sign_card(&next, &k3)).is_err());
        // Changing an earlier key's start is refused.
        let mut moved = hist.clone();
        moved[0].valid_from_ms = 1;
        next.key_history = moved;
        let moved_v = verify_card(&sign_card(&next, &k3)).expect("k1 has no endorsement");
        assert!(check_successor(&pinned, &moved_v, 12).is_err());
        // Not adding a key is refused.
        assert!(check_successor(&pinned, &pinned, 12).is_err());
    }
}
