//! The peer protocol's two halves: receiving transmissions and delivering the outbox.

pub mod delivery;
pub mod receive;
