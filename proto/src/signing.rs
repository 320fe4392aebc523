//! Signing rules: Ed25519 over a domain-separation tag followed by the exact body bytes.
//!
//! The bytes signed are `tag || body`, where `tag` is one of the ASCII strings of [`Tag`]
//! followed by one zero byte, and `body` is exactly the bytes carried in the container. A
//! verifier never re-encodes anything, so an auditor holding the body bytes and the public key
//! can check a signature with any Ed25519 tool (see docs/PROTOCOL.md).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// What a signature is about. A body signed under one tag never verifies under another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A message `Body` in an `Envelope`.
    Envelope,
    /// A `Receipt`.
    Receipt,
    /// A `Rejection`.
    Rejection,
    /// An identity `Card`.
    Card,
    /// An audit log `Checkpoint`.
    Checkpoint,
    /// A contact `Directory`.
    Directory,
    /// A `KeyRecord` endorsement by the previous key.
    Key,
}

impl Tag {
    /// The tag bytes, including the terminating zero byte.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Tag::Envelope => b"trm/1 envelope\0",
            Tag::Receipt => b"trm/1 receipt\0",
            Tag::Rejection => b"trm/1 rejection\0",
            Tag::Card => b"trm/1 card\0",
            Tag::Checkpoint => b"trm/1 checkpoint\0",
            Tag::Directory => b"trm/1 directory\0",
            Tag::Key => b"trm/1 key\0",
        }
    }

    /// Every tag, for tests and documentation.
    pub const ALL: [Tag; 7] = [
        Tag::Envelope,
        Tag::Receipt,
        Tag::Rejection,
        Tag::Card,
        Tag::Checkpoint,
        Tag::Directory,
        Tag::Key,
    ];
}

/// Why a signature or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature is not 64 bytes.
    #[error("signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    /// The public key is not 32 bytes.
    #[error("public key must be 32 bytes, got {0}")]
    KeyLength(usize),
    /// The public key is not a valid point, or is of small order (weak).
    #[error("public key is invalid or weak")]
    WeakKey,
    /// `verify_strict` refused the signature.
    #[error("signature does not verify")]
    Invalid,
}

/// The exact bytes that are signed: `tag || body`.
pub fn signing_bytes(tag: Tag, body: &[u8]) -> Vec<u8> {
    let t = tag.bytes();
    let mut out = Vec::with_capacity(t.len() + body.len());
    out.extend_from_slice(t);
    out.extend_from_slice(body);
    out
}

/// Signs `body` under `tag`.
pub fn sign(key: &SigningKey, tag: Tag, body: &[u8]) -> [u8; 64] {
    key.sign(&signing_bytes(tag, body)).to_bytes()
}

/// Parses a 32-byte Ed25519 public key, refusing invalid and small-order (weak) keys.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, SignatureError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SignatureError::KeyLength(bytes.len()))?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| SignatureError::WeakKey)?;
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    Ok(key)
}

/// Verifies `signature` over `tag || body` with `verify_strict`.
pub fn verify(
    key: &VerifyingKey,
    tag: Tag,
    body: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    let sig: [u8; 64] = signature
        .try_into()
        .map_err(|_| SignatureError::SignatureLength(signature.len()))?;
    key.verify_strict(&signing_bytes(tag, body), &Signature::from_bytes(&sig))
        .map_err(|_| SignatureError::Invalid)
}

/// Parses `public_key` and verifies; see [`verify`].
pub fn verify_with_bytes(
    public_key: &[u8],
    tag: Tag,
    body: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    verify(&parse_public_key(public_key)?, tag, body, signature)
}

/// Signatures a node has already verified, so that it does not verify the same signed bytes
/// twice: a receipt is checked on arrival and again, as the audit entry it becomes, before it
/// is logged; a peer's checkpoint arrives with many receipts in a row. Implemented by the node
/// (bounded, in memory); the offline verifier keeps none and checks every signature.
///
/// Only signatures that verified are remembered, under [`memo_key`]: a hash of the key, the
/// signature, the tag and the body, so a hit means that exactly these bytes verified under
/// exactly this key before, and `verify_strict` would say so again (it is deterministic).
pub trait VerifyMemo: Sync {
    /// Whether a signature with this [`memo_key`] verified before.
    fn verified_before(&self, key: &[u8; 32]) -> bool;
    /// Remembers that the signature with this [`memo_key`] verified.
    fn remember(&self, key: [u8; 32]);
}

/// The memo's key of a signature: `SHA-256("trm/1 verified\0" || public key || signature ||
/// tag || body)`. The public key and signature are of fixed length and `tag || body` are the
/// exact bytes signed, so two different checks never share a key.
pub fn memo_key(key: &VerifyingKey, tag: Tag, body: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"trm/1 verified\0");
    h.update(key.as_bytes());
    h.update((signature.len() as u32).to_be_bytes());
    h.update(signature);
    h.update(tag.bytes());
    h.update(body);
    h.finalize().into()
}

/// [`verify`], skipped when `memo` remembers these exact bytes verifying under this key;
/// a signature that verifies is remembered.
pub fn verify_remembered(
    memo: &dyn VerifyMemo,
    key: &VerifyingKey,
    tag: Tag,
    body: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let k = memo_key(key, tag, body, signature);
    if memo.verified_before(&k) && !key.is_weak() {
        return Ok(());
    }
    verify(key, tag, body, signature)?;
    memo.remember(k);
    Ok(())
}

