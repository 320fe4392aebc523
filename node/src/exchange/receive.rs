//! The receive path: accepts connections from pinned peers, reads one request per stream,
//! checks it, stores it durably, and answers with a signed receipt or a signed rejection.
//!
//! Checks, in order: frame size; decoding; protocol version; envelope sender = the node
//! behind the TLS certificate; recipient = this node; the message is not created later than
//! now + `limits.max_clock_skew_secs`; the signing key belongs to the sender's key history,
//! was valid when the message was created and had not ended before now − the skew;
//! `verify_strict`; the payload's own rules ([`crate::referral::lifecycle::check_incoming`]). Only then
//! is anything stored, and the receipt leaves only after the store has flushed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tracing::Instrument;
use trm_proto::card::VerifiedCard;
use trm_proto::pb::{self, body::Payload, peer_request, peer_response, RejectReason};
use trm_proto::signing::{self, Tag};

use crate::base::metrics::Counter;
use crate::base::vocab::Refusal;
use crate::net::admission::{refused_handshake, Admit, Gate, RefusalLog};
use crate::net::penalty::HandshakeEnd;
use crate::net::tls::Pin;
use crate::net::transport::{self, FrameIoError};
pub use crate::state::budgets::{Limit, RecvState, ERASURES_BURST, LOGGED_REJECTIONS_BURST};
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op, Outcome, ReceivedRecord};
use trm_proto::audit::AuditKind;

/// Accepts peer connections until shutdown.
///
/// Handshakes and established connections are admitted by [`crate::net::admission::Gate`]: an
/// unvalidated address beyond a few handshakes in progress must answer a QUIC Retry first,
/// each handshake must finish within `limits.handshake_timeout_secs`, and established
/// connections are capped in all and per peer.
pub async fn serve(ctx: Arc<Ctx>, endpoint: quinn::Endpoint) {
    let gate = Gate::new(&ctx.cfg.limits);
    let refusals = Arc::new(RefusalLog::default());
    let handshake_timeout = Duration::from_secs(ctx.cfg.limits.handshake_timeout_secs);
    let mut shutdown = ctx.shutdown.clone();
    let mut pins_changed = ctx.peers.pins().watch();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        if pins_changed.has_changed().unwrap_or(false) {
            pins_changed.mark_unchanged();
            gate.forget_failures();
        }
        let remote = incoming.remote_address();
        let validated = incoming.remote_address_validated();
        let slot = match gate.admit(remote.ip(), validated, incoming.may_retry(), Instant::now()) {
            Admit::Accept(slot) => slot,
            Admit::Retry => {
                ctx.metrics.inc(Counter::HandshakesRetried, "", "");
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                continue;
            }
            Admit::Refuse(why) => {
                gate.count_refusal(&ctx.metrics, remote, why, Instant::now());
                if why.silent() {
                    incoming.ignore();
                } else {
                    incoming.refuse();
                }
                continue;
            }
        };
        let (ctx, gate, refusals) = (ctx.clone(), gate.clone(), refusals.clone());
        conns.spawn(async move {
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    refused_handshake(&ctx.metrics, &refusals, &gate, remote, validated, &e);
                    return;
                }
            };
            // Dropping `connecting` on timeout closes the half-open connection.
            let conn = match tokio::time::timeout(handshake_timeout, connecting).await {
                Ok(Ok(conn)) => {
                    gate.ended(remote.ip(), Instant::now(), HandshakeEnd::Authenticated);
                    conn
                }
                Ok(Err(e)) => {
                    refused_handshake(&ctx.metrics, &refusals, &gate, remote, validated, &e);
                    return;
                }
                Err(_) => {
                    ctx.metrics.inc(Counter::HandshakesFailed, "", "timeout");
                    tracing::debug!(remote = %remote, "handshake timed out");
                    return;
                }
            };
            drop(slot);
            handle_connection(ctx, gate, conn).await;
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

/// Why a live connection is closed by the receiver (QUIC application close codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseWhy {
    /// The certificate is not (or no longer) pinned to a valid card.
    NotPinned,
    /// The peer was revoked or removed, or its certificate now pins another peer.
    PinChanged,
    /// The listener's connection limits.
    Busy,
}

