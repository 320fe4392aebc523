//! Offline verification of an audit bundle (`proto/audit.proto`, docs/PROTOCOL.md §9).
//!
//! [`verify_bundle`] needs nothing but the bundle's bytes: no node, no network, no credential.
//! It checks, in this order, and stops at the first failure, which it names:
//!
//! 1. the bundle decodes and is in canonical encoding (so that no byte can change without
//!    changing a decoded value), and its version is 1;
//! 2. the node's identity card and every peer card (self-signature, key history endorsements);
//!    Every later card of one peer must extend the key history of its earlier cards.
//! 3. every checkpoint: signed by a key of the node's history valid at the checkpoint's time,
//!    sizes strictly increasing, chained (sequence numbers 1, 2, 3, ... and each one naming
//!    the hash of the one before, so a removed checkpoint shows), and each one consistent with
//!    the one before (RFC 9162 consistency proofs);
//! 4. every entry: its inclusion proof against the last checkpoint, then what it carries:
//!    envelope, receipt, rejection, key endorsement or witnessed checkpoint signatures with the
//!    right party's key valid at the signed object's time, envelope hashes, message ids and
//!    parties;
//! 5. coverage: the entries have consecutive indices (no gaps, anywhere); a full export holds
//!    every index below the last checkpoint's size and the record of its own export
//!    ([`Coverage::Complete`]); anything else is [`Coverage::Partial`], refused unless the
//!    caller allows it ([`Options::allow_partial`]);
//! 6. what the auditor knows from outside the bundle ([`verify_bundle_with`]): the node's key
//!    fingerprints they expect, and other nodes' bundles whose receipts and `witness` entries
//!    hold checkpoints of this node, each of which must agree with this bundle's log.
//!
//! What the bundle alone cannot show: a log cut back to an earlier checkpoint and re-exported
//! by someone holding the node's signing key (or an earlier full export passed off as a new
//! one) verifies as complete; its export record then shows the earlier export time. Checks 6,
//! and the node's rollback tripwire, are what catch it (docs/SECURITY.md).
//!
//! Signatures are checked one by one with `verify_strict`. ed25519-dalek's batch verification
//! is faster but can accept a signature that `verify_strict` (and OpenSSL) refuse when a
//! component has a small-order part, and its batch scalars are derived from the inputs, so a
//! dishonest exporter could craft such a signature; an auditor's verdict must not depend on it.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use prost::Message;

use crate::auditpb::{AuditBundle, AuditEntry, ExportedEntry};

mod stream;
use crate::card::{self, VerifiedCard};
use crate::merkle::{self, Hash};
use crate::pb::{self, body::Payload};
use crate::signing::{self, Tag, VerifyMemo};
pub use stream::{decode_exported, BundleHead, Checker, EntryCheck, Keep, Verifier};

/// Version of the bundle format.
pub const BUNDLE_VERSION: u32 = 1;

/// Where in the bundle a check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The bundle itself.
    Bundle,
    /// The exporting node's identity card.
    Card,
    /// A peer card, by position in the bundle.
    PeerCard(usize),
    /// A checkpoint, by position, with its tree size when it could be read.
    Checkpoint {
        /// position in the bundle, from 0
        position: usize,
        /// tree size, 0 if unreadable
        tree_size: u64,
    },
    /// The consistency proof between two successive checkpoints.
    Consistency {
        /// older tree size
        first: u64,
        /// newer tree size
        second: u64,
    },
    /// A log entry by its index in the log.
    Entry(u64),
    /// A log entry whose index could not be read, by position in the bundle.
    EntryAt(usize),
    /// A witness bundle (`--witness`), by position in the list, and the tree size of the
    /// witnessed checkpoint concerned (0 if none).
    Witness {
        /// position of the witness bundle, from 0
        bundle: usize,
        /// tree size of the witnessed checkpoint, 0 for the bundle as a whole
        tree_size: u64,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Bundle => write!(f, "bundle"),
            Location::Card => write!(f, "node card"),
            Location::PeerCard(i) => write!(f, "peer card {i}"),
            Location::Checkpoint {
                position,
                tree_size,
            } => write!(f, "checkpoint {position} (tree size {tree_size})"),
            Location::Consistency { first, second } => {
                write!(f, "consistency proof {first} -> {second}")
            }
            Location::Entry(i) => write!(f, "entry {i}"),
            Location::EntryAt(p) => write!(f, "entry #{p} of the bundle"),
            Location::Witness {
                bundle,
                tree_size: 0,
            } => write!(f, "witness bundle {bundle}"),
            Location::Witness { bundle, tree_size } => {
                write!(
                    f,
                    "witness bundle {bundle}, checkpoint at tree size {tree_size}"
                )
            }
        }
    }
}

/// A failed check: where, and what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {what}")]
pub struct AuditFailure {
    /// Where.
    pub location: Location,
    /// What failed, one line.
    pub what: String,
}

fn fail<T>(location: Location, what: impl Into<String>) -> Result<T, AuditFailure> {
    Err(AuditFailure {
        location,
        what: what.into(),
    })
}

/// Entry kind of the record a node writes at the start of every export (docs/PROTOCOL.md
/// §9.1): the last checkpoint of a full export is signed after it.
pub const EXPORT_KIND: &str = AuditKind::Export.as_str();

/// The kind of an audit entry (docs/PROTOCOL.md §9.1), written by the node and matched by the
/// verifier. On disk and in bundles it is the string [`AuditKind::as_str`]; a kind this
/// version does not know parses to `None` (the verifier accepts it only unsigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKind {
    /// An envelope this node sent.
    Sent,
    /// An envelope received from a peer.
    Received,
    /// A receipt this node signed.
    ReceiptSent,
    /// A peer's receipt for an envelope of this node.
    ReceiptReceived,
    /// A rejection this node signed.
    RejectionSent,
    /// A peer's rejection of an envelope of this node.
    RejectionReceived,
    /// A key rotation: the previous key's endorsement of the new one.
    Key,
    /// A peer's checkpoint that contradicted its log, kept as evidence.
    Witness,
    /// A peer held without verifiable evidence (unsigned).
    PeerHeld,
    /// The start of an audit export (unsigned).
    Export,
    /// One admin call (unsigned).
    Admin,
    /// Values erased here (unsigned).
    Erasure,
    /// A restore of the store from a backup (unsigned).
    Restore,
}

impl AuditKind {
    /// Every kind, in the order of docs/PROTOCOL.md §9.1.
    pub const ALL: [AuditKind; 13] = [
        AuditKind::Sent,
        AuditKind::Received,
        AuditKind::ReceiptSent,
        AuditKind::ReceiptReceived,
        AuditKind::RejectionSent,
        AuditKind::RejectionReceived,
        AuditKind::Key,
        AuditKind::Witness,
        AuditKind::PeerHeld,
        AuditKind::Export,
        AuditKind::Admin,
        AuditKind::Erasure,
        AuditKind::Restore,
    ];

