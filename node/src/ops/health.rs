//! Health checks: `trm-node check` (offline integrity of a stopped node's folder) and
//! `trm-node health` (a live probe of a running node through its metrics endpoint).
//!
//! The offline check refuses while the node runs: the store is opened read-write (so that
//! its integrity check and any pending migration run exactly as at start), and sled's lock
//! lets only one process do that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::base::config::{ConfigError, NodeConfig};
use crate::base::time::format_ms;
use crate::identity::{IdentityError, NodeKeys};
use crate::store::{Store, StoreError};

/// The first problem found. Each message is one line naming the file or key.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// node.toml.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key files, certificate, key history.
    #[error(transparent)]
    Keys(#[from] IdentityError),
    /// A folder that must be private is not.
    #[error("{0}: folder must be mode 0700 (run `chmod 700` on it)")]
    FolderMode(PathBuf),
    /// The identity card.
    #[error("{path}: {reason}")]
    Card {
        /// card file
        path: PathBuf,
        /// what is wrong
        reason: String,
    },
    /// The node is running: its store is locked.
    #[error("the node is running (its store {0} is locked): stop it for an offline check, or use `trm-node health` for a live probe")]
    Running(PathBuf),
    /// The store is missing.
    #[error("{0}: store is missing (restore it from a backup, see docs/OPERATIONS.md)")]
    NoStore(PathBuf),
    /// The store (corrupt, too new, or locked by the running node).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store key does not open this store (e.g. a backup restored after an erasure).
    #[error("{0} is not the key this store was sealed with: restore the store.key kept with the backup (see docs/OPERATIONS.md)")]
    StoreKey(PathBuf),
    /// The store is behind the rollback tripwire (see [`crate::audit::check_tripwire`]).
    #[error("{0}")]
    Rollback(String),
    /// A stored peer card no longer verifies.
    #[error("stored identity card of peer {peer} does not verify: {reason}")]
    PeerCard {
        /// country
        peer: String,
        /// why
        reason: String,
    },
}

impl CheckError {
    /// Exit code: 64 configuration, 75 the node is running (try again when stopped), 1 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckError::Config(_) => 64,
            CheckError::Running(_) | CheckError::Store(StoreError::Locked(_)) => 75,
            _ => 1,
        }
    }
}

/// What the check looked at, one line each, for the operator.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Lines such as "config: node.toml is valid".
    pub lines: Vec<String>,
    /// Warnings that do not fail the check.
    pub warnings: Vec<String>,
}

/// Checks a stopped node's folder: configuration, key files and their modes, the identity
/// card against the keys, the store (integrity, schema; migrates an older one) and the
/// stored peer cards.
pub fn check(dir: &Path, now_ms: i64) -> Result<CheckReport, CheckError> {
    let mut r = CheckReport::default();
    let cfg = NodeConfig::load(dir)?;
    r.lines.push(format!(
        "config: {} is valid (node {}, {})",
        dir.join(crate::base::config::CONFIG_FILE).display(),
        cfg.country,
        cfg.name
    ));

    // Refuse up front while the node runs rather than half-way.
    let store_path = dir.join(&cfg.paths.store);
    if let Err(StoreError::Locked(p)) = Store::ensure_unlocked(&store_path) {
        return Err(CheckError::Running(p));
    }

    let keys = NodeKeys::load(dir, &cfg)?;
    check_key_files(dir, &cfg, &keys, &mut r)?;
    check_card(&dir.join(&cfg.paths.card), &cfg, &keys, now_ms, &mut r)?;

    if !store_path.is_dir() {
        return Err(CheckError::NoStore(store_path));
    }
    let store = Store::open(&store_path)?;
    full_check(&store, &mut r)?;
    check_store(dir, &cfg, &keys, &store, &mut r)?;
    // Everything was checked and nothing written: the next start may take the fast path.
    store.close_clean()?;
    Ok(r)
}

/// The keys folder is private; warns about a first operator's key left in the folder.
fn check_key_files(
    dir: &Path,
    cfg: &NodeConfig,
    keys: &NodeKeys,
    r: &mut CheckReport,
) -> Result<(), CheckError> {
    use std::os::unix::fs::PermissionsExt;
    let keys_dir = dir.join(&cfg.paths.signing_key);
    if let Some(folder) = keys_dir.parent() {
        let mode = std::fs::metadata(folder)
            .map_err(|source| IdentityError::Io {
                path: folder.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CheckError::FolderMode(folder.to_path_buf()));
        }
    }
    let cred = dir.join(crate::identity::OPERATOR_CRED);
    if cred.exists() {
        crate::identity::read_private(&cred)?;
        r.warnings.push(format!(
            "{} holds the first operator's private key: move it to the operator's machine",
            cred.display()
        ));
    }
    r.lines.push(format!(
        "keys: private key files are mode 0600; key history ends with the current key ({} keys); signing key {}",
        keys.history.len(),
        trm_proto::signing::fingerprint(&keys.public_key())
    ));
    Ok(())
}