impl CloseWhy {
    fn close(self, conn: &quinn::Connection) {
        let (code, reason): (u32, &[u8]) = match self {
            Self::NotPinned => (1, b"not pinned"),
            Self::PinChanged => (2, b"pin changed"),
            Self::Busy => (4, b"busy"),
        };
        conn.close(code.into(), reason);
    }
}

/// The connection's certificate, re-checked now: still pinned to `peer`, valid, not revoked.
fn still_pinned(ctx: &Ctx, conn: &quinn::Connection, peer: &str) -> Option<Pin> {
    crate::net::tls::peer_fingerprint(conn, ctx.peers.pins())
        .filter(|p| p.who == peer)
        .filter(|_| ctx.peers.get(peer).is_some_and(|p| !p.revoked))
}

async fn handle_connection(ctx: Arc<Ctx>, gate: Arc<Gate>, conn: quinn::Connection) {
    let Some(pin) = crate::net::tls::peer_fingerprint(&conn, ctx.peers.pins()) else {
        CloseWhy::NotPinned.close(&conn);
        return;
    };
    let peer = pin.who.clone();
    let _slot = match gate.establish(&peer) {
        Ok(s) => s,
        Err(why) => {
            ctx.metrics
                .inc(Counter::ConnectionsLimited, &peer, why.label());
            tracing::debug!(peer = %peer, limit = why.label(), "connection refused by a limit");
            CloseWhy::Busy.close(&conn);
            return;
        }
    };
    let span = tracing::info_span!("peer", peer = %peer, remote = %conn.remote_address());
    async move {
        tracing::debug!("connection accepted");
        let mut shutdown = ctx.shutdown.clone();
        let mut trust = ctx.trust.watch();
        let mut pins = ctx.peers.pins().watch();
        let mut streams = tokio::task::JoinSet::new();
        let mut pin = pin;
        loop {
            // The card's validity ends: the connection ends with it.
            let left = u64::try_from(pin.not_after_ms.saturating_sub(crate::base::time::now_ms()))
                .unwrap_or(0)
                .saturating_add(1)
                .min(86_400_000);
            let expiry = tokio::time::sleep(Duration::from_millis(left));
            let (send, recv) = tokio::select! {
                s = conn.accept_bi() => match s {
                    Ok(s) => s,
                    Err(e) => { tracing::debug!(error = %e, "connection ended"); break; }
                },
                _ = shutdown.changed() => break,
                // Revoked, removed, re-pinned or expired while connected: cut off within
                // moments, not at its next stream.
                _ = trust.changed() => {
                    match still_pinned(&ctx, &conn, &peer) {
                        Some(p) => { pin = p; continue; }
                        None => { CloseWhy::PinChanged.close(&conn); break; }
                    }
                }
                _ = pins.changed() => {
                    match still_pinned(&ctx, &conn, &peer) {
                        Some(p) => { pin = p; continue; }
                        None => { CloseWhy::PinChanged.close(&conn); break; }
                    }
                }
                _ = expiry => {
                    match still_pinned(&ctx, &conn, &peer) {
                        Some(p) => { pin = p; continue; }
                        None => { CloseWhy::NotPinned.close(&conn); break; }
                    }
                }
            };
            // Every stream re-checks the pin: same certificate, same country, valid now, not
            // revoked.
            match still_pinned(&ctx, &conn, &peer) {
                Some(p) => pin = p,
                None => {
                    CloseWhy::PinChanged.close(&conn);
                    break;
                }
            }
            let ctx = ctx.clone();
            let peer = peer.clone();
            streams.spawn(
                async move { handle_stream(&ctx, &peer, send, recv).await }.in_current_span(),
            );
            while streams.try_join_next().is_some() {}
        }
        streams.abort_all();
    }
    .instrument(span)
    .await;
}