    /// The kind as written in `AuditEntry.kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::Sent => "sent",
            AuditKind::Received => "received",
            AuditKind::ReceiptSent => "receipt_sent",
            AuditKind::ReceiptReceived => "receipt_received",
            AuditKind::RejectionSent => "rejection_sent",
            AuditKind::RejectionReceived => "rejection_received",
            AuditKind::Key => "key",
            AuditKind::Witness => "witness",
            AuditKind::PeerHeld => "peer_held",
            AuditKind::Export => "export",
            AuditKind::Admin => "admin",
            AuditKind::Erasure => "erasure",
            AuditKind::Restore => "restore",
        }
    }

    /// The kind written as `s`, if this version knows it.
    pub fn parse(s: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AuditKind> for String {
    fn from(k: AuditKind) -> String {
        k.as_str().to_string()
    }
}

/// How much of the node's log a verified bundle holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Coverage {
    /// Not established (a default [`Summary`]; never returned by a successful verification).
    #[default]
    Unknown,
    /// Every index below the last checkpoint's tree size, and an export record.
    Complete,
    /// Consecutive indices `first..=last` of a log of `of` entries (a `--from/--to` export,
    /// or a full one without an export record).
    Partial {
        /// first index held
        first: u64,
        /// last index held
        last: u64,
        /// the log's size at the last checkpoint
        of: u64,
    },
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coverage::Unknown => write!(f, "unknown"),
            Coverage::Complete => write!(f, "complete"),
            Coverage::Partial { first, last, of } => {
                write!(f, "partial: indices {first}..={last} of {of}")
            }
        }
    }
}

/// A witness bundle's checkpoints of this node that agreed with the bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Witnessed {
    /// The witnessing node's country.
    pub by: String,
    /// Checkpoints of this node found in it (receipts and `witness` entries) and checked.
    pub checkpoints: usize,
    /// The largest tree size among them.
    pub largest: u64,
}

/// What the auditor brings from outside the bundle, and whether a partial bundle is expected.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Accept a bundle that does not hold the whole log (a `--from/--to` export). Gaps inside
    /// it are refused all the same.
    pub allow_partial: bool,
    /// Fingerprints ([`crate::signing::fingerprint`] of the raw 32-byte public key, with or
    /// without the colons) that must each be in the node's key history.
    pub expect_keys: Vec<String>,
    /// Bundles of other nodes: every checkpoint of this node they hold must agree with this
    /// bundle's log.
    pub witnesses: Vec<Vec<u8>>,
}

/// What a verified bundle holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Exporting node's country.
    pub country: String,
    /// Exporting node's name.
    pub name: String,
    /// Keys in the node's history.
    pub keys: usize,
    /// Peer countries with a card in the bundle.
    pub peers: Vec<String>,
    /// Entries in the bundle.
    pub entries: u64,
    /// Tree size of the last checkpoint (the log size the entries were proven against).
    pub tree_size: u64,
    /// Root hash of the last checkpoint, hex.
    pub root: String,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// Signatures checked.
    pub signatures: u64,
    /// Time of the first and last entry (Unix ms).
    pub first_ms: Option<i64>,
    /// Time of the last entry.
    pub last_ms: Option<i64>,
    /// Index of the first and last entry.
    pub first_index: Option<u64>,
    /// Index of the last entry.
    pub last_index: Option<u64>,
    /// Entries per kind.
    pub kinds: BTreeMap<String, u64>,
    /// Messages per (peer, "sent"/"received", payload kind).
    pub messages: BTreeMap<(String, String, String), u64>,
    /// How much of the log the bundle holds.
    pub coverage: Coverage,
    /// Time of the last export record of a complete bundle (Unix ms): when the export was
    /// made. `None` for a partial bundle.
    pub exported_ms: Option<i64>,
    /// Time of the last checkpoint (Unix ms): when the log was signed at its exported size.
    pub signed_ms: Option<i64>,
    /// Checkpoints signed before checkpoints were chained (sequence 0): a removed one of these
    /// would not show by itself.
    pub legacy_checkpoints: usize,
    /// Fingerprints of the node's keys, oldest first.
    pub key_fingerprints: Vec<String>,
    /// Fingerprints of each peer's keys (the key history of its latest card), oldest first.
    pub peer_keys: BTreeMap<String, Vec<String>>,
    /// Witness bundles checked against this one.
    pub witnessed: Vec<Witnessed>,
    /// Peer identities replaced by the operator: key histories of a country beyond its
    /// first, each pinned by a logged `peer add` of one of its cards.
    pub replaced_cards: usize,
}

/// Decodes `bytes` and insists that they are the canonical encoding of what they decode to:
/// an unknown field, a non-minimal varint or a changed field order cannot slip through.
pub fn decode_exact<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, String> {
    let m = M::decode(bytes).map_err(|e| format!("{what} does not decode ({e})"))?;
    if m.encode_to_vec() != bytes {
        return Err(format!("{what} is not in canonical encoding (altered)"));
    }
    Ok(m)
}

fn hash32(bytes: &[u8], what: &str) -> Result<Hash, String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} is {} bytes, not 32", bytes.len()))
}

fn hashes(list: &[Vec<u8>], what: &str) -> Result<Vec<Hash>, String> {
    list.iter().map(|h| hash32(h, what)).collect()
}

/// The parties whose keys sign what a bundle holds.
struct Keys<'m> {
    country: String,
    own: Vec<pb::KeyRecord>,
    peers: BTreeMap<String, Vec<VerifiedCard>>,
    /// Every key of the histories above, decoded once ([`Keys::decode_all`]); empty: decoded
    /// on each use.
    decoded: BTreeMap<Vec<u8>, VerifyingKey>,
    /// Signatures verified before (a node's memo); None: every signature is verified.
    memo: Option<&'m dyn VerifyMemo>,
}

impl<'m> Keys<'m> {
    fn new(
        country: String,
        own: Vec<pb::KeyRecord>,
        peers: BTreeMap<String, Vec<VerifiedCard>>,
    ) -> Self {
        Keys {
            country,
            own,
            peers,
            decoded: BTreeMap::new(),
            memo: None,
        }
    }

    /// Decodes every key of the histories once (a point decompression per key instead of
    /// per signature, when a bundle's many entries are checked).
    fn decode_all(&mut self) {
        let peers = self.peers.values().flatten().map(|c| &c.card.key_history);
        for k in self.own.iter().chain(peers.flatten()) {
            if let Ok(v) = signing::parse_public_key(&k.public_key) {
                self.decoded.insert(k.public_key.clone(), v);
            }
        }
    }

    /// [`card::key_valid_at`], with the key decoded once.
    fn valid_at(
        &self,
        history: &[pb::KeyRecord],
        signer: &[u8],
        time_ms: i64,
    ) -> Option<VerifyingKey> {
        let record = card::record_valid_at(history, signer, time_ms)?;
        match self.decoded.get(&record.public_key) {
            Some(v) => Some(*v),
            None => signing::parse_public_key(&record.public_key).ok(),
        }
    }

    /// The key `signer` of `party` (own country or a peer), if it was valid at `time_ms`.
    fn at(&self, party: &str, signer: &[u8], time_ms: i64) -> Result<VerifyingKey, String> {
        if party == self.country {
            return self.valid_at(&self.own, signer, time_ms).ok_or_else(|| {
                format!(
                    "signer {} is not a key of {party} valid at {time_ms}",
                    short(signer)
                )
            });
        }
        let cards = self
            .peers
            .get(party)
            .ok_or_else(|| format!("no identity card for peer {party:?} in the bundle"))?;
        cards
            .iter()
            .find_map(|c| self.valid_at(&c.card.key_history, signer, time_ms))
            .ok_or_else(|| {
                format!(
                    "signer {} is not a key of {party} valid at {time_ms}",
                    short(signer)
                )
            })
    }

    /// Verifies `s` (signed by a key of `party` valid at `time_ms`) under `tag`.
    fn verify(
        &self,
        party: &str,
        s: Sig<'_>,
        time_ms: i64,
        tag: Tag,
        what: &str,
    ) -> Result<(), String> {
        let key = self
            .at(party, s.signer, time_ms)
            .map_err(|e| format!("{what}: {e}"))?;
        match self.memo {
            Some(memo) => signing::verify_remembered(memo, &key, tag, s.body, s.signature),
            None => signing::verify(&key, tag, s.body, s.signature),
        }
        .map_err(|e| format!("{what} signature by {party}: {e}"))
    }
}

