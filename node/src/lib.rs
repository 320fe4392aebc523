//! `trm-node`: a country's node in the TRM federation.
//!
//! The node is a set of subsystems, one folder each, whose imports point one way (down this
//! list; `tests/tests/architecture.rs` fails on any cycle). See `docs/ARCHITECTURE.md`.
//!
//! - [`base`]: configuration, clock, metrics counters, the durable-step recorder.
//! - [`store`]: the only code that knows sled; sealing of case values at rest.
//! - [`identity`]: the node's keys, certificates and officer credentials.
//! - [`net`]: TLS, framing over QUIC streams, handshake admission.
//! - [`state`]: the context every task shares, and the in-memory tables it holds (pinned
//!   peers, witnessed logs, the latest checkpoint, delivery wake-ups, receive budgets).
//! - [`federation`]: trust in peers, witnessing of their logs, key rotation, directories.
//! - [`audit`]: the node's own signed log checkpoints and exports.
//! - [`referral`]: case lifecycle, release policy, outgoing messages, officer flows, erasure.
//! - [`exchange`]: the two halves of the peer protocol, receiving and delivering.
//! - [`ops`]: backup and restore, health checks, Prometheus metrics.
//! - [`admin`]: the officers' API listener and its calls.
//! - [`node`]: wires it together and runs it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod base;
pub mod exchange;
pub mod federation;
pub mod identity;
pub mod net;
pub mod node;
pub mod ops;
pub mod referral;
pub mod state;
pub mod store;

pub use node::{run, start, NodeHandle, StartOptions};
