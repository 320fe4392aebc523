//! The audit log's Merkle tree, persisted beside the entries (sled tree `merkle`), so that a
//! start does not rehash the whole log.
//!
//! Every perfect subtree root `MTH(D[i·2^h : (i+1)·2^h])` is stored under `h (u8) ‖ i (u64
//! big-endian)`, level 0 being the leaf hashes; they are written in the same transaction as
//! the entries they cover. In memory the store keeps only the [`CompactTree`] frontier (one
//! hash per bit of the size); a root at an earlier size or a proof reads the `O(log² n)`
//! nodes it needs. Nodes are derived data: the entries and the signed checkpoints are the
//! truth, and the full check ([`super::Store::full_check`]) recomputes every node from them.
//!
//! The clean-shutdown record ([`CleanShutdown`], meta key [`CLEAN_SHUTDOWN`]) is what the
//! fast start compares the store's head with; see `Store::open`.

use std::cell::RefCell;

use trm_proto::merkle::{self, CompactTree, Hash, Subtrees};

/// Meta key of the clean-shutdown record: written by a clean shutdown, removed by the next
/// open before anything is written.
pub const CLEAN_SHUTDOWN: &str = "clean_shutdown";

/// The key of node `index` at `height`.
pub(super) fn node_key(height: u32, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = height as u8;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The nodes that appending `leaf` to `tree` completes, as (height, index, hash): the leaf
/// itself, then each perfect subtree it closes (the same merges as [`CompactTree::append`]).
pub(super) fn appended(tree: &CompactTree, leaf: Hash) -> Vec<(u32, u64, Hash)> {
    let size = tree.size();
    let frontier = tree.frontier();
    let mut out = vec![(0, size, leaf)];
    let (mut merged, mut carry, mut height) = (leaf, size, 0u32);
    let mut left = frontier.len();
    while carry & 1 == 1 && left > 0 {
        left -= 1;
        merged = merkle::node_hash(&frontier[left], &merged);
        height += 1;
        carry >>= 1;
        out.push((height, ((size + 1) >> height) - 1, merged));
    }
    out
}

/// The perfect subtrees `MTH(D[0:size])` is made of, largest first: (height, index).
pub(super) fn pieces(start: u64, end: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::with_capacity(64);
    let (mut cursor, mut rest) = (start, end - start);
    while rest > 0 {
        let h = rest.ilog2();
        out.push((h, cursor >> h));
        cursor += 1 << h;
        rest -= 1 << h;
    }
    out
}

/// Folds perfect subtree roots (largest first) from the right into one root.
pub(super) fn fold(hashes: &[Hash]) -> Hash {
    let mut it = hashes.iter().rev();
    let Some(&last) = it.next() else {
        return merkle::empty_root();
    };
    it.fold(last, |acc, left| merkle::node_hash(left, &acc))
}

/// Reads persisted nodes; a failed or missing read is kept (the first one) and answered
/// with zeros, so that proof generation (which cannot fail) runs to its end and the caller
/// then reports the failure instead of the proof.
pub(super) struct Stored<'a> {
    pub(super) read: &'a dyn Fn(u32, u64) -> Result<Hash, String>,
    pub(super) failure: RefCell<Option<String>>,
}

impl Stored<'_> {
    /// `MTH(D[start:end])` from the persisted nodes.
    pub(super) fn range_root(&self, start: u64, end: u64) -> Result<Hash, String> {
        let hashes = pieces(start, end)
            .into_iter()
            .map(|(h, i)| (self.read)(h, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fold(&hashes))
    }

    /// The first failure, if any read failed.
    pub(super) fn take_failure(&self) -> Option<String> {
        self.failure.borrow_mut().take()
    }
}

impl Subtrees for Stored<'_> {
    fn mth(&self, start: usize, end: usize) -> Hash {
        match self.range_root(start as u64, end as u64) {
            Ok(h) => h,
            Err(e) => {
                self.failure.borrow_mut().get_or_insert(e);
                [0u8; 32]
            }
        }
    }
}

