//! The node's durable state, in one sled database. This is the only module that names sled.
//!
//! All writes go through one committer thread: it takes every pending [`Job`], applies them
//! in a single sled transaction, flushes once, and only then answers each job. A job is
//! therefore acknowledged only when it is on disk, writes of one job are atomic, and under
//! load many jobs share one fsync (group commit). Audit entries get their log index from the
//! committer, so the log has no gaps and its order is the commit order.
//!
//! Reads go straight to sled and see only committed state.
//!
//! The audit entries are the leaves of an RFC 9162 Merkle tree (leaf = the encoded entry,
//! exactly as stored). Its perfect subtree roots are stored beside the entries in the same
//! transaction ([`tree`]); the committer extends the in-memory frontier after each flush. At
//! open, after a clean shutdown whose record matches the store's head, only the head and the
//! entries after the last checkpoint are checked ([`OpenCheck::Fast`]; the rest is
//! [`Store::full_check`], run in the background by the node); otherwise every entry is
//! rehashed and checked against its stored nodes and every signed checkpoint kept in the
//! store, so a shortened or altered log refuses to open. A failed write is sticky: the store
//! refuses every later write until the node restarts, so nothing is processed unlogged.

pub mod casedata;
mod received;
pub mod tree;
pub mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use tokio::sync::{mpsc, oneshot, watch};
use trm_proto::merkle::{self, CompactTree, Hash};

pub use tree::{CleanShutdown, CLEAN_SHUTDOWN};

pub use crate::base::vocab::{ThreadRole, ThreadState};

/// Current schema version of the store.
pub const SCHEMA_VERSION: u32 = 2;

/// Why the store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported corruption, or a record failed to decode.
    #[error(
        "store at {path} is corrupted: {detail}; restore it from a backup (see docs/OPERATIONS.md)"
    )]
    Corrupt {
        /// store folder
        path: PathBuf,
        /// what was found
        detail: String,
    },
    /// The store was written by a newer version of trm-node.
    #[error("store schema version {found} is newer than this trm-node supports ({supported}); upgrade trm-node")]
    TooNew {
        /// found
        found: u32,
        /// supported
        supported: u32,
    },
    /// Another process (a running node) holds the store's lock.
    #[error("store at {0} is in use: the node is running (stop it first, e.g. `systemctl stop trm-node`)")]
    Locked(PathBuf),
    /// I/O or sled failure.
    #[error("store I/O failure: {0}")]
    Io(String),
    /// The committer thread is gone (node shutting down).
    #[error("store is closed")]
    Closed,
    /// The audit log does not match a signed checkpoint: entries were removed or altered.
    #[error("audit log in {path} does not match its signed checkpoints: {detail}; the node refuses to run on a shortened or altered history (restore the store from a backup that is not older than the latest checkpoint)")]
    AuditLog {
        /// store folder
        path: PathBuf,
        /// what was found
        detail: String,
    },
    /// An earlier write failed; the store refuses writes until the node restarts.
    #[error("the store cannot be written since an earlier failure ({0}); restart the node once the disk is fixed")]
    Failed(String),
    /// A root or proof asked for sizes the log does not have.
    #[error(transparent)]
    Proof(#[from] merkle::ProofError),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// A pinned peer.
#[derive(Clone, PartialEq, Message)]
pub struct PeerRecord {
    /// The card file bytes (encoded `Signed`).
    #[prost(bytes = "vec", tag = "1")]
    pub card: Vec<u8>,
    /// When the operator added it.
    #[prost(int64, tag = "2")]
    pub added_ms: i64,
    /// Revoked by the operator: no connections, no messages.
    #[prost(bool, tag = "3")]
    pub revoked: bool,
    /// When it was revoked.
    #[prost(int64, tag = "4")]
    pub revoked_ms: i64,
    /// The agreement behind the partnership (`peer add --agreement`), "" if none recorded.
    #[prost(string, tag = "5")]
    pub agreement: String,
    /// Its legal basis (`peer add --legal-basis`), "" if none recorded.
    #[prost(string, tag = "6")]
    pub legal_basis: String,
}

/// A registered officer credential.
#[derive(Clone, PartialEq, Message)]
pub struct OfficerRecord {
    /// Officer name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Role name.
    #[prost(string, tag = "2")]
    pub role: String,
    /// Certificate DER.
    #[prost(bytes = "vec", tag = "3")]
    pub cert_der: Vec<u8>,
    /// When issued.
    #[prost(int64, tag = "4")]
    pub added_ms: i64,
    /// When revoked by an operator (0 = active). A revoked credential never works again.
    #[prost(int64, tag = "5")]
    pub revoked_ms: i64,
}

/// A case recorded on this node.
#[derive(Clone, PartialEq, Message)]
pub struct CaseRecord {
    /// Local case id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Pseudonymous case reference.
    #[prost(string, tag = "2")]
    pub case_ref: String,
    /// When recorded.
    #[prost(int64, tag = "3")]
    pub created_ms: i64,
    /// Officer who recorded it.
    #[prost(string, tag = "4")]
    pub created_by: String,
    /// Field values (a sealed [`FieldList`] per category; see `vault`).
    #[prost(message, repeated, tag = "7")]
    pub sealed: Vec<SealedGroup>,
    /// Categories erased, and when.
    #[prost(message, repeated, tag = "8")]
    pub erased: Vec<Erased>,
    /// Every earlier version, oldest first, each with its values (sealed under the case's
    /// scope with its own record label, so erasing a category erases it from every version).
    #[prost(message, repeated, tag = "9")]
    pub history: Vec<CaseVersion>,
    /// Who made the current version, when and why (its values are `sealed`); absent on a
    /// case never changed since it was recorded (version 1, by `created_by`).
    #[prost(message, optional, tag = "10")]
    pub current: Option<CaseVersion>,
}

impl CaseRecord {
    /// The current version's description: `current`, or version 1 as recorded.
    pub fn current_version(&self) -> CaseVersion {
        self.current.clone().unwrap_or_else(|| CaseVersion {
            number: 1,
            at_ms: self.created_ms,
            by: self.created_by.clone(),
            cause: "case create".into(),
            ..Default::default()
        })
    }
}

/// One version of a case: who made it, when, why, the field paths it changed (never the
/// values) and, for an earlier version, its values.
#[derive(Clone, PartialEq, Message)]
pub struct CaseVersion {
    /// 1 for the case as recorded, then one more per change.
    #[prost(uint32, tag = "1")]
    pub number: u32,
    /// When.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// The officer.
    #[prost(string, tag = "3")]
    pub by: String,
    /// "case create", "case update", "case consent", or "follow-up <message id>".
    #[prost(string, tag = "4")]
    pub cause: String,
    /// Field paths added, changed or removed by this version.
    #[prost(string, repeated, tag = "5")]
    pub changed: Vec<String>,
    /// The version's values (earlier versions only; see `casedata::version_record`).
    #[prost(message, repeated, tag = "6")]
    pub sealed: Vec<SealedGroup>,
    /// The TRM phase this node reported in the follow-up that made it ("" otherwise).
    #[prost(string, tag = "7")]
    pub phase: String,
    /// The status text of that follow-up.
    #[prost(string, tag = "8")]
    pub status: String,
}

/// Values of one category sealed under that category's data key (see `vault`).
#[derive(Clone, PartialEq, Message)]
pub struct SealedGroup {
    /// `pb::Category` number.
    #[prost(int32, tag = "1")]
    pub category: i32,
    /// 24-byte XChaCha20 nonce.
    #[prost(bytes = "vec", tag = "2")]
    pub nonce: Vec<u8>,
    /// Ciphertext of an encoded [`FieldList`].
    #[prost(bytes = "vec", tag = "3")]
    pub ciphertext: Vec<u8>,
    /// What the AEAD associated data covers: 0 (stores before issue 10) = scope and
    /// category; 1 = scope, category and the record the group is stored in.
    #[prost(uint32, tag = "4")]
    pub aad_version: u32,
}

/// The plaintext of a sealed group: fields with their values (and salts, for disclosures).
#[derive(Clone, PartialEq, Message)]
pub struct FieldList {
    /// The fields.
    #[prost(message, repeated, tag = "1")]
    pub fields: Vec<trm_proto::pb::FieldDisclosure>,
}

/// A category erased from a record.
#[derive(Clone, PartialEq, Message)]
pub struct Erased {
    /// `pb::Category` number.
    #[prost(int32, tag = "1")]
    pub category: i32,
    /// When.
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    /// consent_withdrawn, retention_expired, requested_by_XX
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// The state of one referral between this node and a peer, on either side.
#[derive(Clone, PartialEq, Message)]
pub struct ThreadRecord {
    /// The other country.
    #[prost(string, tag = "1")]
    pub peer: String,
    /// Pseudonymous case reference.
    #[prost(string, tag = "2")]
    pub case_ref: String,
    /// [`ThreadRole`] as its string: "sent" (this node referred the case) or "received".
    /// Read it with [`ThreadRecord::role`].
    #[prost(string, tag = "3")]
    pub role: String,
    /// Id of the referral message.
    #[prost(bytes = "vec", tag = "4")]
    pub referral_id: Vec<u8>,
    /// [`ThreadState`] as its string: pending, accepted, declined, closed. Read it with
    /// [`ThreadRecord::state`], write it with [`ThreadRecord::set_state`].
    #[prost(string, tag = "5")]
    pub state: String,
    /// Answer due (Unix ms), 0 = none.
    #[prost(int64, tag = "6")]
    pub response_due_ms: i64,
    /// Responsible institution named in the acceptance.
    #[prost(string, tag = "7")]
    pub responsible_institution: String,
    /// Focal point named in the acceptance.
    #[prost(string, tag = "8")]
    pub focal_point: String,
    /// Decline reason, closure outcome.
    #[prost(string, tag = "9")]
    pub note: String,
    /// Last change.
    #[prost(int64, tag = "10")]
    pub updated_ms: i64,
    /// Local case id (sent side).
    #[prost(string, tag = "11")]
    pub case_id: String,
    /// Latest TRM phase reported in a follow-up.
    #[prost(string, tag = "12")]
    pub phase: String,
    /// Extension fields the sender declared in the referral (for categories of later values).
    #[prost(message, repeated, tag = "13")]
    pub extensions: Vec<trm_proto::pb::ExtensionField>,
    /// The sides ([`ThreadRole`] strings) that closed the referral: closure is per side. A
    /// thread closed before this field existed has none and counts as closed by both.
    #[prost(string, repeated, tag = "14")]
    pub closed_sides: Vec<String>,
    /// The state before the first closure (what a reopen returns to).
    #[prost(string, tag = "15")]
    pub before_close: String,
    /// Reopenings of a side, oldest first.
    #[prost(message, repeated, tag = "16")]
    pub reopened: Vec<Reopened>,
}

/// A side of a closed referral reopened.
#[derive(Clone, PartialEq, Message)]
pub struct Reopened {
    /// When.
    #[prost(int64, tag = "1")]
    pub at_ms: i64,
    /// The side ([`ThreadRole`] string) reopened.
    #[prost(string, tag = "2")]
    pub side: String,
    /// The officer (this node's side) or the country (the partner's side).
    #[prost(string, tag = "3")]
    pub by: String,
    /// The officer's reason, or "follow-up <message id>" for the partner's side.
    #[prost(string, tag = "4")]
    pub reason: String,
}

impl ThreadRecord {
    /// The thread's role, `None` for a string this version does not write.
    pub fn role(&self) -> Option<ThreadRole> {
        ThreadRole::parse(&self.role)
    }

    /// The thread's state, `None` for a string this version does not write.
    pub fn state(&self) -> Option<ThreadState> {
        ThreadState::parse(&self.state)
    }

    /// Sets the role.
    pub fn set_role(&mut self, role: ThreadRole) {
        self.role = role.as_str().to_string();
    }

    /// Sets the state.
    pub fn set_state(&mut self, state: ThreadState) {
        self.state = state.as_str().to_string();
    }

    /// The sides whose closure is recorded: `closed_sides`, or both for a closed thread of a
    /// version that did not record them.
    pub fn closed(&self) -> Vec<ThreadRole> {
        let sides: Vec<ThreadRole> = self
            .closed_sides
            .iter()
            .filter_map(|s| ThreadRole::parse(s))
            .collect();
        if sides.is_empty() && self.state() == Some(ThreadState::Closed) {
            return vec![ThreadRole::Sent, ThreadRole::Received];
        }
        sides
    }

    /// The one overdue rule: a referral neither accepted nor declined by its response-due
    /// time (none when it has no due time), as of `now_ms`.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.state() == Some(ThreadState::Pending)
            && self.response_due_ms > 0
            && now_ms > self.response_due_ms
    }
}

/// Supervisors' approvals of sensitive categories for ONE referral of a case to a peer: the
/// next referral (`referral_id` empty; bound to the referral when it is enqueued, see
/// [`Op::BindApproval`]) or a sent one. Approvals accumulate: one grant per category and
/// supervisor.
#[derive(Clone, PartialEq, Message)]
pub struct ApprovalRecord {
    /// Records before issue 12: approved `pb::Category` numbers (all by `supervisor`). Read
    /// through [`ApprovalRecord::all_grants`].
    #[prost(int32, repeated, tag = "1")]
    pub categories: Vec<i32>,
    /// Records before issue 12: the one supervisor.
    #[prost(string, tag = "2")]
    pub supervisor: String,
    /// Records before issue 12: when.
    #[prost(int64, tag = "3")]
    pub at_ms: i64,
    /// Every grant, oldest first.
    #[prost(message, repeated, tag = "4")]
    pub grants: Vec<Grant>,
    /// The referral's message id; empty: the next referral.
    #[prost(bytes = "vec", tag = "5")]
    pub referral_id: Vec<u8>,
}

/// One supervisor's approval of one category.
#[derive(Clone, PartialEq, Message)]
pub struct Grant {
    /// `pb::Category` number.
    #[prost(int32, tag = "1")]
    pub category: i32,
    /// Supervisor name.
    #[prost(string, tag = "2")]
    pub supervisor: String,
    /// When.
    #[prost(int64, tag = "3")]
    pub at_ms: i64,
}

impl ApprovalRecord {
    /// Every grant, those of a record written before issue 12 included.
    pub fn all_grants(&self) -> Vec<Grant> {
        let legacy = self.categories.iter().map(|c| Grant {
            category: *c,
            supervisor: self.supervisor.clone(),
            at_ms: self.at_ms,
        });
        legacy.chain(self.grants.iter().cloned()).collect()
    }

    /// Adds `category` approved by `supervisor` (kept once per category and supervisor);
    /// true if it was new.
    pub fn grant(&mut self, category: i32, supervisor: &str, at_ms: i64) -> bool {
        let known = self
            .all_grants()
            .iter()
            .any(|g| g.category == category && g.supervisor == supervisor);
        if !known {
            self.grants.push(Grant {
                category,
                supervisor: supervisor.to_string(),
                at_ms,
            });
        }
        !known
    }
}

/// Delivery state of a sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentState {
    /// In the outbox.
    Pending = 0,
    /// A valid receipt is stored.
    Delivered = 1,
    /// The peer answered with a signed rejection.
    Rejected = 2,
}