/// The identity card at `card_path` verifies, is the configured country's and names the
/// node's current keys; warns when it expires within 30 days of `now_ms`.
fn check_card(
    card_path: &Path,
    cfg: &NodeConfig,
    keys: &NodeKeys,
    now_ms: i64,
    r: &mut CheckReport,
) -> Result<(), CheckError> {
    let card_err = |reason: String| CheckError::Card {
        path: card_path.to_path_buf(),
        reason,
    };
    let raw = std::fs::read(card_path).map_err(|e| card_err(e.to_string()))?;
    let card = trm_proto::card::verify_card(&raw)
        .map_err(|e| card_err(format!("does not verify: {e}")))?;
    if card.country() != cfg.country {
        return Err(card_err(format!(
            "card is for {}, node.toml says {}",
            card.country(),
            cfg.country
        )));
    }
    if card.card.signing_key != keys.public_key() {
        return Err(card_err(
            "card's signing key is not the node's current signing key".into(),
        ));
    }
    if card.card.tls_cert_der != keys.tls_cert.as_ref() {
        return Err(card_err(
            "card's TLS certificate is not the node's certificate".into(),
        ));
    }
    if card.card.valid_until_ms < now_ms + 30 * 24 * 3600 * 1000 {
        r.warnings.push(format!(
            "{}: card valid until {}; give partners a renewed card",
            card_path.display(),
            format_ms(card.card.valid_until_ms)
        ));
    }
    r.lines.push(format!(
        "card: {} verifies and matches the keys (valid until {})",
        card_path.display(),
        format_ms(card.card.valid_until_ms)
    ));
    Ok(())
}

/// The full store check, whichever way the store was opened: every audit entry rehashed
/// against its stored Merkle nodes and the checkpoints, every outbox and inbox message.
fn full_check(store: &Store, r: &mut CheckReport) -> Result<(), CheckError> {
    r.lines.push(match store.opened() {
        crate::store::OpenCheck::Fast { .. } => "store: the clean-shutdown record matches the store's head (a start checks the head and the entries after the last checkpoint, the rest in the background)".to_string(),
        crate::store::OpenCheck::Full { .. } => "store: no matching clean-shutdown record (a crash, or a tool opened the store): opened with the full check, as a start would".to_string(),
    });
    let entries = match store.opened() {
        crate::store::OpenCheck::Fast { .. } => {
            store.full_check(&std::sync::atomic::AtomicBool::new(false))?
        }
        // The open just did the same check.
        crate::store::OpenCheck::Full { .. } => store.audit_len(),
    };
    r.lines.push(format!(
        "store: full check ok: {entries} audit entries rehashed against their Merkle nodes and every checkpoint, every outbox and inbox message found"
    ));
    Ok(())
}

/// The opened store: its key, its stored peer cards, the rollback tripwire and any restore.
fn check_store(
    dir: &Path,
    cfg: &NodeConfig,
    keys: &NodeKeys,
    store: &Store,
    r: &mut CheckReport,
) -> Result<(), CheckError> {
    if let Some(from) = store.migrated_from() {
        r.lines.push(format!(
            "store: migrated from schema {from} to {}",
            crate::store::SCHEMA_VERSION
        ));
    }
    if let Some(expected) = store.meta("master_key_sha256")? {
        if expected != trm_proto::signing::sha256(&keys.store_key) {
            return Err(CheckError::StoreKey(dir.join(&cfg.paths.store_key)));
        }
    }
    let peers = store.peers()?;
    for (cc, rec) in &peers {
        trm_proto::card::verify_card(&rec.card).map_err(|e| CheckError::PeerCard {
            peer: cc.clone(),
            reason: e.to_string(),
        })?;
    }
    let outbox: u64 = store.outbox_depths()?.values().map(|d| d.0).sum();
    r.lines.push(format!(
        "store: integrity ok, schema {}, {} audit entries, {} peers, {} received, {} in the outbox, {} bytes",
        crate::store::SCHEMA_VERSION,
        store.audit_len(),
        peers.len(),
        store.received_count(),
        outbox,
        store.size_on_disk()
    ));
    check_tripwire(dir, cfg, keys, store, r)?;
    if let Some(info) = crate::ops::backup::pending_restore(store) {
        r.lines.push(format!(
            "store: restored from a backup taken at {}; the next start records it in the audit log",
            info.taken
        ));
    } else if let Some(info) = crate::ops::backup::last_restore(store) {
        r.lines.push(format!(
            "store: restored from a backup taken at {}",
            info.taken
        ));
    }
    Ok(())
}