async fn handle_stream(
    ctx: &Arc<Ctx>,
    peer: &str,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let cap = ctx.cfg.limits.max_frame_bytes;
    let timeout = Duration::from_secs(ctx.cfg.limits.stream_timeout_secs);
    let response = match transport::read_frame(&mut recv, cap, timeout).await {
        Ok(bytes) => handle_request(ctx, peer, &bytes).await,
        Err(FrameIoError::Frame(e)) => {
            let _ = recv.stop(1u32.into());
            let (reason, detail) = match e {
                trm_proto::frame::FrameError::TooLarge { .. } => {
                    (RejectReason::TooLarge, e.to_string())
                }
                _ => (RejectReason::Malformed, e.to_string()),
            };
            Some(reject(ctx, peer, None, reason, &detail, vec![]).await)
        }
        Err(e) => {
            tracing::debug!(error = %e, "stream dropped");
            let _ = recv.stop(1u32.into());
            None
        }
    };
    if let Some(resp) = response {
        if let Err(e) = transport::write_message(&mut send, &resp).await {
            tracing::debug!(error = %e, "could not answer");
        }
    }
}

async fn handle_request(ctx: &Arc<Ctx>, peer: &str, bytes: &[u8]) -> Option<pb::PeerResponse> {
    let req = match pb::PeerRequest::decode(bytes) {
        Ok(r) => r,
        Err(_) => {
            return Some(
                reject(
                    ctx,
                    peer,
                    None,
                    RejectReason::Malformed,
                    "not a PeerRequest",
                    vec![],
                )
                .await,
            )
        }
    };
    match req.kind {
        Some(peer_request::Kind::Transmission(t)) => Some(receive(ctx, peer, t).await),
        Some(peer_request::Kind::Consistency(r)) => {
            Some(match crate::audit::consistency(ctx, &r) {
                Ok(proof) => pb::PeerResponse {
                    kind: Some(peer_response::Kind::Consistency(proof)),
                },
                // Refused without logging: a peer cannot grow the log with absurd requests.
                Err(crate::audit::ConsistencyRefusal::NoSuchCheckpoint(why)) => {
                    reject_unlogged(ctx, peer, None, RejectReason::Malformed, &why)
                }
                // A store we cannot read now is no evidence against our log: the asking
                // peer retries instead of holding us.
                Err(crate::audit::ConsistencyRefusal::Unavailable(why)) => {
                    tracing::error!(error = %why, "cannot answer a consistency request");
                    reject_unlogged(ctx, peer, None, RejectReason::Unavailable, &why)
                }
            })
        }
        None => Some(
            reject(
                ctx,
                peer,
                None,
                RejectReason::Malformed,
                "empty request",
                vec![],
            )
            .await,
        ),
    }
}

/// Context of a message under check, for rejections.
struct Seen<'a> {
    id: &'a [u8],
    hash: [u8; 32],
}

/// How often a job is re-checked when its thread changed between its check and its commit.
const CONFLICT_RETRIES: usize = 4;

async fn receive(ctx: &Arc<Ctx>, peer: &str, t: pb::Transmission) -> pb::PeerResponse {
    let Some(env) = t.envelope.as_ref() else {
        return reject(
            ctx,
            peer,
            None,
            RejectReason::Malformed,
            "no envelope",
            vec![],
        )
        .await;
    };
    let hash = signing::envelope_hash(&env.body, &env.signature);
    let body = match pb::Body::decode(env.body.as_slice()) {
        Ok(b) => b,
        Err(_) => {
            let seen = Seen { id: &[], hash };
            return reject(
                ctx,
                peer,
                Some(seen),
                RejectReason::Malformed,
                "body does not decode",
                vec![],
            )
            .await;
        }
    };
    let seen = || Seen {
        id: &body.message_id,
        hash,
    };
    // Fail closed: nothing is accepted unlogged, nor from a peer whose log is held.
    if let Some(why) = crate::federation::trust::refuse_incoming(ctx, peer) {
        return reject_unlogged(ctx, peer, Some(seen()), RejectReason::Unavailable, &why);
    }
    for _ in 0..CONFLICT_RETRIES {
        match receive_once(ctx, peer, &t, env, &body, hash).await {
            Attempt::Answer(resp) => return resp,
            Attempt::Refused(r) => {
                return reject(ctx, peer, Some(seen()), r.reason, &r.detail, r.fields).await
            }
            Attempt::Conflict => continue,
        }
    }
    reject_unlogged(
        ctx,
        peer,
        Some(seen()),
        RejectReason::Unavailable,
        "the case changed while this message was checked; try again",
    )
}