/// Signed bytes, their signature and the key that claims to have made it.
#[derive(Clone, Copy)]
struct Sig<'a> {
    body: &'a [u8],
    signature: &'a [u8],
    signer: &'a [u8],
}

impl<'a> Sig<'a> {
    fn of(s: &'a pb::Signed) -> Self {
        Self {
            body: &s.body,
            signature: &s.signature,
            signer: &s.signer,
        }
    }

    fn entry(e: &'a AuditEntry) -> Self {
        Self {
            body: &e.signed_body,
            signature: &e.signature,
            signer: &e.signer,
        }
    }
}

fn short(key: &[u8]) -> String {
    hex::encode(key.get(..8).unwrap_or(key))
}

/// A checked checkpoint.
struct Checked {
    size: u64,
    root: Hash,
    time_ms: i64,
    sequence: u64,
    previous: Vec<u8>,
    body_hash: Hash,
}

/// Verifies a signed checkpoint of `party` (encoded `Signed` holding a `Checkpoint`).
fn verify_checkpoint(keys: &Keys, party: &str, signed: &pb::Signed) -> Result<Checked, String> {
    let cp: pb::Checkpoint = decode_exact(&signed.body, "checkpoint body")?;
    if cp.country != party {
        return Err(format!(
            "checkpoint is for {:?}, expected {party:?}",
            cp.country
        ));
    }
    let root = hash32(&cp.root_hash, "root hash")?;
    keys.verify(
        party,
        Sig::of(signed),
        cp.time_ms,
        Tag::Checkpoint,
        "checkpoint",
    )?;
    Ok(Checked {
        size: cp.tree_size,
        root,
        time_ms: cp.time_ms,
        sequence: cp.sequence,
        previous: cp.previous,
        body_hash: signing::sha256(&signed.body),
    })
}

