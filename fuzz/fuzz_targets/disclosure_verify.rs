//! Disclosure verification: untrusted digests and disclosures, as in a received referral.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trm_proto::{commit, pb};

fuzz_target!(|data: &[u8]| {
    // The input is a Referral (digests) followed by a Transmission (disclosures), split at
    // the first byte's position.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize).min(rest.len());
    let (a, b) = rest.split_at(at);
    let digests = pb::Referral::decode(a).map(|r| r.digests).unwrap_or_default();
    let disclosures = pb::Transmission::decode(b)
        .map(|t| t.disclosures)
        .unwrap_or_default();
    let _ = commit::check_digests(&digests);
    let _ = commit::verify_disclosures(&digests, &disclosures);
    for d in &disclosures {
        let _ = commit::disclosure_digest(d);
    }
});
