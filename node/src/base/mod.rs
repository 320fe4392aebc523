//! The bottom layer: configuration, clock, metrics counters and the durable-step recorder.
//! Imports nothing else from the node.

pub mod config;
pub mod durability;
pub mod metrics;
pub mod time;