/// A hash printed like a fingerprint: lowercase hex in groups of four, colon-separated.
fn grouped(hash: &Hash) -> String {
    let hexed = hex::encode(hash);
    hexed
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a key fingerprint as printed ([`signing::fingerprint`]: 64 lowercase hex digits,
/// in groups of four separated by colons); colons and case are ignored.
pub fn parse_fingerprint(text: &str) -> Result<Hash, String> {
    let hexed: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    hex::decode(&hexed)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
        .ok_or_else(|| format!("{text:?} is not a key fingerprint (64 hex digits)"))
}

/// What verifying a bundle's log yields besides its summary: what a witness check needs.
struct Log {
    country: String,
    history: Vec<pb::KeyRecord>,
    checkpoints: Vec<Checked>,
    /// Leaf hashes of the entries, from index `first`.
    leaves: Vec<Hash>,
    first: u64,
    /// Checkpoints of other nodes this bundle holds (receipts received, `witness` entries):
    /// (their country, the signed checkpoint).
    seen: Vec<(String, pb::Signed)>,
}

/// Verifies a full audit bundle on its own (checks 1 to 5 of the module documentation; a
/// partial bundle fails).
pub fn verify_bundle(bytes: &[u8]) -> Result<Summary, AuditFailure> {
    verify_bundle_with(bytes, &Options::default())
}

/// Verifies an audit bundle with what the auditor knows from outside it (check 6).
pub fn verify_bundle_with(bytes: &[u8], opts: &Options) -> Result<Summary, AuditFailure> {
    let (head, entries) = split_bundle(bytes)?;
    let mut v = Verifier::begin(&head, opts.allow_partial, Keep::for_options(opts))?;
    for (position, e) in entries.iter().enumerate() {
        let checked = v.check(position, e);
        v.accept(checked)?;
    }
    v.finish_with(opts)
}

/// Check 6: the keys the auditor expects, and the witness bundles.
fn check_outside(mut sum: Summary, log: &Log, opts: &Options) -> Result<Summary, AuditFailure> {
    for text in &opts.expect_keys {
        let want = parse_fingerprint(text).or_else(|e| fail(Location::Bundle, e))?;
        if !log
            .history
            .iter()
            .any(|k| signing::sha256(&k.public_key) == want)
        {
            return fail(
                Location::Card,
                format!(
                    "expected key {} is not in the node's key history ({})",
                    grouped(&want),
                    sum.key_fingerprints.join(", ")
                ),
            );
        }
    }
    for (i, other) in opts.witnesses.iter().enumerate() {
        let w = check_witness(log, i, other)?;
        sum.signatures += w.checkpoints as u64;
        sum.witnessed.push(w);
    }
    Ok(sum)
}

/// Check 1 on a bundle in memory: it decodes, canonically; its head and its entries.
fn split_bundle(bytes: &[u8]) -> Result<(BundleHead, Vec<ExportedEntry>), AuditFailure> {
    let bundle: AuditBundle =
        decode_exact(bytes, "audit bundle").or_else(|e| fail(Location::Bundle, e))?;
    let head = BundleHead {
        version: bundle.version,
        country: bundle.country,
        card: bundle.card,
        peer_cards: bundle.peer_cards,
        checkpoints: bundle.checkpoints,
        consistency: bundle.consistency,
    };
    Ok((head, bundle.entries))
}

/// Checks every checkpoint of `log`'s node that the bundle `other` holds against `log`.
fn check_witness(log: &Log, bundle: usize, other: &[u8]) -> Result<Witnessed, AuditFailure> {
    let whole = |what: String| {
        fail(
            Location::Witness {
                bundle,
                tree_size: 0,
            },
            what,
        )
    };
    let (osum, olog) = match verify_log(other, true) {
        Ok(v) => v,
        Err(f) => return whole(format!("does not verify: {f}")),
    };
    if osum.country == log.country {
        return whole(format!(
            "is a bundle of {} itself, not of a witness",
            log.country
        ));
    }
    let keys = Keys::new(log.country.clone(), log.history.clone(), BTreeMap::new());
    let last = log.checkpoints.last().map_or(0, |c| c.size);
    let mut out = Witnessed {
        by: osum.country.clone(),
        ..Default::default()
    };
    for (_, signed) in olog.seen.iter().filter(|(c, _)| *c == log.country) {
        let size = pb::Checkpoint::decode(signed.body.as_slice()).map_or(0, |c| c.tree_size);
        let at = Location::Witness {
            bundle,
            tree_size: size,
        };
        let w = verify_checkpoint(&keys, &log.country, signed).or_else(|e| {
            fail(
                at.clone(),
                format!("not a checkpoint of this bundle's node: {e}"),
            )
        })?;
        if w.size > last {
            return fail(
                at,
                format!(
                    "{} saw this log at tree size {}, beyond this bundle's {last}: the log was cut back or forked",
                    osum.country, w.size
                ),
            );
        }
        let Some(root) = root_at(log, w.size) else {
            return fail(
                at,
                "this partial bundle has neither a checkpoint at that size nor the entries to check it",
            );
        };
        if root != w.root {
            return fail(
                at,
                format!(
                    "{} saw a different root at tree size {}: the log was rewritten or forked",
                    osum.country, w.size
                ),
            );
        }
        out.checkpoints += 1;
        out.largest = out.largest.max(w.size);
    }
    if out.checkpoints == 0 {
        return whole(format!(
            "holds no checkpoint of {} (no receipt from it, no witness entry)",
            log.country
        ));
    }
    Ok(out)
}

/// The root of `log` at tree size `size`: from its checkpoint there, or from its entries when
/// it holds them from the first.
fn root_at(log: &Log, size: u64) -> Option<Hash> {
    if let Some(c) = log.checkpoints.iter().find(|c| c.size == size) {
        Some(c.root)
    } else if log.first == 0 && size <= log.leaves.len() as u64 {
        Some(merkle::root(&log.leaves[..size as usize]))
    } else {
        None
    }
}

/// Checks 1 to 5 of the module documentation, keeping what a witness check needs.
fn verify_log(bytes: &[u8], allow_partial: bool) -> Result<(Summary, Log), AuditFailure> {
    let (head, entries) = split_bundle(bytes)?;
    let keep = Keep {
        leaves: false,
        seen: true,
    };
    let mut v = Verifier::begin(&head, allow_partial, keep)?;
    for (position, e) in entries.iter().enumerate() {
        let checked = v.check(position, e);
        v.accept(checked)?;
    }
    v.finish()
}

/// Step 2, the exporting node's own card.
fn verify_own_card(bundle: &BundleHead, sum: &mut Summary) -> Result<VerifiedCard, AuditFailure> {
    let own = verify_card_exact(&bundle.card).or_else(|e| fail(Location::Card, e))?;
    if own.country() != bundle.country {
        return fail(
            Location::Card,
            format!(
                "card is for {:?}, the bundle for {:?}",
                own.country(),
                bundle.country
            ),
        );
    }
    sum.name = own.card.name.clone();
    sum.keys = own.card.key_history.len();
    sum.key_fingerprints = fingerprints(&own.card.key_history);
    sum.signatures += 1 + endorsements(&own.card.key_history);
    Ok(own)
}

/// The peers' cards of a bundle, by country.
type PeerCards = BTreeMap<String, Vec<VerifiedCard>>;

/// Step 2, the peers' cards: each verified, grouped by country; the breaks in a country's key
/// history are returned to be matched against the operator's logged `peer add`s (step 4).
fn verify_peer_cards(
    bundle: &BundleHead,
    sum: &mut Summary,
) -> Result<(PeerCards, Vec<CardBreak>), AuditFailure> {
    let mut peers: BTreeMap<String, Vec<VerifiedCard>> = BTreeMap::new();
    let mut positions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, raw) in bundle.peer_cards.iter().enumerate() {
        let c = verify_card_exact(raw).or_else(|e| fail(Location::PeerCard(i), e))?;
        if c.country() == bundle.country {
            return fail(
                Location::PeerCard(i),
                "a peer card of the exporting node itself",
            );
        }
        sum.signatures += 1 + endorsements(&c.card.key_history);
        positions
            .entry(c.country().to_string())
            .or_default()
            .push(i);
        peers.entry(c.country().to_string()).or_default().push(c);
    }
    let mut breaks: Vec<CardBreak> = Vec::new();
    for (country, cards) in &peers {
        breaks.extend(card_breaks(country, cards, &positions[country])?);
        let latest = (0..cards.len())
            .max_by_key(|&k| (cards[k].card.issued_ms, cards[k].card.key_history.len()));
        if let Some(latest) = latest {
            sum.peer_keys.insert(
                country.clone(),
                fingerprints(&cards[latest].card.key_history),
            );
        }
    }
    sum.peers = peers.keys().cloned().collect();
    Ok((peers, breaks))
}

/// Each later card of a peer (by its signed issue time) keeps every key of the earlier ones:
/// a card with an unrelated key history cannot be slipped in beside the real one, unless the
/// log records the operator pinning exactly that card (`peer add`, or `peer add --replace`,
/// whose audit entry names the card's SHA-256). `positions[k]` is where `cards[k]` is in the
/// bundle.
fn card_breaks(
    country: &str,
    cards: &[VerifiedCard],
    positions: &[usize],
) -> Result<Vec<CardBreak>, AuditFailure> {
    // One identity = one key history, named by its first key; rotations extend it.
    let mut identities: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (k, c) in cards.iter().enumerate() {
        let first = c
            .card
            .key_history
            .first()
            .map_or(&[][..], |r| &r.public_key[..]);
        identities.entry(first).or_default().push(k);
    }
    let mut breaks = vec![];
    for members in identities.values() {
        let mut order = members.clone();
        order.sort_by_key(|&k| (cards[k].card.issued_ms, cards[k].card.key_history.len()));
        for pair in order.windows(2) {
            let (a, b) = (&cards[pair[0]].card, &cards[pair[1]].card);
            let extends = b.key_history.len() >= a.key_history.len()
                && a.key_history.iter().zip(&b.key_history).all(|(x, y)| {
                    x.public_key == y.public_key && x.valid_from_ms == y.valid_from_ms
                });
            if !extends {
                return fail(
                    Location::PeerCard(positions[pair[1]]),
                    format!(
                        "this card of {country} (issued {}) does not extend the key history of its card issued {}",
                        b.issued_ms, a.issued_ms
                    ),
                );
            }
        }
        if identities.len() > 1 {
            // Several identities for one country: each must have been pinned by the
            // operator's explicit, logged act (checked after the entries, step 4).
            breaks.push(CardBreak {
                country: country.to_string(),
                position: positions[order[0]],
                cards_sha256: members
                    .iter()
                    .map(|&k| hex::encode(crate::signing::sha256(&cards[k].raw)))
                    .collect(),
                identities: identities.len(),
            });
        }
    }
    Ok(breaks)
}

/// Step 3: every checkpoint verifies, grows, and is chained to the one before; consecutive
/// checkpoints are proven consistent.
fn verify_checkpoints(
    bundle: &BundleHead,
    keys: &Keys,
    sum: &mut Summary,
) -> Result<Vec<Checked>, AuditFailure> {
    let mut cps: Vec<Checked> = Vec::with_capacity(bundle.checkpoints.len());
    for (position, raw) in bundle.checkpoints.iter().enumerate() {
        let at = |tree_size| Location::Checkpoint {
            position,
            tree_size,
        };
        let signed: pb::Signed =
            decode_exact(raw, "signed checkpoint").or_else(|e| fail(at(0), e))?;
        let size = pb::Checkpoint::decode(signed.body.as_slice())
            .map(|c| c.tree_size)
            .unwrap_or(0);
        let c = verify_checkpoint(keys, &bundle.country, &signed).or_else(|e| fail(at(size), e))?;
        check_chain(&cps, position, &c, sum).or_else(|e| fail(at(c.size), e))?;
        sum.signatures += 1;
        cps.push(c);
    }
    let expected = cps.len().saturating_sub(1);
    if bundle.consistency.len() != expected {
        return fail(
            Location::Bundle,
            format!(
                "{} consistency proofs for {} checkpoints (expected {expected})",
                bundle.consistency.len(),
                cps.len()
            ),
        );
    }
    for (pair, proof) in cps.windows(2).zip(&bundle.consistency) {
        let (a, b) = (&pair[0], &pair[1]);
        let at = Location::Consistency {
            first: a.size,
            second: b.size,
        };
        let proof = hashes(&proof.hashes, "proof hash").or_else(|e| fail(at.clone(), e))?;
        merkle::verify_consistency(a.size, b.size, &a.root, &b.root, &proof)
            .or_else(|e| fail(at, format!("log is not append-only: {e}")))?;
    }
    sum.checkpoints = cps.len();
    Ok(cps)
}

/// The checkpoint `c` at `position` after `before`: its tree size grows, and the chain holds
/// (legacy, unchained checkpoints may only come first; every chained one is the
/// (position + 1)-th the node signed and names the hash of the one before).
fn check_chain(
    before: &[Checked],
    position: usize,
    c: &Checked,
    sum: &mut Summary,
) -> Result<(), String> {
    if let Some(prev) = before.last() {
        if c.size <= prev.size {
            return Err(format!("tree size does not grow (previous {})", prev.size));
        }
    }
    if c.sequence == 0 {
        if before.iter().any(|p| p.sequence != 0) {
            return Err("an unchained checkpoint after chained ones".into());
        }
        sum.legacy_checkpoints += 1;
        return Ok(());
    }
    let want = position as u64 + 1;
    if c.sequence != want {
        return Err(format!(
            "sequence number {} where {want} was expected: a checkpoint is missing or out of place",
            c.sequence
        ));
    }
    let previous = before
        .last()
        .map(|p| p.body_hash.to_vec())
        .unwrap_or_default();
    if c.previous != previous {
        return Err(
            "does not name the hash of the checkpoint before it: a checkpoint is missing or was replaced"
                .into(),
        );
    }
    Ok(())
}

/// Entry `index` comes right after `prev` (if any).
fn check_consecutive(prev: Option<u64>, index: u64) -> Result<(), String> {
    match prev {
        Some(p) if index <= p => Err("entries are not in strictly ascending index order".into()),
        Some(p) if index != p + 1 => Err(format!(
            "entries {}..={} are missing: a bundle holds consecutive indices",
            p + 1,
            index - 1
        )),
        _ => Ok(()),
    }
}

/// Counts a verified entry in the summary.
fn count_entry(entry: &AuditEntry, sum: &mut Summary) {
    sum.entries += 1;
    *sum.kinds.entry(entry.kind.clone()).or_default() += 1;
    sum.first_ms.get_or_insert(entry.time_ms);
    sum.last_ms = Some(entry.time_ms);
    sum.first_index.get_or_insert(entry.index);
    sum.last_index = Some(entry.index);
    if entry.kind == EXPORT_KIND {
        sum.exported_ms = Some(entry.time_ms);
    }
}

/// Every break in a country's key history is a card the operator pinned, by a logged act.
fn check_card_breaks(
    breaks: &[CardBreak],
    pinned_by_operator: &std::collections::BTreeSet<(String, String)>,
    allow_partial: bool,
    sum: &mut Summary,
) -> Result<(), AuditFailure> {
    for b in breaks {
        let pinned = b
            .cards_sha256
            .iter()
            .any(|h| pinned_by_operator.contains(&(b.country.clone(), h.clone())));
        if !pinned {
            return fail(
                Location::PeerCard(b.position),
                format!(
                    "the bundle holds {} unrelated key histories for {}, and no operator's `peer add` of a card of this one (SHA-256 {}) is in the log{}",
                    b.identities,
                    b.country,
                    b.cards_sha256.join(", "),
                    if allow_partial { " (a partial bundle may not hold it: export the whole log)" } else { "" }
                ),
            );
        }
    }
    // Each country's identities beyond its first are replacements.
    let countries: std::collections::BTreeSet<&str> =
        breaks.iter().map(|b| b.country.as_str()).collect();
    sum.replaced_cards = breaks.len() - countries.len();
    Ok(())
}

/// Step 5: whether the bundle is the whole log at export time; refused when it is not and
/// `allow_partial` is false. Returns the first index held.
fn check_coverage(sum: &mut Summary, allow_partial: bool) -> Result<u64, AuditFailure> {
    let n = sum.tree_size;
    let (Some(first), Some(last_index)) = (sum.first_index, sum.last_index) else {
        return fail(
            Location::Bundle,
            format!("the bundle holds no entries of a log of {n}"),
        );
    };
    sum.coverage = if first == 0 && last_index + 1 == n && sum.exported_ms.is_some() {
        Coverage::Complete
    } else {
        Coverage::Partial {
            first,
            last: last_index,
            of: n,
        }
    };
    if matches!(sum.coverage, Coverage::Partial { .. }) {
        // An export record in a partial bundle is an earlier export's, not this one's.
        sum.exported_ms = None;
    }
    if !allow_partial {
        if let Coverage::Partial { first, last, of } = sum.coverage {
            let why = if first == 0 && last + 1 == of {
                "no export record: it cannot show that it is the whole log at export time (exported by an older node, or cut back)".to_string()
            } else {
                format!("it holds indices {first}..={last} of a log of {of}, not every index")
            };
            return fail(
                Location::Bundle,
                format!("not a complete bundle: {why} (a --from/--to export is verified with --partial)"),
            );
        }
    }
    Ok(first)
}

/// The checkpoints of another node an entry holds: the one in a receipt received, the one a
/// `witness` entry kept as evidence.
fn checkpoints_seen(e: &AuditEntry) -> Option<(String, pb::Signed)> {
    match AuditKind::parse(&e.kind)? {
        AuditKind::ReceiptReceived => pb::Receipt::decode(e.signed_body.as_slice())
            .ok()
            .and_then(|r| r.checkpoint)
            .map(|c| (e.peer.clone(), c)),
        AuditKind::Witness if !e.signed_body.is_empty() => Some((
            e.peer.clone(),
            pb::Signed {
                body: e.signed_body.clone(),
                signature: e.signature.clone(),
                signer: e.signer.clone(),
            },
        )),
        _ => None,
    }
}

fn fingerprints(history: &[pb::KeyRecord]) -> Vec<String> {
    history
        .iter()
        .map(|k| signing::fingerprint(&k.public_key))
        .collect()
}

/// Checks one would-be log entry exactly as [`verify_bundle`] checks each entry of a bundle
/// (the same per-kind check: signatures by the right party's key valid at the signed object's
/// time, canonical checkpoints, envelope hashes, message ids and parties), against the
/// exporting node's `country` and key history `own` and the cards of its peers.
///
/// A node runs it on every answer before logging it, so that nothing it logs can later make
/// `audit verify` fail; a peer card given here is one a bundle of that node includes. Returns
/// the number of signatures checked. A signature `memo` remembers as verified (the same bytes
/// under the same key) is not verified again.
pub fn check_log_entry(
    country: &str,
    own: &[pb::KeyRecord],
    peer_cards: &[VerifiedCard],
    entry: &AuditEntry,
    memo: Option<&dyn VerifyMemo>,
) -> Result<u64, String> {
    let mut peers: BTreeMap<String, Vec<VerifiedCard>> = BTreeMap::new();
    for c in peer_cards {
        if c.country() == country {
            return Err("a peer card of the node itself".into());
        }
        peers
            .entry(c.country().to_string())
            .or_default()
            .push(c.clone());
    }
    let mut keys = Keys::new(country.to_string(), own.to_vec(), peers);
    keys.memo = memo;
    check_entry(&keys, entry, &mut Summary::default())
}

fn verify_card_exact(raw: &[u8]) -> Result<VerifiedCard, String> {
    decode_exact::<pb::Signed>(raw, "card")?;
    card::verify_card(raw).map_err(|e| e.to_string())
}

fn endorsements(history: &[pb::KeyRecord]) -> u64 {
    history.len().saturating_sub(1) as u64
}

/// The payload kind's name, as nodes log it.
pub fn payload_kind(body: &pb::Body) -> &'static str {
    match &body.payload {
        Some(Payload::Referral(_)) => "referral",
        Some(Payload::Acceptance(_)) => "acceptance",
        Some(Payload::Decline(_)) => "decline",
        Some(Payload::FollowUp(_)) => "follow_up",
        Some(Payload::InformationRequest(_)) => "information_request",
        Some(Payload::Disclosure(_)) => "disclosure",
        Some(Payload::ErasureRequest(_)) => "erasure_request",
        Some(Payload::ErasureConfirmation(_)) => "erasure_confirmation",
        Some(Payload::DirectoryUpdate(_)) => "directory_update",
        Some(Payload::Closure(_)) => "closure",
        Some(Payload::KeyAnnouncement(_)) => "key_announcement",
        None => "empty",
    }
}

