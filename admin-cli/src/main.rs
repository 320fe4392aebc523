//! `trm-admin`: the command line for officers, supervisors, auditors and operators.
//!
//! Every command except `audit verify` talks to a node's admin API with the credential from
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

/// What to do with the node's answer after a successful call (e.g. write a credential).
type After = Option<Box<dyn FnOnce(&Value) -> Result<(), Failure>>>;

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
    /// Messages received from partner countries.
    Inbox,
    /// One message.
    #[command(subcommand)]
    Message(MessageCmd),
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

async fn run(cli: Cli) -> Result<(), Failure> {
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
            let write = move |v: &Value| -> Result<(), Failure> {
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
        Cmd::Inbox => (Call::Inbox(api::Inbox {}), render::View::Inbox, None),
        Cmd::Message(MessageCmd::Show { id }) => (
            Call::MessageShow(api::MessageShow { id }),
            render::View::Message,
            None,
        ),
    };
    let client = AdminClient::connect(&cred).await?;
    let result = client.call(call).await;
    client.close().await;
    let value = result.map_err(|e| match (&view, e) {
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
        after(&value)?;
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
