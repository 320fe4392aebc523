//! Delivery workers: one per peer, draining that peer's durable outbox.
//!
//! A worker keeps up to `delivery.max_in_flight` messages in flight on one connection, one
//! stream each. A message leaves the outbox only when a valid signed receipt (or a final
//! signed rejection) is stored. Connection failures back off exponentially up to
//! `delivery.backoff_max_ms` and are retried forever; the peer's health (failing since, last
//! error) is visible in `status` so nothing gives up silently.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use trm_proto::pb::{self, peer_response, RejectReason};
use trm_proto::signing::{self, Tag};

use crate::base::metrics::Counter;
use crate::net::transport;
use crate::state::ctx::Ctx;
pub use crate::state::wakers::Delivery;
use crate::store::{AuditEntry, Op, SentRecord, SentState};
use trm_proto::audit::AuditKind;

/// Starts the worker of one peer (the function [`Delivery`] calls to start a worker).
pub fn spawn_worker(ctx: &Arc<Ctx>, peer: &str, notify: Arc<Notify>) {
    let span = tracing::info_span!("delivery", peer = %peer);
    tokio::spawn(tracing::Instrument::instrument(
        worker(ctx.clone(), peer.to_string(), notify),
        span,
    ));
}

/// Starts a worker for every peer with a non-empty outbox.
pub fn start_all(ctx: &Arc<Ctx>) -> Result<(), crate::store::StoreError> {
    for peer in ctx.store.outbox_depths()?.keys() {
        ctx.delivery.wake(ctx, peer);
    }
    Ok(())
}

enum Attempt {
    /// Receipt or final rejection stored.
    Done,
    /// Try again later; the connection is suspect.
    Retry(String),
}

async fn worker(ctx: Arc<Ctx>, peer: String, notify: Arc<Notify>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Backoff::new(
        ctx.cfg.delivery.backoff_initial_ms,
        ctx.cfg.delivery.backoff_max_ms,
    );
    let mut conn: Option<quinn::Connection> = None;
    let mut window = Window::default();
    let mut barrier: Option<Vec<u8>> = None;
    let mut pins = ctx.peers.pins().watch();
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Some(why) = close_unfit(&ctx, &peer, &mut conn) {
            if window.set.is_empty() {
                tracing::debug!(peer = %peer, reason = %why, "delivery paused");
                if sleep_or_stop(&mut shutdown, &notify, Duration::from_secs(1), true).await {
                    break;
                }
                continue;
            }
        }
        let batch = next_batch(&ctx, &peer, &window, &mut barrier);
        if !batch.is_empty() && conn.as_ref().is_none_or(|c| c.close_reason().is_some()) {
            conn = connect_or_warn(&ctx, &peer).await;
            if conn.is_none() {
                if backoff.wait(&mut shutdown, &notify, true).await {
                    break;
                }
                continue;
            }
        }
        if let Some(c) = &conn {
            for rec in batch {
                window.spawn(&ctx, c, rec);
            }
        }
        if window.set.is_empty() {
            let expiry = idle_expiry(&ctx, &peer, conn.is_some());
            tokio::select! {
                _ = notify.notified() => continue,
                _ = pins.changed() => continue,
                _ = tokio::time::sleep(expiry) => continue,
                _ = shutdown.changed() => break,
            }
        }
        tokio::select! {
            r = window.set.join_next() => {
                let Some(Ok((id, result))) = r else { continue };
                window.finished(&id);
                match result {
                    Attempt::Done => {
                        backoff.reset();
                        ctx.peers.contact_ok(&peer, ctx.clock.now_ms());
                    }
                    Attempt::Retry(e) => {
                        if let Some(n) = failure_to_log(&ctx, &peer, &e) {
                            tracing::warn!(peer = %peer, error = %e, attempts = n, "delivery failed; will retry");
                        }
                        if let Some(c) = conn.take() {
                            c.close(0u32.into(), b"retry");
                        }
                        // Let the rest of the window finish or fail before backing off.
                        window.drain().await;
                        if backoff.wait(&mut shutdown, &notify, false).await {
                            break;
                        }
                    }
                }
            }
            _ = notify.notified() => {}
            _ = shutdown.changed() => break,
        }
    }
    window.set.abort_all();
}