/// What a clean shutdown left: the head the next start compares the store with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanShutdown {
    /// Audit entries at shutdown.
    pub audit_size: u64,
    /// Leaf hash of the last entry (zeros for an empty log).
    pub head_leaf: Hash,
    /// Root of the whole log.
    pub root: Hash,
    /// Tree size of the last stored checkpoint (0: none).
    pub checkpoint_size: u64,
    /// Next outbox sequence number.
    pub next_outbox: u64,
    /// Next arrival sequence number (the key of the next received message in `arrivals`;
    /// the next `inbox` key before schema 2).
    pub next_inbox: u64,
}

impl CleanShutdown {
    const LEN: usize = 8 + 32 + 32 + 8 + 8 + 8;

    /// Fixed-size encoding (version byte 1, then the fields big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + Self::LEN);
        v.push(1);
        v.extend_from_slice(&self.audit_size.to_be_bytes());
        v.extend_from_slice(&self.head_leaf);
        v.extend_from_slice(&self.root);
        v.extend_from_slice(&self.checkpoint_size.to_be_bytes());
        v.extend_from_slice(&self.next_outbox.to_be_bytes());
        v.extend_from_slice(&self.next_inbox.to_be_bytes());
        v
    }

    /// The record, or `None` if `raw` is not one this version wrote.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let (&version, rest) = raw.split_first()?;
        if version != 1 || rest.len() != Self::LEN {
            return None;
        }
        let u = |at: usize| u64::from_be_bytes(rest[at..at + 8].try_into().unwrap_or([0; 8]));
        let h = |at: usize| -> Hash { rest[at..at + 32].try_into().unwrap_or([0; 32]) };
        Some(Self {
            audit_size: u(0),
            head_leaf: h(8),
            root: h(40),
            checkpoint_size: u(72),
            next_outbox: u(80),
            next_inbox: u(88),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u64) -> Hash {
        merkle::leaf_hash(&i.to_be_bytes())
    }

    #[test]
    fn appended_nodes_are_the_perfect_subtrees_of_the_log() {
        let mut nodes = std::collections::BTreeMap::new();
        let mut tree = CompactTree::new();
        let mut log = merkle::MerkleLog::new();
        for i in 0..37u64 {
            for (h, idx, hash) in appended(&tree, leaf(i)) {
                nodes.insert((h, idx), hash);
            }
            tree.append(leaf(i));
            log.push(leaf(i));
            let read = |h: u32, i: u64| nodes.get(&(h, i)).copied().ok_or("missing".to_string());
            let stored = Stored {
                read: &read,
                failure: RefCell::new(None),
            };
            let size = i + 1;
            for s in 1..=size {
                assert_eq!(stored.range_root(0, s).unwrap(), log.root_at(s).unwrap());
            }
            assert_eq!(stored.range_root(0, size).unwrap(), tree.root());
            for index in 0..size {
                assert_eq!(
                    merkle::inclusion_proof_in(&stored, index, size).unwrap(),
                    log.inclusion_proof(index, size).unwrap()
                );
            }
            for first in 0..=size {
                assert_eq!(
                    merkle::consistency_proof_in(&stored, first, size).unwrap(),
                    log.consistency_proof(first, size).unwrap()
                );
            }
            assert!(stored.take_failure().is_none());
        }
    }

    #[test]
    fn the_clean_shutdown_record_round_trips_and_refuses_other_bytes() {
        let r = CleanShutdown {
            audit_size: 7,
            head_leaf: [1; 32],
            root: [2; 32],
            checkpoint_size: 6,
            next_outbox: 3,
            next_inbox: 4,
        };
        assert_eq!(CleanShutdown::decode(&r.encode()), Some(r.clone()));
        for bad in [&[][..], &[2u8][..], &r.encode()[..50]] {
            assert_eq!(CleanShutdown::decode(bad), None);
        }
    }
}
