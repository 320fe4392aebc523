//! `trm-admin`: the command line for officers, supervisors, auditors and operators.
//!
//! Every command except `audit verify` and `audit extract` (offline) talks to a node's admin
//! API with the credential from
//! `--cred FILE` or `TRM_CRED`. Listing and show commands print a table, or with `--json` the
//! node's JSON document for scripts. Errors are one line on stderr with a non-zero exit:
//! 64 bad usage or input, 69 node unreachable, 77 refused for the caller's role, 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;
use trm_node::admin::client::{AdminClient, ClientError};
use trm_node::identity::Credential;
use trm_proto::admin::{self as api, admin_request::Call};

mod render;

/// What to do with the node's answer (JSON and binary data) after a successful call (e.g.
/// write a credential or an audit bundle).
type After = Option<Box<dyn FnOnce(&Value, &[u8]) -> Result<(), Failure>>>;

/// Command line for TRM officers, supervisors, auditors and operators.
#[derive(Parser)]
#[command(name = "trm-admin", version, about)]
struct Cli {
    /// Credential file issued by the node (or set TRM_CRED).
    #[arg(long, global = true, env = "TRM_CRED")]
    cred: Option<PathBuf>,
    /// Print the node's JSON document instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Node identity, peers (reachable or not, last contact) and outbox depth per peer.
    Status,
    /// Partner countries (pinned identity cards).
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Officer credentials (operator only).
    #[command(subcommand)]
    Officer(OfficerCmd),
    /// Cases recorded on this node.
    #[command(subcommand)]
    Case(CaseCmd),
    /// Referrals to partner countries.
    #[command(subcommand)]
    Referral(ReferralCmd),
    /// Follow-ups on an accepted referral.
    #[command(subcommand)]
    Followup(FollowupCmd),
    /// Information requests.
    #[command(subcommand)]
    Info(InfoCmd),
    /// The contact directory of TRM focal points.
    #[command(subcommand)]
    Directory(DirectoryCmd),
    /// Messages received from partner countries.
    Inbox,
    /// One message.
    #[command(subcommand)]
    Message(MessageCmd),
    /// The audit log: export a bundle (auditor), verify one offline (no node, no credential).
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Write a self-contained, offline-verifiable bundle of the node's audit log.
    Export {
        /// Bundle file to write (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
        /// Only entries at or after this time: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix ms.
        #[arg(long)]
        from: Option<String>,
        /// Only entries at or before this time (a date means the end of that day, UTC).
        #[arg(long)]
        to: Option<String>,
    },
    /// Check every signature, hash, inclusion and consistency proof of a bundle, that it has
    /// no gap and (unless --partial) holds the whole log; prints the key fingerprints of the
    /// node and its peers. Exits non-zero naming the entry and what failed. Needs no node and
    /// no credential.
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// Accept a bundle of part of the log (an export with --from/--to); gaps still fail.
        #[arg(long)]
        partial: bool,
        /// Fail unless the node's key history holds this key (its fingerprint, as `status` or
        /// `trm-node init` print it, learnt out of band). Repeatable.
        #[arg(long = "expect-key", value_name = "FINGERPRINT")]
        expect_key: Vec<String>,
        /// Another node's bundle: every checkpoint of this node it holds (in receipts and
        /// witness entries) must agree with this bundle's log. Repeatable.
        #[arg(long, value_name = "OTHER_BUNDLE")]
        witness: Vec<PathBuf>,
    },
    /// Write one entry's signed bytes for checking with another tool (docs/PROTOCOL.md §8):
    /// body.bin, sig.bin (64 bytes) and pub.raw (32-byte Ed25519 key). Offline.
    Extract {
        /// The bundle file.
        file: PathBuf,
        /// Log index of the entry.
        #[arg(long)]
        entry: u64,
        /// Folder to write the three files into (created if missing).
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PeerCmd {
    /// Verify a partner's identity card and pin it; prints its country, name and fingerprints.
    Add {
        /// The partner's card file (card.trm).
        card: PathBuf,
    },
    /// List pinned partners.
    List,
    /// Unpin a partner.
    Remove {
        /// Country code.
        country: String,
    },
    /// Revoke a partner: its connections close, new handshakes and messages are refused;
    /// its earlier signatures still verify in audits. Undo by adding its card again.
    Revoke {
        /// Country code.
        country: String,
    },
    /// Re-accept a partner held because its audit log contradicted its earlier checkpoints
    /// (rolled back or rewritten); its current checkpoint becomes the new baseline.
    Trust {
        /// Country code.
        country: String,
    },
}

#[derive(Subcommand)]
enum OfficerCmd {
    /// Issue a credential with one role; the private key is made here and never sent.
    Add {
        /// Officer name.
        name: String,
        /// operator, officer, supervisor or auditor.
        #[arg(long)]
        role: String,
        /// Credential file to write (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// List issued credentials.
    List,
}

#[derive(Subcommand)]
enum CaseCmd {
    /// Record a case from a JSON case file.
    Create {
        /// The case file (see `case template` and examples/).
        #[arg(long)]
        file: PathBuf,
    },
    /// List cases.
    List,
    /// Show one case.
    Show {
        /// Case id (its pseudonymous reference).
        id: String,
    },
    /// Print an empty, commented JSON case for this node's template.
    Template,
    /// The whole exchange about a case, in both directions, with verification and delivery.
    Timeline {
        /// Case id or case reference.
        id: String,
    },
    /// Record consent given, or withdraw it (erases the category here and asks every
    /// country that received it to erase it).
    Consent {
        /// Case id.
        case_id: String,
        /// Category whose consent is withdrawn.
        #[arg(long, conflicts_with = "give")]
        withdraw: Option<String>,
        /// Category whose consent is given.
        #[arg(long)]
        give: Option<String>,
        /// Who gives consent: person or guardian.
        #[arg(long, default_value = "person")]
        by: String,
    },
    /// Close the case with a country, with its outcome.
    Close {
        /// Case reference.
        case_id: String,
        /// The other country.
        #[arg(long)]
        to: String,
        /// returned_reintegrating, staying_in_destination, transferred, contact_lost, other.
        #[arg(long)]
        outcome: String,
        /// Date of closure, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        date: String,
    },
}

#[derive(Subcommand)]
enum FollowupCmd {
    /// Report progress in one TRM phase, optionally with updated template fields.
    Send {
        /// Case reference.
        case_id: String,
        /// The other country.
        #[arg(long)]
        to: String,
        /// identification, first_assistance, long_term_assistance, return, proceedings.
        #[arg(long)]
        phase: String,
        /// Status in that phase (free text; no personal data).
        #[arg(long)]
        status: String,
        /// Date, YYYY-MM-DD.
        #[arg(long, default_value = "")]
        date: String,
        /// JSON file with updated template fields (same shape as a case file).
        #[arg(long)]
        fields_file: Option<PathBuf>,
        /// Message id of the information request this answers.
        #[arg(long, default_value = "")]
        in_reply_to: String,
    },
}

#[derive(Subcommand)]
enum InfoCmd {
    /// Ask the other country for fields or categories, with a purpose.
    Request {
        /// Case reference.
        case_id: String,
        /// The other country.
        #[arg(long)]
        to: String,
        /// Field paths, comma separated.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// Categories, comma separated.
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
        /// Why the information is needed.
        #[arg(long)]
        purpose: String,
    },
}

#[derive(Subcommand)]
enum DirectoryCmd {
    /// All countries' focal points; entries not confirmed recently are marked stale.
    List {
        /// Only this country.
        #[arg(long)]
        country: Option<String>,
    },
    /// Replace this node's own entries from a JSON file ({"contacts": [...]}).
    Edit {
        /// The file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Sign a new version of this node's entries and send it to every peer.
    Publish,
}

#[derive(Subcommand)]
enum ReferralCmd {
    /// Show every field of a case as released or withheld for a country, and why.
    Preview {
        /// Case id.
        case_id: String,
        /// Recipient country.
        #[arg(long)]
        to: String,
    },
    /// Send a referral of a case to a partner country (releases exactly what preview shows).
    Send {
        /// Case id.
        case_id: String,
        /// Recipient country.
        #[arg(long)]
        to: String,
    },
    /// Supervisor: approve sensitive categories (identity, family, health, child) for a referral.
    Approve {
        /// Case id (with --to) or the referral's message id.
        referral: String,
        /// Recipient country, when REFERRAL is a case id.
        #[arg(long)]
        to: Option<String>,
        /// Categories, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        categories: Vec<String>,
    },
    /// Release more fields of a sent referral (after consent or approval was added).
    Disclose {
        /// Case id (with --to) or the referral's message id.
        referral: String,
        /// Recipient country, when REFERRAL is a case id.
        #[arg(long)]
        to: Option<String>,
        /// Field paths, comma separated.
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// Categories, comma separated.
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
    },
    /// Accept a received referral.
    Accept {
        /// The referral's message id, or its case reference with --from.
        referral: String,
        /// Referring country, when REFERRAL is a case reference.
        #[arg(long)]
        from: Option<String>,
        /// The responsible institution.
        #[arg(long)]
        institution: String,
        /// Its focal point (a role or functional mailbox).
        #[arg(long, default_value = "")]
        focal_point: String,
    },
    /// Decline a received referral (or, given its message id, an information request), with a reason.
    Decline {
        /// The referral's message id, or its case reference with --from.
        referral: String,
        /// Referring country, when REFERRAL is a case reference.
        #[arg(long)]
        from: Option<String>,
        /// Why (no personal data).
        #[arg(long)]
        reason: String,
    },
}

fn name_referral(referral: String, peer: Option<String>) -> String {
    match peer {
        Some(cc) => format!("{referral}/{cc}"),
        None => referral,
    }
}

#[derive(Subcommand)]
enum MessageCmd {
    /// A message with its verification result and delivery state.
    Show {
        /// Message id (32 hex digits).
        id: String,
    },
}

/// A user-facing failure: one line (a refused case file: one line per field error) and an
/// exit code.
struct Failure {
    code: u8,
    lines: Vec<String>,
}

/// `text` on one line: its non-empty lines joined with "; ".
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

impl Failure {
    fn new(code: u8, message: impl AsRef<str>) -> Self {
        Self {
            code,
            lines: vec![one_line(message.as_ref())],
        }
    }

    fn usage(message: impl AsRef<str>) -> Self {
        Self::new(64, message)
    }

    /// The node refused a case file: every field error on its own line, each naming the file.
    fn case_refused(file: &str, message: &str) -> Self {
        let errors = message.strip_prefix("case refused: ").unwrap_or(message);
        Self {
            code: 64,
            lines: errors
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| format!("{file}: {l}"))
                .collect(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Credential(_) => 64,
            ClientError::Unreachable { .. } => 69,
            ClientError::Refused {
                required_role: Some(_),
                ..
            } => 77,
            _ => 1,
        };
        Failure::new(code, e.to_string())
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn load_cred(path: Option<&Path>) -> Result<Credential, Failure> {
    let path =
        path.ok_or_else(|| Failure::usage("no credential: pass --cred FILE or set TRM_CRED"))?;
    Credential::load(path).map_err(|e| Failure::usage(e.to_string()))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or Unix milliseconds; a bare date is the
/// start of the day, or its last millisecond when `end_of_day`.
fn parse_time(s: &str, end_of_day: bool) -> Result<i64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "{s:?} is not a time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix milliseconds"
        ))
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let day = trm_node::time::parse_date_ms(s.get(..10).ok_or_else(bad)?).ok_or_else(bad)?;
    match s.get(10..) {
        Some("") => Ok(if end_of_day { day + 86_399_999 } else { day }),
        Some(rest) => {
            let b = rest.as_bytes();
            if b.len() != 10 || b[0] != b'T' || b[3] != b':' || b[6] != b':' || b[9] != b'Z' {
                return Err(bad());
            }
            let num = |r: std::ops::Range<usize>| rest[r].parse::<i64>().map_err(|_| bad());
            let (h, m, sec) = (num(1..3)?, num(4..6)?, num(7..9)?);
            if h > 23 || m > 59 || sec > 59 {
                return Err(bad());
            }
            Ok(day + ((h * 60 + m) * 60 + sec) * 1000)
        }
        None => Err(bad()),
    }
}

/// `audit verify`: offline, no credential.
fn verify_bundle(
    file: &Path,
    partial: bool,
    expect_key: &[String],
    witness: &[PathBuf],
    json: bool,
) -> Result<(), Failure> {
    for k in expect_key {
        trm_proto::audit::parse_fingerprint(k)
            .map_err(|e| Failure::usage(format!("--expect-key: {e}")))?;
    }
    let bytes = read_file(file)?;
    let opts = trm_proto::audit::Options {
        allow_partial: partial,
        expect_keys: expect_key.to_vec(),
        witnesses: witness
            .iter()
            .map(|w| read_file(w))
            .collect::<Result<_, _>>()?,
    };
    match trm_proto::audit::verify_bundle_with(&bytes, &opts) {
        Ok(s) => {
            print!("{}", render::audit_summary(&s, json));
            Ok(())
        }
        Err(f) => {
            let of = match f.location {
                trm_proto::audit::Location::Witness { bundle, .. } => witness
                    .get(bundle)
                    .map(|w| format!(" ({})", w.display()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Err(Failure::new(
                1,
                format!("{}: verification FAILED at {f}{of}", file.display()),
            ))
        }
    }
}

/// `audit extract`: one entry's signed body, signature and signer as raw files.
fn extract_entry(file: &Path, index: u64, dir: &Path) -> Result<(), Failure> {
    use prost::Message;
    let bytes = read_file(file)?;
    let bundle = trm_proto::auditpb::AuditBundle::decode(bytes.as_slice())
        .map_err(|e| Failure::usage(format!("{}: not an audit bundle ({e})", file.display())))?;
    let entry = bundle
        .entries
        .iter()
        .filter_map(|e| trm_proto::auditpb::AuditEntry::decode(e.entry.as_slice()).ok())
        .find(|e| e.index == index)
        .ok_or_else(|| Failure::usage(format!("the bundle has no entry {index}")))?;
    let tag = match entry.kind.as_str() {
        "sent" | "received" => "trm/1 envelope",
        "receipt_sent" | "receipt_received" => "trm/1 receipt",
        "rejection_sent" | "rejection_received" => "trm/1 rejection",
        "key" => "trm/1 key",
        "witness" => "trm/1 checkpoint",
        other => {
            return Err(Failure::usage(format!(
                "entry {index} ({other}) carries no signature"
            )))
        }
    };
    let io = |e: std::io::Error| Failure::new(1, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    for (name, data) in [
        ("body.bin", &entry.signed_body),
        ("sig.bin", &entry.signature),
        ("pub.raw", &entry.signer),
    ] {
        std::fs::write(dir.join(name), data).map_err(io)?;
    }
    println!(
        "entry {index} ({} {} {}): wrote body.bin, sig.bin, pub.raw to {}\nsigned bytes = \"{tag}\" 0x00 || body.bin; see docs/PROTOCOL.md section 8",
        entry.kind,
        entry.peer,
        entry.call,
        dir.display()
    );
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.cmd {
        Cmd::Audit(AuditCmd::Verify {
            file,
            partial,
            expect_key,
            witness,
        }) => return verify_bundle(file, *partial, expect_key, witness, cli.json),
        Cmd::Audit(AuditCmd::Extract { file, entry, dir }) => {
            return extract_entry(file, *entry, dir)
        }
        _ => {}
    }
    let cred = load_cred(cli.cred.as_deref())?;
    // Everything that can fail locally is checked before the node is contacted.
    let (call, view, after): (Call, render::View, After) = match cli.cmd {
        Cmd::Status => (Call::Status(api::Status {}), render::View::Status, None),
        Cmd::Peer(PeerCmd::Add { card }) => {
            let bytes = read_file(&card)?;
            // The node verifies the card too; checking here names the file and pins nothing.
            if let Err(e) = trm_proto::card::verify_card(&bytes) {
                return Err(Failure::usage(format!(
                    "{}: identity card refused: {e}",
                    card.display()
                )));
            }
            (
                Call::PeerAdd(api::PeerAdd { card: bytes }),
                render::View::Peer,
                None,
            )
        }
        Cmd::Peer(PeerCmd::List) => (Call::PeerList(api::PeerList {}), render::View::Peers, None),
        Cmd::Peer(PeerCmd::Remove { country }) => (
            Call::PeerRemove(api::PeerRemove { country }),
            render::View::Done,
            None,
        ),
        Cmd::Peer(PeerCmd::Revoke { country }) => (
            Call::PeerRevoke(api::PeerRevoke { country }),
            render::View::Done,
            None,
        ),
        Cmd::Peer(PeerCmd::Trust { country }) => (
            Call::PeerTrust(api::PeerTrust { country }),
            render::View::Done,
            None,
        ),
        Cmd::Audit(AuditCmd::Verify {
            file,
            partial,
            expect_key,
            witness,
        }) => return verify_bundle(&file, partial, &expect_key, &witness, cli.json),
        Cmd::Audit(AuditCmd::Extract { file, entry, dir }) => {
            return extract_entry(&file, entry, &dir)
        }
        Cmd::Audit(AuditCmd::Export { out, from, to }) => {
            if out.exists() {
                return Err(Failure::usage(format!(
                    "{} already exists; refusing to overwrite",
                    out.display()
                )));
            }
            let from_ms = from.as_deref().map(|s| parse_time(s, false)).transpose()?;
            let to_ms = to.as_deref().map(|s| parse_time(s, true)).transpose()?;
            let path = out.clone();
            let write = move |_: &Value, data: &[u8]| -> Result<(), Failure> {
                if data.is_empty() {
                    return Err(Failure::new(1, "the node sent no bundle"));
                }
                trm_node::identity::write_public(&path, data)
                    .map_err(|e| Failure::new(1, e.to_string()))
            };
            (
                Call::AuditExport(api::AuditExport {
                    from_ms: from_ms.unwrap_or(0),
                    to_ms: to_ms.unwrap_or(0),
                }),
                render::View::Exported(out.display().to_string()),
                Some(Box::new(write)),
            )
        }
        Cmd::Officer(OfficerCmd::Add { name, role, out }) => {
            if trm_node::admin::Role::parse(&role).is_none() {
                return Err(Failure::usage(format!(
                    "unknown role {role:?}: use operator, officer, supervisor or auditor"
                )));
            }
            if out.exists() {
                return Err(Failure::usage(format!(
                    "{} already exists; refusing to overwrite a credential",
                    out.display()
                )));
            }
            let cert = trm_node::identity::self_signed(&name, &role)
                .map_err(|e| Failure::usage(e.to_string()))?;
            let (n, r) = (name.clone(), role.clone());
            let (cert_pem, key_pem) = (cert.cert_pem.clone(), cert.key_pem.clone());
            let write = move |v: &Value, _: &[u8]| -> Result<(), Failure> {
                let field = |k: &str| {
                    v.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let c = Credential {
                    name: n,
                    role: r,
                    country: field("country"),
                    node: field("node")
                        .parse()
                        .map_err(|_| Failure::new(1, "node returned a bad address"))?,
                    node_cert_sha256: field("node_cert_sha256"),
                    cert_pem,
                    key_pem,
                };
                c.save(&out).map_err(|e| Failure::new(1, e.to_string()))
            };
            (
                Call::OfficerAdd(api::OfficerAdd {
                    name,
                    role,
                    cert_der: cert.cert_der,
                }),
                render::View::Officer,
                Some(Box::new(write)),
            )
        }
        Cmd::Officer(OfficerCmd::List) => (
            Call::OfficerList(api::OfficerList {}),
            render::View::Officers,
            None,
        ),
        Cmd::Case(CaseCmd::Create { file }) => {
            let bytes = read_file(&file)?;
            let json = String::from_utf8(bytes)
                .map_err(|_| Failure::usage(format!("{}: not UTF-8 text", file.display())))?;
            // Syntax is checked here so the error names the file; the node checks fields.
            if let Err(e) = serde_json::from_str::<Value>(&json) {
                return Err(Failure::usage(format!("{}: not JSON: {e}", file.display())));
            }
            (
                Call::CaseCreate(api::CaseCreate { json }),
                render::View::Created(file.display().to_string()),
                None,
            )
        }
        Cmd::Case(CaseCmd::List) => (Call::CaseList(api::CaseList {}), render::View::Cases, None),
        Cmd::Case(CaseCmd::Show { id }) => (
            Call::CaseShow(api::CaseShow { id }),
            render::View::Case,
            None,
        ),
        Cmd::Case(CaseCmd::Template) => (
            Call::CaseTemplate(api::CaseTemplate {}),
            render::View::Template,
            None,
        ),
        Cmd::Referral(ReferralCmd::Preview { case_id, to }) => (
            Call::ReferralPreview(api::ReferralPreview { case_id, to }),
            render::View::Preview,
            None,
        ),
        Cmd::Referral(ReferralCmd::Send { case_id, to }) => (
            Call::ReferralSend(api::ReferralSend { case_id, to }),
            render::View::Sent,
            None,
        ),
        Cmd::Referral(ReferralCmd::Approve {
            referral,
            to,
            categories,
        }) => (
            Call::ReferralApprove(api::ReferralApprove {
                referral: name_referral(referral, to),
                categories,
            }),
            render::View::Json,
            None,
        ),
        Cmd::Referral(ReferralCmd::Disclose {
            referral,
            to,
            fields,
            categories,
        }) => (
            Call::ReferralDisclose(api::ReferralDisclose {
                referral: name_referral(referral, to),
                fields,
                categories,
            }),
            render::View::Json,
            None,
        ),
        Cmd::Referral(ReferralCmd::Accept {
            referral,
            from,
            institution,
            focal_point,
        }) => (
            Call::ReferralAnswer(api::ReferralAnswer {
                referral: name_referral(referral, from),
                decline: false,
                responsible_institution: institution,
                focal_point,
                reason: String::new(),
            }),
            render::View::Json,
            None,
        ),
        Cmd::Referral(ReferralCmd::Decline {
            referral,
            from,
            reason,
        }) => (
            Call::ReferralAnswer(api::ReferralAnswer {
                referral: name_referral(referral, from),
                decline: true,
                reason,
                ..Default::default()
            }),
            render::View::Json,
            None,
        ),
        Cmd::Case(CaseCmd::Timeline { id }) => (
            Call::CaseTimeline(api::CaseTimeline { id }),
            render::View::Timeline,
            None,
        ),
        Cmd::Case(CaseCmd::Consent {
            case_id,
            withdraw,
            give,
            by,
        }) => (
            Call::CaseConsent(api::CaseConsent {
                case_id,
                withdraw: withdraw.unwrap_or_default(),
                give: give.unwrap_or_default(),
                by,
            }),
            render::View::Json,
            None,
        ),
        Cmd::Case(CaseCmd::Close {
            case_id,
            to,
            outcome,
            date,
        }) => (
            Call::CaseClose(api::CaseClose {
                case_id,
                to,
                outcome,
                date,
            }),
            render::View::Json,
            None,
        ),
        Cmd::Followup(FollowupCmd::Send {
            case_id,
            to,
            phase,
            status,
            date,
            fields_file,
            in_reply_to,
        }) => {
            let fields_json = match fields_file {
                Some(f) => {
                    let text = String::from_utf8(read_file(&f)?)
                        .map_err(|_| Failure::usage(format!("{}: not UTF-8 text", f.display())))?;
                    if let Err(e) = serde_json::from_str::<Value>(&text) {
                        return Err(Failure::usage(format!("{}: not JSON: {e}", f.display())));
                    }
                    text
                }
                None => String::new(),
            };
            (
                Call::FollowUpSend(api::FollowUpSend {
                    case_id,
                    to,
                    phase,
                    status,
                    date,
                    fields_json,
                    in_reply_to,
                }),
                render::View::Json,
                None,
            )
        }
        Cmd::Info(InfoCmd::Request {
            case_id,
            to,
            fields,
            categories,
            purpose,
        }) => (
            Call::InfoRequest(api::InfoRequest {
                case_id,
                to,
                fields,
                categories,
                purpose,
            }),
            render::View::Json,
            None,
        ),
        Cmd::Directory(DirectoryCmd::List { country }) => (
            Call::DirectoryList(api::DirectoryList {
                country: country.unwrap_or_default(),
            }),
            render::View::Directory,
            None,
        ),
        Cmd::Directory(DirectoryCmd::Edit { file }) => {
            let json = String::from_utf8(read_file(&file)?)
                .map_err(|_| Failure::usage(format!("{}: not UTF-8 text", file.display())))?;
            (
                Call::DirectoryEdit(api::DirectoryEdit { json }),
                render::View::Json,
                None,
            )
        }
        Cmd::Directory(DirectoryCmd::Publish) => (
            Call::DirectoryPublish(api::DirectoryPublish {}),
            render::View::Json,
            None,
        ),
        Cmd::Inbox => (Call::Inbox(api::Inbox {}), render::View::Inbox, None),
        Cmd::Message(MessageCmd::Show { id }) => (
            Call::MessageShow(api::MessageShow { id }),
            render::View::Message,
            None,
        ),
    };
    let client = AdminClient::connect(&cred).await?;
    let result = client.call_with_data(call).await;
    client.close().await;
    let (value, data) = result.map_err(|e| match (&view, e) {
        // A refused case file is bad input (64) and names the file; a refused role stays 77.
        (
            render::View::Created(file),
            ClientError::Refused {
                message,
                required_role: None,
            },
        ) => Failure::case_refused(file, &message),
        (_, other) => other.into(),
    })?;
    if let Some(after) = after {
        after(&value, &data)?;
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", render::render(&view, &value));
    }
    Ok(())
}

/// Parses the command line; a usage error is one line and exit 64 (clap's own is several
/// lines and exit 2), help and version go to stdout with exit 0.
fn parse_cli() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    Cli::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(64)
        }
        _ => {
            // The first paragraph of clap's message, without "error: " and the usage.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("trm-admin: {first} (see --help)");
            ExitCode::from(64)
        }
    })
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trm-admin: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            for line in &f.lines {
                eprintln!("trm-admin: {line}");
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_as_dates_date_times_or_milliseconds() {
        let day = 1_795_824_000_000; // 2026-11-28T00:00:00Z
        assert_eq!(parse_time("2026-11-28", false).ok(), Some(day));
        assert_eq!(parse_time("2026-11-28", true).ok(), Some(day + 86_399_999));
        assert_eq!(
            parse_time("2026-11-28T01:02:03Z", true).ok(),
            Some(day + 3_723_000)
        );
        assert_eq!(parse_time("1234", false).ok(), Some(1234));
        for bad in [
            "2026-02-30",
            "2026-11-28T25:00:00Z",
            "yesterday",
            "2026-11-28T01:02",
        ] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
    }
}
