//! The running node: loads the folder, opens the store, binds both listeners, starts the
//! delivery workers, and runs until the shutdown future completes.
//!
//! `main` only parses arguments, sets up tracing and calls [`run`]; tests call [`start`] with
//! sockets bound to port 0 and stop the node through the returned handle.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::base::config::NodeConfig;
use crate::base::time::Clock;
use crate::exchange::delivery::Delivery;
use crate::identity::NodeKeys;
use crate::net::tls::{self, Pin, Pins, QuicLimits};
pub use crate::state::ctx::Ctx;
use crate::state::peers::PeerTable;
use crate::store::Store;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::base::config::ConfigError),
    /// Keys and certificates.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// Store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// TLS.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The key vault (store key does not match, or cannot be rotated).
    #[error("store key: {0}")]
    Vault(String),
    /// The store is behind the rollback tripwire (one line, naming both).
    #[error("{0}")]
    Rollback(String),
    /// The background check after a fast start found the store inconsistent: the node
    /// stopped (it had refused every write from the moment of the finding).
    #[error("background store check failed: {0}; the node stopped and refuses to run on this store until it passes `trm-node check` (restore it from a backup if it does not)")]
    StoreCheck(crate::store::StoreError),
    /// Binding a listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// address
        addr: SocketAddr,
        /// cause
        source: std::io::Error,
    },
}

/// Options for [`start`].
#[derive(Default)]
pub struct StartOptions {
    /// Pre-bound peer socket (tests bind port 0); default: bind `cfg.listen`.
    pub peer_socket: Option<UdpSocket>,
    /// Pre-bound admin socket; default: bind `cfg.admin_listen`.
    pub admin_socket: Option<UdpSocket>,
    /// Clock to use (tests move it).
    pub clock: Option<Clock>,
}

/// A running node.
pub struct NodeHandle {
    /// Shared state, for tests.
    pub ctx: Arc<Ctx>,
    /// Bound address of the metrics endpoint, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    /// The full store check running after a fast start.
    check: Option<crate::ops::health::BackgroundCheck>,
}

impl NodeHandle {
    /// Resolves if the background store check finds the store inconsistent (by then every
    /// write is refused); never if it does not or did not run.
    pub async fn store_check_failed(&mut self) -> crate::store::StoreError {
        match self.check.as_mut() {
            Some(c) => c.failed().await,
            None => std::future::pending().await,
        }
    }

    /// Stops every task, waits for them, flushes the store and, unless a write failed or the
    /// store check did, writes the clean-shutdown record (see `Store::close_clean`).
    pub async fn shutdown(mut self) {
        if let Some(mut c) = self.check.take() {
            tokio::task::spawn_blocking(move || c.stop()).await.ok();
        }
        let _ = self.stop.send(true);
        self.ctx.endpoint.close(0u32.into(), b"shutdown");
        while tokio::time::timeout(Duration::from_secs(5), self.tasks.join_next())
            .await
            .ok()
            .flatten()
            .is_some()
        {}
        self.tasks.abort_all();
        self.ctx.delivery.stop();
        let _ = self.ctx.store.flush();
        self.ctx.store.stop_committer();
        if let Err(e) = self.ctx.store.close_clean() {
            tracing::warn!(error = %e, "cannot write the clean-shutdown record: the next start checks the whole store");
        }
        if self.metrics_addr.is_some() {
            let _ = std::fs::remove_file(self.ctx.dir.join(crate::ops::prometheus::ADDR_FILE));
        }
        tokio::time::timeout(Duration::from_secs(5), self.ctx.endpoint.wait_idle())
            .await
            .ok();
    }
}

fn bind(addr: SocketAddr) -> Result<UdpSocket, StartError> {
    UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })
}

/// How long opening and checking the store may take before the node gives up: 30 s plus
/// one second per 50 MiB on disk (a healthy store of a million messages opens well within
/// it; see docs/PERFORMANCE.md).
pub fn store_open_limit(path: &Path) -> Duration {
    fn size(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => size(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    Duration::from_secs(30 + size(path) / (50 << 20))
}

/// Opens and checks the store on a helper thread, giving up after `limit`. Some corrupted
/// sled files make sled retry a page read forever instead of reporting an error; a node
/// must then refuse to start with a message naming the store rather than hang (the stuck
/// thread goes away with the process, which exits).
pub fn open_store_bounded(path: &Path, limit: Duration) -> Result<Store, crate::store::StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("trm-store-open".into())
        .spawn(move || {
            let _ = tx.send(Store::open(&p));
        })
        .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| {
            Err(crate::store::StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "opening and checking it did not finish within {} s (sled is stuck on a damaged file)",
                    limit.as_secs()
                ),
            })
        })
}

