//! Start to accepting with a large store (issue 14, target 2), against the empty store's in
//! the same run: the receiver's store is filled through the library with N received
//! messages, then started three ways, each timed from `spawn` to the first mutually
//! authenticated admin handshake:
//!
//! - the empty store, restarted after a clean shutdown (the baseline);
//! - the filled store's first start: no clean-shutdown record (the library fill, like a
//!   crash, leaves none), so the full check reads every entry;
//! - the filled store restarted after a clean shutdown: the fast path.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use std::path::Path;
use trm_tests::proc::NodeProc;

use crate::scenario::dir_size;
use crate::workload;

/// Start-to-accepting times, one run. Each start also has the time the node took to open
/// and check its store, from its own log (`store opened … ms=N`): spawn-to-accepting is
/// polled by admin handshakes with a 250 ms timeout each, so it moves in ~250 ms steps; the
/// open time is exact.
#[derive(Clone, Debug, Default)]
pub struct StartTimes {
    /// Messages stored before the timed starts.
    pub messages: usize,
    /// Empty store, clean restart.
    pub empty: Duration,
    /// N messages, no clean-shutdown record (full check).
    pub full: Duration,
    /// N messages, clean restart (fast path), median of 3.
    pub fast: Duration,
    /// Store open and check, ms: empty, full, fast (median of 3).
    pub open_ms: [u64; 3],
    /// Store size on disk with N messages.
    pub store_bytes: u64,
    /// Seconds to fill the store.
    pub fill_secs: f64,
}

/// Time from spawn to accepting, then a clean stop (SIGTERM, which writes the record).
/// The node logs at `info` here: one line says how (and how fast) it opened the store.
async fn timed_start(node: &mut NodeProc, limit: Duration) -> Result<(Duration, u64)> {
    let log = node.dir.join("node.log");
    let mark = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    node.spawn()?;
    let ready = node.wait_ready(limit).await?;
    node.terminate();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let open_ms = text
        .get(mark..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("store opened"))
        .find_map(|l| {
            l.split("ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Ok((ready, open_ms))
}

/// Measures [`StartTimes`] with `messages` stored.
pub async fn start_times(bin: &Path, messages: usize) -> Result<StartTimes> {
    let tmp = tempfile::tempdir()?;
    let it = NodeProc::init(tmp.path(), "IT", bin)?;
    let mut al = NodeProc::init(tmp.path(), "AL", bin)?;
    al.log_filter = "info".into();
    let limit = Duration::from_secs(60);
    // The first start of a new folder writes its card and tripwire state; time the restart.
    timed_start(&mut al, limit).await?;
    let (empty, empty_ms) = timed_start(&mut al, limit).await?;
    let t = Instant::now();
    let step = (messages / 10).max(1);
    let mut next = step;
    workload::prefill_received(&al.dir, "IT", &it.keys()?, messages, 1000, |done| {
        if done >= next {
            eprintln!("    filled {done} of {messages}");
            next += step;
        }
    })?;
    let fill_secs = t.elapsed().as_secs_f64();
    let store_bytes = dir_size(&al.store_dir());
    let full_limit = trm_node::node::store_open_limit(&al.store_dir()) + limit;
    let (full, full_ms) = timed_start(&mut al, full_limit).await?;
    let (mut fast, mut fast_ms) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (d, ms) = timed_start(&mut al, limit).await?;
        fast.push(d);
        fast_ms.push(ms);
    }
    fast.sort();
    fast_ms.sort();
    let log = std::fs::read_to_string(al.dir.join("node.log")).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("store opened")) {
        eprintln!("    {line}");
    }
    Ok(StartTimes {
        messages,
        empty,
        full,
        fast: fast[1],
        open_ms: [empty_ms, full_ms, fast_ms[1]],
        store_bytes,
        fill_secs,
    })
}

/// The figures as Markdown.
pub fn render(s: &mut String, st: &StartTimes) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = ms(st.fast) / ms(st.empty).max(1e-9);
    let _ = writeln!(
        s,
        "### Start to accepting, {} messages stored\n",
        st.messages
    );
    let _ = writeln!(
        s,
        "| start | to accepting, ms | ratio to empty | store open and check, ms |\n|---|---:|---:|---:|"
    );
    let [e, f, q] = st.open_ms;
    let _ = writeln!(
        s,
        "| empty store, clean restart | {:.0} | 1.00 | {e} |",
        ms(st.empty)
    );
    let _ = writeln!(
        s,
        "| {} messages, no clean-shutdown record (full check) | {:.0} | {:.2} | {f} |",
        st.messages,
        ms(st.full),
        ms(st.full) / ms(st.empty).max(1e-9)
    );
    let _ = writeln!(
        s,
        "| {} messages, clean restart (fast path, median of 3) | {:.0} | {ratio:.2} | {q} |",
        st.messages,
        ms(st.fast)
    );
    let met = if st.fast <= Duration::from_secs(2) {
        "met"
    } else {
        "NOT met"
    };
    let _ = writeln!(
        s,
        "\nStore {:.2} GiB on disk, filled in {:.0} s. Clean restart ≤ 2 s: {met}.\n",
        st.store_bytes as f64 / f64::from(1u32 << 30),
        st.fill_secs
    );
}
