//! Instructions per referral on the send+receive path, counted by callgrind (`valgrind
//! --tool=callgrind`): a figure that repeats exactly whatever else the machine does, to put
//! beside the timings.
//!
//! One process (`trm-bench instructions-workload --referrals N`) runs two nodes in process
//! (Italy and Albania, pinned to each other), pre-fills Italy's outbox with N referrals through
//! the library while it is stopped, starts it, and waits until every referral is delivered
//! (Albania's signed receipt stored). `trm-bench instructions` runs that process under
//! callgrind twice, with N and 3N referrals, and reports `(Ir(3N) − Ir(N)) / 2N`: the
//! instructions each further referral costs both nodes together (signing, sealing, QUIC, TLS
//! records, the receiver's strict verification, storage, the receipt and its verification),
//! with start-up, key loading and handshakes cancelled out. The baseline of the same run:
//! Ed25519 sign + `verify_strict` pairs over 4 KiB messages (`instructions-baseline`),
//! counted the same way.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use trm_tests::{pin_all, TestNode};

use crate::workload;

/// The size of the messages of the Ed25519 baseline: about a referral's signed transmission.
pub const PAIR_BYTES: usize = 4096;

/// What callgrind counted: two runs of a workload, `n` and `3n` units.
#[derive(Clone, Debug, Default)]
pub struct Counted {
    /// Units (referrals, or sign + verify pairs) of the smaller and the larger run.
    pub units: (usize, usize),
    /// Instructions (Ir) of each run, whole process.
    pub totals: (u64, u64),
}

impl Counted {
    /// Instructions per further unit.
    pub fn per_unit(&self) -> f64 {
        let (a, b) = self.totals;
        let (n, m) = self.units;
        (b as f64 - a as f64) / (m - n) as f64
    }
}

/// Referrals and the baseline of the same run: Ed25519 sign + `verify_strict` pairs over
/// [`PAIR_BYTES`]-byte messages.
#[derive(Clone, Debug, Default)]
pub struct Instructions {
    /// Referrals, outbox to stored receipt, both nodes.
    pub referrals: Counted,
    /// Sign + verify_strict pairs.
    pub pairs: Counted,
}

impl Instructions {
    /// Instructions per referral over instructions per Ed25519 pair (a referral signs and
    /// strictly verifies twice: envelope and receipt; 2.0 would be the cryptography alone).
    pub fn ratio(&self) -> f64 {
        self.referrals.per_unit() / self.pairs.per_unit()
    }
}

/// The baseline counted: `n` Ed25519 sign + `verify_strict` pairs over [`PAIR_BYTES`].
pub fn pairs(n: usize) {
    crate::baseline::ed25519_pairs(n, PAIR_BYTES);
}

/// The workload counted: two nodes in this process, `n` referrals from the outbox to the
/// stored receipt; returns when every one is delivered (30 minutes at most: callgrind runs
/// some fifty times slower).
pub async fn workload(n: usize) -> Result<()> {
    ensure!(n >= 1, "the workload needs at least one referral");
    let tmp = tempfile::tempdir()?;
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    it.stop().await;
    let mut pending: Vec<String> = workload::prefill_outbox(&it.dir, "IT", "AL", n, 256)?
        .iter()
        .map(hex::encode)
        .collect();
    it.start().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30 * 60);
    while !pending.is_empty() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} referrals still pending after 30 minutes",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The last one enqueued first: reading every pending record at every poll would be
        // counted as the referrals' own cost (about 3 % of it).
        if pending.last().is_some_and(|id| !it.delivered(id)) {
            continue;
        }
        pending.retain(|id| !it.delivered(id));
    }
    it.finish().await;
    al.finish().await;
    Ok(())
}

/// Runs `exe instructions-workload --referrals N` under callgrind for `n` and `3n`, and the
/// baseline (`instructions-baseline`) for `10n` and `30n` pairs.
///
/// Both counts leave out what sled's thread pool spends spinning while it starts
/// ([`spinning`]).
pub fn measure(exe: &Path, n: usize) -> Result<Instructions> {
    let twice = |what: &str, n: usize| -> Result<Counted> {
        Ok(Counted {
            units: (n, 3 * n),
            totals: (count(exe, what, n)?, count(exe, what, 3 * n)?),
        })
    };
    Ok(Instructions {
        referrals: twice("instructions-workload", n)?,
        pairs: twice("instructions-baseline", 10 * n)?,
    })
}

/// Whether `valgrind` can be run here.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The instructions (Ir) of one run of `exe WHAT --referrals N` under callgrind.
fn count(exe: &Path, what: &str, n: usize) -> Result<u64> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("callgrind.out");
    eprintln!("instructions: {what} {n} under callgrind");
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--quiet")
        .arg(exe)
        .args([what, "--referrals", &n.to_string()])
        .status()
        .context("valgrind")?;
    if !status.success() {
        bail!("the workload under callgrind failed: {status}");
    }
    let total = totals(&std::fs::read_to_string(&out).context("callgrind's output")?)?;
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(&out)
        .output()
        .context("callgrind_annotate")?;
    if !annotated.status.success() {
        bail!("callgrind_annotate failed: {}", annotated.status);
    }
    let spin = spinning(&String::from_utf8_lossy(&annotated.stdout));
    Ok(total.saturating_sub(spin))
}

/// The instructions spent inside sled's lazy initialisation (`Lazy::deref`, inclusive), read
/// from `callgrind_annotate --inclusive=yes`: its thread pool's threads busy-wait there while
/// the pool starts, which under valgrind's one-thread-at-a-time scheduling adds anything from
/// nothing to billions of instructions to a run (the run-to-run noise of this figure). A
/// dereference that does not wait costs a few instructions, so what is left is the work.
fn spinning(annotated: &str) -> u64 {
    annotated
        .lines()
        .filter(|l| l.contains("sled::lazy::Lazy<") && l.contains("::deref ["))
        .filter_map(|l| l.split_whitespace().next()?.replace(',', "").parse().ok())
        .max()
        .unwrap_or(0)
}

/// The `totals:` (or `summary:`) line of a callgrind output file: the run's instructions.
fn totals(text: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no totals line in callgrind's output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_is_read_and_the_difference_divided() {
        let text = "version: 1\ncreator: callgrind\nevents: Ir\nfn=main\n1 5\ntotals: 1200\n";
        assert_eq!(totals(text).unwrap(), 1200);
        assert_eq!(totals("summary: 77\n").unwrap(), 77);
        assert!(totals("events: Ir\n").is_err());
        let annotated = "\
 2,232,690,450 (51.55%)  /r/sled-0.34.7/src/lazy.rs:<sled::lazy::Lazy<T,F> as core::ops::deref::Deref>::deref [/t/trm-bench]
 1,486,265,199 (34.31%)  /r/atomic.rs:<sled::lazy::Lazy<T,F> as core::ops::deref::Deref>::deref
   408,338,198 (23.11%)  /w/bench/src/workload.rs:trm_bench::workload::prefill_outbox [/t/trm-bench]
";
        assert_eq!(spinning(annotated), 2_232_690_450);
        assert_eq!(spinning("   1 (0.0%)  x:main [/t/trm-bench]\n"), 0);
        let referrals = Counted {
            units: (10, 30),
            totals: (1_000, 5_000),
        };
        assert_eq!(referrals.per_unit(), 200.0);
        let pairs = Counted {
            units: (100, 300),
            totals: (1_000, 5_000),
        };
        assert_eq!(Instructions { referrals, pairs }.ratio(), 10.0);
    }
}
