//! Identity card parsing and verification (self-signature, key history, endorsements).
#![no_main]
use libfuzzer_sys::fuzz_target;
use trm_proto::card;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = card::verify_card(data) {
        let _ = c.acceptance();
        let _ = c.key_valid_at(&c.card.signing_key, c.card.valid_from_ms);
    }
});