enum Attempt {
    Answer(pb::PeerResponse),
    Refused(Refusal),
    /// The thread changed between the check and the commit: check again.
    Conflict,
}

async fn receive_once(
    ctx: &Arc<Ctx>,
    peer: &str,
    t: &pb::Transmission,
    env: &pb::Envelope,
    body: &pb::Body,
    hash: [u8; 32],
) -> Attempt {
    // A duplicate gets the first receipt again, unchanged.
    match ctx.store.received(peer, &body.message_id) {
        Ok(Some(old)) => {
            return Attempt::Answer(duplicate(ctx, peer, body, &old.envelope, old.receipt, hash))
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            return Attempt::Refused(Refusal::new(RejectReason::Unavailable, "store unavailable"));
        }
    }
    let checked = match check(ctx, peer, env, body, t) {
        Ok(c) => c,
        Err(r) => return refused_unless_stored_meanwhile(ctx, peer, body, hash, r),
    };
    let erasure = matches!(body.payload, Some(Payload::ErasureRequest(_)));
    if erasure && !ctx.recv.allow(peer, Limit::Erasure) {
        return Attempt::Answer(reject_unlogged(
            ctx,
            peer,
            Some(Seen {
                id: &body.message_id,
                hash,
            }),
            RejectReason::Unavailable,
            "too many erasure requests from this peer; try again later",
        ));
    }
    let m = Incoming {
        peer,
        env,
        body,
        hash,
    };
    store_and_receipt(ctx, m, &t.disclosures, checked, erasure).await
}

/// A message that passed its checks.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    peer: &'a str,
    env: &'a pb::Envelope,
    body: &'a pb::Body,
    hash: [u8; 32],
}

/// Stores a checked message with its sealed `disclosures`, its audit entries and the writes
/// its checks asked for, in one commit; then answers with the receipt.
async fn store_and_receipt(
    ctx: &Arc<Ctx>,
    m: Incoming<'_>,
    disclosures: &[pb::FieldDisclosure],
    checked: crate::referral::lifecycle::Checked,
    erasure: bool,
) -> Attempt {
    let Incoming {
        peer,
        env,
        body,
        hash,
    } = m;
    let now = ctx.clock.now_ms();
    let kind = crate::referral::messages::kind_name(body);
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let scope = crate::store::casedata::received_scope(peer, &body.case_ref);
    let sealed = match crate::store::casedata::seal(
        &ctx.vault,
        &mut ku,
        &scope,
        &crate::store::casedata::received_record(peer, &body.message_id),
        disclosures,
        |p| checked.template.category_of(p),
        &mut ops,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot seal received values");
            return Attempt::Answer(store_unavailable(ctx, m));
        }
    };
    let receipt = sign_receipt(
        ctx,
        peer,
        &body.message_id,
        hash,
        now,
        pb::ReceiptOutcome::Stored,
    );
    let envelope_bytes = env.encode_to_vec();
    let rotated = ctx.peers.get(peer).and_then(|p| {
        crate::federation::rotation::announced_card(&p, env, body)
            .ok()
            .flatten()
    });
    // The `Receive` op comes first: a duplicate found in the committer skips the whole job.
    let record = received_record(peer, kind, body, &envelope_bytes, sealed, &receipt, now);
    ops.push(Op::Receive(record));
    ops.extend(receive_audits(peer, kind, env, body, hash, &receipt, now));
    if let Some(card) = &rotated {
        ops.extend(crate::federation::rotation::pin_ops(ctx, card));
    }
    ops.extend(checked.writes);
    if erasure {
        // Durable with the message: carried out (and confirmed) even after a crash.
        ops.push(Op::PutMeta(
            crate::referral::lifecycle::pending_erasure_key(peer, &body.message_id),
            env.body.clone(),
        ));
    }
    let committed = ctx.store.commit(ops).await;
    drop(ku);
    let stored = Stored {
        kind,
        erasure,
        rotated,
        receipt,
        envelope_bytes,
    };
    match committed {
        Ok(outcomes) => after_commit(ctx, m, stored, &outcomes),
        Err(e) => {
            tracing::error!(error = %e, "could not store a received message; refusing it for now");
            Attempt::Answer(store_unavailable(ctx, m))
        }
    }
}

