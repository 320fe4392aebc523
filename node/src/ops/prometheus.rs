//! The Prometheus text endpoint: plain HTTP/1.1 on TCP, `GET /metrics` and nothing else.
//!
//! Hand-written on purpose rather than an HTTP framework: it serves one read-only document,
//! so it reads at most [`MAX_REQUEST_HEAD`] bytes of request head within [`READ_TIMEOUT`],
//! answers `GET /metrics` (other paths 404, other methods 405, anything unparsable 400),
//! always closes the connection, and serves at most [`MAX_CONNECTIONS`] clients at once.
//! No request bodies, keep-alive or chunking: nothing a client sends beyond the request
//! line is interpreted.
//!
//! The listener is loopback by default (`[metrics] listen = "127.0.0.1:0"`); the bound
//! address is written to `DIR/run/metrics.addr`. Every label is a peer country, a message
//! kind, a reason code or a direction: never a case field value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::base::metrics::{names, Counter, Histogram, LATENCY_BUCKETS};
use crate::state::ctx::Ctx;
use crate::state::peers::Health;
use crate::store::{Store, StoreError, ThreadRole};

/// File (relative to the node folder) holding the bound metrics address while the node runs.
pub const ADDR_FILE: &str = "run/metrics.addr";
/// Largest request head read.
pub const MAX_REQUEST_HEAD: usize = 8 << 10;
/// Time allowed to send the request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more are refused (connection closed).
pub const MAX_CONNECTIONS: usize = 8;

/// Serves the endpoint until shutdown.
pub async fn serve(ctx: Arc<Ctx>, listener: tokio::net::TcpListener) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = ctx.shutdown.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // dropped: closed
        };
        let ctx = ctx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(READ_TIMEOUT * 2, handle(&ctx, stream)).await;
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

async fn handle(ctx: &Arc<Ctx>, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return Ok(false);
            }
        }
    })
    .await;
    let answer = match complete {
        Ok(Ok(true)) => match route(&head) {
            Ok(()) => {
                let c = ctx.clone();
                match tokio::task::spawn_blocking(move || render(&c)).await {
                    Ok(Ok(body)) => response(200, "OK", &body),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "metrics: store unreadable");
                        response(500, "Internal Server Error", "store unreadable\n")
                    }
                    Err(_) => response(500, "Internal Server Error", "\n"),
                }
            }
            Err((code, reason)) => response(code, reason, &format!("{reason}\n")),
        },
        Ok(Ok(false)) if head.len() > MAX_REQUEST_HEAD => response(
            431,
            "Request Header Fields Too Large",
            "request too large\n",
        ),
        _ => return Ok(()),
    };
    stream.write_all(&answer).await?;
    stream.shutdown().await?;
    // Lingering close: read (and drop) what the client may still send, so that closing
    // with unread data does not reset the connection before the answer is read.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

