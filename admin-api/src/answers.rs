//! One type per admin call's answer: what the node serialises and `trm-admin` reads.
//!
//! A document's keys come out sorted (the node serialises through `serde_json::Value`, whose
//! map is ordered), and a key absent today is `skip_serializing_if`, so `trm-admin --json`
//! prints the same bytes as when the answers were built by hand.

use trm_proto::admin::admin_request::Call;

/// An admin request and the type of its answer: adding a call is a request type (in
/// `trm_proto::admin`), its answer type here, a handler in the node and a renderer in the CLI.
pub trait AdminCall {
    /// What the node answers.
    type Answer: serde::de::DeserializeOwned + serde::Serialize;
    /// The request on the wire.
    fn into_call(self) -> Call;
}

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trm_proto::admin as api;

/// Links each request type to its answer type.
macro_rules! calls {
    ($($req:ident => $variant:ident => $answer:ty;)*) => {
        $(impl AdminCall for api::$req {
            type Answer = $answer;
            fn into_call(self) -> Call {
                Call::$variant(self)
            }
        })*
    };
}

calls! {
    Status => Status => Status;
    PeerAdd => PeerAdd => PeerCard;
    PeerReplace => PeerReplace => PeerCard;
    PeerList => PeerList => PeerList;
    PeerRemove => PeerRemove => PeerRemoved;
    PeerRevoke => PeerRevoke => PeerRevoked;
    PeerTrust => PeerTrust => PeerTrusted;
    OfficerAdd => OfficerAdd => OfficerAdded;
    OfficerList => OfficerList => OfficerList;
    OfficerRevoke => OfficerRevoke => OfficerRevoked;
    CaseCreate => CaseCreate => CaseCreated;
    CaseList => CaseList => CaseList;
    CaseShow => CaseShow => CaseShow;
    CaseTemplate => CaseTemplate => CaseTemplate;
    CaseTimeline => CaseTimeline => Timeline;
    CaseConsent => CaseConsent => Consent;
    CaseClose => CaseClose => Enqueued;
    CaseUpdate => CaseUpdate => CaseUpdated;
    CaseReopen => CaseReopen => CaseReopened;
    ReferralPreview => ReferralPreview => Preview;
    ReferralSend => ReferralSend => ReferralSent;
    ReferralApprove => ReferralApprove => Approved;
    ReferralDisclose => ReferralDisclose => Disclosed;
    ReferralAnswer => ReferralAnswer => Enqueued;
    FollowUpSend => FollowUpSend => FollowUpSent;
    InfoRequest => InfoRequest => Enqueued;
    Inbox => Inbox => Inbox;
    MessageShow => MessageShow => MessageView;
    DirectoryList => DirectoryList => DirectoryList;
    DirectoryEdit => DirectoryEdit => DirectoryEdited;
    DirectoryPublish => DirectoryPublish => DirectoryPublished;
    AuditExport => AuditExport => AuditExported;
    AuditExportStream => AuditExportStream => AuditExported;
    Backup => Backup => BackupTaken;
    PolicyShow => PolicyShow => PolicyShow;
    PolicyReload => PolicyReload => PolicyReloaded;
    Queue => Queue => Queue;
    ReferralApprovals => ReferralApprovals => Approvals;
    FollowUpPreview => FollowUpPreview => Preview;
    CaseAccessLog => CaseAccessLog => AccessLog;
    CaseExport => CaseExport => CaseExport;
    Stats => Stats => Stats;
}

/// An answer as the JSON text the node sends: keys sorted (through `serde_json::Value`).
pub fn to_json_text<T: Serialize>(answer: &T) -> String {
    serde_json::to_value(answer)
        .map(|v| v.to_string())
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise the answer: {e}\"}}"))
}

/// An answer as `trm-admin --json` prints it: pretty, keys sorted.
pub fn to_json_pretty<T: Serialize>(answer: &T) -> String {
    serde_json::to_value(answer)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default()
}

/// `status`: the node, its peers, its audit log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Admin listener address.
    pub admin_listen: String,
    /// The audit log.
    pub audit: AuditStatus,
    /// Entries in the audit log.
    pub audit_entries: u64,
    /// Country code.
    pub country: String,
    /// The last restore from a backup, if any.
    pub last_restore: Option<LastRestore>,
    /// Node name.
    pub name: String,
    /// Messages waiting in the outbox.
    pub outbox_total: u64,
    /// Referrals past their response date.
    pub overdue: Vec<Thread>,
    /// Peer listener address.
    pub peer_listen: String,
    /// Peer log inconsistencies seen.
    pub peer_log_inconsistent: u64,
    /// Every pinned peer.
    pub peers: Vec<PeerStatus>,
    /// Messages received.
    pub received_total: u64,
    /// Signing key fingerprint.
    pub signing_key: String,
    /// TLS certificate fingerprint.
    pub tls_certificate: String,
}

