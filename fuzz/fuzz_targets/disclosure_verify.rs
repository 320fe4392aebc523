//! Disclosure verification: untrusted digests and disclosures, as in a received referral.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trm_proto::{commit, pb};

fuzz_target!(|data: &[u8]| {
    // The input is a Referral (digests) followed by a Transmission (disclosures), split at
    // the position in the first two bytes (little-endian), so that a referral with its 64
    // padded digests (over 2 KB) fits.
    let [lo, hi, rest @ ..] = data else {
        return;
    };
    let at = (u16::from_le_bytes([*lo, *hi]) as usize).min(rest.len());
    let (a, b) = rest.split_at(at);
    let digests = pb::Referral::decode(a)
        .map(|r| r.digests)
        .unwrap_or_default();
    let disclosures = pb::Transmission::decode(b)
        .map(|t| t.disclosures)
        .unwrap_or_default();
    let _ = commit::check_digests(&digests);
    let _ = commit::verify_disclosures(&digests, &disclosures);
    for d in &disclosures {
        let _ = commit::disclosure_digest(d);
    }
});