impl SentState {
    /// From the stored number.
    pub fn from_u32(v: u32) -> Self {
        match v {
            1 => SentState::Delivered,
            2 => SentState::Rejected,
            _ => SentState::Pending,
        }
    }

    /// Name for people and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SentState::Pending => "pending",
            SentState::Delivered => "delivered",
            SentState::Rejected => "rejected",
        }
    }
}

/// A message this node sent (or is sending).
#[derive(Clone, PartialEq, Message)]
pub struct SentRecord {
    /// Message id.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Recipient country.
    #[prost(string, tag = "2")]
    pub peer: String,
    /// Local case id.
    #[prost(string, tag = "3")]
    pub case_id: String,
    /// Payload kind name.
    #[prost(string, tag = "4")]
    pub kind: String,
    /// Encoded `Envelope` exactly as sent.
    #[prost(bytes = "vec", tag = "13")]
    pub envelope: Vec<u8>,
    /// The released disclosures, sealed per category.
    #[prost(message, repeated, tag = "14")]
    pub released: Vec<SealedGroup>,
    /// `SentState` as a number.
    #[prost(uint32, tag = "6")]
    pub state: u32,
    /// Encoded `Signed` receipt or rejection.
    #[prost(bytes = "vec", tag = "7")]
    pub answer: Vec<u8>,
    /// When answered.
    #[prost(int64, tag = "8")]
    pub answered_ms: i64,
    /// When created.
    #[prost(int64, tag = "9")]
    pub created_ms: i64,
    /// Outbox sequence number (set by the committer).
    #[prost(uint64, tag = "10")]
    pub outbox_seq: u64,
    /// Officer who sent it.
    #[prost(string, tag = "11")]
    pub officer: String,
    /// Every committed field with its salt, released or not, sealed per category, kept so
    /// that later releases verify against the original digests.
    #[prost(message, repeated, tag = "15")]
    pub committed: Vec<SealedGroup>,
    /// Categories erased from this message.
    #[prost(message, repeated, tag = "16")]
    pub erased: Vec<Erased>,
    /// Envelope hashes of earlier signings of this message (re-signed after its key was
    /// retired): a receipt for one of them proves delivery too (the peer stored that one
    /// before the receipt was lost).
    #[prost(bytes = "vec", repeated, tag = "17")]
    pub earlier_envelope_hashes: Vec<Vec<u8>>,
}

/// A message this node received and accepted.
#[derive(Clone, PartialEq, Message)]
pub struct ReceivedRecord {
    /// Message id.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Sender country (the TLS peer).
    #[prost(string, tag = "2")]
    pub peer: String,
    /// Payload kind name.
    #[prost(string, tag = "3")]
    pub kind: String,
    /// Encoded `Envelope` exactly as received.
    #[prost(bytes = "vec", tag = "8")]
    pub envelope: Vec<u8>,
    /// The disclosures received, sealed per category.
    #[prost(message, repeated, tag = "9")]
    pub disclosures: Vec<SealedGroup>,
    /// Categories erased from this message.
    #[prost(message, repeated, tag = "10")]
    pub erased: Vec<Erased>,
    /// Encoded `Signed` receipt we answered with (sent again to duplicates).
    #[prost(bytes = "vec", tag = "5")]
    pub receipt: Vec<u8>,
    /// When received.
    #[prost(int64, tag = "6")]
    pub received_ms: i64,
    /// Case reference.
    #[prost(string, tag = "7")]
    pub case_ref: String,
}

/// One audit log entry (`proto/audit.proto`, the schema auditors verify). Never holds a case
/// field value. Its encoding, exactly as stored, is the log's Merkle leaf.
pub use trm_proto::auditpb::AuditEntry;

/// One write. A job's ops are applied atomically.
#[derive(Clone, Debug)]
pub enum Op {
    /// Add or replace a peer.
    PutPeer(String, PeerRecord),
    /// Remove a peer.
    RemovePeer(String),
    /// Register an officer under their certificate's SHA-256.
    PutOfficer([u8; 32], OfficerRecord),
    /// Add or replace a case.
    PutCase(CaseRecord),
    /// Store a new outgoing message and put it in the outbox.
    Enqueue(SentRecord),
    /// Record the peer's answer and take the message out of the outbox.
    Answered {
        /// message id
        id: Vec<u8>,
        /// new state
        state: SentState,
        /// encoded Signed
        answer: Vec<u8>,
        /// when
        at_ms: i64,
    },
    /// Store a received message unless one with the same sender and id exists.
    Receive(ReceivedRecord),
    /// Append an audit entry.
    Audit(AuditEntry),
    /// Set a metadata value.
    PutMeta(String, Vec<u8>),
    /// Store a wrapped data key for (scope, category).
    PutDek(String, i32, Vec<u8>),
    /// Delete a data key.
    DeleteDek(String, i32),
    /// Replace a sent message's record (its outbox entry is untouched).
    PutSent(SentRecord),
    /// Replace a received message's record.
    PutReceived(ReceivedRecord),
    /// Store a supervisor's approval for (case id, peer).
    PutApproval(String, String, ApprovalRecord),
    /// Binds the approval waiting for the next referral of (case id, peer), if any, to the
    /// referral `referral_id` (an empty id is filled by `referral::messages::enqueue_with`
    /// with the message it enqueues in the same job).
    BindApproval {
        /// local case id
        case_id: String,
        /// recipient
        peer: String,
        /// the referral's message id
        referral_id: Vec<u8>,
    },
    /// Store a referral thread.
    PutThread(ThreadRecord),
    /// Precondition: the thread of (peer, case_ref) is still `expected` (`None`: absent).
    /// Otherwise the whole job is skipped and this op answers [`Outcome::Conflict`].
    ExpectThread {
        /// other country
        peer: String,
        /// case reference
        case_ref: String,
        /// the thread as read when the job was checked
        expected: Option<ThreadRecord>,
    },
    /// Remove a metadata value.
    DeleteMeta(String),
    /// Precondition: the case `id` is still `expected` (`None`: absent). Otherwise the whole
    /// job is skipped and this op answers [`Outcome::Conflict`] (two concurrent versions of a
    /// case: only the first commits, so no version is lost).
    ExpectCase {
        /// case id
        id: String,
        /// the case as read when the job was prepared
        expected: Option<CaseRecord>,
    },
}

/// What one op did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done.
    Done,
    /// `Receive` found an earlier copy: its stored receipt.
    Duplicate(Vec<u8>),
    /// `Audit` was appended at this index.
    Appended(u64),
    /// `ExpectThread` found another thread state: nothing of the job was applied.
    Conflict,
    /// Not applied: a precondition of its job failed (a `Receive` found a duplicate or an
    /// `ExpectThread` a conflict).
    Skipped,
}

struct Job {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<Vec<Outcome>, StoreError>>,
}