/// The store reaches the last checkpoint recorded in the rollback tripwire, if there is one.
fn check_tripwire(
    dir: &Path,
    cfg: &NodeConfig,
    keys: &NodeKeys,
    store: &Store,
    r: &mut CheckReport,
) -> Result<(), CheckError> {
    let tripwire = crate::audit::tripwire_path(dir, cfg);
    match crate::audit::check_tripwire(store, keys, &cfg.country, &tripwire)
        .map_err(CheckError::Rollback)?
    {
        crate::audit::Tripwire::Holds => r.lines.push(format!(
            "rollback tripwire: the store reaches the last checkpoint in {}",
            tripwire.display()
        )),
        crate::audit::Tripwire::Missing => r
            .lines
            .push("rollback tripwire: none yet (written at the next audit checkpoint)".into()),
        crate::audit::Tripwire::Restored => {}
    }
    Ok(())
}

/// Why the live probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// node.toml.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Metrics are off, so there is nothing to probe.
    #[error(
        "metrics are disabled in node.toml ([metrics] enabled = false); the live probe needs them"
    )]
    Disabled,
    /// No address file: the node is not running (or not yet ready).
    #[error("{0} is missing: the node is not running")]
    NotRunning(PathBuf),
    /// The endpoint did not answer as expected.
    #[error("metrics endpoint {addr}: {reason}")]
    Endpoint {
        /// address
        addr: String,
        /// what happened
        reason: String,
    },
}

/// `trm-node health`: the running node answers on its metrics endpoint with `trm_up 1`.
pub fn probe(dir: &Path, timeout: Duration) -> Result<String, ProbeError> {
    let cfg = NodeConfig::load(dir)?;
    if !cfg.metrics.enabled {
        return Err(ProbeError::Disabled);
    }
    let file = dir.join(crate::ops::prometheus::ADDR_FILE);
    let text = std::fs::read_to_string(&file).map_err(|_| ProbeError::NotRunning(file.clone()))?;
    let endpoint = |reason: String| ProbeError::Endpoint {
        addr: text.trim().to_string(),
        reason,
    };
    let addr = text
        .trim()
        .parse()
        .map_err(|_| endpoint("not a socket address".into()))?;
    let (code, body) =
        crate::ops::prometheus::scrape(addr, timeout).map_err(|e| endpoint(e.to_string()))?;
    if code != 200 {
        return Err(endpoint(format!("answered HTTP {code}")));
    }
    if !body.lines().any(|l| l == "trm_up 1") {
        return Err(endpoint("no `trm_up 1` in the answer".into()));
    }
    Ok(format!("node {} is up (metrics at {addr})", cfg.country))
}

/// Checks every stored checkpoint's signature (run after the store's own full check).
pub type SignatureCheck = dyn FnOnce() -> Result<u64, StoreError> + Send;

/// The full store check, run in the background after a fast start (see `Store::open`): a
/// thread of its own at the lowest CPU priority (nice 19), memory bounded by the Merkle
/// frontier and the checkpoint roots. If the store is inconsistent, `failed` yields the
/// error once (the node then fails closed, see `node::run`).
pub struct BackgroundCheck {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Option<tokio::sync::oneshot::Receiver<StoreError>>,
}

impl BackgroundCheck {
    /// Starts the full check of `store` on its own thread, then `signatures` (the stored
    /// checkpoints' signatures, which the store cannot check: it does not know the keys).
    pub fn spawn(store: &Store, signatures: Box<SignatureCheck>) -> Result<Self, StoreError> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (store, flag) = (store.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("trm-store-check".into())
            .spawn(move || {
                // Per thread on Linux: only this check runs at the lowest priority.
                let _ = rustix::process::setpriority_process(None, 19);
                match store
                    .full_check(&flag)
                    .and_then(|n| signatures().map(|_| n))
                {
                    Ok(n) => tracing::info!(
                        entries = n,
                        "background store check: the whole store is consistent"
                    ),
                    Err(StoreError::Closed) => {}
                    Err(e) => {
                        store.fail_closed(&format!("background store check failed: {e}"));
                        let _ = tx.send(e);
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the store check: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
            failed: Some(rx),
        })
    }

    /// Resolves when the check finds the store inconsistent; never if it does not.
    pub async fn failed(&mut self) -> StoreError {
        if let Some(rx) = self.failed.as_mut() {
            if let Ok(e) = rx.await {
                self.failed = None;
                return e;
            }
            self.failed = None;
        }
        std::future::pending().await
    }

    /// Stops the check (it gives up at its next entry) and waits for its thread.
    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
