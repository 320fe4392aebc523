//! Runs the selected measurements (interleaving repeated runs so that machine noise hits
//! product and baselines alike), takes medians, and prints figures, ratios and targets.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::scenario::{self, median, Latency, Scale, Throughput};
use crate::{baseline, workload};

/// What to run and how big.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `trm-node` binary.
    pub node_bin: PathBuf,
    /// Repetitions of baselines and throughput (medians are reported).
    pub runs: usize,
    /// Referrals per throughput run.
    pub throughput_n: usize,
    /// Round trips per quinn baseline run.
    pub quinn_n: usize,
    /// Sign + verify pairs per Ed25519 baseline run.
    pub ed25519_n: usize,
    /// Inserts per sled baseline run.
    pub sled_n: usize,
    /// Referrals timed in the latency run (at `latency_rate` per second).
    pub latency_n: usize,
    /// Steady rate of the latency run, per second.
    pub latency_rate: u32,
    /// Nodes in the scale run.
    pub scale_nodes: usize,
    /// Messages already stored in the growth run.
    pub growth_stored: usize,
    /// Entries of the audit bundle verified and of the log exported in the audit run.
    pub audit_entries: u64,
    /// Referrals of the smaller callgrind run (the larger has three times as many); 0: the
    /// instruction count is not run (quick runs: callgrind is some fifty times slower).
    pub instructions_n: usize,
    /// Messages stored in the start run.
    pub start_messages: usize,
    /// Received messages stored in the disk run.
    pub disk_messages: usize,
}

impl Options {
    /// The full sizes of docs/PERFORMANCE.md.
    pub fn full(node_bin: PathBuf) -> Self {
        Self {
            node_bin,
            runs: 3,
            throughput_n: 20_000,
            quinn_n: 20_000,
            ed25519_n: 20_000,
            sled_n: 50_000,
            latency_n: 1_000,
            latency_rate: 100,
            scale_nodes: 50,
            growth_stored: 1_000_000,
            audit_entries: 200_000,
            instructions_n: 100,
            start_messages: 1_000_000,
            disk_messages: 100_000,
        }
    }

    /// A smoke run of a few seconds (CI).
    pub fn quick(node_bin: PathBuf) -> Self {
        Self {
            node_bin,
            runs: 1,
            throughput_n: 300,
            quinn_n: 500,
            ed25519_n: 500,
            sled_n: 1_000,
            latency_n: 30,
            latency_rate: 100,
            scale_nodes: 4,
            growth_stored: 2_000,
            audit_entries: 3_000,
            instructions_n: 0,
            start_messages: 2_000,
            disk_messages: 2_000,
        }
    }
}

/// Which parts to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection {
    /// Raw baselines.
    pub baselines: bool,
    /// Two-process throughput.
    pub throughput: bool,
    /// Latency at a steady rate.
    pub latency: bool,
    /// N-node federation.
    pub scale: bool,
    /// Latency with a large store.
    pub growth: bool,
    /// Throughput while the receiver is flooded with unauthenticated handshakes.
    pub exhaustion: bool,
    /// Audit export and offline verification of N entries.
    pub audit: bool,
    /// Instructions per referral, counted by callgrind.
    pub instructions: bool,
    /// Start to accepting with a large store.
    pub start: bool,
    /// Disk per stored message.
    pub disk: bool,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self {
            baselines: true,
            throughput: true,
            latency: true,
            scale: true,
            growth: true,
            exhaustion: true,
            audit: true,
            instructions: true,
            start: true,
            disk: true,
        }
    }
}

/// Medians of the baselines.
#[derive(Clone, Debug, Default)]
pub struct Baselines {
    /// quinn round trips per second, one stream at a time.
    pub quinn_1: f64,
    /// quinn round trips per second, 64 concurrent streams.
    pub quinn_64: f64,
    /// Ed25519 sign + verify_strict pairs per second.
    pub ed25519: f64,
    /// sled inserts per second, one flush per 64 inserts.
    pub sled_64: f64,
    /// sled inserts per second, one flush per insert.
    pub sled_1: f64,
}

