//! The product measurements: throughput, latency, scale and growth.

use std::net::UdpSocket;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use trm_node::admin::client::AdminClient;
use trm_node::referral::messages::{self, Outgoing};
use trm_node::store::SentState;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, body::Payload};
use trm_proto::{commit, template};

use crate::workload;
use trm_tests::proc::{self, NodeProc};

/// Order statistics of a set of durations.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Stats {
    /// Computes the statistics of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let n = samples.len();
        let rank = |q: f64| {
            if n == 0 {
                Duration::ZERO
            } else {
                samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
            }
        };
        Self {
            n,
            p50: rank(0.5),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// Median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn delivered(v: &Value) -> bool {
    v["delivery"]["state"] == "delivered"
}

/// Result of one throughput run.
#[derive(Clone, Debug, Default)]
pub struct Throughput {
    /// Referrals.
    pub n: usize,
    /// From the first stored receipt to the last, seconds.
    pub secs: f64,
    /// Referrals per second from outbox to stored receipt.
    pub rate: f64,
    /// Signed and durably enqueued per second by the library (sender stopped).
    pub enqueue_rate: f64,
    /// Released field bytes per referral (paths and values).
    pub field_bytes: usize,
    /// Encoded transmission bytes per referral.
    pub transmission_bytes: usize,
    /// Unauthenticated handshakes attempted against the receiver meanwhile.
    pub handshakes: u64,
    /// Of those, refused at `Incoming` without a TLS handshake (the address was penalised).
    pub refused_at_incoming: u64,
    /// Of those, refused by the TLS handshake (client certificate not pinned).
    pub refused_after_tls: u64,
}

/// Two nodes as separate processes; `n` signed referrals put in the sender's outbox (by the
/// library, while the sender is stopped), then the sender starts and drains it. The rate is
/// measured from the first stored receipt to the last, as the sender's admin API reports them.
pub async fn throughput(bin: &Path, n: usize) -> Result<Throughput> {
    throughput_with(bin, n, false).await
}

