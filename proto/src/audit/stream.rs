//! Verification of a bundle one entry at a time, for bundles too large to hold in memory.
//!
//! [`Verifier::begin`] runs checks 1 to 3 on the [`BundleHead`] (everything but the entries).
//! Each entry is then checked on its own by [`Verifier::check`] (`&self`: any number of
//! threads may check entries at once; nothing in it depends on another entry) and the results
//! are taken in bundle order by [`Verifier::accept`], which does what depends on the order
//! (consecutive indices, counts) and names the first failure exactly as the check of the whole
//! bundle in memory would. [`Verifier::finish_with`] runs checks 4 (card breaks), 5 and 6.
//! [`super::verify_bundle_with`] is this, in one thread, on a bundle in memory.
//!
//! Memory: the head, the counts, and per entry 32 bytes only when witness bundles are to be
//! checked ([`Keep::leaves`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;

use super::{
    check_card_breaks, check_consecutive, check_coverage, check_entry, check_outside,
    checkpoints_seen, count_entry, decode_exact, fail, hashes, operator_pinned_card,
    verify_checkpoints, verify_own_card, verify_peer_cards, AuditFailure, CardBreak, Checked, Keys,
    Location, Log, Options, Summary, BUNDLE_VERSION,
};
use crate::auditpb::{AuditEntry, ExportedEntry, Proof};
use crate::merkle::{self, Hash};
use crate::pb;

/// A bundle without its entries (fields 1-4, 6 and 7 of `AuditBundle`).
#[derive(Clone, Debug, Default)]
pub struct BundleHead {
    /// `version`
    pub version: u32,
    /// `country`
    pub country: String,
    /// `card`
    pub card: Vec<u8>,
    /// `peer_cards`
    pub peer_cards: Vec<Vec<u8>>,
    /// `checkpoints`
    pub checkpoints: Vec<Vec<u8>>,
    /// `consistency`
    pub consistency: Vec<Proof>,
}

/// What the verifier keeps of every entry beyond the counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Keep {
    /// Leaf hashes (32 bytes per entry): needed to check witness bundles' checkpoints at sizes
    /// this bundle has no checkpoint of.
    pub leaves: bool,
    /// Checkpoints of other nodes held by the entries: needed when this bundle is a witness.
    pub seen: bool,
}

impl Keep {
    /// What verifying a bundle with `opts` needs.
    pub fn for_options(opts: &Options) -> Keep {
        Keep {
            leaves: !opts.witnesses.is_empty(),
            seen: false,
        }
    }
}

impl Checker {
    /// Checks the entry at `position` of the bundle on its own: it decodes, is included in
    /// the log of the last checkpoint, and what it carries verifies (signatures with
    /// `verify_strict`).
    pub fn check(&self, position: usize, exported: &ExportedEntry) -> EntryCheck {
        let leaf = merkle::leaf_hash(&exported.entry);
        let mut out = EntryCheck {
            position,
            entry: decode_exact(&exported.entry, "entry"),
            leaf,
            inclusion: Ok(()),
            signatures: Ok(0),
            messages: Summary::default(),
        };
        let Ok(entry) = &out.entry else {
            return out;
        };
        out.inclusion = self.included(entry.index, &leaf, &exported.inclusion);
        if out.inclusion.is_ok() {
            out.signatures = check_entry(&self.keys, entry, &mut out.messages);
        }
        out
    }

    /// Entry `index` with leaf hash `leaf` is in the log of the last checkpoint.
    fn included(&self, index: u64, leaf: &Hash, inclusion: &[Vec<u8>]) -> Result<(), String> {
        let Some(cp) = self.cps.last() else {
            return Err("no checkpoint covers this entry".into());
        };
        let proof = hashes(inclusion, "inclusion proof hash")?;
        merkle::verify_inclusion(leaf, index, cp.size, &proof, &cp.root).map_err(|e| {
            format!(
                "not included in the log of the last checkpoint (size {}): {e}",
                cp.size
            )
        })
    }
}

/// One entry checked on its own, to be taken in order by [`Verifier::accept`].
#[derive(Debug)]
pub struct EntryCheck {
    position: usize,
    entry: Result<AuditEntry, String>,
    leaf: Hash,
    inclusion: Result<(), String>,
    signatures: Result<u64, String>,
    messages: Summary,
}

/// The part of a [`Verifier`] that checks entries on their own: shared by the threads that
/// check them.
pub struct Checker {
    keys: Keys<'static>,
    cps: Vec<Checked>,
}

