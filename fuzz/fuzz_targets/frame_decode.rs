//! Frame decoding of a peer request, as the receive path does with untrusted stream bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trm_proto::{frame, pb};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = frame::decode::<pb::PeerRequest>(data, frame::DEFAULT_MAX_FRAME) {
        if let Some(pb::peer_request::Kind::Transmission(t)) = req.kind {
            if let Some(env) = t.envelope {
                let _ = <pb::Body as prost::Message>::decode(env.body.as_slice());
            }
        }
    }
    if data.len() >= 4 {
        let _ = frame::check_len(
            [data[0], data[1], data[2], data[3]],
            frame::DEFAULT_MAX_FRAME,
        );
    }
});
