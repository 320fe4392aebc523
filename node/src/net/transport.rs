//! QUIC plumbing shared by the peer protocol and the admin API: endpoints, and exactly one
//! length-prefixed frame each way on a bidirectional stream. It lives in trm-admin-api (the
//! admin client needs it without the node); see `trm_admin_api::quic`.

pub use trm_admin_api::quic::*;