/// Closes the cached connection to `peer` if its pin changed (re-pinned, removed, expired),
/// or if outgoing messages are held; returns why they are held.
fn close_unfit(ctx: &Ctx, peer: &str, conn: &mut Option<quinn::Connection>) -> Option<String> {
    // A connection outlives no change of the peer's pin (re-pinned, removed, expired).
    if conn.as_ref().is_some_and(|c| !still_pinned(ctx, peer, c)) {
        if let Some(c) = conn.take() {
            c.close(4u32.into(), b"pin changed");
        }
    }
    // Fail closed: nothing leaves while the audit log cannot be written, nor to a peer
    // that is revoked or whose log is held.
    let why = crate::federation::trust::hold_outgoing(ctx, peer)?;
    if let Some(c) = conn.take() {
        c.close(3u32.into(), b"paused");
    }
    Some(why)
}

/// A new connection to `peer`, or `None` after counting (and perhaps logging) the failure.
async fn connect_or_warn(ctx: &Ctx, peer: &str) -> Option<quinn::Connection> {
    match connect(ctx, peer).await {
        Ok(c) => Some(c),
        Err(e) => {
            if let Some(n) = failure_to_log(ctx, peer, &e) {
                tracing::warn!(peer = %peer, error = %e, attempts = n, "peer unreachable; will retry");
            }
            None
        }
    }
}

/// Counts a failed contact with `peer`; returns the number of failures in a row when it is
/// worth a warning (the first, then every 20th).
fn failure_to_log(ctx: &Ctx, peer: &str, error: &str) -> Option<u32> {
    let n = ctx.peers.contact_failed(peer, ctx.clock.now_ms(), error);
    (n == 1 || n.is_multiple_of(20)).then_some(n)
}

/// The messages a worker has in flight, and their tasks.
#[derive(Default)]
struct Window {
    /// Ids of the messages in flight.
    inflight: HashSet<Vec<u8>>,
    /// The case of each message in flight: one message per case at a time, in outbox order.
    cases: HashMap<Vec<u8>, String>,
    set: JoinSet<(Vec<u8>, Attempt)>,
}

impl Window {
    /// Starts an attempt to deliver `rec` on `conn`.
    fn spawn(&mut self, ctx: &Arc<Ctx>, conn: &quinn::Connection, rec: SentRecord) {
        self.inflight.insert(rec.id.clone());
        self.cases.insert(rec.id.clone(), case_of(&rec));
        let ctx = ctx.clone();
        let c = conn.clone();
        self.set.spawn(async move {
            let id = rec.id.clone();
            (id, attempt(&ctx, &c, rec).await)
        });
    }

    /// Forgets a message whose attempt ended.
    fn finished(&mut self, id: &[u8]) {
        self.inflight.remove(id);
        self.cases.remove(id);
    }

    /// Waits for every attempt in flight to end, whatever its result.
    async fn drain(&mut self) {
        while let Some(Ok((id, _))) = self.set.join_next().await {
            self.finished(&id);
        }
    }
}

/// Exponential backoff between `initial_ms` and `max_ms`.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial_ms: u64, max_ms: u64) -> Self {
        let initial = Duration::from_millis(initial_ms);
        Self {
            initial,
            max: Duration::from_millis(max_ms),
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Sleeps for the current backoff, then doubles it (up to the maximum); returns true if
    /// the node is shutting down (see [`sleep_or_stop`]).
    async fn wait(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        notify: &Notify,
        wake_early: bool,
    ) -> bool {
        if sleep_or_stop(shutdown, notify, self.next, wake_early).await {
            return true;
        }
        self.next = (self.next * 2).min(self.max);
        false
    }
}

