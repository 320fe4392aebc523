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
    /// Offline integrity check of a stopped node: config, key files and modes, identity
    /// card, store (migrates an older schema). Exit 0 healthy, 64 config, 75 node running,
    /// 1 any other problem (named on one line).
    Check {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Live probe of a running node through its metrics endpoint (for container health
    /// checks and monitoring scripts). Exit 0 up, 1 not.
    Health {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write a consistent backup of the node: through the admin API while the node runs,
    /// directly from the store while it is stopped. Private keys are left out unless
    /// --include-keys.
    Backup {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
        /// Backup file to write (must not exist); mode 0600.
        #[arg(long)]
        out: PathBuf,
        /// Also include the private key files (signing, TLS, store key, operator credential).
        #[arg(long)]
        include_keys: bool,
        /// Operator credential for a running node (default: DIR/operator.cred).
        #[arg(long, env = "TRM_CRED")]
        cred: Option<PathBuf>,
    },
    /// Restore a backup into a stopped node's folder (or a new, empty one). Refuses while
    /// the node runs, a damaged file and a newer schema. Keeps the replaced store beside.
    Restore {
        /// Backup file.
        #[arg(long)]
        from: PathBuf,
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Signing keys.
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make a new signing key endorsed by the current one (stop the node first). The old key
    /// stays valid for the overlap; every peer gets a KeyAnnouncement signed by the old key
    /// when the node runs again.
    Rotate {
        /// Node folder.
        #[arg(long)]
        dir: PathBuf,
        /// Days the old key stays valid after the rotation.
        #[arg(long, default_value_t = 7)]
        overlap_days: u32,
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

fn backup_exit(e: &trm_node::ops::backup::BackupError) -> u8 {
    use trm_node::ops::backup::BackupError as B;
    match e {
        B::Config(_) | B::Exists(_) | B::NotEmpty(_) | B::Country { .. } => 64,
        B::NotABackup(_) | B::Damaged { .. } | B::Format(_) | B::TooNew { .. } => 65,
        B::Store(trm_node::store::StoreError::Locked(_)) => 75,
        _ => 1,
    }
}

fn print_header(h: &trm_node::ops::backup::Header, out: &std::path::Path) {
    println!(
        "backup of node {} taken at {} ({}): {}",
        h.country,
        h.taken,
        if h.online { "online" } else { "node stopped" },
        out.display()
    );
    println!(
        "  {} store records, {} files, {} bytes, content sha256 {}",
        h.records,
        h.files.len(),
        h.content_bytes,
        h.content_sha256
    );
    if h.includes_private_keys {
        println!("  INCLUDES PRIVATE KEYS: keep this file as secret as keys/ itself");
    } else {
        println!("  private keys not included: keep a separate, offline backup of keys/");
    }
}

/// `trm-node backup`: offline if the store can be opened, else through the admin API.
fn backup(
    dir: &std::path::Path,
    out: &std::path::Path,
    include_keys: bool,
    cred: Option<PathBuf>,
) -> ExitCode {
    use trm_node::ops::backup::{self, BackupError};
    use trm_node::store::StoreError;
    if out.exists() {
        return fail(
            64,
            format!("{} already exists; refusing to overwrite it", out.display()),
        );
    }
    match backup::offline(dir, out, include_keys) {
        Ok(h) => {
            print_header(&h, out);
            return ExitCode::SUCCESS;
        }
        Err(BackupError::Store(StoreError::Locked(_))) => {}
        Err(e) => return fail(backup_exit(&e), e),
    }
    // The node is running: ask it for a snapshot.
    let cred_path = cred.unwrap_or_else(|| dir.join(trm_node::identity::OPERATOR_CRED));
    let cred = match trm_node::identity::Credential::load(&cred_path) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                64,
                format!("the node is running; a backup needs an operator credential: {e}"),
            )
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, e),
    };
    let answer = rt.block_on(async {
        let client = trm_node::admin::client::AdminClient::connect(&cred).await?;
        let r = client
            .call(trm_proto::admin::admin_request::Call::Backup(
                trm_proto::admin::Backup { include_keys },
            ))
            .await;
        client.close().await;
        r
    });
    let v = match answer {
        Ok(v) => v,
        Err(e) => return fail(1, format!("backup through the admin API failed: {e}")),
    };
    let Some(file) = v.get("file").and_then(|f| f.as_str()) else {
        return fail(1, "the node's answer names no file");
    };
    let written = dir.join(file);
    if let Err(e) = backup::move_no_clobber(&written, out) {
        return fail(
            1,
            format!("{e} (the backup is still at {})", written.display()),
        );
    }
    match backup::verify(out) {
        Ok(h) => {
            print_header(&h, out);
            ExitCode::SUCCESS
        }
        Err(e) => fail(backup_exit(&e), e),
    }
}

fn restore(from: &std::path::Path, dir: &std::path::Path) -> ExitCode {
    match trm_node::ops::backup::restore(from, dir, trm_node::base::time::now_ms()) {
        Ok(r) => {
            println!(
                "restored node {} from the backup taken at {} into {}",
                r.header.country,
                r.header.taken,
                r.store.display()
            );
            if let Some(old) = &r.replaced {
                println!(
                    "  the replaced store is kept at {} (delete it when satisfied)",
                    old.display()
                );
            }
            if !r.files_written.is_empty() {
                println!("  files written: {}", r.files_written.join(", "));
            }
            if !r.files_kept.is_empty() {
                println!(
                    "  files kept as they are in the folder: {}",
                    r.files_kept.join(", ")
                );
            }
            if !r.missing_keys.is_empty() {
                println!(
                    "  MISSING private keys: {}; copy them from your key backup before starting",
                    r.missing_keys.join(", ")
                );
            }
            println!("  anything recorded after {} is gone from this node; the next start writes the restore to the audit log", r.header.taken);
            println!("  messages still in the restored outbox are sent again; partners answer duplicates with their first receipt");
            ExitCode::SUCCESS
        }
        Err(e) => fail(backup_exit(&e), e),
    }
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
    if let Some(f) = &cli.log_format {
        if !matches!(f.as_str(), "human" | "json") {
            return fail(64, "--log-format must be human or json");
        }
    }
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
                trm_node::base::config::ConfigError::Invalid { key, reason },
            )) => fail(64, format!("{}: {reason}", init_option(&key))),
            Err(e) => fail(64, e),
        },
        Cmd::CheckConfig { dir } => match trm_node::base::config::NodeConfig::load(&dir) {
            Ok(_) => {
                println!(
                    "{}: configuration is valid",
                    dir.join("node.toml").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(64, e),
        },
        Cmd::Check { dir } => {
            match trm_node::ops::health::check(&dir, trm_node::base::time::now_ms()) {
                Ok(r) => {
                    for l in &r.lines {
                        println!("ok  {l}");
                    }
                    for w in &r.warnings {
                        println!("warning  {w}");
                    }
                    println!("{}: healthy", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e.exit_code(), format!("check failed: {e}")),
            }
        }
        Cmd::Health { dir } => {
            match trm_node::ops::health::probe(&dir, std::time::Duration::from_secs(3)) {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
        Cmd::Key(KeyCmd::Rotate { dir, overlap_days }) => {
            match trm_node::federation::rotation::rotate(
                &dir,
                overlap_days,
                trm_node::base::time::now_ms(),
            ) {
                Ok(r) => {
                    println!("rotated the signing key of {}", dir.display());
                    println!(
                        "  old key:   {} (valid until {})",
                        r.old_key,
                        trm_node::base::time::format_ms(r.old_valid_until_ms)
                    );
                    println!("  new key:   {}", r.new_key);
                    if r.announced_to.is_empty() {
                        println!("  no peer to announce it to");
                    } else {
                        println!(
                            "  announced to {} when the node runs again",
                            r.announced_to.join(", ")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
        Cmd::Backup {
            dir,
            out,
            include_keys,
            cred,
        } => backup(&dir, &out, include_keys, cred),
        Cmd::Restore { from, dir } => restore(&from, &dir),
        Cmd::Run { dir } => {
            let cfg = match trm_node::base::config::NodeConfig::load(&dir) {
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