/// The unlogged "store unavailable" rejection of `m`.
fn store_unavailable(ctx: &Ctx, m: Incoming<'_>) -> pb::PeerResponse {
    reject_unlogged(
        ctx,
        m.peer,
        Some(Seen {
            id: &m.body.message_id,
            hash: m.hash,
        }),
        RejectReason::Unavailable,
        "store unavailable",
    )
}

/// A refused check, unless a copy of this message was stored between the duplicate check
/// and the thread check (then the thread check refuses it): then it is a duplicate.
fn refused_unless_stored_meanwhile(
    ctx: &Ctx,
    peer: &str,
    body: &pb::Body,
    hash: [u8; 32],
    refusal: Refusal,
) -> Attempt {
    if let Ok(Some(old)) = ctx.store.received(peer, &body.message_id) {
        return Attempt::Answer(duplicate(ctx, peer, body, &old.envelope, old.receipt, hash));
    }
    Attempt::Refused(refusal)
}

/// The stored form of a received message.
fn received_record(
    peer: &str,
    kind: &str,
    body: &pb::Body,
    envelope_bytes: &[u8],
    sealed: Vec<crate::store::SealedGroup>,
    receipt: &pb::Signed,
    now: i64,
) -> ReceivedRecord {
    ReceivedRecord {
        id: body.message_id.clone(),
        peer: peer.to_string(),
        kind: kind.to_string(),
        envelope: envelope_bytes.to_vec(),
        disclosures: sealed,
        receipt: receipt.encode_to_vec(),
        received_ms: now,
        case_ref: body.case_ref.clone(),
        erased: vec![],
    }
}

/// The audit entries of a stored message: `received`, then `receipt_sent`.
fn receive_audits(
    peer: &str,
    kind: &str,
    env: &pb::Envelope,
    body: &pb::Body,
    hash: [u8; 32],
    receipt: &pb::Signed,
    now: i64,
) -> [Op; 2] {
    [
        Op::Audit(AuditEntry {
            time_ms: now,
            kind: AuditKind::Received.into(),
            peer: peer.into(),
            message_id: body.message_id.clone(),
            envelope_hash: hash.to_vec(),
            signature: env.signature.clone(),
            signer: env.signer.clone(),
            call: kind.into(),
            target: body.case_ref.clone(),
            result: "stored".into(),
            signed_body: env.body.clone(),
            ..Default::default()
        }),
        Op::Audit(AuditEntry {
            time_ms: now,
            kind: AuditKind::ReceiptSent.into(),
            peer: peer.into(),
            message_id: body.message_id.clone(),
            envelope_hash: hash.to_vec(),
            signature: receipt.signature.clone(),
            signer: receipt.signer.clone(),
            signed_body: receipt.body.clone(),
            result: "stored".into(),
            ..Default::default()
        }),
    ]
}

/// A received message handed to the store, for what follows its commit.
struct Stored {
    kind: &'static str,
    erasure: bool,
    rotated: Option<VerifiedCard>,
    receipt: pb::Signed,
    envelope_bytes: Vec<u8>,
}