/// Checks what one entry carries; returns the number of signatures checked.
fn check_entry(keys: &Keys, e: &AuditEntry, sum: &mut Summary) -> Result<u64, String> {
    let peer = e.peer.as_str();
    let Some(kind) = AuditKind::parse(&e.kind) else {
        return unsigned_only(e);
    };
    match kind {
        AuditKind::Sent | AuditKind::Received => check_envelope(keys, e, kind, sum),
        AuditKind::ReceiptSent | AuditKind::ReceiptReceived => check_receipt(keys, e, kind),
        AuditKind::RejectionSent | AuditKind::RejectionReceived => check_rejection(keys, e, kind),
        AuditKind::Key => check_key_endorsement(keys, e),
        AuditKind::Witness => {
            // A peer's checkpoint that contradicted what it had shown before: kept as evidence.
            let signed = pb::Signed {
                body: e.signed_body.clone(),
                signature: e.signature.clone(),
                signer: e.signer.clone(),
            };
            verify_checkpoint(keys, peer, &signed)
                .map_err(|err| format!("witnessed checkpoint: {err}"))?;
            Ok(1)
        }
        AuditKind::PeerHeld
        | AuditKind::Export
        | AuditKind::Admin
        | AuditKind::Erasure
        | AuditKind::Restore => unsigned_only(e),
    }
}

