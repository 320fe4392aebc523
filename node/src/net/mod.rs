//! Transport: mutually authenticated TLS, length-prefixed frames over QUIC streams, and
//! admission of handshakes.

pub mod admission;
pub mod penalty;
pub mod tls;
pub mod transport;