/// The audit part of `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditStatus {
    /// Tree size of the latest checkpoint.
    pub checkpoint_size: u64,
    /// Time of the latest checkpoint.
    pub checkpoint_time: String,
    /// Entries in the log.
    pub entries: u64,
    /// Whether the node accepts and sends messages.
    pub processing: String,
    /// Root hash, hex.
    pub root: String,
    /// The log can be written.
    pub writable: bool,
    /// Why it cannot ("" when it can).
    pub write_failure: String,
}

/// What a restore left for `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LastRestore {
    /// When the backup was taken (Unix ms).
    pub taken_ms: i64,
    /// RFC 3339 of the same.
    pub taken: String,
    /// When it was restored (Unix ms).
    pub restored_ms: i64,
    /// SHA-256 of the backup's content.
    pub backup_sha256: String,
}

/// One peer in `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Consecutive failed attempts.
    pub attempts: u64,
    /// What this node witnessed of the peer's audit log.
    pub audit_log: PeerAuditLog,
    /// Country code.
    pub country: String,
    /// Failing since ("-" if not).
    pub failing_since: String,
    /// Last contact ("-" if none).
    pub last_contact: String,
    /// Last contact, Unix ms (0 if none).
    pub last_contact_ms: i64,
    /// Last error.
    pub last_error: String,
    /// Node name.
    pub name: String,
    /// Oldest pending message ("-" if none).
    pub oldest_pending: String,
    /// Messages waiting for this peer.
    pub outbox: u64,
    /// reachable, retrying, unreachable, no contact yet, revoked, paused, held: ….
    pub state: String,
}

/// The witness part of a peer's `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerAuditLog {
    /// Held because its log contradicted earlier checkpoints.
    pub held: bool,
    /// Since when ("-" if not held).
    pub held_since: String,
    /// Why.
    pub reason: String,
    /// Time of the latest checkpoint seen.
    pub seen_checkpoint_time: String,
    /// Tree size of the latest checkpoint seen.
    pub seen_tree_size: u64,
}

/// A pinned identity card (`peer add`, `peer list`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerCard {
    /// Categories the peer accepts.
    pub acceptance: Vec<String>,
    /// Its addresses.
    pub addresses: Vec<String>,
    /// The agreement behind the partnership (`peer add --agreement`); absent if none recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// Its legal basis (`--legal-basis`); absent if none recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// Country code.
    pub country: String,
    /// Node name.
    pub name: String,
    /// Revoked by an operator.
    pub revoked: bool,
    /// Signing key fingerprint.
    pub signing_key: String,
    /// TLS certificate fingerprint.
    pub tls_certificate: String,
    /// End of validity.
    pub valid_until: String,
    /// A card not valid yet (`peer add` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// `peer list` only: the state `status` shows (held, revoked, reachable, retrying,
    /// unreachable, no contact yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// `peer list`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerList {
    /// Pinned peers.
    pub peers: Vec<PeerCard>,
}

/// `peer remove`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerRemoved {
    /// Country code.
    pub removed: String,
}

/// `peer revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerRevoked {
    /// When.
    pub at: String,
    /// Country code.
    pub revoked: String,
}

/// `peer trust`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PeerTrusted {
    /// Country code.
    pub trusted: String,
    /// Why it was held.
    pub was_held_for: String,
}

/// `officer add`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfficerAdded {
    /// Certificate fingerprint.
    pub certificate: String,
    /// The node's country.
    pub country: String,
    /// Officer name.
    pub name: String,
    /// The node's admin address.
    pub node: String,
    /// SHA-256 (hex) of the node's TLS certificate.
    pub node_cert_sha256: String,
    /// Role.
    pub role: String,
}

/// `officer list`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfficerList {
    /// Issued credentials.
    pub officers: Vec<OfficerEntry>,
}

/// One issued credential.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfficerEntry {
    /// When it was added.
    pub added: String,
    /// Certificate fingerprint.
    pub certificate: String,
    /// Short id (hex).
    pub id: String,
    /// Officer name.
    pub name: String,
    /// When it was revoked (null while active).
    pub revoked: Option<String>,
    /// Role.
    pub role: String,
}

/// `officer revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OfficerRevoked {
    /// When.
    pub at: String,
    /// Credentials revoked.
    pub credentials: u64,
    /// Officer name.
    pub revoked: String,
}

/// `case create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseCreated {
    /// Fields recorded.
    pub fields: u64,
    /// Case id.
    pub id: String,
}

