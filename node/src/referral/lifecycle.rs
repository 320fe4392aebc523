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
use crate::store::{Op, ThreadRecord, ThreadRole, ThreadState};

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

/// A store read failed while checking a message: logged, and answered `UNAVAILABLE` (the
/// sender tries again later).
fn unavailable(e: crate::store::StoreError) -> Refusal {
    tracing::error!(error = %e, "store read failed");
    refuse(RejectReason::Unavailable, "store unavailable")
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

pub use trm_proto::phases::{parse_outcome, parse_phase};

/// Validates `body` against the thread it belongs to and returns the thread after it, or
/// `None` when the message does not change a thread.
pub fn transition(
    thread: Option<&ThreadRecord>,
    dir: Direction,
    peer: &str,
    body: &pb::Body,
    now_ms: i64,
) -> Result<Option<ThreadRecord>, Refusal> {
    let Some(payload) = case_payload(body, now_ms, dir)? else {
        return Ok(None);
    };
    // The role the thread has on this node when this side sends the referral.
    let own_role = match dir {
        Direction::Outgoing => ThreadRole::Sent,
        Direction::Incoming => ThreadRole::Received,
    };
    if let Payload::Referral(r) = payload {
        return open_thread(thread, own_role, peer, body, r, now_ms).map(Some);
    }
    let t = thread.ok_or_else(|| {
        refuse(
            RejectReason::UnknownCase,
            "no referral of this case between these countries",
        )
    })?;
    let state = t.state();
    let open = state.is_some_and(ThreadState::is_open);
    // The side that sends this message.
    let sender = match dir {
        Direction::Outgoing => t.role(),
        Direction::Incoming => t.role().map(ThreadRole::other),
    };
    let mut next = t.clone();
    next.updated_ms = now_ms;
    match payload {
        Payload::Acceptance(a) => {
            answers_referral(t, own_role, body)?;
            next.set_state(ThreadState::Accepted);
            next.responsible_institution = a.responsible_institution.clone();
            next.focal_point = a.focal_point.clone();
        }
        // Declining an information request: the caller checks that `in_reply_to` names one;
        // the referral itself is unchanged.
        Payload::Decline(_) if body.in_reply_to != t.referral_id => {
            return unchanged_while_open(t, open)
        }
        Payload::InformationRequest(_) => return unchanged_while_open(t, open),
        Payload::Decline(d) => {
            answers_referral(t, own_role, body)?;
            next.set_state(ThreadState::Declined);
            next.note = d.reason.clone();
        }
        Payload::FollowUp(f) if state == Some(ThreadState::Closed) => {
            let by = Side { sender, dir, peer };
            follow_up_after_closure(&mut next, by, &body.message_id, f, now_ms)?
        }
        Payload::FollowUp(f) => follow_up(&mut next, f)?,
        Payload::Disclosure(d) => return disclosure(t, own_role, d).map(|()| None),
        Payload::Closure(c) => close(&mut next, sender, c)?,
        Payload::ErasureRequest(_)
        | Payload::ErasureConfirmation(_)
        | Payload::Referral(_)
        | Payload::DirectoryUpdate(_)
        | Payload::KeyAnnouncement(_) => return Ok(None),
    }
    Ok(Some(next))
}

/// The payload of a message about a case, checked for what needs no thread: present, with a
/// case reference, a reported date not in the future. `None`: not about a case (a directory
/// update or a key announcement).
fn case_payload(body: &pb::Body, now_ms: i64, dir: Direction) -> Result<Option<&Payload>, Refusal> {
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
    if let Payload::FollowUp(pb::FollowUp { date, .. })
    | Payload::Closure(pb::Closure { date, .. }) = payload
    {
        check_reported_date(date, now_ms, dir)?;
    }
    Ok(Some(payload))
}

/// How far a received follow-up's or closure's date may be after the receiver's clock: one
/// day of clock skew (a date is a UTC calendar day).
pub const DATE_SKEW_MS: i64 = 24 * 60 * 60 * 1000;

/// A follow-up or closure reports what happened: its date (YYYY-MM-DD, empty for none) must not
/// be in the future. Sending, not after this node's today; receiving, not more than
/// [`DATE_SKEW_MS`] after this node's clock (MALFORMED otherwise). A date that does not parse
/// is MALFORMED too.
pub fn check_reported_date(date: &str, now_ms: i64, dir: Direction) -> Result<(), Refusal> {
    if date.is_empty() {
        return Ok(());
    }
    let Some(at) = trm_proto::date::parse_date_ms(date) else {
        return Err(refuse(RejectReason::Malformed, "date is not YYYY-MM-DD"));
    };
    let latest = match dir {
        Direction::Outgoing => now_ms,
        Direction::Incoming => now_ms + DATE_SKEW_MS,
    };
    if at > latest {
        let today = trm_proto::date::format_ms(now_ms);
        return Err(refuse(
            RejectReason::Malformed,
            format!(
                "the date {date} is in the future (today is {}): a follow-up or closure reports what happened",
                today.get(..10).unwrap_or(&today)
            ),
        ));
    }
    Ok(())
}

/// The TRM phases a side may still report on after the other side closed its side: what
/// happens to the person after the referral's work is done (long-term assistance and social
/// inclusion, return and social inclusion, criminal and civil proceedings).
pub const AFTER_CLOSURE_PHASES: [pb::Phase; 3] = [
    pb::Phase::LongTermAssistance,
    pb::Phase::ReturnAndInclusion,
    pb::Phase::ProceedingsPhase,
];

/// Who sends a message about a thread.
#[derive(Clone, Copy)]
struct Side<'a> {
    /// The sender's role on the thread.
    sender: Option<ThreadRole>,
    /// Which way the message goes.
    dir: Direction,
    /// The other country.
    peer: &'a str,
}

