//! Envelope decoding and signature verification (verify_strict, weak keys refused).
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = pb::Envelope::decode(data) {
        let _ = pb::Body::decode(env.body.as_slice());
        for tag in Tag::ALL {
            let _ = signing::verify_with_bytes(&env.signer, tag, &env.body, &env.signature);
        }
        let _ = signing::envelope_hash(&env.body, &env.signature);
    }
});