/// A referral thread with one country about one case.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Thread {
    /// Case reference.
    pub case_ref: String,
    /// Focal point of the responsible institution.
    pub focal_point: String,
    /// Note (e.g. a decline's reason).
    pub note: String,
    /// Past its response date without an answer.
    pub overdue: bool,
    /// The other country.
    pub peer: String,
    /// TRM phase.
    pub phase: String,
    /// Referral message id (hex).
    pub referral: String,
    /// Response date ("-" if none).
    pub response_due: String,
    /// Responsible institution.
    pub responsible_institution: String,
    /// sent or received.
    pub role: String,
    /// Thread state.
    pub state: String,
    /// Last change.
    pub updated: String,
}

/// `case list`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseList {
    /// Cases recorded here.
    pub cases: Vec<CaseEntry>,
    /// Threads of referrals received.
    pub received: Vec<Thread>,
}

/// One case in `case list`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseEntry {
    /// Recorded at.
    pub created: String,
    /// Recorded by.
    pub created_by: String,
    /// Categories erased.
    pub erased: Vec<String>,
    /// Case id.
    pub id: String,
    /// A referral of it is overdue.
    pub overdue: bool,
    /// Its referrals.
    pub referrals: Vec<Thread>,
}

/// `case show`: a case recorded here, or one received (with its thread).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseShow {
    /// The case document (the case file's shape).
    pub case: Value,
    /// Recorded at (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Recorded by (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Categories erased (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<Vec<String>>,
    /// Case id.
    pub id: String,
    /// "recorded here" or "received from CC".
    pub origin: String,
    /// The threads of its referrals (recorded here only; absent while it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrals: Vec<Thread>,
    /// The thread (received only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    /// The latest follow-up this node sent about it, as its own record keeps it: the
    /// version it made, with the phase and status sent (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<CaseVersion>,
    /// The current version (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<CaseVersion>,
    /// How many versions the case has (recorded here only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<u64>,
    /// The basis of the transfer (received only): the agreement and legal basis the sender
    /// signed in its referral, or "not stated by the sender".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_of_transfer: Option<String>,
}

/// `case update`: the case's new version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseUpdated {
    /// Field paths added, changed or removed (never their values).
    pub changed: Vec<String>,
    /// Case id.
    pub id: String,
    /// The new version's number.
    pub version: u64,
}

/// `case reopen`: this node's side of a referral opened again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseReopened {
    /// Case reference.
    pub case: String,
    /// The referral's state now (closed while the other side's closure stands).
    pub state: String,
    /// The other country.
    pub to: String,
}

/// One version of a local case, as the timeline and `case show` list it: never a value.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseVersion {
    /// When.
    pub at: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The officer.
    pub by: String,
    /// "case create", "case update", "case consent" or "follow-up <message id>".
    pub cause: String,
    /// Field paths added, changed or removed.
    pub changed: Vec<String>,
    /// The TRM phase reported by the follow-up that made it, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Its status text, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Version number (1 = as recorded).
    pub version: u64,
}

/// A side of a closed referral opened again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reopening {
    /// When.
    pub at: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The officer (this side) or the country (the partner's side).
    pub by: String,
    /// The other country of the referral.
    pub peer: String,
    /// Why: the officer's reason, or the partner's follow-up that reopened its side.
    pub reason: String,
    /// The side reopened: sent (the referring country's) or received.
    pub side: String,
}

/// `case template`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseTemplate {
    /// This node's fields in template order (core fields minus the switched-off ones, then
    /// the national extensions), as a form needs them.
    #[serde(default)]
    pub fields: Vec<TemplateField>,
    /// The commented JSON template.
    pub template: String,
}

/// One field of this node's template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateField {
    /// Its data category.
    pub category: FieldCategory,
    /// A national extension (`ext.<namespace>.<name>`).
    pub extension: bool,
    /// One-line help.
    pub help: String,
    /// What the value looks like.
    pub kind: FieldKind,
    /// `section.field` or `ext.<namespace>.<name>`.
    pub path: String,
    /// Whether its category identifies a person (identity, family, health, child).
    pub personal: bool,
    /// The section (`ext` for a national extension).
    pub section: String,
}

/// A field's kind (`type`), with its allowed values or sub-fields where it has them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// Text with newlines.
    LongText,
    /// `YYYY-MM-DD`.
    Date,
    /// Yes or no.
    Bool,
    /// An integer.
    Integer,
    /// A year (1900 to 2199).
    Year,
    /// One of `values`.
    Choice {
        /// The allowed values.
        values: Vec<String>,
    },
    /// Several distinct ones of `values`.
    MultiChoice {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A list of one-line texts.
    TextList,
    /// A country code (ISO 3166-1 alpha-2).
    CountryCode,
    /// A list of country codes.
    CountryList,
    /// A list of records with these fields.
    Records {
        /// The fields of each record.
        fields: Vec<RecordField>,
    },
    /// A consent record (one object with these fields; `status` required).
    Consent {
        /// The record's fields.
        fields: Vec<RecordField>,
    },
}

