//! The case lifecycle between two countries: one *thread* per (other country, case
//! reference), moved by the messages either side sends.
//!
//! ```text
//!   Referral ──▶ pending ──Acceptance──▶ accepted ──FollowUp*/InformationRequest*──▶ ...
//!                   │                        │
//!                   └──Decline──▶ declined   └──Closure──▶ closed
//! ```
//!
//! The same [`transition`] validates a message and computes the new thread state whether the
//! message is being sent by an officer or received from a peer, so both nodes agree on what is
//! in order. A received message that is out of order, or about a case this node does not know,
//! is rejected with a reason code and nothing is stored.

use std::sync::Arc;

use prost::Message;
use trm_proto::pb::{self, body::Payload, RejectReason};
use trm_proto::template::Template;

use crate::base::vocab::Refusal;
use crate::state::ctx::Ctx;
use crate::store::{Op, ThreadRecord};

/// Which way a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node sends it.
    Outgoing,
    /// This node receives it.
    Incoming,
}

fn refuse(reason: RejectReason, detail: impl Into<String>) -> Refusal {
    Refusal::new(reason, detail)
}

/// The TRM phase's name.
pub fn phase_name(p: i32) -> &'static str {
    match pb::Phase::try_from(p).unwrap_or(pb::Phase::Unspecified) {
        pb::Phase::Identification => "identification",
        pb::Phase::FirstAssistance => "first assistance and protection",
        pb::Phase::LongTermAssistance => "long-term assistance and social inclusion",
        pb::Phase::ReturnAndInclusion => "return and social inclusion",
        pb::Phase::ProceedingsPhase => "criminal and civil proceedings",
        pb::Phase::Unspecified => "unspecified",
    }
}

/// Parses a phase as officers type it.
pub fn parse_phase(s: &str) -> Option<pb::Phase> {
    Some(match s {
        "identification" => pb::Phase::Identification,
        "first_assistance" | "first-assistance" => pb::Phase::FirstAssistance,
        "long_term_assistance" | "long-term-assistance" => pb::Phase::LongTermAssistance,
        "return" | "return_and_inclusion" => pb::Phase::ReturnAndInclusion,
        "proceedings" => pb::Phase::ProceedingsPhase,
        _ => return None,
    })
}

/// Parses a closure outcome.
pub fn parse_outcome(s: &str) -> Option<pb::ClosureOutcome> {
    Some(match s {
        "returned_reintegrating" => pb::ClosureOutcome::ReturnedReintegrating,
        "staying_in_destination" => pb::ClosureOutcome::StayingInDestination,
        "transferred" => pb::ClosureOutcome::Transferred,
        "contact_lost" => pb::ClosureOutcome::ContactLost,
        "other" => pb::ClosureOutcome::Other,
        _ => return None,
    })
}

