//! Signatures this node has already verified ([`trm_proto::signing::VerifyMemo`]), so that
//! the same signed bytes are not verified twice on the delivery path: a receipt is verified on
//! arrival and again by the audit check of the entry it becomes; a peer's checkpoint arrives
//! with every receipt until the peer signs the next one, and the last one seen is checked
//! again as the baseline.
//!
//! Only successes are remembered, under a SHA-256 of key, signature, tag and body, so a hit
//! answers exactly what `verify_strict` would answer again. Bounded: the oldest key is
//! forgotten first once [`CAPACITY`] are held (a forgotten signature is simply verified
//! again).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use trm_proto::signing::VerifyMemo;

/// Signatures remembered at most (32 bytes each, twice: about 300 KiB with the set's slack).
pub const CAPACITY: usize = 4096;

/// A bounded set of verified signatures, oldest forgotten first.
#[derive(Debug)]
pub struct Verified {
    capacity: usize,
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Verified {
    /// A memo of at most `capacity` signatures.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Remembered::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Verified {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl VerifyMemo for Verified {
    fn verified_before(&self, key: &[u8; 32]) -> bool {
        self.lock().set.contains(key)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut r = self.lock();
        if !r.set.insert(key) {
            return;
        }
        r.order.push_back(key);
        while r.order.len() > self.capacity {
            if let Some(old) = r.order.pop_front() {
                r.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u8) -> [u8; 32] {
        [i; 32]
    }

    #[test]
    fn remembers_up_to_capacity_and_forgets_the_oldest_first() {
        let m = Verified::new(3);
        for i in 0..3 {
            m.remember(k(i));
        }
        m.remember(k(1)); // again: no second place taken
        assert_eq!(m.len(), 3);
        m.remember(k(3));
        assert_eq!(m.len(), 3);
        assert!(!m.verified_before(&k(0)), "the oldest is forgotten");
        for i in 1..4 {
            assert!(m.verified_before(&k(i)));
        }
        assert!(!m.verified_before(&k(9)));
    }
}