/// A field of a record or consent value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordField {
    /// Its kind.
    pub kind: FieldKind,
    /// Its name in the record.
    pub name: String,
}

impl FieldKind {
    /// The answer's kind for a template kind.
    pub fn of(k: &trm_proto::template::Kind) -> Self {
        use trm_proto::template::Kind as K;
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let fields = |k: &K| {
            k.record_fields()
                .iter()
                .map(|(n, k)| RecordField {
                    kind: FieldKind::of(k),
                    name: n.to_string(),
                })
                .collect()
        };
        match k {
            K::Text => Self::Text,
            K::LongText => Self::LongText,
            K::Date => Self::Date,
            K::Bool => Self::Bool,
            K::Integer => Self::Integer,
            K::Year => Self::Year,
            K::Enum(v) => Self::Choice { values: values(v) },
            K::EnumList(v) => Self::MultiChoice { values: values(v) },
            K::TextList => Self::TextList,
            K::CountryCode => Self::CountryCode,
            K::CountryList => Self::CountryList,
            K::Records(_) => Self::Records { fields: fields(k) },
            K::Consent => Self::Consent { fields: fields(k) },
        }
    }
}

/// A data category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldCategory {
    /// Not classified (treated as personal).
    Unspecified,
    /// `reference`.
    Reference,
    /// `exploitation`.
    Exploitation,
    /// `assistance`.
    Assistance,
    /// `risk`.
    Risk,
    /// `return`.
    Return,
    /// `proceedings`.
    Proceedings,
    /// `identity`.
    Identity,
    /// `family`.
    Family,
    /// `health`.
    Health,
    /// `child`.
    Child,
}

impl From<trm_proto::pb::Category> for FieldCategory {
    fn from(c: trm_proto::pb::Category) -> Self {
        use trm_proto::pb::Category as C;
        match c {
            C::Unspecified => Self::Unspecified,
            C::Reference => Self::Reference,
            C::Exploitation => Self::Exploitation,
            C::Assistance => Self::Assistance,
            C::Risk => Self::Risk,
            C::Return => Self::Return,
            C::Proceedings => Self::Proceedings,
            C::Identity => Self::Identity,
            C::Family => Self::Family,
            C::Health => Self::Health,
            C::Child => Self::Child,
        }
    }
}

impl TemplateField {
    /// The answer's row for one field of a node's template.
    pub fn of(f: &trm_proto::template::FieldInfo<'_>) -> Self {
        TemplateField {
            category: f.category.into(),
            extension: f.extension,
            help: f.help.to_string(),
            kind: FieldKind::of(&f.kind),
            path: f.path.to_string(),
            personal: trm_proto::template::is_personal(f.category),
            section: f.path.split('.').next().unwrap_or_default().to_string(),
        }
    }
}

/// `referral preview`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Preview {
    /// Case id.
    pub case: String,
    /// Every field's decision.
    pub fields: Vec<FieldDecision>,
    /// Recipient.
    pub to: String,
    /// What the officer should know before sending (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// Something a sending officer should know: the referral still leaves.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Warning {
    /// What it is about: `child_section_withheld` (a child case whose `child.*` fields stay
    /// behind; the receiver still sees `reference.minor`), `response_due_past` (the response
    /// due date is before today: the referral is overdue at once), `no_agreement` (no
    /// agreement is recorded for the partner: the referral names no basis of transfer).
    pub code: String,
    /// One line for people; never a case field value.
    pub text: String,
}

/// The decision for one field.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FieldDecision {
    /// Category name.
    pub category: String,
    /// Field path.
    pub path: String,
    /// Released to the peer.
    pub released: bool,
    /// Rules that withheld it (snake_case; empty when released).
    pub withheld_by: Vec<String>,
}

/// `referral send`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReferralSent {
    /// Case id.
    pub case: String,
    /// Message id (hex).
    pub message: String,
    /// Fields released.
    pub released: u64,
    /// Delivery state.
    pub state: String,
    /// Recipient.
    pub to: String,
    /// What the officer should know (absent when none): see [`Warning`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// Fields withheld.
    pub withheld: u64,
}

/// `referral approve`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Approved {
    /// Every category approved for the referral so far (by any supervisor).
    pub approved: Vec<String>,
    /// Case id.
    pub case: String,
    /// Every grant for the referral, oldest first.
    #[serde(default)]
    pub granted: Vec<Grant>,
    /// The referral (message id; "" for the next referral, not sent yet).
    #[serde(default)]
    pub referral: String,
    /// The approving supervisor.
    pub supervisor: String,
    /// Recipient.
    pub to: String,
    /// Categories still withheld for want of another supervisor's approval only.
    #[serde(default)]
    pub waiting: Vec<String>,
    /// Approved categories the outgoing profile blocks, naming its node.toml line.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `referral disclose`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Disclosed {
    /// Case id.
    pub case: String,
    /// Message id (hex).
    pub message: String,
    /// Fields released.
    pub released: u64,
    /// Paths asked for and still withheld.
    pub still_withheld: Vec<String>,
    /// Recipient.
    pub to: String,
}

