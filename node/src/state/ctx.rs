//! The context every task of a running node shares: configuration, keys, the store and the
//! in-memory state of the other subsystems. Built once by `node::start`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use trm_proto::pb::Category;
use trm_proto::template::Template;

use crate::base::config::{NodeConfig, OutgoingProfile};
use crate::base::time::Clock;
use crate::identity::NodeKeys;
use crate::net::tls::{Pins, QuicLimits};
use crate::state::budgets::RecvState;
use crate::state::checkpoints::Audit;
use crate::state::peers::PeerTable;
use crate::state::wakers::Delivery;
use crate::state::witness::Trust;
use crate::store::Store;

/// Everything the node's tasks share.
pub struct Ctx {
    /// Node folder.
    pub dir: PathBuf,
    /// Validated configuration.
    pub cfg: NodeConfig,
    /// Keys.
    pub keys: NodeKeys,
    /// This node's own card bytes.
    pub own_card: Vec<u8>,
    /// The store.
    pub store: Store,
    /// Sealing of case values at rest.
    pub vault: crate::store::vault::Vault,
    /// The template as adapted by this country.
    pub template: Template,
    /// Pinned peers.
    pub peers: PeerTable,
    /// Pinned officer certificates.
    pub officer_pins: Arc<Pins>,
    /// Delivery workers.
    pub delivery: Delivery,
    /// Clock (tests move it).
    pub clock: Clock,
    /// Client endpoint used to reach peers (shares the peer listener's socket).
    pub endpoint: quinn::Endpoint,
    /// Bound peer address.
    pub peer_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Counters for metrics and status.
    pub metrics: crate::base::metrics::Metrics,
    /// The node's own audit log checkpoints.
    pub audit: Audit,
    /// Witnessed logs of peers, held peers.
    pub trust: Trust,
    /// Signatures already verified (receipts, peers' checkpoints), not verified again.
    pub verified: crate::state::verified::Verified,
    /// Shutdown signal for every task.
    pub shutdown: watch::Receiver<bool>,
    /// Receive-side budgets per peer and erasures in progress.
    pub recv: RecvState,
    /// The outgoing law profile in force: `cfg`'s at start, replaced by a reload. Read it
    /// through [`Ctx::outgoing_for`], never `cfg.outgoing_for`.
    pub outgoing: RwLock<OutgoingProfile>,
}

impl Ctx {
    /// Transport limits from the config.
    pub fn quic_limits(&self) -> QuicLimits {
        quic_limits(&self.cfg)
    }

    /// The categories this country's law lets it send to `peer`, as the profile in force.
    pub fn outgoing_for(&self, peer: &str) -> Vec<Category> {
        self.outgoing_profile().for_peer(peer)
    }

    /// The outgoing profile in force (a copy).
    pub fn outgoing_profile(&self) -> OutgoingProfile {
        self.outgoing
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts `profile` in force for every later send.
    pub fn set_outgoing_profile(&self, profile: OutgoingProfile) {
        *self
            .outgoing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = profile;
    }

    /// Own country code.
    pub fn country(&self) -> &str {
        &self.cfg.country
    }
}

/// Transport limits from `cfg`.
pub fn quic_limits(cfg: &NodeConfig) -> QuicLimits {
    QuicLimits {
        max_streams: cfg.limits.max_concurrent_streams,
        window: (cfg.limits.max_frame_bytes as u32).saturating_add(64 << 10),
        idle_timeout: Duration::from_secs(cfg.limits.idle_timeout_secs),
    }
}