/// The state a closed thread had before its first closure (an older thread that did not
/// record it: accepted if an acceptance named an institution, else pending).
fn state_before_close(t: &ThreadRecord) -> Option<ThreadState> {
    ThreadState::parse(&t.before_close).or(Some(if t.responsible_institution.is_empty() {
        ThreadState::Pending
    } else {
        ThreadState::Accepted
    }))
}

/// A follow-up about a closed thread. Closure is per side: the side that did not close may
/// report on the [`AFTER_CLOSURE_PHASES`] of a referral that was accepted; a side that closed
/// sends nothing until its officer reopens it ([`reopen`]), and its next follow-up, received,
/// reopens its side on the partner's node too.
fn follow_up_after_closure(
    next: &mut ThreadRecord,
    by: Side<'_>,
    message_id: &[u8],
    f: &pb::FollowUp,
    now_ms: i64,
) -> Result<(), Refusal> {
    let closed = next.closed();
    let before = state_before_close(next);
    let Some(sender) = by.sender.filter(|_| before == Some(ThreadState::Accepted)) else {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "a follow-up needs an accepted referral (it is closed)",
        ));
    };
    if closed.contains(&sender) {
        if by.dir == Direction::Outgoing {
            return Err(refuse(
                RejectReason::OutOfOrder,
                "a follow-up needs an accepted referral (it is closed on this side: reopen it first with `case reopen`)",
            ));
        }
        let why = format!("follow-up {}", hex::encode(message_id));
        *next = reopened(next, sender, by.peer, &why, now_ms);
        if next.state() != Some(ThreadState::Closed) {
            return follow_up(next, f);
        }
    }
    let phase = pb::Phase::try_from(f.phase).unwrap_or(pb::Phase::Unspecified);
    if !AFTER_CLOSURE_PHASES.contains(&phase) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "the other side closed the referral: only follow-ups of the long-term assistance, return or proceedings phase may still be sent",
        ));
    }
    next.phase = phase_name(f.phase).into();
    add_extensions(next, f);
    Ok(())
}

/// The thread with `side` reopened (back to its state before closure once no side is closed).
fn reopened(
    t: &ThreadRecord,
    side: ThreadRole,
    by: &str,
    reason: &str,
    now_ms: i64,
) -> ThreadRecord {
    let mut next = t.clone();
    let before = state_before_close(t).unwrap_or(ThreadState::Pending);
    let still: Vec<ThreadRole> = t.closed().into_iter().filter(|s| *s != side).collect();
    next.closed_sides = still.iter().map(|s| s.as_str().to_string()).collect();
    next.before_close = before.as_str().to_string();
    if still.is_empty() {
        next.set_state(before);
        next.note.clear();
    }
    next.reopened.push(crate::store::Reopened {
        at_ms: now_ms,
        side: side.as_str().to_string(),
        by: by.to_string(),
        reason: reason.to_string(),
    });
    next.updated_ms = now_ms;
    next
}

/// `case reopen`: this node's side of a closed referral opens again, locally; the partner
/// learns it from this side's next follow-up.
pub fn reopen(
    t: &ThreadRecord,
    officer: &str,
    reason: &str,
    now_ms: i64,
) -> Result<ThreadRecord, Refusal> {
    let own = t.role().ok_or_else(|| {
        refuse(
            RejectReason::OutOfOrder,
            format!("unknown thread role {:?}", t.role),
        )
    })?;
    if !t.closed().contains(&own) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            format!(
                "this side of the referral is not closed (it is {})",
                t.state
            ),
        ));
    }
    Ok(reopened(t, own, officer, reason, now_ms))
}

