//! One type per admin call's answer: what the node serialises and `trm-admin` reads.
//!
//! A document's keys come out sorted (the node serialises through `serde_json::Value`, whose
//! map is ordered), and a key absent today is `skip_serializing_if`, so `trm-admin --json`
//! prints the same bytes as when the answers were built by hand.

use trm_proto::admin::admin_request::Call;

/// An admin request and the type of its answer: adding a call is a request type (in
/// `trm_proto::admin`), its answer type here, a handler in the node and a renderer in the CLI.
pub trait AdminCall {
    /// What the node answers.
    type Answer: serde::de::DeserializeOwned + serde::Serialize;
    /// The request on the wire.
    fn into_call(self) -> Call;
}