/// Checks the request line: `GET /metrics` (a query string is ignored).
fn route(head: &[u8]) -> Result<(), (u16, &'static str)> {
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .map(|l| l.trim_end_matches('\r'))
        .ok_or((400, "Bad Request"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "Bad Request"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((400, "Bad Request"));
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Err((404, "Not Found"));
    }
    if method != "GET" {
        return Err((405, "Method Not Allowed"));
    }
    Ok(())
}

fn response(code: u16, reason: &str, body: &str) -> Vec<u8> {
    let ctype = if code == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Escapes a label value (Prometheus text format).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Doc(String);

impl Doc {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Renders every metric in the Prometheus text format (version 0.0.4).
pub fn render(ctx: &Ctx) -> Result<String, StoreError> {
    let now = ctx.clock.now_ms();
    let mut d = Doc(String::with_capacity(4096));
    node_info(&mut d, ctx);
    counters(&mut d, &ctx.metrics.counters());
    let depths = ctx.store.outbox_depths()?;
    let peers = ctx.peers.all();
    let mut countries: Vec<String> = peers.iter().map(|p| p.card.country().to_string()).collect();
    for cc in depths.keys() {
        if !countries.contains(cc) {
            countries.push(cc.clone());
        }
    }
    countries.sort();
    outbox(&mut d, &countries, &depths, now);
    let healths: Vec<(String, Health)> = peers
        .iter()
        .filter(|p| !p.revoked)
        .map(|p| {
            let cc = p.card.country().to_string();
            let h = ctx.peers.health(&cc);
            (cc, h)
        })
        .collect();
    let down_after = ctx.cfg.delivery.unreachable_after_secs as i64 * 1000;
    peer_health(&mut d, &healths, down_after, now);
    latency(&mut d, &ctx.metrics.latency());
    overdue(&mut d, &countries, &overdue_referrals(&ctx.store, now)?);
    store_gauges(&mut d, ctx);
    Ok(d.0)
}

fn node_info(d: &mut Doc, ctx: &Ctx) {
    d.family(names::UP, "gauge", "1 while the node runs.");
    d.sample(names::UP, &[], 1);
    d.family(
        names::NODE_INFO,
        "gauge",
        "This node's country and trm-node version.",
    );
    d.sample(
        names::NODE_INFO,
        &[
            ("country", ctx.country()),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
}

/// Every listed counter family (even when empty), then the others that were counted.
fn counters(d: &mut Doc, counted: &[(Counter, String, String, u64)]) {
    let listed = Counter::ALL.iter().filter(|c| c.family().1);
    let others = Counter::ALL
        .iter()
        .filter(|c| !c.family().1 && counted.iter().any(|(n, ..)| n == *c));
    for counter in listed.chain(others) {
        let (f, _) = counter.family();
        d.family(f.name, "counter", f.help);
        for (_, peer, kind, v) in counted.iter().filter(|(n, ..)| n == counter) {
            d.sample(f.name, &[("peer", peer), (f.label, kind)], v);
        }
    }
}

fn outbox(d: &mut Doc, countries: &[String], depths: &BTreeMap<String, (u64, i64)>, now: i64) {
    d.family(
        names::OUTBOX_DEPTH,
        "gauge",
        "Messages waiting in the outbox for a receipt, by recipient.",
    );
    for cc in countries {
        let depth = depths.get(cc).map_or(0, |d| d.0);
        d.sample(names::OUTBOX_DEPTH, &[("peer", cc)], depth);
    }
    d.family(
        names::OUTBOX_OLDEST_AGE,
        "gauge",
        "Age of the oldest message waiting in the outbox, by recipient (0 when empty).",
    );
    for cc in countries {
        let age = match depths.get(cc) {
            Some((n, oldest)) if *n > 0 => ((now - oldest).max(0) as f64) / 1000.0,
            _ => 0.0,
        };
        d.sample(names::OUTBOX_OLDEST_AGE, &[("peer", cc)], age);
    }
}

fn peer_health(d: &mut Doc, healths: &[(String, Health)], down_after: i64, now: i64) {
    d.family(
        names::PEER_UP,
        "gauge",
        "1 unless delivery to the peer has been failing for longer than delivery.unreachable_after_secs (or has never succeeded).",
    );
    for (cc, h) in healths {
        let down = h.failing_since_ms != 0
            && (now - h.failing_since_ms >= down_after || h.last_contact_ms == 0);
        d.sample(names::PEER_UP, &[("peer", cc)], u8::from(!down));
    }
    d.family(
        names::PEER_LAST_CONTACT,
        "gauge",
        "Unix time of the last successful delivery to the peer (0 if none since start).",
    );
    for (cc, h) in healths {
        d.sample(
            names::PEER_LAST_CONTACT,
            &[("peer", cc)],
            h.last_contact_ms as f64 / 1000.0,
        );
    }
    d.family(
        names::PEER_FAILING,
        "gauge",
        "For how long delivery to the peer has been failing (0 when it is not).",
    );
    for (cc, h) in healths {
        let secs = if h.failing_since_ms == 0 {
            0.0
        } else {
            ((now - h.failing_since_ms).max(0) as f64) / 1000.0
        };
        d.sample(names::PEER_FAILING, &[("peer", cc)], secs);
    }
}

fn latency(d: &mut Doc, hist: &Histogram) {
    let name = names::DELIVERY_LATENCY;
    d.family(
        name,
        "histogram",
        "Time from sending a message on a stream to storing its verified answer.",
    );
    let mut cumulative = 0;
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += hist.buckets[i];
        d.sample(
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    cumulative += hist.buckets[LATENCY_BUCKETS.len()];
    d.sample(&format!("{name}_bucket"), &[("le", "+Inf")], cumulative);
    d.sample(&format!("{name}_sum"), &[], hist.sum);
    d.sample(&format!("{name}_count"), &[], hist.count);
}

fn overdue(d: &mut Doc, countries: &[String], overdue: &BTreeMap<(&'static str, String), u64>) {
    let name = names::REFERRALS_OVERDUE;
    d.family(
        name,
        "gauge",
        "Referrals past their response date without an acceptance or decline: sent ones not answered by the peer, received ones not answered by this node.",
    );
    for dir in [ThreadRole::Sent.as_str(), ThreadRole::Received.as_str()] {
        for cc in countries {
            let n = overdue.get(&(dir, cc.clone())).copied().unwrap_or(0);
            d.sample(name, &[("direction", dir), ("peer", cc)], n);
        }
    }
    // Peers no longer pinned still count.
    for ((dir, cc), n) in overdue {
        if !countries.contains(cc) {
            d.sample(name, &[("direction", dir), ("peer", cc)], n);
        }
    }
}

fn store_gauges(d: &mut Doc, ctx: &Ctx) {
    d.family(
        names::AUDIT_ENTRIES,
        "gauge",
        "Entries in this node's audit log.",
    );
    d.sample(names::AUDIT_ENTRIES, &[], ctx.store.audit_len());
    d.family(names::STORE_SIZE, "gauge", "Size of the store on disk.");
    d.sample(names::STORE_SIZE, &[], ctx.store.size_on_disk());
    d.family(
        names::LAST_RESTORE,
        "gauge",
        "Unix time of the last restore from a backup (0 if never).",
    );
    let restored = crate::ops::backup::last_restore(&ctx.store).map_or(0, |r| r.restored_ms);
    d.sample(names::LAST_RESTORE, &[], restored as f64 / 1000.0);
}

/// Overdue referrals by (direction, peer): referral threads still pending after their
/// response date, as both sides see them (see `lifecycle`).
pub fn overdue_referrals(
    store: &Store,
    now_ms: i64,
) -> Result<BTreeMap<(&'static str, String), u64>, StoreError> {
    let mut out: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    for t in store.threads()? {
        if t.is_overdue(now_ms) {
            let role = t.role().unwrap_or(ThreadRole::Received);
            let dir = role.as_str();
            *out.entry((dir, t.peer.clone())).or_default() += 1;
        }
    }
    Ok(out)
}

/// Binds the configured listener and writes its address to [`ADDR_FILE`]; removes a stale
/// address file when metrics are off.
pub fn bind(
    dir: &Path,
    enabled: bool,
    addr: SocketAddr,
) -> std::io::Result<Option<std::net::TcpListener>> {
    let file = dir.join(ADDR_FILE);
    if !enabled {
        let _ = std::fs::remove_file(&file);
        return Ok(None);
    }
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let bound = l.local_addr()?;
    crate::identity::write_public(&file, format!("{bound}\n").as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Some(l))
}

/// A minimal blocking scrape, for `trm-node health`: status code and body.
pub fn scrape(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(64 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Ok(()));
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Ok(()));
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Err((404, "Not Found")));
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err((405, "Method Not Allowed"))
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Err((400, "Bad Request")));
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Err((400, "Bad Request")));
    }

    #[test]
    fn counter_families_keep_their_names_and_order() {
        let mut d = Doc(String::new());
        counters(&mut d, &[]);
        let types: Vec<&str> = d.0.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(
            types,
            [
                "# TYPE trm_messages_sent_total counter",
                "# TYPE trm_messages_delivered_total counter",
                "# TYPE trm_messages_received_total counter",
                "# TYPE trm_messages_rejected_total counter",
                "# TYPE trm_messages_rejected_by_peer_total counter",
                "# TYPE trm_messages_duplicate_total counter",
                "# TYPE trm_handshakes_refused_total counter",
                "# TYPE trm_handshakes_failed_total counter",
                "# TYPE trm_handshakes_retried_total counter",
                "# TYPE trm_handshakes_limited_total counter",
                "# TYPE trm_connections_limited_total counter",
            ],
            "the unlisted counters show only once counted"
        );
        let counted = [
            (
                Counter::RejectedUnlogged,
                "AL".into(),
                "MALFORMED".into(),
                2,
            ),
            (Counter::Rejected, "AL".into(), "MALFORMED".into(), 3),
            (
                Counter::PeerLogInconsistent,
                "AL".into(),
                "receipt".into(),
                1,
            ),
            (Counter::Sent, "AL".into(), "referral".into(), 4),
            (Counter::Sent, "GR".into(), "closure".into(), 5),
        ];
        let mut d = Doc(String::new());
        counters(&mut d, &counted);
        let samples: Vec<&str> = d.0.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "trm_messages_sent_total{peer=\"AL\",kind=\"referral\"} 4",
                "trm_messages_sent_total{peer=\"GR\",kind=\"closure\"} 5",
                "trm_messages_rejected_total{peer=\"AL\",reason=\"MALFORMED\"} 3",
                "trm_peer_log_inconsistent_total{peer=\"AL\",kind=\"receipt\"} 1",
                "trm_rejected_unlogged_total{peer=\"AL\",kind=\"MALFORMED\"} 2",
            ]
        );
        assert!(d.0.ends_with(
            "# HELP trm_peer_log_inconsistent_total Node counter, by peer and kind.\n\
             # TYPE trm_peer_log_inconsistent_total counter\n\
             trm_peer_log_inconsistent_total{peer=\"AL\",kind=\"receipt\"} 1\n\
             # HELP trm_rejected_unlogged_total Node counter, by peer and kind.\n\
             # TYPE trm_rejected_unlogged_total counter\n\
             trm_rejected_unlogged_total{peer=\"AL\",kind=\"MALFORMED\"} 2\n"
        ));
    }

    #[test]
    fn latency_buckets_are_cumulative() {
        let mut hist = Histogram::default();
        hist.buckets[0] = 1;
        hist.buckets[9] = 2;
        hist.buckets[10] = 1;
        hist.sum = 12.5;
        hist.count = 4;
        let mut d = Doc(String::new());
        latency(&mut d, &hist);
        assert!(d
            .0
            .contains("trm_delivery_latency_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(d
            .0
            .contains("trm_delivery_latency_seconds_bucket{le=\"1\"} 1\n"));
        assert!(d
            .0
            .contains("trm_delivery_latency_seconds_bucket{le=\"10\"} 3\n"));
        assert!(d
            .0
            .contains("trm_delivery_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(d.0.ends_with(
            "trm_delivery_latency_seconds_sum 12.5\ntrm_delivery_latency_seconds_count 4\n"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut d = Doc(String::new());
        d.sample("m", &[("a", "x\"y\\z\nw")], 1);
        assert_eq!(d.0, "m{a=\"x\\\"y\\\\z\\nw\"} 1\n");
    }
}
