//! Referrals: the case lifecycle, what may leave and enter (policy), outgoing messages, the
//! officers' flows, and erasure.

pub mod erasure;
pub mod lifecycle;
pub mod messages;
pub mod policy;
