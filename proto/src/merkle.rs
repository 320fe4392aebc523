//! The RFC 9162 (Certificate Transparency v2) Merkle tree and its proofs.
//!
//! Everything here is a pure function of its arguments; nothing does I/O.
//!
//! * Hashing ([RFC 9162 §2.1.1]): [`leaf_hash`] is `SHA-256(0x00 || entry)`, [`node_hash`] is
//!   `SHA-256(0x01 || left || right)` and the root of the empty tree is [`empty_root`],
//!   `SHA-256()` of the empty string. The functions taking `leaves: &[Hash]` expect
//!   entries that are *already* leaf-hashed.
//! * Tree head: [`root`] computes `MTH(D[n])`.
//! * Proof generation: [`inclusion_proof`] (§2.1.3.1, `PATH`) and [`consistency_proof`]
//!   (§2.1.4.1, `PROOF` / `SUBPROOF`).
//! * Proof verification: [`verify_inclusion`] (§2.1.3.2) and [`verify_consistency`]
//!   (§2.1.4.2), implemented step by step as the RFC writes them, including its proof-length
//!   checks.
//! * [`CompactTree`]: an append-only tree that keeps only the `O(log n)` roots of its
//!   maximal full subtrees, enough to compute the current root and to keep appending.
//!
//! [RFC 9162 §2.1.1]: https://www.rfc-editor.org/rfc/rfc9162#section-2.1.1

use sha2::digest::Output;
use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of a log entry: `SHA-256(0x00 || entry)` (RFC 9162 §2.1.1, `MTH({d(0)})`).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    finish(hasher)
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous 65-byte message and one `update` call: the hashing front end is
    // generic, hence compiled with this crate's (in debug builds unoptimized) settings, and
    // every call through it counts when tests verify hundreds of thousands of proofs.
    let mut message = [0u8; 65];
    message[0] = NODE_PREFIX;
    message[1..33].copy_from_slice(left);
    message[33..].copy_from_slice(right);
    let mut hasher = Sha256::new();
    hasher.update(message);
    finish(hasher)
}

/// The digest of `hasher`, written straight into a [`Hash`].
fn finish(hasher: Sha256) -> Hash {
    let mut hash = [0u8; 32];
    hasher.finalize_into(Output::<Sha256>::from_mut_slice(&mut hash));
    hash
}

/// The root of the empty tree: `SHA-256()` of the empty string (RFC 9162 §2.1.1),
/// `e3b0c442…b855`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Errors of proof generation, proof verification and [`CompactTree::from_parts`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not smaller than the tree size (this includes every index of an
    /// empty tree).
    #[error("leaf index {index} is out of range for a tree of size {tree_size}")]
    IndexOutOfRange {
        /// The offending leaf index.
        index: u64,
        /// The tree size it was checked against.
        tree_size: u64,
    },
    /// The first (older) tree size is larger than the second (newer) one; for
    /// [`consistency_proof`], `second_size` is the number of leaves given.
    #[error("first tree size {first_size} is larger than second tree size {second_size}")]
    SizesOutOfOrder {
        /// The first (older) tree size.
        first_size: u64,
        /// The second (newer) tree size.
        second_size: u64,
    },
    /// The proof does not have the number of hashes the tree sizes (and, for an inclusion
    /// proof, the leaf index) call for: it has extra hashes or misses some.
    #[error("proof has {actual} hashes where {expected} are expected")]
    WrongProofLength {
        /// The number of hashes a proof for these parameters has.
        expected: usize,
        /// The number of hashes the proof has.
        actual: usize,
    },
    /// The root reconstructed from the proof differs from the given root: the root of an
    /// inclusion proof, the second (newer) root of a consistency proof, or, for two trees of
    /// the same size, the two given roots differ.
    #[error("the root computed from the proof does not match the expected root")]
    RootMismatch,
    /// The first (older) root reconstructed from a consistency proof differs from the given
    /// first root (for a first size of 0: the given first root is not [`empty_root`]).
    #[error(
        "the first root computed from the consistency proof does not match the expected first root"
    )]
    FirstRootMismatch,
    /// [`CompactTree::from_parts`]: the frontier must hold exactly one hash per bit set in
    /// the size.
    #[error("a compact tree of size {size} has {expected} frontier hashes, not {actual}")]
    InvalidFrontier {
        /// The tree size given.
        size: u64,
        /// The number of frontier hashes that size calls for (`size.count_ones()`).
        expected: usize,
        /// The number of frontier hashes given.
        actual: usize,
    },
}

/// `MTH(D[n])` of the tree whose (already leaf-hashed) leaves are `leaves`
/// (RFC 9162 §2.1.1); [`empty_root`] when there are none.
///
/// Costs `n - 1` node hashes and `O(log n)` stack.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        empty_root()
    } else {
        mth(leaves)
    }
}

/// The inclusion proof `PATH(index, D[n])` of the leaf at `index` in the tree whose
/// (already leaf-hashed) leaves are `leaves` (RFC 9162 §2.1.3.1), ordered from the leaf's
/// sibling up to the child of the root that is not on the leaf's side.
///
/// Cost: each proof hash is the root of a subtree computed once, recursively and bottom-up,
/// from the leaves, and these subtrees are disjoint, so a proof costs fewer than `n` node
/// hashes (one linear pass over the leaves, nothing recomputed), `O(log n)` stack and no
/// allocation beyond the returned `⌈log2 n⌉` or fewer hashes. For 1,000,000 leaves that is
/// under a million [`node_hash`]es (SHA-256 of 65 bytes). A caller that needs many proofs
/// of one large tree should cache interior nodes rather than call this repeatedly.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let n = leaves.len();
    let m = usize::try_from(index)
        .ok()
        .filter(|&m| m < n)
        .ok_or(ProofError::IndexOutOfRange {
            index,
            tree_size: size_u64(n),
        })?;
    let mut proof = Vec::with_capacity(max_proof_len(n));
    path(&LeafSlice(leaves), m, 0, n, &mut proof);
    Ok(proof)
}

/// The consistency proof `PROOF(first_size, D[n])` between the tree of the first
/// `first_size` leaves and the tree of all of `leaves` (already leaf-hashed), as
/// RFC 9162 §2.1.4.1 defines it with `SUBPROOF`.
///
/// For `first_size == 0` and `first_size == leaves.len()` the proof is empty (there is
/// nothing to prove; [`verify_consistency`] accepts these with an empty proof).
///
/// Cost: as for [`inclusion_proof`], the proof hashes are roots of disjoint subtrees each
/// computed once, so a proof costs fewer than `n` node hashes in one pass and `O(log n)` stack.
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`] if `first_size > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], first_size: u64) -> Result<Vec<Hash>, ProofError> {
    let n = leaves.len();
    let m = usize::try_from(first_size).ok().filter(|&m| m <= n).ok_or(
        ProofError::SizesOutOfOrder {
            first_size,
            second_size: size_u64(n),
        },
    )?;
    let mut proof = Vec::new();
    if m == 0 || m == n {
        return Ok(proof);
    }
    proof.reserve_exact(max_proof_len(n) + 1);
    subproof(&LeafSlice(leaves), m, 0, n, true, &mut proof);
    Ok(proof)
}