#[derive(Clone)]
struct Trees {
    meta: sled::Tree,
    peers: sled::Tree,
    officers: sled::Tree,
    cases: sled::Tree,
    sent: sled::Tree,
    outbox: sled::Tree,
    /// Received messages by arrival sequence (u64 big-endian), appended at the right edge.
    arrivals: sled::Tree,
    /// The dedupe index: sender ‖ message id → arrival sequence.
    received_ids: sled::Tree,
    audit: sled::Tree,
    deks: sled::Tree,
    approvals: sled::Tree,
    threads: sled::Tree,
    /// The audit log's Merkle nodes (see [`tree`]).
    merkle: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Trees {
            meta: db.open_tree("meta")?,
            peers: db.open_tree("peers")?,
            officers: db.open_tree("officers")?,
            cases: db.open_tree("cases")?,
            sent: db.open_tree("sent")?,
            outbox: db.open_tree("outbox")?,
            arrivals: db.open_tree(ARRIVALS)?,
            received_ids: db.open_tree(RECEIVED_IDS)?,
            audit: db.open_tree("audit")?,
            deks: db.open_tree("deks")?,
            approvals: db.open_tree("approvals")?,
            threads: db.open_tree("threads")?,
            merkle: db.open_tree("merkle")?,
        })
    }

    /// The trees a commit group's transaction opens, in the order `Txn` names them.
    fn in_txn_order(&self) -> [&sled::Tree; 13] {
        [
            &self.meta,
            &self.peers,
            &self.officers,
            &self.cases,
            &self.sent,
            &self.outbox,
            &self.arrivals,
            &self.received_ids,
            &self.audit,
            &self.deks,
            &self.approvals,
            &self.threads,
            &self.merkle,
        ]
    }
}

/// Tree of the received messages by arrival (schema 2).
const ARRIVALS: &str = "arrivals";
/// Tree of the received messages' dedupe index (schema 2).
const RECEIVED_IDS: &str = "received_ids";

#[derive(Clone, Copy, Default)]
struct Counters {
    next_outbox: u64,
    next_inbox: u64,
    next_audit: u64,
}

/// How [`Store::open`] checked the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenCheck {
    /// The clean-shutdown record matched the store's head: only the entries after the last
    /// checkpoint were rehashed; the rest is left to [`Store::full_check`].
    Fast {
        /// Entries rehashed (after the last checkpoint).
        tail: u64,
    },
    /// No (matching) clean-shutdown record: every entry was read and rehashed.
    Full {
        /// Why the fast path was not taken.
        reason: FullReason,
    },
}

/// Why [`Store::open`] checked the whole store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullReason {
    /// No clean-shutdown record: a crash, a first start, or a tool opened the store since.
    NoRecord,
    /// A record was there but did not match the store's head.
    Mismatch,
}

/// The node's store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    t: Trees,
    counters: Mutex<Counters>,
    tx: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    migrated_from: Option<u32>,
    /// The audit log's Merkle tree frontier, extended after each flush (the nodes are in
    /// `t.merkle`).
    tree: RwLock<CompactTree>,
    /// How open checked the store.
    opened: OpenCheck,
    /// How long sled itself took to open (its recovery), before any check.
    sled_open: std::time::Duration,
    /// Set by the first failed write; every later write is refused.
    failure: Mutex<Option<String>>,
    /// The audit log size after each commit, for the checkpoint task.
    audit_size: watch::Sender<u64>,
    /// Test switch: the next write fails as if the disk had.
    inject_failure: AtomicBool,
    /// The store's lock ([`LOCK_FILE`]), held while open. Declared last so that it is
    /// released only after sled's handles above are dropped.
    _lock: std::fs::File,
}

/// How long [`open_sled`] waits for sled's own lock, which a handle of this process that was
/// just dropped can hold for a moment while sled's background threads finish.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled at `path`. Called with the store's [`LOCK_FILE`] held: nobody else may have the
/// store open, so sled's own lock (its `db` file) being taken means only that a handle just
/// dropped in this process is still being torn down by sled's threads; wait for it (at most
/// [`SLED_LOCK_WAIT`]) instead of failing a reopen that comes right after a close.
fn open_sled(path: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            // sled reports its lock as `Other` with this message (sled 0.34, config.rs).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The lock file in the store folder: a running node (or any command that opens the store)
/// holds an exclusive `flock` on it, so that a second one is refused with
/// [`StoreError::Locked`] before sled is opened.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the store's lock, creating the store folder and [`LOCK_FILE`] if needed.
fn lock_store(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io =
        |p: &Path, e: std::io::Error| StoreError::Io(format!("cannot lock {}: {e}", p.display()));
    std::fs::create_dir_all(path).map_err(|e| io(path, e))?;
    let file = path.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&file)
        .map_err(|e| io(&file, e))?;
    try_lock(&f, path, &file)?;
    Ok(f)
}

/// An exclusive, non-blocking `flock` on `f` (the lock file `file` of the store at `path`).
fn try_lock(f: &std::fs::File, path: &Path, file: &Path) -> Result<(), StoreError> {
    use rustix::fs::{flock, FlockOperation};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StoreError::Locked(path.to_path_buf())),
        Err(e) => Err(StoreError::Io(format!(
            "cannot lock {}: {e}",
            file.display()
        ))),
    }
}

/// Meta key prefix of the node's own signed checkpoints.
pub const CHECKPOINT_PREFIX: &str = "checkpoint/";

/// Meta key of the node's signed checkpoint at `size` (keys sort by size).
pub fn checkpoint_key(size: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{size:020}")
}

fn decode<M: Message + Default>(path: &Path, what: &str, bytes: &[u8]) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{what} record does not decode ({e})"),
    })
}

fn last_u64_key(tree: &sled::Tree, skip: usize) -> Result<Option<u64>, StoreError> {
    // Outbox keys are peer(2) || seq; find the largest seq over all peers.
    if skip == 0 {
        return Ok(tree
            .last()?
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes)));
    }
    let mut max = None;
    for kv in tree.iter() {
        let (k, _) = kv?;
        if let Some(seq) = k
            .get(skip..)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
        {
            max = max.max(Some(seq));
        }
    }
    Ok(max)
}

/// The index of audit entry `v` stored under key `k`, checking that it decodes and that the
/// key is its index.
fn audit_index(path: &Path, k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    let e: AuditEntry = decode(path, "audit", v)?;
    if k != e.index.to_be_bytes() {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("audit entry {} is stored under another index", e.index),
        });
    }
    Ok(e.index)
}

/// The log misses entry `index` (a later one is there, or fewer than expected).
fn gap(path: &Path, index: u64) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("audit log has gaps: entry {index} is missing"),
    }
}

/// Entry `index` does not hash to the Merkle leaf written with it.
fn altered(path: &Path, index: u64) -> StoreError {
    StoreError::AuditLog {
        path: path.to_path_buf(),
        detail: format!(
            "audit entry {index} does not hash to the leaf stored when it was written: entries were altered"
        ),
    }
}

/// (tree size, root) of a stored signed checkpoint.
fn checkpoint_root(raw: &[u8]) -> Option<(u64, Hash)> {
    let s = trm_proto::pb::Signed::decode(raw).ok()?;
    let c = trm_proto::pb::Checkpoint::decode(s.body.as_slice()).ok()?;
    Some((c.tree_size, c.root_hash.try_into().ok()?))
}