/// Validates `body` against the thread it belongs to and returns the thread after it, or
/// `None` when the message does not change a thread.
pub fn transition(
    thread: Option<&ThreadRecord>,
    dir: Direction,
    peer: &str,
    body: &pb::Body,
    now_ms: i64,
) -> Result<Option<ThreadRecord>, Refusal> {
    let payload = body
        .payload
        .as_ref()
        .ok_or_else(|| refuse(RejectReason::Malformed, "message has no payload"))?;
    if matches!(
        payload,
        Payload::DirectoryUpdate(_) | Payload::KeyAnnouncement(_)
    ) {
        return Ok(None);
    }
    if body.case_ref.is_empty() {
        return Err(refuse(
            RejectReason::Malformed,
            "message without case reference",
        ));
    }
    // The role the thread has on this node when this side sends the referral.
    let (own_role, other_role) = match dir {
        Direction::Outgoing => ("sent", "received"),
        Direction::Incoming => ("received", "sent"),
    };
    if let Payload::Referral(r) = payload {
        if let Some(t) = thread {
            if t.state == "pending" || t.state == "accepted" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    "a referral of this case between these countries is already open",
                ));
            }
        }
        return Ok(Some(ThreadRecord {
            peer: peer.to_string(),
            case_ref: body.case_ref.clone(),
            role: own_role.to_string(),
            referral_id: body.message_id.clone(),
            state: "pending".into(),
            response_due_ms: r.response_due_ms,
            updated_ms: now_ms,
            phase: phase_name(r.phase).into(),
            extensions: r.extensions.clone(),
            ..Default::default()
        }));
    }
    let t = thread.ok_or_else(|| {
        refuse(
            RejectReason::UnknownCase,
            "no referral of this case between these countries",
        )
    })?;
    let mut next = t.clone();
    next.updated_ms = now_ms;
    let answers_referral = |t: &ThreadRecord| -> Result<(), Refusal> {
        if t.role != other_role {
            return Err(refuse(
                RejectReason::OutOfOrder,
                "only the country that received the referral can answer it",
            ));
        }
        if t.state != "pending" {
            return Err(refuse(
                RejectReason::OutOfOrder,
                format!("the referral is already {}", t.state),
            ));
        }
        if body.in_reply_to != t.referral_id {
            return Err(refuse(
                RejectReason::OutOfOrder,
                "does not answer the open referral",
            ));
        }
        Ok(())
    };
    match payload {
        Payload::Acceptance(a) => {
            answers_referral(t)?;
            next.state = "accepted".into();
            next.responsible_institution = a.responsible_institution.clone();
            next.focal_point = a.focal_point.clone();
        }
        Payload::Decline(_) if body.in_reply_to != t.referral_id => {
            // Declining an information request: the caller checks that `in_reply_to` names
            // one; the referral itself is unchanged.
            if t.state != "pending" && t.state != "accepted" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    format!("the referral is {}", t.state),
                ));
            }
            return Ok(None);
        }
        Payload::Decline(d) => {
            answers_referral(t)?;
            next.state = "declined".into();
            next.note = d.reason.clone();
        }
        Payload::FollowUp(f) => {
            if t.state != "accepted" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    format!("a follow-up needs an accepted referral (it is {})", t.state),
                ));
            }
            if f.phase == pb::Phase::Unspecified as i32 || pb::Phase::try_from(f.phase).is_err() {
                return Err(refuse(
                    RejectReason::Malformed,
                    "follow-up without a TRM phase",
                ));
            }
            next.phase = phase_name(f.phase).into();
            for e in &f.extensions {
                if !next.extensions.iter().any(|x| x.path == e.path) {
                    next.extensions.push(e.clone());
                }
            }
        }
        Payload::InformationRequest(_) => {
            if t.state != "pending" && t.state != "accepted" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    format!("the referral is {}", t.state),
                ));
            }
            return Ok(None);
        }
        Payload::Disclosure(d) => {
            // Only the referring country releases more fields of its referral.
            if t.role != own_role {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    "only the referring country releases fields",
                ));
            }
            if d.referral_id != t.referral_id {
                return Err(refuse(RejectReason::OutOfOrder, "not the open referral"));
            }
            if t.state == "declined" || t.state == "closed" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    format!("the referral is {}", t.state),
                ));
            }
            return Ok(None);
        }
        Payload::Closure(c) => {
            if t.state == "closed" {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    "the case is already closed",
                ));
            }
            let outcome = pb::ClosureOutcome::try_from(c.outcome)
                .unwrap_or(pb::ClosureOutcome::ClosureUnspecified);
            if outcome == pb::ClosureOutcome::ClosureUnspecified {
                return Err(refuse(
                    RejectReason::Malformed,
                    "closure without an outcome",
                ));
            }
            next.state = "closed".into();
            next.note = outcome.as_str_name().to_ascii_lowercase();
        }
        Payload::ErasureRequest(_) | Payload::ErasureConfirmation(_) => return Ok(None),
        Payload::Referral(_) | Payload::DirectoryUpdate(_) | Payload::KeyAnnouncement(_) => {
            return Ok(None)
        }
    }
    Ok(Some(next))
}