/// Starts a node from its folder.
pub async fn start(dir: &Path, opts: StartOptions) -> Result<NodeHandle, StartError> {
    let cfg = NodeConfig::load(dir)?;
    let keys = NodeKeys::load(dir, &cfg)?;
    let template = cfg.template()?;
    let store_path = dir.join(&cfg.paths.store);
    let opening = std::time::Instant::now();
    let store = open_store_bounded(&store_path, store_open_limit(&store_path))?;
    log_open_check(&store, opening.elapsed());
    let vault = crate::store::vault::Vault::open(
        store.clone(),
        &dir.join(&cfg.paths.store_key),
        keys.store_key,
    )
    .map_err(|e| StartError::Vault(e.to_string()))?;
    let audit = load_audit(dir, &cfg, &store, &keys)?;
    let trust = crate::federation::trust::Trust::load(&store)?;
    store.start_committer();
    let clock = opts.clock.unwrap_or_default();
    crate::ops::backup::record_restore(&store, clock.now_ms()).await?;

    let peer_pins = Pins::new();
    let peers = PeerTable::load(&store, peer_pins.clone())?;
    let officer_pins = officer_pins(&store)?;
    let sockets = (opts.peer_socket, opts.admin_socket);
    let ends = endpoints(&cfg, &keys, peer_pins, officer_pins.clone(), sockets)?;

    let metrics_listener =
        crate::ops::prometheus::bind(dir, cfg.metrics.enabled, cfg.metrics.listen).map_err(
            |source| StartError::Bind {
                addr: cfg.metrics.listen,
                source,
            },
        )?;
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (stop, shutdown) = watch::channel(false);
    let own_card = keys.card_in(dir, &cfg);
    crate::identity::write_public(&dir.join(&cfg.paths.card), &own_card)?;
    let ctx = Arc::new(Ctx {
        dir: dir.to_path_buf(),
        metrics: crate::base::metrics::Metrics::default(),
        audit,
        trust,
        verified: crate::state::verified::Verified::default(),
        delivery: Delivery::new(crate::exchange::delivery::spawn_worker),
        clock,
        outgoing: std::sync::RwLock::new(cfg.outgoing_profile()),
        cfg,
        keys,
        own_card,
        store,
        vault,
        template,
        peers,
        officer_pins,
        endpoint: ends.peer.clone(),
        peer_addr: ends.peer_addr,
        admin_addr: ends.admin_addr,
        shutdown,
        recv: crate::exchange::receive::RecvState::default(),
    });
    let tasks = spawn_tasks(&ctx, ends.peer, ends.admin, metrics_listener)?;
    let check = background_check(&ctx)?;
    tracing::info!(
        country = %ctx.cfg.country,
        peer_listen = %ctx.peer_addr,
        admin_listen = %ctx.admin_addr,
        metrics = %metrics_addr.map_or("off".to_string(), |a| a.to_string()),
        "node ready"
    );
    Ok(NodeHandle {
        ctx,
        metrics_addr,
        stop,
        tasks,
        check,
    })
}

/// After a fast start: the full store check and every checkpoint's signature, in the
/// background (`ops::health::BackgroundCheck`).
fn background_check(
    ctx: &Arc<Ctx>,
) -> Result<Option<crate::ops::health::BackgroundCheck>, StartError> {
    Ok(match ctx.store.opened() {
        crate::store::OpenCheck::Fast { .. } => {
            let c = ctx.clone();
            let signatures = move || {
                crate::state::checkpoints::verify_checkpoints(&c.store, &c.keys, c.country())
            };
            Some(crate::ops::health::BackgroundCheck::spawn(
                &ctx.store,
                Box::new(signatures),
            )?)
        }
        crate::store::OpenCheck::Full { .. } => None,
    })
}

/// One line on how the store was checked at start.
fn log_open_check(store: &Store, took: Duration) {
    let ms = took.as_millis() as u64;
    let sled_ms = store.sled_open_time().as_millis() as u64;
    match store.opened() {
        crate::store::OpenCheck::Fast { tail } => tracing::info!(
            entries = store.audit_len(),
            tail,
            ms,
            sled_ms,
            "store opened on the fast path (clean shutdown): checked the head and the entries after the last checkpoint; the full check runs in the background"
        ),
        crate::store::OpenCheck::Full { reason } => tracing::info!(
            entries = store.audit_len(),
            reason = ?reason,
            ms,
            sled_ms,
            "store opened on the full path: every entry checked"
        ),
    }
}

/// The audit log, after checking the store against the rollback tripwire (a missing
/// tripwire, or one left by a restore, is written again from the store).
fn load_audit(
    dir: &Path,
    cfg: &NodeConfig,
    store: &Store,
    keys: &NodeKeys,
) -> Result<crate::audit::Audit, StartError> {
    let tripwire_path = crate::audit::tripwire_path(dir, cfg);
    let tripwire = Some(tripwire_path.clone());
    let audit = match store.opened() {
        crate::store::OpenCheck::Fast { .. } => {
            crate::audit::Audit::load_latest(store, keys, &cfg.country, tripwire)?
        }
        crate::store::OpenCheck::Full { .. } => {
            crate::audit::Audit::load(store, keys, &cfg.country, tripwire)?
        }
    };
    match crate::audit::check_tripwire(store, keys, &cfg.country, &tripwire_path)
        .map_err(StartError::Rollback)?
    {
        crate::audit::Tripwire::Holds => {}
        crate::audit::Tripwire::Missing | crate::audit::Tripwire::Restored => {
            crate::audit::reset_tripwire(store, &audit)?;
        }
    }
    Ok(audit)
}