/// The root of `tree` (just grown to `cp.0` entries or past it) against checkpoint `cp`.
fn check_checkpoint_root(
    path: &Path,
    tree: &CompactTree,
    cp: (u64, Hash, i64),
) -> Result<(), StoreError> {
    let root = if cp.0 == 0 {
        merkle::empty_root()
    } else {
        tree.root()
    };
    if cp.0 != 0 && cp.0 != tree.size() || root != cp.1 {
        return Err(StoreError::AuditLog {
            path: path.to_path_buf(),
            detail: format!(
                "the first {} entries do not hash to the root signed at {}: entries were altered",
                cp.0,
                crate::base::time::format_ms(cp.2)
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store and checks its schema version and integrity.
    ///
    /// With a clean-shutdown record that matches the store's head (last audit index and its
    /// leaf hash, the root, the last stored checkpoint's root and the counters), only the
    /// entries after the last checkpoint are rehashed ([`OpenCheck::Fast`]); otherwise every
    /// entry is read and rehashed and every checkpoint checked ([`OpenCheck::Full`]). The
    /// record is removed (durably) before the store is handed out, so a crash from here on
    /// means a full check at the next open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = lock_store(path)?;
        let opening = std::time::Instant::now();
        let db = open_sled(path).map_err(|e| match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            },
            other => StoreError::Io(format!("cannot open {}: {other}", path.display())),
        })?;
        let t = Trees::open(&db)?;
        let sled_open = opening.elapsed();
        let migrated_from = migrate(path, &db, &t)?;
        let record = t.meta.remove(CLEAN_SHUTDOWN)?;
        if record.is_some() {
            db.flush()?;
        }
        let mut store = Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                db,
                t,
                counters: Mutex::new(Counters::default()),
                tx: Mutex::new(None),
                migrated_from,
                audit_size: watch::channel(0).0,
                tree: RwLock::new(CompactTree::new()),
                opened: OpenCheck::Full {
                    reason: FullReason::NoRecord,
                },
                sled_open,
                failure: Mutex::new(None),
                inject_failure: AtomicBool::new(false),
                _lock: lock,
            }),
        };
        let (counters, tree, opened) = store.check_at_open(record.as_deref())?;
        let inner = Arc::get_mut(&mut store.inner).ok_or(StoreError::Closed)?;
        inner.audit_size.send_replace(tree.size());
        inner.counters = Mutex::new(counters);
        inner.tree = RwLock::new(tree);
        inner.opened = opened;
        Ok(store)
    }

    /// The fast check if `record` matches, else the full one (which repairs missing nodes).
    fn check_at_open(
        &self,
        record: Option<&[u8]>,
    ) -> Result<(Counters, CompactTree, OpenCheck), StoreError> {
        let reason = match record.map(CleanShutdown::decode) {
            None => FullReason::NoRecord,
            Some(r) => match r.map(|r| self.fast_check(&r)) {
                Some(Ok(Some((counters, tree, tail)))) => {
                    return Ok((counters, tree, OpenCheck::Fast { tail }))
                }
                Some(Err(e)) => return Err(e),
                _ => FullReason::Mismatch,
            },
        };
        let tree = self.verify_log(None, true, &AtomicBool::new(false))?;
        self.check_links(false, &AtomicBool::new(false))?;
        let counters = Counters {
            next_outbox: last_u64_key(&self.inner.t.outbox, 2)?.map_or(0, |i| i + 1),
            next_inbox: last_u64_key(&self.inner.t.arrivals, 0)?.map_or(0, |i| i + 1),
            next_audit: tree.size(),
        };
        Ok((counters, tree, OpenCheck::Full { reason }))
    }

    /// Compares the store's head with a clean-shutdown record and rehashes the entries after
    /// the last checkpoint. `Ok(None)`: they differ (the caller runs the full check), `Err`:
    /// an entry after the last checkpoint is not the one written (altered while stopped).
    fn fast_check(
        &self,
        r: &CleanShutdown,
    ) -> Result<Option<(Counters, CompactTree, u64)>, StoreError> {
        let t = &self.inner.t;
        let size = last_u64_key(&t.audit, 0)?.map_or(0, |i| i + 1);
        let next_inbox = last_u64_key(&t.arrivals, 0)?.map_or(0, |i| i + 1);
        let next_outbox = last_u64_key(&t.outbox, 2)?.map_or(0, |i| i + 1);
        if (size, next_inbox, next_outbox) != (r.audit_size, r.next_inbox, r.next_outbox) {
            return Ok(None);
        }
        let Ok(tree) = self.frontier(size) else {
            return Ok(None);
        };
        let head = match size {
            0 => [0u8; 32],
            n => match t.audit.get((n - 1).to_be_bytes())? {
                Some(v) => merkle::leaf_hash(&v),
                None => return Ok(None),
            },
        };
        let last_node = match size.checked_sub(1) {
            None => Some([0u8; 32]),
            Some(i) => self.node(0, i)?,
        };
        if head != r.head_leaf || last_node != Some(head) || tree.root() != r.root {
            return Ok(None);
        }
        let Some(cp_size) = self.check_last_checkpoint(size)? else {
            return Ok(None);
        };
        if cp_size != r.checkpoint_size {
            return Ok(None);
        }
        self.check_tail(cp_size, size)?;
        let counters = Counters {
            next_outbox,
            next_inbox,
            next_audit: size,
        };
        Ok(Some((counters, tree, size - cp_size)))
    }

    /// The tree size of the last stored checkpoint if its root matches the stored nodes
    /// (0 without checkpoints), `None` if it does not or covers more than `size` entries.
    fn check_last_checkpoint(&self, size: u64) -> Result<Option<u64>, StoreError> {
        let last = self
            .inner
            .t
            .meta
            .scan_prefix(CHECKPOINT_PREFIX)
            .next_back()
            .transpose()?;
        let Some((_, raw)) = last else {
            return Ok(Some(0));
        };
        let Some((cp_size, root)) = checkpoint_root(&raw) else {
            return Ok(None);
        };
        if cp_size > size {
            return Ok(None);
        }
        let stored = self.root_from_nodes(cp_size).ok();
        Ok((stored == Some(root)).then_some(cp_size))
    }

    /// Rehashes entries `from..to` against their stored leaf hashes.
    fn check_tail(&self, from: u64, to: u64) -> Result<(), StoreError> {
        let p = &self.inner.path;
        let mut expected = from;
        for kv in self
            .inner
            .t
            .audit
            .range(from.to_be_bytes()..to.to_be_bytes())
        {
            let (k, v) = kv?;
            let index = audit_index(p, &k, &v)?;
            if index != expected {
                return Err(gap(p, expected));
            }
            if self.node(0, index)? != Some(merkle::leaf_hash(&v)) {
                return Err(altered(p, index));
            }
            expected += 1;
        }
        if expected != to {
            return Err(gap(p, expected));
        }
        Ok(())
    }

    /// Reads every audit entry (up to `limit` entries), checks it is stored under its index,
    /// rehashes it, compares every Merkle node it completes with the stored one and the root
    /// at every stored checkpoint with the checkpoint. Missing nodes are written if `repair`
    /// (a store from before the nodes were kept), else refused. Memory: the frontier and the
    /// checkpoint roots. `stop` set: gives up with [`StoreError::Closed`].
    fn verify_log(
        &self,
        limit: Option<u64>,
        repair: bool,
        stop: &AtomicBool,
    ) -> Result<CompactTree, StoreError> {
        let (p, t) = (&self.inner.path, &self.inner.t);
        let limit = limit.unwrap_or(u64::MAX);
        let mut cps = self.checkpoint_roots(limit)?.into_iter().peekable();
        let (mut tree, mut batch, mut pending) = (CompactTree::new(), sled::Batch::default(), 0);
        let mut first_altered = None;
        for kv in t.audit.iter() {
            if stop.load(Ordering::Relaxed) {
                return Err(StoreError::Closed);
            }
            let (k, v) = kv?;
            let index = audit_index(p, &k, &v)?;
            if index >= limit {
                break;
            }
            if index != tree.size() {
                return Err(gap(p, tree.size()));
            }
            let leaf = merkle::leaf_hash(&v);
            for (h, i, hash) in tree::appended(&tree, leaf) {
                match self.node(h, i)? {
                    Some(n) if n == hash => {}
                    None if repair => {
                        batch.insert(&tree::node_key(h, i), &hash);
                        pending += 1;
                    }
                    _ => {
                        first_altered.get_or_insert(index);
                    }
                }
            }
            tree.append(leaf);
            while let Some(cp) = cps.next_if(|cp| cp.0 <= tree.size()) {
                check_checkpoint_root(p, &tree, cp)?;
            }
            if pending >= 65_536 {
                t.merkle.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        if let Some(cp) = cps.next() {
            return Err(StoreError::AuditLog {
                path: p.clone(),
                detail: format!(
                    "the log has {} entries but a checkpoint signed at {} covers {}: entries were removed",
                    tree.size(),
                    crate::base::time::format_ms(cp.2),
                    cp.0
                ),
            });
        }
        if let Some(index) = first_altered {
            return Err(altered(p, index));
        }
        t.merkle.apply_batch(batch)?;
        self.inner.db.flush()?;
        Ok(tree)
    }

    /// (tree size, root, time) of every stored checkpoint up to `limit` entries, by size.
    fn checkpoint_roots(&self, limit: u64) -> Result<Vec<(u64, Hash, i64)>, StoreError> {
        let mut out = Vec::new();
        for (_, raw) in self.meta_prefix(CHECKPOINT_PREFIX)? {
            let cp = trm_proto::pb::Signed::decode(raw.as_slice())
                .ok()
                .and_then(|s| trm_proto::pb::Checkpoint::decode(s.body.as_slice()).ok())
                .and_then(|c| Some((c.tree_size, c.root_hash.try_into().ok()?, c.time_ms)))
                .ok_or_else(|| StoreError::AuditLog {
                    path: self.inner.path.clone(),
                    detail: "a stored checkpoint does not decode".into(),
                })?;
            if cp.0 <= limit {
                out.push(cp);
            }
        }
        Ok(out)
    }

    /// Checks that every outbox entry and every received message's index entry points at a
    /// message (outbox: that decodes). With
    /// `live` (the node runs and writes meanwhile), a missing message is looked up again
    /// with writes paused before it counts. `stop` set: gives up with [`StoreError::Closed`].
    fn check_links(&self, live: bool, stop: &AtomicBool) -> Result<(), StoreError> {
        let (p, t) = (&self.inner.path, &self.inner.t);
        let recheck =
            |tree: &sled::Tree, k: &[u8], target: &sled::Tree| -> Result<bool, StoreError> {
                if !live {
                    return Ok(true);
                }
                let _paused = self
                    .inner
                    .counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                Ok(match tree.get(k)? {
                    Some(v) => !target.contains_key(&v)?,
                    None => false,
                })
            };
        for kv in t.outbox.iter() {
            let (k, id) = kv?;
            match t.sent.get(&id)? {
                Some(rec) => drop(decode::<SentRecord>(p, "sent", &rec)?),
                None if recheck(&t.outbox, &k, &t.sent)? => {
                    return Err(StoreError::Corrupt {
                        path: p.clone(),
                        detail: format!("outbox entry {} has no message", hex::encode(&k)),
                    })
                }
                None => {}
            }
        }
        for kv in t.received_ids.iter() {
            if stop.load(Ordering::Relaxed) {
                return Err(StoreError::Closed);
            }
            let (k, seq) = kv?;
            if !t.arrivals.contains_key(&seq)? && recheck(&t.received_ids, &k, &t.arrivals)? {
                return Err(StoreError::Corrupt {
                    path: p.clone(),
                    detail: "a received message's index entry has no message".into(),
                });
            }
        }
        Ok(())
    }

    /// The full check, on a store that is open (and may be written meanwhile): every entry
    /// up to the size at the call rehashed and compared with its stored Merkle nodes and the
    /// checkpoints, and every outbox and inbox entry's message. What `trm-node check` and the
    /// node's background check run. Returns the entries checked; [`StoreError::Closed`] if
    /// `stop` was set.
    pub fn full_check(&self, stop: &AtomicBool) -> Result<u64, StoreError> {
        let size = self.audit_len();
        let tree = self.verify_log(Some(size), false, stop)?;
        self.check_links(true, stop)?;
        Ok(tree.size())
    }

    /// How [`Store::open`] checked this store.
    pub fn opened(&self) -> OpenCheck {
        self.inner.opened
    }

    /// How long sled itself took to open this store (its own recovery, before any check).
    pub fn sled_open_time(&self) -> std::time::Duration {
        self.inner.sled_open
    }

    /// Writes the clean-shutdown record (the head the next open compares with), durably. Call
    /// last, when nothing writes any more; does nothing after a failed write.
    pub fn close_clean(&self) -> Result<(), StoreError> {
        if self.write_failure().is_some() {
            return Ok(());
        }
        let counters = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let tree = self.inner.tree.read().unwrap_or_else(|p| p.into_inner());
        let size = tree.size();
        let head_leaf = match size.checked_sub(1) {
            None => [0u8; 32],
            Some(i) => self
                .node(0, i)?
                .ok_or_else(|| altered(&self.inner.path, i))?,
        };
        let checkpoint_size = self
            .inner
            .t
            .meta
            .scan_prefix(CHECKPOINT_PREFIX)
            .next_back()
            .transpose()?
            .and_then(|(_, raw)| checkpoint_root(&raw))
            .map_or(0, |c| c.0);
        let record = CleanShutdown {
            audit_size: size,
            head_leaf,
            root: tree.root(),
            checkpoint_size,
            next_outbox: counters.next_outbox,
            next_inbox: counters.next_inbox,
        };
        self.inner.t.meta.insert(CLEAN_SHUTDOWN, record.encode())?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Refuses every later write (the background check found the store inconsistent).
    pub fn fail_closed(&self, why: &str) {
        let mut f = self.inner.failure.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert_with(|| why.to_string());
    }

    /// The stored Merkle node at (`height`, `index`), if there is one.
    fn node(&self, height: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let raw = self.inner.t.merkle.get(tree::node_key(height, index))?;
        raw.map(|v| {
            v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: format!("Merkle node {height}/{index} is not 32 bytes"),
            })
        })
        .transpose()
    }

    /// Reads node (`height`, `index`), a missing one being an error (for proofs).
    fn read_node(&self, height: u32, index: u64) -> Result<Hash, String> {
        match self.node(height, index) {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(format!("Merkle node {height}/{index} is missing")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The frontier of the first `size` entries, from the stored nodes.
    fn frontier(&self, size: u64) -> Result<CompactTree, StoreError> {
        let hashes = tree::pieces(0, size)
            .into_iter()
            .map(|(h, i)| self.read_node(h, i).map_err(StoreError::Io))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompactTree::from_parts(size, hashes)?)
    }

    /// `MTH(D[0:size])` from the stored nodes.
    fn root_from_nodes(&self, size: u64) -> Result<Hash, StoreError> {
        if size == 0 {
            return Ok(merkle::empty_root());
        }
        Ok(self.frontier(size)?.root())
    }

    /// Starts the committer thread. Until then, writes use [`Store::commit_blocking`].
    pub fn start_committer(&self) {
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.clone();
        std::thread::Builder::new()
            .name("trm-committer".into())
            .spawn(move || store.committer(rx))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start committer thread"));
        *self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Stops accepting jobs; the committer finishes what it has and exits.
    pub fn stop_committer(&self) {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn committer(&self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            while jobs.len() < 1024 {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let ops: Vec<&[Op]> = jobs.iter().map(|j| j.ops.as_slice()).collect();
            match self.apply(&ops) {
                Ok(outcomes) => {
                    for (job, out) in jobs.into_iter().zip(outcomes) {
                        let _ = job.reply.send(Ok(out));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "store write failed");
                    for job in jobs {
                        let _ = job.reply.send(Err(e.sticky_copy()));
                    }
                }
            }
        }
    }

    /// Applies `ops` atomically and durably, sharing the flush with concurrent callers.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StoreError> {
        if let Some(why) = self.write_failure() {
            return Err(StoreError::Failed(why));
        }
        let (reply, rx) = oneshot::channel();
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match tx {
            Some(tx) => {
                tx.send(Job { ops, reply })
                    .map_err(|_| StoreError::Closed)?;
                rx.await.map_err(|_| StoreError::Closed)?
            }
            None => {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.commit_blocking(ops))
                    .await
                    .map_err(|_| StoreError::Closed)?
            }
        }
    }

    /// Applies `ops` atomically and durably on the calling thread (for tools and `init`).
    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<Vec<Outcome>, StoreError> {
        if let Some(why) = self.write_failure() {
            return Err(StoreError::Failed(why));
        }
        Ok(self.apply(&[ops.as_slice()])?.pop().unwrap_or_default())
    }

    /// Why writes are refused, if an earlier write failed.
    pub fn write_failure(&self) -> Option<String> {
        self.inner
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Test switch (feature `fault-injection`): overwrites audit entry `index` with `raw`
    /// outside any transaction and without touching its Merkle nodes, as someone editing the
    /// stopped node's files would, and flushes.
    #[cfg(feature = "fault-injection")]
    pub fn overwrite_audit_entry(&self, index: u64, raw: &[u8]) -> Result<(), StoreError> {
        self.inner.t.audit.insert(index.to_be_bytes(), raw)?;
        self.flush()
    }

    /// Test switch (feature `fault-injection`): the next write fails as if the disk had.
    #[cfg(feature = "fault-injection")]
    pub fn inject_write_failure(&self) {
        self.inner.inject_failure.store(true, Ordering::SeqCst);
    }

    /// Applies the jobs; a storage or flush failure makes the store refuse later writes.
    fn apply(&self, jobs: &[&[Op]]) -> Result<Vec<Vec<Outcome>>, StoreError> {
        let result = if self.inner.inject_failure.swap(false, Ordering::SeqCst) {
            Err(StoreError::Io("injected write failure (test)".into()))
        } else {
            self.apply_durably(jobs)
        };
        if result.is_ok() {
            crate::base::durability::record(
                &self.inner.path,
                crate::base::durability::Step::Commit,
            );
        }
        if let Err(e @ (StoreError::Io(_) | StoreError::Failed(_))) = &result {
            let mut f = self.inner.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                tracing::error!(error = %e, "store write failed: refusing every write until restart");
                *f = Some(e.to_string());
            }
        }
        result
    }

    fn apply_durably(&self, jobs: &[&[Op]]) -> Result<Vec<Vec<Outcome>>, StoreError> {
        let trees = self.inner.t.in_txn_order();
        let mut counters = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let start = (
            counters.next_outbox,
            counters.next_inbox,
            counters.next_audit,
        );
        let frontier = self
            .inner
            .tree
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = trees.as_slice().transaction(|tx| {
            let [meta, peers, officers, cases, sent, outbox, arrivals, received_ids, audit, deks, approvals, threads, merkle] =
                &tx[..]
            else {
                return Err(ConflictableTransactionError::Abort(
                    "tree count".to_string(),
                ));
            };
            let mut txn = Txn {
                meta,
                peers,
                officers,
                cases,
                sent,
                outbox,
                arrivals,
                received_ids,
                audit,
                deks,
                approvals,
                threads,
                merkle,
                seqs: start,
                tree: frontier.clone(),
            };
            let mut all = Vec::with_capacity(jobs.len());
            for ops in jobs {
                let (failed, pre) = txn.preconditions(ops)?;
                if failed {
                    all.push(pre);
                    continue;
                }
                all.push(txn.apply_job(ops)?);
            }
            let (o, i, a) = txn.seqs;
            Ok((all, o, i, a, txn.tree))
        });
        let (outs, o, i, a, grown) = result.map_err(|e| match e {
            TransactionError::Abort(s) => StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: s,
            },
            TransactionError::Storage(e) => StoreError::from(e),
        })?;
        self.inner.db.flush()?;
        counters.next_outbox = o;
        counters.next_inbox = i;
        counters.next_audit = a;
        if grown.size() != frontier.size() {
            let size = grown.size();
            *self.inner.tree.write().unwrap_or_else(|p| p.into_inner()) = grown;
            self.inner.audit_size.send_replace(size);
        }
        Ok(outs)
    }

    // ----- reads -------------------------------------------------------------------------

    fn get<M: Message + Default>(
        &self,
        tree: &sled::Tree,
        what: &str,
        key: &[u8],
    ) -> Result<Option<M>, StoreError> {
        tree.get(key)?
            .map(|v| decode(&self.inner.path, what, &v))
            .transpose()
    }

    fn values<M: Message + Default>(
        &self,
        tree: &sled::Tree,
        what: &str,
    ) -> Result<Vec<M>, StoreError> {
        Ok(self.all(tree, what)?.into_iter().map(|(_, v)| v).collect())
    }

    fn all<M: Message + Default>(
        &self,
        tree: &sled::Tree,
        what: &str,
    ) -> Result<Vec<(Vec<u8>, M)>, StoreError> {
        tree.iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), decode(&self.inner.path, what, &v)?))
            })
            .collect()
    }

    /// A pinned peer.
    pub fn peer(&self, cc: &str) -> Result<Option<PeerRecord>, StoreError> {
        self.get(&self.inner.t.peers, "peer", cc.as_bytes())
    }

    /// Every pinned peer, by country.
    pub fn peers(&self) -> Result<BTreeMap<String, PeerRecord>, StoreError> {
        Ok(self
            .all(&self.inner.t.peers, "peer")?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    /// An officer by certificate hash.
    pub fn officer(&self, fp: &[u8; 32]) -> Result<Option<OfficerRecord>, StoreError> {
        self.get(&self.inner.t.officers, "officer", fp)
    }

    /// Every officer.
    pub fn officers(&self) -> Result<Vec<([u8; 32], OfficerRecord)>, StoreError> {
        Ok(self
            .all(&self.inner.t.officers, "officer")?
            .into_iter()
            .filter_map(|(k, v)| Some((k.try_into().ok()?, v)))
            .collect())
    }

    /// Registers an officer without the committer (for `init`).
    pub fn register_officer_blocking(
        &self,
        cert_der: &[u8],
        name: &str,
        role: crate::base::vocab::Role,
    ) -> Result<(), StoreError> {
        let fp = trm_proto::signing::sha256(cert_der);
        self.commit_blocking(vec![Op::PutOfficer(
            fp,
            OfficerRecord {
                name: name.into(),
                role: role.name().into(),
                cert_der: cert_der.to_vec(),
                added_ms: crate::base::time::now_ms(),
                revoked_ms: 0,
            },
        )])?;
        Ok(())
    }

    /// A case.
    pub fn case(&self, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.get(&self.inner.t.cases, "case", id.as_bytes())
    }

    /// Every case.
    pub fn cases(&self) -> Result<Vec<CaseRecord>, StoreError> {
        self.values(&self.inner.t.cases, "case")
    }

    /// A sent message.
    pub fn sent(&self, id: &[u8]) -> Result<Option<SentRecord>, StoreError> {
        self.get(&self.inner.t.sent, "sent", id)
    }

    /// Every sent message.
    pub fn sent_all(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.values(&self.inner.t.sent, "sent")
    }

    /// Up to `limit` outbox entries for `peer`, oldest first, skipping ids in `skip`.
    pub fn outbox_for(
        &self,
        peer: &str,
        limit: usize,
        skip: &std::collections::HashSet<Vec<u8>>,
    ) -> Result<Vec<SentRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.t.outbox.scan_prefix(peer.as_bytes()) {
            let (_, id) = kv?;
            if skip.contains(id.as_ref()) {
                continue;
            }
            if let Some(rec) = self.sent(&id)? {
                out.push(rec);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Outbox depth and oldest creation time per peer.
    pub fn outbox_depths(&self) -> Result<BTreeMap<String, (u64, i64)>, StoreError> {
        let mut m: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        for kv in self.inner.t.outbox.iter() {
            let (k, id) = kv?;
            let peer = String::from_utf8_lossy(&k[..2.min(k.len())]).into_owned();
            let created = self.sent(&id)?.map_or(0, |r| r.created_ms);
            let e = m.entry(peer).or_insert((0, created));
            e.0 += 1;
            e.1 = e.1.min(created);
        }
        Ok(m)
    }

    /// A received message (through the dedupe index).
    pub fn received(&self, peer: &str, id: &[u8]) -> Result<Option<ReceivedRecord>, StoreError> {
        let t = &self.inner.t;
        let Some(seq) = t.received_ids.get(received_key(peer, id))? else {
            return Ok(None);
        };
        match t.arrivals.get(&seq)? {
            Some(v) => self.load_received(&v).map(Some),
            None => Err(StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: "a received message's index entry has no message".into(),
            }),
        }
    }

    /// A stored received record with its envelope and receipt read back from the audit
    /// entries it refers to ([`received::Refs`]).
    fn load_received(&self, v: &[u8]) -> Result<ReceivedRecord, StoreError> {
        let p = &self.inner.path;
        let audit = |i: u64| self.inner.t.audit.get(i.to_be_bytes()).ok().flatten();
        received::load(v, audit).map_err(|detail| StoreError::Corrupt {
            path: p.clone(),
            detail,
        })
    }

    /// Received messages in arrival order.
    pub fn inbox(&self) -> Result<Vec<ReceivedRecord>, StoreError> {
        self.inbox_where(|_| true)
    }

    /// Received messages in arrival order whose record `keep` accepts (it sees the record
    /// as stored, before its envelope and receipt are read back).
    fn inbox_where(
        &self,
        keep: impl Fn(&ReceivedRecord) -> bool,
    ) -> Result<Vec<ReceivedRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.t.arrivals.iter() {
            let (_, v) = kv?;
            let bare: ReceivedRecord = decode(&self.inner.path, "received", &v)?;
            if keep(&bare) {
                out.push(self.load_received(&v)?);
            }
        }
        Ok(out)
    }

    /// Number of received messages (they are never removed: the next arrival sequence).
    pub fn received_count(&self) -> usize {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_inbox as usize
    }

    /// Audit entries from `from` (inclusive), in order.
    pub fn audit_entries(&self, from: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.t.audit.range(from.to_be_bytes()..) {
            let (_, v) = kv?;
            out.push(decode(&self.inner.path, "audit", &v)?);
        }
        Ok(out)
    }

    /// Raw audit entry bytes (the Merkle leaves) from `from`, in order.
    pub fn audit_leaves(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner
            .t
            .audit
            .range(from.to_be_bytes()..)
            .map(|kv| Ok(kv?.1.to_vec()))
            .collect()
    }

    /// At most `limit` raw audit entries (Merkle leaves) from index `from`, in order: a log of
    /// any size is read this way in bounded memory.
    pub fn audit_leaves_range(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner
            .t
            .audit
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|kv| Ok(kv?.1.to_vec()))
            .collect()
    }

    /// Number of audit entries.
    pub fn audit_len(&self) -> u64 {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_audit
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.t.meta.get(key)?.map(|v| v.to_vec()))
    }

    /// A wrapped data key.
    pub fn dek(&self, scope: &str, category: i32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .t
            .deks
            .get(dek_key(scope, category))?
            .map(|v| v.to_vec()))
    }

    /// Every wrapped data key: (scope, category, wrapped).
    pub fn all_deks(&self) -> Result<Vec<(String, i32, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.t.deks.iter() {
            let (k, v) = kv?;
            if k.len() < 5 {
                continue;
            }
            let (scope, rest) = k.split_at(k.len() - 5);
            let cat = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
            out.push((String::from_utf8_lossy(scope).into_owned(), cat, v.to_vec()));
        }
        Ok(out)
    }

    /// The approvals of one referral of (case, peer): `referral` `None` for the next one.
    pub fn approval_of(
        &self,
        case_id: &str,
        peer: &str,
        referral: Option<&[u8]>,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let key = bound_approval_key(case_id, peer, referral.unwrap_or_default());
        self.get(&self.inner.t.approvals, "approval", &key)
    }

    /// Every approval record with its case id and peer.
    pub fn approvals(&self) -> Result<Vec<(String, String, ApprovalRecord)>, StoreError> {
        Ok(self
            .all::<ApprovalRecord>(&self.inner.t.approvals, "approval")?
            .into_iter()
            .filter_map(|(k, rec)| {
                let text = String::from_utf8(k).ok()?;
                let mut parts = text.split('\0');
                let case = parts.next()?.to_string();
                let peer = parts.next()?.to_string();
                Some((case, peer, rec))
            })
            .collect())
    }

    /// The referral thread with `peer` about `case_ref`.
    pub fn thread(&self, peer: &str, case_ref: &str) -> Result<Option<ThreadRecord>, StoreError> {
        self.get(
            &self.inner.t.threads,
            "thread",
            &approval_key(peer, case_ref),
        )
    }

    /// Every referral thread.
    pub fn threads(&self) -> Result<Vec<ThreadRecord>, StoreError> {
        self.values(&self.inner.t.threads, "thread")
    }

    /// Every received message of `peer` about `case_ref`, in arrival order.
    pub fn received_for_case(
        &self,
        peer: &str,
        case_ref: &str,
    ) -> Result<Vec<ReceivedRecord>, StoreError> {
        self.inbox_where(|r| r.peer == peer && r.case_ref == case_ref)
    }

    /// Every metadata value whose key starts with `prefix`, in key order.
    pub fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner
            .t
            .meta
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    // ----- the audit log's Merkle tree ----------------------------------------------------

    /// Size and root of the audit log as committed.
    pub fn audit_head(&self) -> (u64, Hash) {
        let tree = self.inner.tree.read().unwrap_or_else(|p| p.into_inner());
        (tree.size(), tree.root())
    }

    /// Fails unless the log has at least `size` entries.
    fn check_audit_size(&self, first: u64, size: u64) -> Result<(), StoreError> {
        let have = self
            .inner
            .tree
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .size();
        if size > have {
            return Err(StoreError::Proof(merkle::ProofError::SizesOutOfOrder {
                first_size: first.max(size),
                second_size: have,
            }));
        }
        Ok(())
    }

    /// Runs `f` over the stored nodes; a failed read fails the whole call.
    fn with_nodes<T>(
        &self,
        f: impl FnOnce(&tree::Stored<'_>) -> Result<T, merkle::ProofError>,
    ) -> Result<T, StoreError> {
        let read = |h: u32, i: u64| self.read_node(h, i);
        let stored = tree::Stored {
            read: &read,
            failure: std::cell::RefCell::new(None),
        };
        let out = f(&stored)?;
        match stored.take_failure() {
            Some(why) => Err(StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: why,
            }),
            None => Ok(out),
        }
    }

    /// Root of the first `size` entries.
    pub fn audit_root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_audit_size(size, size)?;
        self.root_from_nodes(size)
    }

    /// Inclusion proof of entry `index` in the log of its first `size` entries.
    pub fn audit_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_audit_size(size, size)?;
        self.with_nodes(|t| merkle::inclusion_proof_in(t, index, size))
    }

    /// Consistency proof between the log's first `first` and first `second` entries.
    pub fn audit_consistency_proof(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        self.check_audit_size(first, second)?;
        self.with_nodes(|t| merkle::consistency_proof_in(t, first, second))
    }

    /// Watches the audit log size (changes after every commit that appended entries).
    pub fn watch_audit_size(&self) -> watch::Receiver<u64> {
        self.inner.audit_size.subscribe()
    }

    /// The store folder.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Size of the store on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }

    /// Flushes everything (used at shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    // ----- operations: schema, snapshot, import -------------------------------------------

    /// The schema version this store had before [`Store::open`] migrated it, if it did.
    pub fn migrated_from(&self) -> Option<u32> {
        self.inner.migrated_from
    }

    /// Calls `visit(tree, key, value)` for every record of every tree, as of one instant.
    ///
    /// Every write goes through [`Store::apply`], which holds the counters lock from the start
    /// of its transaction to the end of its flush; holding the same lock here means no job is
    /// applied while the snapshot is read, so it is consistent across trees. Writes wait
    /// until it returns (the committer simply queues them).
    pub fn snapshot(
        &self,
        mut visit: impl FnMut(&str, &[u8], &[u8]) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let _writes_paused = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let io = |e: std::io::Error| StoreError::Io(format!("snapshot: {e}"));
        let mut n = 0;
        let mut names = self.inner.db.tree_names();
        names.sort();
        for name in names {
            let tree_name = String::from_utf8_lossy(&name).into_owned();
            let tree = self.inner.db.open_tree(&name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                visit(&tree_name, &k, &v).map_err(io)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Creates a new store at `path` (which must not exist) from snapshot records, flushes it
    /// and closes it. The next [`Store::open`] checks it, and migrates it if it is older.
    pub fn import(
        path: &Path,
        records: impl IntoIterator<Item = Result<(String, Vec<u8>, Vec<u8>), StoreError>>,
    ) -> Result<u64, StoreError> {
        if path.exists() {
            return Err(StoreError::Io(format!(
                "{} already exists; refusing to import over it",
                path.display()
            )));
        }
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let mut trees: BTreeMap<String, sled::Tree> = BTreeMap::new();
        let mut n = 0;
        for r in records {
            let (name, k, v) = r?;
            let tree = match trees.get(&name) {
                Some(t) => t,
                None => {
                    let t = db.open_tree(name.as_bytes())?;
                    trees.entry(name).or_insert(t)
                }
            };
            tree.insert(k, v)?;
            n += 1;
        }
        db.flush()?;
        Ok(n)
    }

    /// Fails with [`StoreError::Locked`] while a running node holds the store at `path`
    /// ([`LOCK_FILE`]). A missing store, or one without a lock file, is not locked.
    pub fn ensure_unlocked(path: &Path) -> Result<(), StoreError> {
        let file = path.join(LOCK_FILE);
        match std::fs::File::open(&file) {
            // Taken and released at once: the lock is free now.
            Ok(f) => try_lock(&f, path, &file),
            Err(_) => Ok(()),
        }
    }
}

/// The received record stored as `value` in the `arrivals` tree (as a snapshot or backup
/// holds it), with its envelope and receipt read back from the audit entries it refers to;
/// `audit` gives the stored audit entry at an index. For tools that read a backup's records.
pub fn stored_received_record(
    value: &[u8],
    audit: impl Fn(u64) -> Option<Vec<u8>>,
) -> Result<ReceivedRecord, String> {
    received::load(value, audit)
}

/// Brings the store to [`SCHEMA_VERSION`], one step per version. Each step writes its new
/// version last, in one transaction, and can be run again from the start until it has (so an
/// interrupted migration resumes). Returns the version found if it was older. Refuses a
/// newer store.
///
/// Schema history (documented in docs/OPERATIONS.md, "Upgrade", and ARCHITECTURE.md):
/// - **0**: development builds before the schema key existed. `meta` has no `schema` key and
///   there is no inbox order: received messages live only in `received` (key = sender ‖ id)
///   and their arrival order was derived from `received_ms`. Recognised as a store without
///   `schema` that holds any data (an empty one is simply new).
/// - **1**: `meta.schema` = 1 (u32 big-endian); `inbox` maps an arrival sequence number
///   (u64 big-endian) to the `received` key.
/// - **2** (issue 14): received messages by arrival in `arrivals` (sequence u64 big-endian →
///   record, envelope and receipt stored once, in the audit log: `received`), with the
///   dedupe index `received_ids` (sender ‖ id → sequence); `received` and `inbox` are gone.
fn migrate(path: &Path, db: &sled::Db, t: &Trees) -> Result<Option<u32>, StoreError> {
    let found = match t.meta.get("schema")? {
        Some(v) => {
            v.as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: "schema version is malformed".into(),
                })?
        }
        None if !holds_data(db, t)? => {
            t.meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
            return Ok(None);
        }
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        drop_legacy(db)?;
        return Ok(None);
    }
    let mut v = found;
    while v < SCHEMA_VERSION {
        match v {
            0 => migrate_0_to_1(path, &legacy(db, "received")?, &legacy(db, "inbox")?, t)?,
            1 => migrate_1_to_2(path, db, t)?,
            other => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("no migration from schema version {other}"),
                })
            }
        }
        v += 1;
    }
    db.flush()?;
    drop_legacy(db)?;
    tracing::info!(from = found, to = SCHEMA_VERSION, "store schema migrated");
    Ok(Some(found))
}

