//! `trm-node`: initialise and run a country's node. Parses arguments, sets up tracing,
//! installs the crypto provider and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A country's node in the TRM federation.
#[derive(Parser)]
#[command(name = "trm-node", version, about)]
struct Cli {
    /// Log format: human or json (overrides node.toml and TRM_LOG_FORMAT).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new node folder: keys, certificate, node.toml, identity card, operator credential.
    Init {
        /// Node folder to create (must not exist or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// ISO 3166-1 alpha-2 country code, e.g. IT.
        #[arg(long)]
        country: String,
        /// Human name of the node.
        #[arg(long)]
        name: String,
        /// UDP address of the peer listener.
        #[arg(long)]
        listen: SocketAddr,
        /// UDP address of the admin listener (keep it on loopback).
        #[arg(long, default_value = "127.0.0.1:4434")]
        admin_listen: SocketAddr,
        /// Categories this node may receive (its law), comma separated; default: all. A
        /// country that may hold no personal data: reference,exploitation,assistance,risk,return,proceedings
        #[arg(long, value_delimiter = ',')]
        accept: Option<Vec<String>>,
    },
    /// Run the node until SIGINT or SIGTERM.
    Run {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Validate node.toml and name the offending key.
    CheckConfig {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn setup_tracing(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Prints `msg` as one line on stderr and returns `code`.
fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    let msg = msg.to_string();
    let line: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("trm-node: {}", line.join("; "));
    ExitCode::from(code)
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
        _ => fail(64, format!("{} (see --help)", usage_line(&e))),
    })
}

/// The first paragraph of a clap error (without colours, "error: " and the usage), one line.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// The command-line option behind a `node.toml` key that `init` fills in.
fn init_option(key: &str) -> &str {
    match key {
        "country" => "--country",
        "name" => "--name",
        "acceptance" => "--accept",
        other => other,
    }
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.cmd {
        Cmd::Init {
            dir,
            country,
            name,
            listen,
            admin_listen,
            accept,
        } => match trm_node::identity::init(&dir, &country, &name, listen, admin_listen, accept) {
            Ok(r) => {
                println!("created node {country} in {}", r.dir.display());
                println!("  identity card:        {}", r.card.display());
                println!(
                    "  operator credential:  {}",
                    r.operator_credential.display()
                );
                println!("  signing key:          {}", r.signing_fingerprint);
                println!("  TLS certificate:      {}", r.tls_fingerprint);
                println!(
                    "give the identity card to partner countries; check fingerprints by phone"
                );
                ExitCode::SUCCESS
            }
            // init writes node.toml from the options, so a refused value names the option.
            Err(trm_node::identity::IdentityError::Config(
                trm_node::config::ConfigError::Invalid { key, reason },
            )) => fail(64, format!("{}: {reason}", init_option(&key))),
            Err(e) => fail(64, e),
        },
        Cmd::CheckConfig { dir } => match trm_node::config::NodeConfig::load(&dir) {
            Ok(_) => {
                println!(
                    "{}: configuration is valid",
                    dir.join("node.toml").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(64, e),
        },
        Cmd::Run { dir } => {
            let cfg = match trm_node::config::NodeConfig::load(&dir) {
                Ok(c) => c,
                Err(e) => return fail(64, e),
            };
            let format = cli.log_format.unwrap_or(cfg.log.format.clone());
            setup_tracing(&format, &cfg.log.filter);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(1, e),
            };
            match rt.block_on(trm_node::run(&dir, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                // A bad node.toml or key file is the operator's input: 64, like check-config.
                Err(
                    e @ (trm_node::node::StartError::Config(_)
                    | trm_node::node::StartError::Identity(_)),
                ) => fail(64, e),
                Err(e) => fail(1, e),
            }
        }
    }
}