/// A message enqueued: `referral accept|decline`, `info request`, `case close`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Enqueued {
    /// Case reference.
    pub case: String,
    /// Message kind.
    pub kind: String,
    /// Message id (hex).
    pub message: String,
    /// Delivery state.
    pub state: String,
    /// Recipient.
    pub to: String,
}

/// `followup send`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FollowUpSent {
    /// Case reference.
    pub case: String,
    /// Message kind.
    pub kind: String,
    /// Message id (hex).
    pub message: String,
    /// Fields released.
    pub released: u64,
    /// Recipient.
    pub to: String,
    /// Fields withheld.
    pub withheld: u64,
    /// Each withheld field with the rules that withheld it (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld_fields: Vec<FieldDecision>,
}

/// `case consent`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Consent {
    /// Case id.
    pub case: String,
    /// Category.
    pub consent: String,
    /// Category erased (withdrawal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<String>,
    /// Erasure requests sent (withdrawal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_requests: Option<Vec<String>>,
    /// given or withdrawn.
    pub status: String,
    /// Who gave or withdrew consent: person or guardian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The officer who recorded the withdrawal (withdrawal only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    /// What the officer should know (absent when none): see [`Warning`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// `case timeline`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// Case id or reference.
    pub case: String,
    /// Every message, oldest first.
    pub messages: Vec<MessageView>,
    /// Reopenings of a side of its referrals, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reopened: Vec<Reopening>,
    /// Its threads.
    pub threads: Vec<Thread>,
    /// Its versions after the first (updates of the case recorded here), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<CaseVersion>,
}

/// `message show`: a message, its verification and delivery.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MessageView {
    /// Case reference.
    pub case_ref: String,
    /// Created at.
    pub created: String,
    /// Created at, Unix ms.
    pub created_ms: i64,
    /// Delivery state.
    pub delivery: Delivery,
    /// sent or received.
    pub direction: String,
    /// Categories erased.
    pub erased: Vec<String>,
    /// Extension fields (received only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<Extension>>,
    /// Released fields (the case file's shape).
    pub fields: Value,
    /// Message id (hex).
    pub id: String,
    /// Information requests only: the ids of the messages that answer it, in either
    /// direction (empty: not answered yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<Vec<String>>,
    /// Message it answers (hex, "" if none).
    pub in_reply_to: String,
    /// Kind.
    pub kind: String,
    /// What the message says, field by field (`message show` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadView>,
    /// The other country.
    pub peer: String,
    /// Recipient.
    pub recipient: String,
    /// Sender.
    pub sender: String,
    /// One line about the payload.
    pub summary: String,
    /// Re-verification.
    pub verification: Verification,
}

/// Delivery of a message: sent (with the peer's signed answer) or received.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Delivery {
    /// A sent message.
    Sent {
        /// The peer's signed answer (null until it arrives).
        answer: Option<SignedAnswer>,
        /// When it was answered ("-" if not).
        answered: String,
        /// Delivery state.
        state: String,
        /// While pending: what the node knows of the delivery (`message show` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pending: Option<Box<PendingDelivery>>,
    },
    /// A received message.
    Received {
        /// When it arrived.
        received: String,
        /// "stored".
        state: String,
    },
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery::Received {
            received: String::new(),
            state: String::new(),
        }
    }
}

impl Delivery {
    /// Delivery state.
    pub fn state(&self) -> &str {
        match self {
            Delivery::Sent { state, .. } | Delivery::Received { state, .. } => state,
        }
    }
}

/// A peer's signed answer to a sent message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SignedAnswer {
    /// A receipt.
    Receipt {
        /// When the peer received it.
        received: String,
        /// valid or INVALID.
        signature: String,
        /// Who signed it (country code; `message show` only).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        receiver: String,
        /// stored (first delivery) or duplicate.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        outcome: String,
        /// Fingerprint of the receiver's pinned key the signature was checked against ("" if
        /// none was valid then).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        signer_key: String,
    },
    /// A rejection.
    Rejection {
        /// Reason code.
        reason: String,
        /// Detail.
        detail: String,
        /// Fields concerned.
        fields: Vec<String>,
        /// valid or INVALID.
        signature: String,
    },
    /// Not a receipt or rejection.
    Unreadable,
}

