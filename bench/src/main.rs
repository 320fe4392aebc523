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
    /// Leave out the baselines (`throughput` runs them by default).
    #[arg(long)]
    no_baselines: bool,
    /// Referrals timed in the latency and growth runs.
    #[arg(long)]
    latency_n: Option<usize>,
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
    /// Start to accepting with a large store (fast path and full check) against an empty one.
    Start,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    trm_tests::setup();
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
    if let Some(n) = cli.messages {
        opts.start_messages = n;
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
        What::Exhaustion => Selection {
            throughput: true,
            exhaustion: true,
            ..Default::default()
        },
        What::Start => Selection {
            start: true,
            ..Default::default()
        },
    };
    let sel = Selection {
        baselines: sel.baselines && !cli.no_baselines,
        ..sel
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trm-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(report::run(&opts, sel)) {
        Ok(r) => {
            println!("{}", r.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
