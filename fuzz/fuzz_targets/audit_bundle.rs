//! The offline audit bundle verifier `trm_proto::audit::verify_bundle` and the Merkle proofs
//! it relies on.
//!
//! Input: a mode byte, then the data. Even mode: the rest is an audit bundle (the seeds are
//! real exports). Odd mode: a differential check of the Merkle code: a log of 1..=64 leaves
//! taken from the input, its roots, inclusion and consistency proofs (which must verify),
//! and the same proofs verified against sizes, indices and hashes read from the input
//! (which must not panic).
#![no_main]
use libfuzzer_sys::fuzz_target;
use trm_proto::audit;
use trm_proto::merkle::{self, CompactTree, Hash, MerkleLog};

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fn merkle_mode(d: &[u8]) {
    let n = (d.first().copied().unwrap_or(0) % 64) as u64 + 1;
    let leaves: Vec<Hash> = (0..n)
        .map(|i| merkle::leaf_hash(&[d.get(i as usize).copied().unwrap_or(0), i as u8]))
        .collect();
    let mut log = MerkleLog::new();
    let mut compact = CompactTree::new();
    for l in &leaves {
        log.push(*l);
        compact.append(*l);
    }
    let root = log.root_at(n).expect("root of the whole log");
    assert_eq!(root, merkle::root(&leaves), "MerkleLog and root() agree");
    assert_eq!(root, compact.root(), "CompactTree and MerkleLog agree");
    let restored = CompactTree::from_parts(compact.size(), compact.frontier().to_vec())
        .expect("a tree restores from its own parts");
    assert_eq!(restored.root(), root);
    let (a, b) = (u64_at(d, 1), u64_at(d, 9));
    let (first, index) = (a % n + 1, b % n);
    let proof = log.inclusion_proof(index, n).expect("inclusion proof");
    merkle::verify_inclusion(&leaves[index as usize], index, n, &proof, &root)
        .expect("a fresh inclusion proof verifies");
    let first_root = log.root_at(first).expect("earlier root");
    let cons = log.consistency_proof(first, n).expect("consistency proof");
    merkle::verify_consistency(first, n, &first_root, &root, &cons)
        .expect("a fresh consistency proof verifies");
    // Untrusted sizes, indices and hashes.
    let hashes: Vec<Hash> = d
        .get(17..)
        .unwrap_or(&[])
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    let h0 = hashes.first().copied().unwrap_or(root);
    let _ = merkle::verify_inclusion(&h0, a, b, &hashes, &root);
    let _ = merkle::verify_consistency(a, b, &h0, &root, &hashes);
    let _ = merkle::verify_inclusion(&leaves[index as usize], index, n, &hashes, &root);
    let _ = merkle::verify_consistency(first, n, &first_root, &root, &hashes);
    let _ = log.inclusion_proof(a, b);
    let _ = log.consistency_proof(a, b);
    let _ = log.root_at(a);
    if let Ok(t) = CompactTree::from_parts(a, hashes.clone()) {
        let _ = t.root();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(s) = audit::verify_bundle(rest) {
            assert!(s.entries <= s.tree_size, "more entries than the log holds");
            assert!(s.checkpoints > 0 || s.entries == 0);
        }
    } else {
        merkle_mode(rest);
    }
});