/// Trees of schema 0 and 1 that schema 2 replaced.
const LEGACY_TREES: [&str; 2] = ["received", "inbox"];

/// Whether a store without a schema key holds any data (a schema-0 store) or is new.
fn holds_data(db: &sled::Db, t: &Trees) -> Result<bool, StoreError> {
    let mut trees = vec![
        t.peers.clone(),
        t.officers.clone(),
        t.cases.clone(),
        t.sent.clone(),
        t.outbox.clone(),
        t.arrivals.clone(),
        t.audit.clone(),
    ];
    if db.tree_names().iter().any(|n| n.as_ref() == b"received") {
        trees.push(legacy(db, "received")?);
    }
    Ok(trees.iter().any(|tree| !tree.is_empty()))
}

/// A tree of an older schema (opened, so created empty if it was not there).
fn legacy(db: &sled::Db, name: &str) -> Result<sled::Tree, StoreError> {
    Ok(db.open_tree(name)?)
}

/// Drops the trees schema 2 replaced, once the store is at schema 2 (again after a crash
/// between the version write and the drop).
fn drop_legacy(db: &sled::Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    let mut dropped = false;
    for name in LEGACY_TREES {
        if names.iter().any(|n| n.as_ref() == name.as_bytes()) {
            dropped |= db.drop_tree(name)?;
        }
    }
    if dropped {
        db.flush()?;
    }
    Ok(())
}

