//! Selective-disclosure field commitments, in the style of SD-JWT (RFC 9901).
//!
//! Every field of a case is committed by a salted digest in the signed body
//! (`Referral.digests`, `FollowUp.digests`); only the fields the sender chooses to release
//! travel beside the signed body as [`FieldDisclosure`]s `{path, salt, value}`. A receiver
//! recomputes the digest of each disclosure and accepts it only if the digest is in the
//! signed list.
//!
//! # The digest, byte by byte
//!
//! ```text
//! digest = SHA-256( "trm/1 field" || 0x00          (12 bytes: ASCII tag, one zero byte)
//!                 || u8(len(salt))   || salt         (16..=255 bytes)
//!                 || u16be(len(path)) || path         (UTF-8, here ASCII, 1..=128 bytes)
//!                 || u32be(len(value)) || value )     (0..=65536 bytes, opaque)
//! ```
//!
//! * `salt`: at least [`MIN_SALT_LEN`] (16) random bytes, at most [`MAX_SALT_LEN`] (255);
//!   [`commit`] draws exactly [`SALT_LEN`] (16) fresh bytes per field.
//! * `path`: `"section.field"` or `"ext.<namespace>.<name>"`, made of ASCII lowercase
//!   letters, digits, `_` and `.`, 1..=[`MAX_PATH_LEN`] bytes, no empty segment (see
//!   [`is_valid_path`]).
//! * `value`: the canonical JSON text of the field's value. This module treats it as opaque
//!   bytes (the caller canonicalises), capped at [`MAX_VALUE_LEN`] (64 KiB).
//!
//! # The signed list
//!
//! The published list holds the real digests plus random 32-byte decoys, so that its length
//! ([`padded_count`]) does not reveal how many fields a case has, and it is **sorted strictly
//! ascending**, so that its order reveals nothing about which field is which and is fixed by
//! construction: [`verify_disclosures`] refuses a list that is not strictly ascending.
//!
//! Errors of this module name the offending path (or an index into the digest list), never a
//! value or a salt, so they can be logged and returned in a `Rejection.detail`.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha256};

use crate::pb::FieldDisclosure;

/// Length of a field digest (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// A field digest, as signed in `Referral.digests` and `FollowUp.digests`.
pub type Digest = [u8; DIGEST_LEN];

/// Domain-separation prefix of a field digest: `"trm/1 field"` followed by one zero byte.
pub const FIELD_TAG: &[u8] = b"trm/1 field\0";

/// Shortest salt a verifier accepts.
pub const MIN_SALT_LEN: usize = 16;

/// Longest salt a verifier accepts (its length is encoded in one byte).
pub const MAX_SALT_LEN: usize = 255;

/// Length of the salts [`commit`] and [`commit_field`] draw.
pub const SALT_LEN: usize = 16;

/// Longest accepted field path, in bytes.
pub const MAX_PATH_LEN: usize = 128;

/// Largest accepted field value (canonical JSON text), in bytes: 64 KiB.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Fewest decoy digests [`padded_count`] adds.
pub const MIN_DECOYS: usize = 8;

/// The published digest count is a multiple of this.
pub const PAD_BLOCK: usize = 64;

/// Most fields one [`commit`] call accepts (a referral template has far fewer; the cap keeps
/// the signed list well inside a frame).
pub const MAX_FIELDS: usize = 4096;

/// Why a disclosure, or the signed digest list it is checked against, was refused.
///
/// Every variant names a path or a list index, never a value or a salt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    /// Entry `index` of the signed digest list is not [`DIGEST_LEN`] bytes long.
    #[error("signed digest {index} is {len} bytes, expected 32")]
    DigestLength {
        /// position in the signed list
        index: usize,
        /// its length in bytes
        len: usize,
    },
    /// Entry `index` of the signed digest list is not greater than the entry before it (the
    /// list must be sorted strictly ascending: reordered or duplicated entries are refused).
    #[error("signed digests are not strictly ascending at index {index}")]
    DigestsNotSorted {
        /// position of the first entry not greater than its predecessor
        index: usize,
    },
    /// The path is not a valid field path (shown escaped, cut to [`MAX_PATH_LEN`] bytes).
    #[error("disclosure has an invalid field path {path:?}")]
    BadPath {
        /// the offending path, possibly cut
        path: String,
    },
    /// The salt is shorter than [`MIN_SALT_LEN`] or longer than [`MAX_SALT_LEN`].
    #[error("disclosure of {path:?} has a salt of {len} bytes, expected 16 to 255")]
    BadSalt {
        /// the field path
        path: String,
        /// the salt's length
        len: usize,
    },
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("disclosure of {path:?} has a value of {len} bytes, more than the cap of 65536")]
    ValueTooLarge {
        /// the field path
        path: String,
        /// the value's length
        len: usize,
    },
    /// Two disclosures carry the same path.
    #[error("field {path:?} is disclosed twice")]
    DuplicatePath {
        /// the repeated path
        path: String,
    },
    /// The disclosure's digest is not in the signed list: salt, path or value was altered,
    /// or it belongs to another message.
    #[error("disclosure of {path:?} does not match any signed digest")]
    NotCommitted {
        /// the field path
        path: String,
    },
}

