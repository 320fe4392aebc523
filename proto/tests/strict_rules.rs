//! docs/PROTOCOL.md §3 and §8 list the small-order encodings that strict verification refuses
//! and give a shell check over them. This test reads that list from the document itself, so
//! the document and the code cannot drift apart.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md is readable")
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The 64-hex-digit lines of the first fenced block after "small-order encodings (hex)".
fn listed_block(doc: &str) -> Vec<String> {
    let start = doc.find("small-order encodings (hex)").expect("list in §8");
    let rest = &doc[start..];
    let open = rest.find("```\n").unwrap() + 4;
    let close = rest[open..].find("```").unwrap() + open;
    rest[open..close].lines().map(str::to_owned).collect()
}

/// The encodings in the shell snippet's `weak='…'` variable.
fn listed_shell(doc: &str) -> Vec<String> {
    let start = doc.find("weak='").expect("shell list in §8") + 6;
    let end = doc[start..].find('\'').unwrap() + start;
    doc[start..end].split(' ').map(str::to_owned).collect()
}

#[test]
fn every_documented_small_order_encoding_is_refused_as_a_key_and_as_r() {
    let doc = doc();
    let block = listed_block(&doc);
    assert_eq!(block.len(), 14, "14 encodings listed");
    assert_eq!(
        listed_shell(&doc),
        block,
        "the shell check uses the same list"
    );
    let mut unique = block.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 14, "no encoding listed twice");

    let message = b"trm/1 envelope\0any body";
    for enc in &block {
        let bytes = hex32(enc);
        // Rule 1: each decodes to a point of small order, which the node refuses as a key.
        let key = VerifyingKey::from_bytes(&bytes).expect("listed encodings decode");
        assert!(key.is_weak(), "{enc} is of small order");
        assert!(trm_proto::signing::parse_public_key(&bytes).is_err());
        // Rules 1 and 2 together: a weak key with a small-order R is refused.
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&bytes);
        assert!(key
            .verify_strict(message, &Signature::from_bytes(&sig))
            .is_err());
    }
}

#[test]
fn a_weak_key_signature_that_a_permissive_verifier_accepts_is_refused_strictly() {
    // Identity key, identity R, S = 0: [0]B − [k]·O = O, so the cofactorless equation holds
    // and a verifier without rules 1 and 2 (such as OpenSSL's) accepts it for any message.
    let identity = hex32("0100000000000000000000000000000000000000000000000000000000000000");
    let key = VerifyingKey::from_bytes(&identity).unwrap();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    let sig = Signature::from_bytes(&sig);
    assert!(
        key.verify(b"any message", &sig).is_ok(),
        "permissive check accepts"
    );
    assert!(
        key.verify_strict(b"any message", &sig).is_err(),
        "strict refuses"
    );
    assert!(trm_proto::signing::verify(
        &key,
        trm_proto::signing::Tag::Envelope,
        b"any message",
        &sig.to_bytes()
    )
    .is_err());
}