/// A pending sent message: what the node knows of its delivery. The delivery worker retries
/// by itself; these are the peer's health and the outbox as `status` shows them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PendingDelivery {
    /// Messages before it in the peer's outbox.
    pub ahead: u64,
    /// Consecutive failed attempts to reach the peer.
    pub attempts: u64,
    /// Since when delivery to the peer fails ("-" if it does not).
    pub failing_since: String,
    /// Last successful exchange with the peer ("-" if none).
    pub last_contact: String,
    /// Last delivery error ("" if none).
    pub last_error: String,
    /// When the next attempt comes, in words.
    pub next_attempt: String,
    /// The peer's state as in `status`: reachable, retrying, unreachable, no contact yet,
    /// revoked, held or paused.
    pub peer_state: String,
}

/// What a message says, one variant per payload kind (`kind`: the message kind).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PayloadView {
    /// A referral (its fields are in `fields`).
    Referral {
        /// The agreement the sender recorded for this partnership, as signed (control
        /// characters shown as U+FFFD); absent if the sender recorded none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agreement: Option<String>,
        /// Its legal basis; absent if none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        legal_basis: Option<String>,
        /// TRM phase.
        phase: String,
        /// Response date ("-" if none).
        response_due: String,
        /// routine, urgent or emergency.
        urgency: String,
    },
    /// A referral accepted.
    Acceptance {
        /// Focal point (a role or functional mailbox).
        focal_point: String,
        /// Responsible institution.
        responsible_institution: String,
    },
    /// A referral or information request declined.
    Decline {
        /// Why.
        reason: String,
    },
    /// Progress in one phase (updated fields are in `fields`).
    FollowUp {
        /// Date of the progress (YYYY-MM-DD).
        date: String,
        /// TRM phase.
        phase: String,
        /// Status text.
        status: String,
    },
    /// More information asked for.
    InformationRequest {
        /// Categories asked for.
        categories: Vec<String>,
        /// Field paths asked for.
        fields: Vec<String>,
        /// Why.
        purpose: String,
    },
    /// A later release of fields of a referral (the fields are in `fields`).
    Disclosure {
        /// The referral's message id (hex).
        referral: String,
    },
    /// Erasure of categories asked for.
    ErasureRequest {
        /// Categories to erase.
        categories: Vec<String>,
        /// consent_withdrawn or retention_expired.
        reason: String,
        /// The referral's message id (hex).
        referral: String,
    },
    /// Erasure done.
    ErasureConfirmation {
        /// Categories erased.
        categories: Vec<String>,
        /// When they were erased.
        erased: String,
        /// The request's message id (hex).
        request: String,
    },
    /// The case closed with this country.
    Closure {
        /// Date of closure (YYYY-MM-DD).
        date: String,
        /// Outcome.
        outcome: String,
    },
    /// A new directory of focal points.
    DirectoryUpdate {
        /// Its contacts.
        contacts: u64,
        /// Directory version.
        version: u64,
    },
    /// A new signing key.
    KeyAnnouncement {
        /// The new key's fingerprint.
        key: String,
    },
    /// No payload could be read.
    Unknown,
}

/// A message's re-verification.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    /// Disclosures against the signed digests.
    pub disclosures: String,
    /// Envelope hash (hex).
    pub envelope_hash: String,
    /// The envelope signature.
    pub signature: String,
}

/// An extension field of a received message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Extension {
    /// Category (as declared by the sender when unknown here).
    pub category: String,
    /// Help text.
    pub help: String,
    /// This node's template knows it.
    pub known_here: bool,
    /// Field path.
    pub path: String,
}

/// `inbox`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inbox {
    /// Received messages: emergency first, then child cases, then urgent, then the rest; in
    /// arrival order within each.
    pub messages: Vec<InboxEntry>,
}

/// One received message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Case reference.
    pub case_ref: String,
    /// Categories of its fields.
    pub categories: Vec<String>,
    /// Sender country.
    pub from: String,
    /// Message id (hex).
    pub id: String,
    /// Kind.
    pub kind: String,
    /// The person is a child (`child.minor` as disclosed to this node); `null`: unknown (not
    /// disclosed).
    pub minor: Option<bool>,
    /// Received at.
    pub received: String,
    /// routine, urgent or emergency (`reference.urgency` as disclosed to this node); `null`:
    /// unknown (not disclosed).
    pub urgency: Option<String>,
}

/// `directory list`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirectoryList {
    /// Contact entries.
    pub entries: Vec<DirectoryEntry>,
    /// The directory version held for each country: this node's own and each partner's last
    /// `DirectoryUpdate` (these updates are shown here, not in the inbox).
    #[serde(default)]
    pub versions: Vec<DirectoryVersion>,
    /// Entries older than this are stale.
    pub stale_after_days: u64,
}

/// One focal point.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Channels.
    pub channels: Vec<String>,
    /// Country.
    pub country: String,
    /// Hours.
    pub hours: String,
    /// Institution.
    pub institution: String,
    /// Languages.
    pub languages: Vec<String>,
    /// Last confirmed (empty: the entry was never confirmed; it counts as stale).
    pub last_confirmed: String,
    /// This node's own entry.
    pub own: bool,
    /// Role.
    pub role: String,
    /// Not confirmed recently.
    pub stale: bool,
    /// Unit.
    pub unit: String,
    /// Directory version.
    pub version: u64,
}

