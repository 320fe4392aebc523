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
use trm_admin_api::client::{AdminClient, ClientError};
use trm_admin_api::credential::Credential;
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
        /// Re-pin a country already pinned with another card, or revoked (this also lifts the
        /// revocation). Without it such a card is refused (exit 64) naming both fingerprints.
        #[arg(long)]
        replace: bool,
    },
    /// List pinned partners.
    List,
    /// Unpin a partner.
    Remove {
        /// Country code.
        country: String,
    },
    /// Revoke a partner: its connections close, new handshakes and messages are refused;
    /// its earlier signatures still verify in audits. Undo with `peer add --replace CARD`.
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
    /// Officer, on their own machine: make a key pair and a credential file (mode 0600, the
    /// key never leaves this machine) plus a certificate FILE.crt to give the operator. Needs
    /// no credential and no node.
    Keygen {
        /// Officer name (as the operator will register it).
        name: String,
        /// The role asked for: operator, officer, supervisor or auditor (the node decides).
        #[arg(long)]
        role: String,
        /// The node's admin address, from the operator.
        #[arg(long)]
        node: std::net::SocketAddr,
        /// SHA-256 of the node's TLS certificate (hex, spaces or colons allowed), from the
        /// operator (`trm-admin status`, "TLS certificate").
        #[arg(long)]
        node_cert: String,
        /// Credential file to write; the certificate goes beside it with extension .crt.
        #[arg(long)]
        out: PathBuf,
    },
    /// Operator: register an officer's certificate with one role (`--cert`, made by the
    /// officer with `officer keygen`). `--out` instead makes the key pair on THIS machine:
    /// for local testing only, never for real officers.
    Add {
        /// Officer name.
        name: String,
        /// operator, officer, supervisor or auditor.
        #[arg(long)]
        role: String,
        /// The officer's certificate file (PEM, from `officer keygen`).
        #[arg(long, conflicts_with = "out", required_unless_present = "out")]
        cert: Option<PathBuf>,
        /// LOCAL TESTING ONLY: make the officer's key here and write a credential file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Operator: revoke every credential of an officer; their live sessions close and later
    /// calls are refused. Audited.
    Revoke {
        /// Officer name.
        name: String,
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

/// The kinds of file `trm-admin` reads, each with the most it reads of it (docs/CLI.md).
#[derive(Clone, Copy, Debug)]
enum FileKind {
    /// A JSON case file: the node refuses more than [`trm_proto::template::MAX_CASE_BYTES`].
    Case,
    /// A follow-up's JSON fields file: a partial case, same limit.
    Fields,
    /// A directory JSON file.
    Directory,
    /// A partner's identity card.
    Card,
    /// An audit bundle: at most what an export can carry over the admin API.
    Bundle,
    /// A credential file.
    Credential,
    /// An officer's certificate file (PEM or DER).
    Certificate,
}

impl FileKind {
    fn limit(self) -> u64 {
        match self {
            FileKind::Case | FileKind::Fields => trm_proto::template::MAX_CASE_BYTES as u64,
            FileKind::Directory => 1 << 20,
            FileKind::Card | FileKind::Credential | FileKind::Certificate => 64 << 10,
            FileKind::Bundle => 64 << 20,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FileKind::Case => "a case file",
            FileKind::Fields => "a fields file",
            FileKind::Directory => "a directory file",
            FileKind::Card => "an identity card",
            FileKind::Bundle => "an audit bundle",
            FileKind::Credential => "a credential file",
            FileKind::Certificate => "an officer certificate",
        }
    }

    /// The one-line refusal of a file of `size` bytes (or more) at `path`.
    fn too_large(self, path: &Path, size: u64) -> Failure {
        Failure::usage(format!(
            "{}: {} is over the limit of {} for {}",
            path.display(),
            human_bytes(size),
            human_bytes(self.limit()),
            self.name()
        ))
    }
}

/// `n` bytes for a message: exact below 1 KiB, else in KiB or MiB.
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
    .replace(".0 ", " ")
}

/// Reads a whole file of `kind`, refusing (exit 64, naming the limit) one over its limit
/// before reading it, and never reading more than the limit (a file that grows, a device).
fn read_file(path: &Path, kind: FileKind) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let io = |e: std::io::Error| Failure::usage(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let limit = kind.limit();
    if size > limit {
        return Err(kind.too_large(path, size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(kind.too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn load_cred(path: Option<&Path>) -> Result<Credential, Failure> {
    let path =
        path.ok_or_else(|| Failure::usage("no credential: pass --cred FILE or set TRM_CRED"))?;
    if let Ok(m) = std::fs::metadata(path) {
        if m.len() > FileKind::Credential.limit() {
            return Err(FileKind::Credential.too_large(path, m.len()));
        }
    }
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
    trm_proto::date::parse_instant_ms(s, end_of_day).ok_or_else(bad)
}

/// Reads a certificate file: PEM, or raw DER.
fn read_cert(path: &Path) -> Result<Vec<u8>, Failure> {
    use rustls::pki_types::pem::PemObject;
    let bytes = read_file(path, FileKind::Certificate)?;
    let der = match rustls::pki_types::CertificateDer::from_pem_slice(&bytes) {
        Ok(c) => c.to_vec(),
        Err(_) if bytes.first() == Some(&0x30) => bytes,
        Err(e) => {
            return Err(Failure::usage(format!(
                "{}: not a certificate ({e})",
                path.display()
            )))
        }
    };
    Ok(der)
}

/// `officer keygen`: the officer's key pair, made on their own machine. Writes the
/// credential (mode 0600) and the certificate for the operator; contacts no node.
fn keygen(
    name: &str,
    role: &str,
    node: std::net::SocketAddr,
    node_cert: &str,
    out: &Path,
) -> Result<(), Failure> {
    if trm_admin_api::Role::parse(role).is_none() {
        return Err(Failure::usage(format!(
            "unknown role {role:?}: use operator, officer, supervisor or auditor"
        )));
    }
    if name.trim().is_empty() || name.len() > 64 {
        return Err(Failure::usage("officer name must be 1 to 64 characters"));
    }
    let fp: String = node_cert
        .chars()
        .filter(|c| !matches!(c, ' ' | ':'))
        .collect::<String>()
        .to_ascii_lowercase();
    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::usage(
            "--node-cert must be the 64 hex digits of the node's TLS certificate SHA-256",
        ));
    }
    let cert_path = out.with_extension("crt");
    for p in [out, cert_path.as_path()] {
        if p.exists() {
            return Err(Failure::usage(format!(
                "{} already exists; refusing to overwrite",
                p.display()
            )));
        }
    }
    let made = trm_admin_api::credential::self_signed(name, role)
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let cred = Credential {
        name: name.to_string(),
        role: role.to_string(),
        country: String::new(),
        node,
        node_cert_sha256: fp,
        cert_pem: made.cert_pem.clone(),
        key_pem: made.key_pem.clone(),
    };
    cred.save(out).map_err(|e| Failure::new(1, e.to_string()))?;
    trm_admin_api::credential::write_public(&cert_path, made.cert_pem.as_bytes())
        .map_err(|e| Failure::new(1, e.to_string()))?;
    println!(
        "wrote {} (private, mode 0600: keep it on this machine)
wrote {} (certificate {}): give it to your operator, who runs
  trm-admin officer add {name:?} --role {role} --cert {}",
        out.display(),
        cert_path.display(),
        trm_proto::signing::fingerprint(&made.cert_der),
        cert_path.display()
    );
    Ok(())
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
    let bytes = read_file(file, FileKind::Bundle)?;
    let opts = trm_proto::audit::Options {
        allow_partial: partial,
        expect_keys: expect_key.to_vec(),
        witnesses: witness
            .iter()
            .map(|w| read_file(w, FileKind::Bundle))
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
    let bytes = read_file(file, FileKind::Bundle)?;
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
    if let Cmd::Officer(OfficerCmd::Keygen {
        name,
        role,
        node,
        node_cert,
        out,
    }) = &cli.cmd
    {
        return keygen(name, role, *node, node_cert, out);
    }
    let cred = load_cred(cli.cred.as_deref())?;
    // Everything that can fail locally is checked before the node is contacted.
    let (call, view, after): (Call, render::View, After) = match cli.cmd {
        Cmd::Status => (Call::Status(api::Status {}), render::View::Status, None),
        Cmd::Peer(PeerCmd::Add { card, replace }) => {
            let bytes = read_file(&card, FileKind::Card)?;
            // The node verifies the card too; checking here names the file and pins nothing.
            if let Err(e) = trm_proto::card::verify_card(&bytes) {
                return Err(Failure::usage(format!(
                    "{}: identity card refused: {e}",
                    card.display()
                )));
            }
            let call = if replace {
                Call::PeerReplace(api::PeerReplace { card: bytes })
            } else {
                Call::PeerAdd(api::PeerAdd { card: bytes })
            };
            (call, render::View::Peer, None)
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
                trm_admin_api::credential::write_public(&path, data)
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
        Cmd::Officer(OfficerCmd::Keygen { .. }) => {
            return Err(Failure::usage("officer keygen contacts no node"))
        }
        Cmd::Officer(OfficerCmd::Revoke { name }) => (
            Call::OfficerRevoke(api::OfficerRevoke { name }),
            render::View::Json,
            None,
        ),
        Cmd::Officer(OfficerCmd::Add {
            name,
            role,
            cert: Some(cert),
            ..
        }) => {
            if trm_admin_api::Role::parse(&role).is_none() {
                return Err(Failure::usage(format!(
                    "unknown role {role:?}: use operator, officer, supervisor or auditor"
                )));
            }
            let cert_der = read_cert(&cert)?;
            (
                Call::OfficerAdd(api::OfficerAdd {
                    name,
                    role,
                    cert_der,
                }),
                render::View::Officer,
                None,
            )
        }
        Cmd::Officer(OfficerCmd::Add {
            name,
            role,
            out: Some(out),
            ..
        }) => {
            if trm_admin_api::Role::parse(&role).is_none() {
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
            let cert = trm_admin_api::credential::self_signed(&name, &role)
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
                c.save(&out).map_err(|e| Failure::new(1, e.to_string()))?;
                eprintln!("trm-admin: warning: --out made the officer's private key on this machine: for local testing only (real officers use `officer keygen`, the operator `officer add --cert`)");
                Ok(())
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
        Cmd::Officer(OfficerCmd::Add { .. }) => {
            return Err(Failure::usage(
                "officer add needs --cert FILE (or --out for local testing)",
            ))
        }
        Cmd::Officer(OfficerCmd::List) => (
            Call::OfficerList(api::OfficerList {}),
            render::View::Officers,
            None,
        ),
        Cmd::Case(CaseCmd::Create { file }) => {
            let bytes = read_file(&file, FileKind::Case)?;
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
                    let text = String::from_utf8(read_file(&f, FileKind::Fields)?)
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
            let json = String::from_utf8(read_file(&file, FileKind::Directory)?)
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
        // A refused card (invalid, expired, another country's certificate or key, or a
        // country already pinned without --replace) is bad input.
        (
            render::View::Peer,
            ClientError::Refused {
                message,
                required_role: None,
            },
        ) => Failure::usage(message),
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
