//! `trm-bench`: measures trm-node against raw baselines of the same machine, in one run, and
//! prints product/baseline ratios. See docs/PERFORMANCE.md for the figures and the command.
//!
//! Nodes run as separate `trm-node` processes through the tests' harness
//! (`trm_tests::proc`, binaries found by `trm_tests::bins`).
//!
//! - [`workload`]: synthetic ~1 KiB referrals, signed as the node signs them, and fast
//!   pre-filling of a stopped node's store through the library.
//! - [`baseline`]: raw quinn, Ed25519 and sled.
//! - [`scenario`]: throughput, latency, scale and growth.
//! - [`audit`]: audit bundles of N entries: streamed export, offline verification.
//! - [`instructions`]: instructions per referral counted by callgrind.
//! - [`disk`]: disk per stored message against its encoded size.
//! - [`start`]: start to accepting with a large store, fast path and full check.
//! - [`report`]: runs a selection and prints it.
#![forbid(unsafe_code)]

pub mod audit;
pub mod baseline;
pub mod disk;
pub mod instructions;
pub mod report;
pub mod scenario;
pub mod start;
pub mod workload;