/// One country's directory as held here.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirectoryVersion {
    /// Country code.
    pub country: String,
    /// This node's own directory.
    pub own: bool,
    /// Version (0: edited here, never published).
    pub version: u64,
    /// When the country signed it (empty: never published).
    pub published: String,
    /// Entries.
    pub entries: u64,
}

/// `directory edit`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirectoryEdited {
    /// Entries.
    pub entries: u64,
    /// Published (always false: publish is separate).
    pub published: bool,
}

/// `directory publish`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirectoryPublished {
    /// One update per peer.
    pub sent: Vec<SentTo>,
    /// New version.
    pub version: u64,
}

/// A message enqueued for one peer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SentTo {
    /// Message id (hex).
    pub message: String,
    /// Recipient.
    pub to: String,
}

/// `audit export` (the bundle travels beside the answer).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditExported {
    /// Checkpoints in the bundle.
    pub checkpoints: u64,
    /// Country.
    pub country: String,
    /// complete or partial.
    pub coverage: String,
    /// Entries in the bundle.
    pub entries: u64,
    /// Range start.
    pub from: String,
    /// Peer cards in the bundle.
    pub peer_cards: u64,
    /// Range end.
    pub to: String,
    /// Size of the log.
    pub tree_size: u64,
}

/// `backup` through the admin API (`trm-node backup` on a running node).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BackupTaken {
    /// Content bytes.
    pub content_bytes: u64,
    /// Content SHA-256 (hex).
    pub content_sha256: String,
    /// The file, relative to the node folder.
    pub file: String,
    /// Holds private keys.
    pub includes_private_keys: bool,
    /// Records.
    pub records: u64,
    /// When it was taken.
    pub taken: String,
}

/// `policy show`: what this country's law lets it send to each partner, and what each partner
/// accepts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PolicyShow {
    /// This node's country code.
    pub country: String,
    /// Categories this node accepts (published in its identity card).
    pub acceptance: Vec<String>,
    /// `default_outgoing`: the profile of partners without their own entry.
    pub default_outgoing: Vec<String>,
    /// One entry per partner: every pinned peer and every country named in `outgoing`.
    pub partners: Vec<PartnerPolicy>,
}

/// One partner's side of [`PolicyShow`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartnerPolicy {
    /// Country code.
    pub country: String,
    /// The `node.toml` key that decides this partner's profile (`outgoing.CC` or
    /// `default_outgoing`).
    pub profile_key: String,
    /// Categories this country's law lets it send there.
    pub outgoing: Vec<String>,
    /// Categories the partner accepts, from its pinned card; `null`: not pinned.
    pub acceptance: Option<Vec<String>>,
    /// Categories both allow: the most a referral there can carry (consent, approval and the
    /// four-eyes rule still decide per case).
    pub may_send: Vec<String>,
}

/// `policy reload`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PolicyReloaded {
    /// Profile entries that changed, each with its `node.toml` key.
    pub changed: Vec<ProfileChange>,
    /// Other top-level `node.toml` keys that differ from the running configuration: they take
    /// effect only at the next restart.
    pub restart_needed: Vec<String>,
}

/// One changed entry of the outgoing profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProfileChange {
    /// `outgoing.CC` or `default_outgoing`.
    pub key: String,
    /// Categories before (empty: no entry).
    pub before: Vec<String>,
    /// Categories now (empty: no entry, or an empty list).
    pub after: Vec<String>,
    /// Whether the entry exists now.
    pub present: bool,
}

/// `queue`: what needs doing, for the caller's role, most pressing first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Queue {
    /// The caller's role (officer, supervisor or operator): what the queue holds.
    pub role: String,
    /// What needs doing.
    pub items: Vec<QueueItem>,
    /// Operators: the last backup this node took (null: none taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
}

/// One thing to do.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueItem {
    /// What kind of work.
    pub kind: QueueKind,
    /// Case reference ("" for operator items).
    pub case_ref: String,
    /// The other country ("" if none).
    pub peer: String,
    /// Referral or message id (hex) to act on ("" if none).
    pub id: String,
    /// When it is or was due (RFC 3339; "-" if no date).
    pub due: String,
    /// Past its due time.
    pub overdue: bool,
    /// routine, urgent or emergency as known here (null: unknown).
    pub urgency: Option<String>,
    /// The person is a child, as known here (null: unknown).
    pub minor: Option<bool>,
    /// One line about it (never a case field value).
    pub what: String,
    /// The command to act with.
    pub command: String,
}