/// The attacker's source address: another host on the loopback range, as a real attacker's
/// would be (the legitimate sender is on 127.0.0.1).
pub const ATTACKER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Unauthenticated handshakes per second against `addr` from [`ATTACKER`], with 16 attempts
/// in flight, until `stop`; returns the number of attempts. Each attempt waits up to 2 s for
/// its answer, or `TRM_BENCH_FLOOD_WAIT_MS` (an impatient attacker that gives up early and
/// starts another, to measure what a penalised address's Initials alone cost).
async fn handshake_flood(
    addr: std::net::SocketAddr,
    server_cert: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    let s = trm_node::identity::self_signed("trm-node-XX", "node")?;
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(s.key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let cfg = trm_node::net::tls::client_config(
        rustls::pki_types::CertificateDer::from(s.cert_der),
        key,
        trm_proto::signing::sha256(&server_cert),
        trm_proto::ALPN_PEER,
        trm_node::net::tls::QuicLimits {
            max_streams: 4,
            window: 1 << 16,
            idle_timeout: Duration::from_secs(5),
        },
    )?;
    let ep = trm_node::net::transport::endpoint(UdpSocket::bind((ATTACKER, 0))?, None)?;
    let wait = Duration::from_millis(
        std::env::var("TRM_BENCH_FLOOD_WAIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    let mut attempts = 0u64;
    let mut set = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        while set.len() < 16 {
            let connecting = ep.connect_with(cfg.clone(), addr, trm_node::net::tls::SERVER_NAME)?;
            set.spawn(async move {
                if let Ok(Ok(c)) = tokio::time::timeout(wait, connecting).await {
                    // The server refuses the certificate after the client's Finished.
                    let _ = tokio::time::timeout(wait, c.closed()).await;
                }
            });
            attempts += 1;
        }
        let _ = set.join_next().await;
    }
    set.abort_all();
    Ok(attempts)
}

/// [`throughput`], optionally while this process floods the receiver with unauthenticated
/// handshakes (a certificate of no peer), 16 at a time, for the whole drain.
pub async fn throughput_with(bin: &Path, n: usize, attack: bool) -> Result<Throughput> {
    anyhow::ensure!(n >= 2, "throughput needs at least 2 referrals");
    let tmp = tempfile::tempdir()?;
    let mut it = NodeProc::init(tmp.path(), "IT", bin)?;
    let mut al = NodeProc::init(tmp.path(), "AL", bin)?;
    // TRM_BENCH_WINDOW=N: N messages in flight (sender) and N streams (receiver), to
    // measure the effect of the window; default: the node's defaults.
    if let Ok(w) = std::env::var("TRM_BENCH_WINDOW") {
        it.set_in_table("delivery", "max_in_flight", &w)?;
        al.set_in_table("limits", "max_concurrent_streams", &w)?;
    }
    it.start().await?;
    al.start().await?;
    it.pin_card(al.card()).await?;
    al.pin_card(it.card()).await?;
    let officer = it.officer("Benchmark Officer", "officer").await?;
    it.terminate();

    let fields = workload::case_fields("IT-BENCH-0001", "AL")?;
    let (_, sample, _) = workload::referral(&it.keys()?, "IT", "AL", "IT-BENCH-0001", &fields, 0)?;
    let (field_bytes, transmission_bytes) = workload::sizes(&sample);
    let t = Instant::now();
    let ids = workload::prefill_outbox(&it.dir, "IT", "AL", n, 256)?;
    let enqueue_rate = n as f64 / t.elapsed().as_secs_f64();

    let stop_attack = Arc::new(AtomicBool::new(false));
    let attacker = attack.then(|| {
        tokio::spawn(handshake_flood(
            al.peer_addr,
            al.keys().map(|k| k.tls_cert.to_vec()).unwrap_or_default(),
            stop_attack.clone(),
        ))
    });
    it.start().await?;
    let perf = profile(&[&it, &al])?;
    let client = AdminClient::connect(&officer).await?;
    let show = |id: &Vec<u8>| {
        Call::MessageShow(api::MessageShow {
            id: hex::encode(id),
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let t_first = loop {
        if delivered(&client.call(show(&ids[0])).await?) {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("first referral not delivered: {}", it.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let t_last = loop {
        if delivered(&client.call(show(&ids[n - 1])).await?) {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("last referral not delivered: {}", it.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    loop {
        let s = it.call(Call::Status(api::Status {})).await?;
        if s["outbox_total"] == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("outbox not drained");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.close().await;
    stop_attack.store(true, Ordering::Relaxed);
    let handshakes = match attacker {
        Some(a) => a.await??,
        None => 0,
    };
    let (refused_at_incoming, refused_after_tls) =
        if attack { flood_refusals(&al)? } else { (0, 0) };
    if let Some(mut p) = perf {
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(p.id().to_string())
            .status();
        let _ = p.wait();
    }
    it.terminate();
    al.terminate();
    // Everything is stored once on the receiver and receipted on the sender.
    let received = al.open_store()?.received_count();
    anyhow::ensure!(received == n, "receiver stored {received} of {n}");
    let sent = it.open_store()?.sent_all()?;
    let ok = sent
        .iter()
        .filter(|s| SentState::from_u32(s.state) == SentState::Delivered)
        .count();
    anyhow::ensure!(ok == n, "sender has {ok} of {n} receipts");
    let secs = (t_last - t_first).as_secs_f64();
    Ok(Throughput {
        handshakes,
        refused_at_incoming,
        refused_after_tls,
        n,
        secs,
        rate: (n - 1) as f64 / secs,
        enqueue_rate,
        field_bytes,
        transmission_bytes,
    })
}

/// The receiver's counts of handshakes refused at `Incoming` for a penalty and refused by
/// the TLS handshake (certificate not pinned), from its metrics endpoint.
fn flood_refusals(node: &NodeProc) -> Result<(u64, u64)> {
    let body = node.metrics()?;
    let value = |series: &str| trm_tests::proc::metric_value(&body, series);
    Ok((
        value(r#"trm_handshakes_limited_total{peer="",limit="failed_before"}"#),
        value(r#"trm_handshakes_refused_total{peer="",reason="not_pinned"}"#),
    ))
}

/// With `TRM_BENCH_PERF=FILE`, records a `perf` profile of the node processes into FILE
/// while they run (how the bottlenecks in docs/PERFORMANCE.md were found).
fn profile(nodes: &[&NodeProc]) -> Result<Option<std::process::Child>> {
    let Ok(out) = std::env::var("TRM_BENCH_PERF") else {
        return Ok(None);
    };
    let pids: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.pid())
        .map(|p| p.to_string())
        .collect();
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-F",
            "999",
            "-g",
            "-o",
            &out,
            "-p",
            &pids.join(","),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("perf record")?;
    Ok(Some(child))
}

/// Result of one latency run.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    /// Enqueue to stored receipt (the receiver just started: cold).
    pub stats: Stats,
    /// The same number of referrals again right after (warm), if asked for.
    pub warm: Option<Stats>,
    /// Messages already stored on the receiver before the run.
    pub stored_before: usize,
    /// Receiver start to ready, with that store.
    pub receiver_ready: Duration,
    /// Receiver store size on disk before the run, bytes.
    pub store_bytes: u64,
    /// Time to pre-fill the receiver's store.
    pub fill_secs: f64,
}

/// Watches the sender's `delivered` counter (incremented only after the receipt's
/// transaction is flushed) and timestamps each outstanding message when it completes.
struct Probe {
    outstanding: Mutex<Vec<(Vec<u8>, Instant)>>,
    done: Mutex<Vec<Duration>>,
    stop: AtomicBool,
}

impl Probe {
    /// Every enqueued referral's receipt is stored.
    fn drained(&self) -> bool {
        self.outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

fn poll(probe: &Probe, ctx: &trm_node::node::Ctx) {
    let base = ctx
        .metrics
        .total(trm_node::base::metrics::Counter::Delivered);
    let mut recorded = 0u64;
    let mut last = base;
    while !probe.stop.load(Ordering::Relaxed) {
        let c = ctx
            .metrics
            .total(trm_node::base::metrics::Counter::Delivered);
        if c != last {
            let now = Instant::now();
            last = c;
            let mut out = probe.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            let mut done = probe.done.lock().unwrap_or_else(|p| p.into_inner());
            out.retain(|(id, t0)| {
                // Never credit more completions than flushed deliveries.
                if recorded >= c - base {
                    return true;
                }
                let is_done = ctx
                    .store
                    .sent(id)
                    .ok()
                    .flatten()
                    .is_some_and(|s| SentState::from_u32(s.state) == SentState::Delivered);
                if is_done {
                    recorded += 1;
                    done.push(now - *t0);
                }
                !is_done
            });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Latency from enqueue (sign + durable outbox, `messages::enqueue`) to the stored receipt,
/// at a steady `rate` per second, `count` referrals after 20 of warm-up. The receiver is a
/// separate process; the sender runs in this process (the same library the binary runs) so
/// that completion can be timed to the sub-millisecond. With `prefill > 0`, the receiver's
/// store holds that many messages before it starts. With `warm`, a second run of `count`
/// follows right after the first (the receiver's caches warm).
pub async fn latency(
    bin: &Path,
    rate: u32,
    count: usize,
    prefill: usize,
    warm: bool,
) -> Result<Latency> {
    let tmp = tempfile::tempdir()?;
    let it = NodeProc::init(tmp.path(), "IT", bin)?;
    let mut al = NodeProc::init(tmp.path(), "AL", bin)?;
    let mut fill_secs = 0.0;
    if prefill > 0 {
        let t = Instant::now();
        let step = (prefill / 10).max(1);
        let mut next = step;
        workload::prefill_received(&al.dir, "IT", &it.keys()?, prefill, 1000, |done| {
            if done >= next {
                eprintln!("    filled {done} of {prefill}");
                next += step;
            }
        })?;
        fill_secs = t.elapsed().as_secs_f64();
    }
    let store_bytes = dir_size(&al.store_dir());
    al.spawn()?;
    // A large store is checked in full at start: allow what the node itself allows.
    let receiver_ready = al
        .wait_ready(trm_node::node::store_open_limit(&al.store_dir()) + Duration::from_secs(30))
        .await?;
    let handle = trm_node::start(
        &it.dir,
        trm_node::StartOptions {
            peer_socket: Some(UdpSocket::bind(it.peer_addr)?),
            admin_socket: Some(UdpSocket::bind(it.admin_addr)?),
            clock: None,
        },
    )
    .await?;
    let ctx = handle.ctx.clone();
    let admin = AdminClient::connect(&it.operator).await?;
    admin
        .call(Call::PeerAdd(api::PeerAdd {
            card: al.card(),
            ..Default::default()
        }))
        .await?;
    admin.close().await;
    al.pin_card(it.card()).await?;

    let probe = Arc::new(Probe {
        outstanding: Mutex::new(Vec::new()),
        done: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let poller = {
        let probe = probe.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || poll(&probe, &ctx))
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let warmup = 20;
    let mut phases = Vec::new();
    for i in 0..warmup + count * (1 + usize::from(warm)) {
        tick.tick().await;
        // One case per referral: the lifecycle allows one open referral per case, and the
        // disclosed `reference.case_ref` must be the envelope's.
        let case_ref = format!("{}-BENCH-L{i:07}", ctx.country());
        let fields = workload::case_fields(&case_ref, "AL")?;
        let c = commit::commit(&fields, &mut rand::rngs::OsRng)?;
        let out = Outgoing {
            to: "AL".into(),
            case_id: case_ref.clone(),
            case_ref,
            in_reply_to: vec![],
            payload: Payload::Referral(pb::Referral {
                template_version: template::TEMPLATE_VERSION.into(),
                digests: c.digest_bytes(),
                extensions: vec![],
                urgency: pb::Urgency::Routine as i32,
                response_due_ms: 0,
                phase: pb::Phase::Identification as i32,
                ..Default::default()
            }),
            released: c.disclosures.clone(),
            committed: c.disclosures,
            officer: "Benchmark Officer".into(),
        };
        if i == warmup + count {
            // The cold run's samples, once it drained.
            wait_for(Duration::from_secs(120), || probe.drained()).await;
            phases.push(std::mem::take(
                &mut *probe.done.lock().unwrap_or_else(|p| p.into_inner()),
            ));
        }
        let t0 = Instant::now();
        let id = messages::enqueue(&ctx, out).await?;
        if i == warmup {
            // Let the warm-up drain, then start counting.
            wait_for(Duration::from_secs(30), || probe.drained()).await;
            probe.done.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        probe
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, t0));
    }
    let drained = wait_for(Duration::from_secs(120), || {
        probe
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    })
    .await;
    probe.stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    handle.shutdown().await;
    al.terminate();
    if !drained {
        bail!("not every referral was receipted: {}", al.log_tail());
    }
    phases.push(std::mem::take(
        &mut *probe.done.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    let mut phases = phases.into_iter().map(Stats::of);
    Ok(Latency {
        stats: phases.next().unwrap_or_else(|| Stats::of(Vec::new())),
        warm: phases.next(),
        stored_before: prefill,
        receiver_ready,
        store_bytes,
        fill_secs,
    })
}

async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// Bytes of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Result of the scale run.
#[derive(Clone, Debug, Default)]
pub struct Scale {
    /// Nodes.
    pub nodes: usize,
    /// Referrals sent (nodes × (nodes − 1)).
    pub messages: usize,
    /// Stored receipts counted on the senders.
    pub delivered: usize,
    /// Stored messages counted on the receivers.
    pub received: usize,
    /// From the first send to everything delivered, seconds.
    pub exchange_secs: f64,
    /// Resident memory of each idle node with every other node pinned, KiB.
    pub rss_kib: Vec<u64>,
    /// Resident memory of each idle node before any peer is pinned (started, empty), KiB.
    pub rss_unpinned_kib: Vec<u64>,
    /// Start to ready, first start (empty store, no peers).
    pub ready_first: Vec<Duration>,
    /// Start to ready, restart with every peer pinned and the exchange stored.
    pub ready_restart: Vec<Duration>,
}

fn country(i: usize) -> String {
    let a = b'A' + (i / 26) as u8;
    let b = b'A' + (i % 26) as u8;
    String::from_utf8(vec![a, b]).unwrap_or_else(|_| "ZZ".into())
}

/// `n` nodes on this machine, each pinning and sending one referral to every other.
pub async fn scale(bin: &Path, n: usize) -> Result<Scale> {
    let tmp = tempfile::tempdir()?;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(NodeProc::init(tmp.path(), &country(i), bin)?);
    }
    let mut ready_first = Vec::with_capacity(n);
    for node in nodes.iter_mut() {
        ready_first.push(node.start().await?);
    }
    // Idle and alone: the memory a node takes before its first peer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_unpinned_kib: Vec<u64> = nodes.iter().filter_map(NodeProc::rss_kib).collect();
    proc::pin_all(&mut nodes).await?;
    let mut officers = Vec::with_capacity(n);
    for node in nodes.iter_mut() {
        let off = node.officer("Benchmark Officer", "officer").await?;
        let c = AdminClient::connect(&off).await?;
        // Case references are national: each country's own (a shared reference would be one
        // open referral between each pair, in both directions).
        c.call(Call::CaseCreate(api::CaseCreate {
            json: workload::case_json(&format!("{}-BENCH", node.country), "AL"),
        }))
        .await?;
        officers.push(c);
    }
    let started = Instant::now();
    let countries: Vec<String> = nodes.iter().map(|n| n.country.clone()).collect();
    for (i, c) in officers.iter().enumerate() {
        for (j, to) in countries.iter().enumerate() {
            if i != j {
                c.call(Call::ReferralSend(api::ReferralSend {
                    case_id: format!("{}-BENCH", countries[i]),
                    to: to.clone(),
                }))
                .await?;
            }
        }
    }
    for c in officers {
        c.close().await;
    }
    drained(&mut nodes).await?;
    let exchange_secs = started.elapsed().as_secs_f64();
    // Idle: let connections settle, then read resident memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_kib: Vec<u64> = nodes.iter().filter_map(NodeProc::rss_kib).collect();
    let mut ready_restart = Vec::with_capacity(n);
    for node in nodes.iter_mut() {
        node.terminate();
        ready_restart.push(node.start().await?);
    }
    let mut delivered = 0;
    let mut received = 0;
    for node in nodes.iter_mut() {
        node.terminate();
        let store = node.open_store().context("open store after scale run")?;
        received += store.received_count();
        delivered += store
            .sent_all()?
            .iter()
            .filter(|s| SentState::from_u32(s.state) == SentState::Delivered)
            .count();
    }
    Ok(Scale {
        nodes: n,
        messages: n * (n - 1),
        delivered,
        received,
        exchange_secs,
        rss_kib,
        rss_unpinned_kib,
        ready_first,
        ready_restart,
    })
}

/// Waits (10 minutes at most) until no node has anything left in its outbox.
async fn drained(nodes: &mut [NodeProc]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut pending = 0u64;
        for node in nodes.iter_mut() {
            let s = node.call(Call::Status(api::Status {})).await?;
            pending += s["outbox_total"].as_u64().unwrap_or(u64::MAX / 1024);
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{pending} referrals still pending");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