/// Verifies that `leaf` (a leaf hash) is the leaf at `index` of the tree of size `tree_size`
/// whose root is `root`, given the inclusion proof `proof`: the algorithm of RFC 9162
/// §2.1.3.2, step by step.
///
/// As in the RFC, a proof with extra or missing hashes fails. Like every RFC 9162 verifier,
/// this authenticates the leaf against `root`; it does not authenticate `tree_size` beyond
/// the shape of the path (a proof may also verify under another tree size whose path to
/// `index` has the same shape), so `tree_size` must come from the same signed tree head as
/// `root`.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= tree_size`, [`ProofError::WrongProofLength`]
/// if the proof has too many or too few hashes, [`ProofError::RootMismatch`] otherwise if the
/// reconstructed root is not `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. If leaf_index is greater than or equal to tree_size, fail.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    // 2. Set fn to leaf_index and sn to tree_size - 1.
    let mut walk = Walk {
        fn_: index,
        sn: tree_size - 1,
    };
    let expected_len = || walk_len(index, tree_size - 1);
    // 3. Set r to hash.
    let mut r = *leaf;
    // 4. For each value p in the inclusion_path array:
    for p in proof {
        // a. If sn is 0, stop the iteration and fail the proof verification.
        if walk.sn == 0 {
            return Err(ProofError::WrongProofLength {
                expected: expected_len(),
                actual: proof.len(),
            });
        }
        // b. and c.
        r = match walk.step() {
            Side::Left => node_hash(p, &r),
            Side::Right => node_hash(&r, p),
        };
    }
    // 5. Compare sn to 0. Compare r against the root_hash.
    if walk.sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected: expected_len(),
            actual: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of size `second_size` with root `second_root` is an append-only
/// extension of the tree of size `first_size` with root `first_root`, given the consistency
/// proof `proof`: the algorithm of RFC 9162 §2.1.4.2, step by step, for
/// `0 < first_size < second_size`.
///
/// The RFC defines the algorithm only for `0 < first < second`; the edge cases are decided
/// here as follows:
/// * `first_size > second_size` fails with [`ProofError::SizesOutOfOrder`].
/// * `first_size == second_size` (including 0) requires an empty proof and
///   `first_root == second_root`.
/// * `first_size == 0 < second_size`: every tree extends the empty tree, so this is accepted
///   with an empty proof, provided `first_root` is the root of the empty tree
///   ([`empty_root`]); `second_root` is not constrained.
///
/// As in the RFC, a proof with extra or missing hashes fails.
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`], [`ProofError::WrongProofLength`] (extra or missing
/// hashes), [`ProofError::FirstRootMismatch`] if the proof does not lead to `first_root`,
/// [`ProofError::RootMismatch`] if it does not lead to `second_root`.
pub fn verify_consistency(
    first_size: u64,
    second_size: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first_size > second_size {
        return Err(ProofError::SizesOutOfOrder {
            first_size,
            second_size,
        });
    }
    if first_size == second_size || first_size == 0 {
        return verify_trivial_consistency(first_size, second_size, first_root, second_root, proof);
    }
    // From here on 0 < first < second, the RFC's precondition.
    let expected_len = || consistency_proof_len(first_size, second_size);
    // 1. If consistency_path is an empty array, stop and fail the proof verification.
    let Some((head, tail)) = proof.split_first() else {
        return Err(ProofError::WrongProofLength {
            expected: expected_len(),
            actual: 0,
        });
    };
    // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path
    //    array. Instead of copying, split the path into its first value and the rest.
    let (first_value, rest) = if first_size.is_power_of_two() {
        (first_root, proof)
    } else {
        (head, tail)
    };
    // 3. Set fn to first - 1 and sn to second - 1.
    let mut walk = Walk {
        fn_: first_size - 1,
        sn: second_size - 1,
    };
    // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while walk.fn_ & 1 == 1 {
        walk.fn_ >>= 1;
        walk.sn >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path array.
    let mut fr = *first_value;
    let mut sr = *first_value;
    // 6. For each subsequent value c in the consistency_path array:
    for c in rest {
        // a. If sn is 0, then stop the iteration and fail the proof verification.
        if walk.sn == 0 {
            return Err(ProofError::WrongProofLength {
                expected: expected_len(),
                actual: proof.len(),
            });
        }
        // b. and c.
        match walk.step() {
            Side::Left => {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
            }
            Side::Right => sr = node_hash(&sr, c),
        }
    }
    // 7. Verify that fr is first_hash, sr is second_hash and sn is 0.
    if walk.sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected: expected_len(),
            actual: proof.len(),
        });
    }
    if fr != *first_root {
        return Err(ProofError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The edge cases of [`verify_consistency`] that the RFC leaves open, `first_size ==
/// second_size` or `first_size == 0`: an empty proof, `first_root` the empty tree's root if
/// `first_size` is 0, and equal roots if the sizes are equal.
fn verify_trivial_consistency(
    first_size: u64,
    second_size: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::WrongProofLength {
            expected: 0,
            actual: proof.len(),
        });
    }
    if first_size == 0 && *first_root != empty_root() {
        return Err(ProofError::FirstRootMismatch);
    }
    if first_size == second_size && first_root != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// An append-only Merkle tree that keeps only what it needs to compute its root and to keep
/// appending: the roots of its maximal full (perfect) subtrees, its *frontier*.
///
/// Representation (stable, meant to be persisted with [`CompactTree::size`] and
/// [`CompactTree::frontier`] and restored with [`CompactTree::from_parts`]): a tree of
/// `size` leaves is the concatenation of one perfect subtree of `2^b` leaves for every bit
/// `b` set in `size`, largest (leftmost) first. The frontier holds their roots in that
/// order, so it has exactly `size.count_ones()` hashes (at most 64) and `frontier[0]` covers
/// the oldest leaves. For example size 6 (`0b110`) has the frontier
/// `[MTH(D[0:4]), MTH(D[4:6])]`. The root is these hashes folded from the right:
/// `node_hash(f[0], node_hash(f[1], … f[k-1]))`, which is `MTH(D[size])`; the empty tree
/// has an empty frontier and the root [`empty_root`].
///
/// [`CompactTree::append`] costs amortized one node hash (at most 64) and
/// [`CompactTree::root`] `size.count_ones() - 1` node hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    frontier: Vec<Hash>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a tree from its persisted [`size`](CompactTree::size) and
    /// [`frontier`](CompactTree::frontier) (see the type's documentation for the
    /// representation).
    ///
    /// The hashes themselves cannot be checked here; only their number.
    ///
    /// # Errors
    /// [`ProofError::InvalidFrontier`] if `frontier.len() != size.count_ones()`.
    pub fn from_parts(size: u64, frontier: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if frontier.len() != expected {
            return Err(ProofError::InvalidFrontier {
                size,
                expected,
                actual: frontier.len(),
            });
        }
        Ok(Self { size, frontier })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the maximal perfect subtrees, largest (oldest leaves) first; one per bit
    /// set in [`size`](CompactTree::size).
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Appends a leaf (an already leaf-hashed entry, see [`leaf_hash`]).
    ///
    /// # Panics
    /// If the tree already has `u64::MAX` leaves.
    pub fn append(&mut self, leaf: Hash) {
        // Adding one to `size` clears its trailing one bits: each of them is a perfect
        // subtree that now merges with the new one into a subtree twice as large.
        let mut merged = leaf;
        let mut carry = self.size;
        while carry & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                break; // unreachable while the frontier invariant holds
            };
            merged = node_hash(&left, &merged);
            carry >>= 1;
        }
        self.frontier.push(merged);
        self.size = self
            .size
            .checked_add(1)
            .expect("a Merkle tree has at most u64::MAX leaves");
    }

    /// The root `MTH(D[size])` of the tree, equal to [`root`] of all leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.frontier.iter().rev();
        let Some(&last) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(last, |acc, left| node_hash(left, &acc))
    }
}