/// A closure of one side: once per side, and with an outcome, which becomes the thread's
/// note. The other side may still report on the [`AFTER_CLOSURE_PHASES`].
fn close(
    next: &mut ThreadRecord,
    sender: Option<ThreadRole>,
    c: &pb::Closure,
) -> Result<(), Refusal> {
    let closed = next.closed();
    let Some(sender) = sender.filter(|s| !closed.contains(s)) else {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "the case is already closed on this side",
        ));
    };
    let outcome =
        pb::ClosureOutcome::try_from(c.outcome).unwrap_or(pb::ClosureOutcome::ClosureUnspecified);
    if outcome == pb::ClosureOutcome::ClosureUnspecified {
        return Err(refuse(
            RejectReason::Malformed,
            "closure without an outcome",
        ));
    }
    if closed.is_empty() {
        next.before_close = next.state.clone();
    }
    next.closed_sides = closed
        .into_iter()
        .chain([sender])
        .map(|s| s.as_str().to_string())
        .collect();
    next.set_state(ThreadState::Closed);
    next.note = outcome.as_str_name().to_ascii_lowercase();
    Ok(())
}

/// A referral opens a thread (a new one, or again after a decline or closure), pending, on
/// the side of `own_role`.
fn open_thread(
    thread: Option<&ThreadRecord>,
    own_role: ThreadRole,
    peer: &str,
    body: &pb::Body,
    r: &pb::Referral,
    now_ms: i64,
) -> Result<ThreadRecord, Refusal> {
    if thread.is_some_and(|t| t.state().is_some_and(ThreadState::is_open)) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "a referral of this case between these countries is already open",
        ));
    }
    // A referral's case reference is the referring country's own.
    if own_role == ThreadRole::Received && !trm_proto::template::case_ref_of(&body.case_ref, peer) {
        return Err(refuse(
            RejectReason::Malformed,
            format!("case_ref must start with the referring country's code ({peer}-)"),
        ));
    }
    let mut t = ThreadRecord {
        peer: peer.to_string(),
        case_ref: body.case_ref.clone(),
        referral_id: body.message_id.clone(),
        response_due_ms: r.response_due_ms,
        updated_ms: now_ms,
        phase: phase_name(r.phase).into(),
        extensions: r.extensions.clone(),
        ..Default::default()
    };
    t.set_role(own_role);
    t.set_state(ThreadState::Pending);
    Ok(t)
}

/// A follow-up, either way, on an accepted referral: the phase it reports, the extension
/// fields it declares.
fn follow_up(next: &mut ThreadRecord, f: &pb::FollowUp) -> Result<(), Refusal> {
    if next.state() != Some(ThreadState::Accepted) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            format!(
                "a follow-up needs an accepted referral (it is {})",
                next.state
            ),
        ));
    }
    if f.phase == pb::Phase::Unspecified as i32 || pb::Phase::try_from(f.phase).is_err() {
        return Err(refuse(
            RejectReason::Malformed,
            "follow-up without a TRM phase",
        ));
    }
    next.phase = phase_name(f.phase).into();
    add_extensions(next, f);
    Ok(())
}

/// The extension fields a follow-up declares, added to the thread's.
fn add_extensions(next: &mut ThreadRecord, f: &pb::FollowUp) {
    for e in &f.extensions {
        if !next.extensions.iter().any(|x| x.path == e.path) {
            next.extensions.push(e.clone());
        }
    }
}

/// Only the referring country releases more fields, of its referral, while not declined or
/// closed; the thread is unchanged.
fn disclosure(t: &ThreadRecord, own_role: ThreadRole, d: &pb::Disclosure) -> Result<(), Refusal> {
    if t.role() != Some(own_role) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "only the referring country releases fields",
        ));
    }
    if d.referral_id != t.referral_id {
        return Err(refuse(RejectReason::OutOfOrder, "not the open referral"));
    }
    if matches!(t.state(), Some(ThreadState::Declined | ThreadState::Closed)) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            format!("the referral is {}", t.state),
        ));
    }
    Ok(())
}

/// A message about an open referral that leaves the thread as it is.
fn unchanged_while_open(t: &ThreadRecord, open: bool) -> Result<Option<ThreadRecord>, Refusal> {
    if !open {
        return Err(refuse(
            RejectReason::OutOfOrder,
            format!("the referral is {}", t.state),
        ));
    }
    Ok(None)
}