/// Everything measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Options used.
    pub runs: usize,
    /// Baseline medians (None if not run).
    pub baselines: Option<Baselines>,
    /// Every throughput run.
    pub throughput: Vec<Throughput>,
    /// Every throughput run under a handshake flood (interleaved with the plain runs).
    pub under_attack: Vec<Throughput>,
    /// Latency with an empty store.
    pub latency: Option<Latency>,
    /// Scale run.
    pub scale: Option<Scale>,
    /// Latency with a large store.
    pub growth: Option<Latency>,
    /// Audit export and verification.
    pub audit: Option<crate::audit::AuditFigures>,
    /// Instructions per referral (callgrind), or why they were not counted.
    pub instructions: Option<Result<crate::instructions::Instructions, String>>,
    /// Start to accepting with a large store.
    pub start: Option<crate::start::StartTimes>,
    /// Disk per stored message.
    pub disk: Option<crate::disk::Disk>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50, p99 and max of `st` as table cells.
fn row(st: &scenario::Stats) -> String {
    format!("{:.2} | {:.2} | {:.2}", ms(st.p50), ms(st.p99), ms(st.max))
}

/// Runs `sel` with `opts`, printing progress to stderr.
pub async fn run(opts: &Options, sel: Selection) -> Result<Report> {
    let mut report = Report {
        runs: opts.runs,
        ..Default::default()
    };
    let body_len = {
        let tmp = tempfile::tempdir()?;
        let n = trm_tests::proc::NodeProc::init(tmp.path(), "IT", &opts.node_bin)?;
        let f = workload::case_fields("IT-BENCH-0001", "AL")?;
        let (_, t, _) = workload::referral(&n.keys()?, "IT", "AL", "IT-BENCH-0001", &f, 0)?;
        t.envelope.map(|e| e.body.len()).unwrap_or(1024)
    };
    let (mut q1, mut q64, mut ed, mut s64, mut s1) = (vec![], vec![], vec![], vec![], vec![]);
    for r in 0..opts.runs {
        if sel.baselines {
            eprintln!("run {}/{}: baselines", r + 1, opts.runs);
            let n = opts.quinn_n;
            q1.push(
                tokio::task::spawn_blocking(move || baseline::quinn_round_trips(n / 4, 1, 1024))
                    .await??,
            );
            q64.push(
                tokio::task::spawn_blocking(move || baseline::quinn_round_trips(n, 64, 1024))
                    .await??,
            );
            ed.push(baseline::ed25519_pairs(opts.ed25519_n, body_len));
            let tmp = tempfile::tempdir()?;
            s64.push(baseline::sled_inserts(
                &tmp.path().join("g64"),
                opts.sled_n,
                64,
                3 * 1024,
            )?);
            s1.push(baseline::sled_inserts(
                &tmp.path().join("g1"),
                (opts.sled_n / 20).max(50),
                1,
                3 * 1024,
            )?);
        }
        if sel.throughput {
            eprintln!(
                "run {}/{}: throughput, {} referrals",
                r + 1,
                opts.runs,
                opts.throughput_n
            );
            report
                .throughput
                .push(scenario::throughput(&opts.node_bin, opts.throughput_n).await?);
        }
        if sel.exhaustion {
            eprintln!(
                "run {}/{}: throughput under a handshake flood",
                r + 1,
                opts.runs
            );
            report
                .under_attack
                .push(scenario::throughput_with(&opts.node_bin, opts.throughput_n, true).await?);
        }
    }
    if sel.baselines {
        report.baselines = Some(Baselines {
            quinn_1: median(&q1),
            quinn_64: median(&q64),
            ed25519: median(&ed),
            sled_64: median(&s64),
            sled_1: median(&s1),
        });
    }
    if sel.latency || sel.growth {
        eprintln!(
            "latency: {} referrals at {}/s, empty store",
            opts.latency_n, opts.latency_rate
        );
        report.latency = Some(
            scenario::latency(
                &opts.node_bin,
                opts.latency_rate,
                opts.latency_n,
                0,
                sel.growth,
            )
            .await?,
        );
    }
    if sel.growth {
        eprintln!(
            "growth: {} referrals at {}/s, {} messages stored",
            opts.latency_n, opts.latency_rate, opts.growth_stored
        );
        report.growth = Some(
            scenario::latency(
                &opts.node_bin,
                opts.latency_rate,
                opts.latency_n,
                opts.growth_stored,
                true,
            )
            .await?,
        );
    }
    if sel.start {
        eprintln!("start: {} messages stored", opts.start_messages);
        report.start = Some(crate::start::start_times(&opts.node_bin, opts.start_messages).await?);
    }
    if sel.disk {
        eprintln!("disk: {} received messages stored", opts.disk_messages);
        let (bin, n) = (opts.node_bin.clone(), opts.disk_messages);
        report.disk = Some(tokio::task::spawn_blocking(move || crate::disk::disk(&bin, n)).await??);
    }
    if sel.scale {
        eprintln!("scale: {} nodes", opts.scale_nodes);
        report.scale = Some(scenario::scale(&opts.node_bin, opts.scale_nodes).await?);
    }
    if sel.audit {
        report.audit = Some(audit_run(opts).await?);
    }
    if sel.instructions {
        report.instructions = Some(instructions_run(opts.instructions_n).await?);
    }
    Ok(report)
}

