//! CI smoke run of the benchmark tool: every measurement of `trm-bench all --quick`, with
//! tiny sizes, completes and produces numbers. It asserts no timing: figures come from
//! `cargo run --release -p trm-bench -- all` (docs/PERFORMANCE.md).

use trm_bench::report::{self, Options, Selection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_path_completes_and_produces_numbers() {
    let mut opts = Options::quick(trm_tests::bins::bin("trm-node"));
    opts.throughput_n = 40;
    opts.quinn_n = 128;
    opts.ed25519_n = 50;
    opts.sled_n = 200;
    opts.latency_n = 10;
    opts.scale_nodes = 3;
    opts.growth_stored = 300;
    opts.audit_entries = 300;
    opts.disk_messages = 200;
    let r = report::run(&opts, Selection::all())
        .await
        .expect("bench runs");
    let b = r.baselines.as_ref().expect("baselines");
    for v in [b.quinn_1, b.quinn_64, b.ed25519, b.sled_64, b.sled_1] {
        assert!(v.is_finite() && v > 0.0, "baseline {v}");
    }
    assert_eq!(r.throughput.len(), 1);
    assert!(r.throughput[0].rate > 0.0);
    let l = r.latency.as_ref().expect("latency");
    assert_eq!(l.stats.n, 10);
    let g = r.growth.as_ref().expect("growth");
    assert_eq!(g.stored_before, 300);
    let s = r.scale.as_ref().expect("scale");
    assert_eq!((s.messages, s.delivered, s.received), (6, 6, 6));
    assert_eq!(s.rss_kib.len(), 3);
    let a = r.audit.as_ref().expect("audit");
    assert!(a.entries >= 298 && a.exported >= 300, "{a:?}");
    assert!(a.verify_peak_kib > 0 && a.ed25519_verify > 0.0, "{a:?}");
    let d = r.disk.as_ref().expect("disk");
    assert_eq!(d.messages, 200);
    assert!(d.encoded > 0 && d.allocated > 0 && d.ratio() > 0.0, "{d:?}");
    assert!(d.trees.iter().any(|t| t.records >= 200), "{d:?}");
    let text = r.render();
    for section in [
        "Baselines",
        "Throughput",
        "Latency",
        "Scale",
        "Audit",
        "Disk",
    ] {
        assert!(text.contains(section), "{section} in the report");
    }
}
