//! Disk per stored message (issue 14, target 7): a stopped node's store is filled through
//! the library with N received referrals exactly as the growth run fills it, closed cleanly,
//! and measured: the blocks its folder allocates (what `du` counts) against the encoded size
//! of the transmission that arrived on the wire, and the logical bytes (key + value) of every
//! tree, per message.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use trm_tests::proc::NodeProc;

use crate::workload;

/// Target 7: disk per message under this many times its encoded size.
pub const TARGET: f64 = 2.5;

/// Logical bytes of one tree.
#[derive(Clone, Debug, Default)]
pub struct TreeBytes {
    /// Tree name.
    pub name: String,
    /// Records.
    pub records: u64,
    /// Sum of key and value lengths.
    pub bytes: u64,
}

/// The disk figures of one fill.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// Received messages stored.
    pub messages: usize,
    /// Encoded size of one transmission as it arrived (bytes).
    pub encoded: usize,
    /// Blocks allocated by the store folder after a clean close (bytes).
    pub allocated: u64,
    /// Apparent size of the store's files (bytes).
    pub apparent: u64,
    /// Logical bytes per tree, largest first.
    pub trees: Vec<TreeBytes>,
    /// Seconds to fill.
    pub fill_secs: f64,
}

impl Disk {
    /// Allocated bytes per message over the encoded size.
    pub fn ratio(&self) -> f64 {
        self.allocated as f64 / self.messages.max(1) as f64 / self.encoded.max(1) as f64
    }
}

/// Bytes allocated (512-byte blocks) and apparent bytes of the files under `dir`.
pub fn du(dir: &Path) -> (u64, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => (m.blocks() * 512, m.len()),
            Err(_) => (0, 0),
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Fills a new node's store with `n` received referrals, closes it cleanly and measures it.
pub fn disk(bin: &Path, n: usize) -> Result<Disk> {
    let tmp = tempfile::tempdir()?;
    let it = NodeProc::init(tmp.path(), "IT", bin)?;
    let al = NodeProc::init(tmp.path(), "AL", bin)?;
    let t = Instant::now();
    let step = (n / 10).max(1);
    let mut next = step;
    let filled = workload::fill_received(&al.dir, "IT", &it.keys()?, n, 1000, |done| {
        if done >= next {
            eprintln!("    filled {done} of {n}");
            next += step;
        }
    })?;
    filled.store.close_clean()?;
    let encoded = filled.encoded;
    drop(filled);
    let fill_secs = t.elapsed().as_secs_f64();
    let (allocated, apparent) = du(&al.store_dir());
    let mut trees: Vec<TreeBytes> = Vec::new();
    al.open_store()?.snapshot(|name, k, v| {
        match trees.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                t.records += 1;
                t.bytes += (k.len() + v.len()) as u64;
            }
            None => trees.push(TreeBytes {
                name: name.to_string(),
                records: 1,
                bytes: (k.len() + v.len()) as u64,
            }),
        }
        Ok(())
    })?;
    trees.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    Ok(Disk {
        messages: n,
        encoded,
        allocated,
        apparent,
        trees,
        fill_secs,
    })
}

/// The figures as Markdown.
pub fn render(s: &mut String, d: &Disk) {
    let per = |b: u64| b as f64 / d.messages.max(1) as f64;
    let _ = writeln!(
        s,
        "### Disk per stored message, {} received referrals\n",
        d.messages
    );
    let _ = writeln!(s, "| figure | bytes per message |\n|---|---:|");
    let _ = writeln!(s, "| encoded transmission (wire) | {} |", d.encoded);
    let _ = writeln!(
        s,
        "| store folder, allocated blocks after a clean close | {:.0} |",
        per(d.allocated)
    );
    let _ = writeln!(
        s,
        "| store folder, apparent file sizes | {:.0} |",
        per(d.apparent)
    );
    let logical: u64 = d.trees.iter().map(|t| t.bytes).sum();
    let _ = writeln!(
        s,
        "| logical (keys + values), all trees | {:.0} |",
        per(logical)
    );
    for t in d.trees.iter().filter(|t| per(t.bytes) >= 1.0) {
        let _ = writeln!(
            s,
            "| logical, tree `{}` ({} records) | {:.0} |",
            t.name,
            t.records,
            per(t.bytes)
        );
    }
    let met = if d.ratio() < TARGET { "met" } else { "NOT met" };
    let _ = writeln!(
        s,
        "\nDisk / encoded: **{:.2}×** (target < {TARGET}: {met}); logical / encoded {:.2}×; \
         filled in {:.0} s.\n",
        d.ratio(),
        per(logical) / d.encoded.max(1) as f64,
        d.fill_secs
    );
}