/// Answers a committed message: the first receipt for a duplicate, a retry on a conflict,
/// otherwise pins an announced card, starts an erasure and sends the receipt.
fn after_commit(ctx: &Arc<Ctx>, m: Incoming<'_>, s: Stored, outcomes: &[Outcome]) -> Attempt {
    if let Some(Outcome::Duplicate(first)) =
        outcomes.iter().find(|o| matches!(o, Outcome::Duplicate(_)))
    {
        return Attempt::Answer(duplicate(
            ctx,
            m.peer,
            m.body,
            &s.envelope_bytes,
            first.clone(),
            m.hash,
        ));
    }
    if outcomes.iter().any(|o| matches!(o, Outcome::Conflict)) {
        return Attempt::Conflict;
    }
    if let Some(card) = s.rotated {
        crate::federation::rotation::pin(ctx, card);
    }
    ctx.metrics.inc(Counter::Received, m.peer, s.kind);
    if s.erasure {
        tokio::spawn(crate::referral::lifecycle::carry_out_erasure(
            ctx.clone(),
            m.peer.to_string(),
            m.body.clone(),
        ));
    }
    tracing::info!(kind = s.kind, message = %hex::encode(&m.body.message_id), "stored and receipted");
    Attempt::Answer(pb::PeerResponse {
        kind: Some(peer_response::Kind::Receipt(s.receipt)),
    })
}

fn duplicate(
    ctx: &Ctx,
    peer: &str,
    body: &pb::Body,
    first_envelope: &[u8],
    first_receipt: Vec<u8>,
    hash: [u8; 32],
) -> pb::PeerResponse {
    let first = pb::Envelope::decode(first_envelope).ok();
    let same = first
        .as_ref()
        .is_some_and(|e| signing::envelope_hash(&e.body, &e.signature) == hash);
    // The same message signed again (its sender re-signs a queued message whose key was
    // retired, not knowing that the first signing arrived): the first receipt answers it, and
    // names the first envelope, which is what was stored.
    let re_signed = !same
        && first
            .as_ref()
            .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
            .is_some_and(|b| same_but_time(&b, body));
    if !same && !re_signed {
        return reject_unlogged(
            ctx,
            peer,
            Some(Seen {
                id: &body.message_id,
                hash,
            }),
            RejectReason::Malformed,
            "message id already used for another envelope",
        );
    }
    ctx.metrics.inc(
        Counter::Duplicate,
        peer,
        crate::referral::messages::kind_name(body),
    );
    match pb::Signed::decode(first_receipt.as_slice()) {
        Ok(r) => pb::PeerResponse {
            kind: Some(peer_response::Kind::Receipt(r)),
        },
        Err(_) => reject_unlogged(
            ctx,
            peer,
            None,
            RejectReason::Unavailable,
            "stored receipt unreadable",
        ),
    }
}

/// True if `a` and `b` are the same message but for `created_ms` (a re-signing).
fn same_but_time(a: &pb::Body, b: &pb::Body) -> bool {
    let mut a = a.clone();
    a.created_ms = b.created_ms;
    &a == b
}

/// Checks an envelope and its payload (PROTOCOL.md §6, steps 6 to 11); returns the template
/// that gives the disclosed fields their categories. Reads the store, never writes it. Public
/// so that the fuzz target `receive_check` runs exactly this code.
pub fn check(
    ctx: &Ctx,
    peer: &str,
    env: &pb::Envelope,
    body: &pb::Body,
    t: &pb::Transmission,
) -> Result<crate::referral::lifecycle::Checked, Refusal> {
    check_addressing(body, peer, ctx.country())?;
    let p = ctx
        .peers
        .get(peer)
        .ok_or_else(|| Refusal::new(RejectReason::Revoked, "peer is not pinned"))?;
    if p.revoked {
        return Err(Refusal::new(RejectReason::Revoked, "peer is revoked"));
    }
    let key = fresh_signing_key(
        &p.card,
        env,
        body,
        ctx.clock.now_ms(),
        ctx.cfg.limits.max_clock_skew_ms(),
    )?;
    signing::verify(&key, Tag::Envelope, &env.body, &env.signature)
        .map_err(|e| Refusal::new(RejectReason::BadSignature, e.to_string()))?;
    crate::referral::lifecycle::check_header(ctx, body, t)?;
    if let Some(next) = crate::federation::rotation::announced_card(&p, env, body)? {
        if let Some(why) = ctx
            .peers
            .conflict(&next, &ctx.keys.tls_cert, &ctx.keys.history)
        {
            return Err(Refusal::new(
                RejectReason::KeyNotValid,
                format!("announced card: {why}"),
            ));
        }
        return Ok(crate::referral::lifecycle::Checked {
            template: ctx.template.clone(),
            writes: vec![],
        });
    }
    crate::referral::lifecycle::check_incoming(ctx, peer, body, t)
}