/// A `sent` or `received` entry: the envelope it holds is the one it names, between the
/// parties it names, signed by the sender's key valid at its creation.
fn check_envelope(
    keys: &Keys,
    e: &AuditEntry,
    kind: AuditKind,
    sum: &mut Summary,
) -> Result<u64, String> {
    let (own, peer) = (keys.country.as_str(), e.peer.as_str());
    let sent = kind == AuditKind::Sent;
    let body = pb::Body::decode(e.signed_body.as_slice())
        .map_err(|_| "envelope body does not decode".to_string())?;
    if signing::envelope_hash(&e.signed_body, &e.signature).as_slice() != e.envelope_hash {
        return Err("envelope hash does not match the body and signature".into());
    }
    if body.message_id != e.message_id {
        return Err("message id does not match the envelope body".into());
    }
    let (from, to) = if sent { (own, peer) } else { (peer, own) };
    if body.sender != from || body.recipient != to {
        return Err(format!(
            "envelope is from {:?} to {:?}, the entry says {from:?} to {to:?}",
            body.sender, body.recipient
        ));
    }
    keys.verify(
        from,
        Sig::entry(e),
        body.created_ms,
        Tag::Envelope,
        "envelope",
    )?;
    let direction = if sent { "sent" } else { "received" };
    *sum.messages
        .entry((
            peer.to_string(),
            direction.to_string(),
            payload_kind(&body).to_string(),
        ))
        .or_default() += 1;
    Ok(1)
}

/// A receipt sent or received: it names the entry's message, is by the receiver for the
/// sender, signed by the receiver's key; the checkpoint it carries verifies too.
fn check_receipt(keys: &Keys, e: &AuditEntry, kind: AuditKind) -> Result<u64, String> {
    let (own, peer) = (keys.country.as_str(), e.peer.as_str());
    let r = pb::Receipt::decode(e.signed_body.as_slice())
        .map_err(|_| "receipt does not decode".to_string())?;
    let (receiver, sender) = if kind == AuditKind::ReceiptSent {
        (own, peer)
    } else {
        (peer, own)
    };
    if r.message_id != e.message_id || r.envelope_hash != e.envelope_hash {
        return Err("receipt names another message or envelope hash".into());
    }
    if r.receiver != receiver || r.sender != sender {
        return Err(format!(
            "receipt is by {:?} for {:?}, the entry says by {receiver:?} for {sender:?}",
            r.receiver, r.sender
        ));
    }
    keys.verify(
        receiver,
        Sig::entry(e),
        r.received_ms,
        Tag::Receipt,
        "receipt",
    )?;
    let mut n = 1;
    if let Some(cp) = &r.checkpoint {
        verify_checkpoint(keys, receiver, cp)
            .map_err(|err| format!("checkpoint in the receipt: {err}"))?;
        n += 1;
    }
    Ok(n)
}

/// A rejection sent or received: it names the entry's message, is by the rejecter for the
/// sender, signed by the rejecter's key.
fn check_rejection(keys: &Keys, e: &AuditEntry, kind: AuditKind) -> Result<u64, String> {
    let (own, peer) = (keys.country.as_str(), e.peer.as_str());
    let r = pb::Rejection::decode(e.signed_body.as_slice())
        .map_err(|_| "rejection does not decode".to_string())?;
    let (rejecter, sender) = if kind == AuditKind::RejectionSent {
        (own, peer)
    } else {
        (peer, own)
    };
    if r.message_id != e.message_id || r.envelope_hash != e.envelope_hash {
        return Err("rejection names another message or envelope hash".into());
    }
    if r.rejecter != rejecter || r.sender != sender {
        return Err(format!(
            "rejection is by {:?} for {:?}, the entry says by {rejecter:?} for {sender:?}",
            r.rejecter, r.sender
        ));
    }
    keys.verify(
        rejecter,
        Sig::entry(e),
        r.rejected_ms,
        Tag::Rejection,
        "rejection",
    )?;
    Ok(1)
}

/// A `key` entry (a rotation): the previous key's endorsement of the new one, as in the key
/// history.
fn check_key_endorsement(keys: &Keys, e: &AuditEntry) -> Result<u64, String> {
    // A rotation: the previous key's endorsement of the new one.
    let history = &keys.own;
    let pos = history
        .iter()
        .position(|k| k.public_key.as_slice() == e.signed_body.get(..32).unwrap_or_default())
        .filter(|&i| i > 0)
        .ok_or("the endorsed key is not a later key of the node's history")?;
    let rec = &history[pos];
    let open = pb::KeyRecord {
        valid_until_ms: 0,
        ..rec.clone()
    };
    if e.signed_body != card::key_endorsement_bytes(rec)
        && e.signed_body != card::key_endorsement_bytes(&open)
    {
        return Err("endorsed bytes do not match the key history".into());
    }
    if e.signer != history[pos - 1].public_key || e.signature != rec.endorsement {
        return Err("endorsement does not match the key history".into());
    }
    signing::verify_with_bytes(&e.signer, Tag::Key, &e.signed_body, &e.signature)
        .map_err(|err| format!("key endorsement: {err}"))?;
    Ok(1)
}

/// An entry of a kind that carries no signature (or of a kind this version does not know):
/// accepted only when it carries none.
fn unsigned_only(e: &AuditEntry) -> Result<u64, String> {
    if e.signature.is_empty() && e.signed_body.is_empty() && e.signer.is_empty() {
        Ok(0)
    } else {
        Err(format!(
            "entry of kind {:?} carries a signature this verifier cannot check",
            e.kind
        ))
    }
}

/// One of several unrelated key histories (identities) of one peer in a bundle.
struct CardBreak {
    country: String,
    /// Position in `peer_cards` of the identity's earliest card.
    position: usize,
    /// SHA-256 (hex) of each card file of this identity.
    cards_sha256: Vec<String>,
    /// How many identities the country has in the bundle.
    identities: usize,
}