/// `MTH(D[n])` of a non-empty run of leaf hashes, recursively as RFC 9162 §2.1.1 defines it
/// (`n - 1` node hashes, recursion depth `⌈log2 n⌉`).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (the `k` of RFC 9162 §2.1.1), for `n >= 2`.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// An upper bound of the number of hashes of an inclusion proof in a tree of `n` leaves.
fn max_proof_len(n: usize) -> usize {
    n.next_power_of_two().trailing_zeros() as usize
}

/// `n` as a `u64` (lossless on every platform Rust supports).
fn size_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Where proof generation gets `MTH(D[start:end])` of the subtrees it needs. Every range
/// asked for is a node of the RFC 9162 tree: `start` is a multiple of the largest power of
/// two not smaller than `end - start`, and `end - start` is that power of two unless `end`
/// is the size of the tree.
///
/// Public so that a log kept elsewhere (e.g. a node's store, which persists the perfect
/// subtree roots) generates byte-identical proofs with [`inclusion_proof_in`] and
/// [`consistency_proof_in`].
pub trait Subtrees {
    /// `MTH(D[start:end])`, `start < end`.
    fn mth(&self, start: usize, end: usize) -> Hash;
}

/// [`MerkleLog::inclusion_proof`] over any [`Subtrees`] holding at least `size` leaves (the
/// caller checks that): the proof of the leaf at `index` in the tree of the first `size`.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] if `index >= size`.
pub fn inclusion_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let out_of_range = ProofError::IndexOutOfRange {
        index,
        tree_size: size,
    };
    let n = usize::try_from(size).map_err(|_| out_of_range.clone())?;
    let m = usize::try_from(index)
        .ok()
        .filter(|&m| m < n)
        .ok_or(out_of_range)?;
    let mut proof = Vec::with_capacity(max_proof_len(n));
    path(tree, m, 0, n, &mut proof);
    Ok(proof)
}

/// [`MerkleLog::consistency_proof`] over any [`Subtrees`] holding at least `second` leaves
/// (the caller checks that).
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`] if `first > second`.
pub fn consistency_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    let order = ProofError::SizesOutOfOrder {
        first_size: first,
        second_size: second,
    };
    let n = usize::try_from(second).map_err(|_| order.clone())?;
    let m = usize::try_from(first)
        .ok()
        .filter(|&m| m <= n)
        .ok_or(order)?;
    let mut proof = Vec::new();
    if m != 0 && m != n {
        subproof(tree, m, 0, n, true, &mut proof);
    }
    Ok(proof)
}

/// Subtree roots computed from the leaves, each when asked for.
struct LeafSlice<'a>(&'a [Hash]);

impl Subtrees for LeafSlice<'_> {
    fn mth(&self, start: usize, end: usize) -> Hash {
        mth(&self.0[start..end])
    }
}

/// Appends `PATH(m, D[start:end])` to `out` (RFC 9162 §2.1.3.1), `m` relative to `start`.
fn path<T: Subtrees + ?Sized>(tree: &T, m: usize, start: usize, end: usize, out: &mut Vec<Hash>) {
    let n = end - start;
    if n <= 1 {
        // PATH(0, {d(0)}) = {}
        return;
    }
    let k = split(n);
    if m < k {
        // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
        path(tree, m, start, start + k, out);
        out.push(tree.mth(start + k, end));
    } else {
        // PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
        path(tree, m - k, start + k, end, out);
        out.push(tree.mth(start, start + k));
    }
}

/// Appends `SUBPROOF(m, D[start:end], b)` to `out` (RFC 9162 §2.1.4.1), `1 <= m <= end - start`.
fn subproof<T: Subtrees + ?Sized>(
    tree: &T,
    m: usize,
    start: usize,
    end: usize,
    b: bool,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if m == n {
        // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
        if !b {
            out.push(tree.mth(start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        // SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
        subproof(tree, m, start, start + k, b, out);
        out.push(tree.mth(start + k, end));
    } else {
        // SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
        subproof(tree, m - k, start + k, end, false, out);
        out.push(tree.mth(start, start + k));
    }
}

/// Which side of the running hash a proof hash goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `HASH(0x01 || p || r)`.
    Left,
    /// `HASH(0x01 || r || p)`.
    Right,
}

/// The `(fn, sn)` bit walk shared by RFC 9162 §2.1.3.2 step 4 and §2.1.4.2 step 6.
#[derive(Debug, Clone, Copy)]
struct Walk {
    fn_: u64,
    sn: u64,
}

impl Walk {
    /// Steps b and c for one proof hash (the caller has checked step a, `sn != 0`): returns
    /// the side the hash goes on and advances `fn` and `sn`.
    fn step(&mut self) -> Side {
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        let side = if self.fn_ & 1 == 1 || self.fn_ == self.sn {
            // ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            //     LSB(fn) is set or fn is 0.
            while self.fn_ & 1 == 0 && self.fn_ != 0 {
                self.fn_ >>= 1;
                self.sn >>= 1;
            }
            Side::Left
        } else {
            Side::Right
        };
        // c. Finally, right-shift both fn and sn one time.
        self.fn_ >>= 1;
        self.sn >>= 1;
        side
    }
}

/// The number of steps the walk from `(fn, sn)` takes until `sn` is 0: the number of proof
/// hashes the verifier consumes. Used only to report [`ProofError::WrongProofLength`].
fn walk_len(fn_: u64, sn: u64) -> usize {
    let mut walk = Walk { fn_, sn };
    let mut len = 0;
    while walk.sn != 0 {
        walk.step();
        len += 1;
    }
    len
}

/// The number of hashes of a consistency proof for `0 < first < second`, as §2.1.4.2 consumes
/// them (the proof of a power-of-two `first` omits the first root).
fn consistency_proof_len(first: u64, second: u64) -> usize {
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    walk_len(fn_, sn) + usize::from(!first.is_power_of_two())
}

/// An append-only log's Merkle tree with every perfect subtree root cached, so that the root
/// of any prefix and inclusion and consistency proofs against any earlier tree size cost
/// `O(log² n)` look-ups and node hashes instead of `O(n)`.
///
/// Level `h` holds the roots of the complete, aligned subtrees of `2^h` leaves
/// (`MTH(D[i·2^h : (i+1)·2^h])`); a subtree that is still incomplete is not stored, its root is
/// folded from the perfect subtrees it is made of when asked for. Memory: about two hashes per
/// leaf. Proofs are generated by the same RFC 9162 `PATH` and `SUBPROOF` recursion as
/// [`inclusion_proof`] and [`consistency_proof`], so they are byte-identical to theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    /// The empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| size_u64(l.len()))
    }

    /// Appends a leaf (an already leaf-hashed entry, see [`leaf_hash`]): amortized one node
    /// hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut h = 0;
        while self.levels[h].len().is_multiple_of(2) {
            let n = self.levels[h].len();
            let parent = node_hash(&self.levels[h][n - 2], &self.levels[h][n - 1]);
            if self.levels.len() == h + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[h + 1].push(parent);
            h += 1;
        }
    }

    /// The leaf hash at `index`, if there is one.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        self.levels.first()?.get(i).copied()
    }

    /// The root of the tree of the first `size` leaves, `MTH(D[size])`.
    ///
    /// # Errors
    /// [`ProofError::SizesOutOfOrder`] if `size` exceeds the number of leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        let n = self.check_size(size)?;
        Ok(if n == 0 {
            empty_root()
        } else {
            self.range_root(0, n)
        })
    }

    /// The inclusion proof of the leaf at `index` in the tree of the first `size` leaves;
    /// equal to [`inclusion_proof`] over those leaves.
    ///
    /// # Errors
    /// [`ProofError::SizesOutOfOrder`] if `size` exceeds the number of leaves,
    /// [`ProofError::IndexOutOfRange`] if `index >= size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        inclusion_proof_in(self, index, size)
    }

    /// The consistency proof from the tree of the first `first` leaves to the tree of the
    /// first `second` leaves; equal to [`consistency_proof`] over those leaves.
    ///
    /// # Errors
    /// [`ProofError::SizesOutOfOrder`] if `first > second` or `second` exceeds the number of
    /// leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(second)?;
        consistency_proof_in(self, first, second)
    }

    fn check_size(&self, size: u64) -> Result<usize, ProofError> {
        usize::try_from(size)
            .ok()
            .filter(|&n| size_u64(n) <= self.size())
            .ok_or(ProofError::SizesOutOfOrder {
                first_size: size,
                second_size: self.size(),
            })
    }

    /// `MTH(D[start:end])` for `start` aligned to the largest power of two not smaller than
    /// `end - start` (every range the RFC recursion asks for): the perfect subtrees it is made
    /// of, largest first, folded from the right.
    fn range_root(&self, start: usize, end: usize) -> Hash {
        let mut pieces = Vec::with_capacity(64);
        let mut cursor = start;
        let mut rest = end - start;
        while rest > 0 {
            let h = rest.ilog2() as usize;
            pieces.push(self.levels[h][cursor >> h]);
            cursor += 1 << h;
            rest -= 1 << h;
        }
        let mut it = pieces.iter().rev();
        let last = *it.next().unwrap_or(&[0u8; 32]);
        it.fold(last, |acc, left| node_hash(left, &acc))
    }
}