/// The flood rows of the throughput table: what the attacker tried, how the receiver refused
/// it, and the rate kept (`rate` is the median rate without the flood).
fn render_flood(s: &mut String, rate: f64, runs: &[Throughput]) {
    if runs.is_empty() {
        return;
    }
    let a = median(&runs.iter().map(|t| t.rate).collect::<Vec<_>>());
    let hs = median(
        &runs
            .iter()
            .map(|t| t.handshakes as f64 / t.secs.max(1e-9))
            .collect::<Vec<_>>(),
    );
    let per_s = |f: fn(&Throughput) -> u64| {
        median(
            &runs
                .iter()
                .map(|t| f(t) as f64 / t.secs.max(1e-9))
                .collect::<Vec<_>>(),
        )
    };
    let _ = writeln!(
        s,
        "| unauthenticated handshakes attempted/s by the attacker (from {}) | {hs:.0} |",
        crate::scenario::ATTACKER
    );
    let _ = writeln!(
        s,
        "| of which refused/s at Incoming, no TLS (penalised address) / by the TLS handshake | {:.0} / {:.0} |",
        per_s(|t| t.refused_at_incoming),
        per_s(|t| t.refused_after_tls)
    );
    let _ = writeln!(s, "| referrals/s under the flood | {a:.0} |");
    let _ = writeln!(
        s,
        "| ratio under flood to without (target ≥ 0.8) | {:.2} ({}) |",
        a / rate.max(1e-9),
        target(a / rate.max(1e-9) >= 0.8)
    );
}

/// The callgrind count of `n` and `3n` referrals (this executable's hidden workload), or why
/// it was not run (a quick run, no valgrind here).
async fn instructions_run(n: usize) -> Result<Result<crate::instructions::Instructions, String>> {
    if n == 0 {
        return Ok(Err("not counted in a quick run".into()));
    }
    if !crate::instructions::available() {
        return Ok(Err(
            "not counted: valgrind is not installed (apt-get install valgrind)".into(),
        ));
    }
    let exe = std::env::current_exe()?;
    let i = tokio::task::spawn_blocking(move || crate::instructions::measure(&exe, n)).await??;
    Ok(Ok(i))
}

/// The scale run's memory per pinned peer: each idle node's VmRSS with every other node
/// pinned (and the exchange stored) over its VmRSS when started alone, per peer (medians).
fn memory_per_peer(sc: &Scale) -> String {
    let mib = |v: &[u64]| median(&v.iter().map(|k| *k as f64 / 1024.0).collect::<Vec<_>>());
    let (alone, pinned) = (mib(&sc.rss_unpinned_kib), mib(&sc.rss_kib));
    let peers = sc.nodes.saturating_sub(1).max(1) as f64;
    format!(
        "| VmRSS per idle node alone (no peer) / with {} peers, median MiB; per pinned peer | {alone:.1} / {pinned:.1}; **{:.3} MiB** |",
        sc.nodes.saturating_sub(1),
        (pinned - alone) / peers
    )
}