/// The next messages to send to `peer` (see [`one_per_case`]), if the window has room and
/// nothing holds outgoing messages.
fn next_batch(
    ctx: &Ctx,
    peer: &str,
    window: &Window,
    barrier: &mut Option<Vec<u8>>,
) -> Vec<SentRecord> {
    let room = ctx
        .cfg
        .delivery
        .max_in_flight
        .saturating_sub(window.inflight.len());
    if room == 0 || crate::federation::trust::hold_outgoing(ctx, peer).is_some() {
        return vec![];
    }
    match ctx
        .store
        .outbox_for(peer, room.saturating_mul(4), &window.inflight)
    {
        Ok(b) => crate::federation::rotation::order_batch(
            one_per_case(b, &window.cases, room),
            barrier,
            &window.inflight,
        ),
        Err(e) => {
            tracing::error!(peer = %peer, error = %e, "cannot read outbox");
            vec![]
        }
    }
}

/// How long an idle worker waits: an idle cached connection is dropped when the peer's card
/// expires.
fn idle_expiry(ctx: &Ctx, peer: &str, connected: bool) -> Duration {
    let pinned = if connected { ctx.peers.get(peer) } else { None };
    pinned.map_or(Duration::from_secs(86_400), |p| {
        let left = p.card.card.valid_until_ms - crate::base::time::now_ms();
        Duration::from_millis(left.clamp(0, 86_400_000) as u64 + 1)
    })
}

/// The case reference of a stored outgoing message ("" for messages about no case).
fn case_of(rec: &SentRecord) -> String {
    pb::Envelope::decode(rec.envelope.as_slice())
        .ok()
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .map(|b| b.case_ref)
        .unwrap_or_default()
}

/// From `outbox` (oldest first), the messages that may leave now, at most `room`: the oldest
/// waiting message of each case whose earlier message is not in flight. Messages of one
/// (peer, case) therefore reach the peer in the order they were enqueued: an erasure request
/// or a later disclosure never overtakes its referral.
fn one_per_case(
    outbox: Vec<SentRecord>,
    inflight: &HashMap<Vec<u8>, String>,
    room: usize,
) -> Vec<SentRecord> {
    let mut busy: HashSet<String> = inflight.values().cloned().collect();
    let mut out = Vec::new();
    for rec in outbox {
        if out.len() >= room {
            break;
        }
        if busy.insert(case_of(&rec)) {
            out.push(rec);
        }
    }
    out
}

/// Sleeps for `d`; returns true if the node is shutting down. A wake-up from new outbox
/// entries does not cut a backoff short unless `wake_early`.
async fn sleep_or_stop(
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    notify: &Notify,
    d: Duration,
    wake_early: bool,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
        _ = notify.notified(), if wake_early => false,
    }
}

/// The pin of a peer's server certificate: its card's validity.
fn server_pin(p: &crate::state::peers::Peer) -> crate::net::tls::Pin {
    crate::net::tls::Pin {
        who: p.card.country().to_string(),
        not_before_ms: p.card.card.valid_from_ms,
        not_after_ms: p.card.card.valid_until_ms,
    }
}

/// True if the cached connection to `peer` may still be used: the peer is pinned, not
/// revoked, its card valid now and still naming the certificate the connection was made to.
fn still_pinned(ctx: &Ctx, peer: &str, conn: &quinn::Connection) -> bool {
    ctx.peers.get(peer).is_some_and(|p| {
        !p.revoked
            && crate::net::tls::server_still_pinned(
                conn,
                &p.card.card.tls_cert_der,
                &server_pin(&p),
            )
    })
}