/// 0 → 1: builds the inbox order from `received_ms` (then key), and writes `schema` = 1.
fn migrate_0_to_1(
    path: &Path,
    received: &sled::Tree,
    inbox: &sled::Tree,
    t: &Trees,
) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    for kv in received.iter() {
        let (k, v) = kv?;
        let r: ReceivedRecord = decode(path, "received", &v)?;
        rows.push((r.received_ms, k.to_vec()));
    }
    rows.sort();
    let stale: Vec<sled::IVec> = inbox.iter().keys().collect::<Result<_, _>>()?;
    (inbox, &t.meta)
        .transaction(|(inbox, meta)| {
            for k in &stale {
                inbox.remove(k)?;
            }
            for (i, (_, key)) in rows.iter().enumerate() {
                inbox.insert(&(i as u64).to_be_bytes(), key.as_slice())?;
            }
            meta.insert("schema", &1u32.to_be_bytes())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Abort(()) => StoreError::Io("migration 0 -> 1 aborted".into()),
            TransactionError::Storage(e) => StoreError::from(e),
        })
}

/// 1 → 2: copies every received message, in inbox order (then any message without an
/// inbox entry, by `received_ms`), to `arrivals` under sequences 0, 1, … with its index
/// entry, and then writes `schema` = 2. The old trees are only read until then, so a crash
/// at any point leaves a schema-1 store whose copy is redone from the start at the next
/// open (the new trees are cleared first); [`drop_legacy`] removes them afterwards.
/// Records keep their envelope and receipt inline (only new arrivals refer to the log).
fn migrate_1_to_2(path: &Path, db: &sled::Db, t: &Trees) -> Result<(), StoreError> {
    let (received, inbox) = (legacy(db, "received")?, legacy(db, "inbox")?);
    t.arrivals.clear()?;
    t.received_ids.clear()?;
    let mut copy = Copy::new(t);
    let mut seen = std::collections::HashSet::new();
    for kv in inbox.iter() {
        let (_, key) = kv?;
        if let Some(v) = received.get(&key)? {
            if seen.insert(key.to_vec()) {
                copy.push(&key, &v)?;
            }
        }
    }
    let mut rest = Vec::new();
    for kv in received.iter() {
        let (key, v) = kv?;
        if !seen.contains(key.as_ref()) {
            let r: ReceivedRecord = decode(path, "received", &v)?;
            rest.push((r.received_ms, key));
        }
    }
    rest.sort();
    for (_, key) in rest {
        if let Some(v) = received.get(&key)? {
            copy.push(&key, &v)?;
        }
    }
    copy.finish()?;
    db.flush()?;
    t.meta
        .transaction(|meta| {
            meta.insert("schema", &2u32.to_be_bytes())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| match e {
            TransactionError::Abort(()) => StoreError::Io("migration 1 -> 2 aborted".into()),
            TransactionError::Storage(e) => StoreError::from(e),
        })?;
    Ok(())
}

/// The 1 → 2 copy: batches of records and index entries, in arrival order.
struct Copy<'a> {
    t: &'a Trees,
    seq: u64,
    records: sled::Batch,
    index: sled::Batch,
    pending: usize,
}

