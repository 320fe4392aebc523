//! `trm-proto`: the TRM federation wire schema and the pure rules a third party needs to
//! interoperate with a node or audit one.
//!
//! Nothing here does I/O or needs a runtime: the generated protobuf types ([`pb`], [`admin`]),
//! the signing bytes and verification ([`signing`]), length-prefixed framing ([`frame`]),
//! identity cards ([`card`]), Merkle proofs ([`merkle`]) and offline audit bundle verification
//! ([`audit`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Generated types of `proto/trm.proto` (peer protocol, version 1).
#[allow(missing_docs, unreachable_pub, clippy::all)] // generated code
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/trm.v1.rs"));
}

/// Generated types of `proto/admin.proto` (admin API).
#[allow(missing_docs, unreachable_pub, clippy::all)] // generated code
pub mod admin {
    include!(concat!(env!("OUT_DIR"), "/trm.admin.v1.rs"));
}

/// Generated types of `proto/audit.proto` (audit log entries and the audit bundle).
#[allow(missing_docs, unreachable_pub, clippy::all)] // generated code
pub mod auditpb {
    include!(concat!(env!("OUT_DIR"), "/trm.audit.v1.rs"));
}

pub mod agreement;
pub mod audit;
pub mod card;
pub mod commit;
pub mod date;
pub mod frame;
pub mod merkle;
pub mod phases;
pub mod signing;
pub mod template;

/// Protocol version carried in every `Body.version`.
pub const PROTOCOL_VERSION: u32 = 1;
/// ALPN of the peer protocol.
pub const ALPN_PEER: &[u8] = b"trm/1";
/// ALPN of the admin API.
pub const ALPN_ADMIN: &[u8] = b"trm-admin/1";