impl Subtrees for MerkleLog {
    fn mth(&self, start: usize, end: usize) -> Hash {
        self.range_root(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    // ---------------------------------------------------------------------------------------
    // Independent reference: the RFC 9162 §2.1 definitions transcribed literally, with their
    // own hashing, on lists of leaf hashes. Slow (it recomputes), only for small trees.
    // ---------------------------------------------------------------------------------------

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// The largest power of two smaller than n, by counting.
    fn naive_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn naive_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => sha256(&[]),
            1 => d[0],
            n => {
                let k = naive_k(n);
                sha256(&[&[1], &naive_mth(&d[..k]), &naive_mth(&d[k..])])
            }
        }
    }

    fn naive_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = naive_k(n);
        if m < k {
            let mut p = naive_path(m, &d[..k]);
            p.push(naive_mth(&d[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &d[k..]);
            p.push(naive_mth(&d[..k]));
            p
        }
    }

    fn naive_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![naive_mth(d)] };
        }
        let k = naive_k(n);
        if m <= k {
            let mut p = naive_subproof(m, &d[..k], b);
            p.push(naive_mth(&d[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &d[k..], false);
            p.push(naive_mth(&d[..k]));
            p
        }
    }

    fn naive_proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        if m == 0 || m == d.len() {
            vec![]
        } else {
            naive_subproof(m, d, true)
        }
    }

    /// The shape of `PATH(m, D[n])`, leaf to root: `true` where the proof hash is a left
    /// sibling. Two (index, size) pairs with the same shape make the verifier compute the same
    /// hash from the same proof.
    fn inclusion_shape(m: u64, n: u64) -> Vec<bool> {
        if n <= 1 {
            return vec![];
        }
        let k = naive_k(n as usize) as u64;
        let mut s = if m < k {
            inclusion_shape(m, k)
        } else {
            inclusion_shape(m - k, n - k)
        };
        s.push(m >= k);
        s
    }

    /// The shape of `SUBPROOF(m, D[n], b)`: 'S' when the first root seeds the walk (omitted
    /// from the proof), 'P' when the proof's first hash does, then per level 'l' (left
    /// sibling: in both trees) or 'r' (right sibling: only in the second tree).
    fn consistency_shape(m: u64, n: u64, b: bool) -> String {
        if m == n {
            return if b { "S".into() } else { "P".into() };
        }
        let k = naive_k(n as usize) as u64;
        if m <= k {
            consistency_shape(m, k, b) + "r"
        } else {
            consistency_shape(m - k, n - k, false) + "l"
        }
    }

    /// Whether the verifier must accept `(m2, n2)` in place of `(m, n)`: same shape. Only for
    /// `0 < m < n`, `0 < m2 < n2`.
    fn same_consistency_shape(m: u64, n: u64, m2: u64, n2: u64) -> bool {
        consistency_shape(m, n, true) == consistency_shape(m2, n2, true)
    }

    // ---------------------------------------------------------------------------------------
    // A cached tree for the exhaustive tests: every node of the RFC tree, level by level
    // (a lone last node is carried up unchanged, which gives exactly the RFC's unbalanced
    // right edge). Proof generation runs the library's own `path`/`subproof` over it, so a
    // proof costs O(log n) look-ups instead of O(n) hashes.
    // ---------------------------------------------------------------------------------------

    struct Levels(Vec<Vec<Hash>>);

    impl Levels {
        fn new(leaves: &[Hash]) -> Self {
            let mut levels = Self(vec![vec![]]);
            leaves.iter().for_each(|leaf| levels.push(*leaf));
            levels
        }

        /// Appends a leaf: only the right edge changes, `O(log n)` node hashes.
        fn push(&mut self, leaf: Hash) {
            self.0[0].push(leaf);
            let mut level = 0;
            while self.0[level].len() > 1 {
                let nodes = &self.0[level];
                let len = nodes.len();
                let parent = if len.is_multiple_of(2) {
                    node_hash(&nodes[len - 2], &nodes[len - 1])
                } else {
                    nodes[len - 1]
                };
                if self.0.len() == level + 1 {
                    self.0.push(vec![]);
                }
                let up = &mut self.0[level + 1];
                if up.len() == (len - 1) / 2 {
                    up.push(parent);
                } else {
                    up[(len - 1) / 2] = parent;
                }
                level += 1;
            }
        }

        fn size(&self) -> usize {
            self.0[0].len()
        }

        fn root(&self) -> Hash {
            self.0
                .last()
                .and_then(|l| l.first())
                .copied()
                .unwrap_or_else(empty_root)
        }

        fn inclusion_proof(&self, m: usize) -> Vec<Hash> {
            let mut out = vec![];
            path(self, m, 0, self.size(), &mut out);
            out
        }

        fn consistency_proof(&self, m: usize) -> Vec<Hash> {
            let mut out = vec![];
            if m != 0 && m != self.size() {
                subproof(self, m, 0, self.size(), true, &mut out);
            }
            out
        }
    }

    impl Subtrees for Levels {
        fn mth(&self, start: usize, end: usize) -> Hash {
            let level = (end - start).next_power_of_two().trailing_zeros() as usize;
            assert_eq!(
                start % (1 << level),
                0,
                "[{start}, {end}) is not a tree node"
            );
            assert_eq!(
                end,
                (start + (1 << level)).min(self.size()),
                "[{start}, {end}) is not a tree node"
            );
            self.0[level][start >> level]
        }
    }

    /// `n` distinct leaf hashes derived from `seed`.
    fn test_leaves(seed: u64, n: usize) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
            .collect()
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hs(v: &[&str]) -> Vec<Hash> {
        v.iter().map(|s| h(s)).collect()
    }

    fn flip(hash: &Hash, byte: usize) -> Hash {
        let mut x = *hash;
        x[byte] ^= 0x01;
        x
    }

    // ---------------------------------------------------------------------------------------
    // Reference vectors (the RFC 6962 test tree of certificate-transparency / trillian /
    // transparency-dev/merkle).
    // ---------------------------------------------------------------------------------------

    const INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Roots of the trees of the first 0..=8 inputs.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Every node of the size-8 tree, by level (0 = leaf hashes).
    const NODES: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    fn reference_leaves() -> Vec<Hash> {
        INPUTS
            .iter()
            .map(|s| leaf_hash(&hex::decode(s).unwrap()))
            .collect()
    }

    #[test]
    fn merkle_hashes_are_the_rfc_9162_definitions() {
        assert_eq!(empty_root(), h(ROOTS[0]));
        assert_eq!(empty_root(), sha256(&[]));
        assert_eq!(root(&[]), empty_root());
        for input in INPUTS {
            let e = hex::decode(input).unwrap();
            assert_eq!(leaf_hash(&e), sha256(&[&[0], &e]));
        }
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        assert_eq!(node_hash(&a, &b), sha256(&[&[1], &a, &b]));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        // Domain separation: a 64-byte entry does not hash like the node of its halves.
        assert_ne!(leaf_hash(&[a, b].concat()), node_hash(&a, &b));
    }

    #[test]
    fn merkle_reference_roots_and_nodes() {
        let leaves = reference_leaves();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(root(&leaves[..n]), h(want), "root of size {n}");
            assert_eq!(naive_mth(&leaves[..n]), h(want), "naive root of size {n}");
        }
        let levels = Levels::new(&leaves);
        for (level, want) in NODES.iter().enumerate() {
            assert_eq!(levels.0[level], hs(want), "level {level}");
        }
    }

    #[test]
    fn merkle_reference_inclusion_proofs() {
        let leaves = reference_leaves();
        // (index, tree size, proof)
        let cases: [(u64, usize, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, want) in cases {
            let proof = inclusion_proof(&leaves[..size], index).unwrap();
            assert_eq!(proof, hs(want), "inclusion proof of {index} in {size}");
            verify_inclusion(
                &leaves[index as usize],
                index,
                size as u64,
                &proof,
                &h(ROOTS[size]),
            )
            .unwrap();
        }
    }

    #[test]
    fn merkle_reference_consistency_proofs() {
        let leaves = reference_leaves();
        // (first size, second size, proof)
        let cases: [(u64, usize, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (first, size, want) in cases {
            let proof = consistency_proof(&leaves[..size], first).unwrap();
            assert_eq!(proof, hs(want), "consistency proof of {first} in {size}");
            verify_consistency(
                first,
                size as u64,
                &h(ROOTS[first as usize]),
                &h(ROOTS[size]),
                &proof,
            )
            .unwrap();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Generation against the naive definitions, and the cached tree against the library.
    // ---------------------------------------------------------------------------------------

    #[test]
    fn merkle_generation_matches_naive_rfc_definitions() {
        let all = test_leaves(1, 64);
        for n in 0..=all.len() {
            let leaves = &all[..n];
            let levels = Levels::new(leaves);
            assert_eq!(root(leaves), naive_mth(leaves), "root of {n}");
            assert_eq!(levels.root(), root(leaves), "cached root of {n}");
            for m in 0..n {
                let proof = inclusion_proof(leaves, m as u64).unwrap();
                assert_eq!(proof, naive_path(m, leaves), "PATH({m}, D[{n}])");
                assert_eq!(proof, levels.inclusion_proof(m), "cached PATH({m}, D[{n}])");
                assert_eq!(proof.len(), inclusion_shape(m as u64, n as u64).len());
            }
            for m in 0..=n {
                let proof = consistency_proof(leaves, m as u64).unwrap();
                assert_eq!(proof, naive_proof(m, leaves), "PROOF({m}, D[{n}])");
                assert_eq!(
                    proof,
                    levels.consistency_proof(m),
                    "cached PROOF({m}, D[{n}])"
                );
                if 0 < m && m < n {
                    let (m, n) = (m as u64, n as u64);
                    assert_eq!(proof.len(), consistency_proof_len(m, n));
                    let shape = consistency_shape(m, n, true);
                    let seed_in_proof = usize::from(shape.starts_with('P'));
                    assert_eq!(proof.len(), shape.len() - 1 + seed_in_proof);
                }
            }
        }
    }

    #[test]
    fn merkle_generation_errors() {
        let leaves = test_leaves(2, 5);
        assert_eq!(
            inclusion_proof(&leaves, 5),
            Err(ProofError::IndexOutOfRange {
                index: 5,
                tree_size: 5
            })
        );
        assert_eq!(
            inclusion_proof(&leaves, u64::MAX),
            Err(ProofError::IndexOutOfRange {
                index: u64::MAX,
                tree_size: 5
            })
        );
        assert_eq!(
            inclusion_proof(&[], 0),
            Err(ProofError::IndexOutOfRange {
                index: 0,
                tree_size: 0
            })
        );
        assert_eq!(
            consistency_proof(&leaves, 6),
            Err(ProofError::SizesOutOfOrder {
                first_size: 6,
                second_size: 5
            })
        );
        assert_eq!(consistency_proof(&leaves, 0), Ok(vec![]));
        assert_eq!(consistency_proof(&leaves, 5), Ok(vec![]));
        assert_eq!(consistency_proof(&[], 0), Ok(vec![]));
    }

    /// Every inclusion proof of every index of every tree in `sizes` verifies, with the proof
    /// derived from the cached tree (checked against the library's slice-based generation for
    /// a random index of every third size).
    fn check_all_inclusion_proofs(sizes: std::ops::RangeInclusive<usize>) {
        let all = test_leaves(3, *sizes.end());
        let mut rng = StdRng::seed_from_u64(*sizes.start() as u64);
        let mut levels = Levels::new(&all[..*sizes.start() - 1]);
        for n in sizes {
            levels.push(all[n - 1]);
            let leaves = &all[..n];
            let tree_root = levels.root();
            let size = n as u64;
            for (m, leaf) in leaves.iter().enumerate() {
                let proof = levels.inclusion_proof(m);
                verify_inclusion(leaf, m as u64, size, &proof, &tree_root)
                    .unwrap_or_else(|e| panic!("proof of {m} in {n}: {e}"));
            }
            if n % 3 == 0 {
                let m = rng.gen_range(0..n);
                assert_eq!(
                    inclusion_proof(leaves, m as u64).unwrap(),
                    levels.inclusion_proof(m),
                    "proof of {m} in {n}"
                );
            }
        }
    }

    // Four slices of about the same work, so that the test threads share it.
    #[test]
    fn merkle_all_inclusion_proofs_sizes_1_to_500() {
        check_all_inclusion_proofs(1..=500);
    }

    #[test]
    fn merkle_all_inclusion_proofs_sizes_501_to_707() {
        check_all_inclusion_proofs(501..=707);
    }

    #[test]
    fn merkle_all_inclusion_proofs_sizes_708_to_866() {
        check_all_inclusion_proofs(708..=866);
    }

    #[test]
    fn merkle_all_inclusion_proofs_sizes_867_to_1000() {
        check_all_inclusion_proofs(867..=1000);
    }

    #[test]
    fn merkle_roots_of_every_size_up_to_1000() {
        let all = test_leaves(4, 1000);
        let mut compact = CompactTree::new();
        let mut levels = Levels::new(&[]);
        assert_eq!(compact.root(), empty_root());
        assert_eq!(levels.root(), empty_root());
        for n in 1..=all.len() {
            compact.append(all[n - 1]);
            levels.push(all[n - 1]);
            let want = root(&all[..n]);
            assert_eq!(levels.root(), want, "cached root of {n}");
            assert_eq!(compact.size(), n as u64);
            assert_eq!(compact.root(), want, "compact root of {n}");
            assert_eq!(compact.frontier().len(), n.count_ones() as usize);
            let restored =
                CompactTree::from_parts(compact.size(), compact.frontier().to_vec()).unwrap();
            assert_eq!(restored, compact);
            assert_eq!(restored.root(), want);
        }
    }

    #[test]
    fn merkle_compact_tree_frontier_representation() {
        let leaves = test_leaves(5, 64);
        let mut compact = CompactTree::new();
        for (n, leaf) in leaves.iter().enumerate() {
            compact.append(*leaf);
            let n = n + 1;
            // One perfect subtree per bit of n, largest first.
            let mut want = vec![];
            let mut start = 0;
            for bit in (0..usize::BITS).rev() {
                if n & (1 << bit) != 0 {
                    want.push(root(&leaves[start..start + (1 << bit)]));
                    start += 1 << bit;
                }
            }
            assert_eq!(compact.frontier(), &want[..], "frontier of {n}");
        }
        // A restored tree keeps appending like the original.
        let mut restored = CompactTree::from_parts(13, {
            let mut t = CompactTree::new();
            leaves[..13].iter().for_each(|l| t.append(*l));
            t.frontier().to_vec()
        })
        .unwrap();
        for leaf in &leaves[13..] {
            restored.append(*leaf);
        }
        assert_eq!(restored, compact);
        assert_eq!(
            CompactTree::from_parts(6, vec![[0; 32]]),
            Err(ProofError::InvalidFrontier {
                size: 6,
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(
            CompactTree::from_parts(0, vec![[0; 32]]),
            Err(ProofError::InvalidFrontier {
                size: 0,
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            CompactTree::from_parts(0, vec![]).unwrap(),
            CompactTree::new()
        );
    }

    #[test]
    fn merkle_all_consistency_pairs_up_to_64_verify() {
        let all = test_leaves(6, 64);
        let roots: Vec<Hash> = (0..=all.len()).map(|n| root(&all[..n])).collect();
        let mut levels = Levels::new(&[]);
        for n in 0..=all.len() {
            if n > 0 {
                levels.push(all[n - 1]);
            }
            for m in 0..=n {
                let proof = levels.consistency_proof(m);
                verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof)
                    .unwrap_or_else(|e| panic!("proof of {m} in {n}: {e}"));
            }
        }
    }

    #[test]
    fn merkle_random_consistency_pairs_up_to_1000_verify() {
        let all = test_leaves(7, 1000);
        let mut rng = StdRng::seed_from_u64(7);
        let mut levels = Levels::new(&[]);
        let mut roots = vec![levels.root()];
        for n in 1..=all.len() {
            levels.push(all[n - 1]);
            roots.push(levels.root());
            for i in 0..4 {
                let m = rng.gen_range(0..=n);
                let proof = levels.consistency_proof(m);
                verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &proof)
                    .unwrap_or_else(|e| panic!("proof of {m} in {n}: {e}"));
                if i == 0 && n % 10 == 0 {
                    assert_eq!(consistency_proof(&all[..n], m as u64).unwrap(), proof);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Mutations.
    // ---------------------------------------------------------------------------------------

    /// Every single mutation of a valid inclusion proof fails, except a different tree size
    /// whose path to the same index has the same shape (RFC 9162 inclusion proofs do not
    /// authenticate the tree size; see `verify_inclusion`). Returns how many such sizes
    /// verified.
    fn check_inclusion_mutations(
        leaf: &Hash,
        index: u64,
        size: u64,
        proof: &[Hash],
        root: &Hash,
        all_indices: bool,
    ) -> usize {
        let verify = |leaf: &Hash, index, size, proof: &[Hash], root: &Hash| {
            verify_inclusion(leaf, index, size, proof, root)
        };
        let ctx = format!("proof of {index} in {size}");
        verify(leaf, index, size, proof, root).unwrap();
        let expected = proof.len();
        for i in 0..proof.len() {
            for byte in 0..32 {
                let mut bad = proof.to_vec();
                bad[i] = flip(&bad[i], byte);
                assert_eq!(
                    verify(leaf, index, size, &bad, root),
                    Err(ProofError::RootMismatch),
                    "{ctx}: flipped byte {byte} of hash {i}"
                );
            }
        }
        for byte in 0..32 {
            assert_eq!(
                verify(&flip(leaf, byte), index, size, proof, root),
                Err(ProofError::RootMismatch),
                "{ctx}: flipped byte {byte} of the leaf"
            );
            assert_eq!(
                verify(leaf, index, size, proof, &flip(root, byte)),
                Err(ProofError::RootMismatch),
                "{ctx}: flipped byte {byte} of the root"
            );
        }
        // Extra hashes anywhere, missing hashes anywhere.
        for at in 0..=proof.len() {
            for extra in [[0u8; 32], *root, *leaf] {
                let mut bad = proof.to_vec();
                bad.insert(at, extra);
                assert_eq!(
                    verify(leaf, index, size, &bad, root),
                    Err(ProofError::WrongProofLength {
                        expected,
                        actual: expected + 1
                    }),
                    "{ctx}: hash inserted at {at}"
                );
            }
        }
        for at in 0..proof.len() {
            let mut bad = proof.to_vec();
            bad.remove(at);
            assert_eq!(
                verify(leaf, index, size, &bad, root),
                Err(ProofError::WrongProofLength {
                    expected,
                    actual: expected - 1
                }),
                "{ctx}: hash {at} removed"
            );
        }
        // Other indices in the same tree: a different path, never valid.
        let indices: Vec<u64> = if all_indices {
            (0..size + 2).collect()
        } else {
            [
                index ^ 1,
                index.wrapping_sub(1),
                index + 1,
                index / 2,
                size - 1 - index,
            ]
            .into_iter()
            .chain([size, size + 1, u64::MAX])
            .collect()
        };
        for other in indices.into_iter().filter(|&i| i != index) {
            let result = verify(leaf, other, size, proof, root);
            assert!(result.is_err(), "{ctx}: verified as index {other}");
            if other >= size {
                assert_eq!(
                    result,
                    Err(ProofError::IndexOutOfRange {
                        index: other,
                        tree_size: size
                    })
                );
            }
        }
        // Other tree sizes: fail unless the path has the same shape there.
        let sizes: Vec<u64> = if all_indices {
            (0..=2 * size + 1).collect()
        } else {
            vec![
                0,
                size - 1,
                size + 1,
                size * 2,
                size / 2,
                size + 2,
                u64::MAX,
            ]
        };
        let mut same_shape = 0;
        let shape = inclusion_shape(index, size);
        for other in sizes.into_iter().filter(|&s| s != size) {
            let result = verify(leaf, index, other, proof, root);
            if index < other && other <= 1 << 20 && inclusion_shape(index, other) == shape {
                assert_eq!(result, Ok(()), "{ctx}: same shape in size {other}");
                same_shape += 1;
            } else {
                assert!(result.is_err(), "{ctx}: verified with tree size {other}");
            }
        }
        same_shape
    }

    /// Every index below `n` for `n <= 16`; else the first, the last, the middle, the largest
    /// power of two and two random ones.
    fn sample_indices(rng: &mut StdRng, n: usize) -> Vec<usize> {
        if n <= 16 {
            return (0..n).collect();
        }
        let mut v = vec![0, n - 1, n / 2, 1 << (n - 1).ilog2()];
        v.extend([rng.gen_range(0..n), rng.gen_range(0..n)]);
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn merkle_inclusion_mutations_fail_sizes_up_to_64() {
        let all = test_leaves(8, 64);
        let mut rng = StdRng::seed_from_u64(8);
        let mut same_shape = 0;
        let mut levels = Levels::new(&[]);
        for n in 1..=all.len() {
            levels.push(all[n - 1]);
            for m in sample_indices(&mut rng, n) {
                let proof = levels.inclusion_proof(m);
                same_shape += check_inclusion_mutations(
                    &all[m],
                    m as u64,
                    n as u64,
                    &proof,
                    &levels.root(),
                    true,
                );
            }
        }
        // The exception is real (e.g. index 0 of size 5 and of size 6 share their shape).
        assert!(same_shape > 0);
        let leaves = &all[..5];
        let proof = inclusion_proof(leaves, 0).unwrap();
        assert_eq!(
            verify_inclusion(&all[0], 0, 6, &proof, &root(leaves)),
            Ok(())
        );
    }

    #[test]
    fn merkle_inclusion_mutations_fail_random_up_to_1000() {
        let all = test_leaves(9, 1000);
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..40 {
            let n = rng.gen_range(65..=all.len());
            let levels = Levels::new(&all[..n]);
            for _ in 0..3 {
                let m = rng.gen_range(0..n);
                let proof = levels.inclusion_proof(m);
                check_inclusion_mutations(
                    &all[m],
                    m as u64,
                    n as u64,
                    &proof,
                    &levels.root(),
                    false,
                );
            }
        }
    }

    /// Every single mutation of a valid consistency proof for `0 < m < n` fails, except other
    /// sizes for which the proof has the same shape. `roots[s]` is the root of size `s`.
    fn check_consistency_mutations(m: u64, n: u64, proof: &[Hash], roots: &[Hash], all: bool) {
        let ctx = format!("proof of {m} in {n}");
        let (r1, r2) = (&roots[m as usize], &roots[n as usize]);
        verify_consistency(m, n, r1, r2, proof).unwrap();
        let expected = proof.len();
        for i in 0..proof.len() {
            for byte in 0..32 {
                let mut bad = proof.to_vec();
                bad[i] = flip(&bad[i], byte);
                assert!(
                    verify_consistency(m, n, r1, r2, &bad).is_err(),
                    "{ctx}: flipped byte {byte} of hash {i}"
                );
            }
        }
        for byte in 0..32 {
            assert!(
                verify_consistency(m, n, &flip(r1, byte), r2, proof).is_err(),
                "{ctx}: flipped byte {byte} of the first root"
            );
            assert_eq!(
                verify_consistency(m, n, r1, &flip(r2, byte), proof),
                Err(ProofError::RootMismatch),
                "{ctx}: flipped byte {byte} of the second root"
            );
        }
        for at in 0..=proof.len() {
            for extra in [[0u8; 32], *r1, *r2] {
                let mut bad = proof.to_vec();
                bad.insert(at, extra);
                assert_eq!(
                    verify_consistency(m, n, r1, r2, &bad),
                    Err(ProofError::WrongProofLength {
                        expected,
                        actual: expected + 1
                    }),
                    "{ctx}: hash inserted at {at}"
                );
            }
        }
        for at in 0..proof.len() {
            let mut bad = proof.to_vec();
            bad.remove(at);
            assert_eq!(
                verify_consistency(m, n, r1, r2, &bad),
                Err(ProofError::WrongProofLength {
                    expected,
                    actual: expected - 1
                }),
                "{ctx}: hash {at} removed"
            );
        }
        // Swapped roots.
        assert!(verify_consistency(m, n, r2, r1, proof).is_err());
        // Other sizes, with the roots of the original sizes: fail unless same shape.
        let max = roots.len() as u64 - 1;
        let pairs: Vec<(u64, u64)> = if all {
            (0..=max)
                .flat_map(|m2| [(m2, n), (m, m2)])
                .chain([(n, m), (m, u64::MAX), (u64::MAX, n)])
                .collect()
        } else {
            [
                m - 1,
                m + 1,
                m * 2,
                m / 2,
                n - 1,
                n + 1,
                n * 2,
                n / 2,
                0,
                u64::MAX,
            ]
            .into_iter()
            .flat_map(|x| [(x, n), (m, x)])
            .collect()
        };
        for (m2, n2) in pairs.into_iter().filter(|&p| p != (m, n)) {
            let result = verify_consistency(m2, n2, r1, r2, proof);
            if 0 < m2 && m2 < n2 && n2 <= 1 << 20 && same_consistency_shape(m, n, m2, n2) {
                assert_eq!(result, Ok(()), "{ctx}: same shape as ({m2}, {n2})");
            } else {
                assert!(result.is_err(), "{ctx}: verified as ({m2}, {n2})");
            }
        }
    }

    #[test]
    fn merkle_consistency_mutations_fail_sizes_up_to_64() {
        let all = test_leaves(10, 64);
        let roots: Vec<Hash> = (0..=all.len()).map(|n| root(&all[..n])).collect();
        let mut rng = StdRng::seed_from_u64(10);
        let mut levels = Levels::new(&all[..1]);
        for n in 2..=all.len() {
            levels.push(all[n - 1]);
            // First sizes 1..n, sampled like indices 0..n-1.
            for m in sample_indices(&mut rng, n - 1).into_iter().map(|i| i + 1) {
                let proof = levels.consistency_proof(m);
                check_consistency_mutations(m as u64, n as u64, &proof, &roots, true);
            }
        }
    }

    #[test]
    fn merkle_consistency_mutations_fail_random_up_to_1000() {
        let all = test_leaves(11, 1000);
        let mut compact = CompactTree::new();
        let mut roots = vec![compact.root()];
        for leaf in &all {
            compact.append(*leaf);
            roots.push(compact.root());
        }
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..40 {
            let n = rng.gen_range(65..=all.len());
            let levels = Levels::new(&all[..n]);
            for _ in 0..3 {
                let m = rng.gen_range(1..n);
                let proof = levels.consistency_proof(m);
                check_consistency_mutations(m as u64, n as u64, &proof, &roots, false);
            }
        }
    }

    #[test]
    fn merkle_verify_consistency_edge_cases() {
        let leaves = test_leaves(12, 8);
        let r = |n: usize| root(&leaves[..n]);
        let junk = [7u8; 32];
        // first > second
        assert_eq!(
            verify_consistency(5, 4, &r(5), &r(4), &[]),
            Err(ProofError::SizesOutOfOrder {
                first_size: 5,
                second_size: 4
            })
        );
        // first == second: empty proof and equal roots.
        assert_eq!(verify_consistency(4, 4, &r(4), &r(4), &[]), Ok(()));
        assert_eq!(
            verify_consistency(4, 4, &r(4), &r(5), &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(4, 4, &r(4), &r(4), &[junk]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // first == 0: empty proof, first root must be the empty root.
        assert_eq!(verify_consistency(0, 8, &empty_root(), &r(8), &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
            Ok(())
        );
        assert_eq!(
            verify_consistency(0, 8, &junk, &r(8), &[]),
            Err(ProofError::FirstRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &junk, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 8, &empty_root(), &r(8), &[junk]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // 0 < first < second with an empty proof (RFC step 1).
        assert_eq!(
            verify_consistency(4, 8, &r(4), &r(8), &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        assert_eq!(
            verify_consistency(3, 8, &r(3), &r(8), &[]),
            Err(ProofError::WrongProofLength {
                expected: 4,
                actual: 0
            })
        );
        // A wrong first root with a non-power-of-two first size.
        let proof = consistency_proof(&leaves, 3).unwrap();
        assert_eq!(
            verify_consistency(3, 8, &junk, &r(8), &proof),
            Err(ProofError::FirstRootMismatch)
        );
        // Huge sizes do not overflow.
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &junk, &junk, &[junk; 3]).is_err());
        assert!(verify_consistency(1, u64::MAX, &junk, &junk, &[junk; 64]).is_err());
    }

    #[test]
    fn merkle_verify_inclusion_edge_cases() {
        let leaf = leaf_hash(b"x");
        // Size 1: the root is the leaf and the proof is empty.
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
        assert_eq!(
            verify_inclusion(&leaf, 0, 1, &[leaf], &leaf),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            verify_inclusion(&leaf, 0, 0, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange {
                index: 0,
                tree_size: 0
            })
        );
        assert_eq!(
            verify_inclusion(&leaf, 1, 1, &[], &leaf),
            Err(ProofError::IndexOutOfRange {
                index: 1,
                tree_size: 1
            })
        );
        // Huge sizes do not overflow.
        assert_eq!(
            verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &[], &leaf),
            Err(ProofError::WrongProofLength {
                expected: 63,
                actual: 0
            })
        );
        assert!(verify_inclusion(&leaf, 0, u64::MAX, &[leaf; 64], &leaf).is_err());
    }

    // ---------------------------------------------------------------------------------------
    // Property tests over random trees, indices and mutations.
    // ---------------------------------------------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn merkle_proptest_inclusion(
            seed: u64,
            n in 1usize..=1000,
            index_seed: usize,
            byte in 0usize..32,
            which: usize,
        ) {
            let leaves = test_leaves(seed, n);
            let m = index_seed % n;
            let tree_root = root(&leaves);
            let proof = inclusion_proof(&leaves, m as u64).unwrap();
            prop_assert_eq!(verify_inclusion(&leaves[m], m as u64, n as u64, &proof, &tree_root), Ok(()));
            // One random byte flipped: in a proof hash, in the leaf or in the root.
            let slot = which % (proof.len() + 2);
            let (mut leaf, mut r, mut bad) = (leaves[m], tree_root, proof.clone());
            match slot {
                0 => leaf = flip(&leaf, byte),
                1 => r = flip(&r, byte),
                i => bad[i - 2] = flip(&bad[i - 2], byte),
            }
            prop_assert_eq!(verify_inclusion(&leaf, m as u64, n as u64, &bad, &r), Err(ProofError::RootMismatch));
            // One hash more or one less.
            let mut longer = proof.clone();
            longer.insert(which % (proof.len() + 1), leaves[m]);
            prop_assert!(verify_inclusion(&leaves[m], m as u64, n as u64, &longer, &tree_root).is_err());
            if !proof.is_empty() {
                let mut shorter = proof.clone();
                shorter.remove(which % proof.len());
                prop_assert!(verify_inclusion(&leaves[m], m as u64, n as u64, &shorter, &tree_root).is_err());
            }
            // Another index.
            let other = (m + 1 + which % n.max(2)) % n;
            if other != m {
                prop_assert!(verify_inclusion(&leaves[m], other as u64, n as u64, &proof, &tree_root).is_err());
            }
        }

        #[test]
        fn merkle_proptest_consistency(
            seed: u64,
            n in 1usize..=1000,
            first_seed: usize,
            byte in 0usize..32,
            which: usize,
        ) {
            let leaves = test_leaves(seed, n);
            let m = first_seed % (n + 1);
            let (r1, r2) = (root(&leaves[..m]), root(&leaves));
            let proof = consistency_proof(&leaves, m as u64).unwrap();
            prop_assert_eq!(verify_consistency(m as u64, n as u64, &r1, &r2, &proof), Ok(()));
            let mut compact = CompactTree::new();
            leaves.iter().for_each(|l| compact.append(*l));
            prop_assert_eq!(compact.root(), r2);
            if 0 < m && m < n {
                let slot = which % (proof.len() + 2);
                let (mut a, mut b, mut bad) = (r1, r2, proof.clone());
                match slot {
                    0 => a = flip(&a, byte),
                    1 => b = flip(&b, byte),
                    i => bad[i - 2] = flip(&bad[i - 2], byte),
                }
                prop_assert!(verify_consistency(m as u64, n as u64, &a, &b, &bad).is_err());
                let mut longer = proof.clone();
                longer.insert(which % (proof.len() + 1), r1);
                prop_assert!(verify_consistency(m as u64, n as u64, &r1, &r2, &longer).is_err());
                let mut shorter = proof.clone();
                shorter.remove(which % proof.len());
                prop_assert!(verify_consistency(m as u64, n as u64, &r1, &r2, &shorter).is_err());
            }
        }
    }

    #[test]
    fn merkle_log_matches_the_reference_for_every_prefix() {
        let leaves = test_leaves(7, 100);
        let mut log = MerkleLog::new();
        assert_eq!(log.root_at(0), Ok(empty_root()));
        for (i, leaf) in leaves.iter().enumerate() {
            log.push(*leaf);
            assert_eq!(log.size(), i as u64 + 1);
        }
        for n in 0..=leaves.len() {
            let d = &leaves[..n];
            assert_eq!(log.root_at(n as u64), Ok(root(d)), "root {n}");
            for m in 0..n {
                assert_eq!(
                    log.inclusion_proof(m as u64, n as u64),
                    inclusion_proof(d, m as u64),
                    "inclusion {m} of {n}"
                );
            }
            for m in (0..=n).step_by(3) {
                assert_eq!(
                    log.consistency_proof(m as u64, n as u64),
                    consistency_proof(d, m as u64),
                    "consistency {m} -> {n}"
                );
            }
        }
        assert!(log.root_at(101).is_err());
        assert!(log.inclusion_proof(5, 5).is_err());
        assert!(log.consistency_proof(6, 5).is_err());
        assert_eq!(log.leaf(3), Some(leaves[3]));
        assert_eq!(log.leaf(100), None);
    }
}
