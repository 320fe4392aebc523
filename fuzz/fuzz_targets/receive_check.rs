//! The receive path's checks: a `Transmission` decoded and checked, in the node's order,
//! against a fixed node state (a running `AL` node with one pinned peer `IT` and five
//! referral threads); see `fuzz/src/receive.rs` for what is and is not covered.
//!
//! Input: one flag byte (bit 0: re-sign the body with the pinned peer's key; bit 1: normalise
//! the header so that the signature checks pass) and an encoded `Transmission`.
//! Oracle: no panic; an accepted message's disclosures all verify against digests the peer
//! signed, and no accepted message of a kind without digests carries disclosures.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trm_fuzz::receive;
use trm_proto::{commit, pb};

fuzz_target!(|data: &[u8]| {
    let f = receive::fixed();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(mut t) = pb::Transmission::decode(rest) else {
        return;
    };
    receive::prepare(f, flags, &mut t);
    if receive::check(f, &t).is_ok() && !t.disclosures.is_empty() {
        let env = t.envelope.as_ref().expect("checked");
        let body = pb::Body::decode(env.body.as_slice()).expect("checked");
        let digests = receive::signed_digests(f, &body)
            .expect("an accepted message with disclosures has signed digests");
        commit::verify_disclosures(&digests, &t.disclosures)
            .expect("accepted disclosures verify against the signed digests");
    }
});