impl DisclosureError {
    /// The field path the error is about, if it is about one disclosure.
    pub fn path(&self) -> Option<&str> {
        match self {
            DisclosureError::DigestLength { .. } | DisclosureError::DigestsNotSorted { .. } => None,
            DisclosureError::BadPath { path }
            | DisclosureError::BadSalt { path, .. }
            | DisclosureError::ValueTooLarge { path, .. }
            | DisclosureError::DuplicatePath { path }
            | DisclosureError::NotCommitted { path } => Some(path),
        }
    }
}

/// Why fields could not be committed.
///
/// Every variant names a path or a count, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The path is not a valid field path (shown escaped, cut to [`MAX_PATH_LEN`] bytes).
    #[error("invalid field path {path:?}")]
    BadPath {
        /// the offending path, possibly cut
        path: String,
    },
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("value of {path:?} is {len} bytes, more than the cap of 65536")]
    ValueTooLarge {
        /// the field path
        path: String,
        /// the value's length
        len: usize,
    },
    /// Two fields carry the same path.
    #[error("field {path:?} is given twice")]
    DuplicatePath {
        /// the repeated path
        path: String,
    },
    /// More than [`MAX_FIELDS`] fields.
    #[error("{count} fields, more than the cap of {max}")]
    TooManyFields {
        /// fields given
        count: usize,
        /// the cap, [`MAX_FIELDS`]
        max: usize,
    },
    /// The random generator kept repeating itself while drawing decoys; it is broken.
    #[error("the random generator repeats its output")]
    BrokenRng,
}

/// The digest of one field: SHA-256 over `"trm/1 field" 0x00 || u8(len salt) || salt ||
/// u16be(len path) || path || u32be(len value) || value` (see the [module docs](self)).
///
/// This function does not validate its inputs; [`verify_disclosures`] and [`commit`] do so
/// before hashing. A length beyond its prefix's range (salt over 255 bytes, path over 65535,
/// value over 4 GiB) is encoded as the prefix's maximum, so such a digest is never one that a
/// verifier accepts for these inputs.
pub fn field_digest(salt: &[u8], path: &str, value: &[u8]) -> Digest {
    let salt_len = u8::try_from(salt.len()).unwrap_or(u8::MAX);
    let path_len = u16::try_from(path.len()).unwrap_or(u16::MAX);
    let value_len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    let mut h = Sha256::new();
    h.update(FIELD_TAG);
    h.update([salt_len]);
    h.update(salt);
    h.update(path_len.to_be_bytes());
    h.update(path.as_bytes());
    h.update(value_len.to_be_bytes());
    h.update(value);
    h.finalize().into()
}

/// The digest of a disclosure, [`field_digest`] of its salt, path and value (unvalidated).
pub fn disclosure_digest(d: &FieldDisclosure) -> Digest {
    field_digest(&d.salt, &d.path, &d.value)
}

/// Total number of digests to publish for `real` fields, so that the count of real fields is
/// not revealed: `real + MIN_DECOYS` (at least 8 decoys) rounded up to the next multiple of
/// [`PAD_BLOCK`] (64). So 0..=56 fields publish 64 digests, 57..=120 publish 128, and so on;
/// an observer learns only which block of 64 the field count falls in.
///
/// The result is at least `real + 8` and a multiple of 64 for every `real` up to
/// `usize::MAX - 71` (any count that fits in memory); beyond that it saturates.
pub fn padded_count(real: usize) -> usize {
    real.checked_add(MIN_DECOYS)
        .and_then(|n| n.checked_next_multiple_of(PAD_BLOCK))
        .unwrap_or(usize::MAX - usize::MAX % PAD_BLOCK)
}

/// Whether `path` is a valid field path: `"section.field"` or `"ext.<namespace>.<name>"`,
/// made only of ASCII lowercase letters, digits, `_` and `.`, 1..=[`MAX_PATH_LEN`] bytes, no
/// empty segment. A two-segment path may not have `ext` as its section.
pub fn is_valid_path(path: &str) -> bool {
    let b = path.as_bytes();
    if b.is_empty() || b.len() > MAX_PATH_LEN {
        return false;
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'.')
    {
        return false;
    }
    let mut segments = path.split('.');
    let first = segments.next().unwrap_or("");
    let rest: Vec<&str> = segments.collect();
    if first.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return false;
    }
    if first == "ext" {
        rest.len() == 2
    } else {
        rest.len() == 1
    }
}

