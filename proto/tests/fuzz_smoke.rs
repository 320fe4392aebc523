//! Stable-toolchain smoke run of the fuzz targets in `fuzz/`: the same entry points fed
//! random bytes and mutations of valid inputs, asserting only that nothing panics and that
//! mutated inputs are never accepted as something they are not.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use prost::Message;
use trm_proto::admin::AdminRequest;
use trm_proto::pb;
use trm_proto::signing::{self, Tag};
use trm_proto::{audit, card, commit, frame, merkle, template};

/// A mutation of a byte string: flip bits at a position, cut it, or insert a byte.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    for m in muts {
        match *m {
            Mutation::Flip(i, b) if !v.is_empty() => {
                let i = i % v.len();
                v[i] ^= b;
            }
            Mutation::Truncate(i) => v.truncate(i % (v.len() + 1)),
            Mutation::Insert(i, b) => {
                let i = i % (v.len() + 1);
                v.insert(i, b);
            }
            _ => {}
        }
    }
    v
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn valid_envelope() -> pb::Envelope {
    let body = pb::Body {
        version: 1,
        message_id: vec![1; 16],
        sender: "IT".into(),
        recipient: "AL".into(),
        created_ms: 1_800_000_000_000,
        case_ref: "IT-FUZZ-0001".into(),
        payload: Some(pb::body::Payload::Referral(pb::Referral {
            template_version: template::TEMPLATE_VERSION.into(),
            digests: vec![vec![3; 32]; 64],
            ..Default::default()
        })),
        ..Default::default()
    }
    .encode_to_vec();
    let k = key();
    pb::Envelope {
        signature: signing::sign(&k, Tag::Envelope, &body).to_vec(),
        signer: k.verifying_key().to_bytes().to_vec(),
        body,
    }
}

fn valid_card() -> Vec<u8> {
    let k = key();
    let c = pb::Card {
        version: 1,
        country: "IT".into(),
        name: "IT fuzz unit".into(),
        addresses: vec!["127.0.0.1:4433".into()],
        tls_cert_der: vec![0x30, 0x82, 1, 2],
        signing_key: k.verifying_key().to_bytes().to_vec(),
        acceptance: vec![1, 2, 3],
        valid_from_ms: 1,
        valid_until_ms: 2,
        key_history: vec![pb::KeyRecord {
            public_key: k.verifying_key().to_bytes().to_vec(),
            valid_from_ms: 1,
            ..Default::default()
        }],
        issued_ms: 1,
    };
    card::sign_card(&c, &k)
}

const CASE: &str = r#"{"reference":{"case_ref":"IT-FUZZ-0001","sending_institution":"Synthetic Unit","receiving_country":"AL","date":"2026-11-01","urgency":"routine"},"exploitation":{"forms":["labour"],"victim_status":"presumed"}}"#;

/// Entry point 1: frame decoding of a peer request.
fn frame_entry(bytes: &[u8]) -> bool {
    frame::decode::<pb::PeerRequest>(bytes, frame::DEFAULT_MAX_FRAME).is_ok()
}

/// Entry point 2: envelope decoding and verification.
fn envelope_entry(bytes: &[u8]) -> bool {
    let Ok(env) = pb::Envelope::decode(bytes) else {
        return false;
    };
    let _ = pb::Body::decode(env.body.as_slice());
    signing::verify_with_bytes(&env.signer, Tag::Envelope, &env.body, &env.signature).is_ok()
}

/// Entry point 3: identity card parsing and verification.
fn card_entry(bytes: &[u8]) -> bool {
    card::verify_card(bytes).is_ok()
}

/// Entry point 4: case JSON parsing against the core template.
fn case_entry(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(s) => template::Template::core().parse_case(s).is_ok(),
        Err(_) => false,
    }
}

/// Entry point 5: disclosure verification against signed digests.
fn disclosure_entry(digests: &[Vec<u8>], disclosures: &[pb::FieldDisclosure]) -> bool {
    commit::verify_disclosures(digests, disclosures).is_ok()
}

/// Entry point 6: the offline audit bundle verifier.
fn bundle_entry(bytes: &[u8]) -> bool {
    match audit::verify_bundle(bytes) {
        Ok(s) => {
            assert!(s.entries <= s.tree_size, "more entries than the log holds");
            true
        }
        Err(_) => false,
    }
}

/// Entry point 7: the admin request decoder (one frame, as the admin listener reads it).
fn admin_entry(bytes: &[u8]) -> bool {
    frame::decode::<AdminRequest>(bytes, 16 << 20).is_ok()
}