/// The instructions section of the report.
fn render_instructions(s: &mut String, i: &Result<crate::instructions::Instructions, String>) {
    let _ = writeln!(
        s,
        "### Instructions (callgrind: exact, whatever the machine's load)\n"
    );
    let i = match i {
        Ok(i) => i,
        Err(why) => {
            let _ = writeln!(s, "{why}\n");
            return;
        }
    };
    let _ = writeln!(
        s,
        "| workload | units | instructions (Ir) |\n|---|---:|---:|"
    );
    for (name, c) in [
        (
            "referrals, outbox to stored receipt, both nodes",
            &i.referrals,
        ),
        ("Ed25519 sign + verify_strict pairs, 4 KiB", &i.pairs),
    ] {
        for (units, total) in [(c.units.0, c.totals.0), (c.units.1, c.totals.1)] {
            let _ = writeln!(s, "| {name} | {units} | {total} |");
        }
    }
    let _ = writeln!(s, "\n| figure | value |\n|---|---:|");
    let _ = writeln!(
        s,
        "| instructions per referral | **{:.0}** |",
        i.referrals.per_unit()
    );
    let _ = writeln!(
        s,
        "| instructions per Ed25519 pair | {:.0} |",
        i.pairs.per_unit()
    );
    let _ = writeln!(
        s,
        "| referral / pair (2.0: the signatures alone) | **{:.2}** |\n",
        i.ratio()
    );
}

/// The audit run: offline verification of a bundle of `audit_entries`, then the streamed
/// export of a node holding as many.
async fn audit_run(opts: &Options) -> Result<crate::audit::AuditFigures> {
    let n = opts.audit_entries;
    eprintln!("audit: building and verifying a bundle of {n} entries");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().to_path_buf();
    let runs = opts.runs;
    let mut figures =
        tokio::task::spawn_blocking(move || crate::audit::verification(n, &dir, runs)).await??;
    eprintln!("audit: exporting a log of {n} entries");
    let tmp = tempfile::tempdir()?;
    let (exported, bytes, wall) = crate::audit::export(&opts.node_bin, n, tmp.path()).await?;
    figures.exported = exported;
    figures.export_bytes = bytes;
    figures.export = wall;
    Ok(figures)
}

/// The audit section of the report.
fn render_audit(s: &mut String, a: &crate::audit::AuditFigures) {
    let rate = a.entries as f64 / a.verify.as_secs_f64().max(1e-9);
    let base = a.entries as f64 / a.baseline.as_secs_f64().max(1e-9);
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    let _ = writeln!(
        s,
        "### Audit: {} entries ({} signatures, {:.0} MiB bundle; medians of {} runs)\n",
        a.entries,
        a.signatures,
        mib(a.bundle_bytes),
        a.runs
    );
    let _ = writeln!(s, "| figure | value |\n|---|---:|");
    let _ = writeln!(
        s,
        "| `audit verify` (streaming, {} threads), entries/s | **{rate:.0}** ({:.1} µs per entry) |",
        a.threads,
        1e6 / rate.max(1e-9)
    );
    let _ = writeln!(
        s,
        "| whole bundle in memory, one thread (the path before), entries/s | {base:.0} ({:.1} µs per entry) |",
        1e6 / base.max(1e-9)
    );
    let _ = writeln!(
        s,
        "| ratio (target ≥ 3 against 117 µs per entry: {}) | {:.2} against this run's one-thread path; {:.2} against 117 µs |",
        target(rate * 117e-6 >= 3.0),
        rate / base.max(1e-9),
        rate * 117e-6
    );
    let _ = writeln!(
        s,
        "| raw Ed25519 verify_strict, one thread, per second | {:.0} (signatures/s reached: {:.0}) |",
        a.ed25519_verify,
        a.signatures as f64 / a.verify.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        s,
        "| verifier peak RSS (VmHWM) | {:.1} MiB |",
        a.verify_peak_kib as f64 / 1024.0
    );
    let secs = a.export.as_secs_f64().max(1e-9);
    let _ = writeln!(
        s,
        "| `audit export --out`, {} entries, {:.0} MiB | {:.0} entries/s, {:.1} MiB/s |\n",
        a.exported,
        mib(a.export_bytes),
        a.exported as f64 / secs,
        mib(a.export_bytes) / secs
    );
}

