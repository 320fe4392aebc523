//! `trm-bench`: measures trm-node against raw baselines of the same machine, in one run, and
//! prints product/baseline ratios. See docs/PERFORMANCE.md for the figures and the command.
//!
//! - [`proc`]: nodes as separate `trm-node` processes (also used by the reliability tests).
//! - [`workload`]: synthetic ~1 KiB referrals, signed as the node signs them, and fast
//!   pre-filling of a stopped node's store through the library.
//! - [`baseline`]: raw quinn, Ed25519 and sled.
//! - [`scenario`]: throughput, latency, scale and growth.
//! - [`report`]: runs a selection and prints it.
#![forbid(unsafe_code)]

pub mod baseline;
pub mod proc;
pub mod report;
pub mod scenario;
pub mod workload;
