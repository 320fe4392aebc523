//! Operations: backup and restore, health checks, Prometheus metrics.

pub mod backup;
pub mod health;
pub mod policy;
pub mod prometheus;