async fn connect(ctx: &Ctx, peer: &str) -> Result<quinn::Connection, String> {
    let p = ctx.peers.get(peer).ok_or("peer is no longer pinned")?;
    if p.revoked {
        return Err("peer is revoked".into());
    }
    // The server must present the pinned certificate, and only while the card is valid.
    let cfg = crate::net::tls::peer_client_config(
        ctx.keys.tls_cert.clone(),
        ctx.keys.tls_key.clone_key(),
        &p.card.card.tls_cert_der,
        &server_pin(&p),
        ctx.quic_limits(),
    )
    .map_err(|e| e.to_string())?;
    let mut last = String::from("card has no address");
    for addr in &p.card.card.addresses {
        let Ok(sa) = addr.parse::<std::net::SocketAddr>() else {
            last = format!("bad address {addr}");
            continue;
        };
        let connecting =
            match ctx
                .endpoint
                .connect_with(cfg.clone(), sa, crate::net::tls::SERVER_NAME)
            {
                Ok(c) => c,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".into(),
        }
    }
    Err(last)
}

async fn attempt(ctx: &Ctx, conn: &quinn::Connection, rec: SentRecord) -> Attempt {
    let started = Instant::now();
    let rec = match crate::federation::rotation::resign_if_retired(ctx, rec).await {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(e),
    };
    let (req, hash) = match request_of(ctx, &rec).await {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(e),
    };
    let timeout = Duration::from_secs(ctx.cfg.limits.stream_timeout_secs.max(10));
    let resp: pb::PeerResponse =
        match transport::request(conn, &req, ctx.cfg.limits.max_frame_bytes, timeout).await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(e.to_string()),
        };
    let now = ctx.clock.now_ms();
    let answer = match read_answer(ctx, conn, &rec, hash, resp).await {
        Ok(a) => a,
        Err(e) => return Attempt::Retry(e),
    };
    store_answer(ctx, &rec, answer, now, started).await
}

/// The request carrying a stored message, with its released disclosures, and the hash of
/// its envelope.
async fn request_of(ctx: &Ctx, rec: &SentRecord) -> Result<(pb::PeerRequest, [u8; 32]), String> {
    let envelope = pb::Envelope::decode(rec.envelope.as_slice())
        .map_err(|e| format!("stored message unreadable: {e}"))?;
    let disclosures = crate::store::casedata::open_sent(
        &ctx.vault,
        rec,
        crate::store::casedata::SentPart::Released,
    )
    .await
    .map_err(|e| format!("stored disclosures unreadable: {e}"))?;
    let transmission = pb::Transmission {
        envelope: Some(envelope),
        disclosures,
    };
    let Some(env) = transmission.envelope.as_ref() else {
        return Err("stored message has no envelope".into());
    };
    let hash = signing::envelope_hash(&env.body, &env.signature);
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(transmission)),
    };
    Ok((req, hash))
}

/// A peer's valid answer to a message, as it is stored and logged.
struct Answer {
    state: SentState,
    signed: pb::Signed,
    audit_kind: AuditKind,
    result: String,
    /// The envelope the answer is about: this signing, or an earlier one of the same message
    /// that the peer stored before our copy of its receipt was lost (re-signed since).
    answered_hash: Vec<u8>,
}