/// A bundle being verified entry by entry (see the module documentation).
pub struct Verifier {
    checker: Arc<Checker>,
    breaks: Vec<CardBreak>,
    sum: Summary,
    allow_partial: bool,
    keep: Keep,
    prev_index: Option<u64>,
    leaves: Vec<Hash>,
    seen: Vec<(String, pb::Signed)>,
    pinned: BTreeSet<(String, String)>,
}

impl Verifier {
    /// Checks the head: version, cards, checkpoints and their consistency (checks 1 to 3).
    pub fn begin(
        head: &BundleHead,
        allow_partial: bool,
        keep: Keep,
    ) -> Result<Verifier, AuditFailure> {
        if head.version != BUNDLE_VERSION {
            return fail(
                Location::Bundle,
                format!("unsupported bundle version {}", head.version),
            );
        }
        let mut sum = Summary {
            country: head.country.clone(),
            ..Default::default()
        };
        let own = verify_own_card(head, &mut sum)?;
        let (peers, breaks) = verify_peer_cards(head, &mut sum)?;
        let mut keys = Keys::new(head.country.clone(), own.card.key_history, peers);
        keys.decode_all();
        let cps = verify_checkpoints(head, &keys, &mut sum)?;
        if let Some(l) = cps.last() {
            sum.tree_size = l.size;
            sum.root = hex::encode(l.root);
            sum.signed_ms = Some(l.time_ms);
        }
        Ok(Verifier {
            checker: Arc::new(Checker { keys, cps }),
            breaks,
            sum,
            allow_partial,
            keep,
            prev_index: None,
            leaves: Vec::new(),
            seen: Vec::new(),
            pinned: BTreeSet::new(),
        })
    }

    /// What checks entries on their own, for the threads that do it.
    pub fn checker(&self) -> Arc<Checker> {
        self.checker.clone()
    }

    /// [`Checker::check`].
    pub fn check(&self, position: usize, exported: &ExportedEntry) -> EntryCheck {
        self.checker.check(position, exported)
    }

    /// Takes the next entry's check, in bundle order; fails at the first failure.
    pub fn accept(&mut self, c: EntryCheck) -> Result<(), AuditFailure> {
        let entry = c
            .entry
            .or_else(|e| fail(Location::EntryAt(c.position), e))?;
        let at = Location::Entry(entry.index);
        check_consecutive(self.prev_index, entry.index).or_else(|e| fail(at.clone(), e))?;
        self.prev_index = Some(entry.index);
        c.inclusion.or_else(|e| fail(at.clone(), e))?;
        let checked = c.signatures.or_else(|e| fail(at, e))?;
        self.sum.signatures += checked;
        for (k, n) in c.messages.messages {
            *self.sum.messages.entry(k).or_default() += n;
        }
        count_entry(&entry, &mut self.sum);
        if self.keep.leaves {
            self.leaves.push(c.leaf);
        }
        if self.keep.seen {
            self.seen.extend(checkpoints_seen(&entry));
        }
        if let Some(pinned) = operator_pinned_card(&entry) {
            self.pinned.insert(pinned);
        }
        Ok(())
    }

    /// After the last entry: checks 4 (card breaks) and 5 (coverage).
    pub(super) fn finish(mut self) -> Result<(Summary, Log), AuditFailure> {
        check_card_breaks(
            &self.breaks,
            &self.pinned,
            self.allow_partial,
            &mut self.sum,
        )?;
        let first = check_coverage(&mut self.sum, self.allow_partial)?;
        let checker = Arc::try_unwrap(self.checker).map_err(|_| AuditFailure {
            location: Location::Bundle,
            what: "entries are still being checked".into(),
        })?;
        let log = Log {
            country: checker.keys.country,
            history: checker.keys.own,
            checkpoints: checker.cps,
            leaves: self.leaves,
            first,
            seen: self.seen,
        };
        Ok((self.sum, log))
    }

    /// After the last entry: checks 4, 5 and 6; the bundle's summary.
    pub fn finish_with(self, opts: &Options) -> Result<Summary, AuditFailure> {
        let (sum, log) = self.finish()?;
        check_outside(sum, &log, opts)
    }
}

/// Decodes one `ExportedEntry` as it appears in a bundle, insisting on its canonical encoding
/// (what check 1 requires of every byte of a bundle). The error names what failed, as the
/// whole bundle's decoding would (`audit bundle ...`).
pub fn decode_exported(bytes: &[u8]) -> Result<ExportedEntry, String> {
    let e =
        ExportedEntry::decode(bytes).map_err(|e| format!("audit bundle does not decode ({e})"))?;
    if e.encode_to_vec() != bytes {
        return Err("audit bundle is not in canonical encoding (altered)".into());
    }
    Ok(e)
}