/// A path as shown in an error: unchanged if short, else cut to [`MAX_PATH_LEN`] bytes (on a
/// character boundary) with `…` appended. Display escapes it (`{:?}`).
fn shown(path: &str) -> String {
    if path.len() <= MAX_PATH_LEN {
        return path.to_owned();
    }
    let mut end = MAX_PATH_LEN;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// The result of [`commit`]: the digest list to sign and one disclosure per field.
///
/// `Debug` shows the paths and the digest count, never a value or a salt.
#[derive(Clone, PartialEq, Eq)]
pub struct Commitment {
    /// Real digests plus random decoys, [`padded_count`] entries, sorted strictly ascending:
    /// put these (see [`Commitment::digest_bytes`]) in `Referral.digests` or
    /// `FollowUp.digests`.
    pub digests: Vec<Digest>,
    /// One disclosure per committed field, in the order the fields were given. Keep them (they
    /// hold the salts); release a chosen subset with each message (see [`Commitment::select`]).
    pub disclosures: Vec<FieldDisclosure>,
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commitment")
            .field("digests", &self.digests.len())
            .field(
                "paths",
                &self
                    .disclosures
                    .iter()
                    .map(|d| d.path.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Commitment {
    /// The digests as the `repeated bytes` of the protobuf body.
    pub fn digest_bytes(&self) -> Vec<Vec<u8>> {
        digests_as_bytes(&self.digests)
    }

    /// Clones of the disclosures whose path `release` accepts, in commitment order.
    pub fn select(&self, mut release: impl FnMut(&str) -> bool) -> Vec<FieldDisclosure> {
        self.disclosures
            .iter()
            .filter(|d| release(&d.path))
            .cloned()
            .collect()
    }

    /// The disclosure of `path`, if it was committed.
    pub fn disclosure(&self, path: &str) -> Option<&FieldDisclosure> {
        self.disclosures.iter().find(|d| d.path == path)
    }
}

/// Digests as the `repeated bytes` of a protobuf body (`Referral.digests`, `FollowUp.digests`).
pub fn digests_as_bytes(digests: &[Digest]) -> Vec<Vec<u8>> {
    digests.iter().map(|d| d.to_vec()).collect()
}

fn check_field(path: &str, value: &[u8]) -> Result<(), CommitError> {
    if !is_valid_path(path) {
        return Err(CommitError::BadPath { path: shown(path) });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(CommitError::ValueTooLarge {
            path: path.to_owned(),
            len: value.len(),
        });
    }
    Ok(())
}

/// Commits one field: draws a fresh [`SALT_LEN`]-byte salt and returns the disclosure (its
/// digest is [`disclosure_digest`]). Refuses an invalid path or a value over the cap.
pub fn commit_field(
    path: &str,
    value: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<FieldDisclosure, CommitError> {
    check_field(path, value)?;
    let mut salt = vec![0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    Ok(FieldDisclosure {
        path: path.to_owned(),
        salt,
        value: value.to_vec(),
    })
}

/// Commits `fields` (`(path, canonical JSON value bytes)`): a fresh random salt per field, one
/// disclosure per field (in the given order), and the digest list to sign: the real digests
/// plus random 32-byte decoys up to [`padded_count`], sorted strictly ascending.
///
/// Refuses an invalid path, a value over [`MAX_VALUE_LEN`], a path given twice, and more
/// than [`MAX_FIELDS`] fields.
pub fn commit(
    fields: &[(String, Vec<u8>)],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Commitment, CommitError> {
    if fields.len() > MAX_FIELDS {
        return Err(CommitError::TooManyFields {
            count: fields.len(),
            max: MAX_FIELDS,
        });
    }
    let mut seen = HashSet::with_capacity(fields.len());
    for (path, value) in fields {
        check_field(path, value)?;
        if !seen.insert(path.as_str()) {
            return Err(CommitError::DuplicatePath { path: path.clone() });
        }
    }

    let mut disclosures = Vec::with_capacity(fields.len());
    let mut set = BTreeSet::new();
    for (path, value) in fields {
        let d = commit_field(path, value, rng)?;
        // Distinct paths give distinct digests (barring a SHA-256 collision).
        set.insert(disclosure_digest(&d));
        disclosures.push(d);
    }

    let total = padded_count(fields.len());
    let mut repeats = 0;
    while set.len() < total {
        let mut decoy = [0u8; DIGEST_LEN];
        rng.fill_bytes(&mut decoy);
        if !set.insert(decoy) {
            // A fair generator repeats 32 bytes with probability about 2^-256.
            repeats += 1;
            if repeats > 8 {
                return Err(CommitError::BrokenRng);
            }
        }
    }

    Ok(Commitment {
        digests: set.into_iter().collect(), // BTreeSet iterates in ascending order
        disclosures,
    })
}

/// Checks a signed digest list on its own: every entry [`DIGEST_LEN`] bytes, and the list
/// sorted strictly ascending (no reordering, no duplicate). [`verify_disclosures`] does this
/// first; a node can call it on a referral that arrives with no disclosure.
pub fn check_digests(digests: &[impl AsRef<[u8]>]) -> Result<(), DisclosureError> {
    let mut previous: Option<&[u8]> = None;
    for (index, d) in digests.iter().enumerate() {
        let d = d.as_ref();
        if d.len() != DIGEST_LEN {
            return Err(DisclosureError::DigestLength {
                index,
                len: d.len(),
            });
        }
        if previous.is_some_and(|p| p >= d) {
            return Err(DisclosureError::DigestsNotSorted { index });
        }
        previous = Some(d);
    }
    Ok(())
}

/// Checks one disclosure's shape: valid path, salt of 16..=255 bytes, value within the cap.
fn check_disclosure(d: &FieldDisclosure) -> Result<(), DisclosureError> {
    if !is_valid_path(&d.path) {
        return Err(DisclosureError::BadPath {
            path: shown(&d.path),
        });
    }
    if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&d.salt.len()) {
        return Err(DisclosureError::BadSalt {
            path: d.path.clone(),
            len: d.salt.len(),
        });
    }
    if d.value.len() > MAX_VALUE_LEN {
        return Err(DisclosureError::ValueTooLarge {
            path: d.path.clone(),
            len: d.value.len(),
        });
    }
    Ok(())
}

/// Verifies `disclosures` against the signed `digests`.
///
/// The list must pass [`check_digests`] (32-byte entries, strictly ascending). Each
/// disclosure must have a valid path ([`is_valid_path`]), a salt of
/// [`MIN_SALT_LEN`]..=[`MAX_SALT_LEN`] bytes and a value of at most [`MAX_VALUE_LEN`] bytes;
/// no two may share a path; and its [`disclosure_digest`] must be in the list (binary search).
/// The first failure is returned; it names the path, never the value.
pub fn verify_disclosures(
    digests: &[impl AsRef<[u8]>],
    disclosures: &[FieldDisclosure],
) -> Result<(), DisclosureError> {
    check_digests(digests)?;
    let mut seen = HashSet::with_capacity(disclosures.len());
    for d in disclosures {
        check_disclosure(d)?;
        if !seen.insert(d.path.as_str()) {
            return Err(DisclosureError::DuplicatePath {
                path: d.path.clone(),
            });
        }
        let digest = disclosure_digest(d);
        if digests
            .binary_search_by(|x| x.as_ref().cmp(&digest[..]))
            .is_err()
        {
            return Err(DisclosureError::NotCommitted {
                path: d.path.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::{OsRng, StdRng};
    use rand::SeedableRng;
    use rand_core::{CryptoRng, RngCore};

    const CANARY: &[u8] = b"\"CANARY-VALUE\"";

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn sample_fields() -> Vec<(String, Vec<u8>)> {
        vec![
            ("identity.family_name".into(), b"\"Rossi\"".to_vec()),
            ("identity.given_name".into(), b"\"Maria\"".to_vec()),
            ("exploitation.form".into(), b"\"labour\"".to_vec()),
            ("ext.it.permit_number".into(), b"\"A-123\"".to_vec()),
            ("risk.level".into(), b"3".to_vec()),
        ]
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9_]{0,20}\\.[a-z0-9_]{1,30}",
            "ext\\.[a-z]{2}\\.[a-z0-9_]{1,30}",
        ]
        .prop_filter("no two-segment ext", |p| is_valid_path(p))
    }

    fn fields_strategy() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        prop::collection::btree_map(
            path_strategy(),
            prop::collection::vec(any::<u8>(), 0..200),
            0..80,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    /// Known answer, computed independently with Python's hashlib:
    ///
    /// ```text
    /// import hashlib, struct
    /// salt = bytes(range(16)); path = b"identity.family_name"; value = b'"Rossi"'
    /// m = b"trm/1 field" + b"\x00" + bytes([len(salt)]) + salt
    ///     + struct.pack(">H", len(path)) + path + struct.pack(">I", len(value)) + value
    /// ```
    ///
    /// m (62 bytes) =
    /// 74726d2f31206669656c6400                      "trm/1 field" 0x00
    /// 10 000102030405060708090a0b0c0d0e0f           u8(16) salt
    /// 0014 6964656e746974792e66616d696c795f6e616d65  u16be(20) "identity.family_name"
    /// 00000007 22526f73736922                       u32be(7) "\"Rossi\""
    #[test]
    fn known_answer() {
        let salt: Vec<u8> = (0u8..16).collect();
        let d = field_digest(&salt, "identity.family_name", b"\"Rossi\"");
        assert_eq!(
            hex::encode(d),
            "9c0e95cc841b86c3026a8d25e4821678017316911c856c7d31a9f764b9761b17"
        );
        let mut m = hex::decode(concat!(
            "74726d2f31206669656c6400",
            "10000102030405060708090a0b0c0d0e0f",
            "00146964656e746974792e66616d696c795f6e616d65",
            "0000000722526f73736922"
        ))
        .unwrap();
        assert_eq!(m.len(), 62);
        assert_eq!(crate::signing::sha256(&m), d);
        m[12] = 17; // a different salt length prefix gives a different digest
        assert_ne!(crate::signing::sha256(&m), d);
    }

    #[test]
    fn commit_then_verify_all_and_subsets() {
        let c = commit(&sample_fields(), &mut OsRng).unwrap();
        assert_eq!(c.digests.len(), 64);
        assert_eq!(c.disclosures.len(), 5);
        verify_disclosures(&c.digests, &c.disclosures).unwrap();
        verify_disclosures(&c.digest_bytes(), &c.disclosures).unwrap();
        verify_disclosures(&c.digests, &[]).unwrap();
        let some = c.select(|p| p.starts_with("identity."));
        assert_eq!(some.len(), 2);
        verify_disclosures(&c.digests, &some).unwrap();
        assert_eq!(c.disclosure("risk.level").unwrap().value, b"3");
        assert!(c.disclosure("risk.other").is_none());
    }

    #[test]
    fn commit_shape() {
        let fields = sample_fields();
        let c = commit(&fields, &mut rng(1)).unwrap();
        assert_eq!(c.digests.len(), padded_count(fields.len()));
        assert!(c.digests.windows(2).all(|w| w[0] < w[1]));
        let mut salts = HashSet::new();
        for ((path, value), d) in fields.iter().zip(&c.disclosures) {
            assert_eq!(&d.path, path);
            assert_eq!(&d.value, value);
            assert_eq!(d.salt.len(), SALT_LEN);
            assert!(salts.insert(d.salt.clone()), "salts are fresh");
            assert!(c.digests.binary_search(&disclosure_digest(d)).is_ok());
        }
        // Empty input still publishes a full block of decoys.
        let empty = commit(&[], &mut rng(2)).unwrap();
        assert_eq!(empty.digests.len(), 64);
        assert!(empty.disclosures.is_empty());
        check_digests(&empty.digests).unwrap();
    }

    #[test]
    fn commit_refusals() {
        let mut f = sample_fields();
        f.push(("risk.level".into(), b"4".to_vec()));
        assert_eq!(
            commit(&f, &mut OsRng),
            Err(CommitError::DuplicatePath {
                path: "risk.level".into()
            })
        );
        let bad = vec![("Identity.Name".to_string(), CANARY.to_vec())];
        assert_eq!(
            commit(&bad, &mut OsRng),
            Err(CommitError::BadPath {
                path: "Identity.Name".into()
            })
        );
        let big = vec![("case.notes".to_string(), vec![b'a'; MAX_VALUE_LEN + 1])];
        assert_eq!(
            commit(&big, &mut OsRng),
            Err(CommitError::ValueTooLarge {
                path: "case.notes".into(),
                len: MAX_VALUE_LEN + 1
            })
        );
        let at_cap = vec![("case.notes".to_string(), vec![b'a'; MAX_VALUE_LEN])];
        let c = commit(&at_cap, &mut OsRng).unwrap();
        verify_disclosures(&c.digests, &c.disclosures).unwrap();
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_FIELDS)
            .map(|i| (format!("s.f{i}"), vec![]))
            .collect();
        assert_eq!(
            commit(&many, &mut OsRng),
            Err(CommitError::TooManyFields {
                count: MAX_FIELDS + 1,
                max: MAX_FIELDS
            })
        );
        assert!(commit_field("bad path", b"1", &mut OsRng).is_err());
    }

    /// A generator that always outputs zeros must not make `commit` loop forever.
    #[test]
    fn broken_rng_is_detected() {
        struct Zeros;
        impl RngCore for Zeros {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(0);
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
                dest.fill(0);
                Ok(())
            }
        }
        impl CryptoRng for Zeros {}
        assert_eq!(
            commit(&sample_fields(), &mut Zeros),
            Err(CommitError::BrokenRng)
        );
    }

    #[test]
    fn path_rules() {
        for ok in [
            "identity.family_name",
            "a.b",
            "s1.f_2",
            "ext.it.permit_number",
            "ext.de.x",
            "_.x",
        ] {
            assert!(is_valid_path(ok), "{ok}");
        }
        let long_ok = format!("s.{}", "a".repeat(MAX_PATH_LEN - 2));
        assert!(is_valid_path(&long_ok));
        let too_long = format!("s.{}", "a".repeat(MAX_PATH_LEN - 1));
        for bad in [
            "",
            "identity",
            ".a",
            "a.",
            "a..b",
            "a.b.c",
            "ext.it",
            "ext.it.a.b",
            "ext..a",
            "Identity.name",
            "identity.name ",
            "identity-x.name",
            "identity.né",
            "identity/name",
            too_long.as_str(),
        ] {
            assert!(!is_valid_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_salt_byte_and_length_matters() {
        let c = commit(&sample_fields(), &mut rng(3)).unwrap();
        let d0 = &c.disclosures[0];
        for i in 0..d0.salt.len() {
            let mut d = d0.clone();
            d.salt[i] ^= 0x01;
            assert_eq!(
                verify_disclosures(&c.digests, &[d]),
                Err(DisclosureError::NotCommitted {
                    path: d0.path.clone()
                })
            );
        }
        let mut longer = d0.clone();
        longer.salt.push(0);
        assert!(matches!(
            verify_disclosures(&c.digests, &[longer]),
            Err(DisclosureError::NotCommitted { .. })
        ));
        for len in [0, 1, 15, 256, 300] {
            let mut d = d0.clone();
            d.salt.resize(len, 7);
            assert_eq!(
                verify_disclosures(&c.digests, &[d]),
                Err(DisclosureError::BadSalt {
                    path: d0.path.clone(),
                    len
                })
            );
        }
    }

    #[test]
    fn value_and_path_changes_fail() {
        let c = commit(&sample_fields(), &mut rng(4)).unwrap();
        let d0 = &c.disclosures[0];
        let not_committed = |d: FieldDisclosure| {
            let path = d.path.clone();
            assert_eq!(
                verify_disclosures(&c.digests, &[d]),
                Err(DisclosureError::NotCommitted { path })
            );
        };
        let mut d = d0.clone();
        d.value.pop();
        not_committed(d);
        let mut d = d0.clone();
        d.value.push(b' ');
        not_committed(d);
        let mut d = d0.clone();
        d.value.clear();
        not_committed(d);
        let mut d = d0.clone();
        d.path = "identity.given_name".into(); // another committed path, this field's salt
        not_committed(d);
        let mut d = d0.clone();
        d.path = "identity.family_nam".into();
        not_committed(d);
        let mut d = d0.clone();
        d.path = "identity.family_name.x".into();
        assert!(matches!(
            verify_disclosures(&c.digests, &[d]),
            Err(DisclosureError::BadPath { .. })
        ));
        let mut d = d0.clone();
        d.value = vec![b'a'; MAX_VALUE_LEN + 1];
        assert_eq!(
            verify_disclosures(&c.digests, &[d]),
            Err(DisclosureError::ValueTooLarge {
                path: d0.path.clone(),
                len: MAX_VALUE_LEN + 1
            })
        );
        // Swapping values between two committed fields fails too.
        let (mut a, mut b) = (c.disclosures[0].clone(), c.disclosures[1].clone());
        std::mem::swap(&mut a.value, &mut b.value);
        not_committed(a);
        not_committed(b);
    }

    #[test]
    fn uncommitted_and_foreign_disclosures_fail() {
        let c = commit(&sample_fields(), &mut OsRng).unwrap();
        let other = commit(&sample_fields(), &mut OsRng).unwrap();
        let fresh = commit_field("identity.family_name", b"\"Rossi\"", &mut OsRng).unwrap();
        assert_eq!(
            verify_disclosures(&c.digests, &[fresh]),
            Err(DisclosureError::NotCommitted {
                path: "identity.family_name".into()
            })
        );
        for d in &other.disclosures {
            assert_eq!(
                verify_disclosures(&c.digests, std::slice::from_ref(d)),
                Err(DisclosureError::NotCommitted {
                    path: d.path.clone()
                })
            );
        }
        // One bad disclosure among good ones fails the whole set.
        let mut mixed = c.disclosures.clone();
        mixed[4] = other.disclosures[4].clone(); // risk.level from the other commitment
        assert_eq!(
            verify_disclosures(&c.digests, &mixed),
            Err(DisclosureError::NotCommitted {
                path: "risk.level".into()
            })
        );
    }

    #[test]
    fn duplicate_disclosure_is_refused() {
        let c = commit(&sample_fields(), &mut OsRng).unwrap();
        let d = c.disclosures[2].clone();
        assert_eq!(
            verify_disclosures(&c.digests, &[d.clone(), d.clone()]),
            Err(DisclosureError::DuplicatePath { path: d.path })
        );
    }

    #[test]
    fn digest_list_must_be_strictly_ascending_and_32_bytes() {
        let c = commit(&sample_fields(), &mut OsRng).unwrap();
        let mut swapped = c.digests.clone();
        swapped.swap(10, 11);
        assert_eq!(
            verify_disclosures(&swapped, &c.disclosures),
            Err(DisclosureError::DigestsNotSorted { index: 11 })
        );
        let mut reversed = c.digests.clone();
        reversed.reverse();
        assert_eq!(
            verify_disclosures(&reversed, &[]),
            Err(DisclosureError::DigestsNotSorted { index: 1 })
        );
        let mut dup = c.digests.clone();
        dup.insert(5, dup[5]);
        assert_eq!(
            verify_disclosures(&dup, &[]),
            Err(DisclosureError::DigestsNotSorted { index: 6 })
        );
        let mut bytes = c.digest_bytes();
        bytes[3].pop();
        assert_eq!(
            verify_disclosures(&bytes, &c.disclosures),
            Err(DisclosureError::DigestLength { index: 3, len: 31 })
        );
        let mut bytes = c.digest_bytes();
        bytes[0].push(0);
        assert_eq!(
            check_digests(&bytes),
            Err(DisclosureError::DigestLength { index: 0, len: 33 })
        );
        check_digests(&Vec::<Vec<u8>>::new()).unwrap();
    }

    #[test]
    fn padded_count_examples() {
        assert_eq!(padded_count(0), 64);
        assert_eq!(padded_count(1), 64);
        assert_eq!(padded_count(56), 64);
        assert_eq!(padded_count(57), 128);
        assert_eq!(padded_count(120), 128);
        assert_eq!(padded_count(121), 192);
        assert_eq!(padded_count(MAX_FIELDS), 4160);
        assert_eq!(padded_count(usize::MAX) % 64, 0); // saturates, does not panic
    }

    #[test]
    fn errors_never_show_values_or_salts() {
        let salt = b"SALT-SALT-SALT-SALT".to_vec();
        let d = FieldDisclosure {
            path: "identity.family_name".into(),
            salt: salt.clone(),
            value: CANARY.to_vec(),
        };
        let digests: Vec<Digest> = vec![];
        let c = commit(&[(d.path.clone(), CANARY.to_vec())], &mut OsRng).unwrap();
        let committed = c.disclosures[0].clone();
        let mut errors = vec![verify_disclosures(&digests, std::slice::from_ref(&d)).unwrap_err()];
        errors.push(
            verify_disclosures(&c.digests, &[committed.clone(), committed.clone()]).unwrap_err(),
        );
        let mut short = d.clone();
        short.salt.truncate(3);
        errors.push(verify_disclosures(&digests, &[short]).unwrap_err());
        let mut big = d.clone();
        big.value = CANARY.repeat(MAX_VALUE_LEN / CANARY.len() + 1);
        errors.push(verify_disclosures(&digests, &[big]).unwrap_err());
        let mut names = HashSet::new();
        for e in &errors {
            let text = format!("{e} {e:?}");
            assert!(text.contains("identity.family_name"), "{text}");
            assert!(!text.contains("CANARY"), "{text}");
            assert!(!text.contains("SALT"), "{text}");
            assert!(!text.contains(&hex::encode(&salt)), "{text}");
            assert!(!text.contains(&hex::encode(&committed.salt)), "{text}");
            assert_eq!(e.path(), Some("identity.family_name"));
            names.insert(std::mem::discriminant(e));
        }
        assert_eq!(
            names.len(),
            4,
            "NotCommitted, DuplicatePath, BadSalt, ValueTooLarge"
        );

        let mut bad = d.clone();
        bad.path = "identity.Family_Name".into();
        let e = verify_disclosures(&digests, &[bad]).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("identity.Family_Name") && !text.contains("CANARY"));

        // A huge bad path is cut in the error.
        let mut huge = d.clone();
        huge.path = "x".repeat(10_000);
        let e = verify_disclosures(&digests, &[huge]).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");

        for e in [
            commit(&[(d.path.clone(), CANARY.repeat(10_000))], &mut OsRng).unwrap_err(),
            commit(
                &[
                    (d.path.clone(), CANARY.to_vec()),
                    (d.path.clone(), CANARY.to_vec()),
                ],
                &mut OsRng,
            )
            .unwrap_err(),
        ] {
            let text = format!("{e} {e:?}");
            assert!(text.contains("identity.family_name") && !text.contains("CANARY"));
        }

        let debug = format!("{c:?}");
        assert!(debug.contains("identity.family_name") && !debug.contains("CANARY"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_commit_then_verify(fields in fields_strategy(), seed in any::<u64>()) {
            let c = commit(&fields, &mut rng(seed)).unwrap();
            prop_assert_eq!(c.digests.len(), padded_count(fields.len()));
            prop_assert!(c.digests.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(verify_disclosures(&c.digests, &c.disclosures), Ok(()));
            prop_assert_eq!(verify_disclosures(&c.digest_bytes(), &c.disclosures), Ok(()));
        }

        #[test]
        fn prop_tampering_fails(
            fields in fields_strategy().prop_filter("non-empty", |f| !f.is_empty()),
            seed in any::<u64>(),
            pick in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            extra in prop::collection::vec(any::<u8>(), 1..20),
            kind in 0u8..7,
        ) {
            let c = commit(&fields, &mut rng(seed)).unwrap();
            let orig = pick.get(&c.disclosures).clone();
            let mut d = orig.clone();
            match kind {
                0 => { let i = at.index(d.salt.len()); d.salt[i] ^= flip; }
                1 => d.salt.extend_from_slice(&extra),
                2 => d.salt.truncate(at.index(d.salt.len())),
                3 => d.value.extend_from_slice(&extra),
                4 => {
                    if d.value.is_empty() { d.value.push(flip) } else {
                        let i = at.index(d.value.len()); d.value[i] ^= flip;
                    }
                }
                5 => {
                    if d.value.is_empty() { d.value.push(flip) } else {
                        d.value.truncate(at.index(d.value.len()));
                    }
                }
                _ => {
                    let i = at.index(d.path.len());
                    let mut p = d.path.clone().into_bytes();
                    p[i] = if p[i] == b'a' { b'b' } else { b'a' };
                    d.path = String::from_utf8(p).unwrap();
                }
            }
            prop_assert_ne!(&d, &orig);
            let r = verify_disclosures(&c.digests, &[d.clone()]);
            prop_assert!(
                matches!(
                    r,
                    Err(DisclosureError::NotCommitted { .. })
                        | Err(DisclosureError::BadSalt { .. })
                        | Err(DisclosureError::BadPath { .. })
                ),
                "{:?}", r
            );
            // The untouched disclosure still verifies.
            prop_assert_eq!(verify_disclosures(&c.digests, &[orig]), Ok(()));
        }

        #[test]
        fn prop_foreign_commitment_fails(
            fields in fields_strategy().prop_filter("non-empty", |f| !f.is_empty()),
            s1 in any::<u64>(),
            s2 in any::<u64>(),
        ) {
            prop_assume!(s1 != s2);
            let a = commit(&fields, &mut rng(s1)).unwrap();
            let b = commit(&fields, &mut rng(s2)).unwrap();
            for d in &b.disclosures {
                let r = verify_disclosures(&a.digests, std::slice::from_ref(d));
                prop_assert_eq!(r, Err(DisclosureError::NotCommitted { path: d.path.clone() }));
            }
        }

        #[test]
        fn prop_reordering_fails(
            fields in fields_strategy(),
            seed in any::<u64>(),
            i in any::<prop::sample::Index>(),
            j in any::<prop::sample::Index>(),
        ) {
            let c = commit(&fields, &mut rng(seed)).unwrap();
            let (i, j) = (i.index(c.digests.len()), j.index(c.digests.len()));
            prop_assume!(i != j);
            let mut digests = c.digests.clone();
            digests.swap(i, j);
            let r = verify_disclosures(&digests, &c.disclosures);
            prop_assert!(matches!(r, Err(DisclosureError::DigestsNotSorted { .. })), "{:?}", r);
        }

        #[test]
        fn prop_dropping_other_digests_keeps_the_rest(
            fields in fields_strategy().prop_filter("non-empty", |f| !f.is_empty()),
            seed in any::<u64>(),
            keep in prop::collection::vec(any::<bool>(), 200),
            drop_each in any::<bool>(),
        ) {
            let c = commit(&fields, &mut rng(seed)).unwrap();
            // Disclose a random subset; keep their digests, drop a random share of the others.
            let released: Vec<FieldDisclosure> = c
                .disclosures
                .iter()
                .enumerate()
                .filter(|(k, _)| keep[*k % keep.len()])
                .map(|(_, d)| d.clone())
                .collect();
            let needed: HashSet<Digest> = released.iter().map(disclosure_digest).collect();
            let kept: Vec<Digest> = c
                .digests
                .iter()
                .enumerate()
                .filter(|(k, d)| needed.contains(*d) || (!drop_each && keep[(k + 7) % keep.len()]))
                .map(|(_, d)| *d)
                .collect();
            prop_assert_eq!(verify_disclosures(&kept, &released), Ok(()));
            // And a released field whose digest was dropped fails.
            if let Some(first) = released.first() {
                let target = disclosure_digest(first);
                let without: Vec<Digest> = kept.iter().copied().filter(|d| *d != target).collect();
                prop_assert_eq!(
                    verify_disclosures(&without, &released),
                    Err(DisclosureError::NotCommitted { path: first.path.clone() })
                );
            }
        }

        #[test]
        fn prop_padded_count(real in 0usize..1_000_000) {
            let n = padded_count(real);
            prop_assert!(n >= real + MIN_DECOYS);
            prop_assert_eq!(n % PAD_BLOCK, 0);
            prop_assert!(n < real + MIN_DECOYS + PAD_BLOCK, "smallest such multiple");
        }
    }
}
