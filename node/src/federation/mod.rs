//! The partners: pinned peers, witnessing of their audit logs, key rotation and contact
//! directories.

pub mod directory;
pub mod rotation;
pub mod trust;
