//! `trm-bench`: product figures against raw baselines of the same machine, in one run.
//!
//! ```sh
//! cargo run --release -p trm-bench -- all            # the figures of docs/PERFORMANCE.md
//! cargo run --release -p trm-bench -- all --quick    # a smoke run of a few seconds
//! ```

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use trm_bench::report::{self, Options, Selection};

/// Measures trm-node against quinn, Ed25519 and sled baselines and prints the ratios.
#[derive(Parser)]
#[command(name = "trm-bench", version, about)]
struct Cli {
    /// What to run.
    #[arg(value_enum)]
    what: What,
    /// Small sizes: a smoke run of seconds, not figures.
    #[arg(long)]
    quick: bool,
    /// Repetitions of baselines and throughput (medians are reported).
    #[arg(long)]
    runs: Option<usize>,
    /// Referrals per throughput run.
    #[arg(long)]
    throughput_n: Option<usize>,
    /// Nodes in the scale run.
    #[arg(long)]
    nodes: Option<usize>,
    /// Messages already stored in the growth run.
    #[arg(long)]
    stored: Option<usize>,
    /// Messages stored in the start run.
    #[arg(long)]
    messages: Option<usize>,
    /// Received messages stored in the disk run (default 100,000).
    #[arg(long)]
    disk_messages: Option<usize>,
    /// Leave out the baselines (`throughput` runs them by default).
    #[arg(long)]
    no_baselines: bool,
    /// Referrals timed in the latency and growth runs.
    #[arg(long)]
    latency_n: Option<usize>,
    /// Entries of the audit run's bundle and exported log (default 200,000).
    #[arg(long)]
    entries: Option<u64>,
    /// Referrals of the smaller callgrind run in `instructions` (default 100; the larger has
    /// three times as many); also the count of `instructions-workload`.
    #[arg(long)]
    referrals: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// Everything below.
    All,
    /// Raw quinn, Ed25519 and sled.
    Baselines,
    /// Two processes, N referrals, outbox to stored receipt.
    Throughput,
    /// p50/p99/max at a steady 100 per second.
    Latency,
    /// N nodes, all to all; memory and start time.
    Scale,
    /// Latency with a large store, against an empty one.
    Growth,
    /// Throughput with and without a flood of unauthenticated handshakes.
    Exhaustion,
    /// Audit export and offline verification of N entries.
    Audit,
    /// Instructions per referral, send and receive, counted by callgrind (valgrind).
    Instructions,
    /// The process `instructions` runs under callgrind: two nodes in process, N referrals.
    #[value(hide = true)]
    InstructionsWorkload,
    /// The baseline `instructions` runs under callgrind: N Ed25519 sign + verify pairs.
    #[value(hide = true)]
    InstructionsBaseline,
    /// Start to accepting with a large store (fast path and full check) against an empty one.
    Start,
    /// Disk per stored message against its encoded size.
    Disk,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    trm_tests::setup();
    match cli.what {
        What::InstructionsWorkload => return instructions_workload(cli.referrals.unwrap_or(100)),
        What::InstructionsBaseline => {
            trm_bench::instructions::pairs(cli.referrals.unwrap_or(1000));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // Built first when run by cargo, so the figures are never those of a stale binary.
    let bin = trm_tests::bins::bin_dir().join("trm-node");
    if !bin.is_file() {
        eprintln!(
            "trm-bench: {} not found: run `cargo run --release -p trm-bench` or set TRM_BIN_DIR",
            bin.display()
        );
        return ExitCode::from(64);
    }
    let mut opts = if cli.quick {
        Options::quick(bin)
    } else {
        Options::full(bin)
    };
    if let Some(r) = cli.runs {
        opts.runs = r.max(1);
    }
    if let Some(n) = cli.throughput_n {
        opts.throughput_n = n;
    }
    if let Some(n) = cli.nodes {
        opts.scale_nodes = n;
    }
    if let Some(n) = cli.stored {
        opts.growth_stored = n;
    }
    if let Some(n) = cli.latency_n {
        opts.latency_n = n;
    }
    if let Some(n) = cli.entries {
        opts.audit_entries = n.max(4);
    }
    if let Some(n) = cli.referrals {
        opts.instructions_n = n.max(1);
    }
    if let Some(n) = cli.messages {
        opts.start_messages = n;
    }
    if let Some(n) = cli.disk_messages {
        opts.disk_messages = n.max(1);
    }
    let sel = match cli.what {
        What::All => Selection::all(),
        What::Baselines => Selection {
            baselines: true,
            ..Default::default()
        },
        What::Throughput => Selection {
            baselines: true,
            throughput: true,
            ..Default::default()
        },
        What::Latency => Selection {
            latency: true,
            ..Default::default()
        },
        What::Scale => Selection {
            scale: true,
            ..Default::default()
        },
        What::Growth => Selection {
            growth: true,
            ..Default::default()
        },
        What::Audit => Selection {
            audit: true,
            ..Default::default()
        },
        What::Instructions => Selection {
            instructions: true,
            ..Default::default()
        },
        What::InstructionsWorkload | What::InstructionsBaseline => Selection::default(),
        What::Exhaustion => Selection {
            throughput: true,
            exhaustion: true,
            ..Default::default()
        },
        What::Start => Selection {
            start: true,
            ..Default::default()
        },
        What::Disk => Selection {
            disk: true,
            ..Default::default()
        },
    };
    let sel = Selection {
        baselines: sel.baselines && !cli.no_baselines,
        ..sel
    };
    match on_runtime(report::run(&opts, sel)) {
        Ok(r) => {
            println!("{}", r.render());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Runs `f` on a two-thread runtime; an error is one line on stderr and a failure exit.
fn on_runtime<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> Result<T, ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("trm-bench: {e}");
            ExitCode::FAILURE
        })?;
    rt.block_on(f).map_err(|e| {
        eprintln!("trm-bench: {e:#}");
        ExitCode::FAILURE
    })
}

/// `instructions-workload --referrals N` (run under callgrind by `instructions`).
fn instructions_workload(n: usize) -> ExitCode {
    on_runtime(trm_bench::instructions::workload(n))
        .map_or_else(|code| code, |()| ExitCode::SUCCESS)
}