/// A real audit export (two nodes, a referral and its answers), kept with the fuzz seeds.
const BUNDLE: &[u8] = include_bytes!("../../fuzz/seeds/audit_bundle.bin");

fn valid_commitment() -> commit::Commitment {
    let case = template::Template::core().parse_case(CASE).unwrap();
    commit::commit(&case.committed_fields(), &mut rand::rngs::OsRng).unwrap()
}

#[test]
fn valid_inputs_are_accepted() {
    let env = valid_envelope();
    assert!(envelope_entry(&env.encode_to_vec()));
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(env),
            disclosures: vec![],
        })),
    };
    assert!(frame_entry(&frame::encode(&req)));
    assert!(card_entry(&valid_card()));
    assert!(case_entry(CASE.as_bytes()));
    let c = valid_commitment();
    assert!(disclosure_entry(&c.digest_bytes(), &c.disclosures));
    assert!(bundle_entry(BUNDLE));
    let req = AdminRequest {
        call: Some(trm_proto::admin::admin_request::Call::Status(
            trm_proto::admin::Status {},
        )),
    };
    assert!(admin_entry(&frame::encode(&req)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        frame_entry(&bytes);
        envelope_entry(&bytes);
        card_entry(&bytes);
        case_entry(&bytes);
        bundle_entry(&bytes);
        admin_entry(&bytes);
    }

    #[test]
    fn mutated_bundles_never_panic(muts in proptest::collection::vec(mutation(), 1..8)) {
        bundle_entry(&apply(BUNDLE, &muts));
    }

    #[test]
    fn untrusted_merkle_sizes_never_panic(
        index in any::<u64>(),
        size in any::<u64>(),
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
        leaf in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
    ) {
        let _ = merkle::verify_inclusion(&leaf, index, size, &proof, &root);
        let _ = merkle::verify_consistency(index, size, &leaf, &root, &proof);
        prop_assert!(merkle::verify_inclusion(&leaf, size, size, &proof, &root).is_err());
    }

    #[test]
    fn mutated_frames_never_panic(muts in proptest::collection::vec(mutation(), 1..8)) {
        let req = pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
                envelope: Some(valid_envelope()),
                disclosures: valid_commitment().disclosures,
            })),
        };
        frame_entry(&apply(&frame::encode(&req), &muts));
    }

    #[test]
    fn mutated_envelopes_do_not_verify(muts in proptest::collection::vec(mutation(), 1..8)) {
        let env = valid_envelope();
        let good = env.encode_to_vec();
        let bad = apply(&good, &muts);
        if let Ok(e) = pb::Envelope::decode(bad.as_slice()) {
            // Whatever decodes verifies only if body, signature and key are the originals.
            if envelope_entry(&bad) {
                prop_assert_eq!((&e.body, &e.signature, &e.signer), (&env.body, &env.signature, &env.signer));
            }
        }
    }

    #[test]
    fn mutated_cards_do_not_verify_unless_unchanged(muts in proptest::collection::vec(mutation(), 1..8)) {
        let good = valid_card();
        let bad = apply(&good, &muts);
        if card_entry(&bad) {
            let a = pb::Signed::decode(bad.as_slice()).unwrap();
            let b = pb::Signed::decode(good.as_slice()).unwrap();
            prop_assert_eq!(a.body, b.body);
            prop_assert_eq!(a.signature, b.signature);
        }
    }

    #[test]
    fn mutated_case_json_never_panics(muts in proptest::collection::vec(mutation(), 1..8)) {
        case_entry(&apply(CASE.as_bytes(), &muts));
    }

    #[test]
    fn mutated_disclosures_do_not_verify(
        which in any::<usize>(),
        field in 0..3u8,
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let c = valid_commitment();
        let digests = c.digest_bytes();
        let mut ds = c.disclosures.clone();
        let i = which % ds.len();
        match field {
            0 => ds[i].value = apply(&ds[i].value, &muts),
            1 => ds[i].salt = apply(&ds[i].salt, &muts),
            _ => ds[i].path = String::from_utf8_lossy(&apply(ds[i].path.as_bytes(), &muts)).into_owned(),
        }
        let changed = ds[i] != c.disclosures[i];
        let ok = disclosure_entry(&digests, &ds);
        prop_assert!(!(ok && changed), "a changed disclosure verified");
    }

    #[test]
    fn random_digest_lists_never_panic(
        digests in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..80),
    ) {
        let c = valid_commitment();
        disclosure_entry(&digests, &c.disclosures);
    }
}
