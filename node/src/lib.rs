//! `trm-node`: a country's node in the TRM federation.
//!
//! See `docs/ARCHITECTURE.md` for the code map. In short: [`config`] and [`identity`] load the
//! node folder; [`store`] is the only module that knows sled; [`tls`] and [`transport`] carry
//! frames over mutually authenticated QUIC; [`receive`] and [`delivery`] are the two halves of
//! the peer protocol; [`policy`] decides what may leave and what may enter; [`admin`] and
//! [`calls`] serve officers; [`node`] wires it together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod audit;
pub mod backup;
pub mod calls;
pub mod casedata;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod durability;
pub mod erasure;
pub mod flows;
pub mod health;
pub mod identity;
pub mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod policy;
pub mod prometheus;
pub mod receive;
pub mod rotation;
pub mod store;
pub mod time;
pub mod tls;
pub mod transport;
pub mod trust;
pub mod vault;

pub use node::{run, start, NodeHandle, StartOptions};