/// The envelope hash named in receipts and the audit log: `SHA-256(body || signature)`.
pub fn envelope_hash(body: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(body);
    h.update(signature);
    h.finalize().into()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A human-checkable fingerprint: lowercase hex SHA-256 of the bytes (public key or
/// certificate DER), in groups of four for reading aloud over the phone.
pub fn fingerprint(bytes: &[u8]) -> String {
    let hexed = hex::encode(sha256(bytes));
    hexed
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn key() -> SigningKey {
        SigningKey::generate(&mut OsRng)
    }

    #[test]
    fn sign_then_verify() {
        let k = key();
        let body = b"a body".to_vec();
        let sig = sign(&k, Tag::Envelope, &body);
        assert_eq!(
            verify(&k.verifying_key(), Tag::Envelope, &body, &sig),
            Ok(())
        );
    }

    #[test]
    fn every_flipped_bit_of_body_or_signature_fails() {
        let k = key();
        let vk = k.verifying_key();
        let body: Vec<u8> = (0u8..40).collect();
        let sig = sign(&k, Tag::Envelope, &body);
        for i in 0..body.len() * 8 {
            let mut b = body.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                verify(&vk, Tag::Envelope, &b, &sig),
                Err(SignatureError::Invalid),
                "body bit {i}"
            );
        }
        for i in 0..sig.len() * 8 {
            let mut s = sig;
            s[i / 8] ^= 1 << (i % 8);
            assert!(
                verify(&vk, Tag::Envelope, &body, &s).is_err(),
                "sig bit {i}"
            );
        }
    }

    #[test]
    fn another_key_fails() {
        let body = b"body";
        let sig = sign(&key(), Tag::Envelope, body);
        assert_eq!(
            verify(&key().verifying_key(), Tag::Envelope, body, &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn tags_do_not_cross() {
        let k = key();
        let body = b"same bytes";
        for a in Tag::ALL {
            let sig = sign(&k, a, body);
            for b in Tag::ALL {
                let r = verify(&k.verifying_key(), b, body, &sig);
                assert_eq!(r.is_ok(), a == b, "{a:?} under {b:?}");
            }
        }
    }

    #[test]
    fn truncated_signature_and_weak_key_are_refused() {
        let k = key();
        let sig = sign(&k, Tag::Card, b"x");
        assert_eq!(
            verify(&k.verifying_key(), Tag::Card, b"x", &sig[..63]),
            Err(SignatureError::SignatureLength(63))
        );
        // The identity point (small order) is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(parse_public_key(&identity), Err(SignatureError::WeakKey));
        assert_eq!(
            parse_public_key(&[0u8; 31]),
            Err(SignatureError::KeyLength(31))
        );
    }

    #[test]
    fn signing_bytes_are_tag_then_body() {
        assert_eq!(
            signing_bytes(Tag::Receipt, b"ab"),
            b"trm/1 receipt\0ab".to_vec()
        );
    }

    #[derive(Default)]
    struct Memo(std::sync::Mutex<std::collections::HashSet<[u8; 32]>>);

    impl VerifyMemo for Memo {
        fn verified_before(&self, key: &[u8; 32]) -> bool {
            self.0.lock().unwrap().contains(key)
        }
        fn remember(&self, key: [u8; 32]) {
            self.0.lock().unwrap().insert(key);
        }
    }

    #[test]
    fn the_memo_remembers_only_what_verified_and_only_those_exact_bytes() {
        let (k, other) = (key(), key());
        let vk = k.verifying_key();
        let body = b"a receipt".to_vec();
        let sig = sign(&k, Tag::Receipt, &body);
        let memo = Memo::default();
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(verify_remembered(&memo, &vk, Tag::Receipt, &body, &bad).is_err());
        assert!(
            memo.0.lock().unwrap().is_empty(),
            "a failure is not remembered"
        );
        assert_eq!(
            verify_remembered(&memo, &vk, Tag::Receipt, &body, &sig),
            Ok(())
        );
        assert_eq!(memo.0.lock().unwrap().len(), 1);
        // A hit: the same bytes again.
        assert_eq!(
            verify_remembered(&memo, &vk, Tag::Receipt, &body, &sig),
            Ok(())
        );
        // Anything else is not a hit and fails as without the memo.
        let altered = b"a receipT".to_vec();
        let refusals = [
            verify_remembered(&memo, &vk, Tag::Receipt, &altered, &sig),
            verify_remembered(&memo, &vk, Tag::Rejection, &body, &sig),
            verify_remembered(&memo, &other.verifying_key(), Tag::Receipt, &body, &sig),
            verify_remembered(&memo, &vk, Tag::Receipt, &body, &bad),
        ];
        for r in refusals {
            assert_eq!(r, Err(SignatureError::Invalid));
        }
        assert_eq!(memo.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn memo_keys_differ_for_every_input() {
        let (k, other) = (key(), key());
        let sig = sign(&k, Tag::Receipt, b"x");
        let base = memo_key(&k.verifying_key(), Tag::Receipt, b"x", &sig);
        assert_ne!(
            base,
            memo_key(&other.verifying_key(), Tag::Receipt, b"x", &sig)
        );
        assert_ne!(
            base,
            memo_key(&k.verifying_key(), Tag::Rejection, b"x", &sig)
        );
        assert_ne!(base, memo_key(&k.verifying_key(), Tag::Receipt, b"y", &sig));
        assert_ne!(
            base,
            memo_key(&k.verifying_key(), Tag::Receipt, b"x", &sig[..63])
        );
    }
}