/// The body's version, sender (`peer`, the node behind the connection), recipient (`me`)
/// and message id length.
fn check_addressing(body: &pb::Body, peer: &str, me: &str) -> Result<(), Refusal> {
    if body.version != trm_proto::PROTOCOL_VERSION {
        return Err(Refusal::new(
            RejectReason::UnsupportedVersion,
            format!("protocol version {} is not supported", body.version),
        ));
    }
    if body.sender != peer {
        return Err(Refusal::new(
            RejectReason::SenderMismatch,
            "envelope sender is not the node behind this connection",
        ));
    }
    if body.recipient != me {
        return Err(Refusal::new(
            RejectReason::WrongRecipient,
            "recipient is not this node",
        ));
    }
    if body.message_id.len() != 16 {
        return Err(Refusal::new(
            RejectReason::Malformed,
            "message id must be 16 bytes",
        ));
    }
    Ok(())
}

/// The sender's key that signed `env`, if the message is fresh at the receiver's clock.
///
/// A message may not claim to be made later than `now` plus the allowed `skew`, and its key
/// must not have ended before `now` minus the skew (a retired or stolen key cannot sign today
/// with a backdated time).
fn fresh_signing_key(
    card: &VerifiedCard,
    env: &pb::Envelope,
    body: &pb::Body,
    now: i64,
    skew: i64,
) -> Result<ed25519_dalek::VerifyingKey, Refusal> {
    if body.created_ms > now.saturating_add(skew) {
        return Err(Refusal::new(
            RejectReason::Malformed,
            format!(
                "message created {} s in the future (allowed clock skew {} s)",
                body.created_ms.saturating_sub(now) / 1000,
                skew / 1000
            ),
        ));
    }
    let key = card
        .key_valid_at(&env.signer, body.created_ms)
        .ok_or_else(|| {
            Refusal::new(
                RejectReason::KeyNotValid,
                "signing key is not the sender's or was not valid at the message's time",
            )
        })?;
    if !trm_proto::card::key_open_at(
        &card.card.key_history,
        &env.signer,
        now.saturating_sub(skew),
    ) {
        return Err(Refusal::new(
            RejectReason::KeyNotValid,
            "signing key was retired before this message arrived",
        ));
    }
    Ok(key)
}

fn sign_receipt(
    ctx: &Ctx,
    peer: &str,
    id: &[u8],
    hash: [u8; 32],
    now: i64,
    outcome: pb::ReceiptOutcome,
) -> pb::Signed {
    let receipt = pb::Receipt {
        message_id: id.to_vec(),
        envelope_hash: hash.to_vec(),
        receiver: ctx.country().to_string(),
        sender: peer.to_string(),
        received_ms: now,
        outcome: outcome as i32,
        checkpoint: ctx.audit.latest(),
    };
    sign(ctx, Tag::Receipt, receipt.encode_to_vec())
}

fn sign(ctx: &Ctx, tag: Tag, body: Vec<u8>) -> pb::Signed {
    let signature = signing::sign(&ctx.keys.signing, tag, &body).to_vec();
    pb::Signed {
        body,
        signature,
        signer: ctx.keys.public_key().to_vec(),
    }
}

