//! Shared pieces of the fuzz targets: the fixed node state of `receive_check` and the seed
//! inputs written by `make_seeds`. Not a fuzz target itself.
#![forbid(unsafe_code)]

pub mod receive;
pub mod seeds;
