//! Wake-ups of the per-peer delivery workers. The workers themselves live in
//! `exchange::delivery`; the node hands their start function to [`Delivery::new`], so that
//! anything holding the context can wake a peer's worker without depending on delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::state::ctx::Ctx;

/// Starts the worker of one peer, which waits on the given notification.
pub type SpawnWorker = fn(&Arc<Ctx>, &str, Arc<Notify>);

/// Handles to the per-peer workers.
pub struct Delivery {
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    stopped: AtomicBool,
    spawn: SpawnWorker,
}

impl Delivery {
    /// No workers yet; `spawn` starts one when a peer is first woken.
    pub fn new(spawn: SpawnWorker) -> Self {
        Self {
            workers: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            spawn,
        }
    }

    /// Wakes (starting if needed) the worker for `peer`.
    pub fn wake(&self, ctx: &Arc<Ctx>, peer: &str) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let mut w = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        match w.get(peer) {
            Some(n) => n.notify_one(),
            None => {
                let n = Arc::new(Notify::new());
                w.insert(peer.to_string(), n.clone());
                (self.spawn)(ctx, peer, n);
            }
        }
    }

    /// Stops starting workers (shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}