fn rejection(
    ctx: &Ctx,
    peer: &str,
    seen: Option<Seen<'_>>,
    reason: RejectReason,
    detail: &str,
    fields: Vec<String>,
) -> pb::Signed {
    let (detail, fields) = bounded(detail, fields);
    let r = pb::Rejection {
        message_id: seen.as_ref().map(|s| logged_id(s.id)).unwrap_or_default(),
        envelope_hash: seen.as_ref().map(|s| s.hash.to_vec()).unwrap_or_default(),
        rejecter: ctx.country().to_string(),
        sender: peer.to_string(),
        rejected_ms: ctx.clock.now_ms(),
        reason: reason as i32,
        detail,
        fields,
    };
    sign(ctx, Tag::Rejection, r.encode_to_vec())
}

fn reject_unlogged(
    ctx: &Ctx,
    peer: &str,
    seen: Option<Seen<'_>>,
    reason: RejectReason,
    detail: &str,
) -> pb::PeerResponse {
    ctx.metrics
        .inc(Counter::Rejected, peer, reason.as_str_name());
    pb::PeerResponse {
        kind: Some(peer_response::Kind::Rejection(rejection(
            ctx,
            peer,
            seen,
            reason,
            detail,
            vec![],
        ))),
    }
}

/// Signs a rejection, logs it in the audit log, and returns it. Nothing else is stored.
async fn reject(
    ctx: &Ctx,
    peer: &str,
    seen: Option<Seen<'_>>,
    reason: RejectReason,
    detail: &str,
    fields: Vec<String>,
) -> pb::PeerResponse {
    // A peer cannot fill the permanent log: past its budget, rejections are still signed and
    // sent, but only counted.
    if !ctx.recv.allow(peer, Limit::LoggedRejection) {
        ctx.metrics
            .inc(Counter::RejectedUnlogged, peer, reason.as_str_name());
        return reject_unlogged(ctx, peer, seen, reason, detail);
    }
    let id = seen.as_ref().map(|s| logged_id(s.id)).unwrap_or_default();
    let hash = seen.as_ref().map(|s| s.hash.to_vec()).unwrap_or_default();
    let signed = rejection(ctx, peer, seen, reason, detail, fields);
    tracing::warn!(
        reason = reason.as_str_name(),
        detail = truncate(detail, MAX_DETAIL),
        "message rejected"
    );
    ctx.metrics
        .inc(Counter::Rejected, peer, reason.as_str_name());
    let entry = AuditEntry {
        time_ms: ctx.clock.now_ms(),
        kind: AuditKind::RejectionSent.into(),
        peer: peer.into(),
        message_id: id,
        envelope_hash: hash,
        signature: signed.signature.clone(),
        signer: signed.signer.clone(),
        signed_body: signed.body.clone(),
        result: reason.as_str_name().into(),
        ..Default::default()
    };
    if let Err(e) = ctx.store.commit(vec![Op::Audit(entry)]).await {
        tracing::error!(error = %e, "could not log a rejection");
    }
    pb::PeerResponse {
        kind: Some(peer_response::Kind::Rejection(signed)),
    }
}

/// Longest rejection detail, field path, and most field paths, signed and logged.
const MAX_DETAIL: usize = 200;
const MAX_FIELD: usize = 128;
const MAX_FIELDS: usize = 16;

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A message id as signed into a rejection and logged: only a well-formed (16-byte) one.
fn logged_id(id: &[u8]) -> Vec<u8> {
    if id.len() == 16 {
        id.to_vec()
    } else {
        vec![]
    }
}

/// Every peer-influenced text of a rejection, bounded.
fn bounded(detail: &str, mut fields: Vec<String>) -> (String, Vec<String>) {
    fields.truncate(MAX_FIELDS);
    for f in &mut fields {
        let n = truncate(f, MAX_FIELD).len();
        f.truncate(n);
    }
    (truncate(detail, MAX_DETAIL).to_string(), fields)
}