/// The kinds of work in the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Officer: a referral received, not yet accepted or declined.
    #[default]
    AnswerReferral,
    /// Officer: a referral sent, unanswered by the partner past its response date.
    ResponseOverdue,
    /// Officer: an information request received, not yet answered.
    AnswerInformationRequest,
    /// Officer: an accepted referral without a follow-up from this node for too long.
    FollowUpDue,
    /// Supervisor: sensitive categories of a referral wait for approval.
    Approval,
    /// Operator: a partner unreachable, held or revoked.
    PeerDown,
    /// Operator: a partner's identity card expires soon.
    CardExpiring,
    /// Operator: no recent backup.
    Backup,
}

/// The last backup this node took (`queue`, operators).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LastBackup {
    /// When (RFC 3339).
    pub taken: String,
    /// Whole days since.
    pub age_days: u64,
}

/// `referral approvals`: what waits for a supervisor, and who approved what.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Approvals {
    /// Referrals whose sensitive categories wait for approval.
    pub waiting: Vec<ApprovalWait>,
    /// Approvals given, per referral.
    pub approvals: Vec<ApprovalView>,
}

/// Categories of one referral that wait for a supervisor's approval.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApprovalWait {
    /// Case id.
    pub case: String,
    /// Recipient.
    pub to: String,
    /// The sent referral's message id ("" before it is sent).
    pub referral: String,
    /// Categories withheld only for want of approval.
    pub categories: Vec<String>,
}

/// The approvals of one referral.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApprovalView {
    /// Case id.
    pub case: String,
    /// Recipient.
    pub to: String,
    /// The referral they belong to (message id; "" for the next referral, not sent yet).
    pub referral: String,
    /// Every grant, oldest first.
    pub granted: Vec<Grant>,
}

/// One supervisor's approval of one category.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Grant {
    /// Category.
    pub category: String,
    /// Supervisor.
    pub supervisor: String,
    /// When (RFC 3339).
    pub at: String,
}

/// `case access-log`: every admin call that named the case, from the audit log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AccessLog {
    /// Case id or reference.
    pub case: String,
    /// Oldest first.
    pub entries: Vec<AccessEntry>,
}

/// One admin call that named a case.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AccessEntry {
    /// The call (`case show`, `referral send`, ...).
    pub call: String,
    /// Position in the audit log.
    pub index: u64,
    /// Officer name.
    pub officer: String,
    /// ok, failed or `refused: role`.
    pub result: String,
    /// The officer's role.
    pub role: String,
    /// The audit target as logged (the case, `CASE -> CC`, `CASE message ID`, ...).
    pub target: String,
    /// When.
    pub time: String,
    /// When, Unix ms.
    pub time_ms: i64,
}

/// `case export`: everything this node holds on one case.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseExport {
    /// The case as `case show` shows it (values, threads).
    pub case: CaseShow,
    /// The exporting node's country.
    pub country: String,
    /// When the export was made.
    pub exported: String,
    /// Who made it.
    pub exported_by: String,
    /// Every message sent and received about the case, with its signature verification and
    /// delivery, oldest first, each with its payload in words.
    pub timeline: Timeline,
}

/// A count as published: the number, or `"<5"` when it is suppressed (small, or derivable
/// from the others and the total).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// Shown.
    Count(u64),
    /// Suppressed: always the text `<5`.
    Suppressed(String),
}

impl Cell {
    /// The suppressed cell.
    pub fn suppressed() -> Self {
        Cell::Suppressed("<5".into())
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Count(n) => write!(f, "{n}"),
            Cell::Suppressed(s) => f.write_str(s),
        }
    }
}

/// `stats`: counts of cases and referrals by category, for monitoring and evaluation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// First day counted (YYYY-MM-DD), "" = open.
    pub from: String,
    /// Median days from referral to acceptance, by direction ("sent", "received"): a number
    /// with one decimal, "<5" when fewer than 5 referrals were accepted, "-" when none.
    pub median_days_to_acceptance: std::collections::BTreeMap<String, String>,
    /// Tables, in a fixed order.
    pub tables: Vec<StatTable>,
    /// Cells from 1 to this minus one are suppressed.
    pub threshold: u64,
    /// Last day counted (YYYY-MM-DD), "" = open.
    pub to: String,
}

/// One table of counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatTable {
    /// What is counted by: `exploitation_form`, `sex`, `age_band`, `minor`, `partner`,
    /// `phase_reached`, `outcome`.
    pub by: String,
    /// A case may count in several rows (forms of exploitation).
    pub multiple: bool,
    /// Rows, in a fixed order.
    pub rows: Vec<StatRow>,
    /// Total cases or referrals counted.
    pub total: Cell,
    /// `cases` or `referrals`.
    pub unit: String,
}

/// One row of a table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatRow {
    /// How many.
    pub count: Cell,
    /// The category.
    pub label: String,
}