/// An acceptance or decline of the referral: only from the country that received it, only
/// while pending, only in reply to the referral.
fn answers_referral(
    t: &ThreadRecord,
    own_role: ThreadRole,
    body: &pb::Body,
) -> Result<(), Refusal> {
    if t.role() != Some(own_role.other()) {
        return Err(refuse(
            RejectReason::OutOfOrder,
            "only the country that received the referral can answer it",
        ));
    }
    if t.state() != Some(ThreadState::Pending) {
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
    let thread = ctx
        .store
        .thread(peer, &body.case_ref)
        .map_err(unavailable)?;
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
        Some(Payload::Referral(r)) => disclosed(ctx, &r.extensions, &r.digests, t),
        Some(Payload::FollowUp(f)) => {
            let mut exts = declared;
            exts.extend(f.extensions.iter().cloned());
            disclosed(ctx, &exts, &f.digests, t)
        }
        Some(Payload::Disclosure(d)) => {
            let digests = referral_digests(ctx, peer, &d.referral_id)?;
            disclosed(ctx, &declared, &digests, t)
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

/// The template as extended by `extensions`, once the transmission's disclosures are checked
/// against the signed `digests` and this node's acceptance.
fn disclosed(
    ctx: &Ctx,
    extensions: &[pb::ExtensionField],
    digests: &[Vec<u8>],
    t: &pb::Transmission,
) -> Result<Template, Refusal> {
    let template = crate::referral::policy::receiving_template(&ctx.template, extensions)?;
    crate::referral::policy::check_disclosures(
        &ctx.cfg.acceptance_categories(),
        &template,
        digests,
        &t.disclosures,
    )?;
    Ok(template)
}

/// The signed digests of the referral `referral_id` received from `peer`.
fn referral_digests(ctx: &Ctx, peer: &str, referral_id: &[u8]) -> Result<Vec<Vec<u8>>, Refusal> {
    let referral = ctx
        .store
        .received(peer, referral_id)
        .map_err(unavailable)?
        .ok_or_else(|| refuse(RejectReason::UnknownCase, "unknown referral"))?;
    pb::Envelope::decode(referral.envelope.as_slice())
        .ok()
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .and_then(|b| match b.payload {
            Some(Payload::Referral(r)) => Some(r.digests),
            _ => None,
        })
        .ok_or_else(|| refuse(RejectReason::UnknownCase, "unknown referral"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Incoming as In, Outgoing as Out};
    use ThreadRole::{Received as Rcv, Sent};
    use ThreadState::{Accepted, Closed, Declined, Pending};

    #[test]
    fn reported_dates_are_not_in_the_future() {
        const DAY: i64 = DATE_SKEW_MS;
        // 2026-11-29 12:00 UTC.
        let now = trm_proto::date::parse_date_ms("2026-11-29").unwrap() + DAY / 2;
        let rows: [(&str, Direction, bool); 9] = [
            ("", Direction::Outgoing, true),
            ("2026-11-29", Direction::Outgoing, true),
            ("2020-01-01", Direction::Outgoing, true),
            ("2026-11-30", Direction::Outgoing, false),
            ("2026-11-30", Direction::Incoming, true),
            ("2026-12-01", Direction::Incoming, false),
            ("2027-01-01", Direction::Incoming, false),
            ("2026-13-01", Direction::Incoming, false),
            ("yesterday", Direction::Outgoing, false),
        ];
        for (date, dir, ok) in rows {
            let got = check_reported_date(date, now, dir);
            assert_eq!(got.is_ok(), ok, "{date} {dir:?}: {got:?}");
            if let Err(r) = got {
                assert_eq!(r.reason, RejectReason::Malformed, "{date}");
            }
        }
    }

    const REFERRAL: [u8; 16] = [1; 16];
    const OTHER: [u8; 16] = [9; 16];
    const NOW: i64 = 1_000_000;

    /// The messages a thread meets.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        Referral,
        Accept,
        /// An acceptance that names another message.
        AcceptOther,
        Decline,
        /// A decline of an information request (not of the referral).
        DeclineInfo,
        FollowUp,
        InfoRequest,
        Disclosure,
        /// A disclosure of another referral.
        DisclosureOther,
        Closure,
        Erasure,
    }

    fn body(ev: Ev) -> pb::Body {
        let (in_reply_to, payload) = match ev {
            Ev::Referral => (
                vec![],
                Payload::Referral(pb::Referral {
                    response_due_ms: NOW + 5,
                    phase: pb::Phase::Identification as i32,
                    ..Default::default()
                }),
            ),
            Ev::Accept | Ev::AcceptOther => (
                if matches!(ev, Ev::Accept) {
                    REFERRAL
                } else {
                    OTHER
                }
                .to_vec(),
                Payload::Acceptance(pb::Acceptance {
                    responsible_institution: "Example Institution".into(),
                    focal_point: "desk@example.org".into(),
                }),
            ),
            Ev::Decline | Ev::DeclineInfo => (
                if matches!(ev, Ev::Decline) {
                    REFERRAL
                } else {
                    OTHER
                }
                .to_vec(),
                Payload::Decline(pb::Decline {
                    reason: "no capacity".into(),
                }),
            ),
            Ev::FollowUp => (
                vec![],
                Payload::FollowUp(pb::FollowUp {
                    phase: pb::Phase::FirstAssistance as i32,
                    ..Default::default()
                }),
            ),
            Ev::InfoRequest => (vec![], Payload::InformationRequest(Default::default())),
            Ev::Disclosure | Ev::DisclosureOther => (
                vec![],
                Payload::Disclosure(pb::Disclosure {
                    referral_id: if matches!(ev, Ev::Disclosure) {
                        REFERRAL
                    } else {
                        OTHER
                    }
                    .to_vec(),
                }),
            ),
            Ev::Closure => (
                vec![],
                Payload::Closure(pb::Closure {
                    outcome: pb::ClosureOutcome::Transferred as i32,
                    ..Default::default()
                }),
            ),
            Ev::Erasure => (vec![], Payload::ErasureRequest(Default::default())),
        };
        pb::Body {
            message_id: vec![2; 16],
            case_ref: "AL-2026-0001".into(),
            in_reply_to,
            payload: Some(payload),
            ..Default::default()
        }
    }

    fn thread(role: ThreadRole, state: ThreadState) -> ThreadRecord {
        let mut t = ThreadRecord {
            peer: "AL".into(),
            case_ref: "AL-2026-0001".into(),
            referral_id: REFERRAL.to_vec(),
            updated_ms: 1,
            ..Default::default()
        };
        t.set_role(role);
        t.set_state(state);
        t
    }

    /// What `transition` should do.
    #[derive(Debug)]
    enum Want {
        /// The thread moves to (or stays in, updated) this state.
        To(ThreadState),
        /// Allowed; the thread is unchanged.
        Same,
        /// Refused with this reason and a detail containing this text.
        No(RejectReason, &'static str),
    }
    use Want::{No, Same, To};

    const ORDER: RejectReason = RejectReason::OutOfOrder;

    /// The thread before the message, if any.
    type Start = Option<(ThreadRole, ThreadState)>;

    #[test]
    fn transitions() {
        #[rustfmt::skip]
        let table: &[(Start, Direction, Ev, Want)] = &[
            // A referral opens a thread, or opens it again once declined or closed.
            (None, Out, Ev::Referral, To(Pending)),
            (None, In, Ev::Referral, To(Pending)),
            (Some((Sent, Declined)), Out, Ev::Referral, To(Pending)),
            (Some((Rcv, Closed)), In, Ev::Referral, To(Pending)),
            (Some((Sent, Pending)), Out, Ev::Referral, No(ORDER, "already open")),
            (Some((Rcv, Accepted)), In, Ev::Referral, No(ORDER, "already open")),
            // Only the receiving country answers, once, the referral itself.
            (Some((Sent, Pending)), In, Ev::Accept, To(Accepted)),
            (Some((Rcv, Pending)), Out, Ev::Accept, To(Accepted)),
            (Some((Sent, Pending)), In, Ev::Decline, To(Declined)),
            (Some((Rcv, Pending)), Out, Ev::Decline, To(Declined)),
            (Some((Sent, Pending)), Out, Ev::Accept, No(ORDER, "only the country that received")),
            (Some((Rcv, Pending)), In, Ev::Decline, No(ORDER, "only the country that received")),
            (Some((Sent, Accepted)), In, Ev::Accept, No(ORDER, "already accepted")),
            (Some((Sent, Declined)), In, Ev::Decline, No(ORDER, "already declined")),
            (Some((Rcv, Closed)), Out, Ev::Accept, No(ORDER, "already closed")),
            (Some((Sent, Accepted)), In, Ev::Decline, No(ORDER, "already accepted")),
            (Some((Sent, Pending)), In, Ev::AcceptOther, No(ORDER, "does not answer")),
            (None, In, Ev::Accept, No(RejectReason::UnknownCase, "no referral")),
            // Follow-ups, either way, on an accepted referral only.
            (Some((Sent, Accepted)), Out, Ev::FollowUp, To(Accepted)),
            (Some((Rcv, Accepted)), Out, Ev::FollowUp, To(Accepted)),
            (Some((Sent, Accepted)), In, Ev::FollowUp, To(Accepted)),
            (Some((Sent, Pending)), In, Ev::FollowUp, No(ORDER, "needs an accepted referral (it is pending)")),
            (Some((Rcv, Closed)), Out, Ev::FollowUp, No(ORDER, "(it is closed)")),
            (None, Out, Ev::FollowUp, No(RejectReason::UnknownCase, "no referral")),
            // Information requests and their declines leave an open thread as it is.
            (Some((Rcv, Pending)), Out, Ev::InfoRequest, Same),
            (Some((Sent, Accepted)), In, Ev::InfoRequest, Same),
            (Some((Sent, Accepted)), Out, Ev::DeclineInfo, Same),
            (Some((Rcv, Pending)), In, Ev::DeclineInfo, Same),
            (Some((Sent, Closed)), Out, Ev::InfoRequest, No(ORDER, "the referral is closed")),
            (Some((Sent, Declined)), In, Ev::DeclineInfo, No(ORDER, "the referral is declined")),
            // Only the referring country discloses more, of its open referral.
            (Some((Sent, Pending)), Out, Ev::Disclosure, Same),
            (Some((Sent, Accepted)), Out, Ev::Disclosure, Same),
            (Some((Rcv, Accepted)), In, Ev::Disclosure, Same),
            (Some((Rcv, Accepted)), Out, Ev::Disclosure, No(ORDER, "only the referring country")),
            (Some((Sent, Accepted)), Out, Ev::DisclosureOther, No(ORDER, "not the open referral")),
            (Some((Sent, Declined)), Out, Ev::Disclosure, No(ORDER, "the referral is declined")),
            (Some((Rcv, Closed)), In, Ev::Disclosure, No(ORDER, "the referral is closed")),
            // Either country closes, once.
            (Some((Sent, Pending)), Out, Ev::Closure, To(Closed)),
            (Some((Sent, Accepted)), In, Ev::Closure, To(Closed)),
            (Some((Rcv, Accepted)), Out, Ev::Closure, To(Closed)),
            (Some((Rcv, Declined)), In, Ev::Closure, To(Closed)),
            (Some((Sent, Closed)), Out, Ev::Closure, No(ORDER, "already closed")),
            (None, In, Ev::Closure, No(RejectReason::UnknownCase, "no referral")),
            // Erasure messages never move a thread.
            (Some((Sent, Closed)), In, Ev::Erasure, Same),
            (Some((Rcv, Accepted)), Out, Ev::Erasure, Same),
        ];
        for (row, (start, dir, ev, want)) in table.iter().enumerate() {
            let before = start.map(|(r, s)| thread(r, s));
            let got = transition(before.as_ref(), *dir, "AL", &body(*ev), NOW);
            let case = format!("row {row}: {start:?} {dir:?} {ev:?}");
            match (want, got) {
                (To(state), Ok(Some(next))) => {
                    assert_eq!(next.state(), Some(*state), "{case}");
                    assert_eq!(next.updated_ms, NOW, "{case}");
                    let role = match (start, dir) {
                        (Some((r, _)), _) => *r,
                        (None, Out) => Sent,
                        (None, In) => Rcv,
                    };
                    assert_eq!(next.role(), Some(role), "{case}");
                }
                (Same, Ok(None)) => {}
                (No(reason, text), Err(r)) => {
                    assert_eq!(r.reason, *reason, "{case}: {}", r.detail);
                    assert!(r.detail.contains(text), "{case}: {}", r.detail);
                }
                (want, got) => panic!("{case}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    /// A follow-up of `phase`.
    fn follow_up_in(phase: pb::Phase) -> pb::Body {
        let mut b = body(Ev::FollowUp);
        b.payload = Some(Payload::FollowUp(pb::FollowUp {
            phase: phase as i32,
            ..Default::default()
        }));
        b
    }

    /// A thread of `role`, accepted, then closed by `sides` (before this version: none).
    fn closed_by(role: ThreadRole, sides: &[ThreadRole]) -> ThreadRecord {
        let mut t = thread(role, Closed);
        t.before_close = "accepted".into();
        t.closed_sides = sides.iter().map(|s| s.as_str().to_string()).collect();
        t
    }

    #[test]
    fn closure_is_per_side() {
        use pb::Phase::{FirstAssistance as First, LongTermAssistance as LongTerm};
        use pb::Phase::{ProceedingsPhase as Proceedings, ReturnAndInclusion as Return};
        /// (this node's role, sides closed, direction, message, wanted: Ok(sides closed
        /// after, state after) or Err(detail)).
        type Row = (
            ThreadRole,
            &'static [ThreadRole],
            Direction,
            pb::Body,
            Result<(&'static [ThreadRole], ThreadState), &'static str>,
        );
        let table: Vec<Row> = vec![
            // Italy (sent) closes: its side only.
            (Sent, &[], Out, body(Ev::Closure), Ok((&[Sent], Closed))),
            (Rcv, &[], In, body(Ev::Closure), Ok((&[Sent], Closed))),
            // Albania (received side) may then report on the three later phases, and Italy
            // receives them; the thread stays closed.
            (
                Rcv,
                &[Sent],
                Out,
                follow_up_in(LongTerm),
                Ok((&[Sent], Closed)),
            ),
            (
                Rcv,
                &[Sent],
                Out,
                follow_up_in(Return),
                Ok((&[Sent], Closed)),
            ),
            (
                Sent,
                &[Sent],
                In,
                follow_up_in(Proceedings),
                Ok((&[Sent], Closed)),
            ),
            (
                Rcv,
                &[Sent],
                Out,
                follow_up_in(First),
                Err("only follow-ups of the long-term"),
            ),
            (
                Sent,
                &[Sent],
                In,
                follow_up_in(First),
                Err("only follow-ups of the long-term"),
            ),
            // The side that closed sends nothing until it reopens.
            (
                Sent,
                &[Sent],
                Out,
                follow_up_in(LongTerm),
                Err("reopen it first"),
            ),
            // Its next follow-up, received, reopens its side on the partner's node.
            (Rcv, &[Sent], In, follow_up_in(First), Ok((&[], Accepted))),
            (
                Rcv,
                &[Sent, Rcv],
                In,
                follow_up_in(LongTerm),
                Ok((&[Rcv], Closed)),
            ),
            // The other side closes too; a side closes once.
            (
                Rcv,
                &[Sent],
                Out,
                body(Ev::Closure),
                Ok((&[Sent, Rcv], Closed)),
            ),
            (
                Sent,
                &[Sent],
                In,
                body(Ev::Closure),
                Ok((&[Sent, Rcv], Closed)),
            ),
            (
                Sent,
                &[Sent],
                Out,
                body(Ev::Closure),
                Err("already closed on this side"),
            ),
            (
                Rcv,
                &[Sent],
                In,
                body(Ev::Closure),
                Err("already closed on this side"),
            ),
            // Both closed: nothing more, but a new referral.
            (
                Rcv,
                &[Sent, Rcv],
                Out,
                follow_up_in(Return),
                Err("reopen it first"),
            ),
            (
                Sent,
                &[Sent, Rcv],
                Out,
                body(Ev::Referral),
                Ok((&[], Pending)),
            ),
            // Information requests and disclosures stay refused once any side closed.
            (
                Rcv,
                &[Sent],
                Out,
                body(Ev::InfoRequest),
                Err("the referral is closed"),
            ),
            (
                Sent,
                &[Rcv],
                Out,
                body(Ev::Disclosure),
                Err("the referral is closed"),
            ),
        ];
        for (row, (role, sides, dir, b, want)) in table.into_iter().enumerate() {
            let before = if sides.is_empty() {
                thread(role, Accepted)
            } else {
                closed_by(role, sides)
            };
            let got = transition(Some(&before), dir, "AL", &b, NOW);
            let case = format!("row {row}: {role:?} closed by {sides:?} {dir:?}");
            match (want, got) {
                (Ok((after, state)), Ok(Some(next))) => {
                    assert_eq!(next.closed(), after.to_vec(), "{case}");
                    assert_eq!(next.state(), Some(state), "{case}");
                }
                (Err(text), Err(r)) => assert!(r.detail.contains(text), "{case}: {}", r.detail),
                (want, got) => panic!("{case}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn reopen_opens_this_side_only() {
        // (role, sides closed, state after, sides closed after) or refused.
        /// (this node's role, sides closed before, (state, sides closed) after or refused).
        type Row = (
            ThreadRole,
            &'static [ThreadRole],
            Option<(ThreadState, &'static [ThreadRole])>,
        );
        let table: &[Row] = &[
            (Sent, &[Sent], Some((Accepted, &[]))),
            (Sent, &[Sent, Rcv], Some((Closed, &[Rcv]))),
            (Rcv, &[Rcv], Some((Accepted, &[]))),
            (Rcv, &[Sent], None),
        ];
        for (row, (role, sides, want)) in table.iter().enumerate() {
            let t = closed_by(*role, sides);
            let got = reopen(&t, "Olivia Example", "new information", NOW);
            match (want, got) {
                (Some((state, after)), Ok(next)) => {
                    assert_eq!(next.state(), Some(*state), "row {row}");
                    assert_eq!(next.closed(), after.to_vec(), "row {row}");
                    let r = next.reopened.last().expect("recorded");
                    assert_eq!((r.by.as_str(), r.at_ms), ("Olivia Example", NOW));
                }
                (None, Err(r)) => assert!(r.detail.contains("not closed"), "row {row}"),
                (want, got) => panic!("row {row}: wanted {want:?}, got {got:?}"),
            }
        }
        // A thread closed before sides were recorded counts as closed by both.
        let legacy = thread(Sent, Closed);
        assert_eq!(legacy.closed(), vec![Sent, Rcv]);
        let next = reopen(&legacy, "Olivia Example", "r", NOW).unwrap();
        assert_eq!((next.state(), next.closed()), (Some(Closed), vec![Rcv]));
        assert!(reopen(&thread(Sent, Accepted), "O", "r", NOW).is_err());
    }

    #[test]
    fn transitions_carry_the_message_fields() {
        let t = transition(None, Out, "AL", &body(Ev::Referral), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                t.role.as_str(),
                t.state.as_str(),
                t.peer.as_str(),
                t.case_ref.as_str()
            ),
            ("sent", "pending", "AL", "AL-2026-0001")
        );
        assert_eq!(
            (t.referral_id.as_slice(), t.response_due_ms),
            (&[2; 16][..], NOW + 5)
        );
        assert_eq!(t.phase, "identification");
        let pending = thread(Sent, Pending);
        let accepted = transition(Some(&pending), In, "AL", &body(Ev::Accept), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(accepted.state, "accepted");
        assert_eq!(accepted.responsible_institution, "Example Institution");
        assert_eq!(accepted.focal_point, "desk@example.org");
        let declined = transition(Some(&pending), In, "AL", &body(Ev::Decline), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(declined.note, "no capacity");
        let followed = transition(Some(&accepted), Out, "AL", &body(Ev::FollowUp), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(followed.phase, "first assistance and protection");
        let closed = transition(Some(&accepted), Out, "AL", &body(Ev::Closure), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            (closed.state.as_str(), closed.note.as_str()),
            ("closed", "transferred")
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        let accepted = thread(Sent, Accepted);
        let malformed = |t: Option<&ThreadRecord>, b: pb::Body| {
            transition(t, Out, "AL", &b, NOW).map_err(|r| (r.reason, r.detail))
        };
        let mut b = body(Ev::FollowUp);
        b.payload = None;
        let err = malformed(Some(&accepted), b).unwrap_err();
        assert_eq!(err.0, RejectReason::Malformed, "{}", err.1);
        let mut b = body(Ev::Closure);
        b.case_ref.clear();
        assert!(malformed(Some(&accepted), b)
            .unwrap_err()
            .1
            .contains("without case reference"));
        let mut b = body(Ev::FollowUp);
        b.payload = Some(Payload::FollowUp(pb::FollowUp::default()));
        assert!(malformed(Some(&accepted), b)
            .unwrap_err()
            .1
            .contains("without a TRM phase"));
        let mut b = body(Ev::Closure);
        b.payload = Some(Payload::Closure(pb::Closure::default()));
        assert!(malformed(Some(&accepted), b)
            .unwrap_err()
            .1
            .contains("without an outcome"));
        // A thread state this version does not write answers nothing but a new referral.
        let mut odd = accepted.clone();
        odd.state = "archived".into();
        assert!(malformed(Some(&odd), body(Ev::FollowUp)).is_err());
        assert!(malformed(Some(&odd), body(Ev::InfoRequest)).is_err());
        assert!(matches!(
            malformed(Some(&odd), body(Ev::Referral)),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_received_referral_carries_the_referring_countrys_reference() {
        let mut b = body(Ev::Referral);
        for (case_ref, ok) in [
            ("AL-2026-0001", true),
            ("IT-2026-0001", false),
            ("GR-2026-0007", false),
            ("ALX-0001", false),
        ] {
            b.case_ref = case_ref.into();
            let got = transition(None, In, "AL", &b, NOW);
            assert_eq!(got.is_ok(), ok, "{case_ref}: {got:?}");
            if let Err(r) = got {
                assert_eq!(r.reason, RejectReason::Malformed);
            }
        }
    }
}