impl<'a> Copy<'a> {
    fn new(t: &'a Trees) -> Self {
        Copy {
            t,
            seq: 0,
            records: sled::Batch::default(),
            index: sled::Batch::default(),
            pending: 0,
        }
    }

    fn push(&mut self, key: &[u8], v: &[u8]) -> Result<(), StoreError> {
        let seq = self.seq.to_be_bytes();
        self.records.insert(&seq, v);
        self.index.insert(key, &seq);
        self.seq += 1;
        self.pending += 1;
        if self.pending >= 10_000 {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.t
            .arrivals
            .apply_batch(std::mem::take(&mut self.records))?;
        self.t
            .received_ids
            .apply_batch(std::mem::take(&mut self.index))?;
        self.pending = 0;
        Ok(())
    }
}

fn dek_key(scope: &str, category: i32) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&category.to_be_bytes());
    k
}

fn approval_key(case_id: &str, peer: &str) -> Vec<u8> {
    format!("{case_id}\0{peer}").into_bytes()
}

/// The key of the approvals of one referral: (case, peer) for the next one (as before issue
/// 12), (case, peer, referral id) for a sent one.
fn bound_approval_key(case_id: &str, peer: &str, referral_id: &[u8]) -> Vec<u8> {
    let mut k = approval_key(case_id, peer);
    if !referral_id.is_empty() {
        k.push(0);
        k.extend_from_slice(hex::encode(referral_id).as_bytes());
    }
    k
}

impl StoreError {
    /// The same error for every job of a failed group commit.
    fn sticky_copy(&self) -> StoreError {
        match self {
            StoreError::Failed(s) => StoreError::Failed(s.clone()),
            StoreError::Corrupt { path, detail } => StoreError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            other => StoreError::Io(other.to_string()),
        }
    }
}

fn received_key(peer: &str, id: &[u8]) -> Vec<u8> {
    let mut k = peer.as_bytes().to_vec();
    k.extend_from_slice(id);
    k
}

type TxResult<T> = Result<T, ConflictableTransactionError<String>>;

fn abort(e: impl std::fmt::Display) -> ConflictableTransactionError<String> {
    ConflictableTransactionError::Abort(e.to_string())
}

/// One commit group's transaction: the trees, in the order `apply_durably` opens them, and
/// the sequence numbers and audit leaves it hands out.
struct Txn<'a> {
    meta: &'a TransactionalTree,
    peers: &'a TransactionalTree,
    officers: &'a TransactionalTree,
    cases: &'a TransactionalTree,
    sent: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    arrivals: &'a TransactionalTree,
    received_ids: &'a TransactionalTree,
    audit: &'a TransactionalTree,
    deks: &'a TransactionalTree,
    approvals: &'a TransactionalTree,
    threads: &'a TransactionalTree,
    merkle: &'a TransactionalTree,
    /// Next outbox sequence, inbox sequence and audit index.
    seqs: (u64, u64, u64),
    /// The audit log's frontier, with the entries appended so far.
    tree: CompactTree,
}

