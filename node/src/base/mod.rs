//! The bottom layer: configuration, clock, metrics counters and the durable-step recorder.
//! Imports nothing else from the node.

pub mod config;
pub mod durability;
pub mod fsx;
pub mod metrics;
pub mod time;
pub mod vocab;
