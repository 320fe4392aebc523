//! The admin API as its clients see it: one typed answer per call ([`answers`]), the roles,
//! the officer's credential file, and the QUIC client ([`client::AdminClient`]).
//!
//! The node serialises the same answer types, so `trm-admin --json`, the command line's
//! tables and the node can never disagree about a document's keys. This crate links no store,
//! no TOML parser and no tracing: `trm-admin` uses it without the node.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answers;
pub mod client;
pub mod credential;
pub mod fsx;
pub mod quic;
mod role;
pub mod tls;

pub use role::Role;