fn target(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

impl Report {
    /// Median throughput, referrals per second.
    pub fn throughput_rate(&self) -> f64 {
        median(&self.throughput.iter().map(|t| t.rate).collect::<Vec<_>>())
    }

    /// The report as Markdown (what docs/PERFORMANCE.md quotes).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let runs = self.runs;
        if let Some(b) = &self.baselines {
            let _ = writeln!(s, "### Baselines (median of {runs} runs)\n");
            let _ = writeln!(s, "| baseline | per second |\n|---|---:|");
            let _ = writeln!(
                s,
                "| quinn 1 KiB round trips, mTLS, 1 stream at a time | {:.0} |",
                b.quinn_1
            );
            let _ = writeln!(
                s,
                "| quinn 1 KiB round trips, mTLS, 64 concurrent streams | {:.0} |",
                b.quinn_64
            );
            let _ = writeln!(
                s,
                "| Ed25519 sign + verify_strict pairs (envelope-sized body), 1 thread | {:.0} |",
                b.ed25519
            );
            let _ = writeln!(
                s,
                "| sled inserts (3 KiB), one flush per 64 | {:.0} |",
                b.sled_64
            );
            let _ = writeln!(
                s,
                "| sled inserts (3 KiB), one flush per insert | {:.0} |\n",
                b.sled_1
            );
        }
        if !self.throughput.is_empty() {
            let rate = self.throughput_rate();
            let t = &self.throughput[0];
            let rates: Vec<String> = self
                .throughput
                .iter()
                .map(|t| format!("{:.0}", t.rate))
                .collect();
            let _ = writeln!(s, "### Throughput (two processes, median of {runs} runs)\n");
            let _ = writeln!(
                s,
                "{} referrals of {} bytes of released fields ({} bytes encoded) per run; runs: {} /s.\n",
                t.n,
                t.field_bytes,
                t.transmission_bytes,
                rates.join(", ")
            );
            let _ = writeln!(s, "| figure | value |\n|---|---:|");
            let _ = writeln!(
                s,
                "| referrals/s, outbox to stored receipt | **{rate:.0}** |"
            );
            let enq = median(
                &self
                    .throughput
                    .iter()
                    .map(|t| t.enqueue_rate)
                    .collect::<Vec<_>>(),
            );
            let _ = writeln!(
                s,
                "| referrals/s signed and durably enqueued by the library | {enq:.0} |"
            );
            if let Some(b) = &self.baselines {
                let _ = writeln!(
                    s,
                    "| ratio to quinn round trips, 64 streams | {:.3} |",
                    rate / b.quinn_64
                );
                let _ = writeln!(
                    s,
                    "| ratio to quinn round trips, 1 stream | {:.3} |",
                    rate / b.quinn_1
                );
                let _ = writeln!(
                    s,
                    "| ratio to Ed25519 sign + verify pairs | **{:.3}** (target ≥ 0.5: {}) |",
                    rate / b.ed25519,
                    target(rate / b.ed25519 >= 0.5)
                );
                let _ = writeln!(
                    s,
                    "| ratio to sled inserts, flush per 64 | {:.3} |",
                    rate / b.sled_64
                );
            }
            render_flood(&mut s, rate, &self.under_attack);
            let _ = writeln!(s);
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                s,
                "### Latency, enqueue to stored receipt, steady rate ({} referrals)\n",
                l.stats.n
            );
            let _ = writeln!(
                s,
                "| store | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|"
            );
            let _ = writeln!(
                s,
                "| empty | {:.2} | {:.2} | {:.2} |",
                ms(l.stats.p50),
                ms(l.stats.p99),
                ms(l.stats.max)
            );
            if let Some(w) = &l.warm {
                let _ = writeln!(s, "| empty, warm (second run) | {} |", row(w));
            }
            if let Some(g) = &self.growth {
                let n = g.stored_before;
                let _ = writeln!(s, "| {n} messages stored, cold | {} |", row(&g.stats));
                if let Some(w) = &g.warm {
                    let _ = writeln!(s, "| {n} messages stored, warm | {} |", row(w));
                }
            }
            let _ = writeln!(
                s,
                "\np99 target < 10 ms: {}.",
                target(l.stats.p99 < Duration::from_millis(10))
            );
            if let Some(g) = &self.growth {
                let r50 = ms(g.stats.p50) / ms(l.stats.p50).max(1e-9);
                let r99 = ms(g.stats.p99) / ms(l.stats.p99).max(1e-9);
                if let (Some(gw), Some(lw)) = (&g.warm, &l.warm) {
                    let w50 = ms(gw.p50) / ms(lw.p50).max(1e-9);
                    let w99 = ms(gw.p99) / ms(lw.p99).max(1e-9);
                    let _ = writeln!(
                        s,
                        "Growth, warm (second runs): p50 ratio {w50:.2}, p99 ratio {w99:.2} \
                         (target ≤ 1.5: {}).",
                        target(w50 <= 1.5 && w99 <= 1.5)
                    );
                }
                let _ = writeln!(
                    s,
                    "Growth, cold (just started): p50 ratio {r50:.2}, p99 ratio {r99:.2} (target ≤ 1.5: {}); \
                     store {:.1} GiB on disk, filled in {:.0} s; receiver ready in {:.0} ms \
                     with it (empty store: {:.0} ms).",
                    target(r50 <= 1.5 && r99 <= 1.5),
                    g.store_bytes as f64 / f64::from(1u32 << 30),
                    g.fill_secs,
                    ms(g.receiver_ready),
                    ms(l.receiver_ready)
                );
            }
            let _ = writeln!(s);
        }
        if let Some(a) = &self.audit {
            render_audit(&mut s, a);
        }
        if let Some(i) = &self.instructions {
            render_instructions(&mut s, i);
        }
        if let Some(sc) = &self.scale {
            let rss: Vec<f64> = sc.rss_kib.iter().map(|k| *k as f64 / 1024.0).collect();
            let max_rss = rss.iter().copied().fold(0.0, f64::max);
            let rf: Vec<f64> = sc.ready_first.iter().map(|d| ms(*d)).collect();
            let rr: Vec<f64> = sc.ready_restart.iter().map(|d| ms(*d)).collect();
            let max_r = rf.iter().chain(rr.iter()).copied().fold(0.0, f64::max);
            let _ = writeln!(s, "### Scale: {} nodes on one machine\n", sc.nodes);
            let _ = writeln!(s, "| figure | value |\n|---|---:|");
            let _ = writeln!(
                s,
                "| referrals sent / receipts stored / messages stored | {} / {} / {} |",
                sc.messages, sc.delivered, sc.received
            );
            let _ = writeln!(
                s,
                "| all-to-all exchange, seconds | {:.1} |",
                sc.exchange_secs
            );
            let _ = writeln!(
                s,
                "| VmRSS per idle node, median / max MiB | {:.1} / {:.1} (target ≤ 64: {}) |",
                median(&rss),
                max_rss,
                target(max_rss <= 64.0)
            );
            let _ = writeln!(s, "{}", memory_per_peer(sc));
            let _ = writeln!(
                s,
                "| start to accepting, first start, median / max ms | {:.0} / {:.0} |",
                median(&rf),
                rf.iter().copied().fold(0.0, f64::max)
            );
            let _ = writeln!(
                s,
                "| start to accepting, restart with {} peers, median / max ms | {:.0} / {:.0} (target < 1000: {}) |",
                sc.nodes - 1,
                median(&rr),
                rr.iter().copied().fold(0.0, f64::max),
                target(max_r < 1000.0)
            );
            let _ = writeln!(
                s,
                "| everything delivered | {} |\n",
                if sc.delivered == sc.messages && sc.received == sc.messages {
                    "yes"
                } else {
                    "NO"
                }
            );
        }
        if let Some(st) = &self.start {
            crate::start::render(&mut s, st);
        }
        if let Some(d) = &self.disk {
            crate::disk::render(&mut s, d);
        }
        s
    }
}