impl Txn<'_> {
    /// Preconditions of one job, against this transaction's view (which includes the jobs
    /// applied before in the same group): a job whose message is already stored, or whose
    /// thread changed since it was checked, is skipped whole, so a concurrent duplicate writes
    /// nothing (not even audit entries) and two concurrent answers cannot both move a thread.
    /// Returns whether the job fails, and the outcome of each op if it does.
    fn preconditions(&self, ops: &[Op]) -> TxResult<(bool, Vec<Outcome>)> {
        let mut failed = false;
        let mut pre = Vec::with_capacity(ops.len());
        for op in ops {
            pre.push(match op {
                Op::Receive(rec) => match self.stored_receipt(rec)? {
                    Some(receipt) => {
                        failed = true;
                        Outcome::Duplicate(receipt)
                    }
                    None => Outcome::Skipped,
                },
                Op::ExpectThread {
                    peer,
                    case_ref,
                    expected,
                } => {
                    let now = self
                        .threads
                        .get(approval_key(peer, case_ref))?
                        .map(|b| ThreadRecord::decode(b.as_ref()))
                        .transpose()
                        .map_err(abort)?;
                    if &now != expected {
                        failed = true;
                        Outcome::Conflict
                    } else {
                        Outcome::Skipped
                    }
                }
                Op::ExpectCase { id, expected } => {
                    let now = self
                        .cases
                        .get(id.as_bytes())?
                        .map(|b| CaseRecord::decode(b.as_ref()))
                        .transpose()
                        .map_err(abort)?;
                    if &now != expected {
                        failed = true;
                        Outcome::Conflict
                    } else {
                        Outcome::Skipped
                    }
                }
                _ => Outcome::Skipped,
            });
        }
        Ok((failed, pre))
    }

    /// Applies one op of a job whose preconditions hold.
    fn apply(&mut self, op: &Op) -> TxResult<Outcome> {
        match op {
            Op::PutPeer(cc, rec) => {
                self.peers.insert(cc.as_bytes(), rec.encode_to_vec())?;
            }
            Op::RemovePeer(cc) => {
                self.peers.remove(cc.as_bytes())?;
            }
            Op::PutOfficer(fp, rec) => {
                self.officers.insert(fp.as_slice(), rec.encode_to_vec())?;
            }
            Op::PutCase(rec) => {
                self.cases.insert(rec.id.as_bytes(), rec.encode_to_vec())?;
            }
            Op::PutMeta(k, v) => {
                self.meta.insert(k.as_bytes(), v.as_slice())?;
            }
            Op::Enqueue(rec) => self.enqueue(rec)?,
            Op::Answered {
                id,
                state,
                answer,
                at_ms,
            } => self.answered(id, *state, answer, *at_ms)?,
            Op::Receive(rec) => return self.receive(rec, &[]),
            Op::PutDek(scope, cat, wrapped) => {
                self.deks.insert(dek_key(scope, *cat), wrapped.as_slice())?;
            }
            Op::DeleteDek(scope, cat) => {
                self.deks.remove(dek_key(scope, *cat))?;
            }
            Op::PutSent(rec) => {
                self.sent.insert(rec.id.as_slice(), rec.encode_to_vec())?;
            }
            Op::PutReceived(rec) => self.put_received(rec)?,
            Op::PutApproval(case_id, peer, rec) => {
                let key = bound_approval_key(case_id, peer, &rec.referral_id);
                self.approvals.insert(key, rec.encode_to_vec())?;
            }
            Op::BindApproval {
                case_id,
                peer,
                referral_id,
            } => {
                if let Some(v) = self.approvals.remove(approval_key(case_id, peer))? {
                    let mut rec = ApprovalRecord::decode(v.as_ref()).unwrap_or_default();
                    rec.referral_id = referral_id.clone();
                    let key = bound_approval_key(case_id, peer, referral_id);
                    self.approvals.insert(key, rec.encode_to_vec())?;
                }
            }
            Op::PutThread(rec) => {
                self.threads
                    .insert(approval_key(&rec.peer, &rec.case_ref), rec.encode_to_vec())?;
            }
            Op::ExpectThread { .. } | Op::ExpectCase { .. } => {}
            Op::DeleteMeta(k) => {
                self.meta.remove(k.as_bytes())?;
            }
            Op::Audit(entry) => return self.append_audit(entry),
        }
        Ok(Outcome::Done)
    }

    fn enqueue(&mut self, rec: &SentRecord) -> TxResult<()> {
        let mut rec = rec.clone();
        let seq = self.seqs.0;
        rec.outbox_seq = seq;
        let mut key = rec.peer.as_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        self.seqs.0 += 1;
        self.outbox.insert(key, rec.id.as_slice())?;
        self.sent.insert(rec.id.as_slice(), rec.encode_to_vec())?;
        Ok(())
    }

    fn answered(&mut self, id: &[u8], state: SentState, answer: &[u8], at_ms: i64) -> TxResult<()> {
        if let Some(bytes) = self.sent.get(id)? {
            let mut rec = SentRecord::decode(bytes.as_ref()).map_err(abort)?;
            if rec.state == SentState::Pending as u32 {
                let mut key = rec.peer.as_bytes().to_vec();
                key.extend_from_slice(&rec.outbox_seq.to_be_bytes());
                self.outbox.remove(key)?;
                rec.state = state as u32;
                rec.answer = answer.to_vec();
                rec.answered_ms = at_ms;
                self.sent.insert(id, rec.encode_to_vec())?;
            }
        }
        Ok(())
    }

    /// Applies the ops of one job whose preconditions hold, in order. A `Receive` sees the
    /// ops after it, so that its record can refer to the audit entries the job appends.
    fn apply_job(&mut self, ops: &[Op]) -> TxResult<Vec<Outcome>> {
        let mut outs = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            outs.push(match op {
                Op::Receive(rec) => self.receive(rec, &ops[i + 1..])?,
                op => self.apply(op)?,
            });
        }
        Ok(outs)
    }

    /// The audit entry at `index`, as stored.
    fn audit_at(&self, index: u64) -> Option<Vec<u8>> {
        self.audit
            .get(index.to_be_bytes())
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    /// The arrival sequence of the message (`peer`, `id`), if stored.
    fn arrival_of(&self, peer: &str, id: &[u8]) -> TxResult<Option<sled::IVec>> {
        Ok(self.received_ids.get(received_key(peer, id))?)
    }

    /// The receipt stored with an earlier copy of `rec`, if there is one.
    fn stored_receipt(&self, rec: &ReceivedRecord) -> TxResult<Option<Vec<u8>>> {
        let Some(seq) = self.arrival_of(&rec.peer, &rec.id)? else {
            return Ok(None);
        };
        let v = self
            .arrivals
            .get(&seq)?
            .ok_or_else(|| abort("a received message's index entry has no message"))?;
        let old = received::load(&v, |i| self.audit_at(i).map(sled::IVec::from)).map_err(abort)?;
        Ok(Some(old.receipt))
    }

    /// Stores a new received message at the next arrival sequence, with its index entry;
    /// `rest` are the job's ops after it (see [`received::refs_in`]).
    fn receive(&mut self, rec: &ReceivedRecord, rest: &[Op]) -> TxResult<Outcome> {
        if let Some(receipt) = self.stored_receipt(rec)? {
            return Ok(Outcome::Duplicate(receipt));
        }
        let refs = received::refs_in(rec, rest, self.seqs.2);
        let seq = self.seqs.1.to_be_bytes();
        self.arrivals.insert(&seq, received::store(rec, &refs))?;
        self.received_ids
            .insert(received_key(&rec.peer, &rec.id), &seq)?;
        self.seqs.1 += 1;
        Ok(Outcome::Done)
    }

    /// Replaces a received message's record at its arrival sequence, keeping its references
    /// to the audit entries while they still hold its envelope and receipt byte for byte. A
    /// record not stored yet is stored as a new arrival.
    fn put_received(&mut self, rec: &ReceivedRecord) -> TxResult<()> {
        let Some(seq) = self.arrival_of(&rec.peer, &rec.id)? else {
            self.receive(rec, &[])?;
            return Ok(());
        };
        let old = self.arrivals.get(&seq)?.unwrap_or_default();
        let refs = received::Refs::decode(old.as_ref())
            .unwrap_or_default()
            .still_valid(rec, |i| self.audit_at(i));
        self.arrivals.insert(seq, received::store(rec, &refs))?;
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> TxResult<Outcome> {
        let mut e = entry.clone();
        e.index = self.seqs.2;
        let leaf = e.encode_to_vec();
        let hash = merkle::leaf_hash(&leaf);
        for (h, i, node) in tree::appended(&self.tree, hash) {
            self.merkle.insert(&tree::node_key(h, i), &node)?;
        }
        self.tree.append(hash);
        self.audit.insert(&self.seqs.2.to_be_bytes(), leaf)?;
        self.seqs.2 += 1;
        Ok(Outcome::Appended(e.index))
    }
}

#[cfg(test)]
#[path = "store_ops_tests.rs"]
mod ops_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use trm_proto::pb;

    fn entry(n: u64) -> Op {
        Op::Audit(AuditEntry {
            time_ms: 1000 + n as i64,
            kind: "admin".into(),
            officer: "Officer Example".into(),
            call: format!("call {n}"),
            ..Default::default()
        })
    }

    /// A store with 5 entries and an (unsigned: the store does not check signatures) checkpoint
    /// at size 4.
    /// Opens a store just dropped: sled's background threads may hold its file lock for a
    /// moment after the last handle is gone, so `Locked` is retried (bounded).
    fn reopen(dir: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(dir) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Overwrites audit entry `index` in place with another officer's (a tampered store).
    fn forge(s: &Store, index: u64) {
        let forged = AuditEntry {
            index,
            time_ms: 1001,
            kind: "admin".into(),
            officer: "Someone Else".into(),
            call: format!("call {index}"),
            ..Default::default()
        };
        s.inner
            .t
            .audit
            .insert(index.to_be_bytes(), forged.encode_to_vec())
            .unwrap();
    }

    fn store_with_checkpoint(dir: &Path) -> Store {
        let s = Store::open(dir).unwrap();
        s.commit_blocking((0..5).map(entry).collect()).unwrap();
        let root = s.audit_root_at(4).unwrap();
        let cp = pb::Checkpoint {
            country: "IT".into(),
            tree_size: 4,
            root_hash: root.to_vec(),
            time_ms: 2000,
            ..Default::default()
        };
        let signed = pb::Signed {
            body: cp.encode_to_vec(),
            ..Default::default()
        };
        s.commit_blocking(vec![Op::PutMeta(checkpoint_key(4), signed.encode_to_vec())])
            .unwrap();
        s
    }

    #[test]
    fn the_merkle_tree_follows_the_leaves_and_survives_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        let leaves: Vec<Hash> = s
            .audit_leaves(0)
            .unwrap()
            .iter()
            .map(|l| merkle::leaf_hash(l))
            .collect();
        assert_eq!(s.audit_head(), (5, merkle::root(&leaves)));
        let head = s.audit_head();
        drop(s);
        let s = reopen(tmp.path()).expect("reopens");
        assert_eq!(s.audit_head(), head);
    }

    #[test]
    fn a_shortened_log_refuses_to_open() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        for i in [4u64, 3] {
            s.inner.t.audit.remove(i.to_be_bytes()).unwrap();
        }
        s.flush().unwrap();
        drop(s);
        match reopen(tmp.path()) {
            Err(StoreError::AuditLog { detail, .. }) => {
                assert!(detail.contains("entries were removed"), "{detail}")
            }
            other => panic!("opened a shortened log: {:?}", other.err()),
        }
    }

    #[test]
    fn an_altered_log_refuses_to_open() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        forge(&s, 1);
        s.flush().unwrap();
        drop(s);
        let err = reopen(tmp.path()).err().expect("refused");
        assert!(err.to_string().contains("entries were altered"), "{err}");
    }

    #[test]
    fn a_clean_close_opens_fast_and_the_full_check_still_finds_an_altered_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        let head = s.audit_head();
        s.close_clean().unwrap();
        drop(s);
        let s = reopen(tmp.path()).unwrap();
        assert_eq!(s.opened(), OpenCheck::Fast { tail: 1 });
        assert_eq!(s.audit_head(), head);
        assert_eq!(s.full_check(&AtomicBool::new(false)).unwrap(), 5);
        // Opening removed the record: without a new clean close the next open is full.
        drop(s);
        let s = reopen(tmp.path()).unwrap();
        assert!(matches!(
            s.opened(),
            OpenCheck::Full {
                reason: FullReason::NoRecord
            }
        ));
        forge(&s, 1);
        s.close_clean().unwrap();
        drop(s);
        // Before the last checkpoint: the fast open does not read it, the full check does.
        let s = reopen(tmp.path()).unwrap();
        assert!(matches!(s.opened(), OpenCheck::Fast { .. }));
        let err = s.full_check(&AtomicBool::new(false)).unwrap_err();
        assert!(err.to_string().contains("entries were altered"), "{err}");
    }

    #[test]
    fn an_entry_altered_after_the_last_checkpoint_is_refused_at_a_fast_open() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        forge(&s, 4);
        s.close_clean().unwrap();
        drop(s);
        let err = reopen(tmp.path()).err().expect("refused");
        assert!(err.to_string().contains("audit entry 4"), "{err}");
    }

    #[test]
    fn a_store_without_merkle_nodes_gets_them_at_a_full_open() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store_with_checkpoint(tmp.path());
        let proof = s.audit_inclusion_proof(2, 5).unwrap();
        s.inner.t.merkle.clear().unwrap();
        s.flush().unwrap();
        drop(s);
        let s = reopen(tmp.path()).unwrap();
        assert!(matches!(s.opened(), OpenCheck::Full { .. }));
        assert_eq!(s.audit_inclusion_proof(2, 5).unwrap(), proof);
        assert_eq!(s.full_check(&AtomicBool::new(false)).unwrap(), 5);
    }

    #[test]
    fn a_failed_write_is_sticky() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path()).unwrap();
        s.commit_blocking(vec![entry(0)]).unwrap();
        s.inner.inject_failure.store(true, Ordering::SeqCst);
        assert!(matches!(
            s.commit_blocking(vec![entry(1)]),
            Err(StoreError::Io(_))
        ));
        assert!(s.write_failure().is_some());
        assert!(matches!(
            s.commit_blocking(vec![entry(2)]),
            Err(StoreError::Failed(_))
        ));
        assert_eq!(s.audit_len(), 1);
        assert_eq!(s.audit_head().0, 1);
    }

    #[test]
    fn thread_roles_and_states_keep_their_stored_strings() {
        assert_eq!(ThreadRole::Sent.as_str(), "sent");
        assert_eq!(ThreadRole::Received.as_str(), "received");
        let states: Vec<&str> = ThreadState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, ["pending", "accepted", "declined", "closed"]);
        for s in ThreadState::ALL {
            assert_eq!(ThreadState::parse(s.as_str()), Some(s));
        }
        for r in [ThreadRole::Sent, ThreadRole::Received] {
            assert_eq!(ThreadRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(ThreadState::parse("Pending"), None);
        assert_eq!(ThreadRole::parse(""), None);
        // The record keeps the strings on disk: the typed setters write exactly them.
        let mut t = ThreadRecord::default();
        t.set_role(ThreadRole::Received);
        t.set_state(ThreadState::Accepted);
        assert_eq!(
            (t.role.as_str(), t.state.as_str()),
            ("received", "accepted")
        );
        assert_eq!(t.role(), Some(ThreadRole::Received));
        assert_eq!(t.state(), Some(ThreadState::Accepted));
        let bytes = t.encode_to_vec();
        let old = ThreadRecord {
            role: "received".into(),
            state: "accepted".into(),
            ..Default::default()
        };
        assert_eq!(bytes, old.encode_to_vec());
    }

    #[test]
    fn overdue_is_pending_past_its_due_time() {
        let now = 1_000_000;
        for (state, due, overdue) in [
            (ThreadState::Pending, now - 1, true),
            (ThreadState::Pending, now, false),
            (ThreadState::Pending, now + 1, false),
            (ThreadState::Pending, 0, false),
            (ThreadState::Accepted, now - 1, false),
            (ThreadState::Declined, now - 1, false),
            (ThreadState::Closed, now - 1, false),
        ] {
            let mut t = ThreadRecord {
                response_due_ms: due,
                ..Default::default()
            };
            t.set_state(state);
            assert_eq!(t.is_overdue(now), overdue, "{state} due {due}");
        }
    }

    #[test]
    fn the_lock_file_is_taken_before_sled_and_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        // Someone else (here: another open file description, as another process has) holds
        // the lock: the store is refused before sled is touched, so no sled file appears.
        std::fs::create_dir_all(&path).unwrap();
        let other = lock_store(&path).unwrap();
        match Store::open(&path) {
            Err(e @ StoreError::Locked(_)) => assert_eq!(
                e.to_string(),
                format!(
                    "store at {} is in use: the node is running (stop it first, e.g. `systemctl stop trm-node`)",
                    path.display()
                )
            ),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a locked store"),
        }
        assert!(matches!(
            Store::ensure_unlocked(&path),
            Err(StoreError::Locked(_))
        ));
        let files: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [LOCK_FILE]);
        drop(other);
        Store::ensure_unlocked(&path).unwrap();
        let s = Store::open(&path).unwrap();
        assert!(path.join(LOCK_FILE).is_file());
        assert!(matches!(lock_store(&path), Err(StoreError::Locked(_))));
        drop(s);
        drop(reopen(&path).unwrap());
    }
}