/// Checks the peer's answer to `rec` (sent with envelope hash `hash`): a receipt or a final
/// rejection, signed by the peer and naming the message.
async fn read_answer(
    ctx: &Ctx,
    conn: &quinn::Connection,
    rec: &SentRecord,
    hash: [u8; 32],
    resp: pb::PeerResponse,
) -> Result<Answer, String> {
    let peer = rec.peer.as_str();
    match resp.kind {
        Some(peer_response::Kind::Receipt(signed)) => {
            match check_answer::<pb::Receipt>(ctx, peer, &signed, Tag::Receipt) {
                Ok(r)
                    if r.message_id == rec.id
                        && (r.envelope_hash == hash
                            || rec.earlier_envelope_hashes.contains(&r.envelope_hash))
                        && r.receiver == peer =>
                {
                    let answered_hash = r.envelope_hash.clone();
                    // Witness the receiver's audit log with the checkpoint its receipt carries.
                    if let Some(cp) = r.checkpoint {
                        crate::federation::trust::witness(ctx, peer, conn, cp).await;
                    }
                    Ok(Answer {
                        state: SentState::Delivered,
                        signed,
                        audit_kind: AuditKind::ReceiptReceived,
                        result: "delivered".to_string(),
                        answered_hash,
                    })
                }
                Ok(_) => Err("receipt does not match the message".into()),
                Err(e) => Err(format!("invalid receipt: {e}")),
            }
        }
        Some(peer_response::Kind::Rejection(signed)) => {
            match check_answer::<pb::Rejection>(ctx, peer, &signed, Tag::Rejection) {
                // A rejection must name the message: one without its id proves nothing about
                // it, and the audit verifier refuses it.
                Ok(r) if r.message_id == rec.id => {
                    let reason =
                        RejectReason::try_from(r.reason).unwrap_or(RejectReason::RejectUnspecified);
                    if reason == RejectReason::Unavailable {
                        return Err(format!("peer busy: {}", r.detail));
                    }
                    tracing::warn!(peer = %peer, reason = reason.as_str_name(), detail = %r.detail, "message rejected by peer");
                    Ok(Answer {
                        state: SentState::Rejected,
                        signed,
                        audit_kind: AuditKind::RejectionReceived,
                        result: format!("rejected: {}", reason.as_str_name()),
                        answered_hash: hash.to_vec(),
                    })
                }
                Ok(_) => Err("rejection does not match the message".into()),
                Err(e) => Err(format!("invalid rejection: {e}")),
            }
        }
        _ => Err("peer answered with neither receipt nor rejection".into()),
    }
}

/// Logs and stores a checked answer (received at `now`), which takes `rec` out of the outbox.
async fn store_answer(
    ctx: &Ctx,
    rec: &SentRecord,
    a: Answer,
    now: i64,
    started: Instant,
) -> Attempt {
    let peer = rec.peer.as_str();
    let entry = AuditEntry {
        time_ms: now,
        kind: a.audit_kind.into(),
        peer: peer.into(),
        message_id: rec.id.clone(),
        envelope_hash: a.answered_hash,
        signature: a.signed.signature.clone(),
        signer: a.signed.signer.clone(),
        signed_body: a.signed.body.clone(),
        call: rec.kind.clone(),
        result: a.result.clone(),
        ..Default::default()
    };
    // Nothing is accepted or logged that the offline verifier would refuse (a key not valid at
    // the answer's own time, another envelope hash, wrong parties, a bad checkpoint): the
    // message stays in the outbox and is tried again.
    if let Err(e) = crate::federation::trust::check_loggable(ctx, &entry) {
        return Attempt::Retry(format!("{} refused by the audit check: {e}", a.audit_kind));
    }
    let ops = vec![
        Op::Answered {
            id: rec.id.clone(),
            state: a.state,
            answer: a.signed.encode_to_vec(),
            at_ms: now,
        },
        Op::Audit(entry),
    ];
    match ctx.store.commit(ops).await {
        Ok(_) => {
            let metric = if a.state == SentState::Delivered {
                Counter::Delivered
            } else {
                Counter::RejectedByPeer
            };
            ctx.metrics.inc(metric, peer, &rec.kind);
            ctx.metrics.observe_latency(started.elapsed().as_secs_f64());
            Attempt::Done
        }
        Err(e) => Attempt::Retry(format!("cannot store the answer: {e}")),
    }
}

/// Verifies a signed answer from `peer` and decodes it.
fn check_answer<M: Message + Default>(
    ctx: &Ctx,
    peer: &str,
    signed: &pb::Signed,
    tag: Tag,
) -> Result<M, String> {
    let p = ctx.peers.get(peer).ok_or("peer is no longer pinned")?;
    let key = p
        .card
        .key_valid_at(&signed.signer, ctx.clock.now_ms())
        .ok_or("signed by a key that is not the peer's current one")?;
    signing::verify_remembered(&ctx.verified, &key, tag, &signed.body, &signed.signature)
        .map_err(|e| e.to_string())?;
    M::decode(signed.body.as_slice()).map_err(|e| e.to_string())
}