/// The audit target of an operator's successful `peer add` / `peer add --replace`:
/// `CC card HEX` or `CC (replace) card HEX`, HEX the SHA-256 of the card file
/// (docs/PROTOCOL.md §9.1). Returns (country, hex).
pub fn operator_pinned_card(e: &AuditEntry) -> Option<(String, String)> {
    if e.kind != AuditKind::Admin.as_str()
        || !(e.call == "peer add" || e.call == "peer add --replace")
        || e.result != "ok"
    {
        return None;
    }
    let (head, hash) = e.target.rsplit_once(" card ")?;
    let country = head.strip_suffix(" (replace)").unwrap_or(head);
    let well_formed = country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| (country.to_string(), hash.to_string()))
}

/// The audit target the node writes for a `peer add` of `card` (see
/// [`operator_pinned_card`]).
pub fn peer_add_target(country: &str, card: &[u8], replace: bool) -> String {
    format!(
        "{country}{} card {}",
        if replace { " (replace)" } else { "" },
        hex::encode(crate::signing::sha256(card))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auditpb::{ExportedEntry, Proof};
    use ed25519_dalek::SigningKey;
    use rand::rngs::OsRng;

    struct Party {
        key: SigningKey,
        card: Vec<u8>,
        country: &'static str,
    }

    fn party(country: &'static str) -> Party {
        let key = SigningKey::generate(&mut OsRng);
        let pk = key.verifying_key().to_bytes().to_vec();
        let c = pb::Card {
            version: 1,
            country: country.into(),
            name: format!("{country} test unit"),
            addresses: vec!["127.0.0.1:1".into()],
            tls_cert_der: vec![1],
            signing_key: pk.clone(),
            acceptance: vec![1],
            valid_from_ms: 0,
            valid_until_ms: 1 << 50,
            key_history: vec![pb::KeyRecord {
                public_key: pk,
                valid_from_ms: 0,
                ..Default::default()
            }],
            issued_ms: 0,
        };
        Party {
            card: card::sign_card(&c, &key),
            key,
            country,
        }
    }

    fn signed(p: &Party, tag: Tag, body: Vec<u8>) -> pb::Signed {
        pb::Signed {
            signature: signing::sign(&p.key, tag, &body).to_vec(),
            signer: p.key.verifying_key().to_bytes().to_vec(),
            body,
        }
    }

    /// A small log of `IT` with one exchange with `AL`, and its bundle.
    fn small_bundle() -> Vec<u8> {
        small_bundle_with([1, 2])
    }

    /// [`small_bundle`] with the two checkpoints' sequence numbers (0 = legacy, unchained).
    fn small_bundle_with(sequences: [u64; 2]) -> Vec<u8> {
        let (it, al) = (party("IT"), party("AL"));
        let body = pb::Body {
            version: 1,
            message_id: vec![7; 16],
            sender: "IT".into(),
            recipient: "AL".into(),
            created_ms: 1000,
            case_ref: "IT-TEST-1".into(),
            payload: Some(Payload::Referral(pb::Referral {
                digests: vec![vec![1; 32]],
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec();
        let sig = signing::sign(&it.key, Tag::Envelope, &body);
        let hash = signing::envelope_hash(&body, &sig).to_vec();
        let sent = AuditEntry {
            index: 0,
            time_ms: 1000,
            kind: "sent".into(),
            peer: "AL".into(),
            message_id: vec![7; 16],
            envelope_hash: hash.clone(),
            signature: sig.to_vec(),
            signed_body: body,
            signer: it.key.verifying_key().to_bytes().to_vec(),
            call: "referral".into(),
            ..Default::default()
        };
        let al_cp = signed(
            &al,
            Tag::Checkpoint,
            pb::Checkpoint {
                country: "AL".into(),
                tree_size: 3,
                root_hash: vec![9; 32],
                time_ms: 1001,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let receipt = signed(
            &al,
            Tag::Receipt,
            pb::Receipt {
                message_id: vec![7; 16],
                envelope_hash: hash.clone(),
                receiver: "AL".into(),
                sender: "IT".into(),
                received_ms: 1002,
                outcome: 1,
                checkpoint: Some(al_cp),
            }
            .encode_to_vec(),
        );
        let got = AuditEntry {
            index: 1,
            time_ms: 1003,
            kind: "receipt_received".into(),
            peer: "AL".into(),
            message_id: vec![7; 16],
            envelope_hash: hash,
            signature: receipt.signature,
            signed_body: receipt.body,
            signer: receipt.signer,
            ..Default::default()
        };
        let admin = AuditEntry {
            index: 2,
            time_ms: 1004,
            kind: "admin".into(),
            officer: "Officer Example".into(),
            role: "officer".into(),
            call: "referral send".into(),
            result: "ok".into(),
            ..Default::default()
        };
        let export = AuditEntry {
            index: 3,
            time_ms: 1005,
            kind: EXPORT_KIND.into(),
            officer: "Auditor Example".into(),
            role: "auditor".into(),
            call: "audit export".into(),
            ..Default::default()
        };
        let leaves: Vec<Vec<u8>> = [sent, got, admin, export]
            .iter()
            .map(|e| e.encode_to_vec())
            .collect();
        let mut log = merkle::MerkleLog::new();
        for l in &leaves {
            log.push(merkle::leaf_hash(l));
        }
        let mut previous = Vec::new();
        let mut cp = |size: u64, sequence: u64| {
            let body = pb::Checkpoint {
                country: "IT".into(),
                tree_size: size,
                root_hash: log.root_at(size).unwrap().to_vec(),
                time_ms: 1000 + size as i64,
                sequence,
                previous: if sequence > 1 {
                    previous.clone()
                } else {
                    Vec::new()
                },
            }
            .encode_to_vec();
            previous = signing::sha256(&body).to_vec();
            signed(&it, Tag::Checkpoint, body).encode_to_vec()
        };
        let checkpoints = vec![cp(1, sequences[0]), cp(4, sequences[1])];
        let proof = |h: Vec<Hash>| h.into_iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        AuditBundle {
            version: 1,
            country: it.country.into(),
            card: it.card.clone(),
            peer_cards: vec![al.card.clone()],
            entries: leaves
                .iter()
                .enumerate()
                .map(|(i, l)| ExportedEntry {
                    entry: l.clone(),
                    inclusion: proof(log.inclusion_proof(i as u64, 4).unwrap()),
                })
                .collect(),
            checkpoints,
            consistency: vec![Proof {
                hashes: proof(log.consistency_proof(1, 4).unwrap()),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn a_valid_bundle_verifies_with_its_summary() {
        let s = verify_bundle(&small_bundle()).expect("verifies");
        assert_eq!(s.country, "IT");
        assert_eq!(s.entries, 4);
        assert_eq!(s.tree_size, 4);
        assert_eq!(s.checkpoints, 2);
        assert_eq!(s.coverage, Coverage::Complete);
        assert_eq!(s.exported_ms, Some(1005));
        assert_eq!(s.key_fingerprints.len(), 1);
        assert_eq!(s.peer_keys["AL"].len(), 1);
        assert_eq!(s.kinds.get("admin"), Some(&1));
        assert_eq!(
            s.messages
                .get(&("AL".into(), "sent".into(), "referral".into())),
            Some(&1)
        );
        assert_eq!((s.first_ms, s.last_ms), (Some(1000), Some(1005)));
    }

    #[test]
    fn legacy_checkpoints_verify_only_before_chained_ones() {
        // Old checkpoints (sequence 0) first, then the chain continues from them: verifies,
        // and the summary says how many are legacy.
        let s = verify_bundle(&small_bundle_with([0, 2])).expect("legacy then chained");
        assert_eq!(s.legacy_checkpoints, 1);
        let s = verify_bundle(&small_bundle_with([0, 0])).expect("all legacy");
        assert_eq!(s.legacy_checkpoints, 2);
        // A legacy checkpoint after a chained one, or a chain that skips a number, fails.
        let f = verify_bundle(&small_bundle_with([1, 0])).unwrap_err();
        assert!(f.what.contains("unchained"), "{f}");
        let f = verify_bundle(&small_bundle_with([1, 3])).unwrap_err();
        assert!(f.what.contains("sequence number 3"), "{f}");
    }

    #[test]
    fn every_changed_byte_of_a_bundle_fails() {
        let b = small_bundle();
        for i in 0..b.len() {
            for flip in [0x01u8, 0x80] {
                let mut bad = b.clone();
                bad[i] ^= flip;
                assert!(
                    verify_bundle(&bad).is_err(),
                    "byte {i} of {} flipped with {flip:#x} still verifies",
                    b.len()
                );
            }
        }
    }

    fn edit(f: impl FnOnce(&mut AuditBundle)) -> AuditFailure {
        let mut b = AuditBundle::decode(small_bundle().as_slice()).unwrap();
        f(&mut b);
        verify_bundle(&b.encode_to_vec()).expect_err("must fail")
    }

    fn edit_entry(i: usize, f: impl FnOnce(&mut AuditEntry)) -> AuditFailure {
        edit(|b| {
            let mut e = AuditEntry::decode(b.entries[i].entry.as_slice()).unwrap();
            f(&mut e);
            b.entries[i].entry = e.encode_to_vec();
        })
    }

    #[test]
    fn tampering_is_named() {
        let f = edit_entry(2, |e| e.officer = "Someone Else".into());
        assert_eq!(f.location, Location::Entry(2));
        assert!(f.what.contains("not included"), "{f}");

        let f = edit(|b| b.entries[0].entry = vec![0xff]);
        assert_eq!(f.location, Location::EntryAt(0), "{f}");

        // Swapped checkpoints: the first one is out of its place in the chain.
        let f = edit(|b| b.checkpoints.swap(0, 1));
        assert!(
            matches!(f.location, Location::Checkpoint { position: 0, .. }),
            "{f}"
        );

        let f = edit(|b| b.consistency[0].hashes[0][0] ^= 1);
        assert_eq!(
            f.location,
            Location::Consistency {
                first: 1,
                second: 4
            }
        );

        let f = edit(|b| b.peer_cards.clear());
        assert_eq!(f.location, Location::Entry(1));
        assert!(f.what.contains("no identity card for peer"), "{f}");

        // A key history with a key the node never endorsed.
        let f = edit(|b| {
            let mut s = pb::Signed::decode(b.card.as_slice()).unwrap();
            let mut c = pb::Card::decode(s.body.as_slice()).unwrap();
            c.key_history[0].valid_from_ms = 5000;
            s.body = c.encode_to_vec();
            b.card = s.encode_to_vec();
        });
        assert_eq!(f.location, Location::Card, "{f}");

        // A re-signed entry with a signature by the wrong party fails its signature check,
        // not only its inclusion: checked by verify_bundle's order (inclusion first).
        let f = edit(|b| b.version = 2);
        assert_eq!(f.location, Location::Bundle);
    }

    #[test]
    fn audit_kinds_are_the_strings_on_disk() {
        let written: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            written,
            [
                "sent",
                "received",
                "receipt_sent",
                "receipt_received",
                "rejection_sent",
                "rejection_received",
                "key",
                "witness",
                "peer_held",
                "export",
                "admin",
                "erasure",
                "restore",
            ]
        );
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        for unknown in ["", "Sent", "sent ", "receipt", "peer-held"] {
            assert_eq!(AuditKind::parse(unknown), None, "{unknown:?}");
        }
        assert_eq!(EXPORT_KIND, "export");
    }

    #[test]
    fn a_single_entry_is_checked_as_in_a_bundle() {
        let b = AuditBundle::decode(small_bundle().as_slice()).unwrap();
        let own = card::verify_card(&b.card).unwrap().card.key_history;
        let al = card::verify_card(&b.peer_cards[0]).unwrap();
        let receipt = AuditEntry::decode(b.entries[1].entry.as_slice()).unwrap();
        let check =
            |e: &AuditEntry| check_log_entry("IT", &own, std::slice::from_ref(&al), e, None);
        assert_eq!(check(&receipt), Ok(2), "receipt and its checkpoint");
        // Without the peer's card, or with another message id, it fails.
        assert!(check_log_entry("IT", &own, &[], &receipt, None).is_err());
        let mut e = receipt.clone();
        e.message_id.clear();
        assert!(check(&e).unwrap_err().contains("another message"));
        // A witness entry must carry a valid checkpoint of the peer.
        let witness = AuditEntry {
            kind: "witness".into(),
            peer: "AL".into(),
            ..Default::default()
        };
        assert!(check(&witness).is_err());
        let r = pb::Receipt::decode(receipt.signed_body.as_slice()).unwrap();
        let cp = r.checkpoint.unwrap();
        let witness = AuditEntry {
            signed_body: cp.body.clone(),
            signature: cp.signature.clone(),
            signer: cp.signer.clone(),
            ..witness
        };
        assert_eq!(check(&witness), Ok(1));
        // ... in canonical encoding.
        let mut long = witness.clone();
        long.signed_body.extend_from_slice(&[0x7a, 0x00]);
        assert!(check(&long).unwrap_err().contains("canonical"));
        // An unsigned entry of another kind passes; a card of the node itself is refused.
        let held = AuditEntry {
            kind: "peer_held".into(),
            peer: "AL".into(),
            ..Default::default()
        };
        assert_eq!(check(&held), Ok(0));
        // So does an unsigned entry of a kind this version does not know; signed, it fails.
        let future = AuditEntry {
            kind: "from_a_later_version".into(),
            ..held.clone()
        };
        assert_eq!(check(&future), Ok(0));
        let signed_future = AuditEntry {
            signature: vec![1; 64],
            ..future
        };
        let err = check(&signed_future).unwrap_err();
        assert!(
            err.contains("\"from_a_later_version\" carries a signature"),
            "{err}"
        );
        let signed_held = AuditEntry {
            signer: vec![1; 32],
            ..held.clone()
        };
        assert!(check(&signed_held).unwrap_err().contains("\"peer_held\""));
        let me = card::verify_card(&b.card).unwrap();
        assert!(check_log_entry("IT", &own, &[me], &held, None).is_err());
    }

    #[test]
    fn an_entry_with_a_bad_signature_is_named_by_its_check() {
        // Inclusion is checked first, so a bundle can only reach the signature check with a
        // leaf the node itself logged; check the entry check on its own.
        let b = AuditBundle::decode(small_bundle().as_slice()).unwrap();
        let mut e = AuditEntry::decode(b.entries[0].entry.as_slice()).unwrap();
        let own = card::verify_card(&b.card).unwrap().card.key_history;
        let keys = Keys::new("IT".into(), own.clone(), BTreeMap::new());
        assert_eq!(check_entry(&keys, &e, &mut Summary::default()), Ok(1));
        e.signature[0] ^= 1;
        let err = check_entry(&keys, &e, &mut Summary::default()).unwrap_err();
        assert!(err.contains("envelope hash"), "{err}");
        e.envelope_hash = signing::envelope_hash(&e.signed_body, &e.signature).to_vec();
        let err = check_entry(&keys, &e, &mut Summary::default()).unwrap_err();
        assert!(err.contains("envelope signature"), "{err}");
    }
}
