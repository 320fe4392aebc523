//! `trm-node`: initialise and run a country's node. Parses arguments, sets up tracing,
//! installs the crypto provider, calls into the library and prints what it did; the work
//! (backup, restore, checks, rotation, the node itself) is all in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::process::ExitCode;
use trm_node::base::time::now_ms;

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

fn print_header(h: &trm_node::ops::backup::Header, out: &Path) {
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

/// `trm-node backup`.
fn backup(dir: &Path, out: &Path, include_keys: bool, cred: Option<PathBuf>) -> ExitCode {
    match trm_node::ops::backup::take(dir, out, include_keys, cred.as_deref()) {
        Ok(h) => {
            print_header(&h, out);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.exit_code(), e),
    }
}

/// `trm-node restore`.
fn restore(from: &Path, dir: &Path) -> ExitCode {
    let r = match trm_node::ops::backup::restore(from, dir, now_ms()) {
        Ok(r) => r,
        Err(e) => return fail(e.exit_code(), e),
    };
    let h = &r.header;
    println!(
        "restored node {} from the backup taken at {} into {}",
        h.country,
        h.taken,
        r.store.display()
    );
    if let Some(old) = &r.replaced {
        println!(
            "  the replaced store is kept at {} (delete it when satisfied)",
            old.display()
        );
    }
    let list = |label: &str, items: &[String]| {
        if !items.is_empty() {
            println!("  {label}: {}", items.join(", "));
        }
    };
    list("files written", &r.files_written);
    list("files kept as they are in the folder", &r.files_kept);
    if !r.missing_keys.is_empty() {
        println!(
            "  MISSING private keys: {}; copy them from your key backup before starting",
            r.missing_keys.join(", ")
        );
    }
    println!("  anything recorded after {} is gone from this node; the next start writes the restore to the audit log", h.taken);
    println!("  messages still in the restored outbox are sent again; partners answer duplicates with their first receipt");
    ExitCode::SUCCESS
}

/// `trm-node init`.
fn init(
    dir: &Path,
    country: &str,
    name: &str,
    listen: (SocketAddr, SocketAddr),
    accept: Option<Vec<String>>,
) -> ExitCode {
    use trm_node::base::config::ConfigError;
    use trm_node::identity::IdentityError;
    match trm_node::identity::init(dir, country, name, listen.0, listen.1, accept) {
        Ok(r) => {
            println!("created node {country} in {}", r.dir.display());
            println!("  identity card:        {}", r.card.display());
            println!(
                "  operator credential:  {}",
                r.operator_credential.display()
            );
            println!("  signing key:          {}", r.signing_fingerprint);
            println!("  TLS certificate:      {}", r.tls_fingerprint);
            println!("give the identity card to partner countries; check fingerprints by phone");
            ExitCode::SUCCESS
        }
        // init writes node.toml from the options, so a refused value names the option.
        Err(IdentityError::Config(ConfigError::Invalid { key, reason })) => {
            fail(64, format!("{}: {reason}", init_option(&key)))
        }
        Err(e) => fail(64, e),
    }
}

/// `trm-node check-config`.
fn check_config(dir: &Path) -> ExitCode {
    match trm_node::base::config::NodeConfig::load(dir) {
        Ok(_) => {
            println!(
                "{}: configuration is valid",
                dir.join("node.toml").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(64, e),
    }
}

/// `trm-node check`.
fn check(dir: &Path) -> ExitCode {
    match trm_node::ops::health::check(dir, now_ms()) {
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

/// `trm-node health`.
fn health(dir: &Path) -> ExitCode {
    match trm_node::ops::health::probe(dir, std::time::Duration::from_secs(3)) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}

/// `trm-node key rotate`.
fn rotate(dir: &Path, overlap_days: u32) -> ExitCode {
    let r = match trm_node::federation::rotation::rotate(dir, overlap_days, now_ms()) {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
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

/// `trm-node run`: until SIGINT or SIGTERM.
fn run(dir: &Path, log_format: Option<String>) -> ExitCode {
    use trm_node::node::StartError;
    let cfg = match trm_node::base::config::NodeConfig::load(dir) {
        Ok(c) => c,
        Err(e) => return fail(64, e),
    };
    setup_tracing(&log_format.unwrap_or(cfg.log.format), &cfg.log.filter);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, e),
    };
    match rt.block_on(trm_node::run(dir, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // A bad node.toml or key file is the operator's input: 64, like check-config.
        Err(e @ (StartError::Config(_) | StartError::Identity(_))) => fail(64, e),
        Err(e) => fail(1, e),
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
        } => init(&dir, &country, &name, (listen, admin_listen), accept),
        Cmd::CheckConfig { dir } => check_config(&dir),
        Cmd::Check { dir } => check(&dir),
        Cmd::Health { dir } => health(&dir),
        Cmd::Key(KeyCmd::Rotate { dir, overlap_days }) => rotate(&dir, overlap_days),
        Cmd::Backup {
            dir,
            out,
            include_keys,
            cred,
        } => backup(&dir, &out, include_keys, cred),
        Cmd::Restore { from, dir } => restore(&from, &dir),
        Cmd::Run { dir } => run(&dir, cli.log_format),
    }
}