/// Longest `case_ref` and most information-request fields a peer may send.
const MAX_CASE_REF: usize = 40;
const MAX_REQUESTED_FIELDS: usize = 256;

/// A case reference as the template's `reference.case_ref` rule spells it: 6 to 40
/// characters A-Z, 0-9 and '-'.
pub fn valid_case_ref(r: &str) -> bool {
    (6..=MAX_CASE_REF).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// The header rules of an incoming message, checked after its signature and before anything
/// else reads it: values that are not covered by signed digests are refused, the case
/// reference is well-formed (it names store keys and encryption scopes), requested field
/// paths exist, dates are real.
pub fn check_header(ctx: &Ctx, body: &pb::Body, t: &pb::Transmission) -> Result<(), Refusal> {
    let payload = body
        .payload
        .as_ref()
        .ok_or_else(|| refuse(RejectReason::Malformed, "message has no payload"))?;
    if matches!(
        payload,
        Payload::DirectoryUpdate(_) | Payload::KeyAnnouncement(_)
    ) {
        if !body.case_ref.is_empty() {
            return Err(refuse(
                RejectReason::Malformed,
                "a message about no case must carry an empty case reference",
            ));
        }
        if !t.disclosures.is_empty() {
            return Err(refuse(
                RejectReason::Malformed,
                "this message kind carries no field values",
            ));
        }
        return Ok(());
    }
    if !valid_case_ref(&body.case_ref) {
        return Err(refuse(
            RejectReason::Malformed,
            "case reference: expected 6 to 40 characters A-Z, 0-9 and '-'",
        ));
    }
    match payload {
        Payload::FollowUp(f)
            if !f.date.is_empty() && crate::base::time::parse_date_ms(&f.date).is_none() =>
        {
            return Err(refuse(
                RejectReason::Malformed,
                "follow-up date: expected a real date YYYY-MM-DD",
            ));
        }
        Payload::InformationRequest(r) => {
            if r.fields.len() > MAX_REQUESTED_FIELDS {
                return Err(refuse(
                    RejectReason::Malformed,
                    format!("at most {MAX_REQUESTED_FIELDS} fields may be requested"),
                ));
            }
            if r.fields.iter().any(|f| ctx.template.field(f).is_none()) {
                return Err(refuse(
                    RejectReason::Malformed,
                    "an information request names a field this node does not know",
                ));
            }
            if r.categories.iter().any(
                |c| !matches!(pb::Category::try_from(*c), Ok(x) if x != pb::Category::Unspecified),
            ) {
                return Err(refuse(
                    RejectReason::Malformed,
                    "an information request names an unknown category",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The disclosed `reference.case_ref`, if any, must be the envelope's (checked once the
/// disclosures verified against their digests).
fn check_disclosed_case_ref(body: &pb::Body, t: &pb::Transmission) -> Result<(), Refusal> {
    if let Some(d) = t
        .disclosures
        .iter()
        .find(|d| d.path == "reference.case_ref")
    {
        let same = serde_json::from_slice::<serde_json::Value>(&d.value)
            .ok()
            .is_some_and(|v| v.as_str() == Some(body.case_ref.as_str()));
        if !same {
            return Err(Refusal {
                reason: RejectReason::Malformed,
                detail: "the disclosed case reference differs from the envelope's".into(),
                fields: vec!["reference.case_ref".into()],
            });
        }
    }
    Ok(())
}

/// The payload rules of an incoming message (after its signature was checked); returns the
/// template that gives its disclosed fields their categories.
pub fn check_incoming(
    ctx: &Ctx,
    peer: &str,
    body: &pb::Body,
    t: &pb::Transmission,
) -> Result<Checked, Refusal> {
    let thread = ctx.store.thread(peer, &body.case_ref).map_err(|e| {
        tracing::error!(error = %e, "store read failed");
        refuse(RejectReason::Unavailable, "store unavailable")
    })?;
    let next = transition(
        thread.as_ref(),
        Direction::Incoming,
        peer,
        body,
        ctx.clock.now_ms(),
    )?;
    let template = check_payload(ctx, peer, body, t, thread.as_ref())?;
    check_disclosed_case_ref(body, t)?;
    let mut writes: Vec<Op> = Vec::new();
    if !body.case_ref.is_empty() {
        // Re-checked in the commit's transaction: a concurrent message of the same thread
        // that committed first makes this one be checked again.
        writes.push(Op::ExpectThread {
            peer: peer.to_string(),
            case_ref: body.case_ref.clone(),
            expected: thread.clone(),
        });
    }
    writes.extend(next.into_iter().map(Op::PutThread));
    if let Some(Payload::DirectoryUpdate(u)) = &body.payload {
        if let Some(d) = &u.directory {
            writes.push(Op::PutMeta(
                crate::federation::directory::peer_key(peer),
                d.encode_to_vec(),
            ));
        }
    }
    Ok(Checked { template, writes })
}

/// An incoming message that passed the payload rules.
pub struct Checked {
    /// The template that gives its disclosed fields their categories.
    pub template: Template,
    /// Writes that go with storing it (the thread's new state, a peer's directory).
    pub writes: Vec<Op>,
}

fn check_payload(
    ctx: &Ctx,
    peer: &str,
    body: &pb::Body,
    t: &pb::Transmission,
    thread: Option<&ThreadRecord>,
) -> Result<Template, Refusal> {
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "store read failed");
        refuse(RejectReason::Unavailable, "store unavailable")
    };
    let no_disclosures = || {
        if t.disclosures.is_empty() {
            Ok(ctx.template.clone())
        } else {
            Err(refuse(
                RejectReason::Malformed,
                "this message kind carries no field values",
            ))
        }
    };
    let declared = thread
        .as_ref()
        .map(|t| t.extensions.clone())
        .unwrap_or_default();
    match body.payload.as_ref() {
        Some(Payload::Referral(r)) => {
            let template =
                crate::referral::policy::receiving_template(&ctx.template, &r.extensions)?;
            crate::referral::policy::check_disclosures(
                &ctx.cfg.acceptance_categories(),
                &template,
                &r.digests,
                &t.disclosures,
            )?;
            Ok(template)
        }
        Some(Payload::FollowUp(f)) => {
            let mut exts = declared;
            exts.extend(f.extensions.iter().cloned());
            let template = crate::referral::policy::receiving_template(&ctx.template, &exts)?;
            crate::referral::policy::check_disclosures(
                &ctx.cfg.acceptance_categories(),
                &template,
                &f.digests,
                &t.disclosures,
            )?;
            Ok(template)
        }
        Some(Payload::Disclosure(d)) => {
            let referral = ctx
                .store
                .received(peer, &d.referral_id)
                .map_err(unavailable)?
                .ok_or_else(|| refuse(RejectReason::UnknownCase, "unknown referral"))?;
            let digests = pb::Envelope::decode(referral.envelope.as_slice())
                .ok()
                .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
                .and_then(|b| match b.payload {
                    Some(Payload::Referral(r)) => Some(r.digests),
                    _ => None,
                })
                .ok_or_else(|| refuse(RejectReason::UnknownCase, "unknown referral"))?;
            let template = crate::referral::policy::receiving_template(&ctx.template, &declared)?;
            crate::referral::policy::check_disclosures(
                &ctx.cfg.acceptance_categories(),
                &template,
                &digests,
                &t.disclosures,
            )?;
            Ok(template)
        }
        Some(Payload::Decline(_))
            if thread
                .as_ref()
                .is_some_and(|t| t.referral_id != body.in_reply_to) =>
        {
            let asked = ctx
                .store
                .sent(&body.in_reply_to)
                .map_err(unavailable)?
                .is_some_and(|s| s.peer == peer && s.kind == "information_request");
            if !asked {
                return Err(refuse(
                    RejectReason::OutOfOrder,
                    "declines neither the referral nor an information request",
                ));
            }
            no_disclosures()
        }
        Some(Payload::DirectoryUpdate(u)) => {
            crate::federation::directory::check_update(ctx, peer, u)?;
            no_disclosures()
        }
        Some(Payload::KeyAnnouncement(_)) => Err(refuse(
            RejectReason::Malformed,
            "key announcements are not supported by this node yet",
        )),
        Some(_) => no_disclosures(),
        None => Err(refuse(RejectReason::Malformed, "message has no payload")),
    }
}

/// Meta key prefix of erasure requests received and not yet carried out and confirmed.
pub const PENDING_ERASURE_PREFIX: &str = "erasure/pending/";

/// Meta key of a pending erasure request (its value: the request's signed body).
pub fn pending_erasure_key(peer: &str, id: &[u8]) -> String {
    format!("{PENDING_ERASURE_PREFIX}{peer}/{}", hex::encode(id))
}

/// Carries out a stored erasure request and confirms it. The request was made durable (a
/// pending-erasure meta key) in the same transaction as the message; the key is removed in
/// the same transaction that enqueues the confirmation, so a crash at any point leaves it for
/// [`resume_erasures`] at the next start. Erasing again is harmless (nothing is left of those
/// categories), so the confirmation is always sent.
pub async fn carry_out_erasure(ctx: Arc<Ctx>, peer: String, body: pb::Body) {
    let Some(Payload::ErasureRequest(req)) = &body.payload else {
        return;
    };
    let key = pending_erasure_key(&peer, &body.message_id);
    if !ctx
        .recv
        .erasing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return;
    }
    let stop = ctx
        .recv
        .erasure_stop_at
        .load(std::sync::atomic::Ordering::SeqCst);
    let done = async {
        if stop == 1 {
            return;
        }
        let cats: Vec<i32> = req.categories.clone();
        if let Err(e) = crate::referral::erasure::erase_received(
            &ctx,
            &peer,
            &body.case_ref,
            &cats,
            &format!("requested by {peer}"),
        )
        .await
        {
            tracing::error!(peer = %peer, error = %e, "cannot carry out an erasure request");
            return;
        }
        if stop == 2 {
            return;
        }
        let payload = Payload::ErasureConfirmation(pb::ErasureConfirmation {
            request_id: body.message_id.clone(),
            categories: cats,
            erased_ms: ctx.clock.now_ms(),
        });
        let out = crate::referral::messages::Outgoing {
            to: peer.clone(),
            case_id: String::new(),
            case_ref: body.case_ref.clone(),
            in_reply_to: body.message_id.clone(),
            payload,
            released: vec![],
            committed: vec![],
            officer: "node".into(),
        };
        if let Err(e) =
            crate::referral::messages::enqueue_with(&ctx, out, vec![Op::DeleteMeta(key.clone())])
                .await
        {
            tracing::error!(peer = %peer, error = %e, "cannot confirm an erasure");
        }
    };
    done.await;
    ctx.recv
        .erasing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
}

/// At start: carries out and confirms every erasure request stored but not yet confirmed.
pub async fn resume_erasures(ctx: Arc<Ctx>) {
    let pending = match ctx.store.meta_prefix(PENDING_ERASURE_PREFIX) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot read pending erasures");
            return;
        }
    };
    for (key, raw) in pending {
        let Some(peer) = key
            .strip_prefix(PENDING_ERASURE_PREFIX)
            .and_then(|r| r.split('/').next())
        else {
            continue;
        };
        match pb::Body::decode(raw.as_slice()) {
            Ok(body) => {
                tracing::info!(peer = %peer, "resuming an erasure request");
                carry_out_erasure(ctx.clone(), peer.to_string(), body).await;
            }
            Err(e) => tracing::error!(error = %e, "a pending erasure does not decode"),
        }
    }
}