/// The certificates of the officers not revoked, pinned to their names.
fn officer_pins(store: &Store) -> Result<Arc<Pins>, StartError> {
    let officer_pins = Pins::new();
    for (_, o) in store
        .officers()?
        .into_iter()
        .filter(|(_, o)| o.revoked_ms == 0)
    {
        officer_pins.insert(
            &o.cert_der,
            Pin {
                who: o.name.clone(),
                not_before_ms: i64::MIN,
                not_after_ms: i64::MAX,
            },
        );
    }
    Ok(officer_pins)
}

/// The peer and admin QUIC endpoints, and their bound addresses.
struct Endpoints {
    peer: quinn::Endpoint,
    admin: quinn::Endpoint,
    peer_addr: SocketAddr,
    admin_addr: SocketAddr,
}

/// Binds the peer and admin endpoints (on the given pre-bound (peer, admin) sockets, or on
/// the configured addresses), each accepting only the certificates pinned for it.
fn endpoints(
    cfg: &NodeConfig,
    keys: &NodeKeys,
    peer_pins: Arc<Pins>,
    officer_pins: Arc<Pins>,
    (peer_socket, admin_socket): (Option<UdpSocket>, Option<UdpSocket>),
) -> Result<Endpoints, StartError> {
    let limits = crate::state::ctx::quic_limits(cfg);
    let peer_server = tls::server_config(
        keys.tls_cert.clone(),
        keys.tls_key.clone_key(),
        peer_pins,
        trm_proto::ALPN_PEER,
        limits,
    )?;
    let admin_server = tls::server_config(
        keys.tls_cert.clone(),
        keys.tls_key.clone_key(),
        officer_pins,
        trm_proto::ALPN_ADMIN,
        QuicLimits {
            max_streams: 16,
            ..limits
        },
    )?;
    let peer_socket = match peer_socket {
        Some(s) => s,
        None => bind(cfg.listen)?,
    };
    let admin_socket = match admin_socket {
        Some(s) => s,
        None => bind(cfg.admin_listen)?,
    };
    let peer_addr = peer_socket
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let admin_addr = admin_socket
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: cfg.admin_listen,
            source,
        })?;
    let peer =
        crate::net::transport::endpoint(peer_socket, Some(peer_server)).map_err(|source| {
            StartError::Bind {
                addr: peer_addr,
                source,
            }
        })?;
    let admin =
        crate::net::transport::endpoint(admin_socket, Some(admin_server)).map_err(|source| {
            StartError::Bind {
                addr: admin_addr,
                source,
            }
        })?;
    Ok(Endpoints {
        peer,
        admin,
        peer_addr,
        admin_addr,
    })
}

/// Starts the node's tasks: the peer and admin listeners, retention, metrics, the audit
/// checkpoints, the delivery workers and any interrupted erasures.
fn spawn_tasks(
    ctx: &Arc<Ctx>,
    endpoint: quinn::Endpoint,
    admin_endpoint: quinn::Endpoint,
    metrics_listener: Option<std::net::TcpListener>,
) -> Result<tokio::task::JoinSet<()>, StartError> {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::exchange::receive::serve(ctx.clone(), endpoint));
    tasks.spawn(crate::admin::serve(ctx.clone(), admin_endpoint));
    tasks.spawn(crate::referral::erasure::retention_task(ctx.clone()));
    if let Some(l) = metrics_listener {
        let l = tokio::net::TcpListener::from_std(l).map_err(|source| StartError::Bind {
            addr: ctx.cfg.metrics.listen,
            source,
        })?;
        tasks.spawn(crate::ops::prometheus::serve(ctx.clone(), l));
    }
    tasks.spawn(crate::audit::run(ctx.clone()));
    crate::exchange::delivery::start_all(ctx)?;
    tasks.spawn(crate::referral::lifecycle::resume_erasures(ctx.clone()));
    Ok(tasks)
}

/// Runs the node in `dir` until `shutdown` completes, then stops cleanly (the outbox is kept).
/// If the background store check finds the store inconsistent, the node fails closed: every
/// write is refused at once, the node stops without a clean-shutdown record (so the next
/// start checks everything and refuses the store) and this returns [`StartError::StoreCheck`].
pub async fn run(dir: &Path, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let mut node = start(dir, StartOptions::default()).await?;
    let hangup = tokio::spawn(reload_on_hangup(node.ctx.clone()));
    let failed = tokio::select! {
        _ = shutdown => None,
        e = node.store_check_failed() => Some(e),
    };
    hangup.abort();
    tracing::info!("shutting down");
    node.shutdown().await;
    failed.map_or(Ok(()), |e| Err(StartError::StoreCheck(e)))
}

/// SIGHUP puts `node.toml`'s outgoing profile in force (`trm-admin policy reload` does the
/// same over the admin API).
async fn reload_on_hangup(ctx: Arc<Ctx>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; use `trm-admin policy reload`");
        return;
    };
    while hangups.recv().await.is_some() {
        crate::ops::policy::reload_on_signal(&ctx).await;
    }
}
