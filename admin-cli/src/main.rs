//! `trm-admin`: the command line for officers, supervisors, auditors and operators.
//!
//! Every command except `audit verify` and `audit extract` (offline) talks to a node's admin
//! API with the credential from
//! `--cred FILE` or `TRM_CRED`. Listing and show commands print a table, or with `--json` the
//! node's JSON document for scripts. Errors are one line on stderr with a non-zero exit:
//! 64 bad usage or input, 69 node unreachable, 77 refused for the caller's role, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trm_proto::admin as api;

mod bundle;
mod cmd;
mod console;
mod failure;
mod files;
mod html;
mod render;

use cmd::referrals::name_referral;
use cmd::Session;
use failure::Failure;

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
    /// The outgoing law profile: what this country may send to each partner.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Messages received from partner countries.
    Inbox,
    /// What needs doing, for your role: officers (referrals to answer, responses overdue,
    /// information requests to answer, follow-ups due), supervisors (referrals waiting for
    /// approval), operators (peers down or held, cards expiring, the last backup).
    Queue,
    /// One message.
    #[command(subcommand)]
    Message(MessageCmd),
    /// The audit log: export a bundle (auditor), verify one offline (no node, no credential).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// A local web console on this machine with your credential: prints its link (with a
    /// one-time token) as the first line, serves the work queue, inbox, messages, cases (the
    /// case form, referrals and their forms), statistics, directory and audit pages in
    /// English, French, Italian or Albanian, and stops on Ctrl-C or when its terminal closes
    /// (docs/CONSOLE.md).
    Console {
        /// Loopback address to listen on (port 0: the OS chooses); any other address is
        /// refused.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Supervisor or auditor: counts of cases and referrals by category (form of
    /// exploitation, sex, age band, minor, partner, phase reached, outcome) and median days to
    /// acceptance; counts under 5 are shown as <5.
    Stats {
        /// First day counted, YYYY-MM-DD (default: from the start).
        #[arg(long)]
        from: Option<String>,
        /// Last day counted, YYYY-MM-DD (default: to today).
        #[arg(long)]
        to: Option<String>,
        /// Print comma-separated values (table,label,count) instead of tables.
        #[arg(long)]
        csv: bool,
    },
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
        /// The agreement behind the partnership ("MoU IT-AL 2026/03"), 1-200 printable
        /// characters: recorded with the peer and carried in every referral sent to it. Without
        /// it, the agreement already recorded stays.
        #[arg(long, value_name = "REFERENCE")]
        agreement: Option<String>,
        /// The agreement's legal basis, 1-200 printable characters (needs --agreement).
        #[arg(long, value_name = "TEXT", requires = "agreement")]
        legal_basis: Option<String>,
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
    /// Replace a case's values with a new version from a JSON case file (validated as
    /// `case create`; every version is kept).
    Update {
        /// Case id (its pseudonymous reference).
        id: String,
        /// The case file with the case's values now (see `case show --json`).
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
        /// Who gives or withdraws consent: person or guardian (default: guardian on a child
        /// case, person otherwise).
        #[arg(long, value_parser = ["person", "guardian"])]
        by: Option<String>,
        /// How consent was given: written or oral (with --give).
        #[arg(long, value_parser = ["written", "oral"], requires = "give")]
        form: Option<String>,
        /// Withdraw without asking for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Supervisor or auditor: every admin call that named the case (who, role, when, what
    /// call, result), from this node's audit log.
    AccessLog {
        /// Case id or case reference.
        id: String,
    },
    /// Supervisor or auditor: everything this node holds on the case (values, every message
    /// with its verification and delivery, the threads) as JSON in FILE and a printable page
    /// in FILE with the extension .html, both mode 0600, for a subject access request or a
    /// court. Refuses to overwrite either file. Audited.
    Export {
        /// Case id or case reference.
        id: String,
        /// The JSON file to write (new); the HTML page goes beside it with extension .html.
        #[arg(long)]
        out: PathBuf,
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
    /// Reopen this node's side of a closed referral of the case with a country.
    Reopen {
        /// Case reference.
        case_id: String,
        /// The other country.
        #[arg(long)]
        to: String,
        /// Why (no personal data).
        #[arg(long)]
        reason: String,
    },
}

/// The options of `followup send` and `followup preview`.
#[derive(clap::Args)]
struct FollowupArgs {
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
    /// Message id of the information request this answers (marks it answered on both sides).
    #[arg(long, default_value = "")]
    in_reply_to: String,
}

#[derive(Subcommand)]
enum FollowupCmd {
    /// Report progress in one TRM phase, optionally with updated template fields.
    Send(FollowupArgs),
    /// Show what `followup send` with the same options would release, and every withheld
    /// field with its rule; sends nothing.
    Preview(FollowupArgs),
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
enum PolicyCmd {
    /// The outgoing profile per partner beside the partner's published acceptance.
    Show {
        /// Only this partner country.
        #[arg(long)]
        to: Option<String>,
    },
    /// Put node.toml's outgoing profile in force without a restart (operator).
    Reload,
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
    /// What waits for a supervisor's approval, and who approved which categories for which
    /// referral.
    Approvals,
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

#[derive(Subcommand)]
enum MessageCmd {
    /// A message with its verification result and delivery state.
    Show {
        /// Message id (32 hex digits).
        id: String,
    },
}

/// Commands that need no node and no credential.
fn run_offline(cli: &Cli) -> Option<Result<(), Failure>> {
    Some(match &cli.cmd {
        Cmd::Audit(AuditCmd::Verify {
            file,
            partial,
            expect_key,
            witness,
        }) => cmd::audit::verify_bundle(file, *partial, expect_key, witness, cli.json),
        Cmd::Audit(AuditCmd::Extract { file, entry, dir }) => {
            cmd::audit::extract_entry(file, *entry, dir)
        }
        Cmd::Officer(OfficerCmd::Keygen {
            name,
            role,
            node,
            node_cert,
            out,
        }) => cmd::officers::keygen(name, role, *node, node_cert, out),
        _ => return None,
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Some(done) = run_offline(&cli) {
        return done;
    }
    let listen = match &cli.cmd {
        Cmd::Console { listen } => Some(console::check_listen(listen)?),
        _ => None,
    };
    let s = Session {
        cred: files::load_cred(cli.cred.as_deref())?,
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Status => cmd::peers::status(&s).await,
        Cmd::Peer(c) => peer(&s, c).await,
        Cmd::Officer(c) => officer(&s, c).await,
        Cmd::Case(c) => case(&s, c).await,
        Cmd::Referral(c) => referral(&s, c).await,
        Cmd::Followup(FollowupCmd::Send(f)) => {
            let (request, fields_file) = follow_up_request(f)?;
            cmd::referrals::follow_up(&s, request, fields_file).await
        }
        Cmd::Followup(FollowupCmd::Preview(f)) => {
            let (request, fields_file) = follow_up_request(f)?;
            cmd::referrals::follow_up_preview(&s, request, fields_file).await
        }
        Cmd::Queue => cmd::messages::queue(&s).await,
        Cmd::Info(InfoCmd::Request {
            case_id,
            to,
            fields,
            categories,
            purpose,
        }) => {
            let request = api::InfoRequest {
                case_id,
                to,
                fields,
                categories,
                purpose,
            };
            cmd::referrals::info_request(&s, request).await
        }
        Cmd::Directory(DirectoryCmd::List { country }) => cmd::directory::list(&s, country).await,
        Cmd::Directory(DirectoryCmd::Edit { file }) => cmd::directory::edit(&s, &file).await,
        Cmd::Directory(DirectoryCmd::Publish) => cmd::directory::publish(&s).await,
        Cmd::Policy(PolicyCmd::Show { to }) => cmd::policy::show(&s, to).await,
        Cmd::Policy(PolicyCmd::Reload) => cmd::policy::reload(&s).await,
        Cmd::Inbox => cmd::messages::inbox(&s).await,
        Cmd::Console { .. } => match listen {
            Some(addr) => console::run(s, addr).await,
            None => Err(Failure::usage("console: no --listen address")),
        },
        Cmd::Message(MessageCmd::Show { id }) => cmd::messages::show(&s, id).await,
        Cmd::Stats { from, to, csv } => {
            let (from, to) = (from.unwrap_or_default(), to.unwrap_or_default());
            for (name, d) in [("--from", &from), ("--to", &to)] {
                if !d.is_empty() && trm_proto::date::parse_date_ms(d).is_none() {
                    return Err(Failure::usage(format!(
                        "{name} {d:?} is not a date: use YYYY-MM-DD"
                    )));
                }
            }
            cmd::cases::stats(&s, api::Stats { from, to }, csv).await
        }
        Cmd::Audit(AuditCmd::Export { out, from, to }) => {
            cmd::audit::export(&s, &out, from.as_deref(), to.as_deref()).await
        }
        Cmd::Audit(_) => Err(Failure::usage("this audit command contacts no node")),
    }
}

async fn peer(s: &Session, c: PeerCmd) -> Result<(), Failure> {
    match c {
        PeerCmd::Add {
            card,
            replace,
            agreement,
            legal_basis,
        } => {
            let agreed = cmd::peers::Agreed {
                reference: agreement,
                legal_basis,
            };
            cmd::peers::add(s, &card, replace, agreed).await
        }
        PeerCmd::List => cmd::peers::list(s).await,
        PeerCmd::Remove { country } => cmd::peers::remove(s, country).await,
        PeerCmd::Revoke { country } => cmd::peers::revoke(s, country).await,
        PeerCmd::Trust { country } => cmd::peers::trust(s, country).await,
    }
}

async fn officer(s: &Session, c: OfficerCmd) -> Result<(), Failure> {
    match c {
        OfficerCmd::Add {
            name,
            role,
            cert: Some(cert),
            ..
        } => cmd::officers::add_cert(s, name, role, &cert).await,
        OfficerCmd::Add {
            name,
            role,
            out: Some(out),
            ..
        } => cmd::officers::add_out(s, name, role, &out).await,
        OfficerCmd::Add { .. } => Err(Failure::usage(
            "officer add needs --cert FILE (or --out for local testing)",
        )),
        OfficerCmd::Revoke { name } => cmd::officers::revoke(s, name).await,
        OfficerCmd::List => cmd::officers::list(s).await,
        OfficerCmd::Keygen { .. } => Err(Failure::usage("officer keygen contacts no node")),
    }
}

async fn case(s: &Session, c: CaseCmd) -> Result<(), Failure> {
    match c {
        CaseCmd::Create { file } => cmd::cases::create(s, &file).await,
        CaseCmd::Update { id, file } => cmd::cases::update(s, id, &file).await,
        CaseCmd::Reopen {
            case_id,
            to,
            reason,
        } => {
            let request = api::CaseReopen {
                case_id,
                to,
                reason,
            };
            cmd::cases::reopen(s, request).await
        }
        CaseCmd::List => cmd::cases::list(s).await,
        CaseCmd::Show { id } => cmd::cases::show_case(s, id).await,
        CaseCmd::Template => cmd::cases::template(s).await,
        CaseCmd::Timeline { id } => cmd::cases::timeline(s, id).await,
        CaseCmd::AccessLog { id } => cmd::cases::access_log(s, id).await,
        CaseCmd::Export { id, out } => cmd::cases::export(s, id, &out).await,
        CaseCmd::Consent {
            case_id,
            withdraw,
            give,
            by,
            form,
            yes,
        } => {
            let request = api::CaseConsent {
                case_id,
                withdraw: withdraw.unwrap_or_default(),
                give: give.unwrap_or_default(),
                by: by.unwrap_or_default(),
                form: form.unwrap_or_default(),
                confirmed: yes,
            };
            cmd::cases::consent(s, request).await
        }
        CaseCmd::Close {
            case_id,
            to,
            outcome,
            date,
        } => {
            check_outcome(&outcome)?;
            check_date(&date)?;
            let request = api::CaseClose {
                case_id,
                to,
                outcome,
                date,
            };
            cmd::cases::close(s, request).await
        }
    }
}

async fn referral(s: &Session, c: ReferralCmd) -> Result<(), Failure> {
    use cmd::referrals as r;
    match c {
        ReferralCmd::Preview { case_id, to } => r::preview(s, case_id, to).await,
        ReferralCmd::Send { case_id, to } => r::send(s, case_id, to).await,
        ReferralCmd::Approve {
            referral,
            to,
            categories,
        } => {
            let referral = name_referral(referral, to);
            r::approve(
                s,
                api::ReferralApprove {
                    referral,
                    categories,
                },
            )
            .await
        }
        ReferralCmd::Disclose {
            referral,
            to,
            fields,
            categories,
        } => {
            let referral = name_referral(referral, to);
            let request = api::ReferralDisclose {
                referral,
                fields,
                categories,
            };
            r::disclose(s, request).await
        }
        ReferralCmd::Approvals => r::approvals(s).await,
        ReferralCmd::Accept {
            referral,
            from,
            institution,
            focal_point,
        } => {
            check_received_name(&referral, from.as_deref())?;
            let request = api::ReferralAnswer {
                referral: name_referral(referral, from),
                decline: false,
                responsible_institution: institution,
                focal_point,
                reason: String::new(),
            };
            r::answer(s, request).await
        }
        ReferralCmd::Decline {
            referral,
            from,
            reason,
        } => {
            check_received_name(&referral, from.as_deref())?;
            let request = api::ReferralAnswer {
                referral: name_referral(referral, from),
                decline: true,
                reason,
                ..Default::default()
            };
            r::answer(s, request).await
        }
    }
}

/// The request of `followup send|preview`, checked (exit 64 before contacting the node).
fn follow_up_request(f: FollowupArgs) -> Result<(api::FollowUpSend, Option<PathBuf>), Failure> {
    check_phase(&f.phase)?;
    check_date(&f.date)?;
    let request = api::FollowUpSend {
        case_id: f.case_id,
        to: f.to,
        phase: f.phase,
        status: f.status,
        date: f.date,
        fields_json: String::new(),
        in_reply_to: f.in_reply_to,
    };
    Ok((request, f.fields_file))
}

/// `--phase`: one of the words the node accepts (exit 64 before contacting it).
fn check_phase(phase: &str) -> Result<(), Failure> {
    match trm_proto::phases::parse_phase(phase) {
        Some(_) => Ok(()),
        None => Err(Failure::usage(format!(
            "--phase {phase:?} is not a phase: use one of {}",
            trm_proto::phases::PHASES
        ))),
    }
}

/// `--outcome`: one of the words the node accepts.
fn check_outcome(outcome: &str) -> Result<(), Failure> {
    match trm_proto::phases::parse_outcome(outcome) {
        Some(_) => Ok(()),
        None => Err(Failure::usage(format!(
            "--outcome {outcome:?} is not an outcome: use one of {}",
            trm_proto::phases::OUTCOMES
        ))),
    }
}

/// `--date`: empty (none) or a real calendar date.
fn check_date(date: &str) -> Result<(), Failure> {
    if date.is_empty() || trm_proto::date::parse_date_ms(date).is_some() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "--date {date:?} is not a date: use YYYY-MM-DD"
        )))
    }
}

/// A received referral is named by its message id (32 hex digits), or by its case reference
/// with `--from CC`.
fn check_received_name(referral: &str, from: Option<&str>) -> Result<(), Failure> {
    let message_id = referral.len() == 32 && referral.bytes().all(|b| b.is_ascii_hexdigit());
    if from.is_some() || message_id || referral.contains('/') {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{referral} is a case reference: add --from CC, the country that referred it (or give the referral's message id)"
    )))
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
    use crate::files::parse_time;

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
